"""A small, hand-checkable world for alert scenarios on a controlled clock.

Two managers in Moscow (UTC+3, no DST): ``ivanova`` with eight weeks of history (10 outgoing
calls in every working hour), and ``petrov``, new this week. The calendar: Monday to Friday
09:00-18:00 with lunch 13:00-14:00, a holiday on Wednesday 2026-11-04, and ivanova's vacation
2026-11-16..20. ``World.run`` steps the clock a minute at a time and collects the notices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from processors.alerting.baseline import build_baselines, local_today
from processors.alerting.engine import AlertEngine
from processors.alerting.evaluation import evaluate
from processors.alerting.rules import RulesFile, parse_rules
from processors.alerting.situation import QuietBook, Situation
from processors.alerting.today import TodayBoard, today_board
from processors.alerting.workdays import Workdays
from salespulse.activity import (
    CHANNEL_UP_MAX,
    LOADED_AFTER,
    ActivitySnapshot,
    HourRow,
    OpenTask,
    minute_counts,
)
from salespulse.alert_model import Alert, Notice
from salespulse.calendar import Calendar, parse_calendar
from salespulse.directory import Directory, parse_directory

MSK = ZoneInfo("Europe/Moscow")
TODAY = date(2026, 11, 26)  # a Thursday
FOREVER = datetime.max.replace(tzinfo=UTC)

DIRECTORY = """
departments:
  - {id: msk, name: Moscow sales, timezone: Europe/Moscow}
managers:
  - {id: ivanova, name: Anna Ivanova, department: msk, identities: []}
  - {id: petrov, name: Pavel Petrov, department: msk, role: telesales, identities: []}
"""

CALENDAR = """
defaults: {workdays: [mon, tue, wed, thu, fri], hours: "09:00-18:00", lunch: "13:00-14:00"}
holidays: [{date: 2026-11-04, name: Unity Day}]
absences: [{manager: ivanova, from: 2026-11-16, to: 2026-11-20, kind: vacation}]
"""

RULES = """
norms:
  - {metric: calls_out, per: day, at_least: 40}
rules:
  - {name: calls_dip, kind: dip, metric: calls_out, window: 2h, below: 0.5, hold: 15m,
     resolve_hold: 10m, min_expected: 4}
  - {name: idle, kind: inactivity, idle: 45m, metrics: [calls_out]}
  - {name: overdue, kind: overdue_task, grace: 15m}
"""


def at(day: date, hhmm: str) -> datetime:
    """Moscow wall-clock time "HH:MM" (or "HH:MM:SS") of ``day``, as UTC."""
    hours, minutes, *seconds = (int(part) for part in hhmm.split(":"))
    local = datetime(day.year, day.month, day.day, hours, minutes, *seconds, tzinfo=MSK)
    return local.astimezone(UTC)


def usual_history(
    manager: str, first: date, last: date, calendar: Calendar, per_hour: int = 10
) -> list[HourRow]:
    """``per_hour`` (10) outgoing calls in every working hour of ``manager`` on days
    first..last."""
    rows = []
    day = first
    while day <= last:
        for hour in range(24):
            start = at(day, f"{hour}:00")
            if calendar.working_seconds(manager, "msk", MSK, start, start + timedelta(hours=1)):
                rows.append(HourRow(manager, "msk", day, hour, {"calls_out": per_hour}))
        day += timedelta(days=1)
    return rows


@dataclass
class World:
    rules_text: str = RULES
    calendar_text: str = CALENDAR
    today: date = TODAY
    history_days: int = 56
    ivanova_per_hour: int = 10  # her usual outgoing calls in a working hour
    calls: dict[str, list[datetime]] = field(default_factory=dict)
    # Events of other metrics (offers, missed calls, ...): (manager, metric) → moments.
    events: dict[tuple[str, str], list[datetime]] = field(default_factory=dict)
    tasks: list[OpenTask] = field(default_factory=list)
    engine: AlertEngine = field(default_factory=AlertEngine)
    # As the evaluator runs: verdicts that cannot turn into breaches yet are given again.
    quiet: QuietBook | None = field(default_factory=QuietBook)
    directory_text: str = DIRECTORY
    # Calls stored long after they happened (a history import): (manager, start) → stored at.
    # Any other call is stored as it starts.
    stored: dict[tuple[str, datetime], datetime] = field(default_factory=dict)
    # Tasks completed: task id → when the completion was stored.
    completed: dict[str, datetime] = field(default_factory=dict)
    # When the evaluator began (``restart``); None: it has run all along.
    started: datetime | None = None
    # PBX channels of managers: (manager, up, down or None: its Hangup never came).
    channels: list[tuple[str, datetime, datetime | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._first = False
        self.directory: Directory = parse_directory(self.directory_text, suffix=".yaml")
        self.calendar = parse_calendar(self.calendar_text)
        self.rules: RulesFile = parse_rules(self.rules_text)
        self.workdays = Workdays(self.calendar)
        first = self.today - timedelta(days=self.history_days)
        history = usual_history(
            "ivanova", first, self.today - timedelta(days=1), self.calendar, self.ivanova_per_hour
        )
        # petrov started this Monday: three days of history, too few for a baseline.
        monday = self.today - timedelta(days=self.today.weekday())
        history += usual_history("petrov", monday, self.today - timedelta(days=1), self.calendar)
        now = at(self.today, "08:00")
        self.baselines = build_baselines(
            history, self.calendar, self.directory, local_today(self.directory, now)
        )

    def call_every(self, manager: str, start: datetime, end: datetime, minutes: float) -> None:
        """Outgoing calls from ``start`` every ``minutes`` until before ``end``."""
        moment = start
        while moment < end:
            self.calls.setdefault(manager, []).append(moment)
            moment += timedelta(minutes=minutes)

    def usual_day(self, *managers: str) -> None:
        """Today as usual: ivanova 10 calls an hour, petrov 5, 09:00 to 18:00."""
        for manager in managers:
            every = {"ivanova": 6, "petrov": 12}[manager]
            self.call_every(manager, at(self.today, "09:00"), at(self.today, "18:00"), every)

    def snapshot(self, now: datetime) -> ActivitySnapshot:
        minutes: dict[str, dict[str, tuple[tuple[datetime, int], ...]]] = {}
        last: dict[str, datetime] = {}
        loading: dict[str, tuple[date, datetime]] = {}
        for manager, moments in self.calls.items():
            done = sorted(m for m in moments if self.stored.get((manager, m), m) <= now)
            for moment in done:
                stored = self.stored.get((manager, moment))
                if stored is not None and stored - moment > LOADED_AFTER:
                    day = moment.astimezone(MSK).date()
                    if manager not in loading or loading[manager][1] < stored:
                        loading[manager] = (day, stored)
            minutes[manager] = {"calls_out": minute_counts(done)}
            if done:
                last[manager] = done[-1] + timedelta(minutes=3)  # a three-minute call
        for (manager, metric), moments in self.events.items():
            done = sorted(m for m in moments if m <= now)
            minutes.setdefault(manager, {})[metric] = minute_counts(done)
        tasks = tuple(
            task
            for task in self.tasks
            if (task.known_at or task.created_at) <= now
            and self.completed.get(task.task_id, FOREVER) > now
        )
        busy: dict[str, datetime] = {}
        for manager, up, down in self.channels:
            # As the snapshot's query reads them: up and not down by now, up within the cap.
            if up > now:
                continue
            seen = up if down is None or down > now else down
            last[manager] = max(last.get(manager, seen), seen)
            if (down is None or down > now) and now - up <= CHANNEL_UP_MAX:
                busy[manager] = min(busy.get(manager, up), up)
        return ActivitySnapshot(now, minutes, last, tasks, loading=loading, busy=busy)

    def restart(self, now: datetime) -> None:
        """A new leader (or the worker restarted) at ``now``: a new engine that knows only the
        alerts firing in the history."""
        firing = self.engine.firing()
        self.engine = AlertEngine()
        self.engine.restore(firing)
        self.quiet = QuietBook()
        self.started = now
        self._first = True

    def step(self, now: datetime) -> list[Notice]:
        situation = Situation(
            now,
            self.rules,
            self.directory,
            self.workdays,
            self.snapshot(now),
            self.baselines,
            "http://dash.example",
            self.quiet,
            started=self.started,
        )
        # As the evaluator's first evaluation after a restore.
        notices = evaluate(self.engine, situation, resumed=self._first)
        self._first = False
        return notices

    def board(self, now: datetime, alerts: tuple[Alert, ...] = ()) -> TodayBoard:
        """The head of sales' page's numbers for this world at ``now``."""
        return today_board(
            now,
            self.rules,
            self.directory,
            self.workdays,
            self.snapshot(now),
            self.baselines,
            alerts,
        )

    def run(
        self, start: datetime, end: datetime, every: timedelta = timedelta(minutes=1)
    ) -> list[Notice]:
        notices = []
        now = start
        while now <= end:
            notices.extend(self.step(now))
            now += every
        return notices
