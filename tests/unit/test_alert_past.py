"""Alerts an on-call person can trust: nothing pages about moments already past.

On a controlled clock (``alert_world``): a history load of tasks long overdue, a restart with
conditions waiting out their holds, and a load of today's earlier hours while live records
keep coming. See docs/alerts.md, "Moments already past" and "Restarts and leader changes".
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from processors.alert_service import run_alerting
from salespulse.activity import OpenTask
from salespulse.alert_model import AlertState, Notice, Severity
from salespulse.alert_settings import AlertsSettings
from tests.unit.alert_world import TODAY, World, at

TWO_DEPARTMENTS = """
departments:
  - {id: msk, name: Moscow sales, timezone: Europe/Moscow}
  - {id: spb, name: Saint Petersburg sales, timezone: Europe/Moscow}
managers:
  - {id: ivanova, name: Anna Ivanova, department: msk, identities: []}
  - {id: petrov, name: Pavel Petrov, department: msk, role: telesales, identities: []}
  - {id: smirnov, name: Oleg Smirnov, department: spb, identities: []}
"""


def firing(notices: list[Notice], prefix: str) -> list[Notice]:
    return [n for n in notices if n.state is AlertState.FIRING and n.alert.key.startswith(prefix)]


def resolved(notices: list[Notice], prefix: str) -> list[Notice]:
    return [n for n in notices if n.state is AlertState.RESOLVED and n.alert.key.startswith(prefix)]


def history_load(world: World, count: int, start: datetime) -> None:
    """``count`` tasks of three departments' managers, due on earlier days and earlier today,
    stored one a second from ``start`` (a history import); every tenth has its completion
    half a minute later in the same load."""
    owners = ("ivanova", "petrov", "smirnov")
    for i in range(count):
        due = at(TODAY - timedelta(days=1 + i % 5), "10:00") + timedelta(minutes=i)
        if i % 7 == 0:
            due = at(TODAY, "09:00") + timedelta(minutes=i % 60)  # earlier today
        task = OpenTask(
            f"H-{i}",
            owners[i % 3],
            "spb" if owners[i % 3] == "smirnov" else "msk",
            due,
            due - timedelta(days=2),
            known_at=start + timedelta(seconds=i),
        )
        world.tasks.append(task)
        if i % 10 == 0:
            world.completed[task.task_id] = start + timedelta(seconds=i + 30)


def test_a_history_load_pages_nothing_from_the_past_and_a_live_deadline_once() -> None:
    world = World(directory_text=TWO_DEPARTMENTS, rules_text=RULES_OVERDUE)
    world.usual_day("ivanova", "petrov")
    load = at(TODAY, "11:00")
    history_load(world, 200, load)
    # A task known since the morning goes overdue live during the load: 11:30 + 15 min grace.
    world.tasks.append(
        OpenTask(
            "LIVE-1", "ivanova", "msk", at(TODAY, "11:30"), at(TODAY, "09:30"), at(TODAY, "09:30")
        )
    )
    notices = world.run(at(TODAY, "10:55"), at(TODAY, "12:00"), timedelta(seconds=20))
    world.restart(at(TODAY, "12:00"))  # a new leader: nothing is told again
    notices += world.run(at(TODAY, "12:00"), at(TODAY, "17:00"), timedelta(minutes=1))

    tasks = firing(notices, "overdue/task/")
    assert [(n.alert.key, n.at) for n in tasks] == [("overdue/task/LIVE-1", at(TODAY, "11:45"))]
    assert resolved(notices, "overdue/task/") == []  # no fire-then-resolve for past moments

    summaries = firing(notices, "overdue/loaded/")
    assert sorted(n.alert.department_id for n in summaries) == ["msk", "spb"]
    loaded_end = load + timedelta(seconds=190 + 30)  # the last completion in the load
    for summary in summaries:
        assert summary.at >= loaded_end  # once the load settled, with the count that stands
        assert summary.alert.severity is Severity.INFO
    by_department = {n.alert.department_id: n.alert for n in summaries}
    open_tasks = [
        t for t in world.tasks if t.task_id.startswith("H-") and t.task_id not in world.completed
    ]
    assert by_department["msk"].actual == sum(t.department_id == "msk" for t in open_tasks)
    assert by_department["spb"].actual == sum(t.department_id == "spb" for t in open_tasks)
    assert "were already overdue" in by_department["msk"].summary_en
    assert len(notices) == 3


def test_a_task_loaded_before_its_deadline_is_told_as_usual() -> None:
    world = World(rules_text=RULES_OVERDUE)
    world.usual_day("ivanova", "petrov")
    # Loaded at 08:00, due yesterday at 20:00: it is told when ivanova starts work.
    due = at(TODAY - timedelta(days=1), "20:00")
    world.tasks.append(OpenTask("T-1", "ivanova", "msk", due, due, at(TODAY, "08:00")))
    notices = world.run(at(TODAY, "08:00"), at(TODAY, "10:00"))
    assert [(n.alert.key, n.at) for n in notices] == [("overdue/task/T-1", at(TODAY, "09:00"))]


def test_a_leader_that_starts_late_does_not_page_what_went_overdue_unseen() -> None:
    world = World(rules_text=RULES_OVERDUE)
    world.usual_day("ivanova", "petrov")
    for i in range(5):  # known in time, overdue at 10:15.., while no evaluator was running
        world.tasks.append(
            OpenTask(
                f"T-{i}",
                "ivanova",
                "msk",
                at(TODAY, "10:00"),
                at(TODAY, "08:00"),
                at(TODAY, "08:00"),
            )
        )
    world.restart(at(TODAY, "14:00"))
    notices = world.run(at(TODAY, "14:00"), at(TODAY, "15:00"))
    assert firing(notices, "overdue/task/") == []
    assert [(n.alert.key, n.alert.actual) for n in notices] == [("overdue/loaded/msk", 5)]


TEN_MANAGERS = (
    "departments:\n  - {id: msk, name: Moscow sales, timezone: Europe/Moscow}\nmanagers:\n"
    + "".join(
        f"  - {{id: m{i}, name: Manager {i}, department: msk, identities: []}}\n" for i in range(10)
    )
)
RULES_IDLE = """
rules:
  - {name: idle, kind: inactivity, idle: 45m, hold: 30m, metrics: [calls_out]}
"""
RULES_OVERDUE = """
rules:
  - {name: overdue, kind: overdue_task, grace: 15m}
"""


def test_a_restart_with_ten_pending_holds_fires_each_at_its_own_time() -> None:
    world = World(directory_text=TEN_MANAGERS, rules_text=RULES_IDLE)
    for i in range(10):
        # m<i>'s last call ends at 10:00 + 2i min: idle 45 min at 10:45 + 2i, fired 30 min later.
        world.calls[f"m{i}"] = [at(TODAY, "09:57") + timedelta(minutes=2 * i)]
    before = world.run(at(TODAY, "10:30"), at(TODAY, "11:04"))
    assert before == []
    assert len(world.engine.pending()) == 10
    restart = at(TODAY, "11:05")
    world.restart(restart)
    notices = world.run(restart, at(TODAY, "12:30"))
    times = {n.alert.manager_id: n.at for n in firing(notices, "idle/")}
    assert times == {f"m{i}": at(TODAY, "11:15") + timedelta(minutes=2 * i) for i in range(10)}
    assert len(set(times.values())) == 10  # no burst at the restart plus the hold (11:35)


RULES_DIP = """
norms:
  - {metric: calls_out, per: day, at_least: 40}
rules:
  - {name: calls_dip, kind: dip, metric: calls_out, window: 2h, below: 0.5, hold: 30m,
     min_expected: 4}
"""


def test_a_restart_with_ten_pending_dips_fires_each_at_its_own_time() -> None:
    # New managers, held against the norm: 40 a day is 10 in two working hours, a dip under 5.
    world = World(directory_text=TEN_MANAGERS, rules_text=RULES_DIP)
    for i in range(10):
        # Five calls from 09:00 + 2i: under 5 in the last two hours from 11:01 + 2i on.
        start = at(TODAY, "09:00") + timedelta(minutes=2 * i)
        world.call_every(f"m{i}", start, start + timedelta(minutes=30), 6)
    assert world.run(at(TODAY, "10:00"), at(TODAY, "11:19")) == []
    assert len(world.engine.pending()) == 10
    restart = at(TODAY, "11:20")
    world.restart(restart)
    notices = world.run(restart, at(TODAY, "12:30"))
    times = {n.alert.manager_id: n.at for n in firing(notices, "calls_dip/")}
    assert times == {f"m{i}": at(TODAY, "11:31") + timedelta(minutes=2 * i) for i in range(10)}


def test_a_restart_after_a_backlog_holds_from_when_the_data_came_back() -> None:
    world = World(directory_text=TEN_MANAGERS, rules_text=RULES_IDLE)
    for i in range(10):
        world.calls[f"m{i}"] = [at(TODAY, "09:57") + timedelta(minutes=2 * i)]
    world.run(at(TODAY, "10:30"), at(TODAY, "10:50"))
    # The worker falls behind: its data is complete up to 10:50 only, until it caught up at
    # 11:05. Breaches that began before 10:50 (m0..m2) keep their onsets; the others, which
    # nobody could have seen, hold from 11:05.
    world.engine.pause(at(TODAY, "10:50"))
    world.restart(at(TODAY, "11:05"))
    world.engine.pause(at(TODAY, "10:50"))
    notices = world.run(at(TODAY, "11:05"), at(TODAY, "12:30"))
    times = {n.alert.manager_id: n.at for n in firing(notices, "idle/")}
    expected = {f"m{i}": at(TODAY, "11:15") + timedelta(minutes=2 * i) for i in range(3)}
    expected |= {f"m{i}": at(TODAY, "11:35") for i in range(3, 10)}
    assert times == expected


def test_loading_todays_earlier_hours_while_live_raises_no_inactivity() -> None:
    world = World()
    world.usual_day("ivanova")  # live all day
    # petrov's calls of 09:00-12:24 were not sent live: an import stores them from 12:30, one
    # every 15 s; alerting (re)starts at 12:30 too, with the live bridges.
    world.call_every("petrov", at(TODAY, "09:00"), at(TODAY, "12:30"), 12)
    for i, moment in enumerate(world.calls["petrov"]):
        world.stored[("petrov", moment)] = at(TODAY, "12:30") + timedelta(seconds=15 * i)
    world.restart(at(TODAY, "12:30"))
    notices = world.run(at(TODAY, "12:30"), at(TODAY, "13:00"), timedelta(seconds=10))
    assert firing(notices, "idle/") == []


def test_a_pause_to_catch_up_does_not_fire_a_hold_that_ran_out_meanwhile() -> None:
    world = World()
    world.usual_day("ivanova")
    # petrov's last call ended 11:33: 45 idle minutes at 12:18, and the 1-minute hold would
    # fire at 12:19. But he was on a call until 12:18:50, whose record is stuck behind an
    # import of older days: the worker falls more than a minute behind from 12:18:30 and
    # evaluation pauses until 12:19:20, when its data is complete up to 12:18:22 only; the
    # record is stored at 12:19:50. Holding from 12:18 would fire at 12:19:20 on data that
    # was not there yet.
    world.calls["petrov"] = [at(TODAY, "11:30"), at(TODAY, "12:15:50")]
    world.stored[("petrov", at(TODAY, "12:15:50"))] = at(TODAY, "12:19:50")
    notices = world.run(at(TODAY, "12:00"), at(TODAY, "12:18:20"), timedelta(seconds=10))
    world.engine.pause(at(TODAY, "12:17:29"))  # paused ticks: 61 s behind at 12:18:30
    notices += world.run(at(TODAY, "12:19:20"), at(TODAY, "12:40"), timedelta(seconds=10))
    assert firing(notices, "idle/") == []


class _Evaluator:
    """What run_alerting uses of AlertEvaluator, recording what it was asked."""

    def __init__(self) -> None:
        self.settings = AlertsSettings(tick_seconds=0.01)
        self.last_cpu_seconds = 0.0
        self.calls: list[tuple[str, object]] = []

    def restore(self, now: datetime) -> list[Notice]:
        self.calls.append(("restore", now))
        return []

    def undelivered(self, channel: str, since: datetime) -> list[Notice]:
        return []

    def pause(self, now: datetime, behind: float) -> None:
        self.calls.append(("pause", now - timedelta(seconds=behind)))

    def evaluate(self, now: datetime) -> list[Notice]:
        self.calls.append(("evaluate", now))
        return []


class _Dispatcher:
    def resume(self, notices: list[Notice]) -> None: ...
    def submit(self, notices: list[Notice]) -> None: ...
    def queue_sizes(self) -> dict[str, int]:
        return {}


async def test_a_start_behind_a_backlog_tells_the_evaluator_how_far_its_data_reaches() -> None:
    # The worker starts 90 s behind (an import of older days ahead of live records), then 70 s,
    # then caught up: evaluation waits, and the evaluator learns that its data was complete
    # only up to 90 s before the first paused tick, so no hold counts through the backlog.
    evaluator, clock = (
        _Evaluator(),
        iter(at(TODAY, "12:00") + timedelta(seconds=s) for s in range(99)),
    )
    lags = iter([90.0, 70.0, 0.0, 0.0])

    async def behind() -> float:
        lag = next(lags, 0.0)
        if lag == 0.0 and len(evaluator.calls) > 4:
            raise asyncio.CancelledError
        return lag

    with pytest.raises(asyncio.CancelledError):
        await run_alerting(
            evaluator,  # type: ignore[arg-type]
            _Dispatcher(),  # type: ignore[arg-type]
            lambda: True,
            behind,
            lambda: next(clock),
        )
    kinds = [kind for kind, _ in evaluator.calls]
    assert kinds[:4] == ["pause", "pause", "restore", "evaluate"]
    assert evaluator.calls[0][1] == at(TODAY, "12:00") - timedelta(seconds=90)
