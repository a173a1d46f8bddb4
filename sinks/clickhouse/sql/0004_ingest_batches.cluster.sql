-- Cluster variant of 0004_ingest_batches.sql (docs/adr/0019-clickhouse-cluster.md): the same schema as
-- replicated <table>_local tables on every node behind Distributed <table> tables,
-- sharded by manager where rows belong to one; every statement runs ON CLUSTER.
-- The ZooKeeper path names the migration that created the table, so a table dropped
-- and recreated by a later migration never meets the old one's metadata.
--
-- The single-node file's notes:
-- One row per Kafka topic-partition per processed batch: which offsets became which rows, when,
-- by which worker. The offset watermarks stored with the data (design decision 4): an operator
-- sees at a glance that a range was processed twice after a crash (and that no number moved,
-- because rows collapse by event id), or that a range was never processed. Drop old monthly
-- partitions when they are no longer interesting.
CREATE TABLE IF NOT EXISTS {database}.ingest_batches_local ON CLUSTER {cluster}
(
    topic LowCardinality(String),
    partition UInt32,
    first_offset UInt64,
    last_offset UInt64,
    messages UInt32,
    rows UInt32,
    dead_letters UInt32,
    worker String,
    inserted_at DateTime('UTC')
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/ingest_batches/0004', '{replica}')
PARTITION BY toYYYYMM(inserted_at)
ORDER BY (topic, partition, first_offset);

CREATE TABLE IF NOT EXISTS {database}.ingest_batches ON CLUSTER {cluster} AS {database}.ingest_batches_local
ENGINE = Distributed({cluster}, {database}, ingest_batches_local, cityHash64(topic, partition));
