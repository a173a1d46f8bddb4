-- Cluster variant of 0010_rollups_by_department.sql (docs/adr/0019-clickhouse-cluster.md): the same schema as
-- replicated <table>_local tables on every node behind Distributed <table> tables,
-- sharded by manager where rows belong to one; every statement runs ON CLUSTER.
-- The ZooKeeper path names the migration that created the table, so a table dropped
-- and recreated by a later migration never meets the old one's metadata.
--
-- The single-node file's notes:
-- The rollups keyed by department too. A manager's day holds one row per department their
-- events carry (the directory moved them between two batches; each event keeps the department
-- it was attributed to), and with department_id outside the sorting key those rows replaced
-- each other: one department's numbers of that day were lost. The sorting key of a table
-- cannot change in place, and the rollups are derived data, so the tables are recreated empty
-- and the watermark is dropped with rollup_state: the worker's rollup timer then recomputes
-- every local day found in ingest_batches from events FINAL (days whose batches were dropped
-- from ingest_batches need `salespulse rollups rebuild`). Until it has, readers see partial
-- rollups. Safe to run again: it only starts the recomputation over.
-- With the working time columns 0008 added.
-- Last, so that a watermark the rollup timer stored while the tables above were replaced
-- goes with them. Recreated rather than emptied: ALTER ... DELETE is a mutation, which 18.16
-- (and current servers by default) apply in the background after the statement returns, so
-- the next rollup pass could still read the old watermark.
DROP TABLE IF EXISTS {database}.activity_15m ON CLUSTER {cluster};

DROP TABLE IF EXISTS {database}.activity_15m_local ON CLUSTER {cluster};

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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/activity_15m/0010', '{replica}', version)
PARTITION BY toYYYYMM(local_date)
ORDER BY (manager_id, department_id, local_date, bucket);

CREATE TABLE IF NOT EXISTS {database}.activity_15m ON CLUSTER {cluster} AS {database}.activity_15m_local
ENGINE = Distributed({cluster}, {database}, activity_15m_local, cityHash64(manager_id));

DROP TABLE IF EXISTS {database}.activity_daily ON CLUSTER {cluster};

DROP TABLE IF EXISTS {database}.activity_daily_local ON CLUSTER {cluster};

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
    work_office_seconds UInt32 DEFAULT 0,
    work_remote_seconds UInt32 DEFAULT 0,
    visit_seconds UInt32 DEFAULT 0,
    trips_started UInt32 DEFAULT 0,
    version UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/activity_daily/0010', '{replica}', version)
PARTITION BY toYYYYMM(local_date)
ORDER BY (manager_id, department_id, local_date);

CREATE TABLE IF NOT EXISTS {database}.activity_daily ON CLUSTER {cluster} AS {database}.activity_daily_local
ENGINE = Distributed({cluster}, {database}, activity_daily_local, cityHash64(manager_id));

DROP TABLE IF EXISTS {database}.payments_daily ON CLUSTER {cluster};

DROP TABLE IF EXISTS {database}.payments_daily_local ON CLUSTER {cluster};

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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/payments_daily/0010', '{replica}', version)
PARTITION BY toYYYYMM(local_date)
ORDER BY (manager_id, department_id, local_date, currency);

CREATE TABLE IF NOT EXISTS {database}.payments_daily ON CLUSTER {cluster} AS {database}.payments_daily_local
ENGINE = Distributed({cluster}, {database}, payments_daily_local, cityHash64(manager_id));

DROP TABLE IF EXISTS {database}.rollup_state ON CLUSTER {cluster};

DROP TABLE IF EXISTS {database}.rollup_state_local ON CLUSTER {cluster};

CREATE TABLE IF NOT EXISTS {database}.rollup_state_local ON CLUSTER {cluster}
(
    name String,
    watermark DateTime('UTC'),
    version UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/rollup_state/0010', '{replica}', version)
ORDER BY name;

CREATE TABLE IF NOT EXISTS {database}.rollup_state ON CLUSTER {cluster} AS {database}.rollup_state_local
ENGINE = Distributed({cluster}, {database}, rollup_state_local, cityHash64(name));
