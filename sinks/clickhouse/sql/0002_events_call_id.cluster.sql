-- Cluster variant of 0002_events_call_id.sql (docs/adr/0019-clickhouse-cluster.md): the same schema as
-- replicated <table>_local tables on every node behind Distributed <table> tables,
-- sharded by manager where rows belong to one; every statement runs ON CLUSTER.
-- The ZooKeeper path names the migration that created the table, so a table dropped
-- and recreated by a later migration never meets the old one's metadata.
--
-- The single-node file's notes:
-- The source's id of the whole call, so that legs (transfers, ring groups, queue attempts) can be
-- consolidated into one call per manager. Empty for sources that do not give one.
ALTER TABLE {database}.events_local ON CLUSTER {cluster} ADD COLUMN call_id String DEFAULT '' AFTER external_ref;

DROP TABLE IF EXISTS {database}.events ON CLUSTER {cluster};

CREATE TABLE IF NOT EXISTS {database}.events ON CLUSTER {cluster} AS {database}.events_local
ENGINE = Distributed({cluster}, {database}, events_local, cityHash64(manager_id));
