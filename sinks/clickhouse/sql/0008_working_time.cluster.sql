-- Cluster variant of 0008_working_time.sql (docs/adr/0019-clickhouse-cluster.md): the same schema as
-- replicated <table>_local tables on every node behind Distributed <table> tables,
-- sharded by manager where rows belong to one; every statement runs ON CLUSTER.
-- The ZooKeeper path names the migration that created the table, so a table dropped
-- and recreated by a later migration never meets the old one's metadata.
--
-- The single-node file's notes:
-- Working time per manager and local day (see sinks/clickhouse/worktime.py for the rules): in
-- the office, remote, on visits, and business trips started.
ALTER TABLE {database}.activity_daily_local ON CLUSTER {cluster} ADD COLUMN work_office_seconds UInt32 DEFAULT 0 AFTER tasks_done_late;

ALTER TABLE {database}.activity_daily_local ON CLUSTER {cluster} ADD COLUMN work_remote_seconds UInt32 DEFAULT 0 AFTER work_office_seconds;

ALTER TABLE {database}.activity_daily_local ON CLUSTER {cluster} ADD COLUMN visit_seconds UInt32 DEFAULT 0 AFTER work_remote_seconds;

ALTER TABLE {database}.activity_daily_local ON CLUSTER {cluster} ADD COLUMN trips_started UInt32 DEFAULT 0 AFTER visit_seconds;

DROP TABLE IF EXISTS {database}.activity_daily ON CLUSTER {cluster};

CREATE TABLE IF NOT EXISTS {database}.activity_daily ON CLUSTER {cluster} AS {database}.activity_daily_local
ENGINE = Distributed({cluster}, {database}, activity_daily_local, cityHash64(manager_id));
