"""The batch consumer's bookkeeping: which offsets a durable batch commits, and how a Kafka
record becomes a pipeline message."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from aiokafka import TopicPartition

from processors.batch_consumer import next_offsets, raw_message
from processors.pipeline import RawMessage


def _message(topic: str, partition: int, offset: int) -> RawMessage:
    return RawMessage(topic, partition, offset, (), b"")


def test_a_durable_batch_commits_one_past_its_last_offset_per_partition() -> None:
    batch = [
        _message("raw.pbx", 0, 10),
        _message("raw.pbx", 1, 3),
        _message("raw.pbx", 0, 11),
        _message("raw.crm", 0, 7),
        _message("raw.pbx", 0, 12),
    ]
    assert next_offsets(batch) == {
        TopicPartition("raw.pbx", 0): 13,
        TopicPartition("raw.pbx", 1): 4,
        TopicPartition("raw.crm", 0): 8,
    }


def test_an_empty_batch_commits_nothing() -> None:
    assert next_offsets([]) == {}


def _record(timestamp: int, headers: object = ()) -> SimpleNamespace:
    return SimpleNamespace(
        topic="raw.pbx", partition=2, offset=41, timestamp=timestamp, headers=headers, value=b"x"
    )


def test_a_record_keeps_its_coordinates_headers_and_broker_time() -> None:
    headers = [("sp-format", b"asterisk-cdr-csv")]
    message = raw_message(_record(1_795_000_000_250, headers))
    assert message == RawMessage(
        "raw.pbx",
        2,
        41,
        headers,
        b"x",
        datetime(2026, 11, 18, 11, 6, 40, 250000, tzinfo=UTC),
    )


def test_a_record_without_a_timestamp_has_no_receipt_time() -> None:
    # Producers that set no time leave -1; lateness is then not judged for the record.
    assert raw_message(_record(-1)).received_at is None
    assert raw_message(_record(0)).received_at is None
    assert raw_message(_record(0, None)).headers == ()
