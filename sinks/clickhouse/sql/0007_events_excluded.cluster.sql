-- Cluster variant of 0007_events_excluded.sql (docs/adr/0019-clickhouse-cluster.md): the same schema as
-- replicated <table>_local tables on every node behind Distributed <table> tables,
-- sharded by manager where rows belong to one; every statement runs ON CLUSTER.
-- The ZooKeeper path names the migration that created the table, so a table dropped
-- and recreated by a later migration never meets the old one's metadata.
--
-- The single-node file's notes:
-- Calls to or from configured service numbers (voicemail, IVR, test lines): stored, so nothing
-- is lost and the flag can be revised by a replay, but never counted.
-- The calls view of 0003 read every stored leg (old servers push no filter into a view) and
-- knew nothing of exclusions; consolidation now lives in the date-restricted queries of
-- sinks/clickhouse/queries.py, and dashboards read the rollups.
ALTER TABLE {database}.events_local ON CLUSTER {cluster} ADD COLUMN excluded UInt8 DEFAULT 0 AFTER answered;

DROP TABLE IF EXISTS {database}.calls ON CLUSTER {cluster};

DROP TABLE IF EXISTS {database}.events ON CLUSTER {cluster};

CREATE TABLE IF NOT EXISTS {database}.events ON CLUSTER {cluster} AS {database}.events_local
ENGINE = Distributed({cluster}, {database}, events_local, cityHash64(manager_id));
