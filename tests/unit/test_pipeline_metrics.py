"""The worker's own metrics on plain values: the batch histogram, end-to-end latencies, the
consumer-lag gauge and the ClickHouse sink's error counts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from processors.consumer_lag import LagGauge
from processors.pipeline import EVENT_COLUMNS, RawMessage
from processors.runtime import observe_latencies
from salespulse import metrics
from salespulse.batch_histogram import BatchHistogram
from sinks.clickhouse.client import ClickHouseError
from sinks.clickhouse.sink import ClickHouseSink


def sample(name: str, labels: Mapping[str, str]) -> float:
    return REGISTRY.get_sample_value(name, dict(labels)) or 0.0


def test_a_batch_histogram_exposes_what_prometheus_client_would() -> None:
    registry = CollectorRegistry()
    batch = BatchHistogram("t_batch_seconds", "doc", ["topic"], (1, 5, 10), registry=registry)
    batch.observe_many([0.5, 1.0, 3.0, 10.0, 50.0], "pbx")
    batch.observe_many([2.0], "pbx")
    batch.observe_many([], "chat")  # nothing observed: no series
    (family,) = text_string_to_metric_families(generate_latest(registry).decode())
    assert family.type == "histogram"
    got = {(s.name, s.labels.get("le", "")): s.value for s in family.samples}
    assert all(s.labels["topic"] == "pbx" for s in family.samples)
    # Cumulative buckets; a value equal to a bound is in that bound's bucket.
    assert got == {
        ("t_batch_seconds_bucket", "1.0"): 2,
        ("t_batch_seconds_bucket", "5.0"): 4,
        ("t_batch_seconds_bucket", "10.0"): 5,
        ("t_batch_seconds_bucket", "+Inf"): 6,
        ("t_batch_seconds_count", ""): 6,
        ("t_batch_seconds_sum", ""): 66.5,
    }
    assert batch.sample_count("pbx") == 6
    assert batch.sample_count("chat") == 0


def test_a_batch_histogram_refuses_a_wrong_label_count_and_bad_buckets() -> None:
    batch = BatchHistogram("t_labels_seconds", "doc", ["topic"], (1,), registry=None)
    with pytest.raises(ValueError, match="expected labels"):
        batch.observe_many([1.0])
    with pytest.raises(ValueError, match="distinct"):
        BatchHistogram("t_bad_seconds", "doc", [], (1, 1), registry=None)


def event_row(topic: str, occurred_at: datetime, ended_at: datetime | None) -> tuple[Any, ...]:
    values: dict[str, Any] = {
        "occurred_at": occurred_at,
        "ended_at": ended_at,
        "source_topic": topic,
    }
    return tuple(values.get(name) for name in EVENT_COLUMNS)


def test_latencies_run_from_the_activity_end_and_leave_out_old_history() -> None:
    topic = "t-latency.raw.pbx"
    now = datetime.now(UTC)
    rows = [
        # A call that ended ten seconds ago: counted from its end, not from its start.
        event_row(topic, now - timedelta(hours=2), now - timedelta(seconds=10)),
        event_row(topic, now - timedelta(seconds=30), None),
        event_row(topic, now - timedelta(days=3), None),  # a backfill: not live latency
    ]
    messages = [
        RawMessage(topic, 0, 1, (), b"", now - timedelta(seconds=5)),
        RawMessage(topic, 0, 2, (), b"", None),  # no Kafka timestamp
        RawMessage(topic, 0, 3, (), b"", now - timedelta(days=2)),  # a replay
    ]
    before = metrics.EVENT_TO_DURABLE.sample_count(topic)
    observe_latencies(messages, rows)
    assert metrics.EVENT_TO_DURABLE.sample_count(topic) - before == 2
    assert metrics.INGEST_TO_DURABLE.sample_count(topic) == 1
    total = sample("salespulse_event_to_durable_seconds_sum", {"topic": topic})
    assert 40 <= total < 60  # about 10 + 30 seconds
    assert sample("salespulse_event_to_durable_seconds_bucket", {"topic": topic, "le": "10.0"}) == 0
    assert sample("salespulse_event_to_durable_seconds_bucket", {"topic": topic, "le": "30.0"}) == 1


class TP(NamedTuple):
    topic: str
    partition: int


class FakeConsumer:
    def __init__(self) -> None:
        self.assigned: set[TP] = set()
        self.ends: dict[TP, int] = {}
        self.committed: dict[TP, int | None] = {}
        self.fail: Exception | None = None

    async def end_offsets(self, *partitions: TP) -> Mapping[TP, int]:
        if self.fail is not None:
            raise self.fail
        return {tp: self.ends[tp] for tp in partitions}


def lag(topic: str, partition: int) -> float | None:
    return REGISTRY.get_sample_value(
        "salespulse_consumer_lag_messages", {"topic": topic, "partition": str(partition)}
    )


async def test_the_lag_gauge_follows_the_assignment() -> None:
    pbx, other = "t-lag.raw.pbx", "t-lag.other"
    consumer = FakeConsumer()
    gauge = LagGauge(
        [pbx], lambda: consumer.assigned, consumer.end_offsets, lambda: consumer.committed
    )
    consumer.assigned = {TP(pbx, 0), TP(pbx, 1), TP(other, 0)}
    consumer.ends = {TP(pbx, 0): 100, TP(pbx, 1): 7, TP(other, 0): 5}
    consumer.committed = {TP(pbx, 0): 40, TP(pbx, 1): None}
    await gauge.update()
    assert (lag(pbx, 0), lag(pbx, 1), lag(other, 0)) == (60, 7, None)

    # The broker is away: the last values stay rather than a made-up zero.
    consumer.fail = ConnectionError("broker away")
    consumer.committed = {TP(pbx, 0): 100}
    await gauge.update()
    assert lag(pbx, 0) == 60

    # A rebalance took partition 1 away: its series goes, it is another worker's now.
    consumer.fail = None
    consumer.assigned = {TP(pbx, 0)}
    await gauge.update()
    assert (lag(pbx, 0), lag(pbx, 1)) == (0, None)


class FailingClickHouse:
    database = "test"

    def __init__(self, errors: Sequence[ClickHouseError]) -> None:
        self.errors = list(errors)
        self.inserted: list[str] = []

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return []

    def insert_columns(
        self, table: str, columns: Sequence[str], data: Sequence[Sequence[Any]]
    ) -> None:
        if self.errors:
            raise self.errors.pop(0)
        self.inserted.append(table)

    def server_version(self) -> tuple[int, ...]:
        return (24, 8)

    def close(self) -> None:
        pass


async def test_clickhouse_errors_and_retries_are_counted_by_table_and_reason() -> None:
    table = "t_sink_metrics"
    client = FailingClickHouse(
        [
            ClickHouseError("down", retriable=True, reason="unreachable"),
            ClickHouseError("busy", retriable=True, reason="busy"),
        ]
    )

    async def no_wait(seconds: float) -> None:
        pass

    sink = ClickHouseSink(lambda: client, sleep=no_wait)
    await sink.insert(table, ["a"], [(1,)])
    assert client.inserted == [table]
    for reason in ("unreachable", "busy"):
        labels = {"table": table, "reason": reason}
        assert sample("salespulse_clickhouse_insert_errors_total", labels) == 1
        assert sample("salespulse_clickhouse_retries_total", labels) == 1
    assert sample("salespulse_clickhouse_insert_seconds_count", {"table": table}) == 1

    client.errors = [ClickHouseError("no such column", retriable=False, reason="server")]
    with pytest.raises(ClickHouseError):
        await sink.insert(table, ["a"], [(1,)])
    labels = {"table": table, "reason": "server"}
    assert sample("salespulse_clickhouse_insert_errors_total", labels) == 1
    assert sample("salespulse_clickhouse_retries_total", labels) == 0
