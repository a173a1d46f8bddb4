-- What the retention dropped (sinks/clickhouse/retention.py, docs/retention.md): one row per
-- table and partition, written just before the partition is dropped. It is the audit a data
-- protection officer asks for (what was deleted, when, how many rows), and the rollups read it:
-- a local day whose events were dropped is never recomputed (kept_from: the first UTC day the
-- table still holds after the drop). A partition that late records brought back and the next
-- run drops again replaces its row. A few rows a month: no partition key, nothing to expire.
CREATE TABLE IF NOT EXISTS {database}.retention_log
(
    table_name String,
    partition String,
    first_day Date,
    last_day Date,
    kept_from Date,
    rows UInt64,
    dropped_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree(dropped_at)
ORDER BY (table_name, partition);
