"""What the Bitrix24 parsers share: framing, the events that carry ids only, field types.

**Framing.** Bitrix24 data reaches salespulse as the bridges write it (one compact JSON object
per line, or one form body), but also as people save it: a REST answer as the portal returned it
(``{"result": [...], "total": 2, "time": {...}}``, often pretty-printed), an event body copied
from a log. Every Bitrix24 format frames a payload the same way (``split_records``): a payload
that opens with ``{`` is read as JSON documents whatever their line breaks, any other one line by
line; and a document that is a REST answer stands for the rows of its ``result`` (a list of
rows, or one object), each row framed as the bytes the document holds it in.

**Field types.** Bitrix24 is loose about JSON types: the same id is ``"5531"`` in one method's
output and ``5531`` in another's, flags are ``"Y"``/``"N"``, and an unset date is ``""`` as often
as ``null``. These types accept exactly those spellings and nothing wider, so the models can stay
strict about everything else (a list where an id belongs is still ``invalid``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Annotated, NamedTuple
from urllib.parse import parse_qs

from pydantic import BeforeValidator, Field

from processors.parsers.base import IDS_ONLY, RecordError, split_json_documents, split_lines

# The keys of a REST answer (``next`` and ``total`` of a list method, ``time`` of every answer).
_REST_KEYS = frozenset({"result", "next", "total", "time"})
# The members that may stand beside the list of rows in a ``result`` object.
_PAGING_KEYS = frozenset({"hasNextPage", "next", "total"})
# A document whose first key is one of them, as the portal writes it (``{"result": ...``) or as
# a tool that sorts keys does: only such a document is read through to tell if it is an answer,
# so a row or an envelope (``{"event": ...``) costs one match.
_REST_START = re.compile(rb'[ \t\r\n]*\{[ \t\r\n]*"(?:result|next|total|time)"')
_JSON_START = re.compile(rb"[ \t\r\n]*\{")
_SPACE = re.compile(r"[ \t\r\n]*")
_DECODER = json.JSONDecoder()
_MAX_FORM_FIELDS = 200


def split_records(payload: bytes) -> list[bytes]:
    """The records of a payload of any Bitrix24 format (see the module's docstring)."""
    if _JSON_START.match(payload) is None:
        return split_lines(payload)  # form bodies, or lines that are no JSON: dead letters
    records: list[bytes] = []
    for document in split_json_documents(payload):
        rows = rest_rows(document) if _REST_START.match(document) else None
        if rows is None:
            records.append(document)
        else:
            records += rows
    return records


def rest_rows(document: bytes) -> list[bytes] | None:
    """The rows of a REST answer's ``result`` as the document holds them, or None for a
    document that is no REST answer (or no JSON: the record then says what is wrong with it).
    A ``result`` that is neither a list nor an object (``true``) is no rows either."""
    try:
        text = document.decode("utf-8")
        start = _skip(text, 0)
        if text[start : start + 1] != "{":
            return None
        members = _items(text, start)
        if {key for key, _, _ in members} - _REST_KEYS or not members:
            return None
        spans = [(begin, end) for key, begin, end in members if key == "result"]
        if not spans:
            return None
        begin, end = spans[-1]  # of a repeated key the last counts, as in any JSON reader
        if text[begin] == "{":
            listed = _listed_rows(text, begin)
            if listed is None:
                return [text[begin:end].encode()]
            begin = listed
        if text[begin] == "[":
            return [text[first:last].encode() for _, first, last in _items(text, begin)]
    except (ValueError, RecursionError):
        pass
    return None


def _listed_rows(text: str, start: int) -> int | None:
    """Where the rows start in a ``result`` object that only wraps them with paging
    (``{"sessions": [...], "hasNextPage": false}``, the shape of imopenlines.v2's lists), or
    None for a result object that is itself the row (a deal of ``crm.deal.get``)."""
    members = _items(text, start)
    lists = [begin for _, begin, _ in members if text[begin] == "["]
    others = {key for key, begin, _ in members if text[begin] != "["}
    return lists[0] if len(lists) == 1 and others <= _PAGING_KEYS else None


def _skip(text: str, at: int) -> int:
    match = _SPACE.match(text, at)
    return at if match is None else match.end()


def _items(text: str, start: int) -> list[tuple[str | None, int, int]]:
    """The members of the object, or the elements of the array, that opens at ``start``: each
    one's key (None in an array) and where its value starts and ends. ValueError if the text
    there is not a JSON object or array."""
    is_object = text[start] == "{"
    close = "}" if is_object else "]"
    items: list[tuple[str | None, int, int]] = []
    at = _skip(text, start + 1)
    if text[at : at + 1] == close:
        return items
    while True:
        key = None
        if is_object:
            key, at = _DECODER.raw_decode(text, at)
            at = _skip(text, at)
            if not isinstance(key, str) or text[at : at + 1] != ":":
                raise ValueError("not an object member")
            at = _skip(text, at + 1)
        _, end = _DECODER.raw_decode(text, at)
        items.append((key, at, end))
        at = _skip(text, end)
        if text[at : at + 1] == close:
            return items
        if text[at : at + 1] != ",":
            raise ValueError("no comma between values")
        at = _skip(text, at + 1)


class FetchedSubject(NamedTuple):
    """What an outgoing event names by id only, and the REST methods that export it whole."""

    subject: str  # "deal", "Open Lines session"
    export: str  # "crm.deal.get or crm.deal.list"


def ids_only(record: bytes, events: Mapping[str, FetchedSubject]) -> RecordError | None:
    """The dead letter of an outgoing event body (JSON as Bitrix24 documents it, or the form it
    posts) whose event is one of ``events``, else None. Such an event names its subject by id
    only; the receiver fetches the subject and sends that on, so a copy of the event itself,
    in a file say, cannot be counted."""
    name = _event_name(record)
    fetched = None if name is None else events.get(name.upper())
    if name is None or fetched is None:
        return None
    return RecordError(
        IDS_ONLY,
        f"{name.upper()} carries only the {fetched.subject}'s id: it is counted when it comes "
        f"through the receiver (salespulse receive), which fetches the {fetched.subject}; "
        f"from a file, import a REST export of the {fetched.subject} instead ({fetched.export})",
    )


def _event_name(record: bytes) -> str | None:
    """The name of the outgoing event a record is the body of (it has ``data`` and no REST
    ``result``), else None."""
    try:
        text = record.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if text.lstrip()[:1] == "{":
        try:
            document = json.loads(text)
        except (ValueError, RecursionError):
            return None
        if not isinstance(document, dict) or "data" not in document or "result" in document:
            return None
        name = document.get("event")
    else:
        try:
            form = parse_qs(text, strict_parsing=True, max_num_fields=_MAX_FORM_FIELDS)
        except ValueError:
            return None
        if not any(key.startswith("data[") for key in form):
            return None
        name = form.get("event", [None])[-1]
    return name if isinstance(name, str) else None


class Bitrix24Framing:
    """``split`` of every Bitrix24 format: ``split_records``."""

    def split(self, payload: bytes) -> list[bytes]:
        return split_records(payload)


_DIGITS = re.compile(r"[0-9]{1,18}", re.ASCII)


def _id_text(value: object) -> object:
    # bool is an int subclass; true is not an id.
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    return value


def _small_int(value: object) -> object:
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    return value


def _flag(value: object) -> object:
    if value in ("Y", "N"):
        return value == "Y"
    return value


def _empty_is_none(value: object) -> object:
    return None if value == "" else value


BxId = Annotated[str, BeforeValidator(_id_text), Field(pattern=r"^[0-9]{1,18}$")]
"""A Bitrix24 numeric id, as a JSON string or non-negative integer; kept as its digits."""

BxInt = Annotated[int, BeforeValidator(_small_int), Field(ge=0, le=10**9)]
"""A non-negative count or code, as a JSON integer or a string of ASCII digits."""

BxFlag = Annotated[bool, BeforeValidator(_flag)]
"""``"Y"``/``"N"``, or a JSON boolean."""

BxOptionalId = Annotated[BxId | None, BeforeValidator(_empty_is_none)]
BxOptionalText = Annotated[
    Annotated[str, Field(max_length=1024)] | None, BeforeValidator(_empty_is_none)
]
BxOptionalTime = Annotated[
    Annotated[str, Field(max_length=64)] | None, BeforeValidator(_empty_is_none)
]
"""A date-time kept as text (read later by ``parse_rfc3339``); ``""`` means unset."""


def meaningful_id(value: str | None) -> str | None:
    """Bitrix24 writes 0 for "nobody" / "none" in id fields."""
    return None if value is None or value.strip("0") == "" else value
