"""Open Lines events looked up over REST as the sessions ``bitrix24-openlines-session`` reads.

``ONSESSIONFINISH`` (and ``ONIMCONNECTORDIALOGFINISH``, its twin for a connector's application)
names sessions by id only, one ``DATA`` item each::

    data[DATA][0][connector][line_id]=128&data[DATA][0][session][id]=42
    &data[DATA][0][session][closed]=Y&...

No operator, no times. Bitrix24 documents no method that reads one session by id with those:
``imopenlines.session.history.get`` and ``imopenlines.dialog.get`` return a chat's messages and
settings, not the session's operator, status or closing time. ``imopenlines.v2.Session.list``
returns every field the parser reads (camelCase), but filters by line and by closing time, not
by id. So a session is looked for among those its line closed in a window ending just after the
event was sent, newest first; each closed session of the answer is cached, so the other events
of a busy line are answered without asking again.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ingest.bitrix24.client import Bitrix24Client, Bitrix24Error

log = logging.getLogger(__name__)

SESSION_LIST = "imopenlines.v2.Session.list"
PAGE_SIZE = 200  # the method's largest page
# A closed session never changes what the parser reads again; one still open might.
FINAL_STATUSES = frozenset({"closed", "spam"})
# The event is queued when the session closes and sent (ts) later, by the same portal clock;
# the slack covers a closing time stored after the event was queued, in a later second.
CLOSE_SLACK_SECONDS = 60

_ID = re.compile(r"[0-9]{1,18}", re.ASCII)
_ITEM_FIELD = re.compile(r"data\[DATA\]\[([0-9]{1,4})\]\[(session|connector)\]\[([a-z_]{1,32})\]")


@dataclass(frozen=True)
class SessionRef:
    """One ``DATA`` item of an event: which session, whether the event says it is closed, and
    on which line (the ``configId`` to list)."""

    session_id: str
    closed: bool
    line_id: str | None


def session_refs(data: Mapping[str, str]) -> list[SessionRef]:
    """The sessions an event's ``data[...]`` fields name, in ``DATA`` order.

    Raises ``ValueError`` when an item has no numeric session id: nothing could be looked up.
    """
    items: dict[int, dict[str, str]] = {}
    for key, value in data.items():
        match = _ITEM_FIELD.fullmatch(key)
        if match is not None:
            index, part, name = match.groups()
            items.setdefault(int(index), {})[f"{part}.{name}"] = value
    return [_ref(item) for _, item in sorted(items.items())]


def _ref(item: Mapping[str, str]) -> SessionRef:
    session_id = item.get("session.id", "")
    if _ID.fullmatch(session_id) is None:
        raise ValueError("data[DATA][n][session][id] is not a numeric id")
    line = item.get("connector.line_id", "")
    return SessionRef(
        session_id=session_id,
        closed=item.get("session.closed", "").upper() == "Y",
        line_id=line if _ID.fullmatch(line) else None,
    )


async def find_session(
    client: Bitrix24Client, ref: SessionRef, sent_at: int
) -> dict[str, Any] | None:
    """The session ``ref`` names as ``imopenlines.v2.Session.list`` returns it, or None when
    the sessions closed in the window before ``sent_at`` (the event's ``ts``) do not include it.
    """
    cached = client.cached(SESSION_LIST, ref.session_id)
    if cached is not None:
        return cached
    window = _window(ref, sent_at, client.settings.openlines_lookback_seconds)
    for page in range(client.settings.openlines_max_pages):
        sessions, more = await _page(client, window, page)
        found = None
        for session in sessions:
            _remember_if_final(client, session)
            if _id_of(session) == ref.session_id:
                found = session
        if found is not None or not more:
            return found
    log.warning(
        "Bitrix24 session %s: not in the first %d pages of its line's closed sessions",
        ref.session_id,
        client.settings.openlines_max_pages,
    )
    return None


def _window(ref: SessionRef, sent_at: int, lookback: float) -> dict[str, str]:
    # Newest closing first: the session closed just before its event was sent, so it is at the
    # top of the first page unless the event waited long in the portal's queue.
    params = {
        "dateCloseFrom": _iso(sent_at - lookback),
        "dateCloseTo": _iso(sent_at + CLOSE_SLACK_SECONDS),
        "order": "dateClose",
        "orderDirection": "desc",
        "limit": str(PAGE_SIZE),
    }
    if ref.line_id is not None:
        params["configId"] = ref.line_id
    return params


async def _page(
    client: Bitrix24Client, window: Mapping[str, str], page: int
) -> tuple[list[dict[str, Any]], bool]:
    result = await client.call(SESSION_LIST, {**window, "offset": str(page * PAGE_SIZE)})
    sessions = result.get("sessions") if isinstance(result, dict) else None
    if not isinstance(sessions, list) or not all(isinstance(s, dict) for s in sessions):
        raise Bitrix24Error(SESSION_LIST, "unexpected_result", "no list of sessions")
    return sessions, result.get("hasNextPage") is True


def _remember_if_final(client: Bitrix24Client, session: dict[str, Any]) -> None:
    session_id = _id_of(session)
    if session_id is not None and session.get("status") in FINAL_STATUSES:
        client.remember(SESSION_LIST, session_id, session)


def _id_of(session: Mapping[str, Any]) -> str | None:
    value = session.get("id")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) and _ID.fullmatch(value) else None


def _iso(unix_seconds: float) -> str:
    return datetime.fromtimestamp(int(unix_seconds), UTC).isoformat()
