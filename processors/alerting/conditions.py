"""Every active rule judged for every manager (or department, or task) at an instant: the entry
point of the conditions. Each rule goes to its kind's judging function (``judge_activity``,
``judge_inactivity``, ``judge_threshold``, ``judge_tasks``; the table in ``_activity_verdict``),
a verdict the ``QuietBook`` kept is given again instead of judged again, and a leader's first
evaluation dates its breaches back to their onsets (``with_onsets``).

Everything here is pure: the instant, the rules, the directory, the working calendar, today's
activity and the baselines come in; ``Verdict``s go out to the engine. Activity rules judge a
manager only while the manager is at work (``docs/alerts.md`` has each rule's exact meaning);
outside working time they say "not judged", and once the manager's workday is over they end
whatever fired that day.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from datetime import datetime, timedelta

from processors.alerting.engine import Verdict
from processors.alerting.judge_activity import dip, drop, pace
from processors.alerting.judge_inactivity import inactivity
from processors.alerting.judge_shared import FOREVER
from processors.alerting.judge_tasks import overdue_tasks
from processors.alerting.judge_threshold import threshold
from processors.alerting.rules import Rule, RuleKind, RulesFile
from processors.alerting.situation import (
    Situation,
    Subject,
    department_subjects,
    manager_subjects,
    next_minute,
    verdict_inputs,
)
from salespulse.alert_model import Alert

WORKDAY_OVER = "workday_over"
# Kinds whose breach, once found, holds for as long as the inputs stay the same.
_LASTING_BREACHES = frozenset({RuleKind.PACE, RuleKind.INACTIVITY})


def gone_reason(alert: Alert) -> str:
    """Why an alert no verdict mentions any more resolved: an open task that is no longer open
    was completed (or lost its deadline); anything else lost its rule or its subject."""
    return "completed" if alert.kind == RuleKind.OVERDUE_TASK else "gone"


def judged_metrics(rules: RulesFile) -> frozenset[str]:
    """The metrics whose minutes or day totals the active rules read."""
    wanted: set[str] = set()
    for rule in rules.active_rules():
        if rule.kind is RuleKind.INACTIVITY:
            wanted.update(rule.activity_metrics)
        elif rule.metric is not None:
            wanted.add(rule.metric)
    return frozenset(wanted)


def judge(situation: Situation) -> list[Verdict]:
    subjects = manager_subjects(situation)
    departments = department_subjects(situation)
    verdicts: list[Verdict] = []
    for rule in situation.rules.active_rules():
        if rule.kind is RuleKind.OVERDUE_TASK:
            verdicts.extend(overdue_tasks(situation, rule, subjects))
        elif rule.kind is RuleKind.DEPARTMENT_DIP:
            for subject in departments:
                if rule.applies_to(subject.department.id, ""):
                    verdicts.append(_activity_verdict(situation, rule, subject))
        else:
            for subject in subjects.values():
                if rule.applies_to(subject.department.id, subject.role):
                    verdicts.append(_activity_verdict(situation, rule, subject))
    return verdicts


# How far apart the earlier instants are at which a first evaluation looks for onsets.
ONSET_STEP = timedelta(minutes=1)


def with_onsets(
    situation: Situation, verdicts: list[Verdict], known: Collection[str]
) -> list[Verdict]:
    """The verdicts of a leader's first evaluation, each breach that its rule could not date
    (a dip, a pace, a threshold) dated by the same stored data judged at earlier instants,
    ``ONSET_STEP`` apart, back as far as its hold: its onset is the earliest of them from which
    every look found it breached. So a hold that was running under the previous leader goes on
    counting from its start instead of from this leader's. ``known``: keys the engine holds
    already (firing, or pending), which need no date."""
    open_keys = {
        verdict.key: verdict.rule.hold
        for verdict in verdicts
        if verdict.breached
        and verdict.onset is None
        and verdict.rule.hold > timedelta(0)
        and verdict.key not in known
    }
    if not open_keys:
        return verdicts
    onsets: dict[str, datetime] = {}
    back = ONSET_STEP
    while open_keys:
        moment = situation.now - back
        earlier = replace(situation, now=moment, quiet=None, expected={}, _loading={})
        breached = {verdict.key for verdict in judge(earlier) if verdict.breached}
        for key, hold in list(open_keys.items()):
            if key in breached:
                onsets[key] = moment
            if key not in breached or back >= hold:
                del open_keys[key]  # not breached then, or held long enough already
        back += ONSET_STEP
    return [
        replace(verdict, onset=onsets[verdict.key]) if verdict.key in onsets else verdict
        for verdict in verdicts
    ]


def _key(rule: Rule, subject: Subject) -> str:
    if subject.manager is None:
        return f"{rule.name}/department/{subject.department.id}"
    return f"{rule.name}/manager/{subject.manager.id}"


def _activity_verdict(situation: Situation, rule: Rule, subject: Subject) -> Verdict:
    key = _key(rule, subject)
    if not subject.working:
        return Verdict(key, rule, None, end_reason=WORKDAY_OVER if subject.over else "")
    judge_kind = {
        RuleKind.DIP: dip,
        RuleKind.DEPARTMENT_DIP: dip,
        RuleKind.PACE: pace,
        RuleKind.INACTIVITY: inactivity,
        RuleKind.THRESHOLD: threshold,
        RuleKind.DROP: drop,
    }[rule.kind]
    book = situation.quiet
    if book is None or subject.manager is None or key in book.firing:
        return judge_kind(situation, rule, subject, key)[0]
    inputs = verdict_inputs(situation, rule, subject)
    found = book.verdict(key, inputs, situation.now)
    if found is not None:
        return found
    verdict, quiet = judge_kind(situation, rule, subject, key)
    if verdict.breached and rule.kind in _LASTING_BREACHES:
        quiet = FOREVER
    elif verdict.breached:
        quiet = None
    if quiet is not None:
        future = next_minute(situation.snapshot, subject.manager.id, rule, situation.now)
        book.keep(key, inputs, min(quiet, future) if future is not None else quiet, verdict)
    else:
        book.forget(key)
    return verdict
