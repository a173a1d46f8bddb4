"""Today so far, as the head of sales' page shows it, in the hand-checkable world of
``alert_world``: ivanova usually makes 10 outgoing calls a working hour; petrov is new, so the
day norm of 40 outgoing calls (5 per working hour of 8) stands in for his baseline. The day is
09:00-18:00 with lunch 13:00-14:00.
"""

from __future__ import annotations

import math
import random
from datetime import date, datetime, timedelta

import pytest

from processors.alerting import today as today_module
from processors.alerting.conditions import judge
from processors.alerting.rules import Rule
from processors.alerting.situation import Situation
from processors.alerting.today import (
    HEADLINE_METRICS,
    DipBook,
    MetricToday,
    TodayBoard,
    drop_rule_for,
    today_board,
)
from salespulse.alert_model import Alert, Severity
from tests.unit.alert_world import RULES, TODAY, World, at


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
    assert (calls.dip, calls.dipping) == (None, ())  # calling as usual


def test_a_new_manager_is_held_against_the_norm_of_the_day(afternoon: World) -> None:
    petrov = board(afternoon, at(TODAY, "14:30")).manager("petrov")
    assert petrov is not None
    calls = petrov.metric("calls_out")
    assert calls.actual == 10
    assert calls.expected == pytest.approx(22.5)  # 40 / 8 working hours x 4.5
    assert calls.expected_from == "norm"
    assert calls.projected == pytest.approx(10 * 8 / 4.5)  # 17.8
    assert calls.share == pytest.approx(10 / 22.5)
    # Not a word about the whole day's share: his last call was at 10:48, and the 150 working
    # minutes 11:00-13:00 and 14:00-14:30 held none where the norm expects 12.5 (5 an hour):
    # P = e^-12.5 = 3.7e-6, under the level of the page's 1 per 20 working days.
    assert calls.dipping == ("petrov",)
    assert calls.dip is not None
    assert calls.dip.start == at(TODAY, "11:00")
    assert calls.dip.worked_seconds == 150 * 60
    assert (calls.dip.observed, calls.dip.expected) == (0, pytest.approx(12.5))
    assert calls.dip.expected_from == "norm"
    assert calls.dip.tail_probability == pytest.approx(math.exp(-12.5))
    assert (calls.dip.false_alarms, calls.dip.rule) == ("1 per 20 working days", "")


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
    assert offers.dip is None
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
    assert calls.dipping == ("petrov",)  # one of its managers dips
    assert calls.dip is None  # the window is each manager's own
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


# Dips: the page's red flag is the drop rule's scan at the page's instant.

DROP_RULES = """
norms:
  - {metric: calls_out, per: day, at_least: 40}
rules:
  - {name: calls_drop, kind: drop, metric: calls_out, false_alarms: 1 per 5 working days,
     hold: %s}
"""


def silent_from_10_27(rules_text: str | None = None) -> World:
    """ivanova usually makes 20 outgoing calls an hour; today she calls every 3 minutes from
    09:00, the last at 10:27 (the worked example of the drop rule in docs/alerts.md)."""
    world = World(rules_text or RULES, ivanova_per_hour=20)
    world.call_every("ivanova", at(TODAY, "09:00"), at(TODAY, "10:28"), 3)
    world.call_every("petrov", at(TODAY, "09:00"), at(TODAY, "18:00"), 12)  # his norm's pace
    return world


def calls_out(world: World, hhmm: str) -> MetricToday:
    ivanova = board(world, at(TODAY, hhmm)).manager("ivanova")
    assert ivanova is not None
    return ivanova.metric("calls_out")


def test_a_manager_whose_calls_stop_dips_the_minute_the_drop_rule_finds_it() -> None:
    world = silent_from_10_27()
    # 11:03: the 36 working minutes 10:27-11:03 hold the 10:27 call, P = 13 e^-12 = 8.0e-5, not
    # under the level 1.49e-5 (α = 0.05 / 480 shared by the 7 windows that expect over 11.1).
    for hhmm in ("10:40", "11:00", "11:03", "11:03:59"):
        assert calls_out(world, hhmm).dip is None, hhmm
    # 11:04: 10:28-11:04 holds none where 12 were expected: P = e^-12 = 6.1e-6.
    calls = calls_out(world, "11:04")
    assert calls.dip is not None
    assert calls.dip.start == at(TODAY, "10:28")
    assert calls.dip.worked_seconds == 36 * 60
    assert (calls.dip.observed, calls.dip.expected) == (0, pytest.approx(12.0))
    assert calls.dip.tail_probability == pytest.approx(math.exp(-12))
    assert calls.dip.threshold == pytest.approx(0.05 / 480 / 7)
    assert (calls.dip.expected_from, calls.dip.false_alarms) == (
        "baseline",
        "1 per 20 working days",
    )
    # The whole day so far was never under half of expected: 30 of 41.3 at 11:04.
    assert (calls.actual, calls.expected) == (30, pytest.approx(124 / 3))
    # It goes on dipping, over longer windows, until she calls again, and for as long as a
    # window still holds too few of her calls: at 11:40 the 75 working minutes from 10:25 hold
    # 4 (the 10:25 and 10:27 calls and two after 11:31) where 25 were expected.
    assert calls_out(world, "11:30").dip is not None
    world.call_every("ivanova", at(TODAY, "11:31"), at(TODAY, "13:00"), 3)
    calls = calls_out(world, "11:40")
    assert calls.dip is not None
    assert (calls.dip.worked_seconds, calls.dip.observed) == (75 * 60, 4)
    assert calls_out(world, "12:05").dip is None

    # The rule on the same day: without a hold it fires at 11:04, the minute the page turns
    # red; with the drop rule's default hold of a minute, at 11:05 (the 36 minutes from 10:29).
    for hold, fired, start in (("0m", "11:04", "10:28"), ("1m", "11:05", "10:29")):
        world = silent_from_10_27((DROP_RULES % hold).replace("1 per 5", "1 per 20"))
        notices = world.run(at(TODAY, "10:30"), at(TODAY, "11:10"))
        (notice,) = [n for n in notices if n.alert.manager_id == "ivanova"]
        assert notice.alert.fired_at == at(TODAY, fired), hold
        assert notice.alert.details["window_start"] == at(TODAY, start).isoformat()


def test_the_budget_is_the_rules_files_drop_rule_for_the_metric_if_there_is_one() -> None:
    world = silent_from_10_27(DROP_RULES % "1m")
    # A budget four times larger raises the level to 0.2 / 480 / 7 = 6.0e-5 (the 7 windows of
    # 30 minutes and longer expect over ln(7 / α) = 9.7): at 10:58 the 30 minutes from 10:28,
    # expecting 10, hold nothing, P = e^-10 = 4.5e-5.
    assert calls_out(world, "10:57").dip is None
    calls = calls_out(world, "10:58")
    assert calls.dip is not None
    assert (calls.dip.rule, calls.dip.false_alarms) == ("calls_drop", "1 per 5 working days")
    assert calls.dip.worked_seconds == 30 * 60
    assert calls.dip.threshold == pytest.approx(0.2 / 480 / 7)
    # A rule for another department leaves the page to its own budget.
    elsewhere = (DROP_RULES % "1m").replace("hold: 1m", "hold: 1m, departments: [spb]")
    world = silent_from_10_27(elsewhere)
    assert calls_out(world, "10:58").dip is None
    assert calls_out(world, "11:04").dip is not None


def test_small_counts_are_no_dip_by_themselves() -> None:
    """Offers: a norm of 6 a day, 0.75 a working hour. petrov, new, is held against it."""
    rules = RULES.replace("norms:\n", "norms:\n  - {metric: offers, per: day, at_least: 6}\n")
    world = World(rules)
    world.usual_day("ivanova", "petrov")
    world.events[("petrov", "offers")] = [at(TODAY, "09:40"), at(TODAY, "11:15")]
    msk = board(world, at(TODAY, "13:00")).department("msk")
    assert msk is not None
    petrov = msk.managers[1]
    offers = petrov.metric("offers")
    assert (offers.actual, offers.expected) == (2, pytest.approx(3.0))  # 2 of 3 expected
    assert (offers.dip, offers.dipping) == (None, ())
    # Not even none of 3: nothing in a window expecting 3 happens one day in twenty (e^-3),
    # far from rare enough; the scan looks at no window expecting under ln(1 / α) = 9.2.
    world.events[("petrov", "offers")] = []
    msk = board(world, at(TODAY, "13:00")).department("msk")
    assert msk is not None
    offers = msk.metric("offers")
    assert (offers.actual, offers.share, offers.dipping) == (0, 0.0, ())


def test_fewer_missed_calls_and_shorter_talks_never_dip() -> None:
    rules = RULES.replace("norms:\n", "norms:\n  - {metric: missed, per: day, at_least: 80}\n")
    world = World(rules)
    world.usual_day("ivanova", "petrov")  # and not one missed call: 10 an hour expected
    petrov = board(world, at(TODAY, "16:00")).manager("petrov")
    assert petrov is not None
    missed = petrov.metric("missed")
    assert (missed.actual, missed.expected) == (0, pytest.approx(60.0))
    assert (missed.dip, missed.dipping) == (None, ())
    assert drop_rule_for(world.rules, "missed", "msk", "") is None
    assert drop_rule_for(world.rules, "talk_seconds", "msk", "") is None  # not a count
    assert drop_rule_for(world.rules, "offers", "msk", "") is not None


def test_no_dip_outside_working_time() -> None:
    world = silent_from_10_27()
    assert calls_out(world, "12:59").dip is not None
    assert calls_out(world, "13:30").dip is None  # lunch: the rule judges nothing either
    assert calls_out(world, "14:00").dip is not None
    assert calls_out(world, "18:30").dip is None  # the workday is over


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_the_page_and_the_drop_rule_agree_on_random_days(seed: int) -> None:
    """Calls at random (Poisson) around each manager's usual rate, with random stretches at a
    fraction of it: at every minute of the day, the page dips exactly where the drop rule's
    condition holds, over the same window."""
    rng = random.Random(seed)
    world = World(DROP_RULES % "1m", ivanova_per_hour=20)
    for manager, usual in (("ivanova", 20.0), ("petrov", 5.0)):
        moment, end = at(TODAY, "09:00"), at(TODAY, "18:00")
        hour = rng.choice((9, 10, 11, 14, 15))
        slow_from = at(TODAY, f"{hour}:{rng.randint(0, 59):02d}")
        slow_until = slow_from + timedelta(minutes=rng.randint(60, 150))
        # ivanova falls silent for an hour or more every day; petrov slows down at random.
        slowness = 0.0 if manager == "ivanova" else rng.choice((0.0, 0.1, 0.3, 0.6))
        while moment < end:
            rate = usual * (slowness if slow_from <= moment < slow_until else 1.0)
            moment += timedelta(hours=rng.expovariate(rate) if rate else 1 / 60)
            if rate and moment < end:
                world.calls.setdefault(manager, []).append(moment)
    breaches = clear = 0
    now = at(TODAY, "09:00")
    while now <= at(TODAY, "18:00"):
        snapshot = world.snapshot(now)
        situation = Situation(
            now, world.rules, world.directory, world.workdays, snapshot, world.baselines
        )
        verdicts = {v.key: v for v in judge(situation)}
        today = today_board(
            now, world.rules, world.directory, world.workdays, snapshot, world.baselines,
            metrics=("calls_out",),
        )  # fmt: skip
        for manager in ("ivanova", "petrov"):
            verdict = verdicts[f"calls_drop/manager/{manager}"]
            row = today.manager(manager)
            assert row is not None
            dip = row.metric("calls_out").dip
            assert (dip is not None) == (verdict.breached is True), (manager, now)
            if dip is not None:
                assert verdict.draft is not None
                details = verdict.draft.details
                assert details["window_start"] == dip.start.isoformat()
                assert verdict.draft.actual == dip.observed
                assert verdict.draft.expected == dip.expected
                assert details["tail_probability"] == f"{dip.tail_probability:.3g}"
                breaches += 1
            elif verdict.breached is False:
                clear += 1
        now += timedelta(minutes=1)
    assert breaches > 0  # ivanova's silence at least
    assert clear > 0


def test_a_dip_book_gives_the_same_boards_with_a_scan_a_minute(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pages read every 5 seconds: a manager's metric is scanned once a minute unless its
    activity changed, and every board is the one computed without the book."""
    world = silent_from_10_27()
    scans = []
    real = today_module.judge_drop

    def counting(*args: object, **kwargs: object) -> object:
        rule = args[6]
        assert isinstance(rule, Rule)
        if rule.metric == "calls_out":
            scans.append(args[2])  # the manager
        return real(*args, **kwargs)  # type: ignore[arg-type]

    book = DipBook()
    now, seen = at(TODAY, "10:58"), []
    while now < at(TODAY, "11:08"):
        if now == at(TODAY, "11:06:30"):
            world.calls["ivanova"].append(at(TODAY, "11:06:30"))  # a call in the minute under way
        snapshot = world.snapshot(now)
        args = (now, world.rules, world.directory, world.workdays, snapshot, world.baselines)
        with monkeypatch.context() as patch:
            patch.setattr(today_module, "judge_drop", counting)
            kept = today_board(*args, dips=book)
        fresh = today_board(*args)
        for manager in ("ivanova", "petrov"):
            kept_row, fresh_row = kept.manager(manager), fresh.manager(manager)
            assert kept_row is not None
            assert fresh_row is not None
            assert kept_row.metrics == fresh_row.metrics, (manager, now)
        ivanova = kept.manager("ivanova")
        assert ivanova is not None
        seen.append(ivanova.metric("calls_out").dip is not None)
        now += timedelta(seconds=5)
    assert seen.index(True) == 6 * 12  # 11:04, as without the book
    # 120 boards over 10 minutes; outgoing calls are scanned once a minute, and at each board
    # of a minute whose record already counts: ivanova's 11:06:30 call (the boards 11:06:30 to
    # 11:06:55) and petrov's 11:00 call (11:00:00 to 11:00:55).
    assert scans.count("ivanova") == 10 + 6
    assert scans.count("petrov") == 9 + 12
