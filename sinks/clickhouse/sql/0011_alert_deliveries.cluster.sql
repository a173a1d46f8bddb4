-- Cluster variant of 0011_alert_deliveries.sql (docs/adr/0019-clickhouse-cluster.md): the same schema as
-- replicated <table>_local tables on every node behind Distributed <table> tables,
-- sharded by manager where rows belong to one; every statement runs ON CLUSTER.
-- The ZooKeeper path names the migration that created the table, so a table dropped
-- and recreated by a later migration never meets the old one's metadata.
--
-- The single-node file's notes:
-- Which channel has taken which alert notice: the delivery log.
--
-- Notices are recorded in `alerts` before they are delivered, so a leader that dies between the
-- two would leave notices no channel ever got. The next leader sends every recent notice that
-- has no row here for a channel to that channel again (with the same notice id, so a receiver
-- that saw it already can tell). Rows collapse per notice and channel.
CREATE TABLE IF NOT EXISTS {database}.alert_deliveries_local ON CLUSTER {cluster}
(
    notice_id String,
    channel LowCardinality(String),
    delivered_at DateTime('UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/alert_deliveries/0011', '{replica}', delivered_at)
PARTITION BY toYYYYMM(delivered_at)
ORDER BY (notice_id, channel);

CREATE TABLE IF NOT EXISTS {database}.alert_deliveries ON CLUSTER {cluster} AS {database}.alert_deliveries_local
ENGINE = Distributed({cluster}, {database}, alert_deliveries_local, cityHash64(notice_id));
