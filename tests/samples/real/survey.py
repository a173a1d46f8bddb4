"""What today's parsers make of each file of the real corpus.

    PYTHONPATH=. python tests/samples/real/survey.py [--events]

Each file is fed to the parser of its format the way it would reach Kafka: ``as-is`` (the file's
bytes are the message), ``compact`` (the JSON document re-serialised on one line, as
mod_json_cdr posts it), ``envelope:<entity>`` (a REST ``result`` wrapped as
``ingest.bitrix24.enrich`` wraps it). A file may be fed more than one way. The table this prints
is the one in README.md; ``--events`` also prints every event and every dead letter.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from processors.parsers import RecordError, build_parsers
from processors.parsers.base import NoActivity
from processors.pipeline import settle_sides
from salespulse.models import SourceRef
from salespulse.sections import ParsingSettings

HERE = Path(__file__).resolve().parent
A, F, B = "asterisk-cdr-csv", "freeswitch-json-cdr", "bitrix24"
STAT, END = "bitrix24-voximplant-statistic", "bitrix24-call-end-event"
CRM, ENTITY = "bitrix24-crm-rest", "envelope:"

# file, format, feed, settings overrides
MANIFEST: list[tuple[str, str, str, dict[str, str]]] = [
    (f"{A}/fafeitsch-mockdata-cdr.Master.csv", A, "as-is", {}),
    (f"{A}/fafeitsch-mockdata-smallcdr.Master.csv", A, "as-is", {}),
    (f"{A}/asterisk-testsuite-self_test.Master.csv", A, "as-is", {}),
    (f"{A}/asterisk-testsuite-cdrlib-good.Master.csv", A, "as-is", {}),
    (f"{A}/asterisk-testsuite-cdrlib-buggy.Master.csv", A, "as-is", {}),
    (f"{F}/cgrates-2018-internal-a-leg.pretty.cdr.json", F, "as-is", {}),
    (f"{F}/cgrates-2018-internal-a-leg.pretty.cdr.json", F, "compact", {}),
    (f"{F}/cgrates-2013-fork-a-leg.cdr.json", F, "as-is", {}),
    ("freeswitch-cdr-csv/astpp-issue-144.Master.csv", "freeswitch-cdr-csv", "as-is", {}),
    (f"{B}/voximplant.statistic.get.response.json", STAT, "as-is", {}),
    (f"{B}/voximplant.statistic.get.response.json", END, "as-is", {}),
    (f"{B}/telephony.externalcall.finish.response.json", STAT, "as-is", {}),
    (f"{B}/telephony.externalcall.finish.response.json", END, "as-is", {}),
    (f"{B}/onvoximplantcallend.event.json", END, "as-is", {}),
    (f"{B}/onsessionfinish.event.json", "bitrix24-openlines-session", "as-is", {}),
    (f"{B}/oncrmdealupdate.event.json", CRM, "as-is", {}),
    (f"{B}/crm.deal.get.response.json", CRM, "as-is", {}),
    (f"{B}/crm.deal.get.response.json", CRM, f"{ENTITY}deal:ONCRMDEALUPDATE", {}),
    (f"{B}/crm.activity.get.response.json", CRM, "as-is", {}),
    (f"{B}/crm.activity.get.response.json", CRM, f"{ENTITY}activity:ONCRMACTIVITYUPDATE", {}),
]  # fmt: skip


def payload(path: Path, feed: str) -> bytes:
    raw = path.read_bytes()
    if feed == "as-is":
        return raw
    doc = json.loads(raw)
    if feed == "compact":
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
    if feed.startswith("envelope:"):
        _, entity, event = feed.split(":")
        envelope = {"event": event, "ts": int(doc["time"]["start"]), "entity": entity}
        envelope["result"] = doc["result"]
        return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
    raise ValueError(feed)


def survey(show: bool) -> None:
    print("| file | fed as | format | records | events | dead letters (reason) |")
    print("|---|---|---|---|---|---|")
    for name, fmt, feed, overrides in MANIFEST:
        parser = build_parsers(ParsingSettings(**overrides))[fmt]
        records = parser.split(payload(HERE / name, feed))
        events = 0
        dead: Counter[str] = Counter()
        notes: list[str] = []
        for position, record in enumerate(records):
            source = SourceRef(fmt, f"salespulse.raw.{parser.family}", 0, 0, position)
            try:
                # With nobody in the directory, as the worker keeps them (settle_sides).
                got = settle_sides(parser.parse(record, source), lambda _actor, _at: None)
            except RecordError as error:
                dead[error.reason] += 1
                notes.append(f"  #{position} {error.reason}: {error.detail}")
                continue
            events += len(got)
            if isinstance(got, NoActivity):
                notes.append(f"  #{position} no activity: {got.why}")
            for event in got:
                notes.append(
                    f"  #{position} {event.actor.family}:{event.actor.id} {event.kind}/"
                    f"{event.action} {event.direction} answered={event.answered} "
                    f"{event.duration_seconds}/{event.talk_seconds}s at {event.occurred_at} "
                    f"counterpart={event.counterpart} call_id={event.call_id}"
                )
        letters = ", ".join(f"{n} {r}" for r, n in sorted(dead.items())) or "0"
        print(f"| {name} | {feed} | {fmt} | {len(records)} | {events} | {letters} |")
        if show:
            print("\n".join(notes))


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("--events", action="store_true")
    survey(cli.parse_args().events)
