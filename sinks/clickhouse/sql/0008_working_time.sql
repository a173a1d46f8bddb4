-- Working time per manager and local day (see sinks/clickhouse/worktime.py for the rules): in
-- the office, remote, on visits, and business trips started.
ALTER TABLE {database}.activity_daily ADD COLUMN work_office_seconds UInt32 DEFAULT 0 AFTER tasks_done_late;
ALTER TABLE {database}.activity_daily ADD COLUMN work_remote_seconds UInt32 DEFAULT 0 AFTER work_office_seconds;
ALTER TABLE {database}.activity_daily ADD COLUMN visit_seconds UInt32 DEFAULT 0 AFTER work_remote_seconds;
ALTER TABLE {database}.activity_daily ADD COLUMN trips_started UInt32 DEFAULT 0 AFTER visit_seconds;
