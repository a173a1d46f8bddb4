-- Cluster variant of 0006_rollups.sql (docs/adr/0019-clickhouse-cluster.md): the same schema as
-- replicated <table>_local tables on every node behind Distributed <table> tables,
-- sharded by manager where rows belong to one; every statement runs ON CLUSTER.
-- The ZooKeeper path names the migration that created the table, so a table dropped
-- and recreated by a later migration never meets the old one's metadata.
--
-- The single-node file's notes:
-- Dashboard rollups: what every manager did per 15 minutes of their local day, and payments per
-- currency per local day. Recomputed by the worker from events FINAL for the days each batch
-- touched (ingest_batches.local_dates), so they inherit the events' exactness: a replay or a
-- late record changes them by recomputation, never by adding twice. Rows of one key replace
-- each other by version; hours, days, weeks and months are sums over the 15-minute rows
-- (bucket is local wall-clock time stored as UTC, see events.local_time).
-- The same per local day: what views over months and years read (15-minute rows barely
-- compress a sparse day, day rows do).
-- How far the rollups have consumed ingest_batches (by inserted_at).
CREATE TABLE IF NOT EXISTS {database}.activity_15m_local ON CLUSTER {cluster}
(
    manager_id String,
    department_id LowCardinality(String),
    local_date Date,
    bucket DateTime('UTC'),
    calls_in UInt32,
    calls_out UInt32,
    calls_internal UInt32,
    missed UInt32,
    conversations UInt32,
    talk_seconds UInt64,
    chats UInt32,
    chats_missed UInt32,
    chat_first_response_seconds UInt64,
    chats_answered UInt32,
    meetings UInt32,
    meetings_office UInt32,
    meetings_visit UInt32,
    presentations UInt32,
    offers UInt32,
    leads UInt32,
    leads_created UInt32,
    deals_won UInt32,
    deals_lost UInt32,
    payments UInt32,
    tasks_created UInt32,
    tasks_done UInt32,
    tasks_done_late UInt32,
    version UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/activity_15m/0006', '{replica}', version)
PARTITION BY toYYYYMM(local_date)
ORDER BY (manager_id, local_date, bucket);

CREATE TABLE IF NOT EXISTS {database}.activity_15m ON CLUSTER {cluster} AS {database}.activity_15m_local
ENGINE = Distributed({cluster}, {database}, activity_15m_local, cityHash64(manager_id));

CREATE TABLE IF NOT EXISTS {database}.activity_daily_local ON CLUSTER {cluster}
(
    manager_id String,
    department_id LowCardinality(String),
    local_date Date,
    calls_in UInt32,
    calls_out UInt32,
    calls_internal UInt32,
    missed UInt32,
    conversations UInt32,
    talk_seconds UInt64,
    chats UInt32,
    chats_missed UInt32,
    chat_first_response_seconds UInt64,
    chats_answered UInt32,
    meetings UInt32,
    meetings_office UInt32,
    meetings_visit UInt32,
    presentations UInt32,
    offers UInt32,
    leads UInt32,
    leads_created UInt32,
    deals_won UInt32,
    deals_lost UInt32,
    payments UInt32,
    tasks_created UInt32,
    tasks_done UInt32,
    tasks_done_late UInt32,
    version UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/activity_daily/0006', '{replica}', version)
PARTITION BY toYYYYMM(local_date)
ORDER BY (manager_id, local_date);

CREATE TABLE IF NOT EXISTS {database}.activity_daily ON CLUSTER {cluster} AS {database}.activity_daily_local
ENGINE = Distributed({cluster}, {database}, activity_daily_local, cityHash64(manager_id));

CREATE TABLE IF NOT EXISTS {database}.payments_daily_local ON CLUSTER {cluster}
(
    manager_id String,
    department_id LowCardinality(String),
    local_date Date,
    currency LowCardinality(String),
    payments UInt32,
    amount Decimal(18, 2),
    version UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/payments_daily/0006', '{replica}', version)
PARTITION BY toYYYYMM(local_date)
ORDER BY (manager_id, local_date, currency);

CREATE TABLE IF NOT EXISTS {database}.payments_daily ON CLUSTER {cluster} AS {database}.payments_daily_local
ENGINE = Distributed({cluster}, {database}, payments_daily_local, cityHash64(manager_id));

CREATE TABLE IF NOT EXISTS {database}.rollup_state_local ON CLUSTER {cluster}
(
    name String,
    watermark DateTime('UTC'),
    version UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/rollup_state/0006', '{replica}', version)
ORDER BY name;

CREATE TABLE IF NOT EXISTS {database}.rollup_state ON CLUSTER {cluster} AS {database}.rollup_state_local
ENGINE = Distributed({cluster}, {database}, rollup_state_local, cityHash64(name));
