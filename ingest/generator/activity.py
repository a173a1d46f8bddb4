"""The simulation: every manager's working days in a window, as truth records and raw traffic.

Days are Monday to Friday in the department's own time zone; activity sits in 09:00-18:00 local
with nothing during the 13:00-14:00 lunch, and a per-manager intensity factor makes some
managers twice as busy as others.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

from ingest.generator.calls import incoming_calls, outgoing_calls
from ingest.generator.day import DAY, HOUR, ManagerDay
from ingest.generator.population import Manager, Population
from ingest.generator.render import Traffic, build_traffic
from ingest.generator.truth import ChatTruth, CrmTruth, Truth

CHAT_CHANNELS = ("whatsapp", "telegram", "webchat", "vk")
MISSED_CHAT_SHARE = 0.05
TASK_COMPLETED_SHARE = 0.8


def chat_sessions(day: ManagerDay, unknown_share: float) -> Iterator[ChatTruth]:
    rng, me = day.rng, day.manager
    for _ in range(day.count(8, 20)):
        started = day.at(day.work_second())
        session = day.next_id("s")
        known = rng.random() >= unknown_share
        operator = me.chat_operator if known else f"op-temp-{day.between(1, 5):02d}"
        first: int | None
        if rng.random() < MISSED_CHAT_SHARE:
            first, closed = None, started + day.between(300, 900)
            status, messages = "missed", day.between(1, 3)
        else:
            first = started + day.between(5, 120)
            closed = first + day.between(120, 1800)
            status, messages = "closed", day.between(4, 40)
        yield ChatTruth(
            session_id=session,
            operator_id=operator,
            manager=me.id if known else None,
            channel=CHAT_CHANNELS[day.between(0, len(CHAT_CHANNELS) - 1)],
            offset=day.offset,
            started=started,
            first_response=first,
            closed=closed,
            status=status,
            client_id=f"c-{day.between(0, 10**6 - 1):06d}",
            messages=messages,
        )


def crm_events(day: ManagerDay) -> Iterator[CrmTruth]:
    rng, me = day.rng, day.manager

    def event(
        kind: str,
        second: int,
        entity: str | None = None,
        *,
        amount: str | None = None,
        currency: str | None = None,
        location: str | None = None,
        due_at: int | None = None,
    ) -> CrmTruth:
        return CrmTruth(
            day.next_id("crm"),
            kind,
            me.crm_user,
            me.id,
            day.offset,
            day.at(second),
            entity,
            amount,
            currency,
            location,
            due_at,
        )

    def deal() -> str:
        return f"deal:{day.between(0, 10**5 - 1)}"

    yield event("workday.start", 8 * HOUR + 40 * 60 + day.between(0, 30 * 60 - 1))
    for _ in range(day.count(3, 10)):
        kind = "lead.created" if rng.random() < 0.4 else "lead.worked"
        yield event(kind, day.work_second(), f"lead:{day.between(0, 10**6 - 1)}")
    for _ in range(day.count(0, 3, scaled=False)):
        yield event("offer.sent", day.work_second(), deal())
    for _ in range(day.count(0, 3, scaled=False)):
        kind = "meeting.held" if rng.random() < 0.7 else "meeting.presentation"
        location = "office" if rng.random() < 0.6 else "visit"
        yield event(kind, day.work_second(), deal(), location=location)
    for _ in range(day.count(0, 2, scaled=False)):
        yield event("deal.won", day.work_second(), deal())
    for _ in range(day.count(0, 2, scaled=False)):
        cents = day.between(20_000, 1_999_999) * 100 + rng.choice((0, 0, 0, 50, 99))
        roll = rng.random()
        currency = "RUB" if roll < 0.9 else "USD" if roll < 0.96 else "EUR"
        amount = f"{cents // 100}.{cents % 100:02d}"
        yield event("payment.received", day.work_second(), deal(), amount=amount, currency=currency)
    for _ in range(day.count(3, 8)):
        task = f"task:{day.between(0, 10**7 - 1)}"
        created, completed = sorted((day.work_second(), day.work_second()))
        due = day.at(18 * HOUR) + DAY * day.between(0, 3)
        yield event("task.created", created, task, due_at=due)
        if completed > created and rng.random() < TASK_COMPLETED_SHARE:
            yield event("task.completed", completed, task)
    yield event("workday.stop", 17 * HOUR + 55 * 60 + day.between(0, 35 * 60 - 1))


def _working_days(pop: Population, manager: Manager, start: datetime, end: datetime) -> list[date]:
    zone = pop.department_of(manager).zone
    day, last = start.astimezone(zone).date(), end.astimezone(zone).date()
    days = []
    while day <= last:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


def simulate_truth(
    pop: Population,
    start: datetime,
    end: datetime,
    seed: int,
    *,
    unknown_share: float = 0.01,
    now: datetime | None = None,
) -> Truth:
    """Truth records with event time in ``[start, end)`` that were finished before ``now``.

    Each source's records come in event-time order.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be time zone aware")
    if not 0 <= unknown_share <= 1:
        raise ValueError("unknown_share must be within [0, 1]")
    low, high = start.timestamp(), end.timestamp()
    present = (now or datetime.now(UTC)).timestamp()
    truth = Truth()

    def keep(occurred: int, finished: int) -> bool:
        # A record exists only once its source has finished it: a CDR is written at hangup.
        return low <= occurred < high and finished < present

    for manager in pop.managers:
        factor = random.Random(f"{seed}:{manager.id}").uniform(0.7, 1.4)
        for day_date in _working_days(pop, manager, start, end):
            day = ManagerDay(pop, manager, day_date, seed, factor)
            for call in (*outgoing_calls(day), *incoming_calls(day, unknown_share)):
                if keep(call.start, call.start + call.duration):
                    truth.calls.append(call)
            truth.chats += [
                c for c in chat_sessions(day, unknown_share) if keep(c.started, c.closed)
            ]
            truth.crm += [e for e in crm_events(day) if keep(e.occurred, e.occurred)]
    # Stable sorts over a deterministic generation order keep ties reproducible.
    truth.calls.sort(key=lambda call: call.start)
    truth.chats.sort(key=lambda chat: chat.started)
    truth.crm.sort(key=lambda event: event.occurred)
    return truth


def simulate(
    pop: Population,
    start: datetime,
    end: datetime,
    seed: int,
    malformed_share: float = 0.005,
    unknown_share: float = 0.01,
    *,
    now: datetime | None = None,
    pbx_id: str = "pbx-1",
) -> Traffic:
    """Raw records of every source for ``[start, end)`` plus the totals they must yield.

    ``now`` defaults to the wall clock; pass it to make a window that reaches into the present
    reproducible.
    """
    if not 0 <= malformed_share <= 1:
        raise ValueError("malformed_share must be within [0, 1]")
    truth = simulate_truth(pop, start, end, seed, unknown_share=unknown_share, now=now)
    return build_traffic(pop, truth, seed=seed, malformed_share=malformed_share, pbx_id=pbx_id)
