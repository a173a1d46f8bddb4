"""The alert state machine: hold time, deduplication, resolution, silences and rate limits.

Conditions (``processors.alerting.conditions``) judge each rule for each subject at an instant
and hand the engine a ``Verdict`` per alert key. The engine alone decides what is worth telling:

* breached for ``hold`` without a break → the alert fires once (a notice); while it stays
  breached nothing more is said (deduplication);
* clear for ``resolve_hold`` without a break → it resolves (a notice). A condition that
  flaps while firing therefore stays one alert;
* not judged (outside working time, nothing to compare with) → a pending alert is forgotten, so
  nothing fires at lunch or on a holiday; a firing one stays as it is;
* a verdict that ends the episode (the workday is over, the task was completed), or a key that
  no verdict mentions any more (rule removed, task gone) → a firing alert resolves at once.

The hold counts from when the stored data says the condition began (``Verdict.onset``, for
the rules that can tell), not from when this engine first saw it: a new leader, or a worker
restarted, does not start every pending hold afresh and fire them all together at its start
plus the hold. It never counts from before the latest instant the key was seen not breached or
not judged, nor from inside a stretch when evaluation was not possible (``pause``: the worker
was catching up with a backlog, and the data of that time was not there to judge by).

Silenced and rate-limited alerts still fire and resolve (the history keeps them), but their
notices are marked so the channels that reach people skip them. Time is whatever ``now`` the
caller passes: tests drive the engine on a controlled clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from processors.alerting.messages import Text
from processors.alerting.rules import Rule, RulesFile
from salespulse.alert_model import Alert, AlertState, Notice, Suppression


@dataclass(frozen=True, slots=True)
class Verdict:
    """A rule's judgement about one alert key at one instant.

    ``breached`` is None when the rule could not judge now. ``draft`` holds the facts of the
    alert when breached; ``describe`` writes its texts given the instant the episode began.
    ``end_reason`` resolves a firing alert regardless of ``resolve_hold``. ``onset`` is when
    the stored data says the breach began (None: the rule cannot tell, the hold counts from the
    first judgement that found it).
    """

    key: str
    rule: Rule
    breached: bool | None
    draft: Alert | None = None
    describe: Callable[[datetime], Text] | None = None
    end_reason: str = ""
    onset: datetime | None = None


@dataclass(slots=True)
class _Track:
    rule_name: str
    pending_since: datetime | None = None
    firing: Alert | None = None
    suppressed: Suppression = Suppression.NONE
    clear_since: datetime | None = None


@dataclass(slots=True)
class _Budget:
    tokens: float
    updated: datetime


@dataclass
class AlertEngine:
    """Keeps each alert key's state between evaluations; ``step`` returns the notices."""

    _tracks: dict[str, _Track] = field(default_factory=dict)
    _budgets: dict[tuple[str, str], _Budget] = field(default_factory=dict)  # recipient, class
    # The latest stretch the stored data lagged behind (a backlog): a breach that began in it
    # holds from its end. ``_blind_since`` is set while paused, ``_blind`` once resumed.
    _blind_since: datetime | None = None
    _blind: tuple[datetime, datetime] | None = None
    # Per key, the latest instant it was judged not breached (clear, or not judged at all).
    _calm: dict[str, datetime] = field(default_factory=dict)

    def restore(self, alerts: Iterable[Alert]) -> None:
        """Alerts that were firing before a restart: they must not fire a second time."""
        for alert in alerts:
            self._tracks[alert.key] = _Track(alert.rule, firing=alert)

    def pause(self, data_until: datetime) -> None:
        """Evaluation stopped while the stored data was behind (a backlog), complete only up
        to ``data_until``: pending conditions are forgotten, firing alerts stay. When
        evaluation resumes, a breach that began after ``data_until`` holds from the resumption
        (nobody could have judged it earlier); one that began before keeps its onset."""
        self._tracks = {key: t for key, t in self._tracks.items() if t.firing is not None}
        if self._blind_since is None or data_until < self._blind_since:
            self._blind_since = data_until

    def firing(self) -> list[Alert]:
        return [track.firing for track in self._tracks.values() if track.firing is not None]

    def pending(self) -> dict[str, datetime]:
        """The keys breached but not fired yet, with the instant each breach began."""
        return {
            key: track.pending_since
            for key, track in self._tracks.items()
            if track.pending_since is not None and track.firing is None
        }

    def step(
        self,
        now: datetime,
        verdicts: Iterable[Verdict],
        rules: RulesFile,
        gone_reason: Callable[[Alert], str] = lambda alert: "gone",
    ) -> list[Notice]:
        if self._blind_since is not None:
            self._blind, self._blind_since = (self._blind_since, now), None
        notices: list[Notice] = []
        seen: set[str] = set()
        for verdict in verdicts:
            seen.add(verdict.key)
            notice = self._judge(now, verdict, rules)
            if notice is not None:
                notices.append(notice)
        for key in [key for key in self._tracks if key not in seen]:
            track = self._tracks.pop(key)
            if track.firing is not None:
                notices.append(self._resolve(track, now, gone_reason(track.firing)))
        if len(self._calm) > 2 * len(seen):
            self._calm = {key: at for key, at in self._calm.items() if key in seen}
        return notices

    def _judge(self, now: datetime, verdict: Verdict, rules: RulesFile) -> Notice | None:
        track = self._tracks.setdefault(verdict.key, _Track(verdict.rule.name))
        if track.firing is not None:
            return self._judge_firing(now, verdict, track)
        if not verdict.breached:
            # Clear, or not judged now: whatever was pending starts again from nothing.
            del self._tracks[verdict.key]
            self._calm[verdict.key] = now
            return None
        if track.pending_since is None:
            track.pending_since = self._hold_start(now, verdict)
        if now - track.pending_since < verdict.rule.hold:
            return None
        return self._fire(now, verdict, track, rules)

    def _hold_start(self, now: datetime, verdict: Verdict) -> datetime:
        """When the hold of a breach first found at ``now`` began: at its onset by the data,
        but not before the key was last seen calm, nor before evaluation was possible."""
        if verdict.onset is None or verdict.onset >= now:
            return now
        start = verdict.onset
        calm = self._calm.get(verdict.key)
        if calm is not None and calm > start:
            start = calm
        if self._blind is not None and self._blind[0] <= start < self._blind[1]:
            start = self._blind[1]
        return start

    def _judge_firing(self, now: datetime, verdict: Verdict, track: _Track) -> Notice | None:
        if verdict.end_reason:
            del self._tracks[verdict.key]
            return self._resolve(track, now, verdict.end_reason)
        if verdict.breached is None:
            return None
        if verdict.breached:
            track.clear_since = None
            return None
        if track.clear_since is None:
            track.clear_since = now
        if now - track.clear_since < verdict.rule.resolve_hold:
            return None
        del self._tracks[verdict.key]
        return self._resolve(track, now, "recovered")

    def _fire(self, now: datetime, verdict: Verdict, track: _Track, rules: RulesFile) -> Notice:
        assert verdict.draft is not None
        assert track.pending_since is not None
        draft = verdict.draft
        since = min(draft.since, track.pending_since)
        text = verdict.describe(since) if verdict.describe is not None else Text("", "")
        alert = replace(
            draft,
            since=since,
            fired_at=now,
            summary_en=text.en,
            summary_ru=text.ru,
            recipients=draft.recipients,
        )
        suppressed = Suppression.NONE
        if rules.silenced(alert.rule, alert.manager_id, alert.department_id, now):
            suppressed = Suppression.SILENCED
        else:
            allowed = self._spend(
                alert.recipients,
                verdict.rule.budget_class,
                now,
                rules.notify.per_recipient_per_hour,
            )
            if alert.recipients and not allowed:
                suppressed = Suppression.RATE_LIMITED
            else:
                alert = replace(alert, recipients=allowed)
        track.pending_since = None
        track.firing = alert
        track.suppressed = suppressed
        return Notice(alert, AlertState.FIRING, now, suppressed)

    @staticmethod
    def _resolve(track: _Track, now: datetime, reason: str) -> Notice:
        assert track.firing is not None
        # A resolution is told to whoever was told of the firing, and only to them.
        return Notice(track.firing, AlertState.RESOLVED, now, track.suppressed, reason)

    def _spend(
        self, recipients: tuple[str, ...], budget_class: str, now: datetime, per_hour: int
    ) -> tuple[str, ...]:
        """The recipients with budget left in ``budget_class``, each charged one notice (a token
        bucket per recipient and class, refilled at ``per_hour`` an hour, holding at most
        ``per_hour``)."""
        allowed = []
        for recipient in recipients:
            budget = self._budgets.get((recipient, budget_class))
            if budget is None:
                budget = self._budgets[(recipient, budget_class)] = _Budget(float(per_hour), now)
            refill = (now - budget.updated) / timedelta(hours=1) * per_hour
            budget.tokens = min(float(per_hour), budget.tokens + max(refill, 0.0))
            budget.updated = now
            if budget.tokens >= 1.0:
                budget.tokens -= 1.0
                allowed.append(recipient)
        return tuple(allowed)
