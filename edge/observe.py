"""What happened to each request: Prometheus metrics and one JSON access-log line.

The image handler fills an :class:`Exchange` as it goes; :meth:`Observer.finish`
turns it into metrics and an access-log line. Lines are queued and written
by a thread, so a slow stdout (a full pipe, a stalled collector)
never blocks the event loop; the `sig` value is redacted before a line is built.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Iterator

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram, Metric
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from starlette.types import Scope

from edge.cache import HotCache
from edge.memo import MEMO_SIZE, remember
from edge.proxies import ProxyPolicy

REDACTED = b"[redacted]"
MAX_LOGGED_TARGET = 2048
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

    def record(self, outcome: str, status: int, sent: int, seconds: float, cache: str) -> None:
        row = self.rows.get((outcome, status, cache))
        if row is None:
            row = self.rows[outcome, status, cache] = [0.0] * (len(self.buckets) + 3)
        row[bisect_left(self.buckets, seconds)] += 1
        row[-2] += seconds
        row[-1] += sent


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
    """JSON lines to a file descriptor, written by a daemon thread.

    The event loop formats a line (a few microseconds: see :meth:`line`) and
    appends the bytes to a bounded deque: no lock, no wake-up. Every
    ``interval`` the thread writes what has accumulated in one call, so a slow
    stdout (a full pipe, a stalled collector) delays the log, never a request;
    if it stalls long enough to fill ``capacity`` lines, the oldest are dropped
    and the next write says so on stderr, rather than memory growing without
    bound. Lines carry the second at which they were written (at most
    ``interval`` after the response ended, as nginx logs the time a request
    ends), so the clock is read once per batch, not once per request.

    Formatting stays on the event loop on purpose: queueing the request's scope
    for the thread to format measured 5x dearer in wall-clock CPU than the
    formatting itself, because thousands of live dicts per batch slow Python's
    cyclic garbage collector; bytes are not tracked by it.
    """

    def __init__(
        self,
        fd: int = 1,
        *,
        proxies: ProxyPolicy | None = None,
        interval: float = 0.02,
        capacity: int = 50_000,
        notices: int = 2,
    ) -> None:
        self.fd = fd
        self.notices = notices
        self.proxies = proxies or ProxyPolicy()
        self.interval = interval
        self.lines: deque[bytes] = deque(maxlen=capacity)
        self.put = self.lines.append
        self.overflows = 0
        # Line fragments that repeat (who asked, how it ended), escaped once per kind of
        # request; only the event loop touches them.
        self._fragments: dict[tuple[str, str, str, int, str, str], tuple[bytes, bytes]] = {}
        # The escaped, redacted target per (raw path, query): images are requested again and
        # again, and a signed URL's redaction and escaping was the dearest part of its line.
        self._targets: dict[tuple[bytes, bytes], bytes] = {}
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="edge-access-log", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 2.0) -> None:
        """Write what is queued, then stop the thread."""
        self._closing.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._closing.wait(self.interval):
            self._flush()
        self._flush()

    def _flush(self) -> None:
        lines = self.lines
        count = len(lines)
        if not count:
            return
        if count == lines.maxlen:
            self.overflows += 1
            _write(
                self.notices,
                b'{"event":"access_log_overflow","detail":"stdout too slow: lines dropped"}\n',
            )
        take = lines.popleft
        stamp = time.strftime('{"time":"%Y-%m-%dT%H:%M:%SZ",', time.gmtime()).encode()
        _write(self.fd, stamp + stamp.join([take() for _ in range(count)]))

    def line(self, scope: Scope, exchange: Exchange, seconds: float) -> bytes:
        """One JSON line without its leading ``{"time":…,``. Values a client controls
        (client, method, path) are escaped by orjson; the rest are ours."""
        if self.proxies.trusted:
            client, scheme = self.proxies.client_and_scheme(scope)
        else:
            peer = scope.get("client")
            client, scheme = (peer[0] if peer else "-"), scope.get("scheme", "http")
        key = (client, scheme, scope["method"], exchange.status, exchange.outcome, exchange.cache)
        around = self._fragments.get(key)
        if around is None:
            around = self._escape(key)
        where = (scope.get("raw_path") or scope["path"].encode(), scope["query_string"])
        target = self._targets.get(where)
        if target is None:
            target = self._escape_target(where)
        return _LINE % (around[0], target, exchange.sent, seconds * 1000, around[1])

    def _escape_target(self, where: tuple[bytes, bytes]) -> bytes:
        """The path and redacted query as a JSON string, kept for the next request."""
        path, query = where
        if query:
            path = path[:MAX_LOGGED_TARGET] + b"?" + redact(query)
        target = orjson.dumps(path[: 2 * MAX_LOGGED_TARGET].decode("latin-1"))
        if len(where[0]) + len(query) <= _MEMO_KEY_BYTES:  # long ones would hog the memo
            remember(self._targets, where, target, _MEMO_SIZE)
        return target

    def _escape(self, key: tuple[str, str, str, int, str, str]) -> tuple[bytes, bytes]:
        """The fragments before and after the path, for one kind of row, kept for the next."""
        client, scheme, method, status, outcome, cache = key
        around = (
            b'"client":%s,"scheme":%s,"method":%s,'
            % (orjson.dumps(client), orjson.dumps(scheme), orjson.dumps(method)),
            b'"status":%d,"outcome":"%s","cache":"%s"}\n'
            % (status, outcome.encode(), cache.encode()),
        )
        return remember(self._fragments, key, around, _MEMO_SIZE)


_LINE = b'%s"path":%s,"bytes":%d,"duration_ms":%.3f,%s'
_MEMO_SIZE = MEMO_SIZE
_MEMO_KEY_BYTES = 1024  # (path, query) keys longer than this are not remembered


def _write(fd: int, data: bytes) -> None:
    while data:
        try:
            data = data[os.write(fd, data) :]
        except InterruptedError:
            continue
        except OSError:
            return  # the stream is gone: drop the log rather than the service


class Observer:
    def __init__(self, *, metrics: Metrics | None, log: AccessLog | None) -> None:
        self.stats = None if metrics is None else metrics.stats
        self.log = log

    def start(self) -> Exchange:
        if self.stats is not None:
            self.stats.in_flight += 1
        return Exchange()

    def finish(self, scope: Scope, exchange: Exchange) -> None:
        seconds = _clock() - exchange.started
        stats = self.stats
        if stats is not None:
            stats.in_flight -= 1
            stats.record(exchange.outcome, exchange.status, exchange.sent, seconds, exchange.cache)
        log = self.log
        if log is not None:
            log.put(log.line(scope, exchange, seconds))


# A ``sig`` parameter, however its name is escaped (``%73ig`` is a ``sig``: the spec decodes
# names). Matched after an ``&`` that redact() puts in front, so the replacement is static:
# one C call, a quarter of a split-and-decode loop.
_SIG_PARAM = re.compile(rb"&(?:s|%73)(?:i|%69)(?:g|%67)=[^&]*")


def redact(query: bytes) -> bytes:
    """The query with every ``sig`` value replaced (and its name written plainly)."""
    return _SIG_PARAM.sub(b"&sig=" + REDACTED, b"&" + query)[1:]
