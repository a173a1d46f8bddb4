"""The inactivity rule: a manager at work with no call, chat or other named activity for the
rule's idle working time (``docs/alerts.md``, the inactivity rule).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from processors.alerting import messages
from processors.alerting.engine import Verdict
from processors.alerting.judge_shared import FOREVER, Judged, after, alert_draft
from processors.alerting.rules import Rule
from processors.alerting.situation import LOAD_SETTLE, Situation, Subject
from salespulse.activity import CHANNEL_UP_MAX, ActivitySnapshot


def _last_active(
    snapshot: ActivitySnapshot, manager_id: str, metrics: tuple[str, ...]
) -> datetime | None:
    """The end of the latest call or chat, or the latest minute with any of ``metrics``."""
    candidates = []
    ended = snapshot.last_active.get(manager_id)
    if ended is not None:
        candidates.append(ended)
    per_metric = snapshot.minutes.get(manager_id, {})
    for metric in metrics:
        for minute, value in reversed(per_metric.get(metric, ())):
            if value:
                candidates.append(minute + timedelta(minutes=1))
                break
    return max(candidates, default=None)


def inactivity(situation: Situation, rule: Rule, subject: Subject, key: str) -> Judged:
    assert rule.idle is not None
    assert subject.manager is not None
    now, manager = situation.now, subject.manager
    args = (manager.id, subject.department.id, subject.zone)
    loading = situation.loading(subject)
    if loading is not None:
        # Today's earlier hours are being loaded: no activity yet may be activity on its way.
        return Verdict(key, rule, None), loading + LOAD_SETTLE
    busy = situation.snapshot.busy_since(manager.id, now)
    if busy is not None:
        # On a call now (a channel up, its CDR not written yet): not idle. Judged again when
        # the call ends (the snapshot changes) or, if its Hangup was lost, when it is capped.
        return Verdict(key, rule, False), busy + CHANNEL_UP_MAX
    last = _last_active(situation.snapshot, manager.id, rule.activity_metrics)
    started = last is not None and last > subject.day_start
    since = (
        last
        if last is not None and started
        else situation.workdays.first_start(*args, subject.today)
    )
    if since is None:
        return Verdict(key, rule, None), FOREVER  # no working time today
    if since > now:
        return Verdict(key, rule, None), since
    idle = situation.workdays.seconds(*args, since, now)
    breached = idle >= rule.idle.total_seconds()
    # Idle working time grows no faster than the clock.
    quiet = None if breached else after(now, rule.idle.total_seconds() - idle)
    details = {"idle_working_seconds": f"{idle:.0f}"}
    metric = "+".join(rule.activity_metrics)
    # The breach began when the idle working time reached ``idle``: its hold counts from then.
    onset = (
        situation.workdays.window_start(
            *args, now, timedelta(seconds=idle - rule.idle.total_seconds()), since
        )
        if breached
        else None
    )
    draft = (
        alert_draft(
            situation, rule, subject, key, metric, 0, rule.idle.total_seconds(), since, details
        )
        if breached
        else None
    )
    clock = subject.clock(since)

    def describe(_: datetime) -> messages.Text:
        return messages.inactivity(subject.who, idle, clock, started)

    return Verdict(key, rule, breached, draft, describe, onset=onset), quiet
