"""Prometheus metrics: per-request counters kept as plain numbers, exported at scrape time.

Request rows are updated by :class:`edge.observe.Observer` on the event loop (no
locks: one thread), storage calls by ordinary histograms (they are rare next to
requests), and the hot cache's size is read when scraped. Under ``edge serve --workers N``
each worker publishes its registry and a scrape sums them (:mod:`edge.workermetrics`).
"""

from __future__ import annotations

import asyncio
import math
from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    Metric,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from edge.cache import HotCache
from edge.record import outcome_and_reason
from edge.workermetrics import Publisher, SharedCollector, worker_folder

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class RequestStats:
    """Per-request counters as plain numbers, exported by :class:`StatsCollector` at scrape.

    The event loop is one thread, so the hot path needs no locks, and one row per kind
    of answer (outcome, status, cache) takes one dict lookup and three list updates:
    the scrape adds rows up into requests, latency histograms, bytes and cache counts.
    """

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.buckets = buckets
        #: (outcome, status, cache) -> latency bucket counts (+Inf last), seconds, bytes. A
        #: refusal's outcome holds its reason (edge.record.with_reason): added up when scraped.
        self.rows: dict[tuple[str, int, str], list[float]] = {}
        self.in_flight = 0
        #: Connections refused before any request was read, by reason (edge.server).
        self.rejected: dict[str, int] = {}
        #: Storage reads resumed after a client paused its download (ImageHandler._stream).
        self.resumed = 0
        #: The last readiness check's answer (edge.app.Readiness); None until one has run.
        self.ready: bool | None = None

    def record(self, outcome: str, status: int, sent: int, seconds: float, cache: str) -> None:
        row = self.rows.get((outcome, status, cache))
        if row is None:
            row = self.row(outcome, status, cache)
        self.add(row, seconds, sent)

    def add(self, row: list[float], seconds: float, sent: int) -> None:
        """Count one request of a row's kind."""
        self.in_flight -= 1
        row[bisect_left(self.buckets, seconds)] += 1
        row[-2] += seconds
        row[-1] += sent

    def row(self, outcome: str, status: int, cache: str) -> list[float]:
        """The row of one kind of answer, made on its first request."""
        row = self.rows.get((outcome, status, cache))
        if row is None:
            row = self.rows[outcome, status, cache] = [0.0] * (len(self.buckets) + 3)
        return row


class StatsCollector(Collector):
    """Turns :class:`RequestStats` into Prometheus families when scraped."""

    def __init__(self, stats: RequestStats, cache: HotCache | None) -> None:
        self.stats = stats
        self.cache = cache

    def collect(self) -> Iterator[Metric]:
        stats = self.stats
        width = len(stats.buckets) + 1
        requests: dict[tuple[str, int], float] = {}
        latency: dict[str, list[float]] = {}  # bucket counts..., sum
        sent = hits = misses = 0.0
        for (kind, status, cache), row in list(stats.rows.items()):
            outcome = outcome_and_reason(kind)[0]  # a refusal's row is its reason's too
            count = sum(row[:width])
            requests[outcome, status] = requests.get((outcome, status), 0) + count
            total = latency.setdefault(outcome, [0.0] * (width + 1))
            for index, value in enumerate(row[: width + 1]):
                total[index] += value
            sent += row[-1]
            if cache in ("hit", "shared"):
                hits += count
            elif cache == "miss":
                misses += count
        family = CounterMetricFamily(
            "edge_requests",
            "Requests answered, by outcome and status",
            labels=["outcome", "status"],
        )
        for (outcome, status), count in requests.items():
            family.add_metric([outcome, str(status)], count)
        yield family
        histogram = HistogramMetricFamily(
            "edge_request_duration_seconds",
            "Time to answer, last byte included",
            labels=["outcome"],
        )
        for outcome, counts in latency.items():
            cumulative: list[tuple[str, float]] = []
            running = 0.0
            for bound, in_bucket in zip((*stats.buckets, math.inf), counts, strict=False):
                running += in_bucket
                cumulative.append(("+Inf" if bound == math.inf else str(float(bound)), running))
            histogram.add_metric([outcome], cumulative, counts[-1])
        yield histogram
        yield CounterMetricFamily(
            "edge_response_body_bytes", "Body bytes sent to clients", value=sent
        )
        yield GaugeMetricFamily(
            "edge_requests_in_flight", "Requests being answered now", value=stats.in_flight
        )
        yield CounterMetricFamily(
            "edge_cache_hits", "Requests answered from the hot-object cache", value=hits
        )
        yield CounterMetricFamily(
            "edge_cache_misses", "Requests the hot-object cache could not answer", value=misses
        )
        rejected = CounterMetricFamily(
            "edge_connections_rejected",
            "Connections closed before a request could be answered, by reason",
            labels=["reason"],
        )
        for reason, count in list(stats.rejected.items()):
            rejected.add_metric([reason], count)
        yield rejected
        yield CounterMetricFamily(
            "edge_storage_reads_resumed",
            "Storage reads resumed where a download paused for its client",
            value=stats.resumed,
        )
        if stats.ready is not None:
            yield GaugeMetricFamily(
                "edge_ready",
                "1 if the last readiness check (a /readyz probe) reached storage, else 0",
                value=float(stats.ready),
            )
        if self.cache is not None:
            yield GaugeMetricFamily(
                "edge_cache_bytes", "Memory held by the hot-object cache", value=self.cache.held
            )
            yield GaugeMetricFamily(
                "edge_cache_entries", "Objects in the hot-object cache", value=len(self.cache)
            )


#: Transform durations, seconds: a thumbnail takes milliseconds, a large AVIF seconds.
TRANSFORM_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The edge's Prometheus registry: request stats by collector, storage by histograms."""

    def __init__(self) -> None:
        #: This process's own metrics.
        self.registry = CollectorRegistry(auto_describe=True)
        #: What a scrape of this process shows: its own, or every worker's under edge serve.
        self.exposed = self.registry
        self._publisher: Publisher | None = None
        self.stats = RequestStats()
        self._collector = StatsCollector(self.stats, None)
        self.registry.register(self._collector)
        # Storage calls are rare next to requests (misses only): ordinary metrics will do.
        self.storage_latency = Histogram(
            "edge_storage_request_duration_seconds",
            "Time storage took to answer a read",
            ["storage", "operation"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.storage_errors = Counter(
            "edge_storage_errors",
            "Storage reads that failed, by error code",
            ["storage", "code"],
            registry=self.registry,
        )

        # Transforms: milliseconds of CPU each, so per-call metrics cost nothing in comparison.
        self.transforms = Histogram(
            "edge_transform_duration_seconds",
            "Time a transform took in its worker (decode, steps, encode), by output format and"
            " outcome (ok, unprocessable, or timeout: stopped at EDGE_TRANSFORM_TIMEOUT)",
            ["format", "outcome"],
            buckets=TRANSFORM_BUCKETS,
            registry=self.registry,
        )

    def watch_cache(self, cache: HotCache) -> None:
        """Cache size is read at scrape time: nothing to update per request."""
        self._collector.cache = cache

    def open(self, listen: int | None) -> None:
        """Start what the lifespan starts: under ``edge serve --workers N``, publishing this
        worker's counts (``edge serve`` itself listens on a metrics port); otherwise a
        metrics port's listener, if ``listen`` is one."""
        folder = worker_folder()
        if folder is not None:
            self._publisher = Publisher(folder, self.registry)
            self._publisher.start(asyncio.get_running_loop())
            self.exposed = CollectorRegistry()
            self.exposed.register(SharedCollector(folder, before=self._publisher.publish))
        elif listen is not None:
            start_http_server(listen, registry=self.registry)

    def close(self) -> None:
        """Publish the last counts (a worker that stops)."""
        if self._publisher is not None:
            self._publisher.close()

    def page(self) -> bytes:
        """The text a scrape gets."""
        return generate_latest(self.exposed)
