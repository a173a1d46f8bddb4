-- Cluster variant of 0013_retention_log.sql (docs/adr/0019-clickhouse-cluster.md): the same schema as
-- replicated <table>_local tables on every node behind Distributed <table> tables,
-- sharded by manager where rows belong to one; every statement runs ON CLUSTER.
-- The ZooKeeper path names the migration that created the table, so a table dropped
-- and recreated by a later migration never meets the old one's metadata.
--
-- The single-node file's notes:
-- What the retention dropped (sinks/clickhouse/retention.py, docs/retention.md): one row per
-- table and partition, written just before the partition is dropped. It is the audit a data
-- protection officer asks for (what was deleted, when, how many rows), and the rollups read it:
-- a local day whose events were dropped is never recomputed (kept_from: the first UTC day the
-- table still holds after the drop). A partition that late records brought back and the next
-- run drops again replaces its row. A few rows a month: no partition key, nothing to expire.
CREATE TABLE IF NOT EXISTS {database}.retention_log_local ON CLUSTER {cluster}
(
    table_name String,
    partition String,
    first_day Date,
    last_day Date,
    kept_from Date,
    rows UInt64,
    dropped_at DateTime('UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/retention_log/0013', '{replica}', dropped_at)
ORDER BY (table_name, partition);

CREATE TABLE IF NOT EXISTS {database}.retention_log ON CLUSTER {cluster} AS {database}.retention_log_local
ENGINE = Distributed({cluster}, {database}, retention_log_local, cityHash64(table_name));
