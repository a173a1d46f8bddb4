"""A batch that dead-letters most of its records is said in the log, by reason (issue 14).

A wrong ``pbx_timezone`` turns every CDR into ``future_time`` or ``late``; a source that changed
its format turns every record into ``malformed``. Nothing stops, so the log is where an operator
must see it at once, without a WARNING for every batch.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from processors.pipeline import BatchResult, DeadLetter, RawMessage
from processors.runtime import BatchRuntime
from salespulse.models import SourceRef
from salespulse.settings import Settings

SOURCE = SourceRef("asterisk-cdr-csv", "pbx", 0, 1, 0)


def result(records: int, dead: int, reason: str = "future_time") -> BatchResult:
    outcome = BatchResult()
    outcome.records[("pbx", "asterisk-cdr-csv")] = records
    outcome.dead_letters = [DeadLetter(reason, "d", SOURCE, b"x")] * dead
    return outcome


def test_mostly_dead_means_more_than_half() -> None:
    assert not result(10, 5).mostly_dead()
    assert result(10, 6).mostly_dead()
    assert not result(0, 0).mostly_dead()
    whole = BatchResult()
    whole.refuse_message("unknown_format", "no parser", RawMessage("pbx", 0, 1, [], b"x"), "fax")
    assert whole.mostly_dead()


def test_one_warning_a_minute_names_the_reasons(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "directory.yaml"
    directory.write_text("departments: []\nmanagers: []\n")
    runtime = BatchRuntime(Settings(directory_path=directory))
    with caplog.at_level(logging.WARNING, logger="processors.runtime"):
        runtime._warn_mostly_dead(result(100, 90))
        runtime._warn_mostly_dead(result(100, 80, reason="late"))
        runtime._warn_mostly_dead(result(100, 70, reason="late"))
        runtime._next_dead_warning = 0.0  # a minute later
        runtime._warn_mostly_dead(result(100, 60))
    first, second = (record.getMessage() for record in caplog.records)
    assert first.startswith("1 batch(es) dead-lettered most of their records: future_time 90")
    assert second.startswith("3 batch(es) dead-lettered most of their records: late 150, ")
    assert "future_time 60" in second
