"""CEL events held per call by the AMI bridge until the call ends (``LINKEDID_END``), then
written as one record: a CEL event says nothing about a call by itself."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from ingest.ami_records import cel_record
from ingest.ami_settings import AmiSettings
from ingest.raw_producer import RawRecordOut
from processors.parsers.asterisk_cel import CEL_MAX_RECORD_BYTES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CelOptions:
    """Whether the bridge asks for CEL events, and how much of them it may hold.

    ``max_open_calls`` and ``max_age_seconds`` bound the memory: past either, the oldest call is
    written as it is, incomplete. ``max_call_bytes`` keeps one call within what the parser and
    Kafka accept; a call that outgrows it is written and its later events start a new record.
    """

    enabled: bool = False
    max_open_calls: int = 10_000
    max_age_seconds: float = 6 * 3600.0
    max_call_bytes: int = CEL_MAX_RECORD_BYTES

    @classmethod
    def of(cls, ami: AmiSettings) -> CelOptions:
        return cls(
            enabled=ami.cel_enabled,
            max_open_calls=ami.cel_max_open_calls,
            max_age_seconds=ami.cel_max_age_seconds,
            max_call_bytes=ami.cel_max_call_bytes,
        )


@dataclass
class _OpenCall:
    opened: float  # clock time of its first event
    messages: list[bytes]
    size: int


class CelCalls:
    """CEL events held per LinkedID until the call ends; each method returns what to write."""

    def __init__(self, options: CelOptions, clock: Callable[[], float]) -> None:
        self._options = options
        self._clock = clock
        # Insertion order is age order: the first entry is the oldest open call.
        self._open: OrderedDict[str, _OpenCall] = OrderedDict()

    def __len__(self) -> int:
        return len(self._open)

    def add(self, message: bytes, fields: dict[str, str]) -> list[RawRecordOut]:
        linkedid = fields.get("linkedid")
        if not linkedid:
            # Nothing to group by: written alone, so the worker reports it instead of it
            # vanishing here.
            return [cel_record(fields.get("uniqueid"), [message])]
        out: list[RawRecordOut] = []
        call = self._open.get(linkedid)
        if call is not None and call.size + len(message) > self._options.max_call_bytes:
            limit = self._options.max_call_bytes
            log.warning(
                "AMI: CEL of call %s exceeds %d bytes; writing it in parts", linkedid, limit
            )
            out.append(self._close(linkedid))
            call = None
        if call is None:
            call = self._open[linkedid] = _OpenCall(self._clock(), [], 0)
        call.messages.append(message)
        call.size += len(message)
        if fields.get("eventname", "").upper() == "LINKEDID_END":
            out.append(self._close(linkedid))
        elif len(self._open) > self._options.max_open_calls:
            oldest = next(iter(self._open))
            limit = self._options.max_open_calls
            log.warning("AMI: more than %d calls open; writing call %s incomplete", limit, oldest)
            out.append(self._close(oldest))
        return out

    def expired(self) -> list[RawRecordOut]:
        """Calls open longer than ``max_age_seconds``: their LINKEDID_END was lost (the bridge
        was disconnected) or the call is improbably long."""
        deadline = self._clock() - self._options.max_age_seconds
        out: list[RawRecordOut] = []
        while self._open:
            linkedid, call = next(iter(self._open.items()))
            if call.opened > deadline:
                break
            log.warning("AMI: call %s open too long; writing it incomplete", linkedid)
            out.append(self._close(linkedid))
        return out

    def drain(self) -> list[RawRecordOut]:
        """Every open call, incomplete: on stop, what is held is written rather than lost."""
        return [self._close(linkedid) for linkedid in list(self._open)]

    def _close(self, linkedid: str) -> RawRecordOut:
        return cel_record(linkedid, self._open.pop(linkedid).messages)
