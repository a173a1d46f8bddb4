"""How well alert rules catch a manager's dip, how late, and how often they cry wolf.

A replay on a controlled clock: no Kafka, no ClickHouse, no waiting. ``--managers`` managers of
one Moscow department (benchmarks/alert_traffic.py: activity levels, calls that never overlap,
bursts, meetings, breaks, lunch, quieter afternoons, chats for a third) work ``--days`` working
days of the shipped calendar (salespulse/examples/calendar.example.yaml) from Monday 30 November
2026, after ``--weeks`` weeks of the same traffic that feed the baselines as the worker's hourly
history does. On the test days every other manager-day holds one injected dip of 90 minutes —
silent, 25 % or 50 % of the usual rate, in turn per activity level — the rest is normal traffic.

Every minute of the working days the worker's own code judges the rules
(``processors.alerting.evaluation.evaluate``: ``judge`` then ``AlertEngine.step``, with the
quiet book) on a snapshot of what the worker would have read: each call or chat visible once it
ended (plus 5 s), counted in the minute it began; baselines rebuilt every morning from the
history, the earlier test days included. A fire from a dip's start until 30 minutes after its
end detects it (delay: fire minus dip start); any other fire is a false alarm.

Rules measured: the file (``--rules``, default salespulse/examples/alerts.example.yaml) as is,
for the kinds that judge activity (dip, pace, inactivity, department_dip, drop) on metrics the
traffic has, plus sweeps of a threshold of the file's first dip, inactivity and drop rule (of
the rule docs/alerts.md shows when the file has none): ``below``, ``idle``, the ``false_alarms``
budget. An alert already firing when a dip begins does not fire again: the dip is missed, the
earlier fire is a false alarm.

    .venv/bin/python -m benchmarks.alert_quality                 # the full run, printed
    .venv/bin/python -m benchmarks.alert_quality --write         # ... and in docs/benchmarks.md
    .venv/bin/python -m benchmarks.alert_quality --smoke         # a few managers, 2 days
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

from benchmarks.alert_traffic import (
    METRICS,
    Activity,
    Dip,
    Profile,
    hour_rows,
    manager_day,
    profiles,
    silences,
)
from processors.alerting.baseline import build_baselines, local_today
from processors.alerting.conditions import judged_metrics
from processors.alerting.engine import AlertEngine
from processors.alerting.evaluation import evaluate
from processors.alerting.rules import FalseAlarms, Rule, RuleKind, RulesFile, load_rules
from processors.alerting.situation import QuietBook, Situation
from processors.alerting.workdays import Workdays
from salespulse.activity import ActivitySnapshot, HourRow, minute_counts
from salespulse.alert_model import AlertState
from salespulse.calendar import load_calendar
from salespulse.directory import Directory, parse_directory
from salespulse.sections import REPO_ROOT

SHIPPED_RULES = REPO_ROOT / "salespulse" / "examples" / "alerts.example.yaml"
CALENDAR = REPO_ROOT / "salespulse" / "examples" / "calendar.example.yaml"
DEPARTMENT, ZONE = "msk", ZoneInfo("Europe/Moscow")
FIRST_TEST_DAY = date(2026, 11, 30)  # a Monday
DIP_FACTORS = (0.0, 0.25, 0.5)
DIP_LENGTH = timedelta(minutes=90)
MATCH_AFTER = timedelta(minutes=30)  # a fire this long after a dip ended still tells of it
# Local starts a 90-minute dip fits in without reaching lunch or the end of the day.
DIP_STARTS = ((clock(9, 40), clock(11, 25)), (clock(14, 10), clock(16, 25)))
JUDGED_KINDS = frozenset(
    {RuleKind.DIP, RuleKind.PACE, RuleKind.INACTIVITY, RuleKind.DEPARTMENT_DIP, RuleKind.DROP}
)
# The threshold each sweep moves, on a copy of the file's first rule of the kind, or of the
# rule here when the file has none (the drop rule, commented out in the shipped file).
SWEEPS: dict[RuleKind, tuple[str, tuple[object, ...]]] = {
    RuleKind.DIP: ("below", (0.3, 0.4, 0.5, 0.6, 0.7)),
    RuleKind.INACTIVITY: ("idle", tuple(timedelta(minutes=m) for m in (15, 30, 45, 60, 90))),
    RuleKind.DROP: (
        "false_alarms",
        tuple(FalseAlarms(1, days) for days in (1, 5, 20, 100)),
    ),
}
TEMPLATES = {
    RuleKind.DIP: Rule.model_validate(
        {
            "name": "outgoing_calls_dip",
            "kind": "dip",
            "metric": "calls_out",
            "window": "2h",
            "below": 0.5,
            "min_expected": 4,
        }
    ),
    RuleKind.INACTIVITY: Rule.model_validate(
        {"name": "inactive", "kind": "inactivity", "idle": "45m"}
    ),
    RuleKind.DROP: Rule.model_validate(
        {"name": "outgoing_calls_drop", "kind": "drop", "metric": "calls_out"}
    ),
}
# The lengths of silence counted in the usual traffic (the table of silences).
SILENCE_MINUTES = (15, 20, 30, 45, 60, 90)
# The targets.
MAX_FALSE_PER_100H = 1.0
SILENT_AT_LEAST, SILENT_WITHIN = 6.0, 20.0  # activities an hour; median minutes
QUARTER_AT_LEAST, QUARTER_WITHIN = 10.0, 60.0  # calls an hour; median minutes
SECTION = "## Alert quality"
NOTES = """\
Reading the tables (the settings named are the shipped ones):

- The targets cannot all be met on this traffic by any rule, and the table of silences says
  why: a manager of 15-20 calls an hour has a stretch of 20 minutes without any call or chat
  about 14 times per 100 manager-hours (meetings, breaks, lulls), a slower one far more often.
  A rule that tells a silence within 20 minutes must fire on each of them, over ten times the
  budget of 1 per 100 manager-hours; one that keeps to the budget must wait for silences
  longer than the usual day's, well over an hour. Only knowing *why* a manager is silent
  (a meeting in the CRM, a break in the calendar) moves that floor; a call in progress
  already does (AMI presence, Bitrix24 call start).
- `inactivity` fires on exactly those silences: its false alarms per level match the table's
  column for its `idle` (60 minutes: 20.6, 7.4 and 3.6 against 21.2, 7.5 and 3.7). `idle`
  chooses a point on the curve, nothing more: shorter tells a silence sooner and pages on
  every meeting as long. A partial drop it sees only through the gaps it leaves.
- `drop` judges each window against the manager's own usual with their measured dispersion
  (variance over mean of their hourly counts), so false alarms fall to about twice the budget
  (at 1 per 20 working days: 1.45 per 100 manager-hours against 0.62; judged as Poisson,
  2.51). The rest of the excess is burstiness shorter than an hour, which hourly history does
  not show. It tells silences of high-rate managers within about 75 minutes and seldom the
  rest: a window must expect some 20 calls before an empty one is rare for a bursty manager.
- `dip` compares its window (2 working hours) with a fixed fraction of what the window
  expects: a silence must fill about `1 - below` of the window before the ratio breaches, then
  the hold adds 15 minutes, so it tells a silence after an hour or more at any `below`, and
  it ignores how noisy small counts are, so it catches more partial drops than `drop` at
  several times the false alarms. A manager expecting `min_expected` (4) or less in the
  window, the low level here, is not judged at all.
- `pace` holds the day's projection against the company norm (40 outgoing calls a day), not
  against the manager's own level: low-activity managers are under that norm every day, which
  it reports; as a detector of dips it is noise, hence shipped as `info`.
- An alert already firing when a dip begins does not fire again: the dip counts as missed and
  the earlier fire as a false alarm, as the on-call person saw it.

The traffic is a model, not a recording: bursty on purpose (gaps between calls gamma with shape
0.5, meetings of 30-90 minutes, short breaks), and every meeting is a stretch without calls
nobody wants to be paged about. Calls reach a manager through a queue, so a silent manager has
no missed calls counting as activity. The replay ticks once a minute (the worker every second:
a delay here may be up to a minute longer than the worker's). 36 managers, the team of the
issue, over 12 working days take about 3 minutes of CPU here (longer on the wall clock when
the machine is shared), most of it the drop rules' windows. Measure your own rules file with
`--rules`: your team's traffic may be steadier or burstier than this one.
"""


@dataclass(frozen=True)
class Config:
    managers: int = 36
    days: int = 12
    weeks: int = 5
    seed: int = 1
    tick: timedelta = timedelta(minutes=1)


SMOKE = Config(managers=9, days=2, weeks=4)


@dataclass(frozen=True)
class Measured:
    """A rule in the run: from the file (``setting`` empty) or a sweep's variant."""

    rule: Rule
    family: str = ""  # the sweep: "outgoing_calls_dip below"
    setting: str = ""  # the threshold's value in it


@dataclass
class Outcome:
    dip: Dip
    profile: Profile
    delays: dict[str, float | None] = field(default_factory=dict)  # rule → minutes, or missed


@dataclass
class Result:
    config: Config
    rules_path: Path
    measured: list[Measured]
    not_measured: list[tuple[str, str]]  # rule, why
    profiles: list[Profile]
    outcomes: list[Outcome]
    false_alarms: dict[str, dict[str, int]]  # rule → level → fires without a dip
    silences: dict[str, dict[int, int]]  # level → minutes → stretches that long, outside dips
    exposure: dict[str, float]  # level → manager-hours at work outside dips
    department_hours: float
    seconds: float
    cpu_seconds: float


def measured_rules(rules: RulesFile) -> tuple[list[Measured], list[tuple[str, str]]]:
    """The file's rules this replay can judge, and the sweeps built on them."""
    measured, skipped = [], []
    for rule in rules.active_rules():
        metrics = rule.activity_metrics if rule.kind is RuleKind.INACTIVITY else (rule.metric,)
        if rule.kind not in JUDGED_KINDS:
            skipped.append((rule.name, f"{rule.kind}: judges events, not a dip in activity"))
        elif not set(metrics) <= METRICS:
            skipped.append((rule.name, f"{', '.join(map(str, metrics))}: not in this traffic"))
        else:
            measured.append(Measured(rule))
    for kind, (name, values) in SWEEPS.items():
        template = next((m.rule for m in measured if m.rule.kind is kind), None)
        family = f"{template.name}: {name}" if template is not None else ""
        if template is None:
            template = TEMPLATES[kind]
            family = f"{template.name} (not in the file): {name}"
        for number, value in enumerate(values):
            variant = template.model_copy(update={name: value, "name": f"sweep_{kind}_{number}"})
            measured.append(Measured(variant, family, _setting(value)))
    return measured, skipped


def _setting(value: object) -> str:
    if isinstance(value, timedelta):
        return f"{value.total_seconds() / 60:g}m"
    if isinstance(value, FalseAlarms):
        return f"1 per {value.days:g} days" if value.alarms == 1 else str(value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def directory_of(people: Sequence[Profile]) -> Directory:
    lines = [
        "departments:",
        f"  - {{id: {DEPARTMENT}, name: Moscow sales, timezone: {ZONE.key}}}",
        "managers:",
    ]
    lines += [
        f"  - {{id: {p.manager_id}, name: Manager {p.manager_id}, department: {DEPARTMENT}, "
        "identities: []}"
        for p in people
    ]
    return parse_directory("\n".join(lines) + "\n", suffix=".yaml")


def working_days(workdays: Workdays, first: date, count: int) -> list[date]:
    days: list[date] = []
    day = first
    while len(days) < count:
        if workdays.intervals("", DEPARTMENT, ZONE, day):
            days.append(day)
        day += timedelta(days=1)
    return days


def plan_dips(people: Sequence[Profile], days: Sequence[date], seed: int) -> dict[date, list[Dip]]:
    """Every other manager-day one dip; each level takes the factors in turn."""
    rng = random.Random(f"dips:{seed}")
    turn: dict[str, int] = {}
    plan: dict[date, list[Dip]] = {}
    for number, day in enumerate(days):
        for index, person in enumerate(people):
            if (index // 3 + number) % 2:
                continue
            factor = DIP_FACTORS[turn.get(person.level, 0) % len(DIP_FACTORS)]
            turn[person.level] = turn.get(person.level, 0) + 1
            low, high = rng.choice(DIP_STARTS)
            minutes = rng.randint(low.hour * 60 + low.minute, high.hour * 60 + high.minute)
            start = datetime.combine(day, clock(minutes // 60, minutes % 60), ZONE)
            start = start.astimezone(UTC)
            plan.setdefault(day, []).append(
                Dip(person.manager_id, start, start + DIP_LENGTH, factor)
            )
    return plan


class _Today:
    """What the worker's reader of today's activity would hand the engine, minute by minute:
    a manager's objects stay the same until one of their records arrives."""

    def __init__(self, activities: dict[str, list[Activity]], metrics: frozenset[str]) -> None:
        self._pending = {m: sorted(a, key=lambda x: x.visible) for m, a in activities.items()}
        self._seen: dict[str, list[Activity]] = {m: [] for m in activities}
        self._metrics = metrics
        self.minutes: dict[str, dict[str, tuple[tuple[datetime, int], ...]]] = {}
        self.last_active: dict[str, datetime] = {}
        self._previous: ActivitySnapshot | None = None

    def snapshot(self, now: datetime) -> ActivitySnapshot:
        for manager_id, pending in self._pending.items():
            arrived = 0
            while arrived < len(pending) and pending[arrived].visible <= now:
                arrived += 1
            if not arrived:
                continue
            seen = self._seen[manager_id]
            seen.extend(pending[:arrived])
            del pending[:arrived]
            self.minutes[manager_id] = {
                metric: minute_counts(a.start for a in seen if metric in a.metrics)
                for metric in self._metrics
            }
            self.last_active[manager_id] = max(a.end for a in seen)
        snapshot = ActivitySnapshot(now, dict(self.minutes), dict(self.last_active))
        if self._previous is not None:
            snapshot.carry_series_from(self._previous)
        self._previous = snapshot
        return snapshot


def run(config: Config, rules_path: Path = SHIPPED_RULES) -> Result:
    started, cpu = time.perf_counter(), time.process_time()
    measured, skipped = measured_rules(load_rules(rules_path))
    file_rules = load_rules(rules_path)
    rules = RulesFile(
        norms=file_rules.norms, rules=tuple(m.rule for m in measured), notify=file_rules.notify
    )
    metrics = judged_metrics(rules)
    people = profiles(config.managers, config.seed)
    directory = directory_of(people)
    workdays = Workdays(load_calendar(CALENDAR))
    days = working_days(workdays, FIRST_TEST_DAY, config.days)
    history: list[HourRow] = []
    day = FIRST_TEST_DAY - timedelta(weeks=config.weeks)
    while day < FIRST_TEST_DAY:
        for person in people:
            usual = manager_day(person, DEPARTMENT, ZONE, workdays, day, (), config.seed)
            history += hour_rows(person.manager_id, DEPARTMENT, ZONE, usual)
        day += timedelta(days=1)
    plan = plan_dips(people, days, config.seed)
    by_id = {person.manager_id: person for person in people}
    outcomes: list[Outcome] = []
    false_alarms: dict[str, dict[str, int]] = {m.rule.name: {} for m in measured}
    exposure: dict[str, float] = {}
    quiet_stretches: dict[str, dict[int, int]] = {}
    department_hours = 0.0
    engine, quiet = AlertEngine(), QuietBook()
    for day in days:
        dips = {dip.manager_id: dip for dip in plan.get(day, [])}
        activities = {
            person.manager_id: manager_day(
                person,
                DEPARTMENT,
                ZONE,
                workdays,
                day,
                [dips[person.manager_id]] if person.manager_id in dips else [],
                config.seed,
            )
            for person in people
        }
        intervals = workdays.intervals("", DEPARTMENT, ZONE, day)
        first, last = intervals[0][0], intervals[-1][1]
        baselines = build_baselines(
            history, workdays.calendar, directory, local_today(directory, first), metrics=metrics
        )
        today = _Today(activities, metrics & METRICS)
        notices = []
        now = first - timedelta(minutes=5)
        while now <= last + timedelta(minutes=5):
            situation = Situation(
                now, rules, directory, workdays, today.snapshot(now), baselines, "", quiet
            )
            notices += [n for n in evaluate(engine, situation) if n.state is AlertState.FIRING]
            now += config.tick
        day_outcomes = {m: Outcome(dip, by_id[m]) for m, dip in dips.items()}
        outcomes += day_outcomes.values()
        for notice in notices:
            alert = notice.alert
            if not alert.manager_id:
                false_alarms[alert.rule]["department"] = (
                    false_alarms[alert.rule].get("department", 0) + 1
                )
                continue
            outcome = day_outcomes.get(alert.manager_id)
            if (
                outcome is not None
                and outcome.dip.start <= notice.at <= outcome.dip.end + MATCH_AFTER
                and alert.rule not in outcome.delays
            ):
                outcome.delays[alert.rule] = (notice.at - outcome.dip.start).total_seconds() / 60
            else:
                level = by_id[alert.manager_id].level
                false_alarms[alert.rule][level] = false_alarms[alert.rule].get(level, 0) + 1
        for person in people:
            worked = workdays.seconds(person.manager_id, DEPARTMENT, ZONE, first, last)
            dip = dips.get(person.manager_id)
            if dip is not None:
                end = dip.end + MATCH_AFTER
                worked -= workdays.seconds(person.manager_id, DEPARTMENT, ZONE, dip.start, end)
            exposure[person.level] = exposure.get(person.level, 0.0) + worked / 3600
            _count_silences(
                quiet_stretches.setdefault(person.level, {}),
                activities[person.manager_id],
                (first, last),
                dip,
                partial(workdays.seconds, person.manager_id, DEPARTMENT, ZONE),
            )
        department_hours += workdays.seconds("", DEPARTMENT, ZONE, first, last) / 3600
        for person in people:
            rows = hour_rows(person.manager_id, DEPARTMENT, ZONE, activities[person.manager_id])
            history += rows
    for outcome in outcomes:
        for m in measured:
            outcome.delays.setdefault(m.rule.name, None)
    return Result(
        config,
        rules_path,
        measured,
        skipped,
        people,
        outcomes,
        false_alarms,
        quiet_stretches,
        exposure,
        department_hours,
        time.perf_counter() - started,
        time.process_time() - cpu,
    )


def _count_silences(
    counts: dict[int, int],
    activities: Sequence[Activity],
    day: tuple[datetime, datetime],
    dip: Dip | None,
    working_seconds: Callable[[datetime, datetime], float],
) -> None:
    """Add the day's silences of at least each of ``SILENCE_MINUTES`` to ``counts``, leaving
    out the dip and the half hour after it (a silence there is not a false alarm's)."""
    spans = [day] if dip is None else [(day[0], dip.start), (dip.end + MATCH_AFTER, day[1])]
    for start, end in spans:
        if end <= start:
            continue
        inside = [a for a in activities if a.end > start and a.start < end]
        for minutes in silences(inside, start, end, working_seconds):
            for at_least in SILENCE_MINUTES:
                if minutes >= at_least:
                    counts[at_least] = counts.get(at_least, 0) + 1


# The report. Delays are in minutes; a missed dip is a delay of "never" (inf), so a median is
# "never" when half the dips or more were missed.


def quantile(values: Sequence[float], share: float) -> float:
    """Nearest rank: the smallest value with at least ``share`` of the values at or under it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def delays(
    result: Result, rule: str, factor: float, people: Iterable[Profile] | None = None
) -> list[float]:
    wanted = None if people is None else {p.manager_id for p in people}
    return [
        math.inf if (delay := outcome.delays[rule]) is None else delay
        for outcome in result.outcomes
        if outcome.dip.factor == factor and (wanted is None or outcome.dip.manager_id in wanted)
    ]


def false_rate(result: Result, rule: str, levels: Iterable[str] | None = None) -> float:
    """False alarms per 100 manager-hours at work outside the dips."""
    chosen = list(result.exposure) if levels is None else list(levels)
    hours = sum(result.exposure.get(level, 0.0) for level in chosen)
    fires = sum(result.false_alarms[rule].get(level, 0) for level in chosen)
    return 100 * fires / hours if hours else 0.0


def _minutes(value: float) -> str:
    return "never" if math.isinf(value) else f"{value:.0f}"


def _dips_cell(found: list[float]) -> str:
    if not found:
        return "—"
    hits = sum(1 for value in found if not math.isinf(value))
    median, p90 = quantile(found, 0.5), quantile(found, 0.9)
    return f"{hits}/{len(found)} · {_minutes(median)} · {_minutes(p90)}"


@dataclass(frozen=True)
class Targets:
    false_alarms: bool
    silent: bool | None  # None: no such dips in the run
    quarter: bool | None


def targets(result: Result, rule: str) -> Targets:
    busy = [p for p in result.profiles if p.activities_per_hour >= SILENT_AT_LEAST]
    calling = [p for p in result.profiles if p.calls_per_hour >= QUARTER_AT_LEAST]
    silent, quarter = delays(result, rule, 0.0, busy), delays(result, rule, 0.25, calling)
    return Targets(
        false_rate(result, rule) <= MAX_FALSE_PER_100H,
        quantile(silent, 0.5) <= SILENT_WITHIN if silent else None,
        quantile(quarter, 0.5) <= QUARTER_WITHIN if quarter else None,
    )


def _verdict(met: bool | None) -> str:
    return "—" if met is None else ("met" if met else "missed")


def _kind(measured: Measured) -> str:
    return str(measured.rule.kind)


def shipped_table(result: Result) -> str:
    levels = [level for level in ("low", "medium", "high") if level in result.exposure]
    lines = [
        "| rule | kind | managers | silent | 25 % | 50 % | false alarms / 100 manager-h |",
        "|---|---|---|---|---|---|---|",
    ]
    for measured in (m for m in result.measured if not m.family):
        name = measured.rule.name
        if measured.rule.kind is RuleKind.DEPARTMENT_DIP:
            fires = result.false_alarms[name].get("department", 0)
            per_100 = 100 * fires / result.department_hours if result.department_hours else 0.0
            lines.append(
                f"| {name} | {_kind(measured)} | the department | — | — | — | "
                f"{per_100:.2f} per 100 department-h ({fires} fires) |"
            )
            continue
        for level in [*levels, "all"]:
            people = [p for p in result.profiles if level in ("all", p.level)]
            cells = [_dips_cell(delays(result, name, f, people)) for f in DIP_FACTORS]
            rate = false_rate(result, name, None if level == "all" else [level])
            label = "all" if level == "all" else f"{level} ({len(people)})"
            lines.append(
                f"| {name} | {_kind(measured)} | {label} | {' | '.join(cells)} | {rate:.2f} |"
            )
    return "\n".join(lines)


def targets_table(result: Result) -> str:
    lines = [
        "| rule | false alarms ≤ 1 / 100 manager-h | silent, ≥ 6 activities/h: median ≤ 20 min "
        "| 25 %, ≥ 10 calls/h: median ≤ 60 min |",
        "|---|---|---|---|",
    ]
    busy = [p for p in result.profiles if p.activities_per_hour >= SILENT_AT_LEAST]
    calling = [p for p in result.profiles if p.calls_per_hour >= QUARTER_AT_LEAST]
    for measured in result.measured:
        if measured.rule.kind is RuleKind.DEPARTMENT_DIP:
            continue
        name = measured.rule.name
        met = targets(result, name)
        silent, quarter = delays(result, name, 0.0, busy), delays(result, name, 0.25, calling)
        label = f"{measured.family} {measured.setting}" if measured.family else name
        lines.append(
            f"| {label} | {false_rate(result, name):.2f}: {_verdict(met.false_alarms)} "
            f"| {_minutes(quantile(silent, 0.5)) if silent else '—'}: {_verdict(met.silent)} "
            f"| {_minutes(quantile(quarter, 0.5)) if quarter else '—'}: {_verdict(met.quarter)} |"
        )
    return "\n".join(lines)


def sweep_table(result: Result) -> str:
    lines = [
        "| sweep | setting | false alarms / 100 manager-h | silent | 25 % | 50 % |",
        "|---|---|---|---|---|---|",
    ]
    hours_a_day = result.department_hours / result.config.days
    for measured in (m for m in result.measured if m.family):
        name = measured.rule.name
        cells = [_dips_cell(delays(result, name, f)) for f in DIP_FACTORS]
        setting = measured.setting
        if measured.rule.kind is RuleKind.DROP:
            # The budget in the table's unit, for a working day of the calendar's length.
            budget = 100 * measured.rule.false_alarms.per_working_day / hours_a_day
            setting += f" (budget {budget:.2f})"
        lines.append(
            f"| {measured.family} | {setting} | {false_rate(result, name):.2f} "
            f"| {' | '.join(cells)} |"
        )
    return "\n".join(lines)


def silence_table(result: Result) -> str:
    head = " | ".join(f"≥ {minutes} min" for minutes in SILENCE_MINUTES)
    lines = [f"| managers | {head} |", "|---|" + "---|" * len(SILENCE_MINUTES)]
    for level in [*(level for level in ("low", "medium", "high") if level in result.exposure)]:
        hours = result.exposure[level]
        counts = result.silences.get(level, {})
        cells = " | ".join(f"{100 * counts.get(m, 0) / hours:.1f}" for m in SILENCE_MINUTES)
        lines.append(f"| {level} | {cells} |")
    return "\n".join(lines)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def report(result: Result, command: str) -> str:
    config = result.config
    dips = len(result.outcomes)
    hours = sum(result.exposure.values())
    skipped = "; ".join(f"`{name}` ({why})" for name, why in result.not_measured) or "none"
    try:
        rules = result.rules_path.relative_to(REPO_ROOT)
    except ValueError:
        rules = result.rules_path
    machine = f"nproc {len(os.sched_getaffinity(0))} ({cpu_model()})"
    took = f"{result.seconds:.0f} s ({result.cpu_seconds:.0f} s of CPU)"
    ended = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    return f"""\
Command: `{command}` — ended {ended} UTC after {took}; {machine}, Python \
{platform.python_version()}, seed {config.seed}.

{config.managers} managers of one Moscow department (a third each low 2–3, medium 6–8 and high
15–20 calls an hour; a third of each level also serving chats), {config.weeks} weeks of history
feeding the baselines, then {config.days} working days judged every
{config.tick.total_seconds():g} s with the rules of `{rules}`: {dips} injected dips of 90
minutes (every other manager-day; silent, 25 % and 50 % of the usual rate in turn per level),
{hours:.0f} manager-hours at work outside them. Not measured: {skipped}.

Each cell of dips: detected/injected · median · p90 minutes from the dip's start to the fire
notice, nearest rank, a missed dip counting as "never". A fire up to 30 minutes after a dip
ended detects it; every other fire is a false alarm. How the traffic and the dips are made:
`benchmarks/alert_traffic.py`, `benchmarks/alert_quality.py`.

The rules as shipped:

{shipped_table(result)}

Sweeps: one threshold of the file's first rule of a kind moved, the rest of the rule as it is:

{sweep_table(result)}

Targets (median with misses as "never"):

{targets_table(result)}

Silences of the usual traffic: stretches of working time without a call or chat in progress,
per 100 manager-hours outside the dips (a meeting, a break, a lull). A rule that tells a
silence of N minutes cannot raise fewer false alarms than the column for N, whatever its
maths, as long as nothing tells it the manager is in a meeting:

{silence_table(result)}

{NOTES}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--managers", type=int, default=Config.managers)
    parser.add_argument("--days", type=int, default=Config.days)
    parser.add_argument("--weeks", type=int, default=Config.weeks)
    parser.add_argument("--seed", type=int, default=Config.seed)
    parser.add_argument("--rules", type=Path, default=SHIPPED_RULES)
    parser.add_argument("--smoke", action="store_true", help="9 managers, 2 days, 4 weeks")
    parser.add_argument("--write", action="store_true", help="record in docs/benchmarks.md")
    args = parser.parse_args()
    config = (
        Config(SMOKE.managers, SMOKE.days, SMOKE.weeks, args.seed)
        if args.smoke
        else Config(args.managers, args.days, args.weeks, args.seed)
    )
    result = run(config, args.rules.resolve())
    words = [".venv/bin/python -m benchmarks.alert_quality"]
    if args.smoke:
        words.append("--smoke")
    else:
        words += [f"--managers {config.managers}", f"--days {config.days}"]
        words += [f"--weeks {config.weeks}"]
    words.append(f"--seed {config.seed}")
    if args.rules.resolve() != SHIPPED_RULES:
        words.append(f"--rules {args.rules}")
    text = report(result, " ".join(words))
    print(text)
    if args.write:
        from benchmarks.results import RESULTS, write_section

        write_section(SECTION, text)
        print(f"recorded in {RESULTS}")


if __name__ == "__main__":
    main()
