"""The overdue-task rule: one alert per open task past its deadline plus grace, and, for tasks
that were overdue before salespulse could tell them, one summary per department instead
(``docs/alerts.md``, tasks already overdue when salespulse learnt of them).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta

from processors.alerting import messages
from processors.alerting.engine import Verdict
from processors.alerting.judge_shared import alert_draft
from processors.alerting.rules import Rule
from processors.alerting.situation import Situation, Subject
from processors.alerting.workdays import local_midnight
from salespulse.activity import OpenTask
from salespulse.alert_model import Severity

# An overdue task is paged only if salespulse could tell it at most this long after the moment
# it would have been told live (its deadline plus grace, or the manager's next working instant):
# later, it is from the past, and its department hears one summary instead.
PAST_AFTER = timedelta(minutes=15)
# The summary of a department's tasks from the past waits until no more of them arrived for
# this long (a load still running would make the count a moving target).
PAST_SETTLE = timedelta(minutes=2)
# Tasks named in a summary's details (the rest are counted).
PAST_NAMED = 20


def overdue_tasks(
    situation: Situation, rule: Rule, subjects: dict[str, Subject]
) -> Iterator[Verdict]:
    """One alert per open task past its deadline plus grace, told while its manager works.

    A task salespulse could not tell in time (``_from_the_past``) is not paged: each
    department hears one summary of such tasks instead (``_past_summary``)."""
    now = situation.now
    firing = situation.quiet.firing if situation.quiet is not None else frozenset()
    past: dict[str, list[OpenTask]] = {}
    for task in situation.snapshot.open_tasks:
        subject = subjects.get(task.manager_id)
        if subject is None or not rule.applies_to(subject.department.id, subject.role):
            continue
        if task.due_at + rule.grace > now:
            continue
        key = f"{rule.name}/task/{task.task_id}"
        if key not in firing and _from_the_past(situation, rule, subject, task):
            past.setdefault(subject.department.id, []).append(task)
            yield Verdict(key, rule, None)
            continue
        if not subject.working:
            yield Verdict(key, rule, None)
            continue
        yield _overdue_verdict(situation, rule, subject, key, task)
    for department_id, tasks in past.items():
        yield _past_summary(situation, rule, department_id, tasks)


def _from_the_past(situation: Situation, rule: Rule, subject: Subject, task: OpenTask) -> bool:
    """Whether the task's alert would be told well after the moment it was due to be told live:
    the first working instant of its manager from the deadline plus grace on. salespulse could
    tell it only once the task was stored (``known_at``; a history import, a late load) and,
    unless an earlier evaluator told it (then it is restored as firing), once this evaluator
    began (``started``)."""
    if task.known_at is None and situation.started is None:
        return False
    told_key = (task.task_id, task.due_at, task.manager_id)
    book = situation.quiet
    if book is not None and told_key in book.told:
        told = book.told[told_key]
    else:
        told = situation.workdays.next_working(
            task.manager_id, subject.department.id, subject.zone, task.due_at + rule.grace
        )
        if book is not None:
            if len(book.told) > 100_000:
                book.told.clear()
            book.told[told_key] = told
    if told is None:
        return False  # no working time ahead to tell it in: judged as before
    could = max(moment for moment in (task.known_at, situation.started) if moment is not None)
    return could - told > PAST_AFTER


def _past_summary(
    situation: Situation, rule: Rule, department_id: str, tasks: list[OpenTask]
) -> Verdict:
    """One alert per department for its open tasks that were overdue before salespulse could
    tell them. It fires once no more such tasks arrived for ``PAST_SETTLE`` (a load is over)
    while the department works, counts them, stays firing while any is open (a second load
    adds to it silently) and resolves when none is left."""
    key = f"{rule.name}/loaded/{department_id}"
    directory = situation.directory
    department = directory.departments[department_id]
    zone = directory.timezone_of(department_id)
    latest = max((task.known_at for task in tasks if task.known_at is not None), default=None)
    settled = latest is None or situation.now - latest >= PAST_SETTLE
    if not settled or not situation.workdays.is_working("", department_id, zone, situation.now):
        return Verdict(key, rule, None)
    subject = Subject(
        department=department,
        zone=zone,
        today=situation.now.astimezone(zone).date(),
        day_start=local_midnight(situation.now.astimezone(zone).date(), zone),
        working=True,
        over=False,
    )
    ordered = sorted(tasks, key=lambda task: (task.due_at, task.task_id))
    oldest = ordered[0].due_at
    details = {
        "tasks": str(len(ordered)),
        "oldest_due_at": oldest.isoformat(),
        "task_ids": ",".join(task.task_id for task in ordered[:PAST_NAMED]),
    }
    draft = alert_draft(
        situation, rule, subject, key, "tasks_done", len(ordered), 0, oldest, details
    )
    draft = replace(draft, severity=Severity.INFO)
    due = f"{oldest.astimezone(zone):%d.%m %H:%M}"

    def describe(_: datetime) -> messages.Text:
        return messages.overdue_from_the_past(subject.who, len(ordered), due)

    return Verdict(key, rule, True, draft, describe)


def _overdue_verdict(
    situation: Situation, rule: Rule, subject: Subject, key: str, task: OpenTask
) -> Verdict:
    overdue = (situation.now - task.due_at).total_seconds()
    details = {"task_id": task.task_id, "due_at": task.due_at.isoformat()}
    draft = alert_draft(
        situation, rule, subject, key, "tasks_done", overdue, 0, task.due_at, details
    )
    due = f"{task.due_at.astimezone(subject.zone):%d.%m %H:%M}"

    def describe(_: datetime) -> messages.Text:
        return messages.overdue(subject.who, task.task_id, due)

    return Verdict(key, rule, True, draft, describe)
