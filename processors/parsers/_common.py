"""Edge helpers shared by the parsers: decoding, time parsing and error summaries.

Everything here turns a failure into ``RecordError`` with a stable reason code, so that each
parser's ``parse()`` has exactly one exception type to let escape.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from processors.parsers.base import RecordError

DEFAULT_MAX_RECORD_BYTES = 65_536

_Model = TypeVar("_Model", bound=BaseModel)

# Pydantic reports these at the top level when the bytes are not one JSON object at all.
_STRUCTURE_ERRORS = frozenset({"json_invalid", "json_type", "model_type", "model_attributes_type"})

# RFC 3339 date-time. ASCII only: ``\d`` would otherwise admit other scripts' digits. The offset
# group is optional here so that a naive time is reported as such rather than as garbage.
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?P<offset>[Zz]|[+-]\d{2}:\d{2})?",
    re.ASCII,
)

# Runs that look like phone numbers (5+ digits, possibly split by spaces, dashes, dots or
# parentheses). Details go to logs and dead-letter headers, which must not hold them in clear.
_PHONEISH = re.compile(r"\+?\d[\d\s().\-]{3,}\d")
_SAMPLE_CHARS = 40


def check_size(record: bytes, max_record_bytes: int) -> None:
    if len(record) > max_record_bytes:
        raise RecordError("too_large", f"record is {len(record)} bytes, limit {max_record_bytes}")


def decode(record: bytes) -> str:
    try:
        return record.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError("decode_error", f"not UTF-8 at byte {exc.start}") from None


def redact(value: str) -> str:
    """A short, quotable sample of a bad value with phone-like digit runs masked."""

    def mask(match: re.Match[str]) -> str:
        text = match.group()
        return "<digits>" if sum(ch.isdigit() for ch in text) >= 5 else text

    sample = value[:_SAMPLE_CHARS] + ("..." if len(value) > _SAMPLE_CHARS else "")
    return repr(_PHONEISH.sub(mask, sample))


def parse_rfc3339(value: str, field: str) -> datetime:
    """An RFC 3339 date-time with a mandatory offset, as a UTC datetime."""
    match = _RFC3339.fullmatch(value)
    if match is None:
        raise RecordError("bad_time", f"{field}: {redact(value)} is not an RFC 3339 date-time")
    if match.group("offset") is None:
        raise RecordError("bad_time", f"{field}: time has no UTC offset, so it is ambiguous")
    try:
        # fromisoformat wants upper-case T and Z; RFC 3339 allows either case.
        return datetime.fromisoformat(value.upper()).astimezone(UTC)
    except (ValueError, OverflowError):
        # Out-of-range fields (month 13, offset +25:00) or a UTC result outside year 1..9999.
        raise RecordError("bad_time", f"{field}: {redact(value)} is out of range") from None


def load_object(model: type[_Model], record: bytes) -> _Model:
    """One JSON object validated straight from bytes by pydantic's JSON parser.

    Decoding is only attempted on failure: the JSON parser already rejects invalid UTF-8, and
    the extra pass is what tells a ``decode_error`` from ``malformed`` JSON.
    """
    try:
        return model.model_validate_json(record)
    except ValidationError as exc:
        errors = exc.errors()
        if errors and errors[0]["type"] in _STRUCTURE_ERRORS and not errors[0]["loc"]:
            decode(record)
            raise RecordError("malformed", summarize(exc)) from None
        raise RecordError("invalid", summarize(exc)) from None


def summarize(exc: ValidationError) -> str:
    """Field locations and messages only: pydantic's own text would echo the input values."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        location = ".".join(str(part) for part in error["loc"]) or "record"
        parts.append(f"{location}: {error['msg']}")
    return "; ".join(parts)
