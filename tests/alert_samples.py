"""Notices for the delivery and history tests, each with a key of its own."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from salespulse.alert_model import Alert, AlertState, Notice, Severity, Suppression

_numbers = itertools.count(1)


def sample_alert(fired_at: datetime | None = None, *, key: str | None = None) -> Alert:
    fired_at = fired_at or datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    number = next(_numbers)
    return Alert(
        key=key or f"calls_out_dip:ivanova:{fired_at:%Y-%m-%d}:{number}",
        rule="calls_out_dip",
        kind="baseline_dip",
        severity=Severity.WARNING,
        manager_id="ivanova",
        manager_name="Anna Ivanova",
        department_id="msk",
        department_name="Moscow sales",
        metric="calls_out",
        actual=3.0,
        expected=11.5,
        since=fired_at - timedelta(minutes=30),
        fired_at=fired_at,
        recipients=("rop-msk@example.com", "@rop_msk"),
        summary_en="Anna Ivanova: 3 outgoing calls since 12:00, usually 11.5",
        summary_ru="Анна Иванова: 3 исходящих звонка с 12:00, обычно 11,5",
        dashboard_url="https://salespulse.example.com/managers/ivanova",
        details={"window": "13:00-14:00", "weeks": "4"},
    )


def fired(alert: Alert, suppressed: Suppression = Suppression.NONE) -> Notice:
    return Notice(alert, AlertState.FIRING, alert.fired_at, suppressed=suppressed)


def resolved(alert: Alert, at: datetime | None = None, reason: str = "recovered") -> Notice:
    at = at or datetime.now(UTC).replace(microsecond=0)
    return Notice(alert, AlertState.RESOLVED, at, reason=reason)
