-- Cluster variant of 0009_alerts.sql (docs/adr/0019-clickhouse-cluster.md): the same schema as
-- replicated <table>_local tables on every node behind Distributed <table> tables,
-- sharded by manager where rows belong to one; every statement runs ON CLUSTER.
-- The ZooKeeper path names the migration that created the table, so a table dropped
-- and recreated by a later migration never meets the old one's metadata.
--
-- The single-node file's notes:
-- The alert history: one row per notice (an alert fired, or resolved), every field of the
-- notice and of its alert, written by the alerting service before the notice is delivered
-- anywhere else. It is the source of truth at restart (which alerts are open, so they are not
-- fired again) and the record a head of sales can audit.
--
-- Recording a notice twice (a retry after a timeout, a restart) must not make two notices: the
-- notice id is deterministic (alert key, state, fired_at), and it ends the sorting key of a
-- ReplacingMergeTree, so copies collapse; readers that need exact rows use FINAL. The partition
-- is by fired_at, which is part of the notice id, so copies always share a partition. The
-- latest recording wins (recorded_at). Times are whole seconds in UTC (DateTime, which every
-- server we support has); details is a JSON object of strings (no Map/JSON types on old
-- servers). No TTL (old servers): drop old monthly partitions when they are no longer wanted.
CREATE TABLE IF NOT EXISTS {database}.alerts_local ON CLUSTER {cluster}
(
    notice_id String,
    alert_key String,
    state LowCardinality(String),
    at DateTime('UTC'),
    suppressed LowCardinality(String),
    reason LowCardinality(String),
    rule LowCardinality(String),
    kind LowCardinality(String),
    severity LowCardinality(String),
    manager_id String,
    manager_name String,
    department_id LowCardinality(String),
    department_name String,
    metric LowCardinality(String),
    actual Float64,
    expected Float64,
    since DateTime('UTC'),
    fired_at DateTime('UTC'),
    recipients Array(String),
    summary_en String,
    summary_ru String,
    dashboard_url String,
    details String,
    recorded_at DateTime('UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/alerts/0009', '{replica}', recorded_at)
PARTITION BY toYYYYMM(fired_at)
ORDER BY (alert_key, fired_at, notice_id);

CREATE TABLE IF NOT EXISTS {database}.alerts ON CLUSTER {cluster} AS {database}.alerts_local
ENGINE = Distributed({cluster}, {database}, alerts_local, cityHash64(manager_id));
