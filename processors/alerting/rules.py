"""The alert rules file: norms, rules, silences, recipients and their rate limit.

One YAML file (its shape is in ``docs/alerts.md``), validated strictly: a misspelt key, an
unknown metric or a rule kind without its required fields is an error naming the entry, and the
engine keeps the last good rules until the file is fixed (``RulesWatcher``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    field_validator,
    model_validator,
)

from salespulse.activity_metrics import ACTIVITY_METRIC_NAMES, is_duration
from salespulse.alert_model import Severity
from salespulse.config_text import describe_validation, read_config_text
from salespulse.errors import ConfigurationError
from salespulse.yaml_limits import safe_load, yaml_problem

MAX_RULES_BYTES = 1024 * 1024
_DURATION = re.compile(r"^(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s)?$")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class RulesError(ConfigurationError):
    """The rules file is unreadable or invalid; the message names the offending entry."""


def parse_duration(value: object) -> timedelta:
    """``"15m"``, ``"2h"``, ``"1h30m"``, ``"90s"``; a bare number is minutes."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    try:
        if isinstance(value, int | float):
            return timedelta(minutes=value)
        match = _DURATION.match(value.strip()) if isinstance(value, str) else None
        if match is None or not any(match.groups()):
            raise ValueError(f'{value!r} is not a duration like "15m", "2h" or "1h30m"')
        hours, minutes, seconds = (int(group or 0) for group in match.groups())
        return timedelta(hours=hours, minutes=minutes, seconds=seconds)
    except OverflowError:
        # Validation reports ValueError as a bad field; an OverflowError would escape it.
        raise ValueError(f"{value!r} is longer than any duration can be") from None


Duration = Annotated[timedelta, PlainValidator(parse_duration)]


def _known_metric(value: str) -> str:
    if value not in ACTIVITY_METRIC_NAMES:
        known = ", ".join(ACTIVITY_METRIC_NAMES)
        raise ValueError(f"unknown metric {value!r}; known: {known}")
    return value


Metric = Annotated[str, PlainValidator(lambda v: _known_metric(str(v)))]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Period(StrEnum):
    DAY = "day"
    WEEK = "week"


class Norm(_Strict):
    """The company expects ``at_least`` of ``metric`` per day or week from the managers it
    applies to: everyone, a department, a role, or a role within a department."""

    metric: Metric
    per: Period = Period.DAY
    at_least: float = Field(gt=0)
    department: str | None = None
    role: str | None = None

    @property
    def specificity(self) -> int:
        return (self.department is not None) + 2 * (self.role is not None)


class RuleKind(StrEnum):
    DIP = "dip"
    PACE = "pace"
    INACTIVITY = "inactivity"
    OVERDUE_TASK = "overdue_task"
    DEPARTMENT_DIP = "department_dip"
    THRESHOLD = "threshold"
    DROP = "drop"


# Dips and pace: 15 minutes. Inactivity and drops: a minute, since their own judgement is
# already their delay (idle time; a tail probability of a stated rarity) but absence of
# activity is also what records still on their way look like. Deadlines and event counts:
# none, they are exact.
_DEFAULT_HOLD = {
    RuleKind.INACTIVITY: timedelta(minutes=1),
    RuleKind.DROP: timedelta(minutes=1),
    RuleKind.OVERDUE_TASK: timedelta(0),
    RuleKind.THRESHOLD: timedelta(0),
}


_FALSE_ALARMS = re.compile(r"^(\d+(?:\.\d+)?)\s+per\s+(?:(\d+(?:\.\d+)?)\s+)?working\s+days?$")


@dataclass(frozen=True, slots=True)
class FalseAlarms:
    """A drop rule's budget: at most ``alarms`` false alarms per manager in ``days`` working
    days, on a day like the manager's usual ones."""

    alarms: float
    days: float

    @property
    def per_working_day(self) -> float:
        return self.alarms / self.days

    def __str__(self) -> str:
        if self.days == 1:
            return f"{self.alarms:g} per working day"
        return f"{self.alarms:g} per {self.days:g} working days"


def parse_false_alarms(value: object) -> FalseAlarms:
    """``"1 per 20 working days"``, ``"2 per working day"``."""
    if isinstance(value, FalseAlarms):
        return value
    match = _FALSE_ALARMS.match(value.strip().lower()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f'{value!r} is not a budget like "1 per 20 working days"')
    alarms, days = float(match.group(1)), float(match.group(2) or 1)
    if alarms <= 0 or days <= 0:
        raise ValueError(f"{value!r}: both numbers of a budget must be positive")
    if alarms / days > 10:
        raise ValueError(f"{value!r}: over 10 false alarms a working day is no budget")
    return FalseAlarms(alarms, days)


FalseAlarmBudget = Annotated[FalseAlarms, PlainValidator(parse_false_alarms)]
# The shortest window a drop rule looks at (processors.alerting.drop.DROP_WINDOWS).
_SHORTEST_DROP_WINDOW = timedelta(minutes=5)


class Rule(_Strict):
    """One rule. Which fields apply depends on ``kind``; ``docs/alerts.md`` has one example each."""

    name: str
    kind: RuleKind
    severity: Severity = Severity.WARNING
    enabled: bool = True
    # How long the condition must hold before the alert fires, and how long it must be clear
    # before the alert resolves: together they turn a flapping condition into one alert.
    hold: Duration = timedelta(minutes=15)  # the default depends on the kind: _DEFAULT_HOLD
    resolve_hold: Duration = timedelta(minutes=10)
    departments: tuple[str, ...] = ()  # empty: every department
    roles: tuple[str, ...] = ()  # empty: every role
    notify: tuple[str, ...] = ()  # empty: the recipients of the department (see Notify)
    metric: Metric | None = None
    metrics: tuple[Metric, ...] = ()  # inactivity: what counts as activity
    window: Duration | None = None  # dip, department_dip: working time; threshold: wall clock
    below: float | None = Field(default=None, gt=0)  # dip, pace: the fraction of expected
    at_least: float | None = Field(default=None, gt=0)  # threshold: the count that fires
    min_expected: float = Field(default=0.0, ge=0)  # dip, drop: too little expected to judge
    max_window: Duration = timedelta(hours=8)  # drop: the longest window of working time
    false_alarms: FalseAlarmBudget = FalseAlarms(1, 20)  # drop: per manager
    # drop: variance ÷ mean of the counts; None: each manager's own, measured on their history
    # (baseline.Baselines.dispersion); 1: Poisson.
    dispersion: float | None = Field(default=None, ge=1, le=100, allow_inf_nan=False)
    per: Period = Period.DAY  # pace: the norm's period
    after: Duration = timedelta(hours=1)  # pace: working time into the period before judging
    idle: Duration | None = None  # inactivity: working time without activity
    grace: Duration = timedelta(0)  # overdue_task: after the deadline

    @model_validator(mode="before")
    @classmethod
    def _default_hold(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "hold" in data:
            return data
        kind = data.get("kind")
        # Any YAML value may stand there (a list, a mapping): only text can name a kind, and
        # the field's own validation says what is wrong with the rest.
        if isinstance(kind, str) and kind in _DEFAULT_HOLD:
            return {**data, "hold": _DEFAULT_HOLD[RuleKind(kind)]}
        return data

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"{value!r} is not a rule name (lower case, digits, _)")
        return value

    @model_validator(mode="after")
    def _fields_of_kind(self) -> Rule:
        needs: dict[RuleKind, tuple[str, ...]] = {
            RuleKind.DIP: ("metric", "window", "below"),
            RuleKind.DEPARTMENT_DIP: ("metric", "window", "below"),
            RuleKind.PACE: ("metric", "below"),
            RuleKind.INACTIVITY: ("idle",),
            RuleKind.THRESHOLD: ("metric", "window", "at_least"),
            RuleKind.OVERDUE_TASK: (),
            RuleKind.DROP: ("metric",),
        }
        missing = [name for name in needs[self.kind] if getattr(self, name) is None]
        if missing:
            raise ValueError(f"a {self.kind} rule needs {', '.join(missing)}")
        if self.window is not None and self.window <= timedelta(0):
            raise ValueError("window must be positive")
        if self.kind is RuleKind.DROP:
            self._drop_fields()
        elif self.dispersion is not None:
            raise ValueError("dispersion belongs to a drop rule")
        return self

    def _drop_fields(self) -> None:
        if self.window is not None or self.below is not None:
            raise ValueError("a drop rule takes max_window and false_alarms, not window and below")
        if self.metric is not None and is_duration(self.metric):
            raise ValueError(f"a drop rule counts events; {self.metric} is a duration")
        if self.max_window < _SHORTEST_DROP_WINDOW:
            raise ValueError("max_window must be at least 5m, the shortest window looked at")

    @property
    def budget_class(self) -> str:
        """Which of a recipient's rate-limit budgets the rule's alerts spend: a flood of overdue
        tasks never uses up what activity alerts need, nor the other way round."""
        return "tasks" if self.kind is RuleKind.OVERDUE_TASK else "activity"

    @property
    def activity_metrics(self) -> tuple[str, ...]:
        """Inactivity: the metrics whose events mean "the manager is active"."""
        return self.metrics or ("calls_in", "calls_out", "chats")

    def applies_to(self, department_id: str, role: str) -> bool:
        return (not self.departments or department_id in self.departments) and (
            not self.roles or role in self.roles
        )


class Silence(_Strict):
    """No notice to people while it is in force: alerts are still kept in the history.

    Every field given must match; ``until`` and ``from`` are RFC 3339 times with an offset."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    rule: str | None = None
    manager: str | None = None
    department: str | None = None
    from_: datetime | None = Field(default=None, alias="from")
    until: datetime | None = None
    comment: str = ""

    @field_validator("from_", "until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.utcoffset() is None:
            raise ValueError("silence times need a time zone offset")
        return value

    def matches(self, rule: str, manager_id: str, department_id: str, at: datetime) -> bool:
        return (
            (self.rule is None or self.rule == rule)
            and (self.manager is None or self.manager == manager_id)
            and (self.department is None or self.department == department_id)
            and (self.from_ is None or self.from_ <= at)
            and (self.until is None or at < self.until)
        )


class Notify(_Strict):
    """Who hears about a department's alerts, and how much at most."""

    default: tuple[str, ...] = ("head-of-sales",)
    departments: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    per_recipient_per_hour: int = Field(default=30, ge=1)

    def recipients(self, rule: Rule, department_id: str) -> tuple[str, ...]:
        return rule.notify or self.departments.get(department_id, self.default)


class RulesFile(_Strict):
    norms: tuple[Norm, ...] = ()
    rules: tuple[Rule, ...] = ()
    silences: tuple[Silence, ...] = ()
    notify: Notify = Notify()

    @model_validator(mode="after")
    def _unique_names(self) -> RulesFile:
        names = [rule.name for rule in self.rules]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"rule names must be unique: {', '.join(repeated)}")
        return self

    def norm_for(self, metric: str, per: Period, department_id: str, role: str) -> Norm | None:
        """The most specific norm that applies: role and department, role, department, all."""
        fitting = [
            norm
            for norm in self.norms
            if norm.metric == metric
            and norm.per == per
            and norm.department in (None, department_id)
            and norm.role in (None, role)
        ]
        return max(fitting, key=lambda norm: norm.specificity, default=None)

    def silenced(self, rule: str, manager_id: str, department_id: str, at: datetime) -> bool:
        return any(s.matches(rule, manager_id, department_id, at) for s in self.silences)

    def active_rules(self) -> Sequence[Rule]:
        return [rule for rule in self.rules if rule.enabled]


def parse_rules(text: str) -> RulesFile:
    try:
        raw: Any = safe_load(text)  # bounded: no alias bombs, no deep nesting
    except yaml.YAMLError as exc:
        raise RulesError(f"rules YAML does not parse: {yaml_problem(exc)}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RulesError("the rules file must be a mapping (norms, rules, silences, notify)")
    try:
        return RulesFile.model_validate(raw)
    except ValidationError as exc:
        raise RulesError(f"rules are invalid: {describe_validation(exc)}") from exc


def load_rules(path: Path) -> RulesFile:
    text = read_config_text(path, MAX_RULES_BYTES, "rules", RulesError)
    try:
        return parse_rules(text)
    except RulesError as exc:
        raise RulesError(f"{path}: {exc}") from exc
