"""What every rule kind's judgement is built with: the instant until which a verdict stays the
same (``Judged``, ``FOREVER``, ``after``), the alert a breach would fire (``alert_draft``) and
the expected counts of the instant, computed once for the dip and drop rules
(``expected_count_once``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from processors.alerting.engine import Verdict
from processors.alerting.expectation import Expected, expected_count
from processors.alerting.rules import Rule
from processors.alerting.situation import Situation, Subject
from processors.page_links import department_link, manager_link
from salespulse.alert_model import Alert
from salespulse.directory import ManagerEntry

# When a verdict can next turn into a breach with the same inputs (None: at any moment).
Judged = tuple[Verdict, datetime | None]
FOREVER = datetime.max.replace(tzinfo=UTC)


def after(now: datetime, seconds: float) -> datetime | None:
    return now + timedelta(seconds=seconds) if seconds > 0 else None


def alert_draft(
    situation: Situation,
    rule: Rule,
    subject: Subject,
    key: str,
    metric: str,
    actual: float,
    expected: float,
    since: datetime,
    details: dict[str, str],
) -> Alert:
    department = subject.department
    manager_id = subject.manager_id
    link = "/" + (manager_link(manager_id) if manager_id else department_link(department.id))
    return Alert(
        key=key,
        rule=rule.name,
        kind=rule.kind.value,
        severity=rule.severity,
        manager_id=manager_id,
        manager_name=subject.who.manager_name,
        department_id=department.id,
        department_name=subject.who.department_name,
        metric=metric,
        actual=actual,
        expected=expected,
        since=since,
        fired_at=situation.now,
        recipients=situation.rules.notify.recipients(rule, department.id),
        dashboard_url=f"{situation.dashboard_url}{link}" if situation.dashboard_url else "",
        details=details,
    )


def expected_count_once(
    situation: Situation,
    person: ManagerEntry,
    subject: Subject,
    metric: str,
    start: datetime,
    end: datetime,
) -> Expected | None:
    """``expected_count`` in [start, end), once per tick for a manager's own dip and their
    department's (whose windows mostly start at the same instant)."""
    key = (person.id, subject.department.id, subject.zone.key, metric, start, end)
    if key not in situation.expected:
        situation.expected[key] = expected_count(
            situation.workdays,
            situation.baselines,
            situation.rules,
            person,
            subject.department.id,
            subject.zone,
            metric,
            start,
            end,
        )
    return situation.expected[key]
