"""The consume ceiling for benchmarks/suite.py: aiokafka ``getmany`` over the raw topics, no work.

Run as its own process so its CPU time and peak RSS are its own. It assigns itself every
partition of the given topics (consumer group ``--group``, nothing committed: a group would only
add the join, which the ceiling should not include), seeks to the beginning and fetches until
it has seen ``--messages`` messages, counting them and touching nothing else; with ``--passes``
it seeks back and reads them all again, so that a small workload still gives a window long
enough to time. The clock runs from just before the first fetch to the last message. Prints
one JSON object.

    .venv/bin/python benchmarks/raw_consume.py --bootstrap 127.0.0.1:9092 --group raw-1 \
        --messages 39516 topic-a topic-b topic-c
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def consume(args: argparse.Namespace) -> dict[str, float]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        enable_auto_commit=False,
        max_partition_fetch_bytes=args.fetch_bytes,
        fetch_max_bytes=args.fetch_bytes * 4,
    )
    await consumer.start()
    try:
        await consumer.topics()
        partitions = [
            TopicPartition(topic, partition)
            for topic in args.topics
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        seen = 0
        payload = 0
        cpu_before = cpu_seconds()
        started = time.monotonic()
        deadline = started + args.timeout
        for number in range(1, args.passes + 1):
            await consumer.seek_to_beginning(*partitions)
            while seen < args.messages * number:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"only {seen} messages within the timeout")
                fetched = await consumer.getmany(timeout_ms=200, max_records=args.max_records)
                for records in fetched.values():
                    seen += len(records)
                    payload += sum(len(record.value or b"") for record in records)
        seconds = time.monotonic() - started
        cpu = cpu_seconds() - cpu_before
    finally:
        await consumer.stop()
    return {
        "messages": seen,
        "bytes": payload,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--messages", type=int, required=True, help="in the topics")
    parser.add_argument("--passes", type=int, default=1, help="read them all this many times")
    parser.add_argument("--max-records", type=int, default=10_000, help="per getmany call")
    parser.add_argument("--fetch-bytes", type=int, default=1_048_576, help="per partition")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("topics", nargs="+")
    print(json.dumps(asyncio.run(consume(parser.parse_args()))))


if __name__ == "__main__":
    main()
