"""Alertmanager's API v2 (``POST /api/v2/alerts``): routing, grouping, silences and on-call
receivers are Alertmanager's job; ours is to keep its view of our alerts true.

Alertmanager identifies an alert by its labels, so they are few and stable: ``alertname`` (the
rule), ``severity``, ``manager``, ``department``, ``metric`` and ``salespulse_key`` (the alert
key: two episodes of one rule about one manager stay apart). Nothing per call or per customer.

Alertmanager forgets an alert at its ``endsAt``. Like Prometheus, we post firing alerts again
every ``alertmanager_resend_seconds`` with ``endsAt`` four intervals ahead: while salespulse
lives they stay active through a few failed posts, and if it dies Alertmanager resolves them by
itself instead of paging forever. A resolve is posted with ``endsAt`` = the time it resolved.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from salespulse.alert_model import AlertState, Notice
from sinks.alerts import metrics
from sinks.alerts.channel import AlertDeliveryError, post
from sinks.alerts.payload import rfc3339

log = logging.getLogger(__name__)

RESEND_LIFETIMES = 4  # endsAt of a firing alert is this many resend intervals ahead


def _now() -> datetime:
    return datetime.now(UTC)


def alert_labels(notice: Notice) -> dict[str, str]:
    alert = notice.alert
    labels = {
        "alertname": alert.rule,
        "severity": alert.severity.value,
        "manager": alert.manager_id,
        "department": alert.department_id,
        "metric": alert.metric,
        "salespulse_key": alert.key,
    }
    # An empty label value means "no such label" to Alertmanager: leave it out explicitly.
    return {name: value for name, value in labels.items() if value}


def description(notice: Notice) -> str:
    alert = notice.alert
    lines = [
        f"{alert.metric}: {alert.actual:g} against {alert.expected:g} expected, "
        f"since {rfc3339(alert.since)}"
    ]
    if notice.state is AlertState.RESOLVED:
        lines.append(f"resolved at {rfc3339(notice.at)}: {notice.reason or 'resolved'}")
    lines += [f"{name}: {value}" for name, value in sorted(alert.details.items())]
    return "\n".join(lines)


# What the alerts of one rule are about, by the kind of subject in their key, as the plural noun
# deploy/alertmanager/salespulse.tmpl puts after a group's count: English, and Russian in the
# genitive plural ("менеджеров: 3") that reads right after any number.
_SUBJECTS = {
    "manager": ("managers", "менеджеров"),
    "department": ("departments", "отделов"),
    "task": ("tasks", "задач"),
    "loaded": ("reports of tasks", "сводок по задачам"),
}


def subjects(alert_key: str) -> tuple[str, str]:
    """The plural noun for what alerts with this key are about: ``rule/manager/id`` → managers."""
    kind = alert_key.split("/")[1] if alert_key.count("/") >= 2 else ""
    return _SUBJECTS.get(kind, ("alerts", "оповещений"))


def alertmanager_alert(notice: Notice, ends_at: datetime, language: str = "en") -> dict[str, Any]:
    """One element of the ``POST /api/v2/alerts`` body."""
    alert = notice.alert
    summary = alert.summary_ru if language == "ru" and alert.summary_ru else alert.summary_en
    subjects_en, subjects_ru = subjects(alert.key)
    annotations = {
        "summary": summary,
        "summary_en": alert.summary_en,
        "summary_ru": alert.summary_ru,
        "description": description(notice),
        "dashboard": alert.dashboard_url,
        # Who should hear of it, for routing with a matcher on the annotation's receiver side.
        "recipients": ", ".join(alert.recipients),
        # The same for every alert of a department and rule, so a group's message can name
        # them (deploy/alertmanager/salespulse.tmpl): "3 managers of Moscow sales".
        "department_name": alert.department_name,
        "subjects_en": subjects_en,
        "subjects_ru": subjects_ru,
    }
    body: dict[str, Any] = {
        "labels": alert_labels(notice),
        "annotations": {name: value for name, value in annotations.items() if value},
        "startsAt": rfc3339(alert.fired_at),
        "endsAt": rfc3339(ends_at),
    }
    if alert.dashboard_url:  # validated as a URI by Alertmanager: absent rather than empty
        body["generatorURL"] = alert.dashboard_url
    return body


class AlertmanagerChannel:
    name = "alertmanager"
    for_people = True

    def __init__(
        self,
        url: str,
        *,
        language: str = "en",
        resend_seconds: float = 60.0,
        timeout_seconds: float = 5.0,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._endpoint = f"{url.rstrip('/')}/api/v2/alerts"
        self._language = language
        self._resend = resend_seconds
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._resender: asyncio.Task[None] | None = None
        # The firing alerts Alertmanager has from us, by key: what the resender re-posts. The
        # lock keeps a re-post from landing after a resolve of the same alert.
        self._firing: dict[str, Notice] = {}
        self._lock = asyncio.Lock()

    @property
    def firing(self) -> list[Notice]:
        return list(self._firing.values())

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        self._resender = asyncio.create_task(self._resend_forever(), name="alertmanager-resend")

    async def stop(self) -> None:
        if self._resender is not None:
            self._resender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._resender
            self._resender = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def resume(self, notices: list[Notice]) -> None:
        """From now on the open alerts are these (fired before a restart, or under another
        leader): they are posted at the next resend, and any others are no longer re-posted.
        ``resume([])`` when another worker takes over alerting, or this one's re-posts would
        revive alerts the other one resolves."""
        self._firing = {
            notice.alert.key: notice
            for notice in notices
            if notice.state is AlertState.FIRING and notice.delivered_to_people
        }

    def _firing_until(self) -> datetime:
        return self._clock() + timedelta(seconds=self._resend * RESEND_LIFETIMES)

    async def send(self, notice: Notice) -> None:
        async with self._lock:
            if notice.state is AlertState.FIRING:
                await self._post([alertmanager_alert(notice, self._firing_until(), self._language)])
                self._firing[notice.alert.key] = notice
            else:
                # Forgotten before the post: if the resolve is given up, Alertmanager still
                # resolves the alert itself once its last endsAt passes.
                self._firing.pop(notice.alert.key, None)
                await self._post([alertmanager_alert(notice, notice.at, self._language)])

    async def resend(self) -> int:
        """Post every firing alert again with a later endsAt; returns how many."""
        async with self._lock:
            if not self._firing:
                return 0
            until = self._firing_until()
            await self._post(
                [alertmanager_alert(n, until, self._language) for n in self._firing.values()]
            )
            return len(self._firing)

    async def _resend_forever(self) -> None:
        while True:
            await asyncio.sleep(self._resend)
            try:
                if await self.resend():
                    metrics.RESENDS.labels("posted").inc()
            except AlertDeliveryError as exc:
                # The alerts stay active for a few more intervals: the next resend may do.
                metrics.RESENDS.labels("failed").inc()
                log.warning("re-posting firing alerts to Alertmanager failed: %s", exc)

    async def _post(self, alerts: list[dict[str, Any]]) -> None:
        if self._session is None:
            raise RuntimeError("AlertmanagerChannel used before start")
        await post(self._session, "Alertmanager", self._endpoint, json=alerts)
