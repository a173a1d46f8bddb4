"""Today so far, as the head of sales' page shows it, in the hand-checkable world of
``alert_world``: ivanova usually makes 10 outgoing calls a working hour; petrov is new, so the
day norm of 40 outgoing calls (5 per working hour of 8) stands in for his baseline. The day is
09:00-18:00 with lunch 13:00-14:00.
"""

from __future__ import annotations

from datetime import date, datetime

import pytest

from processors.alerting.model import Alert, Severity
from processors.alerting.today import HEADLINE_METRICS, TodayBoard
from tests.unit.alert_world import TODAY, World, at


def board(world: World, now: datetime, alerts: tuple[Alert, ...] = ()) -> TodayBoard:
    return world.board(now, alerts)


def alert(key: str, manager_id: str, severity: Severity, fired: str) -> Alert:
    return Alert(
        key=key,
        rule=key.split("/")[0],
        kind="dip",
        severity=severity,
        manager_id=manager_id,
        manager_name=manager_id,
        department_id="msk",
        department_name="Moscow sales",
        metric="calls_out",
        actual=1,
        expected=2,
        since=at(TODAY, fired),
        fired_at=at(TODAY, fired),
    )


@pytest.fixture
def afternoon() -> World:
    """ivanova: every 6 minutes 09:00-13:00 (40 calls) and 14:00-14:30 (5 calls); petrov:
    every 12 minutes 09:00-11:00 (10 calls), then nothing."""
    world = World()
    world.call_every("ivanova", at(TODAY, "09:00"), at(TODAY, "13:00"), 6)
    world.call_every("ivanova", at(TODAY, "14:00"), at(TODAY, "14:30"), 6)
    world.call_every("petrov", at(TODAY, "09:00"), at(TODAY, "11:00"), 12)
    return world


def test_a_manager_with_history_is_held_against_the_baseline(afternoon: World) -> None:
    ivanova = board(afternoon, at(TODAY, "14:30")).manager("ivanova")
    assert ivanova is not None
    assert ivanova.local_date == TODAY
    assert ivanova.working
    assert ivanova.worked_seconds == 4.5 * 3600  # 09:00-13:00 and 14:00-14:30
    assert ivanova.day_seconds == 8 * 3600
    calls = ivanova.metric("calls_out")
    assert calls.actual == 45
    assert calls.expected == pytest.approx(45.0)  # 10 an hour x 4.5 working hours
    assert calls.expected_from == "baseline"
    assert calls.norm == 40
    assert calls.projected == pytest.approx(80.0)  # 45 x 8 / 4.5
    assert calls.share == pytest.approx(1.0)
    assert not calls.behind


def test_a_new_manager_is_held_against_the_norm_of_the_day(afternoon: World) -> None:
    petrov = board(afternoon, at(TODAY, "14:30")).manager("petrov")
    assert petrov is not None
    calls = petrov.metric("calls_out")
    assert calls.actual == 10
    assert calls.expected == pytest.approx(22.5)  # 40 / 8 working hours x 4.5
    assert calls.expected_from == "norm"
    assert calls.projected == pytest.approx(10 * 8 / 4.5)  # 17.8
    assert calls.share == pytest.approx(10 / 22.5)
    assert calls.behind  # under half of what was expected by now


def test_metrics_without_history_or_norm_expect_nothing(afternoon: World) -> None:
    today = board(afternoon, at(TODAY, "14:30"))
    ivanova, petrov = today.manager("ivanova"), today.manager("petrov")
    assert ivanova is not None
    assert petrov is not None
    assert [m.metric for m in ivanova.metrics] == list(HEADLINE_METRICS)
    # ivanova's history has periods, all without offers: a baseline of zero.
    offers = ivanova.metric("offers")
    assert (offers.actual, offers.expected, offers.expected_from) == (0, 0.0, "baseline")
    assert offers.norm is None
    assert offers.share is None
    assert not offers.behind
    # petrov has neither a baseline nor an offers norm.
    offers = petrov.metric("offers")
    assert (offers.expected, offers.expected_from, offers.norm) == (None, "", None)


def test_a_department_is_the_sum_of_its_managers(afternoon: World) -> None:
    msk = board(afternoon, at(TODAY, "14:30")).department("msk")
    assert msk is not None
    assert [m.manager.id for m in msk.managers] == ["ivanova", "petrov"]
    assert msk.working
    calls = msk.metric("calls_out")
    assert calls.actual == 55
    assert calls.expected == pytest.approx(67.5)  # 45 + 22.5
    assert calls.expected_from == "baseline+norm"
    assert calls.norm == 80
    assert calls.projected == pytest.approx(80 + 10 * 8 / 4.5)
    assert not calls.behind  # 55 of 67.5
    assert msk.metric("offers").expected == 0.0  # petrov's unknown adds nothing


def test_lunch_is_not_working_time_and_expects_nothing_more(afternoon: World) -> None:
    ivanova = board(afternoon, at(TODAY, "13:40")).manager("ivanova")
    assert ivanova is not None
    assert not ivanova.working
    calls = ivanova.metric("calls_out")
    assert (calls.actual, calls.expected) == (40, pytest.approx(40.0))
    assert calls.projected == pytest.approx(80.0)  # 40 x 8 / 4


def test_before_the_workday_there_is_no_pace() -> None:
    ivanova = board(World(), at(TODAY, "08:30")).manager("ivanova")
    assert ivanova is not None
    assert not ivanova.working
    calls = ivanova.metric("calls_out")
    assert (calls.actual, calls.expected, calls.projected) == (0, 0.0, None)


def test_a_holiday_and_a_vacation_are_days_off() -> None:
    holiday = date(2026, 11, 4)
    ivanova = board(World(today=holiday), at(holiday, "11:00")).manager("ivanova")
    assert ivanova is not None
    assert (ivanova.working, ivanova.day_seconds) == (False, 0)
    assert ivanova.metric("calls_out").projected is None

    vacation = date(2026, 11, 18)
    today = board(World(today=vacation), at(vacation, "11:00"))
    ivanova, petrov = today.manager("ivanova"), today.manager("petrov")
    assert ivanova is not None
    assert petrov is not None
    assert not ivanova.working
    assert ivanova.metric("calls_out").expected == 0.0
    assert petrov.working
    department = today.department("msk")
    assert department is not None
    assert department.working  # the department works; one of its people is away


def test_open_alerts_go_to_their_manager_and_department_most_severe_first() -> None:
    alerts = (
        alert("calls_dip/manager/ivanova", "ivanova", Severity.WARNING, "11:00"),
        alert("idle/manager/petrov", "petrov", Severity.WARNING, "12:00"),
        alert("late/task/T-1", "petrov", Severity.CRITICAL, "10:00"),
    )
    today = board(World(), at(TODAY, "12:30"), alerts)
    assert [a.key for a in today.alerts] == [
        "late/task/T-1",
        "idle/manager/petrov",
        "calls_dip/manager/ivanova",
    ]
    petrov = today.manager("petrov")
    assert petrov is not None
    assert [a.key for a in petrov.alerts] == ["late/task/T-1", "idle/manager/petrov"]
    department = today.department("msk")
    assert department is not None
    assert len(department.alerts) == 3
    assert today.manager("nobody") is None
    assert today.department("nowhere") is None
