"""Asterisk ``cdr_csv`` Master.csv lines: one CDR per line, in any of cdr_csv's column sets.

cdr_csv always writes the 16 default columns; ``cdr.conf`` ``[csv]`` options append more after
``amaflags``, in this order: ``uniqueid`` (``loguniqueid=yes``), ``userfield``
(``loguserfield=yes``), then ``peeraccount``, ``linkedid``, ``sequence`` (``newcdrcolumns=yes``,
Asterisk 11+). cdr_custom's sample ``Master.csv`` template is read too: 19 columns in an order of
its own, ``clid`` first. The ``columns`` argument names the set; ``auto`` recognises it per line.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from operator import itemgetter
from typing import ClassVar, NamedTuple, get_args

from processors.parsers._common import DEFAULT_MAX_RECORD_BYTES, INTERNAL_EXTENSION_PATTERN
from processors.parsers.asterisk_cdr_common import (
    DISPOSITIONS,
    AsteriskCdrParser,
    CdrFields,
    channel_endpoint,
    is_cdr_time,
)
from processors.parsers.base import RecordError
from salespulse.models import ActivityEvent, SourceRef
from salespulse.sections import AsteriskCdrColumns

__all__ = [
    "DISPOSITIONS",
    "FIELD_COUNT",
    "AsteriskCdrCsvParser",
    "channel_endpoint",
]

FIELD_COUNT = 16  # the default column set
_NEW_COLUMNS = ("peeraccount", "linkedid", "sequence")
_EXTRA_COLUMNS: dict[str, tuple[str, ...]] = {
    "default": (),
    "uniqueid": ("uniqueid",),
    "userfield": ("userfield",),
    "uniqueid+userfield": ("uniqueid", "userfield"),
    "new": _NEW_COLUMNS,
    "uniqueid+new": ("uniqueid", *_NEW_COLUMNS),
    "userfield+new": ("userfield", *_NEW_COLUMNS),
    "all": ("uniqueid", "userfield", *_NEW_COLUMNS),
}

# What an Asterisk uniqueid looks like: "<unix seconds>.<counter>", prefixed by "<systemname>-"
# when asterisk.conf sets systemname. Only "auto" uses it, to tell a 17th (or, with the new
# columns, a 17th of 20) field holding a uniqueid from one holding a userfield.
_UNIQUEID = re.compile(r"(?:[^\s\",]+-)?\d{9,}\.\d+", re.ASCII)
# A prebuilt dialect: passing keyword options builds a new one for every line. Strict, so that a
# stray quote is a malformed line rather than a silently merged field.
_CSV_DIALECT = csv.reader((), strict=True).dialect


# The columns the parser always reads, in CdrFields order.
_READ = ("src", "dst", "channel", "dstchannel", "start", "answer", "end", "duration", "billsec",
         "disposition")  # fmt: skip
_DEFAULT_COLUMNS = ("accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel",
                    "lastapp", "lastdata", "start", "answer", "end", "duration", "billsec",
                    "disposition", "amaflags")  # fmt: skip
# cdr_custom.conf.sample's Master.csv mapping, which cdr_custom writes to cdr-custom/Master.csv:
# every value CSV_QUOTEd (duration and billsec too) except the bare sequence.
_CUSTOM_COLUMNS = ("clid", "src", "dst", "dcontext", "channel", "dstchannel", "lastapp",
                   "lastdata", "start", "answer", "end", "duration", "billsec", "disposition",
                   "amaflags", "accountcode", "uniqueid", "userfield", "sequence")  # fmt: skip


class _Layout(NamedTuple):
    """Where a column set keeps the fields the parser reads (None: an optional one is absent)."""

    name: str
    width: int
    read: Callable[[list[str]], tuple[str, ...]]  # the _READ fields of a line
    uniqueid: int | None
    linkedid: int | None
    sequence: int | None


def _layout(name: str, columns: tuple[str, ...]) -> _Layout:
    def index(column: str) -> int | None:
        return columns.index(column) if column in columns else None

    read = itemgetter(*(columns.index(column) for column in _READ))
    return _Layout(
        name, len(columns), read, index("uniqueid"), index("linkedid"), index("sequence")
    )


_LAYOUTS = {name: _layout(name, _DEFAULT_COLUMNS + extra) for name, extra in _EXTRA_COLUMNS.items()}
_LAYOUTS["custom"] = _layout("custom", _CUSTOM_COLUMNS)
# Field counts that name exactly one column set; 17 and 20 depend on what the 17th field holds,
# 19 on where the times are.
_BY_WIDTH = {16: "default", 18: "uniqueid+userfield", 21: "all"}
_BY_WIDTH_17TH = {17: ("uniqueid", "userfield"), 20: ("uniqueid+new", "userfield+new")}
_NINETEEN = 19
# The columns that tell the two 19-field sets apart: newcdrcolumns' end, cdr_custom's start.
_NEW_END = _DEFAULT_COLUMNS.index("end")
_CUSTOM_START = _CUSTOM_COLUMNS.index("start")


class AsteriskCdrCsvParser(AsteriskCdrParser):
    format_name: ClassVar[str] = "asterisk-cdr-csv"

    def __init__(
        self,
        timezone: str = "UTC",
        internal_extension_pattern: str = INTERNAL_EXTENSION_PATTERN,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        columns: AsteriskCdrColumns = "default",
        encoding: str = "utf-8",
    ) -> None:
        if columns not in get_args(AsteriskCdrColumns):
            raise ValueError(f"unknown cdr_csv column set {columns!r}")
        super().__init__(timezone, internal_extension_pattern, max_record_bytes, encoding)
        self._layout = None if columns == "auto" else _LAYOUTS[columns]

    def parse_record(self, record: bytes, source: SourceRef) -> list[ActivityEvent]:
        text, valid = self._text(record)
        try:
            rows = list(csv.reader((text,), _CSV_DIALECT))
        except csv.Error as exc:
            raise RecordError("malformed", f"CSV syntax: {exc}") from None
        fields = rows[0] if len(rows) == 1 else []
        layout = self._layout or _detect(fields)
        if layout is None:
            raise RecordError(
                "malformed", f"{len(fields)} fields match no cdr_csv column set (16 to 21)"
            )
        if len(fields) != layout.width:
            raise RecordError(
                "malformed",
                f"expected {layout.width} fields ({layout.name} columns), got {len(fields)}",
            )
        if layout.width == _NINETEEN and self._layout is not None:
            _check_nineteen(fields, layout)
        optional = (
            None if layout.uniqueid is None else fields[layout.uniqueid],
            None if layout.linkedid is None else fields[layout.linkedid],
            None if layout.sequence is None else fields[layout.sequence],
            # dcontext is the fourth field of every column set, cdr_custom's template included.
            fields[3],
        )
        cdr = CdrFields._make(layout.read(fields) + optional)
        return self._events(cdr, valid, source)


def _detect(fields: list[str]) -> _Layout | None:
    """The column set of one line by its field count, and by the 17th field or the place of the
    times where the count is not enough; None when no column set has this many fields."""
    if len(fields) == _NINETEEN:
        return _nineteen(fields)
    name = _BY_WIDTH.get(len(fields))
    if name is None:
        pair = _BY_WIDTH_17TH.get(len(fields))
        if pair is None:
            return None
        name = pair[0] if _UNIQUEID.fullmatch(fields[FIELD_COUNT]) else pair[1]
    return _LAYOUTS[name]


def _nineteen(fields: list[str]) -> _Layout:
    """newcdrcolumns or the cdr_custom template: a time where newcdrcolumns writes ``end`` (and
    the template a duration) is newcdrcolumns; else a time where the template writes ``start``
    is the template. Neither: newcdrcolumns, whose own checks then say what is wrong."""
    if is_cdr_time(fields[_NEW_END]) or not is_cdr_time(fields[_CUSTOM_START]):
        return _LAYOUTS["new"]
    return _LAYOUTS["custom"]


def _check_nineteen(fields: list[str], configured: _Layout) -> None:
    """Refuse a 19-field line of the other 19-field set than the one configured, by name: read
    in the wrong order its fields give only a puzzling bad_time."""
    found = _nineteen(fields)
    if found is not configured:
        raise RecordError(
            "malformed",
            f"the line has the {found.name} column set, not the configured {configured.name}",
        )
