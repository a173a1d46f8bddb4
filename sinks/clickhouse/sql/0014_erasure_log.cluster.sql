-- Cluster variant of 0014_erasure_log.sql (docs/adr/0019-clickhouse-cluster.md): the same schema as
-- replicated <table>_local tables on every node behind Distributed <table> tables,
-- sharded by manager where rows belong to one; every statement runs ON CLUSTER.
-- The ZooKeeper path names the migration that created the table, so a table dropped
-- and recreated by a later migration never meets the old one's metadata.
--
-- The single-node file's notes:
-- What erasures on request removed (sinks/clickhouse/erasure.py, docs/erasure.md): one row per
-- erasure and table, written when the table's mutation has finished (or the wait for it ran
-- out: done = 0). It is the record a data protection officer asks for (whose data, when, how
-- many rows, by whom), and it never holds the erased value in clear: `subject` is the keyed
-- hash a phone number gets in the events (or its mask), or a hash of the manager id. A few rows
-- per request: no partition key, kept for ever, like retention_log.
CREATE TABLE IF NOT EXISTS {database}.erasure_log_local ON CLUSTER {cluster}
(
    erasure_id String,
    subject_kind LowCardinality(String),
    subject String,
    table_name String,
    action LowCardinality(String),
    rows UInt64,
    done UInt8,
    requested_by String,
    erased_at DateTime('UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/erasure_log/0014', '{replica}', erased_at)
ORDER BY (erasure_id, table_name);

CREATE TABLE IF NOT EXISTS {database}.erasure_log ON CLUSTER {cluster} AS {database}.erasure_log_local
ENGINE = Distributed({cluster}, {database}, erasure_log_local, cityHash64(erasure_id));
