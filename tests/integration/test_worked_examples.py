"""Worked examples: records a person can read, and the numbers they must produce.

Each scenario gives the raw records as the source writes them and the per-manager numbers a head
of sales should see, with the reasoning next to them. They run through the real parsers, the
batch pipeline and ClickHouse (the 18.16 server and chDB), and are read back exactly as
``salespulse summary`` reads them.

The directory: Moscow (UTC+3) has Ivanova (101), Sidorova (102) and, until noon on 26 November,
Kozlov (104); from noon 104 belongs to Orlova in Kaliningrad (UTC+2). Petrov (201) works in
Vladivostok (UTC+10), Müller (401) in Berlin (CET/CEST). CDRs are written in UTC
(``usegmtime=yes``) with ``newcdrcolumns`` (``linkedid`` ties the legs of one call).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import pytest

from processors.parsers import build_parsers
from processors.pipeline import BatchProcessor, RawMessage
from processors.privacy import PhoneProtector
from salespulse.directory import parse_directory
from salespulse.settings import CountingSettings, ParsingSettings
from salespulse.summary import query_summary
from sinks.clickhouse.client import ClickHouse
from sinks.clickhouse.migrations import apply_migrations
from sinks.clickhouse.sink import ClickHouseSink

DIRECTORY = parse_directory(
    """
departments:
  - {id: msk, timezone: Europe/Moscow}
  - {id: kgd, timezone: Europe/Kaliningrad}
  - {id: vvo, timezone: Asia/Vladivostok}
  - {id: ber, timezone: Europe/Berlin}
managers:
  - {id: ivanova, department: msk, identities: [{family: pbx, id: "101"}, {family: crm, id: u-101}]}
  - {id: sidorova, department: msk, identities: [{family: pbx, id: "102"}]}
  - id: kozlov
    department: msk
    identities: [{family: pbx, id: "104", valid_to: "2026-11-26T12:00:00+03:00"}]
  - id: orlova
    department: kgd
    identities: [{family: pbx, id: "104", valid_from: "2026-11-26T12:00:00+03:00"}]
  - {id: petrov, department: vvo, identities: [{family: pbx, id: "201"}]}
  - {id: mueller, department: ber, identities: [{family: pbx, id: "401"}]}
""",
    suffix=".yaml",
)
NOV26 = date(2026, 11, 26)
_sequence = iter(range(1, 10_000))


def cdr(
    *,
    caller: str,
    callee: str,
    start: str,
    talk: int,
    ring: int = 5,
    linkedid: str = "",
    disposition: str | None = None,
) -> bytes:
    """One Master.csv line (newcdrcolumns). ``caller``/``callee`` are extensions or numbers;
    a number (7 digits or more) is on the trunk."""
    n = next(_sequence)

    def channel(party: str) -> str:
        return f"SIP/{'provider' if len(party) >= 7 else party}-{n:08x}"

    start_at = datetime.fromisoformat(start)
    answered = talk > 0 if disposition is None else disposition == "ANSWERED"
    answer = (start_at.timestamp() + ring) if answered else None
    end = start_at.timestamp() + ring + talk

    def stamp(epoch: float | None) -> str:
        return (
            ""
            if epoch is None
            else datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")
        )

    fields = [
        "",
        caller,
        callee,
        "from-trunk",
        f'""{caller}"" <{caller}>',
        channel(caller),
        channel(callee),
        "Dial",
        f"SIP/{callee},30",
        stamp(start_at.timestamp()),
        stamp(answer),
        stamp(end),
    ]
    quoted = ",".join('"' + f + '"' if not f.startswith('""') else f'"{f}"' for f in fields)
    status = disposition or ("ANSWERED" if answered else "NO ANSWER")
    return (
        f'{quoted},{ring + talk},{talk},"{status}","DOCUMENTATION","","{linkedid}",{n}'
    ).encode()


def crm(event_id: str, kind_action: str, when: str, **extra: str) -> bytes:
    fields = {"id": event_id, "type": kind_action, "user_id": "u-101", "occurred_at": when}
    fields.update(extra)
    return ("{" + ",".join(f'"{k}":"{v}"' for k, v in fields.items()) + "}").encode()


@dataclass
class Scenario:
    name: str
    cdrs: list[bytes] = field(default_factory=list)
    crm: list[bytes] = field(default_factory=list)
    # (manager, local day) -> the numbers that must show; metrics not named must be 0.
    expected: dict[tuple[str, date], dict[str, int]] = field(default_factory=dict)
    counting: CountingSettings = field(default_factory=CountingSettings)


SCENARIOS = [
    Scenario(
        "ring group: the second member answers",
        # Both phones ring for the same customer (one linkedid); only Sidorova picks up.
        cdrs=[
            cdr(
                caller="79161110001",
                callee="101",
                start="2026-11-26T07:00:00+00:00",
                talk=0,
                linkedid="L1",
            ),
            cdr(
                caller="79161110001",
                callee="102",
                start="2026-11-26T07:00:00+00:00",
                talk=95,
                linkedid="L1",
            ),
        ],
        # Ivanova neither had nor missed the call; Sidorova had one 95-second conversation.
        expected={
            ("ivanova", NOV26): {},
            ("sidorova", NOV26): {"calls_in": 1, "conversations": 1, "talk_seconds": 95},
        },
    ),
    Scenario(
        "ring group nobody answered: nobody's missed call by default",
        cdrs=[
            cdr(
                caller="79161110002",
                callee="101",
                start="2026-11-26T07:10:00+00:00",
                talk=0,
                linkedid="L2",
            ),
            cdr(
                caller="79161110002",
                callee="102",
                start="2026-11-26T07:10:00+00:00",
                talk=0,
                linkedid="L2",
            ),
        ],
        expected={("ivanova", NOV26): {}, ("sidorova", NOV26): {}},
    ),
    Scenario(
        "ring group nobody answered, with ring_group_legs_count: each member missed it",
        cdrs=[
            cdr(
                caller="79161110003",
                callee="101",
                start="2026-11-26T07:20:00+00:00",
                talk=0,
                linkedid="L3",
            ),
            cdr(
                caller="79161110003",
                callee="102",
                start="2026-11-26T07:20:00+00:00",
                talk=0,
                linkedid="L3",
            ),
        ],
        expected={
            ("ivanova", NOV26): {"calls_in": 1, "missed": 1},
            ("sidorova", NOV26): {"calls_in": 1, "missed": 1},
        },
        counting=CountingSettings(ring_group_legs_count=True),
    ),
    Scenario(
        "a direct call nobody picks up is the callee's missed call",
        cdrs=[
            cdr(
                caller="79161110004",
                callee="101",
                start="2026-11-26T08:00:00+00:00",
                talk=0,
                linkedid="L4",
            )
        ],
        expected={("ivanova", NOV26): {"calls_in": 1, "missed": 1}},
    ),
    Scenario(
        "a transfer from Ivanova to Sidorova: one call each, each with their own talk time",
        cdrs=[
            cdr(
                caller="79161110005",
                callee="101",
                start="2026-11-26T09:00:00+00:00",
                talk=40,
                linkedid="L5",
            ),
            cdr(
                caller="79161110005",
                callee="102",
                start="2026-11-26T09:00:45+00:00",
                talk=120,
                linkedid="L5",
            ),
        ],
        expected={
            ("ivanova", NOV26): {"calls_in": 1, "conversations": 1, "talk_seconds": 40},
            ("sidorova", NOV26): {"calls_in": 1, "conversations": 1, "talk_seconds": 120},
        },
    ),
    Scenario(
        "a call starting at 23:59:30 Moscow time belongs to the day it started",
        # 20:59:30 UTC = 23:59:30 in Moscow on 26 November; it ends on the 27th.
        cdrs=[cdr(caller="101", callee="79161110006", start="2026-11-26T20:59:30+00:00", talk=120)],
        expected={
            ("ivanova", NOV26): {"calls_out": 1, "conversations": 1, "talk_seconds": 120},
            ("ivanova", date(2026, 11, 27)): {},
        },
    ),
    Scenario(
        "one UTC moment, two local days: Vladivostok is already on the 27th, Kaliningrad not",
        # 15:30 UTC = 01:30 on 27 Nov in Vladivostok, 17:30 on 26 Nov in Kaliningrad (104 is
        # Orlova's since noon Moscow time = 09:00 UTC).
        cdrs=[
            cdr(caller="201", callee="79141110007", start="2026-11-26T15:30:00+00:00", talk=31),
            cdr(caller="104", callee="79011110007", start="2026-11-26T15:30:00+00:00", talk=29),
        ],
        expected={
            ("petrov", date(2026, 11, 27)): {
                "calls_out": 1,
                "conversations": 1,
                "talk_seconds": 31,
            },
            ("petrov", NOV26): {},
            # 29 s of talk: a call, but under the 30-second conversation threshold.
            ("orlova", NOV26): {"calls_out": 1, "talk_seconds": 29},
        },
    ),
    Scenario(
        "an extension reassigned at noon: the morning's calls stay with the old holder",
        cdrs=[
            cdr(caller="104", callee="79161110008", start="2026-11-26T08:59:00+00:00", talk=60),
            cdr(caller="104", callee="79161110009", start="2026-11-26T09:01:00+00:00", talk=70),
        ],
        expected={
            ("kozlov", NOV26): {"calls_out": 1, "conversations": 1, "talk_seconds": 60},
            ("orlova", NOV26): {"calls_out": 1, "conversations": 1, "talk_seconds": 70},
        },
    ),
    Scenario(
        "Berlin's clocks go back on 25 October: 00:30 UTC is 02:30 CEST on the 25th",
        cdrs=[
            cdr(caller="401", callee="4930111000", start="2026-10-25T00:30:00+00:00", talk=45),
            # 23:30 UTC on the 24th is 01:30 CEST on the 25th as well.
            cdr(caller="401", callee="4930111001", start="2026-10-24T23:30:00+00:00", talk=50),
        ],
        expected={
            ("mueller", date(2026, 10, 25)): {
                "calls_out": 2,
                "conversations": 2,
                "talk_seconds": 95,
            },
            ("mueller", date(2026, 10, 24)): {},
        },
    ),
    Scenario(
        "the same CDR delivered twice counts once",
        cdrs=[cdr(caller="101", callee="79161110010", start="2026-11-26T10:00:00+00:00", talk=33)]
        * 2,
        expected={("ivanova", NOV26): {"calls_out": 1, "conversations": 1, "talk_seconds": 33}},
    ),
    Scenario(
        "an internal call nobody answers is no one's missed call",
        cdrs=[cdr(caller="101", callee="201", start="2026-11-26T11:00:00+00:00", talk=0)],
        # 11:00 UTC is 21:00 in Vladivostok: still the 26th there.
        expected={
            ("ivanova", NOV26): {"calls_internal": 1},
            ("petrov", NOV26): {"calls_internal": 1},
        },
    ),
    Scenario(
        "a meeting logged the next morning counts on the day it was held",
        crm=[crm("m-1", "meeting.held", "2026-11-26T16:00:00+03:00", location="visit")],
        expected={
            ("ivanova", NOV26): {"meetings": 1, "meetings_visit": 1},
            ("ivanova", date(2026, 11, 27)): {},
        },
    ),
    Scenario(
        "payments in two currencies are two payments",
        crm=[
            crm(
                "p-1",
                "payment.received",
                "2026-11-26T12:00:00+03:00",
                amount="1500.00",
                currency="RUB",
            ),
            crm(
                "p-2",
                "payment.received",
                "2026-11-26T13:00:00+03:00",
                amount="200.50",
                currency="USD",
            ),
        ],
        expected={("ivanova", NOV26): {"payments": 2}},
    ),
    Scenario(
        "a task completed after its deadline: completed, and late",
        crm=[
            crm(
                "t-1",
                "task.created",
                "2026-11-25T10:00:00+03:00",
                due_at="2026-11-25T18:00:00+03:00",
            ),
            # The completion carries the deadline it was due by: 18:00 the day before.
            crm(
                "t-2",
                "task.completed",
                "2026-11-26T11:00:00+03:00",
                due_at="2026-11-25T18:00:00+03:00",
            ),
        ],
        expected={
            ("ivanova", date(2026, 11, 25)): {"tasks_created": 1},
            ("ivanova", NOV26): {"tasks_done": 1, "tasks_done_late": 1},
        },
    ),
]


async def run(clickhouse: ClickHouse, scenario: Scenario) -> dict[tuple[str, date], dict[str, int]]:
    apply_migrations(clickhouse)
    messages = []
    if scenario.cdrs:
        messages.append(
            RawMessage("pbx", 0, 0, [("sp-format", b"asterisk-cdr-csv")], b"\n".join(scenario.cdrs))
        )
    if scenario.crm:
        messages.append(
            RawMessage("crm", 0, 0, [("sp-format", b"crm-event-json")], b"\n".join(scenario.crm))
        )
    processor = BatchProcessor(
        build_parsers(ParsingSettings()),
        lambda: DIRECTORY,
        PhoneProtector(b"k"),
        max_message_bytes=1 << 20,
        clock=lambda: datetime(2026, 11, 28, tzinfo=UTC),
    )
    result = processor.process(messages)
    assert result.dead_letters == [], result.dead_letters
    await ClickHouseSink(lambda: clickhouse).write_events(result.rows)
    seen: dict[tuple[str, date], dict[str, int]] = {}
    for manager, day in scenario.expected:
        rows = query_summary(clickhouse, DIRECTORY, last_day=day, counting=scenario.counting)
        counts = next(row.counts for row in rows if row.manager_id == manager)
        seen[(manager, day)] = {name: value for name, value in counts.items() if value}
    return seen


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_worked_example(clickhouse: ClickHouse, scenario: Scenario) -> None:
    assert await run(clickhouse, scenario) == scenario.expected
