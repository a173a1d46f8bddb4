"""FreeSWITCH call legs to canonical call events: the rules both FreeSWITCH CDR formats share.

FreeSWITCH writes one CDR per *channel* (a leg), not one per call. A customer's call answered on
extension 1001 is an a-leg (the gateway channel that came in) and a b-leg (the channel the switch
placed to 1001's phone), and mod_json_cdr logs both by default (``log-b-leg=true``). Each leg
names both parties, but its times and billsec are its own channel's: the a-leg of that call may
have been answered by an IVR a minute before 1001 picked up.

So a leg speaks for the party whose channel it is (its *owner*: the caller on an "inbound" leg,
the callee on an "outbound" one), and for the other party only when that party's own leg is not
logged. Otherwise the consolidated call (legs grouped by call id, talk seconds summed per manager)
would count every conversation twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, NamedTuple

from pydantic import ValidationError

from processors.parsers._common import redact, summarize
from processors.parsers.base import NoActivity, RecordError
from salespulse.models import (
    ActivityEvent,
    ActivityKind,
    Actor,
    Direction,
    SourceFamily,
    SourceRef,
    derive_event_id,
)

Side = Literal["caller", "callee"]
# Why a leg gives no event: the leg speaks only for sides that are managers' extensions.
NOBODYS_LEG = (
    "a call leg on which no side is a manager's extension by internal_extension_pattern (a "
    "named peer or SIP user counts once the pattern admits its name)"
)

_UNSIGNED = re.compile(r"\d{1,9}", re.ASCII)
# switch_channel_cause2str() names: upper-case words joined by underscores (NORMAL_CLEARING).
_HANGUP_CAUSE = re.compile(r"[A-Z][A-Z0-9_]{0,63}", re.ASCII)


@dataclass(frozen=True, slots=True)
class Leg:
    """One FreeSWITCH channel's CDR, reduced to what the call event needs.

    ``key`` is what event ids derive from (the leg's uuid, or for mod_cdr_csv ``legs=ab`` the
    uuid both legs of a bridge name). ``caller`` and ``callee`` are the parties' extensions when
    they are managers' extensions, else None; ``caller_number`` and ``destination`` are the
    numbers as FreeSWITCH gave them.

    ``answered`` and ``billsec`` are the channel's own. ``peer_answered`` and ``peer_billsec``
    are those of the party the leg reports for without owning it (``report_peer``): an a-leg's
    own answer may be an IVR's, so the party it was bridged to answered only if a bridge
    happened, and talked from then on.
    """

    key: str
    call_id: str
    owner: Side
    caller: str | None
    callee: str | None
    caller_number: str
    destination: str
    start: datetime
    end: datetime
    duration: int
    billsec: int
    answered: bool
    peer_answered: bool
    peer_billsec: int


def seconds(value: str, field: str) -> int:
    if _UNSIGNED.fullmatch(value) is None:
        raise RecordError("invalid", f"{field}: {redact(value)} is not a non-negative integer")
    return int(value)


def check_counters(duration: int, billsec: int, start: datetime, end: datetime) -> None:
    if end < start:
        raise RecordError("invalid", "end is before start")
    if billsec > duration:
        raise RecordError("invalid", "billsec exceeds duration")


def check_hangup_cause(value: str) -> None:
    # Not used for the event, but a cause of the wrong shape means a shifted or garbled record.
    if _HANGUP_CAUSE.fullmatch(value) is None:
        raise RecordError("invalid", f"hangup_cause: {redact(value)} is not a FreeSWITCH cause")


class _Party(NamedTuple):
    """One manager's side of a leg: who, which end of the call, and whether the leg is theirs
    (its answer and billsec are then theirs; otherwise the peer's are)."""

    actor_id: str
    side: Side
    direction: Direction
    counterpart: str | None
    own: bool


def leg_events(
    format_name: str,
    leg: Leg,
    source: SourceRef,
    *,
    report_peer: bool,
    unattributed: bool | None = None,
    offer_caller: bool = False,
) -> list[ActivityEvent]:
    """One call event per manager the leg speaks for, each from that manager's point of view.

    ``report_peer`` says the other party's leg has no record of its own (b-legs not logged), so
    this leg speaks for both sides, as an Asterisk CDR does. ``unattributed`` (default: as
    ``report_peer``) sends a leg with no extension on either side to its destination number,
    which attribution reports as unattributed; that is only right when no other leg of the call
    can name the party who answered. ``offer_caller``: a record that names no channel (a
    ``mod_cdr_csv`` line) follows that event with its caller's, which the pipeline keeps if the
    directory holds the caller's number (``processors.pipeline.settle_sides``).
    """
    parties: list[_Party] = []
    if leg.caller is not None and (report_peer or leg.owner == "caller"):
        direction = Direction.INTERNAL if leg.callee else Direction.OUTGOING
        counterpart = leg.callee or leg.destination or None
        parties.append(_Party(leg.caller, "caller", direction, counterpart, leg.owner == "caller"))
    if leg.callee is not None and (report_peer or leg.owner == "callee"):
        direction = Direction.INTERNAL if leg.caller else Direction.INCOMING
        counterpart = leg.caller or leg.caller_number or None
        parties.append(_Party(leg.callee, "callee", direction, counterpart, leg.owner == "callee"))
    fallback = report_peer if unattributed is None else unattributed
    if fallback and leg.caller is None and leg.callee is None:
        if not leg.destination:
            raise RecordError("invalid", "no extension on either side and no destination")
        # The switch itself (an IVR, a queue) was that party: the leg's own answer is its answer.
        counterpart = leg.caller_number or None
        parties.append(_Party(leg.destination, "callee", Direction.INCOMING, counterpart, True))
        if offer_caller and counterpart and counterpart != leg.destination:
            # Not an extension by its shape, the caller's number may still be a manager's (an
            # account numbered like a phone): only the directory can tell.
            own = leg.owner == "caller"
            parties.append(_Party(counterpart, "caller", Direction.OUTGOING, leg.destination, own))
    if not parties:
        # Said, not silent: a manager's leg read as nobody's looks like a lost call otherwise.
        return NoActivity(NOBODYS_LEG)
    return [_event(format_name, leg, source, party) for party in parties]


def _event(format_name: str, leg: Leg, source: SourceRef, party: _Party) -> ActivityEvent:
    answered = leg.answered if party.own else leg.peer_answered
    # Talk time belongs to a party that answered; billsec of a leg nobody answered is not talk.
    talk = (leg.billsec if party.own else leg.peer_billsec) if answered else 0
    try:
        return ActivityEvent.checked(
            event_id=derive_event_id(format_name, leg.key, party.side),
            kind=ActivityKind.CALL,
            action="leg",
            occurred_at=leg.start,
            ended_at=leg.end,
            actor=Actor(SourceFamily.PBX, party.actor_id),
            source=source,
            direction=party.direction,
            answered=answered,
            duration_seconds=leg.duration,
            talk_seconds=talk,
            counterpart=party.counterpart,
            call_id=leg.call_id,
        )
    except ValidationError as exc:
        raise RecordError("invalid", summarize(exc)) from None
