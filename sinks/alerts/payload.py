"""The one JSON form of a notice, shared by the Kafka topic and the webhook.

A receiver reads the same document from either channel, so one parser serves both; the schema
is documented in ``docs/alert-delivery.md``. Fields are only ever added to it, never renamed or
removed, and ``schema`` names its version. Times are RFC 3339 in UTC with a ``Z``, in whole
seconds (the precision the history table keeps, so every copy of a notice reads the same).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from salespulse.alert_model import Alert, Notice, utc

SCHEMA = "salespulse.alert-notice/1"


def rfc3339(value: datetime) -> str:
    return utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def alert_payload(alert: Alert) -> dict[str, Any]:
    return {
        "key": alert.key,
        "rule": alert.rule,
        "kind": alert.kind,
        "severity": alert.severity.value,
        "manager_id": alert.manager_id,
        "manager_name": alert.manager_name,
        "department_id": alert.department_id,
        "department_name": alert.department_name,
        "metric": alert.metric,
        "actual": float(alert.actual),  # always a JSON number with a fraction: one type
        "expected": float(alert.expected),
        "since": rfc3339(alert.since),
        "fired_at": rfc3339(alert.fired_at),
        "recipients": list(alert.recipients),
        "summary_en": alert.summary_en,
        "summary_ru": alert.summary_ru,
        "dashboard_url": alert.dashboard_url,
        "details": dict(alert.details),
    }


def notice_payload(notice: Notice) -> dict[str, Any]:
    """The notice as a JSON-able dict (see docs/alert-delivery.md for every field)."""
    return {
        "schema": SCHEMA,
        "notice_id": notice.notice_id,
        "state": notice.state.value,
        "at": rfc3339(notice.at),
        "suppressed": notice.suppressed.value,
        "reason": notice.reason,
        "alert": alert_payload(notice.alert),
    }


def encode_payload(notice: Notice) -> bytes:
    """The payload as UTF-8 JSON bytes: the exact body that is sent, and signed."""
    # Russian summaries stay readable in the body; key order is fixed so equal notices give
    # equal bytes (and equal signatures).
    text = json.dumps(notice_payload(notice), ensure_ascii=False, separators=(",", ":"))
    return text.encode()
