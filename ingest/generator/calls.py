"""Calls of one manager-day as the PBX's CDR rows.

The shapes follow Asterisk with ``cdr.conf unanswered=no``: a transferred call is two rows
sharing the trunk channel, a ring group logs only the member who answered, and a call that the
IVR ends never reaches an extension.
"""

from __future__ import annotations

from collections.abc import Iterator

from ingest.generator.day import ManagerDay
from ingest.generator.population import Manager
from ingest.generator.truth import CallTruth

# Shares of incoming call slots, after ``unknown_share`` calls that never reach an extension.
INTERNAL_SHARE = 0.03
TRANSFER_SHARE = 0.05
RING_GROUP_SHARE = 0.15
UNROUTED_DID = "74951234567"


def _disposition(roll: float, no_answer: float, busy: float, failed: float = 0.0) -> str:
    if roll < no_answer:
        return "NO ANSWER"
    if roll < no_answer + busy:
        return "BUSY"
    if roll < no_answer + busy + failed:
        return "FAILED"
    return "ANSWERED"


def outgoing_calls(day: ManagerDay) -> Iterator[CallTruth]:
    rng, me = day.rng, day.manager
    for _ in range(day.count(30, 60)):
        start = day.at(day.work_second())
        disposition = _disposition(rng.random(), no_answer=0.22, busy=0.06, failed=0.02)
        answered = disposition == "ANSWERED"
        number = day.customer_number()
        yield CallTruth(
            kind="outgoing",
            start=start,
            src=me.extension,
            dst=number,
            clid=f'"{me.name}" <{me.extension}>',
            caller=me,
            callee=None,
            trunk=None,
            lastapp="Dial",
            lastdata=f"SIP/provider/{number},60",
            ring=day.between(3, 20) if answered else day.between(1, 40),
            billsec=day.talk_seconds() if answered else 0,
            disposition=disposition,
        )


def _from_trunk(
    day: ManagerDay,
    start: int,
    number: str,
    callee: Manager,
    *,
    trunk: str | None = None,
    dst: str | None = None,
    lastdata: str | None = None,
    ring: int,
    billsec: int,
    disposition: str,
) -> CallTruth:
    return CallTruth(
        kind="incoming",
        start=start,
        src=number,
        dst=dst or callee.extension,
        clid=f'"Client" <{number}>',
        caller=None,
        callee=callee,
        trunk=trunk,
        lastapp="Dial",
        lastdata=lastdata or f"SIP/{callee.extension},30",
        ring=ring,
        billsec=billsec,
        disposition=disposition,
    )


def _unrouted(day: ManagerDay, start: int, number: str) -> CallTruth:
    answered = day.rng.random() < 0.4
    return CallTruth(
        kind="unrouted",
        start=start,
        src=number,
        dst=UNROUTED_DID,
        clid=f'"Client" <{number}>',
        caller=None,
        callee=None,
        trunk=None,
        lastapp="Playback" if answered else "Hangup",
        lastdata="custom/office-closed" if answered else "",
        ring=day.between(0, 3),
        billsec=day.between(5, 25) if answered else 0,
        disposition="ANSWERED" if answered else "NO ANSWER",
    )


def _internal(day: ManagerDay, start: int, caller: Manager) -> CallTruth:
    me, answered = day.manager, day.rng.random() < 0.85
    return CallTruth(
        kind="internal",
        start=start,
        src=caller.extension,
        dst=me.extension,
        clid=f'"{caller.name}" <{caller.extension}>',
        caller=caller,
        callee=me,
        trunk=None,
        lastapp="Dial",
        lastdata=f"SIP/{me.extension},30",
        ring=day.between(2, 15),
        billsec=day.talk_seconds() if answered else 0,
        disposition="ANSWERED" if answered else "NO ANSWER",
    )


def incoming_calls(day: ManagerDay, unknown_share: float) -> Iterator[CallTruth]:
    rng, me = day.rng, day.manager
    for _ in range(day.count(10, 25)):
        start = day.at(day.work_second())
        number = day.customer_number()
        roll = rng.random()
        other = day.colleague()
        if roll < unknown_share:
            yield _unrouted(day, start, number)
            continue
        roll -= unknown_share
        if other is not None and roll < INTERNAL_SHARE:
            yield _internal(day, start, other)
            continue
        ring = day.between(2, 15)
        if other is not None and roll < INTERNAL_SHARE + TRANSFER_SHARE:
            first, trunk = day.between(10, 120), day.next_id("trunk")
            yield _from_trunk(
                day,
                start,
                number,
                me,
                trunk=trunk,
                ring=ring,
                billsec=first,
                disposition="ANSWERED",
            )
            yield _from_trunk(
                day,
                start + ring + first,
                number,
                other,
                trunk=trunk,
                ring=day.between(2, 10),
                billsec=day.talk_seconds(),
                disposition="ANSWERED",
            )
        elif other is not None and rng.random() < RING_GROUP_SHARE:
            # The dialled number is the group's; only the member who answered is logged.
            dial = "&".join(f"SIP/{ext}" for ext in sorted((me.extension, other.extension)))
            yield _from_trunk(
                day,
                start,
                number,
                me,
                dst=f"6{me.department[-2:]}",
                lastdata=f"{dial},30",
                ring=ring,
                billsec=day.talk_seconds(),
                disposition="ANSWERED",
            )
        else:
            disposition = _disposition(rng.random(), no_answer=0.10, busy=0.03)
            answered = disposition == "ANSWERED"
            yield _from_trunk(
                day,
                start,
                number,
                me,
                ring=ring if answered else day.between(1, 30),
                billsec=day.talk_seconds() if answered else 0,
                disposition=disposition,
            )
