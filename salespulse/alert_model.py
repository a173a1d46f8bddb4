"""What an alert is, as every part of alerting sees it: the engine produces ``Notice``s, the
delivery channels (``sinks.alerts``) and the history table consume them.

An *alert* is one episode of one condition about one subject: "outgoing calls of ivanova dipped
below her baseline on 2026-11-27". Its ``key`` names the episode and is stable, so every
channel can deduplicate by it (Alertmanager does so by its labels). A *notice* is one change of
an alert's state that is worth telling: it fired, or it resolved. A notice's ``notice_id`` is
deterministic (the key, the state and the episode's start), so sending one twice — a retry, a
restart — is recognisable as the same notice by the receiver.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class AlertState(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class Suppression(StrEnum):
    """Why a notice is kept in the history (ClickHouse, Kafka) but not sent to people."""

    NONE = ""
    SILENCED = "silenced"
    RATE_LIMITED = "rate_limited"


@dataclass(frozen=True, slots=True)
class Alert:
    """One episode of one rule's condition about one manager, department or task.

    ``actual`` and ``expected`` are in the metric's unit (a count, or seconds for talk time);
    ``expected`` is the baseline, the norm or the rule's limit the actual value was held against.
    ``since`` is when the condition began to hold (before the hold time); ``fired_at`` when the
    alert fired. Times are UTC.
    """

    key: str
    rule: str
    kind: str
    severity: Severity
    manager_id: str  # '' for a department-level alert
    manager_name: str
    department_id: str
    department_name: str
    metric: str
    actual: float
    expected: float
    since: datetime
    fired_at: datetime
    recipients: tuple[str, ...] = ()
    summary_en: str = ""
    summary_ru: str = ""
    dashboard_url: str = ""
    # Rule-specific facts a reader may want (task id, window, projected value...), all strings.
    details: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Notice:
    """A change of an alert's state, to be recorded and delivered."""

    alert: Alert
    state: AlertState
    at: datetime  # when the alert fired, or when it resolved
    suppressed: Suppression = Suppression.NONE
    # Why it resolved: 'recovered', 'workday_over', 'completed', 'rule_removed'...
    reason: str = ""

    @property
    def notice_id(self) -> str:
        seed = f"{self.alert.key}|{self.state}|{self.alert.fired_at.isoformat()}"
        return hashlib.sha256(seed.encode()).hexdigest()[:32]

    @property
    def delivered_to_people(self) -> bool:
        return self.suppressed is Suppression.NONE


def utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime; naive values are UTC already (the model says so)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
