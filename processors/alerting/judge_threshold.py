"""The threshold rule: a count of a manager's metric in a sliding window that reaches the
rule's limit (``docs/alerts.md``, the threshold rule).
"""

from __future__ import annotations

from datetime import datetime

from processors.alerting import messages
from processors.alerting.engine import Verdict
from processors.alerting.judge_shared import FOREVER, Judged, alert_draft
from processors.alerting.rules import Rule
from processors.alerting.situation import Situation, Subject


def threshold(situation: Situation, rule: Rule, subject: Subject, key: str) -> Judged:
    assert rule.metric is not None
    assert rule.window is not None
    assert rule.at_least is not None
    now, metric, window = situation.now, rule.metric, rule.window
    actual = situation.snapshot.count(subject.manager_id, metric, now - window, now)
    breached = actual >= rule.at_least
    draft = (
        alert_draft(situation, rule, subject, key, metric, actual, rule.at_least, now, {})
        if breached
        else None
    )
    seconds = window.total_seconds()

    def describe(_: datetime) -> messages.Text:
        return messages.threshold(subject.who, metric, actual, rule.at_least or 0, seconds)

    # Without new records the count in the window only falls as minutes leave it.
    return Verdict(key, rule, breached, draft, describe), None if breached else FOREVER
