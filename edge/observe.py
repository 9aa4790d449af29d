"""What happened to each request: Prometheus metrics and one JSON access-log line.

The image handler fills an :class:`Exchange` as it goes; :meth:`Observer.finish`
turns it into metrics and an access-log line. Lines are queued and written
by a thread (:mod:`edge.logwriter`), so a slow stdout (a full pipe, a stalled
collector) never blocks the event loop; the `sig` value is redacted before a line is built.
"""

from __future__ import annotations

import math
import re
import sys
import time
from bisect import bisect_left
from collections.abc import Iterator

from orjson import dumps
from prometheus_client import CollectorRegistry, Counter, Histogram, Metric
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from starlette.types import Scope

from edge.cache import HotCache
from edge.logwriter import LineWriter
from edge.memo import Memo
from edge.proxies import ProxyPolicy

REDACTED = b"[redacted]"
MAX_LOGGED_TARGET = 2048
#: Bytes of access-log lines queued at most while stdout is slow: a line is at most
#: about 8 KiB (a 4 KiB target, escaped), so this holds over a thousand of the worst
#: and tens of thousands of ordinary ones.
ACCESS_LOG_BUFFER_BYTES = 8 * 1024 * 1024
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


_clock = time.perf_counter


class Exchange:
    """One request's facts, filled in by whoever answers it."""

    __slots__ = ("cache", "outcome", "sent", "started", "status")

    def __init__(self) -> None:
        self.started = _clock()
        self.status = 0
        self.sent = 0
        self.outcome = "other"
        self.cache = "-"


class RequestStats:
    """Per-request counters as plain numbers, exported by :class:`StatsCollector` at scrape.

    The event loop is one thread, so the hot path needs no locks, and one row per kind
    of answer (outcome, status, cache) takes one dict lookup and three list updates:
    the scrape adds rows up into requests, latency histograms, bytes and cache counts.
    """

    def __init__(self, buckets: tuple[float, ...] = _LATENCY_BUCKETS) -> None:
        self.buckets = buckets
        #: (outcome, status, cache) -> latency bucket counts (+Inf last), seconds, bytes.
        self.rows: dict[tuple[str, int, str], list[float]] = {}
        self.in_flight = 0
        #: Connections refused before any request was read, by reason (edge.server).
        self.rejected: dict[str, int] = {}
        #: Storage reads resumed after a client paused its download (ImageHandler._stream).
        self.resumed = 0

    def record(self, outcome: str, status: int, sent: int, seconds: float, cache: str) -> None:
        row = self.rows.get((outcome, status, cache))
        if row is None:
            row = self.row(outcome, status, cache)
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
        for (outcome, status, cache), row in list(stats.rows.items()):
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
        if self.cache is not None:
            yield GaugeMetricFamily(
                "edge_cache_bytes", "Memory held by the hot-object cache", value=self.cache.held
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
    """JSON lines on a file descriptor (stdout), written by a :class:`LineWriter` thread.

    The event loop hands each line's bytes to the writer's queue: no lock, no
    wake-up, never a blocking write. A slow stdout (a full pipe, a stalled
    collector) delays the log, never a request; if it stalls until the queue
    holds ``max_bytes``, new lines are dropped and a warning counts them. Lines
    carry the second at which they were written (at most ``interval`` after the
    response ended, as nginx logs the time a request ends), so the clock is read
    once per batch, not once per request.

    A line is its duration then its text (:meth:`text`, formatted once per kind of
    request and kept by :class:`Observer`, which builds lines on the event loop).
    Formatting stays on the loop on purpose: queueing the request's scope for the
    thread measured 5x dearer in wall-clock CPU than formatting it, because
    thousands of live dicts per batch slow Python's cyclic garbage collector
    (bytes are not tracked by it); and rendering queued (duration, text) pairs in
    the thread, in C calls per batch, cost more in all than the loop saved.
    """

    def __init__(
        self,
        fd: int = 1,
        *,
        proxies: ProxyPolicy | None = None,
        interval: float = 0.02,
        max_bytes: int = ACCESS_LOG_BUFFER_BYTES,
    ) -> None:
        self.proxies = proxies or ProxyPolicy()
        self.proxied = bool(self.proxies.trusted)
        self.writer = LineWriter(
            fd, max_bytes=max_bytes, name="access", interval=interval, stamp=_stamp
        )
        self.lines = self.writer.lines
        self.put = self.writer.put

    @staticmethod
    def text(facts: Facts) -> bytes:
        """A line after its duration: JSON with the ``sig`` value redacted. Values a client
        controls (client, scheme, method, path) are escaped by orjson; the rest are ours."""
        client, scheme, method, path, query, status, sent, outcome, cache = facts
        target = path[:MAX_LOGGED_TARGET] + b"?" + redact(query) if query else path
        return _TEXT % (
            dumps(client),
            dumps(scheme),
            dumps(method),
            dumps(target[: 2 * MAX_LOGGED_TARGET].decode("latin-1")),
            status,
            sent,
            outcome.encode(),
            cache.encode(),
        )

    def close(self, timeout: float = 2.0) -> None:
        """Write what is queued, then stop the thread."""
        self.writer.close(timeout)


def _stamp() -> bytes:
    return time.strftime(STAMP, time.gmtime()).encode()


#: What a line says but its time and duration: client, scheme, method, raw path, query,
#: status, bytes sent, outcome, cache.
Facts = tuple[str, str, str, bytes, bytes, int, int, str, str]
#: Each line starts with the batch's second, then its duration: see AccessLog._flush.
STAMP = '{"time":"%Y-%m-%dT%H:%M:%SZ","duration_ms":'
_TEXT = (
    b',"client":%s,"scheme":%s,"method":%s,"path":%s,'
    b'"status":%d,"bytes":%d,"outcome":"%s","cache":"%s"}\n'
)
_MEMO_KEY_BYTES = 1024  # requests whose path and query are longer are not remembered


class Observer:
    """Turns each finished request into a metrics update and an access-log line.

    With the log on, one lookup by the request's facts (:data:`Facts`) finds
    both its metrics row and its line's text, kept per kind of request: images
    are asked for again and again by the same clients, and escaping, redacting
    and formatting a line cost more than the rest of a cached hit's logging. A
    line then costs a tuple, one dict lookup, one ``orjson.dumps`` of the
    duration, one concatenation and one append (measured: bench/README.md).
    """

    def __init__(self, *, metrics: Metrics | None, log: AccessLog | None) -> None:
        self.stats = None if metrics is None else metrics.stats
        self.log = log
        # Facts -> (metrics row or None, line text); event loop only.
        self.kinds: Memo[Facts, tuple[list[float] | None, bytes]] = Memo()

    def start(self) -> Exchange:
        if self.stats is not None:
            self.stats.in_flight += 1
        return Exchange()

    def finish(self, scope: Scope, exchange: Exchange) -> None:
        seconds = _clock() - exchange.started
        stats = self.stats
        log = self.log
        if log is None:
            if stats is not None:
                stats.in_flight -= 1
                stats.record(
                    exchange.outcome, exchange.status, exchange.sent, seconds, exchange.cache
                )
            return
        if log.proxied:
            client, scheme = log.proxies.client_and_scheme(scope)
        else:
            peer = scope["client"]
            client, scheme = (peer[0] if peer else "-"), scope.get("scheme", "http")
        facts = (
            client,
            scheme,
            scope["method"],
            scope.get("raw_path") or scope["path"].encode(),
            scope["query_string"],
            exchange.status,
            exchange.sent,
            exchange.outcome,
            exchange.cache,
        )
        kind = self.kinds.get(facts)
        if kind is None:
            kind = self._kind(facts)
        row, text = kind
        if stats is not None and row is not None:  # as RequestStats.record, inline
            stats.in_flight -= 1
            row[bisect_left(stats.buckets, seconds)] += 1
            row[-2] += seconds
            row[-1] += exchange.sent
        # Milliseconds to the microsecond, in orjson's shortest form (0.123, 1.5).
        log.put(dumps(seconds * 1e6 // 1 / 1000) + text)

    def _kind(self, facts: Facts) -> tuple[list[float] | None, bytes]:
        """A new kind of request's metrics row and line text, kept unless its path and query
        are long (free to pad or forge: they would hog the memo)."""
        assert self.log is not None
        _, _, _, path, query, status, _, outcome, cache = facts
        row = None if self.stats is None else self.stats.row(outcome, status, cache)
        kind = (row, self.log.text(facts))
        if len(path) + len(query) <= _MEMO_KEY_BYTES:
            # The facts tuple and its path and query, the line text, the pair: the rest of
            # the facts are small or shared (the metrics row is the stats' own).
            size = 136 + sys.getsizeof(path) + sys.getsizeof(query) + sys.getsizeof(kind[1])
            self.kinds.remember(facts, kind, size + 56 + 200)
        return kind


# A ``sig`` parameter, however its name is escaped (``%73ig`` is a ``sig``: the spec decodes
# names). Matched after an ``&`` that redact() puts in front, so the replacement is static:
# one C call, a quarter of a split-and-decode loop.
_SIG_PARAM = re.compile(rb"&(?:s|%73)(?:i|%69)(?:g|%67)=[^&]*")


def redact(query: bytes) -> bytes:
    """The query with every ``sig`` value replaced (and its name written plainly)."""
    return _SIG_PARAM.sub(b"&sig=" + REDACTED, b"&" + query)[1:]
