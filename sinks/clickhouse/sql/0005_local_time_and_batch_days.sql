-- The manager's local wall-clock time of each event, stored in a UTC-typed column so that every
-- local window is a plain toStartOfFifteenMinutes/Hour/Day/Monday/Month over it. Rows written
-- before this column existed fall back to their UTC time.
ALTER TABLE {database}.events ADD COLUMN local_time DateTime('UTC') DEFAULT occurred_at AFTER local_date;
-- The local days each batch touched: the durable queue of days whose rollups must be recomputed.
ALTER TABLE {database}.ingest_batches ADD COLUMN local_dates Array(Date) AFTER dead_letters;
