"""What the parsers share: the record-parser skeleton, decoding, time parsing, error summaries.

Everything here turns a failure into ``RecordError`` with a stable reason code, so that each
parser's ``parse()`` has exactly one exception type to let escape.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import ClassVar, Generic, TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, ValidationError

from processors.parsers.base import RecordError, split_lines
from processors.privacy import mask_numbers
from salespulse.models import ActivityEvent, SourceFamily, SourceRef

DEFAULT_MAX_RECORD_BYTES = 65_536
INTERNAL_EXTENSION_PATTERN = r"^\d{2,6}$"

_Model = TypeVar("_Model", bound=BaseModel)

# Pydantic reports these at the top level when the bytes are not one JSON object at all.
_STRUCTURE_ERRORS = frozenset({"json_invalid", "json_type", "model_type", "model_attributes_type"})

# RFC 3339 date-time. ASCII only: ``\d`` would otherwise admit other scripts' digits. The offset
# group is optional here so that a naive time is reported as such rather than as garbage.
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?P<offset>[Zz]|[+-]\d{2}:\d{2})?",
    re.ASCII,
)

_SAMPLE_CHARS = 40
_KNOWN_CANDIDATES = 4096
_SECOND = timedelta(seconds=1)
# What surrogateescape makes of bytes that do not decode; valid text of any codec never holds
# lone surrogates.
_UNDECODED = re.compile("[\udc80-\udcff]")


class RecordModel(BaseModel):
    """The fields of a record as its source sends them: unknown ones are ignored, known ones are
    strict (a number where a string belongs is a producer bug, not something to coerce)."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


def check_size(record: bytes, max_record_bytes: int) -> None:
    if len(record) > max_record_bytes:
        raise RecordError("too_large", f"record is {len(record)} bytes, limit {max_record_bytes}")


def decode(record: bytes) -> str:
    try:
        return record.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError("decode_error", f"not UTF-8 at byte {exc.start}") from None


def decode_leniently(record: bytes, encoding: str) -> tuple[str, bool]:
    """The record's text, and whether all of it was valid ``encoding``.

    For formats whose fields are told apart by ASCII separators, so that bytes a field does not
    decode cannot disturb the others: a caller name written in another encoding must not cost
    the CDR it sits in. Invalid bytes become lone surrogates (``surrogateescape``), which
    ``check_decoded`` then refuses in the fields a parser reads. Valid text, the usual case, is
    decoded once and never searched.
    """
    try:
        return record.decode(encoding), True
    except UnicodeDecodeError:
        return record.decode(encoding, "surrogateescape"), False


def check_decoded(names: Sequence[str | None], values: Sequence[str | None], encoding: str) -> None:
    """``decode_error`` naming the first field that is not valid ``encoding``, of ``values``
    read from a ``decode_leniently`` text that was not all valid. A value whose name is None is
    not read by the parser, so any bytes will do there."""
    read = [(name, value) for name, value in zip(names, values, strict=True) if name and value]
    # One search over all of them: most such records have their bad bytes in fields not read.
    if _UNDECODED.search("".join(value for _, value in read)) is None:
        return
    for name, value in read:
        if _UNDECODED.search(value):
            raise RecordError("decode_error", f"{name}: not {encoding.upper()}")


def redact(value: str) -> str:
    """A short, quotable sample of a bad value with phone-like digit runs masked."""
    sample = value[:_SAMPLE_CHARS] + ("..." if len(value) > _SAMPLE_CHARS else "")
    return repr(mask_numbers(sample))


def _rfc3339_as_written(value: str, field: str) -> datetime:
    """An RFC 3339 date-time with a mandatory offset, in that offset."""
    match = _RFC3339.fullmatch(value)
    if match is None:
        raise RecordError("bad_time", f"{field}: {redact(value)} is not an RFC 3339 date-time")
    if match.group("offset") is None:
        raise RecordError("bad_time", f"{field}: time has no UTC offset, so it is ambiguous")
    try:
        # fromisoformat wants upper-case T and Z; RFC 3339 allows either case.
        return datetime.fromisoformat(value.upper())
    except ValueError:
        # Out-of-range fields (month 13, offset +25:00).
        raise RecordError("bad_time", f"{field}: {redact(value)} is out of range") from None


def parse_rfc3339(value: str, field: str) -> datetime:
    """An RFC 3339 date-time with a mandatory offset, as a UTC datetime."""
    written = _rfc3339_as_written(value, field)
    try:
        return written.astimezone(UTC)
    except OverflowError:  # a UTC result outside year 1..9999
        raise RecordError("bad_time", f"{field}: {redact(value)} is out of range") from None


def optional_time(value: str | None, field: str) -> datetime | None:
    return None if value is None else parse_rfc3339(value, field)


def optional_deadline(value: str | None, field: str) -> datetime | None:
    """A deadline as UTC, or None for none. ``9999-12-31T23:59:59-05:00`` and
    ``0001-01-01T00:00:00+03:00`` are CRMs' ways of writing "no deadline" that fall off the
    calendar in UTC; the pipeline treats the sentinels that stay on it (``1900-01-01``, the
    epoch) the same way (``salespulse.column_limits.is_no_deadline``)."""
    if value is None:
        return None
    written = _rfc3339_as_written(value, field)
    try:
        return written.astimezone(UTC)
    except OverflowError:
        return None


def seconds_between(start: datetime, end: datetime, start_field: str, end_field: str) -> int:
    """Whole seconds from ``start`` to ``end``, which must not come first."""
    seconds = int((end - start) // _SECOND)
    if seconds < 0:
        raise RecordError("invalid", f"{end_field} is before {start_field}")
    return seconds


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


class RecordParser(ABC):
    """The shape most parsers share: one record per line, and a size limit checked before a
    record is read at all. A subclass names its format and family and reads the record."""

    format_name: ClassVar[str]
    family: ClassVar[SourceFamily]

    def __init__(self, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> None:
        self._max_record_bytes = max_record_bytes

    def split(self, payload: bytes) -> list[bytes]:
        return split_lines(payload)

    def parse(self, record: bytes, source: SourceRef) -> list[ActivityEvent]:
        check_size(record, self._max_record_bytes)
        return self.parse_record(record, source)

    @abstractmethod
    def parse_record(self, record: bytes, source: SourceRef) -> list[ActivityEvent]:
        """``parse()`` of a record within the size limit."""


class JsonRecordParser(RecordParser, Generic[_Model]):
    """A record that is one JSON object, validated as ``model`` (see ``load_object``)."""

    model: type[_Model]

    def parse_record(self, record: bytes, source: SourceRef) -> list[ActivityEvent]:
        return self.parse_object(load_object(self.model, record), source)

    @abstractmethod
    def parse_object(self, obj: _Model, source: SourceRef) -> list[ActivityEvent]:
        """The events of a record that validated."""


class Extensions:
    """Which identities are managers' extensions: ``internal_extension_pattern`` matches them."""

    def __init__(self, pattern: str) -> None:
        self._pattern = re.compile(pattern)
        # The answer per recently seen candidate: a PBX has few extensions and trunks.
        self._known: dict[str, bool] = {}

    def first(self, *candidates: str | None) -> str | None:
        """The first candidate that is an internal extension, in order of trust."""
        known = self._known
        for candidate in candidates:
            if not candidate:
                continue
            internal = known.get(candidate)
            if internal is None:
                internal = self._pattern.search(candidate) is not None
                if len(known) >= _KNOWN_CANDIDATES:
                    known.clear()
                known[candidate] = internal
            if internal:
                return candidate
        return None


class PbxRecordParser(RecordParser):
    """A PBX's CDRs: wall-clock times in the PBX host's zone, and managers told from trunks and
    customers by their extensions."""

    family: ClassVar[SourceFamily] = SourceFamily.PBX

    def __init__(
        self,
        timezone: str = "UTC",
        internal_extension_pattern: str = INTERNAL_EXTENSION_PATTERN,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    ) -> None:
        """``timezone``: the PBX host's zone, in which its CDRs write their times."""
        super().__init__(max_record_bytes)
        # The built-in UTC skips zoneinfo's transition lookup for the common all-UTC case.
        self._zone: tzinfo = UTC if timezone == "UTC" else ZoneInfo(timezone)
        self._extensions = Extensions(internal_extension_pattern)
