"""Asterisk ``cdr_csv`` Master.csv lines: one CDR per line, in any of cdr_csv's column sets.

cdr_csv always writes the 16 default columns; ``cdr.conf`` ``[csv]`` options append more after
``amaflags``, in this order: ``uniqueid`` (``loguniqueid=yes``), ``userfield``
(``loguserfield=yes``), then ``peeraccount``, ``linkedid``, ``sequence`` (``newcdrcolumns=yes``,
Asterisk 11+). The ``columns`` argument names the set; ``auto`` recognises it per line.
"""

from __future__ import annotations

import csv
import re
from typing import ClassVar, NamedTuple, get_args

from processors.parsers._common import DEFAULT_MAX_RECORD_BYTES, INTERNAL_EXTENSION_PATTERN, decode
from processors.parsers.asterisk_cdr_common import (
    DISPOSITIONS,
    AsteriskCdrParser,
    CdrFields,
    channel_endpoint,
)
from processors.parsers.base import RecordError
from salespulse.models import ActivityEvent, SourceRef
from salespulse.settings import AsteriskCdrColumns

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


class _Layout(NamedTuple):
    """Where a column set keeps the optional fields the parser reads (None: not present)."""

    name: str
    width: int
    uniqueid: int | None
    linkedid: int | None
    sequence: int | None


def _layout(name: str) -> _Layout:
    columns = _EXTRA_COLUMNS[name]

    def index(column: str) -> int | None:
        return FIELD_COUNT + columns.index(column) if column in columns else None

    return _Layout(
        name, FIELD_COUNT + len(columns), index("uniqueid"), index("linkedid"), index("sequence")
    )


_LAYOUTS = {name: _layout(name) for name in _EXTRA_COLUMNS}
# Field counts that name exactly one column set; 17 and 20 depend on what the 17th field holds.
_BY_WIDTH = {16: "default", 18: "uniqueid+userfield", 19: "new", 21: "all"}
_BY_WIDTH_17TH = {17: ("uniqueid", "userfield"), 20: ("uniqueid+new", "userfield+new")}


class AsteriskCdrCsvParser(AsteriskCdrParser):
    format_name: ClassVar[str] = "asterisk-cdr-csv"

    def __init__(
        self,
        timezone: str = "UTC",
        internal_extension_pattern: str = INTERNAL_EXTENSION_PATTERN,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        columns: AsteriskCdrColumns = "default",
    ) -> None:
        if columns not in get_args(AsteriskCdrColumns):
            raise ValueError(f"unknown cdr_csv column set {columns!r}")
        super().__init__(timezone, internal_extension_pattern, max_record_bytes)
        self._layout = None if columns == "auto" else _LAYOUTS[columns]

    def parse_record(self, record: bytes, source: SourceRef) -> list[ActivityEvent]:
        text = decode(record)
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
        cdr = CdrFields(
            src=fields[1],
            dst=fields[2],
            channel=fields[5],
            dstchannel=fields[6],
            start=fields[9],
            answer=fields[10],
            end=fields[11],
            duration=fields[12],
            billsec=fields[13],
            disposition=fields[14],
            uniqueid=None if layout.uniqueid is None else fields[layout.uniqueid],
            linkedid=None if layout.linkedid is None else fields[layout.linkedid],
            sequence=None if layout.sequence is None else fields[layout.sequence],
            dcontext=fields[3],
        )
        return self._cdr.events(cdr, source)


def _detect(fields: list[str]) -> _Layout | None:
    """The column set of one line by its field count, and by the 17th field where the count is
    not enough; None when no column set has this many fields."""
    name = _BY_WIDTH.get(len(fields))
    if name is None:
        pair = _BY_WIDTH_17TH.get(len(fields))
        if pair is None:
            return None
        name = pair[0] if _UNIQUEID.fullmatch(fields[FIELD_COUNT]) else pair[1]
    return _LAYOUTS[name]
