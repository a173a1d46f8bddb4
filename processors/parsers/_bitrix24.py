"""Field types shared by the Bitrix24 parsers.

Bitrix24 is loose about JSON types: the same id is ``"5531"`` in one method's output and
``5531`` in another's, flags are ``"Y"``/``"N"``, and an unset date is ``""`` as often as
``null``. These types accept exactly those spellings and nothing wider, so the models can stay
strict about everything else (a list where an id belongs is still ``invalid``).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator, Field

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
