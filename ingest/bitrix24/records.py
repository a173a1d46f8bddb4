"""The raw records the Bitrix24 bridge writes: what the portal answered, on one JSON line."""

from __future__ import annotations

import json
from typing import Any

from ingest.raw_producer import RawRecordOut
from salespulse.models import SourceFamily


def raw_record(
    family: SourceFamily, format_name: str, owner: object, document: Any
) -> RawRecordOut:
    """``document`` as compact UTF-8 JSON (one JSON Lines record), keyed by ``owner``, the
    Bitrix24 user whose work it is, so that one manager's records stay in order."""
    value = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    return RawRecordOut(family=family, format=format_name, key=_key(owner), value=value)


def _key(owner: object) -> bytes | None:
    # bool is an int subclass, and true is nobody; an empty id or null has no owner either.
    if isinstance(owner, str | int) and not isinstance(owner, bool):
        return str(owner).encode() or None
    return None
