"""A record read without error that is nobody's activity gives no row and no dead letter; the
import and the check count it, so that a file that counts nothing does not look lost."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from processors.parsers import build_parsers
from processors.pipeline import BatchProcessor, RawMessage
from processors.privacy import PhoneProtector
from salespulse.directory import parse_directory
from salespulse.history_import import ImportSummary
from salespulse.settings import ParsingSettings

# CGRateS's 2013 a-leg: SIP user "usr" calls out; by the default pattern "usr" is no extension.
REAL = Path(__file__).resolve().parents[1] / "samples" / "real"
LEG = REAL / "freeswitch-json-cdr" / "cgrates-2013-fork-a-leg.cdr.json"
NOBODY = parse_directory("departments: []\nmanagers: []\n", suffix=".yaml")


def outcome(parsing: ParsingSettings) -> tuple[int, int, int]:
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


def test_a_leg_with_no_managers_side_is_counted_as_no_activity() -> None:
    assert outcome(ParsingSettings()) == (0, 0, 1)
    # Once the pattern admits SIP users named in lower case, it is usr's outgoing call.
    assert outcome(ParsingSettings(internal_extension_pattern=r"^(\d{2,6}|[a-z]+)$")) == (1, 0, 0)


def test_the_import_summary_says_how_many_records_were_nobodys_activity() -> None:
    total = ImportSummary()
    total.add(ImportSummary(files=1, records=1, no_activity=1, formats=Counter({"x": 1})))
    total.add(ImportSummary(files=1, records=2, events=2, formats=Counter({"x": 1})))
    assert total.no_activity == 1
    assert "3 records, 2 events (1 records nobody's activity" in total.describe()
    assert "nobody's activity" not in ImportSummary(records=2, events=2).describe()
