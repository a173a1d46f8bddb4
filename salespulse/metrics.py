"""Prometheus metrics shared by the worker and the bridges.

Labels are bounded sets (topic, format, reason, kind, family): never a manager, a call or a
customer, so cardinality stays fixed whatever the traffic.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECORDS = Counter(
    "salespulse_records_total", "Raw records read from Kafka, by source format.", ["format"]
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
    "salespulse_dead_letters_total", "Records sent to the dead-letter topic, by reason.", ["reason"]
)
BATCH_MESSAGES = Histogram(
    "salespulse_batch_messages",
    "Kafka messages per processed batch.",
    buckets=(1, 10, 100, 500, 1000, 2000, 5000, 10000, 50000),
)
CLICKHOUSE_INSERT_SECONDS = Histogram(
    "salespulse_clickhouse_insert_seconds", "Duration of one ClickHouse insert of a batch."
)
CLICKHOUSE_RETRIES = Counter(
    "salespulse_clickhouse_retries_total", "ClickHouse inserts retried after a retriable error."
)
DIRECTORY_RELOADS = Counter(
    "salespulse_directory_reloads_total", "Manager directory reloads, by result.", ["result"]
)
LAST_BATCH_DURABLE = Gauge(
    "salespulse_last_batch_durable_timestamp_seconds",
    "Unix time when the last batch became durable in ClickHouse.",
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
