"""Alert scenarios on a controlled clock: the engine and the conditions stepped minute by minute.

The world is in ``alert_world``: ivanova usually makes 10 outgoing calls a working hour, so her
expected count over two working hours is 20 and the dip rule fires under 10.
"""

from __future__ import annotations

import json
import urllib.parse
from datetime import date, timedelta
from pathlib import Path

from processors.alerting.engine import AlertEngine, Verdict
from processors.alerting.rules import RulesError, load_rules, parse_rules
from salespulse.activity import OpenTask
from salespulse.alert_model import Alert, AlertState, Suppression
from salespulse.directory import parse_directory
from salespulse.watched_file import WatchedFile
from tests.unit.alert_world import DIRECTORY, RULES, TODAY, World, at


def states(notices: list) -> list[tuple[str, str]]:
    return [(n.alert.key, str(n.state)) for n in notices]


def test_a_steady_day_with_lunch_raises_nothing() -> None:
    world = World()
    world.call_every("ivanova", at(TODAY, "09:00"), at(TODAY, "13:00"), 6)
    world.call_every("ivanova", at(TODAY, "14:00"), at(TODAY, "18:00"), 6)
    world.call_every("petrov", at(TODAY, "09:00"), at(TODAY, "13:00"), 12)
    world.call_every("petrov", at(TODAY, "14:00"), at(TODAY, "18:00"), 12)
    # No calls 13:00-14:00: lunch is not working time, so neither a dip nor inactivity.
    assert world.run(at(TODAY, "07:00"), at(TODAY, "20:00")) == []


def test_a_holiday_without_any_activity_raises_nothing() -> None:
    world = World(today=date(2026, 11, 4))
    assert world.run(at(date(2026, 11, 4), "08:00"), at(date(2026, 11, 4), "19:00")) == []


def test_a_vacation_raises_nothing_about_that_manager() -> None:
    vacation_day = date(2026, 11, 18)
    world = World(today=vacation_day)
    world.call_every("petrov", at(vacation_day, "09:00"), at(vacation_day, "18:00"), 12)
    notices = world.run(at(vacation_day, "08:00"), at(vacation_day, "19:00"))
    assert [n for n in notices if n.alert.manager_id == "ivanova"] == []


def test_a_gradual_dip_fires_once_after_the_hold_and_resolves_on_recovery() -> None:
    world = World()
    world.usual_day("petrov")
    world.call_every("ivanova", at(TODAY, "09:00"), at(TODAY, "11:00"), 6)  # 10 an hour
    world.call_every("ivanova", at(TODAY, "11:00"), at(TODAY, "12:00"), 12)  # 5 an hour
    world.call_every("ivanova", at(TODAY, "12:00"), at(TODAY, "13:00"), 30)  # 2 an hour
    world.call_every("ivanova", at(TODAY, "14:00"), at(TODAY, "18:00"), 3)  # 20 an hour
    notices = world.run(at(TODAY, "09:00"), at(TODAY, "18:30"))
    dips = [n for n in notices if n.alert.key == "calls_dip/manager/ivanova"]
    assert [n.state for n in dips] == [AlertState.FIRING, AlertState.RESOLVED]
    fired, resolved = dips
    # 12:00: 10 + 5 = 15 in 10:00-12:00, not under 10. The count in the two-hour window falls
    # under 10 at 12:30 (5 from 11:00 + 2 from 12:00 at most 9 by 12:30 with 10:30's calls
    # gone); the alert fires after 15 minutes of hold.
    assert at(TODAY, "12:15") <= fired.at <= at(TODAY, "13:00")
    assert fired.at - fired.alert.since == timedelta(minutes=15)
    assert fired.alert.expected == 20
    assert fired.alert.actual < 10
    assert "Anna Ivanova" in fired.alert.summary_en
    assert "исходящие звонки" in fired.alert.summary_ru
    assert fired.alert.dashboard_url == "http://dash.example/managers/ivanova"
    assert resolved.reason == "recovered"
    assert resolved.at > at(TODAY, "14:00")


def test_a_flapping_condition_is_one_alert() -> None:
    """Breached and clear in turn every 3 minutes for two hours, after it fired: the 10-minute
    resolve hold is never reached, so there is one alert and no resolution until it stays clear."""
    engine = AlertEngine()
    rules = parse_rules(RULES)
    rule = rules.rules[0]
    alert = Alert(
        key="calls_dip/manager/ivanova",
        rule=rule.name,
        kind=rule.kind.value,
        severity=rule.severity,
        manager_id="ivanova",
        manager_name="Anna Ivanova",
        department_id="msk",
        department_name="Moscow sales",
        metric="calls_out",
        actual=8,
        expected=20,
        since=at(TODAY, "10:00"),
        fired_at=at(TODAY, "10:00"),
    )
    notices = []
    now = at(TODAY, "10:00")
    for minute in range(200):
        flapping = 30 <= minute < 150
        breached = (minute // 3) % 2 == 0 if flapping else minute < 150
        notices += engine.step(now, [Verdict(alert.key, rule, breached, alert)], rules)
        now += timedelta(minutes=1)
    assert [(n.state, n.at) for n in notices] == [
        (AlertState.FIRING, at(TODAY, "10:15")),
        # Last breached at minute 146 (12:26), clear from 12:27: resolved 10 minutes later.
        (AlertState.RESOLVED, at(TODAY, "12:37")),
    ]


def test_an_overdue_task_fires_at_deadline_plus_grace() -> None:
    world = World()
    world.usual_day("ivanova", "petrov")
    world.tasks.append(OpenTask("T-7", "ivanova", "msk", at(TODAY, "15:00"), at(TODAY, "09:30")))
    notices = world.run(at(TODAY, "09:00"), at(TODAY, "17:00"))
    assert states(notices) == [("overdue/task/T-7", "firing")]
    assert notices[0].at == at(TODAY, "15:15")
    assert notices[0].alert.since == at(TODAY, "15:00")
    assert "T-7" in notices[0].alert.summary_en


def test_a_completed_task_resolves_its_alert() -> None:
    world = World()
    world.usual_day("ivanova", "petrov")
    world.tasks.append(OpenTask("T-8", "ivanova", "msk", at(TODAY, "10:00"), at(TODAY, "09:00")))
    notices = world.run(at(TODAY, "09:00"), at(TODAY, "11:00"))
    world.tasks.clear()  # the completion arrived
    notices += world.run(at(TODAY, "11:01"), at(TODAY, "11:05"))
    assert states(notices) == [("overdue/task/T-8", "firing"), ("overdue/task/T-8", "resolved")]
    assert notices[1].reason == "completed"


def test_a_new_manager_is_judged_by_the_norm() -> None:
    world = World()
    world.call_every("ivanova", at(TODAY, "09:00"), at(TODAY, "18:00"), 6)
    # petrov: 3 calls an hour, against the telesales-less default norm of 40 a day = 5 an hour.
    world.call_every("petrov", at(TODAY, "09:00"), at(TODAY, "18:00"), 20)
    assert world.baselines.rate("petrov", "calls_out", TODAY.weekday(), 10) is None
    notices = world.run(at(TODAY, "09:00"), at(TODAY, "12:00"))
    assert notices == []  # 6 of 10 expected is not under half
    world.calls["petrov"] = [m for m in world.calls["petrov"] if m < at(TODAY, "12:00")]
    notices = world.run(at(TODAY, "12:01"), at(TODAY, "16:00"))
    fired = [n for n in notices if n.alert.key == "calls_dip/manager/petrov"]
    assert fired[0].state is AlertState.FIRING
    assert fired[0].alert.details["expected_from"] == "norm"
    assert fired[0].alert.expected == 10  # 40 a day over 8 working hours, for 2 hours


def test_inactivity_counts_working_minutes_only() -> None:
    world = World()
    world.usual_day("petrov")
    world.call_every("ivanova", at(TODAY, "09:00"), at(TODAY, "12:40"), 6)  # last ends 12:39
    notices = world.run(at(TODAY, "09:00"), at(TODAY, "15:00"))
    idle = [n for n in notices if n.alert.key == "idle/manager/ivanova"]
    # 21 working minutes before lunch, lunch does not count, 24 more after 14:00 make 45 at
    # 14:24; the rule's default hold of a minute fires it at 14:25.
    assert idle[0].state is AlertState.FIRING
    assert idle[0].at == at(TODAY, "14:25")


def test_the_end_of_the_workday_resolves_what_fired() -> None:
    world = World()
    world.usual_day("petrov")
    world.call_every("ivanova", at(TODAY, "09:00"), at(TODAY, "16:00"), 6)
    notices = world.run(at(TODAY, "15:00"), at(TODAY, "18:30"))
    idle = [n for n in notices if n.alert.key == "idle/manager/ivanova"]
    assert [n.state for n in idle] == [AlertState.FIRING, AlertState.RESOLVED]
    assert idle[1].reason == "workday_over"
    assert idle[1].at == at(TODAY, "18:00")


def test_silenced_alerts_are_kept_but_not_for_people() -> None:
    rules = RULES + "silences: [{manager: ivanova, rule: idle, comment: training}]\n"
    world = World(rules_text=rules)
    world.usual_day("petrov")
    notices = world.run(at(TODAY, "09:00"), at(TODAY, "10:00"))
    idle = [n for n in notices if n.alert.key == "idle/manager/ivanova"]
    assert idle[0].suppressed is Suppression.SILENCED
    assert not idle[0].delivered_to_people


def test_rate_limit_per_recipient() -> None:
    rules = RULES + "notify: {default: [rop], per_recipient_per_hour: 1}\n"
    world = World(rules_text=rules)
    world.tasks += [
        OpenTask(f"T-{i}", "ivanova", "msk", at(TODAY, "10:00"), at(TODAY, "09:00"))
        for i in range(3)
    ]
    world.usual_day("ivanova", "petrov")
    notices = world.run(at(TODAY, "10:15"), at(TODAY, "10:15"))
    assert [n.suppressed for n in notices] == [
        Suppression.NONE,
        Suppression.RATE_LIMITED,
        Suppression.RATE_LIMITED,
    ]
    assert notices[0].alert.recipients == ("rop",)


def test_overdue_tasks_do_not_spend_the_budget_activity_alerts_need() -> None:
    # Three tasks go overdue at 10:15 and spend the one task alert an hour the recipient may
    # get (two are rate-limited); Ivanova goes idle and her alert still reaches people.
    rules = RULES + "notify: {default: [rop], per_recipient_per_hour: 1}\n"
    world = World(rules_text=rules)
    world.tasks += [
        OpenTask(f"T-{i}", "ivanova", "msk", at(TODAY, "10:00"), at(TODAY, "09:00"))
        for i in range(3)
    ]
    world.usual_day("petrov")
    world.call_every("ivanova", at(TODAY, "09:00"), at(TODAY, "10:00"), 6)
    notices = world.run(at(TODAY, "10:15"), at(TODAY, "11:00"))
    tasks = [n.suppressed for n in notices if n.alert.rule == "overdue"]
    assert tasks == [Suppression.NONE, Suppression.RATE_LIMITED, Suppression.RATE_LIMITED]
    idle = [n for n in notices if n.alert.key == "idle/manager/ivanova"]
    assert [(n.state, n.suppressed) for n in idle] == [(AlertState.FIRING, Suppression.NONE)]


def test_pace_below_the_norm_projects_the_day() -> None:
    rules = (
        RULES + "  - {name: pace, kind: pace, metric: calls_out, below: 0.8, after: 2h, hold: 0m}\n"
    )
    world = World(rules_text=rules)
    world.call_every("ivanova", at(TODAY, "09:00"), at(TODAY, "18:00"), 6)
    world.call_every("petrov", at(TODAY, "09:00"), at(TODAY, "18:00"), 20)  # 3 an hour
    notices = world.run(at(TODAY, "09:00"), at(TODAY, "11:30"))
    paces = [n for n in notices if n.alert.rule == "pace"]
    # At 11:00, two of eight working hours: 6 calls, at this pace 24 by the end of the day,
    # under 0.8 x 40 = 32. Ivanova's 20 project to 80: no alert about her.
    assert [(n.alert.manager_id, n.at) for n in paces] == [("petrov", at(TODAY, "11:00"))]
    assert paces[0].alert.actual == 6
    assert paces[0].alert.expected == 40
    assert paces[0].alert.summary_en == (
        "Pavel Petrov (Moscow sales): outgoing calls 6 so far; at this pace 24 of the norm 40 "
        "by the end of the day"
    )
    assert paces[0].alert.summary_ru == (
        "Pavel Petrov (Moscow sales): исходящие звонки — пока 6; в таком темпе 24 из нормы 40 "
        "до конца дня"
    )


def test_a_department_dip_sums_baselines_and_norms_of_its_members() -> None:
    rules = RULES + (
        "  - {name: dept, kind: department_dip, metric: calls_out, window: 2h, below: 0.5, "
        "hold: 0m}\n"
    )
    world = World(rules_text=rules)
    # Nobody calls from 09:00. At 10:00 half the window is worked: ivanova was expected to make
    # 10 (her baseline), petrov 5 (the norm of 40 over 8 hours), the department 15.
    notices = world.run(at(TODAY, "09:00"), at(TODAY, "10:00"))
    dept = [n for n in notices if n.alert.rule == "dept"]
    assert [(n.alert.key, n.at) for n in dept] == [("dept/department/msk", at(TODAY, "10:00"))]
    assert dept[0].alert.expected == 15
    assert dept[0].alert.actual == 0
    assert dept[0].alert.manager_id == ""
    assert dept[0].alert.summary_en.startswith("Moscow sales: outgoing calls 0 in the last")
    assert dept[0].alert.dashboard_url == "http://dash.example/departments/msk"


def test_the_rules_file_is_reloaded_and_a_broken_one_keeps_the_last_good(tmp_path: Path) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text(RULES)
    watched = WatchedFile(path, load_rules, (RulesError,))
    assert [rule.name for rule in watched.current.rules] == ["calls_dip", "idle", "overdue"]
    path.write_text(RULES + "  - {name: late, kind: overdue_task, grace: 1h}\n")
    assert watched.refresh()
    assert watched.current.rules[-1].name == "late"
    path.write_text(RULES + "  - {name: broken, kind: dip}\n")
    assert not watched.refresh()
    assert "a dip rule needs metric, window, below" in (watched.last_error or "")
    assert watched.current.rules[-1].name == "late"


def test_the_dashboard_link_keeps_an_odd_manager_id_in_its_own_path_segment() -> None:
    """Ids come from the directory and the sources: one with '/', '?', '#', '%' or a space must
    still link to its own page, not to /metrics or to another manager's."""
    odd = "../../metrics?x=1#a %41 ж"
    world = World()
    world.directory = parse_directory(
        DIRECTORY.replace("id: petrov", f"id: {json.dumps(odd)}"), suffix=".yaml"
    )
    world.usual_day("ivanova")
    notices = world.run(at(TODAY, "09:00"), at(TODAY, "11:00"))
    links = {n.alert.dashboard_url for n in notices if n.alert.manager_id == odd}
    expected = "http://dash.example/managers/..%2F..%2Fmetrics%3Fx%3D1%23a%20%2541%20%D0%B6"
    assert links == {expected}
    assert urllib.parse.unquote(expected.rsplit("/", 1)[1]) == odd
