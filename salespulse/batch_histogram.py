"""A Prometheus histogram that takes a whole batch of observations at once.

``prometheus_client.Histogram.observe`` takes a lock and walks the buckets for every value:
about a microsecond each, which per event is a share of the worker's hot path worth avoiding.
The worker knows a batch's latencies all at once, so this histogram bins them with ``bisect``
and adds the counts under one lock per batch. Prometheus sees an ordinary histogram
(``_bucket``, ``_sum``, ``_count``).
"""

from __future__ import annotations

import bisect
import itertools
import math
import threading
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString


class BatchHistogram(Collector):
    """A labelled histogram fed with ``observe_many``; registered in ``registry`` when given."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float],
        registry: CollectorRegistry | None = REGISTRY,
    ) -> None:
        bounds = sorted(float(b) for b in buckets if not math.isinf(b))
        if not bounds or len(set(bounds)) != len(bounds):
            raise ValueError(f"{name}: buckets must be distinct and finite: {buckets}")
        self.name = name
        self._documentation = documentation
        self._labelnames = tuple(labelnames)
        self._bounds = tuple(bounds)
        self._lock = threading.Lock()
        # Per label values: the count in each bucket (not cumulative; the last is +Inf), and
        # the sum of the values.
        self._counts: dict[tuple[str, ...], list[int]] = {}
        self._sums: dict[tuple[str, ...], float] = {}
        if registry is not None:
            registry.register(self)

    def observe_many(self, values: Iterable[float], *labelvalues: str) -> None:
        if len(labelvalues) != len(self._labelnames):
            raise ValueError(f"{self.name}: expected labels {self._labelnames}")
        bounds = self._bounds
        counts = [0] * (len(bounds) + 1)
        total = 0.0
        for value in values:
            # bisect_left: a value equal to a bound belongs to that bucket ("le").
            counts[bisect.bisect_left(bounds, value)] += 1
            total += value
        if not any(counts):
            return
        with self._lock:
            kept = self._counts.setdefault(labelvalues, [0] * len(counts))
            for index, count in enumerate(counts):
                kept[index] += count
            self._sums[labelvalues] = self._sums.get(labelvalues, 0.0) + total

    def sample_count(self, *labelvalues: str) -> int:
        """How many values were observed with these labels (for tests and logs)."""
        with self._lock:
            return sum(self._counts.get(labelvalues, ()))

    def _family(self) -> HistogramMetricFamily:
        return HistogramMetricFamily(self.name, self._documentation, labels=self._labelnames)

    def describe(self) -> Iterable[HistogramMetricFamily]:
        return [self._family()]

    def collect(self) -> Iterator[HistogramMetricFamily]:
        with self._lock:
            snapshot = [
                (labels, list(counts), self._sums[labels])
                for labels, counts in sorted(self._counts.items())
            ]
        family = self._family()
        # The client library's own spelling of bounds, so "le" reads as in its other histograms.
        limits = [floatToGoString(b) for b in self._bounds] + ["+Inf"]  # type: ignore[no-untyped-call]
        for labels, counts, total in snapshot:
            cumulative = itertools.accumulate(counts)
            family.add_metric(list(labels), list(zip(limits, cumulative, strict=True)), total)
        yield family
