-- What erasures on request removed (sinks/clickhouse/erasure.py, docs/erasure.md): one row per
-- erasure and table, written when the table's mutation has finished (or the wait for it ran
-- out: done = 0). It is the record a data protection officer asks for (whose data, when, how
-- many rows, by whom), and it never holds the erased value in clear: `subject` is the keyed
-- hash a phone number gets in the events (or its mask), or a hash of the manager id. A few rows
-- per request: no partition key, kept for ever, like retention_log.
CREATE TABLE IF NOT EXISTS {database}.erasure_log
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
ENGINE = ReplacingMergeTree(erased_at)
ORDER BY (erasure_id, table_name);
