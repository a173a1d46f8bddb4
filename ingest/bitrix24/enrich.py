"""Turning a Bitrix24 outgoing event into the raw records the worker parses.

An outgoing event (``application/x-www-form-urlencoded``) names only what changed:
``event=ONCRMDEALUPDATE&data[FIELDS][ID]=5531&ts=1732605302&auth[application_token]=...``.
``enrich`` checks the token, fetches the entity over REST and wraps the portal's answer as
``{"event": ..., "ts": ..., "entity": "deal", "result": {...}}``: what the portal said about the
entity, plus which event made us ask. That envelope is the ``bitrix24-crm-rest`` format.

``enrich_event`` takes Open Lines events as well: each closed session an event names becomes the
session object itself (``bitrix24-openlines-session``), looked up as ``openlines`` explains.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qsl

from prometheus_client import Counter
from pydantic import SecretStr

from ingest.bitrix24.client import Bitrix24Client, Bitrix24NotFound, CrmEntity
from ingest.bitrix24.openlines import SessionRef, find_session, session_refs
from ingest.bitrix24.records import raw_record
from ingest.raw_producer import RawRecordOut
from ingest.receiver_auth import matches
from salespulse.errors import SourceError
from salespulse.models import SourceFamily

log = logging.getLogger(__name__)

FORMAT = "bitrix24-crm-rest"
SESSION_FORMAT = "bitrix24-openlines-session"
# Events naming Open Lines sessions, all with the same data[DATA][n][...] items. A session
# start names a session still open: nothing to count until it closes.
SESSION_EVENTS = frozenset({"ONSESSIONFINISH", "ONIMCONNECTORDIALOGFINISH", "ONSESSIONSTART"})
EVENTS: dict[str, CrmEntity] = {
    "ONCRMLEADADD": "lead",
    "ONCRMLEADUPDATE": "lead",
    "ONCRMDEALADD": "deal",
    "ONCRMDEALUPDATE": "deal",
    "ONCRMACTIVITYADD": "activity",
    "ONCRMACTIVITYUPDATE": "activity",
}
# Whose work the entity is: the Kafka key, so one manager's records stay in order.
RESPONSIBLE_FIELDS: dict[CrmEntity, str] = {
    "lead": "ASSIGNED_BY_ID",
    "deal": "ASSIGNED_BY_ID",
    "activity": "RESPONSIBLE_ID",
}

IGNORED = Counter(
    "salespulse_bitrix24_events_ignored_total",
    "Bitrix24 outgoing events (or the Open Lines sessions they name) not forwarded to Kafka, "
    "by reason (unknown_event, not_found, session_open, session_not_found).",
    ["reason"],
)

_ID = re.compile(r"[0-9]{1,18}", re.ASCII)
_MAX_FIELDS = 200


class WebhookRejected(SourceError):
    """An event body that must not be forwarded: ``malformed`` (answer 400) or ``forbidden``
    (wrong application token, answer 403)."""

    def __init__(self, reason: Literal["malformed", "forbidden"], detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class WebhookEvent:
    event: str
    entity_id: str
    ts: int
    application_token: str = ""
    # Every data[...] field, for events whose subject is not data[FIELDS][ID].
    data: Mapping[str, str] = field(default_factory=dict)


def parse_webhook(body: bytes) -> WebhookEvent:
    """The fields of an outgoing event body that enrichment needs."""
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(
            text, keep_blank_values=True, strict_parsing=True, max_num_fields=_MAX_FIELDS
        )
    except (UnicodeDecodeError, ValueError):
        raise WebhookRejected("malformed", "not a URL-encoded form") from None
    fields = dict(pairs)
    event = fields.get("event", "").strip().upper()
    if not event:
        raise WebhookRejected("malformed", "no event name")
    ts = fields.get("ts", "")
    if not _ID.fullmatch(ts):
        raise WebhookRejected("malformed", "ts is not a Unix time in seconds")
    return WebhookEvent(
        event=event,
        entity_id=fields.get("data[FIELDS][ID]", ""),
        ts=int(ts),
        application_token=fields.get("auth[application_token]", ""),
        data={key: value for key, value in fields.items() if key.startswith("data[")},
    )


def check_token(event: WebhookEvent, expected: SecretStr) -> None:
    # Constant-time, as every credential the receiver compares; and never a match for an empty
    # token, which an event without one would otherwise equal.
    if not matches(event.application_token, expected):
        raise WebhookRejected("forbidden", "auth[application_token] does not match")


async def enrich(event_body: bytes, client: Bitrix24Client) -> RawRecordOut | None:
    """The raw record for one outgoing CRM event, or None for an event that counts for nothing
    (not a CRM event we map, or an entity deleted before we could fetch it).

    Raises ``WebhookRejected`` for a body to refuse and ``Bitrix24Error`` when the portal could
    not be asked; the caller should then answer with an error so that Bitrix24 retries.
    """
    return await _crm_record(_authentic(event_body, client), client)


async def enrich_event(event_body: bytes, client: Bitrix24Client) -> list[RawRecordOut]:
    """The raw records for one outgoing event, CRM or Open Lines: empty for an event that counts
    for nothing. Raises as ``enrich`` does."""
    hook = _authentic(event_body, client)
    if hook.event in SESSION_EVENTS:
        return await _session_records(hook, client)
    record = await _crm_record(hook, client)
    return [] if record is None else [record]


def _authentic(event_body: bytes, client: Bitrix24Client) -> WebhookEvent:
    hook = parse_webhook(event_body)
    check_token(hook, client.settings.application_token)
    return hook


async def _crm_record(hook: WebhookEvent, client: Bitrix24Client) -> RawRecordOut | None:
    entity = EVENTS.get(hook.event)
    if entity is None:
        IGNORED.labels("unknown_event").inc()
        log.debug("Bitrix24 event %.64s ignored: not mapped", hook.event)
        return None
    if not _ID.fullmatch(hook.entity_id):
        raise WebhookRejected("malformed", "data[FIELDS][ID] is not a numeric id")
    try:
        # ts has one-second resolution: only a copy fetched after that second has ended is
        # sure to include the change, so a same-second copy is fetched again.
        result = await client.get_entity(entity, hook.entity_id, fetched_after=hook.ts + 1)
    except Bitrix24NotFound:
        IGNORED.labels("not_found").inc()
        log.info("Bitrix24 %s %s is gone; event ignored", entity, hook.entity_id)
        return None

    envelope = {"event": hook.event, "ts": hook.ts, "entity": entity, "result": result}
    return raw_record(SourceFamily.CRM, FORMAT, result.get(RESPONSIBLE_FIELDS[entity]), envelope)


async def _session_records(hook: WebhookEvent, client: Bitrix24Client) -> list[RawRecordOut]:
    try:
        refs = session_refs(hook.data)
    except ValueError as exc:
        raise WebhookRejected("malformed", str(exc)) from None
    if not refs:
        raise WebhookRejected("malformed", "no data[DATA] session")
    records = []
    for ref in refs:
        session = await _closed_session(hook, ref, client)
        if session is not None:
            operator = session.get("operatorId")  # the Kafka key: one operator's sessions in order
            records.append(raw_record(SourceFamily.CHAT, SESSION_FORMAT, operator, session))
    return records


async def _closed_session(
    hook: WebhookEvent, ref: SessionRef, client: Bitrix24Client
) -> dict[str, object] | None:
    """The session to forward, or None: still open by the event's word (a session start, or a
    finish waiting for the client's vote), or not among the sessions the portal listed."""
    if not ref.closed:
        IGNORED.labels("session_open").inc()
        log.debug("Bitrix24 session %s is not closed yet; %s ignored", ref.session_id, hook.event)
        return None
    session = await find_session(client, ref, hook.ts)
    if session is None:
        IGNORED.labels("session_not_found").inc()
        log.warning(
            "Bitrix24 session %s (%s) not listed by the portal; the session export must bring it",
            ref.session_id,
            hook.event,
        )
    return session


def receiver_transform(client: Bitrix24Client) -> Callable[[bytes], Awaitable[list[RawRecordOut]]]:
    """``enrich_event`` in the shape the HTTP receiver's ``transform`` hook takes: a list of
    records to write, empty for an ignored event."""

    async def transform(body: bytes) -> list[RawRecordOut]:
        return await enrich_event(body, client)

    return transform
