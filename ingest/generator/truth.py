"""What really happened, and the totals a person would count from it.

Truth records are independent of any wire format: render.py turns them into bytes, and
``Expected`` counts them directly, so a parser bug shows up as a mismatch instead of being
reproduced in the expectation.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from ingest.generator.population import Manager

COUNTERS: tuple[str, ...] = (
    "calls_incoming",
    "calls_outgoing",
    "calls_internal",
    "calls_answered",
    "calls_incoming_answered",
    "calls_outgoing_answered",
    "calls_missed",
    "conversations",
    "talk_seconds",
    "internal_talk_seconds",
    "chats_served",
    "chats_missed",
    "meetings",
    "offers",
    "leads",
    "deals_won",
    "payments",
    "tasks_created",
    "tasks_completed",
)

# A call shorter than this is a connection, not a conversation.
CONVERSATION_SECONDS = 30

CallKind = Literal["incoming", "outgoing", "internal", "unrouted"]

_CRM_COUNTER: dict[str, str] = {
    "lead.created": "leads",
    "lead.worked": "leads",
    "offer.sent": "offers",
    "meeting.held": "meetings",
    "meeting.presentation": "meetings",
    "deal.won": "deals_won",
    "payment.received": "payments",
    "task.created": "tasks_created",
    "task.completed": "tasks_completed",
}


class CallTruth(NamedTuple):
    """One CDR row; ``start`` is UTC epoch seconds.

    ``caller``/``callee`` are the managers on internal extensions (``None`` for the trunk side);
    ``trunk`` names the provider channel so both legs of a transferred call share it.
    """

    kind: CallKind
    start: int
    src: str
    dst: str
    clid: str
    caller: Manager | None
    callee: Manager | None
    trunk: str | None
    lastapp: str
    lastdata: str
    ring: int
    billsec: int
    disposition: str

    @property
    def answered(self) -> bool:
        return self.disposition == "ANSWERED"

    @property
    def duration(self) -> int:
        return self.ring + self.billsec


class ChatTruth(NamedTuple):
    """Times are UTC epoch seconds; ``offset`` is the department's UTC offset in seconds."""

    session_id: str
    operator_id: str
    manager: str | None
    channel: str
    offset: int
    started: int
    first_response: int | None
    closed: int
    status: str
    client_id: str
    messages: int

    @property
    def served(self) -> bool:
        return self.status == "closed" and self.first_response is not None


class CrmTruth(NamedTuple):
    """Times are UTC epoch seconds; ``offset`` is the department's UTC offset in seconds."""

    event_id: str
    type: str
    user_id: str
    manager: str | None
    offset: int
    occurred: int
    entity: str | None = None
    amount: str | None = None
    currency: str | None = None
    location: str | None = None
    due_at: int | None = None


# Truth records are NamedTuples: hundreds of thousands are built per run, and a frozen
# dataclass's per-field ``object.__setattr__`` made construction the generator's bottleneck.


@dataclass(slots=True)
class Truth:
    calls: list[CallTruth] = field(default_factory=list)
    chats: list[ChatTruth] = field(default_factory=list)
    crm: list[CrmTruth] = field(default_factory=list)


@dataclass
class Expected:
    """Totals the pipeline must arrive at for the records that were not corrupted."""

    per_manager: dict[str, Counter[str]] = field(default_factory=dict)
    unattributed_events: int = 0
    malformed_records: int = 0
    valid_records: int = 0
    canonical_events: int = 0
    malformed_by_format: Counter[str] = field(default_factory=Counter)

    def _bump(self, manager: str, *names: str, talk: int = 0, talk_counter: str = "") -> None:
        counter = self.per_manager.get(manager)
        if counter is None:
            counter = self.per_manager[manager] = Counter()
        for name in names:
            counter[name] += 1
        if talk:
            counter[talk_counter] += talk

    def _call_side(self, manager: str, direction: str, call: CallTruth) -> None:
        if call.answered and direction == "calls_internal":
            # A call between two managers is no conversation with a customer: counted apart.
            self._bump(
                manager,
                direction,
                "calls_answered",
                talk=call.billsec,
                talk_counter="internal_talk_seconds",
            )
        elif call.answered:
            extra = ("conversations",) if call.billsec >= CONVERSATION_SECONDS else ()
            self._bump(
                manager,
                direction,
                f"{direction}_answered",
                "calls_answered",
                *extra,
                talk=call.billsec,
                talk_counter="talk_seconds",
            )
        elif direction == "calls_incoming":
            self._bump(manager, direction, "calls_missed")
        else:
            self._bump(manager, direction)

    def add_call(self, call: CallTruth) -> None:
        self.valid_records += 1
        if call.kind == "internal" and call.caller is not None and call.callee is not None:
            self.canonical_events += 2
            self._call_side(call.caller.id, "calls_internal", call)
            self._call_side(call.callee.id, "calls_internal", call)
            return
        self.canonical_events += 1
        if call.kind == "outgoing" and call.caller is not None:
            self._call_side(call.caller.id, "calls_outgoing", call)
        elif call.kind == "incoming" and call.callee is not None:
            self._call_side(call.callee.id, "calls_incoming", call)
        else:
            self.unattributed_events += 1

    def add_chat(self, chat: ChatTruth) -> None:
        self.valid_records += 1
        self.canonical_events += 1
        if chat.manager is None:
            self.unattributed_events += 1
        else:
            self._bump(chat.manager, "chats_served" if chat.served else "chats_missed")

    def add_crm(self, event: CrmTruth) -> None:
        self.valid_records += 1
        self.canonical_events += 1
        if event.manager is None:
            self.unattributed_events += 1
            return
        counter = _CRM_COUNTER.get(event.type)
        if counter is not None:
            self._bump(event.manager, counter)
        elif event.manager not in self.per_manager:
            self.per_manager[event.manager] = Counter()

    def add_malformed(self, record_format: str) -> None:
        self.malformed_records += 1
        self.malformed_by_format[record_format] += 1

    def manager(self, manager_id: str) -> dict[str, int]:
        """Every counter for one manager, zeros included."""
        counter = self.per_manager.get(manager_id, Counter())
        return {name: counter[name] for name in COUNTERS}

    def totals(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for counter in self.per_manager.values():
            total.update(counter)
        return {name: total[name] for name in COUNTERS}

    def to_dict(self) -> dict[str, Any]:
        return {
            "per_manager": {key: self.manager(key) for key in sorted(self.per_manager)},
            "totals": self.totals(),
            "unattributed_events": self.unattributed_events,
            "malformed_records": self.malformed_records,
            "malformed_by_format": dict(sorted(self.malformed_by_format.items())),
            "valid_records": self.valid_records,
            "canonical_events": self.canonical_events,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> Expected:
        data = json.loads(text)
        return cls(
            per_manager={
                key: Counter({name: int(value) for name, value in counts.items() if value})
                for key, counts in data["per_manager"].items()
            },
            unattributed_events=int(data["unattributed_events"]),
            malformed_records=int(data["malformed_records"]),
            valid_records=int(data["valid_records"]),
            canonical_events=int(data.get("canonical_events", 0)),
            malformed_by_format=Counter(data.get("malformed_by_format", {})),
        )
