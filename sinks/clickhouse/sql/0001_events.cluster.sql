-- Cluster variant of 0001_events.sql (docs/adr/0019-clickhouse-cluster.md): the same schema as
-- replicated <table>_local tables on every node behind Distributed <table> tables,
-- sharded by manager where rows belong to one; every statement runs ON CLUSTER.
-- The ZooKeeper path names the migration that created the table, so a table dropped
-- and recreated by a later migration never meets the old one's metadata.
--
-- The single-node file's notes:
-- The normalised events table: one row per canonical activity event.
--
-- Effectively-once without server-side insert deduplication (not available on every server we
-- support): the sorting key ends in the deterministic event_id, so a record processed twice
-- (replay, crash before the offset commit, the source sending it twice) collapses to one row under
-- ReplacingMergeTree. Readers that need exact numbers before background merges use FINAL or
-- aggregate over distinct event_id. processed_at is the version: the latest attribution wins.
CREATE TABLE IF NOT EXISTS {database}.events_local ON CLUSTER {cluster}
(
    event_id String,
    kind LowCardinality(String),
    action LowCardinality(String),
    occurred_at DateTime('UTC'),
    local_date Date,
    ended_at Nullable(DateTime('UTC')),
    actor_family LowCardinality(String),
    actor_id String,
    manager_id String,
    department_id LowCardinality(String),
    direction LowCardinality(String),
    answered UInt8,
    duration_seconds UInt32,
    talk_seconds UInt32,
    first_response_seconds Nullable(UInt32),
    amount Decimal(18, 2),
    currency LowCardinality(String),
    location String,
    channel LowCardinality(String),
    due_at Nullable(DateTime('UTC')),
    counterpart String,
    external_ref String,
    source_format LowCardinality(String),
    source_topic LowCardinality(String),
    source_partition UInt32,
    source_offset UInt64,
    source_index UInt32,
    processed_at DateTime('UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/events/0001', '{replica}', processed_at)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (toDate(occurred_at), event_id);

CREATE TABLE IF NOT EXISTS {database}.events ON CLUSTER {cluster} AS {database}.events_local
ENGINE = Distributed({cluster}, {database}, events_local, cityHash64(manager_id));
