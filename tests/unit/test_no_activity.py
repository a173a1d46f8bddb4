"""A FreeSWITCH leg with no manager's side is no activity, and says so: without a word, a
manager's call read as nobody's looks lost (the import said "1 records, 0 events")."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from processors.parsers import build_parsers
from processors.parsers.freeswitch_common import NOBODYS_LEG
from processors.pipeline import BatchProcessor, RawMessage
from processors.privacy import PhoneProtector
from salespulse.directory import parse_directory
from salespulse.sections import ParsingSettings

# CGRateS's 2013 a-leg: SIP user "usr" calls out; by the default pattern "usr" is no extension.
REAL = Path(__file__).resolve().parents[1] / "samples" / "real"
LEG = REAL / "freeswitch-json-cdr" / "cgrates-2013-fork-a-leg.cdr.json"
NOBODY = parse_directory("departments: []\nmanagers: []\n", suffix=".yaml")


def outcome(parsing: ParsingSettings) -> tuple[int, int, Counter[str]]:
    processor = BatchProcessor(
        build_parsers(parsing),
        lambda: NOBODY,
        PhoneProtector(None),
        max_message_bytes=1 << 20,
        clock=lambda: datetime(2026, 1, 1, tzinfo=UTC),
    )
    headers = [("sp-format", b"freeswitch-json-cdr")]
    result = processor.process([RawMessage("pbx", 0, 0, headers, LEG.read_bytes())])
    return len(result.rows), len(result.dead_letters), result.no_activity


def test_a_leg_with_no_managers_side_is_no_activity_with_a_reason() -> None:
    assert outcome(ParsingSettings()) == (0, 0, Counter({NOBODYS_LEG: 1}))
    # Once the pattern admits SIP users named in lower case, it is usr's outgoing call.
    pattern = ParsingSettings(internal_extension_pattern=r"^(\d{2,6}|[a-z]+)$")
    assert outcome(pattern) == (1, 0, Counter())
