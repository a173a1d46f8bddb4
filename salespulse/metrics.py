"""Prometheus metrics shared by the worker and the bridges.

Labels are bounded sets (topic, partition, format, reason, kind, family, table): never a
manager, a call or a customer, so cardinality stays fixed whatever the traffic. What each one
means for the people running the pipeline, and what healthy values look like, is in
docs/operations.md.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from salespulse.batch_histogram import BatchHistogram

CONSUMED_MESSAGES = Counter(
    "salespulse_consumed_messages_total",
    "Kafka messages of the raw topics the worker has made durable (events and dead letters).",
    ["topic"],
)
RECORDS = Counter(
    "salespulse_records_total",
    "Raw records read from Kafka (a message may hold several), by topic and source format.",
    ["format", "topic"],
)
EVENTS_STORED = Counter(
    "salespulse_events_stored_total", "Canonical events durable in ClickHouse, by kind.", ["kind"]
)
UNATTRIBUTED = Counter(
    "salespulse_unattributed_events_total",
    "Events whose actor is not in the manager directory, by identity family.",
    ["family"],
)
DEAD_LETTERS = Counter(
    "salespulse_dead_letters_total",
    "Records or messages sent to the dead-letter topic, by source topic and reason.",
    ["topic", "reason"],
)
CONSUMER_LAG = Gauge(
    "salespulse_consumer_lag_messages",
    "Messages in a partition past the offset its worker committed, i.e. not yet durable; "
    "each worker reports the partitions assigned to it.",
    ["topic", "partition"],
)
BATCH_MESSAGES = Histogram(
    "salespulse_batch_messages",
    "Kafka messages per processed batch.",
    buckets=(1, 10, 100, 500, 1000, 2000, 5000, 10000, 50000),
)
CLICKHOUSE_INSERT_SECONDS = Histogram(
    "salespulse_clickhouse_insert_seconds",
    "Duration of one successful ClickHouse insert of a batch, by table.",
    ["table"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
CLICKHOUSE_INSERT_ERRORS = Counter(
    "salespulse_clickhouse_insert_errors_total",
    "Failed ClickHouse insert attempts, by table and reason (unreachable, busy, server, client).",
    ["table", "reason"],
)
CLICKHOUSE_RETRIES = Counter(
    "salespulse_clickhouse_retries_total",
    "ClickHouse inserts retried after a retriable error, by table and reason.",
    ["table", "reason"],
)
UNSTORABLE_ROWS = Counter(
    "salespulse_unstorable_rows_total",
    "Rows ClickHouse refused for their values, isolated from their batch and dead-lettered "
    "(reason unstorable) while the rest of the batch was stored, by table.",
    ["table"],
)
DEAD_LETTER_RETRIES = Counter(
    "salespulse_dead_letter_retries_total",
    "Sends of a batch's dead letters retried because the broker did not take them, by error.",
    ["error"],
)
DIRECTORY_RELOADS = Counter(
    "salespulse_directory_reloads_total", "Manager directory reloads, by result.", ["result"]
)
LAST_BATCH_DURABLE = Gauge(
    "salespulse_last_batch_durable_timestamp_seconds",
    "Unix time when the last batch became durable in ClickHouse.",
)

# End-to-end latency, observed once per batch for all its events (see BatchHistogram). Only
# what happened, or reached Kafka, within LATENCY_HORIZON_SECONDS is observed: a backfill or a
# replay of old history would otherwise swamp the live latency.
LATENCY_HORIZON_SECONDS = 86_400.0
_LATENCY_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 86_400)
EVENT_TO_DURABLE = BatchHistogram(
    "salespulse_event_to_durable_seconds",
    "From when an activity ended (a call hung up, a chat closed; or happened, for instant "
    "events) to its event being durable in ClickHouse, by source topic.",
    ["topic"],
    _LATENCY_BUCKETS,
)
INGEST_TO_DURABLE = BatchHistogram(
    "salespulse_ingest_to_durable_seconds",
    "From a raw message's Kafka timestamp (written by a bridge) to its batch being durable, "
    "by topic.",
    ["topic"],
    _LATENCY_BUCKETS,
)

# Alert evaluation (processors.alerting); delivery has its own in sinks.alerts.
ALERT_EVALUATIONS = Counter(
    "salespulse_alert_evaluations_total",
    "Alert evaluations on the group leader, by result (ok, error, paused_lag).",
    ["result"],
)
ALERT_EVALUATION_SECONDS = Histogram(
    "salespulse_alert_evaluation_seconds",
    "Time to read today's activity and judge every rule once.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
)
ALERT_NOTICES = Counter(
    "salespulse_alert_notices_total",
    "Alert notices raised by the engine, by rule and state (firing, resolved).",
    ["rule", "state"],
)
ALERT_CONFIG_RELOADS = Counter(
    "salespulse_alert_config_reloads_total",
    "Reloads of the alert rules and the working calendar, by file and result.",
    ["file", "result"],
)

# The HTTP servers (the receiver, the worker's web port).
HTTP_MALFORMED_REQUESTS = Counter(
    "salespulse_http_malformed_requests_total",
    "Requests answered 400 by the HTTP server before any handler: not HTTP it can parse.",
)
# Retention (docs/retention.md).
RETENTION_DROPPED_PARTITIONS = Counter(
    "salespulse_retention_dropped_partitions_total",
    "Partitions the retention dropped, by table.",
    ["table"],
)
RETENTION_RUNS = Counter(
    "salespulse_retention_runs_total",
    "Retention runs of the worker's leader: ok, refused (the server would not drop a "
    "partition), error (the run could not be made).",
    ["result"],
)
