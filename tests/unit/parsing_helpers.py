"""Helpers the parser tests share: sample files and records, times, and the errors records raise."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from processors.parsers.base import Parser, RecordError
from salespulse.models import ActivityEvent, ActivityKind, Actor, Direction, SourceFamily, SourceRef

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "samples"

# A client calls the trunk and extension 101 answers: a cdr_csv line in the default column set.
ASTERISK_INCOMING_CSV = (
    b'"","79161234567","101","from-trunk","""Client"" <79161234567>","SIP/provider-00000012",'
    b'"SIP/101-00000013","Dial","SIP/101,30","2026-11-26 09:15:02","2026-11-26 09:15:09",'
    b'"2026-11-26 09:17:40",158,151,"ANSWERED","DOCUMENTATION"'
)


def asterisk_incoming_event(
    *,
    event_id: str,
    source: SourceRef,
    occurred_at: datetime,
    ended_at: datetime,
    call_id: str | None = None,
) -> ActivityEvent:
    """The one event of ``ASTERISK_INCOMING_CSV``, however delivered: 101 took the client's call
    (158 s, 151 s of talk). Its id, times (by the PBX's zone) and call id depend on the reading."""
    return ActivityEvent(
        event_id=event_id,
        kind=ActivityKind.CALL,
        action="leg",
        occurred_at=occurred_at,
        ended_at=ended_at,
        actor=Actor(SourceFamily.PBX, "101"),
        source=source,
        direction=Direction.INCOMING,
        answered=True,
        duration_seconds=158,
        talk_seconds=151,
        counterpart="79161234567",
        call_id=call_id,
    )


def source_of(parser: type[Parser], partition: int = 0, offset: int = 0) -> SourceRef:
    """Where a record of ``parser``'s format comes from: the raw topic of its family."""
    return SourceRef(parser.format_name, f"salespulse.raw.{parser.family}", partition, offset)


def json_sample(relative: str) -> Any:
    """A JSON file under tests/samples."""
    return json.loads((SAMPLES_DIR / relative).read_text(encoding="utf-8"))


def compact(value: Any) -> bytes:
    """One line of JSON, as the sources write it: no spaces, non-ASCII as UTF-8."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def changed(fields: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of ``fields`` with some replaced; a value of ``...`` removes the field."""
    result = dict(fields)
    for name, value in changes.items():
        if value is ...:
            result.pop(name, None)
        else:
            result[name] = value
    return result


def changed_record(record: bytes, **changes: Any) -> bytes:
    """A JSON object record with fields replaced as ``changed`` does."""
    return json.dumps(changed(json.loads(record), **changes)).encode()


def utc(text: str) -> datetime:
    """An ISO date-time without an offset, read as UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def record_error(parse: Callable[..., object], *args: Any, **kwargs: Any) -> RecordError:
    """The ``RecordError`` that ``parse(*args, **kwargs)`` raises; the test fails if none."""
    with pytest.raises(RecordError) as caught:
        parse(*args, **kwargs)
    return caught.value
