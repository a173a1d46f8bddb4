"""Truth records as the bytes each source really emits, with a share of them corrupted.

Formats: Asterisk ``cdr_csv`` (16 columns, UTC timestamps as with ``usegmtime=yes``), chat
sessions and CRM events as JSON objects with local RFC 3339 offsets. A corrupted record replaces
the good one and is left out of the expected totals, because the pipeline must drop it.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from typing import Any, NamedTuple

from ingest.generator.population import Population
from ingest.generator.truth import CallTruth, ChatTruth, CrmTruth, Expected, Truth
from salespulse.models import SourceFamily

CDR_FORMAT = "asterisk-cdr-csv"
CHAT_FORMAT = "chat-session-json"
CRM_FORMAT = "crm-event-json"
FORMATS: dict[SourceFamily, str] = {
    SourceFamily.PBX: CDR_FORMAT,
    SourceFamily.CHAT: CHAT_FORMAT,
    SourceFamily.CRM: CRM_FORMAT,
}

_CDR_START = 9
# Cyrillic without "ё": in cp1251 every letter is a byte >= 0xC0, which can never start a valid
# UTF-8 sequence followed by another such byte, so the encoded text is guaranteed not UTF-8.
_CP1251_NAME = "Иван Петров"
_BAD_TIMES = ("2026-02-30 09:15:02", "26/11/2026 09:15", "yesterday", "2026-11-26 25:61:00")
_CDR_CORRUPTIONS = ("truncated", "bad_time", "encoding")
_JSON_CORRUPTIONS = ("truncated", "bad_time", "encoding", "invalid")


class RawRecord(NamedTuple):
    """One record as its source wrote it; ``at`` is the event time and ``ready`` the moment
    the source has it (a CDR at hangup), both as UTC epoch seconds."""

    family: SourceFamily
    format: str
    key: bytes
    data: bytes
    at: int
    ready: int


@dataclass
class Traffic:
    population: Population
    records: dict[SourceFamily, list[RawRecord]]
    expected: Expected

    def all_records(self) -> list[RawRecord]:
        return [record for family in FORMATS for record in self.records.get(family, [])]


_DAY = 86_400
_EPOCH = date(1970, 1, 1)


@lru_cache(maxsize=4096)
def _date_text(day_number: int) -> str:
    return (_EPOCH + timedelta(days=day_number)).isoformat()


@lru_cache(maxsize=64)
def _offset_text(offset: int) -> str:
    sign = "-" if offset < 0 else "+"
    minutes = abs(offset) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


# Plain arithmetic with a per-day cache: formatting through datetime objects dominated the
# generator's run time.
def utc_text(epoch: int) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in UTC, as Asterisk writes with ``usegmtime=yes``."""
    day, second = divmod(epoch, _DAY)
    return f"{_date_text(day)} {second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}"


def local_text(epoch: int, offset: int) -> str:
    """RFC 3339 with the local UTC offset, e.g. ``2026-11-26T09:15:02+03:00``."""
    day, second = divmod(epoch + offset, _DAY)
    clock = f"{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}"
    return f"{_date_text(day)}T{clock}{_offset_text(offset)}"


class _Channels:
    """Asterisk channel names: one PBX-wide hex sequence, the trunk channel shared by legs."""

    def __init__(self) -> None:
        self.seq = 0
        self.trunks: dict[str, str] = {}

    def new(self, resource: str) -> str:
        self.seq += 1
        return f"SIP/{resource}-{self.seq:08x}"

    def trunk(self, tag: str | None) -> str:
        if tag is None:
            return self.new("provider")
        if tag not in self.trunks:
            self.trunks[tag] = self.new("provider")
        return self.trunks[tag]


def cdr_fields(call: CallTruth, channels: _Channels) -> list[str]:
    channel = channels.new(call.caller.extension) if call.caller else channels.trunk(call.trunk)
    if call.callee is not None:
        dstchannel = channels.new(call.callee.extension)
    elif call.kind == "outgoing":
        dstchannel = channels.trunk(call.trunk)
    else:
        dstchannel = ""
    start, duration = call.start, call.ring + call.billsec
    return [
        "",
        call.src,
        call.dst,
        "from-internal" if call.caller else "from-trunk",
        call.clid,
        channel,
        dstchannel,
        call.lastapp,
        call.lastdata,
        utc_text(start),
        utc_text(start + call.ring) if call.disposition == "ANSWERED" else "",
        utc_text(start + duration),
        str(duration),
        str(call.billsec),
        call.disposition,
        "DOCUMENTATION",
    ]


def cdr_line(fields: list[str]) -> str:
    """A ``cdr_csv`` line: every field quoted except the integer duration and billsec.

    Only the caller id can hold a double quote, so it alone is escaped.
    """
    (acct, src, dst, ctx, clid, chan, dchan, app, data, start, answer, end) = fields[:12]
    clid = clid.replace('"', '""')
    return (
        f'"{acct}","{src}","{dst}","{ctx}","{clid}","{chan}","{dchan}","{app}","{data}",'
        f'"{start}","{answer}","{end}",{fields[12]},{fields[13]},"{fields[14]}","{fields[15]}"'
    )


def chat_object(chat: ChatTruth) -> dict[str, Any]:
    data: dict[str, Any] = {
        "session_id": chat.session_id,
        "operator_id": chat.operator_id,
        "channel": chat.channel,
        "started_at": local_text(chat.started, chat.offset),
    }
    if chat.first_response is not None:
        data["first_response_at"] = local_text(chat.first_response, chat.offset)
    data.update(
        closed_at=local_text(chat.closed, chat.offset),
        status=chat.status,
        client_id=chat.client_id,
        messages=chat.messages,
    )
    return data


def crm_object(event: CrmTruth) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": event.event_id,
        "type": event.type,
        "user_id": event.user_id,
        "occurred_at": local_text(event.occurred, event.offset),
    }
    optional = (
        ("entity", event.entity),
        ("amount", event.amount),
        ("currency", event.currency),
        ("location", event.location),
        ("due_at", local_text(event.due_at, event.offset) if event.due_at else None),
    )
    data.update((name, value) for name, value in optional if value is not None)
    return data


def _dump(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def corrupt_cdr(fields: list[str], rng: random.Random) -> bytes:
    kind = rng.choice(_CDR_CORRUPTIONS)
    if kind == "bad_time":
        fields = [*fields[:_CDR_START], rng.choice(_BAD_TIMES), *fields[_CDR_START + 1 :]]
    elif kind == "encoding":
        # A peer named in Cyrillic by a PBX still writing cp1251, in the channel the parser
        # reads: not text in the configured encoding, so the CDR cannot be attributed. (A
        # cp1251 caller name in clid, which the parser does not read, is a valid CDR.)
        fields = [*fields[:5], f"SIP/{_CP1251_NAME}-00000001", *fields[6:]]
        return cdr_line(fields).encode("cp1251")
    line = cdr_line(fields)
    if kind == "truncated":
        # Cut within the first half so that well under 16 columns remain.
        line = line[: rng.randint(8, len(line) // 2)]
    return line.encode()


def corrupt_json(
    data: dict[str, Any], time_field: str, text_field: str, rng: random.Random
) -> bytes:
    kind = rng.choice(_JSON_CORRUPTIONS)
    if kind == "bad_time":
        return _dump({**data, time_field: rng.choice(_BAD_TIMES)})
    if kind == "encoding":
        text = json.dumps(
            {**data, text_field: _CP1251_NAME}, ensure_ascii=False, separators=(",", ":")
        )
        return text.encode("cp1251")
    text = json.dumps(data, separators=(",", ":"))
    if kind == "invalid":
        return (text[:-1] + ",}").encode()
    return text[: rng.randint(1, len(text) - 2)].encode()


def build_traffic(
    pop: Population, truth: Truth, *, seed: int, malformed_share: float, pbx_id: str
) -> Traffic:
    """Render every truth record, corrupting about ``malformed_share`` of them."""
    rng = random.Random(f"{seed}:malformed")
    # Every manager is listed, so an idle one shows as zeros rather than as missing.
    expected = Expected(per_manager={manager.id: Counter() for manager in pop.managers})
    channels = _Channels()
    pbx_key = pbx_id.encode()

    calls: list[RawRecord] = []
    for call in truth.calls:
        fields = cdr_fields(call, channels)
        if rng.random() < malformed_share:
            data = corrupt_cdr(fields, rng)
            expected.add_malformed(CDR_FORMAT)
        else:
            data = cdr_line(fields).encode()
            expected.add_call(call)
        ready = call.start + call.duration
        calls.append(RawRecord(SourceFamily.PBX, CDR_FORMAT, pbx_key, data, call.start, ready))

    chats: list[RawRecord] = []
    for chat in truth.chats:
        obj = chat_object(chat)
        if rng.random() < malformed_share:
            data = corrupt_json(obj, "started_at", "client_id", rng)
            expected.add_malformed(CHAT_FORMAT)
        else:
            data = _dump(obj)
            expected.add_chat(chat)
        key = chat.operator_id.encode()
        chats.append(
            RawRecord(SourceFamily.CHAT, CHAT_FORMAT, key, data, chat.started, chat.closed)
        )

    crm: list[RawRecord] = []
    for event in truth.crm:
        obj = crm_object(event)
        if rng.random() < malformed_share:
            data = corrupt_json(obj, "occurred_at", "id", rng)
            expected.add_malformed(CRM_FORMAT)
        else:
            data = _dump(obj)
            expected.add_crm(event)
        at, key = event.occurred, event.user_id.encode()
        crm.append(RawRecord(SourceFamily.CRM, CRM_FORMAT, key, data, at, at))

    records = {SourceFamily.PBX: calls, SourceFamily.CHAT: chats, SourceFamily.CRM: crm}
    return Traffic(population=pop, records=records, expected=expected)
