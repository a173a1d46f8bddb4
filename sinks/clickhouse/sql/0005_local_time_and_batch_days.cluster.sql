-- Cluster variant of 0005_local_time_and_batch_days.sql (docs/adr/0019-clickhouse-cluster.md): the same schema as
-- replicated <table>_local tables on every node behind Distributed <table> tables,
-- sharded by manager where rows belong to one; every statement runs ON CLUSTER.
-- The ZooKeeper path names the migration that created the table, so a table dropped
-- and recreated by a later migration never meets the old one's metadata.
--
-- The single-node file's notes:
-- The manager's local wall-clock time of each event, stored in a UTC-typed column so that every
-- local window is a plain toStartOfFifteenMinutes/Hour/Day/Monday/Month over it. Rows written
-- before this column existed fall back to their UTC time.
-- The local days each batch touched: the durable queue of days whose rollups must be recomputed.
ALTER TABLE {database}.events_local ON CLUSTER {cluster} ADD COLUMN local_time DateTime('UTC') DEFAULT occurred_at AFTER local_date;

ALTER TABLE {database}.ingest_batches_local ON CLUSTER {cluster} ADD COLUMN local_dates Array(Date) AFTER dead_letters;

DROP TABLE IF EXISTS {database}.events ON CLUSTER {cluster};

CREATE TABLE IF NOT EXISTS {database}.events ON CLUSTER {cluster} AS {database}.events_local
ENGINE = Distributed({cluster}, {database}, events_local, cityHash64(manager_id));

DROP TABLE IF EXISTS {database}.ingest_batches ON CLUSTER {cluster};

CREATE TABLE IF NOT EXISTS {database}.ingest_batches ON CLUSTER {cluster} AS {database}.ingest_batches_local
ENGINE = Distributed({cluster}, {database}, ingest_batches_local, cityHash64(topic, partition));
