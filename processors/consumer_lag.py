"""Consumer lag per partition, kept by every worker for the partitions assigned to it.

Lag is a partition's end offset (its high watermark) minus the offset the worker last
committed there. The worker commits only what is durable in ClickHouse, so the lag counts the
messages not yet countable in ClickHouse, as ``salespulse.lag`` does for the whole group.

Each worker reports only its own partitions, so the group's lag is the sum over workers, no
worker asks about partitions it does not hold, and a partition taken away in a rebalance
leaves this worker's gauge at the next update. The end offsets are asked of the broker (one
ListOffsets request per update), not read from the fetcher's last response: a worker that
stopped fetching (ClickHouse down, buffers full) would otherwise report a lag that no longer
grows while the backlog does.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from salespulse import metrics

log = logging.getLogger(__name__)

# How often the gauge is brought up to date: a few times per Prometheus scrape interval.
LAG_UPDATE_SECONDS = 5.0


Assigned = Callable[[], Iterable[Any]]
EndOffsets = Callable[..., Awaitable[Mapping[Any, int]]]
Committed = Callable[[], Mapping[Any, int | None]]


class LagGauge:
    """Keeps ``salespulse_consumer_lag_messages`` for the assigned partitions of ``topics``."""

    def __init__(
        self,
        topics: Iterable[str],
        assigned: Assigned,
        end_offsets: EndOffsets,
        committed: Committed,
    ) -> None:
        self._topics = frozenset(topics)
        self._assigned = assigned
        self._end_offsets = end_offsets
        self._committed = committed
        self._shown: set[tuple[str, str]] = set()
        self._failing = False

    async def update(self) -> None:
        """Measure once; a failure (broker away, rebalance under way) keeps the last values."""
        try:
            partitions = sorted(
                (tp for tp in self._assigned() if tp.topic in self._topics),
                key=lambda tp: (tp.topic, tp.partition),
            )
            ends = await self._end_offsets(*partitions) if partitions else {}
        except Exception as exc:  # any client error: the next update asks again
            if not self._failing:
                log.warning("consumer lag not measured: %r", exc)
            self._failing = True
            return
        self._failing = False
        committed = self._committed()
        shown: set[tuple[str, str]] = set()
        for tp in partitions:
            end = ends.get(tp)
            if end is None:
                continue
            # Nothing committed yet: the worker starts from the earliest offset, so all of it.
            done = committed.get(tp) or 0
            labels = (tp.topic, str(tp.partition))
            metrics.CONSUMER_LAG.labels(*labels).set(max(end - done, 0))
            shown.add(labels)
        for labels in self._shown - shown:
            metrics.CONSUMER_LAG.remove(*labels)
        self._shown = shown
