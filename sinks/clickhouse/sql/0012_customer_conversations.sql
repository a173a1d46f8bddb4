-- Answered incoming and answered outgoing calls ("дозвоны") as metrics of their own, and the
-- talk time of calls between two managers apart from customer talk time (docs/metrics.md).
-- Conversations and talk_seconds now count customer calls only, so every stored day changes:
-- rollup_state is recreated, as in 0010, and the worker's rollup timer recomputes every local
-- day found in ingest_batches from events FINAL (`salespulse rollups rebuild` for older days).
ALTER TABLE {database}.activity_15m ADD COLUMN calls_in_answered UInt32 DEFAULT 0 AFTER calls_in;
ALTER TABLE {database}.activity_15m ADD COLUMN calls_out_answered UInt32 DEFAULT 0 AFTER calls_out;
ALTER TABLE {database}.activity_15m ADD COLUMN internal_talk_seconds UInt64 DEFAULT 0 AFTER talk_seconds;
ALTER TABLE {database}.activity_daily ADD COLUMN calls_in_answered UInt32 DEFAULT 0 AFTER calls_in;
ALTER TABLE {database}.activity_daily ADD COLUMN calls_out_answered UInt32 DEFAULT 0 AFTER calls_out;
ALTER TABLE {database}.activity_daily ADD COLUMN internal_talk_seconds UInt64 DEFAULT 0 AFTER talk_seconds;

DROP TABLE IF EXISTS {database}.rollup_state;

CREATE TABLE IF NOT EXISTS {database}.rollup_state
(
    name String,
    watermark DateTime('UTC'),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY name;
