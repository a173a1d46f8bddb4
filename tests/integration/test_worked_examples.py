"""Worked examples: records a person can read, and the numbers they must produce.

Each scenario gives the raw records as the source writes them and the per-manager numbers a head
of sales should see, with the reasoning next to them. They run through the real parsers, the
batch pipeline and ClickHouse (the 18.16 server and chDB), and are read back exactly as
``salespulse summary`` reads them.

The directory: Moscow (UTC+3) has Ivanova (101), Sidorova (102) and, until noon on 26 November,
Kozlov (104); from noon 104 belongs to Orlova in Kaliningrad (UTC+2). Petrov (201) works in
Vladivostok (UTC+10), Müller (401) in Berlin (CET/CEST). CDRs are written in UTC
(``usegmtime=yes``) with ``newcdrcolumns`` (``linkedid`` ties the legs of one call).

Other sources name the same people differently: Ivanova is chat operator ``op-101`` and
Bitrix24 user 1101, Sidorova Bitrix24 user 1102 (a Bitrix24 user id is a CRM identity, for
calls and Open Lines chats too). On the FreeSWITCH switch, Smirnov (msk) has extension 1001
and Volkova (msk) 1003. Weber (Berlin) answers the company line of the office whose real CDRs
are in tests/samples/real; its PBX writes the line's number, ``284-555-0126``, as ``dst``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from processors.parsers import build_parsers
from processors.pipeline import BatchProcessor, RawMessage
from processors.privacy import PhoneProtector
from salespulse.directory import parse_directory
from salespulse.sections import CountingSettings, LatenessSettings, ParsingSettings
from salespulse.summary import UNATTRIBUTED, query_summary
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
  - id: ivanova
    department: msk
    identities:
      - {family: pbx, id: "101"}
      - {family: crm, id: u-101}
      - {family: chat, id: op-101}
      - {family: crm, id: "1101"}
  - id: sidorova
    department: msk
    identities: [{family: pbx, id: "102"}, {family: crm, id: "1102"}]
  - id: kozlov
    department: msk
    identities: [{family: pbx, id: "104", valid_to: "2026-11-26T12:00:00+03:00"}]
  - id: orlova
    department: kgd
    identities: [{family: pbx, id: "104", valid_from: "2026-11-26T12:00:00+03:00"}]
  - {id: petrov, department: vvo, identities: [{family: pbx, id: "201"}]}
  - {id: mueller, department: ber, identities: [{family: pbx, id: "401"}]}
  - {id: smirnov, department: msk, identities: [{family: pbx, id: "1001"}]}
  - {id: volkova, department: msk, identities: [{family: pbx, id: "1003"}]}
  - {id: weber, department: ber, identities: [{family: pbx, id: "284-555-0126"}]}
""",
    suffix=".yaml",
)
NOV26 = date(2026, 11, 26)
NOV27 = date(2026, 11, 27)
MAR10 = date(2026, 3, 10)
SAMPLES = Path(__file__).resolve().parents[1] / "samples"
REAL_CDRS = SAMPLES / "real" / "asterisk-cdr-csv"
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
        "from-trunk" if len(caller) >= 7 else "from-internal",
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


def real_cdrs(name: str, *uniqueids: str) -> list[bytes]:
    """The lines of a corpus Master.csv (loguniqueid, loguserfield) whose uniqueid is one of
    ``uniqueids``, as the file has them."""
    lines = (REAL_CDRS / name).read_bytes().splitlines()
    return [line for line in lines if line.split(b",")[16].strip(b'"').decode() in uniqueids]


def crm(event_id: str, kind_action: str, when: str, **extra: str) -> bytes:
    fields = {"id": event_id, "type": kind_action, "user_id": "u-101", "occurred_at": when}
    fields.update(extra)
    return ("{" + ",".join(f'"{k}":"{v}"' for k, v in fields.items()) + "}").encode()


def one_line(document: object) -> bytes:
    """A JSON document on one line, as every JSON source writes its records."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def freeswitch(sample: str, **variables: str) -> bytes:
    """A mod_json_cdr document from tests/samples/freeswitch, on one line as mod_json_cdr posts
    it; ``variables`` replaces channel variables of the sample."""
    document = json.loads((SAMPLES / "freeswitch" / f"{sample}.cdr.json").read_text())
    document["variables"].update(variables)
    return one_line(document)


def chat(
    session_id: str,
    *,
    started: str,
    first_response: str | None,
    closed: str,
    status: str = "closed",
    operator: str = "op-101",
) -> bytes:
    """One chat-session-json line."""
    return one_line(
        {
            "session_id": session_id,
            "operator_id": operator,
            "channel": "whatsapp",
            "started_at": started,
            "first_response_at": first_response,
            "closed_at": closed,
            "status": status,
        }
    )


def openlines(sample: str) -> bytes:
    """An Open Lines session from tests/samples/bitrix24/openlines, on one line."""
    return one_line(json.loads((SAMPLES / "bitrix24" / "openlines" / f"{sample}.json").read_text()))


def bitrix24_rest(event: str, method: str, entity_id: str, ts: int = 1795697000) -> bytes:
    """The envelope ``ingest.bitrix24.enrich`` writes for ``event``: the REST answer saved in
    tests/samples/bitrix24/rest/<method>/<entity_id>.json, with the event that caused the fetch."""
    answer = json.loads((SAMPLES / "bitrix24" / "rest" / method / f"{entity_id}.json").read_text())
    entity = method.split(".")[1]
    return one_line({"event": event, "ts": ts, "entity": entity, "result": answer["result"]})


def real_bitrix24_result(name: str) -> Any:
    """The ``result`` of a documented REST answer in tests/samples/real/bitrix24."""
    return json.loads((SAMPLES / "real" / "bitrix24" / f"{name}.response.json").read_text())[
        "result"
    ]


def voximplant_row(**fields: str | None) -> bytes:
    """One row of voximplant.statistic.get, as the export writes it (numbers as strings)."""
    return one_line(fields)


def call_end_event(**fields: str) -> bytes:
    """The OnVoximplantCallEnd body a portal POSTs: the call's fields as ``data[NAME]``."""
    form = {"event": "ONVOXIMPLANTCALLEND", "event_handler_id": "12"}
    form.update({f"data[{name}]": value for name, value in fields.items()})
    form["ts"] = "1795673866"
    return urlencode(form).encode()


@dataclass
class Scenario:
    name: str
    cdrs: list[bytes] = field(default_factory=list)
    crm: list[bytes] = field(default_factory=list)
    # (manager, local day) -> the numbers that must show; metrics not named must be 0.
    expected: dict[tuple[str, date], dict[str, int]] = field(default_factory=dict)
    counting: CountingSettings = field(default_factory=CountingSettings)
    # Messages in any format, each (format name, the message's bytes), after cdrs and crm.
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    parsing: ParsingSettings = field(default_factory=ParsingSettings)
    # The Kafka timestamp of every message (None: lateness is not judged), and whether they
    # carry the header sp-backfill: 1.
    received_at: datetime | None = None
    backfill: bool = False
    # The reasons of the dead letters, in the order of the records.
    expected_dead_letters: list[str] = field(default_factory=list)


# Ivanova calls a customer at 09:00 UTC: 5 s ringing, 60 s talk, hang-up at 09:01:05.
LATE_CDR = (
    b'"","101","79161110040","from-internal","""Anna"" <101>","SIP/101-00000040",'
    b'"SIP/provider-00000041","Dial","SIP/provider/79161110040,30","2026-11-26 09:00:00",'
    b'"2026-11-26 09:00:05","2026-11-26 09:01:05",65,60,"ANSWERED","DOCUMENTATION","",'
    b'"1795683600.40",40'
)


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
            ("sidorova", NOV26): {
                "calls_in": 1,
                "calls_in_answered": 1,
                "conversations": 1,
                "talk_seconds": 95,
            },
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
            ("ivanova", NOV26): {
                "calls_in": 1,
                "calls_in_answered": 1,
                "conversations": 1,
                "talk_seconds": 40,
            },
            ("sidorova", NOV26): {
                "calls_in": 1,
                "calls_in_answered": 1,
                "conversations": 1,
                "talk_seconds": 120,
            },
        },
    ),
    Scenario(
        "a call starting at 23:59:30 Moscow time belongs to the day it started",
        # 20:59:30 UTC = 23:59:30 in Moscow on 26 November; it ends on the 27th.
        cdrs=[cdr(caller="101", callee="79161110006", start="2026-11-26T20:59:30+00:00", talk=120)],
        expected={
            ("ivanova", NOV26): {
                "calls_out": 1,
                "calls_out_answered": 1,
                "conversations": 1,
                "talk_seconds": 120,
            },
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
                "calls_out_answered": 1,
                "conversations": 1,
                "talk_seconds": 31,
            },
            ("petrov", NOV26): {},
            # 29 s of talk: a call, but under the 30-second conversation threshold.
            ("orlova", NOV26): {"calls_out": 1, "calls_out_answered": 1, "talk_seconds": 29},
        },
    ),
    Scenario(
        "an extension reassigned at noon: the morning's calls stay with the old holder",
        cdrs=[
            cdr(caller="104", callee="79161110008", start="2026-11-26T08:59:00+00:00", talk=60),
            cdr(caller="104", callee="79161110009", start="2026-11-26T09:01:00+00:00", talk=70),
        ],
        expected={
            ("kozlov", NOV26): {
                "calls_out": 1,
                "calls_out_answered": 1,
                "conversations": 1,
                "talk_seconds": 60,
            },
            ("orlova", NOV26): {
                "calls_out": 1,
                "calls_out_answered": 1,
                "conversations": 1,
                "talk_seconds": 70,
            },
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
                "calls_out_answered": 2,
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
        expected={
            ("ivanova", NOV26): {
                "calls_out": 1,
                "calls_out_answered": 1,
                "conversations": 1,
                "talk_seconds": 33,
            }
        },
    ),
    *(
        Scenario(
            f"customer conversations: a day of Ivanova's calls ({definition})",
            # docs/metrics.md's worked example: an answered incoming call (95 s), a missed one,
            # two calls to customers (one answered, 40 s; one not picked up) and a call to her
            # colleague Petrov (120 s). 09:00-10:00 UTC is still the 26th in Vladivostok.
            cdrs=[
                cdr(caller="79161110101", callee="101", start="2026-11-26T07:00:00+00:00", talk=95),
                cdr(caller="79161110102", callee="101", start="2026-11-26T07:30:00+00:00", talk=0),
                cdr(caller="101", callee="79161110103", start="2026-11-26T08:00:00+00:00", talk=40),
                cdr(caller="101", callee="79161110104", start="2026-11-26T08:30:00+00:00", talk=0),
                cdr(caller="101", callee="201", start="2026-11-26T09:00:00+00:00", talk=120),
            ],
            counting=CountingSettings(internal_calls_are_conversations=restored),
            expected={
                ("ivanova", NOV26): {
                    "calls_in": 2,
                    "calls_in_answered": 1,
                    "missed": 1,
                    "calls_out": 2,
                    "calls_out_answered": 1,
                    "calls_internal": 1,
                    # 95 s and 40 s with customers; with the old definition the 120 s too.
                    "conversations": 3 if restored else 2,
                    "talk_seconds": 95 + 40 + (120 if restored else 0),
                    "internal_talk_seconds": 120,
                },
                ("petrov", NOV26): {
                    "calls_internal": 1,
                    "internal_talk_seconds": 120,
                    **({"conversations": 1, "talk_seconds": 120} if restored else {}),
                },
            },
        )
        for definition, restored in (
            ("internal calls apart, the default", False),
            ("INTERNAL_CALLS_ARE_CONVERSATIONS restores the old definition", True),
        )
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
    Scenario(
        "FreeSWITCH: a customer's call bridged to 1001 is one incoming call with the b-leg's talk",
        # mod_json_cdr posts two documents: the gateway's a-leg (an inbound channel from a
        # customer: nobody's leg) and the b-leg the switch placed to 1001 (1001's own leg). The
        # IVR answered the a-leg at once, so the a-leg bills 158 s; 1001 talked 151 s.
        messages=[
            (
                "freeswitch-json-cdr",
                freeswitch("inbound-gateway-a-leg", answer_epoch="1795673702", billsec="158"),
            ),
            ("freeswitch-json-cdr", freeswitch("inbound-gateway-b-leg")),
        ],
        # 06:15:03 UTC = 09:15 in Moscow: one incoming call of 151 s, not 309 s.
        expected={
            ("smirnov", NOV26): {
                "calls_in": 1,
                "calls_in_answered": 1,
                "conversations": 1,
                "talk_seconds": 151,
            }
        },
    ),
    Scenario(
        "FreeSWITCH: 1001 calls colleague 1003, two legs: one internal call each",
        # The a-leg is 1001's (a registered phone calling in to the switch), the b-leg 1003's
        # (the channel the switch placed to 1003); both bill 120 s, 08:00 UTC = 11:00 Moscow.
        messages=[
            ("freeswitch-json-cdr", freeswitch("internal-a-leg")),
            ("freeswitch-json-cdr", freeswitch("internal-b-leg")),
        ],
        expected={
            ("smirnov", NOV26): {"calls_internal": 1, "internal_talk_seconds": 120},
            ("volkova", NOV26): {"calls_internal": 1, "internal_talk_seconds": 120},
        },
    ),
    Scenario(
        "FreeSWITCH mod_cdr_csv stamps are the switch's local time (pbx_timezone Europe/Moscow)",
        messages=[
            (
                "freeswitch-cdr-csv",
                # A customer transferred to 1001 at 23:40 Moscow time (20:40 UTC): read as
                # UTC it would be 02:40 on the 27th in Moscow.
                b'"+79161234567","+79161234567","1001","default","2026-11-26 23:40:00",'
                b'"2026-11-26 23:40:06","2026-11-26 23:45:06","306","300","NORMAL_CLEARING",'
                b'"6f1a2b3c-4d5e-4f60-8a71-b2c3d4e5f607","7a2b3c4d-5e6f-4a71-8b82-c3d4e5f60718",'
                b'"","PCMA","PCMA"\n'
                # 1001 calls 1003 at 11:00: an a-leg line speaks for both parties.
                b'"Ivan Sidorov","1001","1003","default","2026-11-26 11:00:00",'
                b'"2026-11-26 11:00:04","2026-11-26 11:02:04","124","120","NORMAL_CLEARING",'
                b'"8a9b0c1d-2e3f-4a5b-8c6d-7e8f9a0b1c2d","9b0c1d2e-3f4a-4b5c-9d7e-8f9a0b1c2d3e",'
                b'"1001","PCMA","PCMA"',
            )
        ],
        parsing=ParsingSettings(pbx_timezone="Europe/Moscow"),
        expected={
            # 300 s with the customer, a conversation; 120 s with Volkova, internal talk.
            ("smirnov", NOV26): {
                "calls_in": 1,
                "calls_in_answered": 1,
                "calls_internal": 1,
                "conversations": 1,
                "talk_seconds": 300,
                "internal_talk_seconds": 120,
            },
            ("smirnov", NOV27): {},
            ("volkova", NOV26): {"calls_internal": 1, "internal_talk_seconds": 120},
        },
    ),
    Scenario(
        "Bitrix24: a call from the OnVoximplantCallEnd event and from the export counts once",
        # User 1101 (Ivanova) took a customer's call (CALL_TYPE 2) for 151 s at 09:15 Moscow.
        # The portal posted the event, and the nightly voximplant.statistic export has the row.
        messages=[
            (
                "bitrix24-call-end-event",
                call_end_event(
                    CALL_ID="5F3A0C8E2B714D96.1795673702.2219043017",
                    CALL_TYPE="2",
                    PHONE_NUMBER="79161234567",
                    PORTAL_USER_ID="1101",
                    CALL_DURATION="151",
                    CALL_START_DATE="2026-11-26T09:15:02+03:00",
                    CALL_FAILED_CODE="200",
                ),
            ),
            (
                "bitrix24-voximplant-statistic",
                voximplant_row(
                    ID="10482",
                    PORTAL_USER_ID="1101",
                    PHONE_NUMBER="79161234567",
                    CALL_ID="5F3A0C8E2B714D96.1795673702.2219043017",
                    CALL_TYPE="2",
                    CALL_DURATION="151",
                    CALL_START_DATE="2026-11-26T09:15:02+03:00",
                    CALL_FAILED_CODE="200",
                    CALL_FAILED_REASON="Success call",
                ),
            ),
        ],
        # One call of 151 s; stored twice it would show 302 s.
        expected={
            ("ivanova", NOV26): {
                "calls_in": 1,
                "calls_in_answered": 1,
                "conversations": 1,
                "talk_seconds": 151,
            }
        },
    ),
    Scenario(
        "Bitrix24: the real finish result and the export's row of that call count once",
        # Bitrix24's documented answers: telephony.externalcall.finish saved user 1269's
        # incoming call (INCOMING "2", 200, 95 s, CALL_START_DATE {}: dated by the registration
        # time in its CALL_ID, 2026-03-10 08:19:39 UTC), and voximplant.statistic.get lists the
        # same CALL_ID started 08:19:38 UTC. User 1269 is in no directory entry: unattributed.
        messages=[
            (
                "bitrix24-voximplant-statistic",
                one_line(real_bitrix24_result("telephony.externalcall.finish")),
            ),
            (
                "bitrix24-voximplant-statistic",
                one_line(real_bitrix24_result("voximplant.statistic.get")[1]),
            ),
        ],
        # One call of 95 s; stored twice it would show 190 s.
        expected={
            (UNATTRIBUTED, MAR10): {
                "calls_in": 1,
                "calls_in_answered": 1,
                "conversations": 1,
                "talk_seconds": 95,
            }
        },
    ),
    Scenario(
        "Bitrix24: an incoming call skipped by the operator (304) is their missed call",
        messages=[
            (
                "bitrix24-voximplant-statistic",
                voximplant_row(
                    ID="10483",
                    PORTAL_USER_ID="1101",
                    PHONE_NUMBER="79260001122",
                    CALL_ID="9C0B1A2D3E4F5061.1795675500.2219043102",
                    CALL_TYPE="2",
                    CALL_DURATION="0",
                    CALL_START_DATE="2026-11-26T09:45:00+03:00",
                    CALL_FAILED_CODE="304",
                    CALL_FAILED_REASON="Skipped call",
                ),
            )
        ],
        expected={("ivanova", NOV26): {"calls_in": 1, "missed": 1}},
    ),
    Scenario(
        "Bitrix24: a callback (CALL_TYPE 4) is the manager's outgoing call",
        messages=[
            (
                "bitrix24-voximplant-statistic",
                voximplant_row(
                    ID="10485",
                    PORTAL_USER_ID="1101",
                    PHONE_NUMBER="79161234567",
                    CALL_ID="2A3B4C5D6E7F8091.1795680900.2219043199",
                    CALL_TYPE="4",
                    CALL_DURATION="40",
                    CALL_START_DATE="2026-11-26T11:15:00+03:00",
                    CALL_FAILED_CODE="200",
                ),
            )
        ],
        expected={
            ("ivanova", NOV26): {
                "calls_out": 1,
                "calls_out_answered": 1,
                "conversations": 1,
                "talk_seconds": 40,
            }
        },
    ),
    Scenario(
        "Bitrix24: an outgoing call the customer declined is a call without talk time",
        # CALL_DURATION 5 is the ringing: only a successful call (200) has talk time.
        messages=[
            (
                "bitrix24-voximplant-statistic",
                voximplant_row(
                    ID="10488",
                    PORTAL_USER_ID="1101",
                    PHONE_NUMBER="79031234567",
                    CALL_ID="5D6E7F8091021324.1795687200.2219043290",
                    CALL_TYPE="1",
                    CALL_DURATION="5",
                    CALL_START_DATE="2026-11-26T13:00:00+03:00",
                    CALL_FAILED_CODE="603",
                    CALL_FAILED_REASON="Declined",
                ),
            )
        ],
        expected={("ivanova", NOV26): {"calls_out": 1}},
    ),
    Scenario(
        "Bitrix24: a call that ended in the IVR, with no operator, is nobody's activity",
        messages=[
            (
                "bitrix24-voximplant-statistic",
                voximplant_row(
                    ID="10489",
                    PORTAL_USER_ID=None,
                    PHONE_NUMBER="79175554433",
                    CALL_ID="6E7F809102132435.1795690800.2219043333",
                    CALL_TYPE="2",
                    CALL_DURATION="0",
                    CALL_START_DATE="2026-11-26T14:00:00+03:00",
                    CALL_FAILED_CODE="304",
                ),
            )
        ],
        # No event at all: not Ivanova's, not even an unattributed missed call.
        expected={("ivanova", NOV26): {}, (UNATTRIBUTED, NOV26): {}},
    ),
    Scenario(
        "Asterisk: the same CDR from AMI and from Master.csv (uniqueid, sequence) counts once",
        # cdr_manager has no usegmtime: both carry the server's Moscow time.
        messages=[
            (
                "asterisk-ami-cdr",
                b"\r\n".join(
                    [
                        b"Event: Cdr",
                        b"Privilege: cdr,all",
                        b"AccountCode:",
                        b"Source: 79161234567",
                        b"Destination: 101",
                        b"DestinationContext: from-trunk",
                        b'CallerID: "Client" <79161234567>',
                        b"Channel: SIP/provider-00000012",
                        b"DestinationChannel: SIP/101-00000013",
                        b"LastApplication: Dial",
                        b"LastData: SIP/101,30",
                        b"StartTime: 2026-11-26 09:15:02",
                        b"AnswerTime: 2026-11-26 09:15:09",
                        b"EndTime: 2026-11-26 09:17:40",
                        b"Duration: 158",
                        b"BillableSeconds: 151",
                        b"Disposition: ANSWERED",
                        b"AMAFlags: DOCUMENTATION",
                        b"UniqueID: 1795673702.45",
                        b"UserField:",
                        b"PeerAccount:",
                        b"LinkedID: 1795673702.45",
                        b"Sequence: 12",
                        b"",
                        b"",
                    ]
                ),
            ),
            (
                "asterisk-cdr-csv",
                b'"","79161234567","101","from-trunk","""Client"" <79161234567>",'
                b'"SIP/provider-00000012","SIP/101-00000013","Dial","SIP/101,30",'
                b'"2026-11-26 09:15:02","2026-11-26 09:15:09","2026-11-26 09:17:40",158,151,'
                b'"ANSWERED","DOCUMENTATION","1795673702.45","","1795673702.45",12',
            ),
        ],
        parsing=ParsingSettings(pbx_timezone="Europe/Moscow"),
        # One 151-second call; stored twice it would show 302 s.
        expected={
            ("ivanova", NOV26): {
                "calls_in": 1,
                "calls_in_answered": 1,
                "conversations": 1,
                "talk_seconds": 151,
            }
        },
    ),
    Scenario(
        "Asterisk: a transfer gives the customer's channel two CDRs, told apart by sequence",
        # Party A is the customer's trunk channel (uniqueid 1795694400.70): bridged to 101 for
        # 60 s, then, after 101's blind transfer, to 102 for 150 s. Both CDRs carry its
        # uniqueid and the call's linkedid; sequence 31 and 32 make them two legs (UTC times).
        cdrs=[
            b'"","79161110030","101","from-trunk","""Client"" <79161110030>",'
            b'"SIP/provider-00000070","SIP/101-00000071","Dial","SIP/101,30",'
            b'"2026-11-26 12:00:00","2026-11-26 12:00:05","2026-11-26 12:01:05",65,60,'
            b'"ANSWERED","DOCUMENTATION","1795694400.70","","1795694400.70",31',
            b'"","79161110030","102","from-trunk","""Client"" <79161110030>",'
            b'"SIP/provider-00000070","SIP/102-00000073","Dial","SIP/102,30",'
            b'"2026-11-26 12:01:05","2026-11-26 12:01:10","2026-11-26 12:03:40",155,150,'
            b'"ANSWERED","DOCUMENTATION","1795694400.70","","1795694400.70",32',
        ],
        expected={
            ("ivanova", NOV26): {
                "calls_in": 1,
                "calls_in_answered": 1,
                "conversations": 1,
                "talk_seconds": 60,
            },
            ("sidorova", NOV26): {
                "calls_in": 1,
                "calls_in_answered": 1,
                "conversations": 1,
                "talk_seconds": 150,
            },
        },
    ),
    Scenario(
        "a queue rings Ivanova through a Local channel: one incoming call, not a call to herself",
        # newcdrcolumns, UTC. The customer's trunk channel (1795680000.160) enters queue 600,
        # which dials Local/101@from-queue;1 (CDR 1); the Local channel's second half
        # (1795680000.161) dials Ivanova's phone (CDR 2). She answers after 5 s and talks 95 s.
        # Both CDRs carry the call's linkedid. 08:00 UTC is 11:00 in Moscow.
        cdrs=[
            b'"","79161110053","600","ext-queues","""Client"" <79161110053>",'
            b'"SIP/provider-000000a0","Local/101@from-queue-000000a1;1","Queue","600,t",'
            b'"2026-11-26 08:00:00","2026-11-26 08:00:05","2026-11-26 08:01:40",100,95,'
            b'"ANSWERED","DOCUMENTATION","1795680000.160","","1795680000.160",41',
            b'"","79161110053","101","from-queue","""Client"" <79161110053>",'
            b'"Local/101@from-queue-000000a1;2","SIP/101-000000a2","Dial","SIP/101,,t",'
            b'"2026-11-26 08:00:00","2026-11-26 08:00:05","2026-11-26 08:01:40",100,95,'
            b'"ANSWERED","DOCUMENTATION","1795680000.161","","1795680000.160",42',
        ],
        # The Local channel's second half is named after 101 and dials 101: read as a party it
        # made this an internal call of Ivanova's with herself.
        expected={
            ("ivanova", NOV26): {
                "calls_in": 1,
                "calls_in_answered": 1,
                "conversations": 1,
                "talk_seconds": 95,
            },
        },
    ),
    Scenario(
        "Asterisk without linkedid: the legs of a ring group share Party A's uniqueid",
        # loguniqueid, no newcdrcolumns. The client's trunk channel (uniqueid 1795677000.80)
        # rings 101 and 102 at once (Dial(SIP/101&SIP/102)); 102 answers after 7 s and talks
        # 95 s. 07:10 UTC is 10:10 in Moscow.
        cdrs=[
            b'"","79161110050","600","from-trunk","""Client"" <79161110050>",'
            b'"SIP/provider-00000080","SIP/101-00000081","Dial","SIP/101&SIP/102,30",'
            b'"2026-11-26 07:10:00","","2026-11-26 07:10:07",7,0,"NO ANSWER","DOCUMENTATION",'
            b'"1795677000.80"',
            b'"","79161110050","600","from-trunk","""Client"" <79161110050>",'
            b'"SIP/provider-00000080","SIP/102-00000082","Dial","SIP/101&SIP/102,30",'
            b'"2026-11-26 07:10:00","2026-11-26 07:10:07","2026-11-26 07:11:42",102,95,'
            b'"ANSWERED","DOCUMENTATION","1795677000.80"',
        ],
        # One call (call id = the shared uniqueid) that reached two managers: Ivanova did not
        # answer and a colleague did, so she neither had nor missed it. Each leg a call of its
        # own would give her an incoming, missed call.
        expected={
            ("ivanova", NOV26): {},
            ("sidorova", NOV26): {
                "calls_in": 1,
                "calls_in_answered": 1,
                "conversations": 1,
                "talk_seconds": 95,
            },
        },
    ),
    Scenario(
        "a customer hears the IVR, then rings Ivanova, who does not answer: one missed call",
        # loguniqueid, no newcdrcolumns. The trunk channel (uniqueid 1795677300.83) first plays
        # the menu (Background, no dialled channel: the dialplan step logs a CDR of its own),
        # then dials 101 for 20 s; nobody answers. 07:15 UTC is 10:15 in Moscow.
        cdrs=[
            b'"","79161110052","s","from-trunk","""Client"" <79161110052>",'
            b'"SIP/provider-00000083","","Background","custom/menu",'
            b'"2026-11-26 07:15:00","2026-11-26 07:15:00","2026-11-26 07:15:09",9,9,"ANSWERED",'
            b'"DOCUMENTATION","1795677300.83"',
            b'"","79161110052","101","from-trunk","""Client"" <79161110052>",'
            b'"SIP/provider-00000083","SIP/101-00000084","Dial","SIP/101,20",'
            b'"2026-11-26 07:15:09","","2026-11-26 07:15:29",20,0,"NO ANSWER","DOCUMENTATION",'
            b'"1795677300.83"',
        ],
        # The menu's leg is nobody's and nobody answered it (the IVR is no person): it is part
        # of Ivanova's missed call, not a second missed call of "(unattributed)". Counted
        # apart, the day's total would show two missed calls for one customer.
        expected={
            ("ivanova", NOV26): {"calls_in": 1, "missed": 1},
            (UNATTRIBUTED, NOV26): {},
        },
    ),
    Scenario(
        "Asterisk without linkedid: a dial through a Local channel and the bridge after it",
        # Ivanova dials out through Local/…@outbound-allroutes (uniqueid 1795687200.90, her
        # channel). The customer answers after 7 s; a second later the Local channel is
        # optimised away and her channel is bridged to the trunk directly, which starts a new
        # CDR of her channel: 1 s of talk on the first, 120 s on the second.
        cdrs=[
            b'"","101","79161110051","from-internal","""Anna"" <101>","SIP/101-00000090",'
            b'"Local/79161110051@outbound-allroutes-00000091;1","Dial",'
            b'"Local/79161110051@outbound-allroutes,300","2026-11-26 10:00:00",'
            b'"2026-11-26 10:00:07","2026-11-26 10:00:08",8,1,"ANSWERED","DOCUMENTATION",'
            b'"1795687200.90"',
            b'"","101","79161110051","from-internal","""Anna"" <101>","SIP/101-00000090",'
            b'"SIP/provider-00000092","Dial","Local/79161110051@outbound-allroutes,300",'
            b'"2026-11-26 10:00:08","2026-11-26 10:00:08","2026-11-26 10:02:08",120,120,'
            b'"ANSWERED","DOCUMENTATION","1795687200.90"',
        ],
        # One outgoing call, not two; 1 + 120 = 121 s of talk, one conversation (>= 30 s).
        expected={
            ("ivanova", NOV26): {
                "calls_out": 1,
                "calls_out_answered": 1,
                "conversations": 1,
                "talk_seconds": 121,
            }
        },
    ),
    Scenario(
        "real CDRs: ring-group legs that differ only in outcome are kept and make one call",
        # fafeitsch-mockdata-cdr (a German office, 2017; channels pseudonymised to
        # NOT_AVAILABLE, so the company line in dst is the actor). Three calls to the line,
        # two CDRs each with the same uniqueid, dstchannel and start (UTC):
        #   1497952162.0   09:49 UTC  NO ANSWER 10/0 s,  ANSWERED 524/514 s
        #   1497963411.35  12:56 UTC  ANSWERED 20/12 s,  NO ANSWER 7/0 s
        #   1497964157.40  13:09 UTC  NO ANSWER 6/0 s,   ANSWERED 81/74 s
        cdrs=real_cdrs(
            "fafeitsch-mockdata-cdr.Master.csv", "1497952162.0", "1497963411.35", "1497964157.40"
        ),
        # Each pair is one answered call (its legs share the uniqueid, the call id): 3 calls
        # in, none missed; talk 514 + 12 + 74 = 600 s; conversations (>= 30 s): 514 and 74.
        # 09:49-13:09 UTC is 11:49-15:09 in Berlin (CEST): all on 20 June. Keyed as before,
        # each pair was stored as one leg, the answered or the unanswered one.
        expected={
            ("weber", date(2017, 6, 20)): {
                "calls_in": 3,
                "calls_in_answered": 3,
                "conversations": 2,
                "talk_seconds": 600,
            }
        },
    ),
    Scenario(
        "a ring group answered by a colleague on another PBX: the member did not miss it",
        # newcdrcolumns, UTC. The group dials Ivanova's phone and, through the trunk to the
        # branch office, extension 5001 there (nobody in the directory). Ivanova's phone rings
        # 9 s; the branch answers and talks 140 s. The branch leg names no manager's phone on
        # either side, so it is the group number's (600), unattributed.
        cdrs=[
            b'"","79161110060","600","from-trunk","""Client"" <79161110060>",'
            b'"SIP/provider-000000a0","SIP/101-000000a1","Dial",'
            b'"SIP/101&SIP/branch/5001,30","2026-11-26 08:20:00","","2026-11-26 08:20:09",9,0,'
            b'"NO ANSWER","DOCUMENTATION","1795681200.160","","1795681200.160",1',
            b'"","79161110060","600","from-trunk","""Client"" <79161110060>",'
            b'"SIP/provider-000000a0","SIP/branch-000000a2","Dial",'
            b'"SIP/101&SIP/branch/5001,30","2026-11-26 08:20:00","2026-11-26 08:20:09",'
            b'"2026-11-26 08:22:29",149,140,"ANSWERED","DOCUMENTATION","1795681200.160","",'
            b'"1795681200.160",2',
        ],
        # The call reached one manager, who did not answer, but it was answered: Ivanova
        # neither had nor missed it (it was her missed call when only managers' answers
        # counted). The branch's 140 s show as unattributed.
        expected={
            ("ivanova", NOV26): {},
            (UNATTRIBUTED, NOV26): {
                "calls_in": 1,
                "calls_in_answered": 1,
                "conversations": 1,
                "talk_seconds": 140,
            },
        },
    ),
    Scenario(
        "the IVR answers, Ivanova does not, the caller leaves a voicemail: her missed call",
        # newcdrcolumns, UTC; Party A is the client's trunk channel, one CDR per stage: the IVR
        # (answered by the dialplan, no dialled channel), the dial to Ivanova's phone (no
        # answer), voicemail (FreePBX's vmu101, answered by the dialplan).
        cdrs=[
            b'"","79161110061","74951112233","from-trunk","""Client"" <79161110061>",'
            b'"SIP/provider-000000b0","","Background","welcome","2026-11-26 08:40:00",'
            b'"2026-11-26 08:40:00","2026-11-26 08:40:12",12,12,"ANSWERED","DOCUMENTATION",'
            b'"1795682400.176","","1795682400.176",1',
            b'"","79161110061","101","from-trunk","""Client"" <79161110061>",'
            b'"SIP/provider-000000b0","SIP/101-000000b1","Dial","SIP/101,20",'
            b'"2026-11-26 08:40:12","","2026-11-26 08:40:32",20,0,"NO ANSWER","DOCUMENTATION",'
            b'"1795682400.176","","1795682400.176",2',
            b'"","79161110061","vmu101","from-trunk","""Client"" <79161110061>",'
            b'"SIP/provider-000000b0","","VoiceMail","101@default,u","2026-11-26 08:40:32",'
            b'"2026-11-26 08:40:32","2026-11-26 08:40:57",25,25,"ANSWERED","DOCUMENTATION",'
            b'"1795682400.176","","1795682400.176",3',
        ],
        # Machines answered the call, nobody took it: the call reached Ivanova alone and she
        # missed it. Had the IVR's answer counted as the call's, she would not have.
        expected={("ivanova", NOV26): {"calls_in": 1, "missed": 1}},
    ),
    Scenario(
        "a trunk named after a city number is not a manager: the customer's call is incoming",
        # The provider's trunk is the SIP peer 210000 (the office's city number), so its channel
        # SIP/210000-… looks like an extension. The call entered the dialplan in from-trunk:
        # Party A is outside. Ivanova answers after 5 s and talks 60 s (UTC).
        cdrs=[
            b'"","79161110070","101","from-trunk","""Client"" <79161110070>",'
            b'"SIP/210000-000000c0","SIP/101-000000c1","Dial","SIP/101,30",'
            b'"2026-11-26 09:10:00","2026-11-26 09:10:05","2026-11-26 09:11:05",65,60,'
            b'"ANSWERED","DOCUMENTATION","1795684200.192","","1795684200.192",1'
        ],
        # One incoming call, one conversation. Read by the channel names alone it was an
        # internal call of Ivanova's and of an unknown identity 210000.
        expected={
            ("ivanova", NOV26): {
                "calls_in": 1,
                "calls_in_answered": 1,
                "conversations": 1,
                "talk_seconds": 60,
            },
            (UNATTRIBUTED, NOV26): {},
        },
    ),
    Scenario(
        "Ivanova dials a customer through the trunk named 210000: an outgoing call",
        # She dialled a phone number (dst 79161110071): the channel that number reached is the
        # trunk, whatever its name. Answered after 5 s, 45 s of talk.
        cdrs=[
            b'"","101","79161110071","from-internal","""Anna"" <101>","SIP/101-000000d0",'
            b'"SIP/210000-000000d1","Dial","SIP/210000/79161110071,60",'
            b'"2026-11-26 09:20:00","2026-11-26 09:20:05","2026-11-26 09:20:50",50,45,'
            b'"ANSWERED","DOCUMENTATION","1795684800.208","","1795684800.208",1'
        ],
        expected={
            ("ivanova", NOV26): {
                "calls_out": 1,
                "calls_out_answered": 1,
                "conversations": 1,
                "talk_seconds": 45,
            },
            (UNATTRIBUTED, NOV26): {},
        },
    ),
    Scenario(
        "a queue call from the trunk 210000 with no trunk context: the directory decides",
        # FreePBX writes the queue's context (ext-queues) as dcontext, so the CDR alone cannot
        # tell the trunk from a phone: 210000 and 102 both look like extensions. The directory
        # holds 102 (Sidorova) and not 210000, so 210000 is the party outside. She answers
        # after 8 s and talks 70 s.
        cdrs=[
            b'"","79161110072","600","ext-queues","""Client"" <79161110072>",'
            b'"SIP/210000-000000e0","SIP/102-000000e1","Queue","600,t",'
            b'"2026-11-26 09:30:00","2026-11-26 09:30:08","2026-11-26 09:31:18",78,70,'
            b'"ANSWERED","DOCUMENTATION","1795685400.224","","1795685400.224",1'
        ],
        # Sidorova's incoming call, not an internal one; no unknown identity 210000.
        expected={
            ("sidorova", NOV26): {
                "calls_in": 1,
                "calls_in_answered": 1,
                "conversations": 1,
                "talk_seconds": 70,
            },
            (UNATTRIBUTED, NOV26): {},
        },
    ),
    Scenario(
        "chats served: first response times add up for the average",
        messages=[
            (
                "chat-session-json",
                # First answer 54 s after the client wrote.
                chat(
                    "wa-5521",
                    started="2026-11-26T10:02:11+03:00",
                    first_response="2026-11-26T10:03:05+03:00",
                    closed="2026-11-26T10:19:40+03:00",
                )
                + b"\n"
                # 90.9 s, counted in whole seconds rounded down: 90.
                + chat(
                    "wa-5522",
                    started="2026-11-26T14:00:00+03:00",
                    first_response="2026-11-26T14:01:30.900+03:00",
                    closed="2026-11-26T14:20:00+03:00",
                ),
            )
        ],
        # 54 + 90 = 144 s over 2 answered chats: 72 s on average.
        expected={
            ("ivanova", NOV26): {
                "chats": 2,
                "chats_answered": 2,
                "chat_first_response_seconds": 144,
            }
        },
    ),
    Scenario(
        "chats missed: status missed, and closed with no operator answer",
        messages=[
            (
                "chat-session-json",
                chat(
                    "wa-5530",
                    started="2026-11-26T12:00:00+03:00",
                    first_response=None,
                    closed="2026-11-26T12:10:00+03:00",
                    status="missed",
                )
                + b"\n"
                # Closed by the client before anyone wrote back: missed as well.
                + chat(
                    "wa-5531",
                    started="2026-11-26T12:30:00+03:00",
                    first_response=None,
                    closed="2026-11-26T12:45:00+03:00",
                ),
            )
        ],
        expected={("ivanova", NOV26): {"chats_missed": 2}},
    ),
    Scenario(
        "a chat of an operator not in the directory is unattributed, on its UTC day",
        # op-999 is nobody's. 01:30 on the 26th in Moscow is 22:30 UTC on the 25th.
        messages=[
            (
                "chat-session-json",
                chat(
                    "tg-9001",
                    operator="op-999",
                    started="2026-11-26T01:30:00+03:00",
                    first_response="2026-11-26T01:31:00+03:00",
                    closed="2026-11-26T01:40:00+03:00",
                ),
            )
        ],
        expected={
            (UNATTRIBUTED, date(2026, 11, 25)): {
                "chats": 1,
                "chats_answered": 1,
                "chat_first_response_seconds": 60,
            },
            (UNATTRIBUTED, NOV26): {},
            ("ivanova", NOV26): {},
        },
    ),
    Scenario(
        "Bitrix24 Open Lines: sessions count for the operator's CRM identity once closed",
        messages=[
            # Operator 1101 (Ivanova), WhatsApp, first answer after 54 s, closed at 10:19.
            ("bitrix24-openlines-session", openlines("served_whatsapp")),
            # 1101's VK dialog still open: not counted until it is closed.
            ("bitrix24-openlines-session", openlines("open_session")),
            # Operator 1102 (Sidorova): a Telegram chat from 19:45 Moscow, never answered,
            # closed automatically the next morning: missed on the day it started.
            ("bitrix24-openlines-session", openlines("missed_telegram_camel")),
            # 1102's Avito session marked as spam (status 65): not a conversation.
            ("bitrix24-openlines-session", openlines("spam")),
        ],
        expected={
            ("ivanova", NOV26): {
                "chats": 1,
                "chats_answered": 1,
                "chat_first_response_seconds": 54,
            },
            ("sidorova", NOV26): {"chats_missed": 1},
            ("sidorova", NOV27): {},
        },
    ),
    Scenario(
        "leads: created and worked are all leads; only one was created",
        crm=[
            crm("l-1", "lead.created", "2026-11-26T09:12:00+03:00", entity="lead:812"),
            crm("l-2", "lead.worked", "2026-11-26T11:30:00+03:00", entity="lead:812"),
            crm("l-3", "lead.worked", "2026-11-26T15:00:00+03:00", entity="lead:790"),
        ],
        expected={("ivanova", NOV26): {"leads": 3, "leads_created": 1}},
    ),
    Scenario(
        "offers: a prepared offer is not an offer until it is sent",
        crm=[
            crm("o-1", "offer.prepared", "2026-11-26T11:00:00+03:00", entity="deal:5531"),
            crm("o-2", "offer.sent", "2026-11-26T15:00:00+03:00", entity="deal:5531"),
        ],
        expected={("ivanova", NOV26): {"offers": 1}},
    ),
    Scenario(
        "deals: one won, two lost; a signed contract is neither",
        crm=[
            crm("d-1", "deal.won", "2026-11-26T12:00:00+03:00", entity="deal:5531"),
            crm("d-2", "deal.lost", "2026-11-26T13:00:00+03:00", entity="deal:5532"),
            crm("d-3", "deal.lost", "2026-11-26T14:00:00+03:00", entity="deal:5534"),
            crm("d-4", "deal.contract_signed", "2026-11-26T16:00:00+03:00", entity="deal:5531"),
        ],
        expected={("ivanova", NOV26): {"deals_won": 1, "deals_lost": 2}},
    ),
    Scenario(
        "a presentation in the office is a meeting and a presentation",
        crm=[crm("pr-1", "meeting.presentation", "2026-11-26T14:00:00+03:00", location="office")],
        expected={("ivanova", NOV26): {"meetings": 1, "presentations": 1, "meetings_office": 1}},
    ),
    Scenario(
        "meetings by place: office, a visit, a trip (a visit too), a video call (neither)",
        crm=[
            crm("m-10", "meeting.held", "2026-11-26T10:00:00+03:00", location="office"),
            crm("m-11", "meeting.held", "2026-11-26T12:00:00+03:00", location="visit"),
            crm("m-12", "meeting.held", "2026-11-26T15:00:00+03:00", location="trip"),
            crm("m-13", "meeting.held", "2026-11-26T17:00:00+03:00", location="remote"),
        ],
        expected={("ivanova", NOV26): {"meetings": 4, "meetings_office": 1, "meetings_visit": 2}},
    ),
    Scenario(
        "Bitrix24 CRM activities: a meeting at the client's, a task done, a call and an e-mail",
        messages=[
            (
                "bitrix24-crm-rest",
                # 1101's completed meeting at "ООО «Ромашка», Москва, ул. Ленина, 12": no office
                # or video keyword, so a visit; 14:00-15:00 Moscow.
                bitrix24_rest("ONCRMACTIVITYUPDATE", "crm.activity.get", "20417")
                + b"\n"
                # 1101's task completed at 16:20, before its 18:00 deadline: done, not late.
                + bitrix24_rest("ONCRMACTIVITYUPDATE", "crm.activity.get", "20419")
                + b"\n"
                # 1101's e-mail: not counted.
                + bitrix24_rest("ONCRMACTIVITYUPDATE", "crm.activity.get", "20421")
                + b"\n"
                # 1102's new to-do, created at 09:30 and due tomorrow.
                + bitrix24_rest("ONCRMACTIVITYADD", "crm.activity.get", "20418")
                + b"\n"
                # 1102's call activity: calls come from telephony, not from the CRM.
                + bitrix24_rest("ONCRMACTIVITYUPDATE", "crm.activity.get", "20420"),
            )
        ],
        expected={
            ("ivanova", NOV26): {"meetings": 1, "meetings_visit": 1, "tasks_done": 1},
            ("sidorova", NOV26): {"tasks_created": 1},
        },
    ),
    Scenario(
        "Bitrix24 CRM deals: a won deal updated twice counts once; an open deal not at all",
        messages=[
            (
                "bitrix24-crm-rest",
                # Deal 5531 of 1101 moved to C1:WON at 15:40 Moscow; two update events.
                bitrix24_rest("ONCRMDEALUPDATE", "crm.deal.get", "5531", ts=1795696864)
                + b"\n"
                + bitrix24_rest("ONCRMDEALUPDATE", "crm.deal.get", "5531", ts=1795697000)
                + b"\n"
                # Deal 5532 of 1102 lost; no MOVED_TIME, so CLOSEDATE: midnight in Moscow
                # (21:00 UTC on the 25th), which is the 26th for Sidorova.
                + bitrix24_rest("ONCRMDEALUPDATE", "crm.deal.get", "5532")
                + b"\n"
                # Deal 5533 of 1101 still in negotiation.
                + bitrix24_rest("ONCRMDEALUPDATE", "crm.deal.get", "5533"),
            )
        ],
        expected={
            ("ivanova", NOV26): {"deals_won": 1},
            ("sidorova", NOV26): {"deals_lost": 1},
            ("sidorova", date(2026, 11, 25)): {},
        },
    ),
    Scenario(
        "Bitrix24 CRM leads: the add event creates the lead, the update works it",
        # Lead 812 of 1102: created at 09:12, modified at 11:30 Moscow time.
        messages=[
            (
                "bitrix24-crm-rest",
                bitrix24_rest("ONCRMLEADADD", "crm.lead.get", "812")
                + b"\n"
                + bitrix24_rest("ONCRMLEADUPDATE", "crm.lead.get", "812"),
            )
        ],
        expected={("sidorova", NOV26): {"leads": 2, "leads_created": 1}},
    ),
    Scenario(
        "a CDR arriving 3 hours after the hang-up is late: not counted, a dead letter",
        # Hang-up at 09:01:05 UTC, received at 12:01:05; the grace for PBX records is 1 h.
        cdrs=[LATE_CDR],
        received_at=datetime(2026, 11, 26, 12, 1, 5, tzinfo=UTC),
        expected={("ivanova", NOV26): {}},
        expected_dead_letters=["late"],
    ),
    Scenario(
        "the same late CDR sent again with sp-backfill: 1 counts",
        cdrs=[LATE_CDR],
        received_at=datetime(2026, 11, 26, 12, 1, 5, tzinfo=UTC),
        backfill=True,
        expected={
            ("ivanova", NOV26): {
                "calls_out": 1,
                "calls_out_answered": 1,
                "conversations": 1,
                "talk_seconds": 60,
            }
        },
    ),
    Scenario(
        "a two-hour call is judged from its hang-up: 2.5 h after it started is in time",
        # 07:00 UTC start, 5 s ringing, 7200 s talk: hang-up 09:00:05, received 30 min later.
        cdrs=[
            cdr(caller="101", callee="79161110041", start="2026-11-26T07:00:00+00:00", talk=7200)
        ],
        received_at=datetime(2026, 11, 26, 9, 30, 5, tzinfo=UTC),
        expected={
            ("ivanova", NOV26): {
                "calls_out": 1,
                "calls_out_answered": 1,
                "conversations": 1,
                "talk_seconds": 7200,
            }
        },
    ),
    Scenario(
        "CRM events: 23 hours late counts, 25 hours late does not",
        # Received at 06:00 UTC on the 27th; the grace for CRM events is 24 h.
        crm=[
            # 10:00 Moscow = 07:00 UTC on the 26th: 23 h before.
            crm("l-20", "lead.worked", "2026-11-26T10:00:00+03:00"),
            # 08:00 Moscow = 05:00 UTC on the 26th: 25 h before.
            crm("l-21", "lead.worked", "2026-11-26T08:00:00+03:00"),
        ],
        received_at=datetime(2026, 11, 27, 6, 0, tzinfo=UTC),
        expected={("ivanova", NOV26): {"leads": 1}},
        expected_dead_letters=["late"],
    ),
    Scenario(
        "chat sessions are judged from their close: a long chat in time, a short one late",
        # Received at 13:00 UTC on the 27th; the grace for chat sessions is 24 h.
        messages=[
            (
                "chat-session-json",
                # Opened 31 h before (06:00 UTC on the 26th), closed 22 h before: in time.
                chat(
                    "wa-5540",
                    started="2026-11-26T09:00:00+03:00",
                    first_response="2026-11-26T09:00:40+03:00",
                    closed="2026-11-26T18:00:00+03:00",
                )
                + b"\n"
                # Closed at 07:30 UTC on the 26th, 29.5 h before: late.
                + chat(
                    "wa-5541",
                    started="2026-11-26T10:00:00+03:00",
                    first_response="2026-11-26T10:01:00+03:00",
                    closed="2026-11-26T10:30:00+03:00",
                ),
            )
        ],
        received_at=datetime(2026, 11, 27, 13, 0, tzinfo=UTC),
        expected={
            ("ivanova", NOV26): {
                "chats": 1,
                "chats_answered": 1,
                "chat_first_response_seconds": 40,
            }
        },
        expected_dead_letters=["late"],
    ),
]


async def run(clickhouse: ClickHouse, scenario: Scenario) -> dict[tuple[str, date], dict[str, int]]:
    apply_migrations(clickhouse)
    parsers = build_parsers(scenario.parsing)
    payloads = list(scenario.messages)
    if scenario.crm:
        payloads.insert(0, ("crm-event-json", b"\n".join(scenario.crm)))
    if scenario.cdrs:
        payloads.insert(0, ("asterisk-cdr-csv", b"\n".join(scenario.cdrs)))
    backfill = [("sp-backfill", b"1")] if scenario.backfill else []
    messages = [
        RawMessage(
            parsers[format_name].family.value,
            0,
            offset,
            [("sp-format", format_name.encode()), *backfill],
            payload,
            scenario.received_at,
        )
        for offset, (format_name, payload) in enumerate(payloads)
    ]
    processor = BatchProcessor(
        parsers,
        lambda: DIRECTORY,
        PhoneProtector(b"k"),
        max_message_bytes=1 << 20,
        grace=LatenessSettings().by_family(),
        clock=lambda: datetime(2026, 11, 28, tzinfo=UTC),
    )
    result = processor.process(messages)
    reasons = [letter.reason for letter in result.dead_letters]
    assert reasons == scenario.expected_dead_letters, result.dead_letters
    await ClickHouseSink(lambda: clickhouse).write_events(result.rows)
    seen: dict[tuple[str, date], dict[str, int]] = {}
    for manager, day in scenario.expected:
        rows = query_summary(clickhouse, DIRECTORY, last_day=day, counting=scenario.counting)
        counts = next((row.counts for row in rows if row.manager_id == manager), None)
        if counts is None:
            # Every manager of the directory has a row; "(unattributed)" only when it has events.
            assert manager == UNATTRIBUTED, f"{manager} is missing from the summary"
            counts = {}
        seen[(manager, day)] = {name: value for name, value in counts.items() if value}
    return seen


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_worked_example(clickhouse: ClickHouse, scenario: Scenario) -> None:
    assert await run(clickhouse, scenario) == scenario.expected
