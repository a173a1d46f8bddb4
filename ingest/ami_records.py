"""The raw records the AMI bridge writes: one per Cdr event, one per CEL call, one per channel
event of presence, each keyed by its call (LinkedID, else UniqueID, else Channel) so that every
record of a call shares a partition and keeps its order."""

from __future__ import annotations

import json

from ingest.raw_producer import RawRecordOut
from processors.parsers.asterisk_ami_cdr import AsteriskAmiCdrParser
from processors.parsers.asterisk_ami_presence import AsteriskAmiPresenceParser
from processors.parsers.asterisk_cel import AsteriskCelCallParser
from salespulse.models import SourceFamily

_FORMAT = AsteriskAmiCdrParser.format_name
_CEL_FORMAT = AsteriskCelCallParser.format_name
_PRESENCE_FORMAT = AsteriskAmiPresenceParser.format_name


def cdr_record(message: bytes, fields: dict[str, str]) -> RawRecordOut:
    """The raw record of one Cdr message: keyed so that every leg of a call shares a partition."""
    key = fields.get("linkedid") or fields.get("uniqueid") or fields.get("channel")
    return RawRecordOut(SourceFamily.PBX, _FORMAT, key.encode() if key else None, message)


def presence_record(fields: dict[str, str], wall: float) -> RawRecordOut:
    """The raw record of one channel event: its fields as Asterisk gave them, and its time.

    ``wall`` (Unix seconds, when the event was read) stands for the time unless the event
    carries its own ``Timestamp`` (manager.conf ``timestampevents = yes``). Keyed by the call,
    like its Cdr events, so a channel's records stay in order with each other and its CDR.
    """
    state = fields.get("channelstate", "")
    stamp = fields.get("timestamp", "")
    try:
        at = float(stamp) if stamp else wall
    except ValueError:
        at = wall
    record = {
        "event": fields.get("event", ""),
        "channel": fields.get("channel", ""),
        "uniqueid": fields.get("uniqueid", ""),
        "linkedid": fields.get("linkedid") or None,
        "channel_state": int(state) if state.isascii() and state.isdigit() else None,
        "at": at,
        "duration": _hms_seconds(fields.get("duration", "")),
    }
    key = fields.get("linkedid") or fields.get("uniqueid") or fields.get("channel")
    value = json.dumps(record, separators=(",", ":")).encode() + b"\n"
    return RawRecordOut(SourceFamily.PBX, _PRESENCE_FORMAT, key.encode() if key else None, value)


def _hms_seconds(text: str) -> int | None:
    """``CoreShowChannel``'s ``Duration`` (``HH:MM:SS``) in seconds; None if it is not that."""
    parts = text.split(":")
    if len(parts) != 3 or not all(part.isascii() and part.isdigit() for part in parts):
        return None
    hours, minutes, seconds = (int(part) for part in parts)
    return hours * 3600 + minutes * 60 + seconds


def cel_record(key: str | None, messages: list[bytes]) -> RawRecordOut:
    # Each message keeps its closing empty line, so joined they stay blank-line separated.
    value = b"".join(messages)
    return RawRecordOut(SourceFamily.PBX, _CEL_FORMAT, key.encode() if key else None, value)
