"""Turning a Bitrix24 outgoing CRM event into the raw record the worker parses.

An outgoing event (``application/x-www-form-urlencoded``) names only what changed:
``event=ONCRMDEALUPDATE&data[FIELDS][ID]=5531&ts=1732605302&auth[application_token]=...``.
``enrich`` checks the token, fetches the entity over REST and wraps the portal's answer as
``{"event": ..., "ts": ..., "entity": "deal", "result": {...}}``: what the portal said about the
entity, plus which event made us ask. That envelope is the ``bitrix24-crm-rest`` format.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl

from prometheus_client import Counter
from pydantic import SecretStr

from ingest.bitrix24.client import Bitrix24Client, Bitrix24NotFound, CrmEntity
from ingest.raw_producer import RawRecordOut
from ingest.receiver_auth import matches
from salespulse.models import SourceFamily

log = logging.getLogger(__name__)

FORMAT = "bitrix24-crm-rest"
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
    "Bitrix24 outgoing events not forwarded to Kafka, by reason (unknown_event, not_found).",
    ["reason"],
)

_ID = re.compile(r"[0-9]{1,18}", re.ASCII)
_MAX_FIELDS = 200


class WebhookRejected(Exception):
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
    )


def check_token(event: WebhookEvent, expected: SecretStr) -> None:
    # Constant-time, as every credential the receiver compares; and never a match for an empty
    # token, which an event without one would otherwise equal.
    if not matches(event.application_token, expected):
        raise WebhookRejected("forbidden", "auth[application_token] does not match")


async def enrich(event_body: bytes, client: Bitrix24Client) -> RawRecordOut | None:
    """The raw record for one outgoing event, or None for an event that counts for nothing
    (not a CRM event we map, or an entity deleted before we could fetch it).

    Raises ``WebhookRejected`` for a body to refuse and ``Bitrix24Error`` when the portal could
    not be asked; the caller should then answer with an error so that Bitrix24 retries.
    """
    hook = parse_webhook(event_body)
    check_token(hook, client.settings.application_token)
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

    responsible = result.get(RESPONSIBLE_FIELDS[entity])
    key = None
    if isinstance(responsible, str | int) and not isinstance(responsible, bool):
        key = str(responsible).encode() or None
    envelope = {"event": hook.event, "ts": hook.ts, "entity": entity, "result": result}
    value = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
    return RawRecordOut(family=SourceFamily.CRM, format=FORMAT, key=key, value=value)


def receiver_transform(client: Bitrix24Client) -> Callable[[bytes], Awaitable[list[RawRecordOut]]]:
    """``enrich`` in the shape the HTTP receiver's ``transform`` hook takes: a list of records
    to write, empty for an ignored event."""

    async def transform(body: bytes) -> list[RawRecordOut]:
        record = await enrich(body, client)
        return [] if record is None else [record]

    return transform
