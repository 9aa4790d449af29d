"""What happened to each request: Prometheus metrics and one JSON access-log line.

The image handler fills an :class:`Exchange` as it goes; :meth:`Observer.finish`
turns it into metrics and a log line. Log lines are queued and written by a
thread, so a slow stdout (a full pipe, a stalled collector) never blocks the
event loop; the `sig` value is redacted before a line is built.
"""

from __future__ import annotations

import math
import os
import threading
import time
from bisect import bisect_left
from collections.abc import Iterator

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram, Metric
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from starlette.types import Scope

from edge.cache import HotCache
from edge.proxies import ProxyPolicy

REDACTED = b"[redacted]"
MAX_LOGGED_TARGET = 2048
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Exchange:
    """One request's facts, filled in by whoever answers it."""

    __slots__ = ("cache", "outcome", "sent", "started", "status")

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.status = 0
        self.sent = 0
        self.outcome = "other"
        self.cache = "-"


class RequestStats:
    """Per-request counters as plain numbers, exported by :class:`StatsCollector` at scrape.

    The event loop is one thread, so the hot path needs no locks: a request
    costs a few dict and list updates instead of seven locked Prometheus calls.
    """

    def __init__(self, buckets: tuple[float, ...] = _LATENCY_BUCKETS) -> None:
        self.buckets = buckets
        self.requests: dict[tuple[str, int], int] = {}
        self.latency: dict[str, list[float]] = {}  # per outcome: bucket counts..., count, sum
        self.bytes_sent = 0
        self.in_flight = 0
        self.cache_hits = 0
        self.cache_misses = 0

    def record(self, outcome: str, status: int, sent: int, seconds: float, cache: str) -> None:
        key = (outcome, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        counts = self.latency.get(outcome)
        if counts is None:
            counts = self.latency[outcome] = [0.0] * (len(self.buckets) + 2)
        counts[bisect_left(self.buckets, seconds)] += 1  # the +Inf bucket is the last but one
        counts[-1] += seconds
        self.bytes_sent += sent
        if cache == "hit" or cache == "shared":
            self.cache_hits += 1
        elif cache == "miss":
            self.cache_misses += 1


class StatsCollector(Collector):
    """Turns :class:`RequestStats` into Prometheus families when scraped."""

    def __init__(self, stats: RequestStats, cache: HotCache | None) -> None:
        self.stats = stats
        self.cache = cache

    def collect(self) -> Iterator[Metric]:
        stats = self.stats
        requests = CounterMetricFamily(
            "edge_requests",
            "Requests answered, by outcome and status",
            labels=["outcome", "status"],
        )
        for (outcome, status), count in list(stats.requests.items()):
            requests.add_metric([outcome, str(status)], count)
        yield requests
        latency = HistogramMetricFamily(
            "edge_request_duration_seconds",
            "Time to answer, last byte included",
            labels=["outcome"],
        )
        for outcome, counts in list(stats.latency.items()):
            cumulative: list[tuple[str, float]] = []
            running = 0.0
            for bound, in_bucket in zip((*stats.buckets, math.inf), counts, strict=False):
                running += in_bucket
                cumulative.append(("+Inf" if bound == math.inf else str(float(bound)), running))
            latency.add_metric([outcome], cumulative, counts[-1])
        yield latency
        yield CounterMetricFamily(
            "edge_response_body_bytes", "Body bytes sent to clients", value=stats.bytes_sent
        )
        yield GaugeMetricFamily(
            "edge_requests_in_flight", "Requests being answered now", value=stats.in_flight
        )
        yield CounterMetricFamily(
            "edge_cache_hits", "Requests answered from the hot-object cache", value=stats.cache_hits
        )
        yield CounterMetricFamily(
            "edge_cache_misses",
            "Requests the hot-object cache could not answer",
            value=stats.cache_misses,
        )
        if self.cache is not None:
            yield GaugeMetricFamily(
                "edge_cache_bytes", "Memory held by the hot-object cache", value=self.cache.bytes
            )
            yield GaugeMetricFamily(
                "edge_cache_entries", "Objects in the hot-object cache", value=len(self.cache)
            )


class Metrics:
    """The edge's Prometheus registry: request stats by collector, storage by histograms."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.stats = RequestStats()
        self._collector = StatsCollector(self.stats, None)
        self.registry.register(self._collector)
        # Storage calls are rare next to requests (misses only): ordinary metrics will do.
        self.storage_latency = Histogram(
            "edge_storage_request_duration_seconds",
            "Time storage took to answer a read",
            ["storage", "operation"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.storage_errors = Counter(
            "edge_storage_errors",
            "Storage reads that failed, by error code",
            ["storage", "code"],
            registry=self.registry,
        )

    def watch_cache(self, cache: HotCache) -> None:
        """Cache size is read at scrape time: nothing to update per request."""
        self._collector.cache = cache


class AccessLog:
    """JSON lines to a file descriptor, written by a daemon thread off the event loop.

    The event loop only appends to a list (atomic under the GIL: no lock, no
    wake-up); every ``interval`` the thread swaps in an empty list and writes
    the old one in one call. So a slow stdout (a full pipe, a stalled collector)
    delays the log, never a request, and the cost per request is an append.
    """

    def __init__(self, fd: int = 1, *, interval: float = 0.02) -> None:
        self.fd = fd
        self.interval = interval
        self._lines: list[bytes] = []
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="edge-access-log", daemon=True)
        self._thread.start()

    def put(self, line: bytes) -> None:
        self._lines.append(line)

    def close(self, timeout: float = 2.0) -> None:
        """Write what is queued, then stop the thread."""
        self._closing.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._closing.wait(self.interval):
            self._flush()
        self._flush()

    def _flush(self) -> None:
        if not self._lines:
            return
        lines, self._lines = self._lines, []  # appends after the swap go to the new list
        data = b"".join(lines)
        while data:
            try:
                data = data[os.write(self.fd, data) :]
            except InterruptedError:
                continue
            except OSError:
                return  # stdout is gone: drop the log rather than the service


class Observer:
    def __init__(
        self, *, metrics: Metrics | None, log: AccessLog | None, proxies: ProxyPolicy
    ) -> None:
        self.metrics = metrics
        self.log = log
        self.proxies = proxies
        self._stamp_second = -1
        self._stamp = b""

    def start(self) -> Exchange:
        if self.metrics is not None:
            self.metrics.stats.in_flight += 1
        return Exchange()

    def finish(self, scope: Scope, exchange: Exchange) -> None:
        seconds = time.perf_counter() - exchange.started
        if self.metrics is not None:
            stats = self.metrics.stats
            stats.in_flight -= 1
            stats.record(exchange.outcome, exchange.status, exchange.sent, seconds, exchange.cache)
        if self.log is not None:
            self.log.put(self.line(scope, exchange, seconds))

    def _timestamp(self) -> bytes:
        """ISO 8601 UTC to the second, formatted once per second."""
        now = int(time.time())
        if now != self._stamp_second:
            self._stamp_second = now
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)).encode()
        return self._stamp

    def line(self, scope: Scope, exchange: Exchange, seconds: float) -> bytes:
        """One JSON line. Values a client controls (client, method, path) are escaped by
        orjson; the rest are ours. A byte template costs half of a dict and dumps()."""
        client, scheme = self.proxies.client_and_scheme(scope)
        target = (scope.get("raw_path") or scope["path"].encode())[:MAX_LOGGED_TARGET]
        if scope["query_string"]:
            target += b"?" + redact(scope["query_string"][:MAX_LOGGED_TARGET])
        return _LINE % (
            self._timestamp(),
            orjson.dumps(client),
            scheme.encode(),
            orjson.dumps(scope["method"]),
            orjson.dumps(target.decode("latin-1")),
            exchange.status,
            exchange.sent,
            seconds * 1000,
            exchange.outcome.encode(),
            exchange.cache.encode(),
        )


_LINE = (
    b'{"time":"%s","client":%s,"scheme":"%s","method":%s,"path":%s,"status":%d,"bytes":%d,'
    b'"duration_ms":%.3f,"outcome":"%s","cache":"%s"}\n'
)


def redact(query: bytes) -> bytes:
    """The query with every ``sig`` value (however its name is escaped) replaced."""
    if b"sig" not in query.lower() and b"%" not in query:
        return query
    parts = []
    for part in query.split(b"&"):
        name, equals, _ = part.partition(b"=")
        if _decoded_name(name) == b"sig":
            part = name + equals + REDACTED if equals else name
        parts.append(part)
    return b"&".join(parts)


def _decoded_name(name: bytes) -> bytes:
    from urllib.parse import unquote_to_bytes

    return unquote_to_bytes(name) if b"%" in name else name
