-- One row per Kafka topic-partition per processed batch: which offsets became which rows, when,
-- by which worker. The offset watermarks stored with the data (design decision 4): an operator
-- sees at a glance that a range was processed twice after a crash (and that no number moved,
-- because rows collapse by event id), or that a range was never processed. Drop old monthly
-- partitions when they are no longer interesting.
CREATE TABLE IF NOT EXISTS {database}.ingest_batches
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
ENGINE = MergeTree
PARTITION BY toYYYYMM(inserted_at)
ORDER BY (topic, partition, first_offset);
