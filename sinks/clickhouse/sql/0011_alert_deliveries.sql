-- Which channel has taken which alert notice: the delivery log.
--
-- Notices are recorded in `alerts` before they are delivered, so a leader that dies between the
-- two would leave notices no channel ever got. The next leader sends every recent notice that
-- has no row here for a channel to that channel again (with the same notice id, so a receiver
-- that saw it already can tell). Rows collapse per notice and channel.
CREATE TABLE IF NOT EXISTS {database}.alert_deliveries
(
    notice_id String,
    channel LowCardinality(String),
    delivered_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree(delivered_at)
PARTITION BY toYYYYMM(delivered_at)
ORDER BY (notice_id, channel);
