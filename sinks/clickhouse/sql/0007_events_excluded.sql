-- Calls to or from configured service numbers (voicemail, IVR, test lines): stored, so nothing
-- is lost and the flag can be revised by a replay, but never counted.
ALTER TABLE {database}.events ADD COLUMN excluded UInt8 DEFAULT 0 AFTER answered;
-- The calls view of 0003 read every stored leg (old servers push no filter into a view) and
-- knew nothing of exclusions; consolidation now lives in the date-restricted queries of
-- sinks/clickhouse/queries.py, and dashboards read the rollups.
DROP TABLE IF EXISTS {database}.calls;
