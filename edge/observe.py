"""What happened to each request: Prometheus metrics and one JSON access-log line.

The image handler fills an :class:`Exchange` as it goes; :meth:`Observer.finish`
turns it into metrics and a log line. Log lines are queued and written by a
thread, so a slow stdout (a full pipe, a stalled collector) never blocks the
event loop; the `sig` value is redacted before a line is built.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
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


class Metrics:
    """The edge's Prometheus metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "edge_requests",
            "Requests answered, by outcome and status",
            ["outcome", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "edge_request_duration_seconds",
            "Time to answer, last byte included",
            ["outcome"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.bytes_sent = Counter(
            "edge_response_body_bytes", "Body bytes sent to clients", registry=self.registry
        )
        self.in_flight = Gauge(
            "edge_requests_in_flight", "Requests being answered now", registry=self.registry
        )
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
        self.cache_hits = Counter(
            "edge_cache_hits", "Requests answered from the hot-object cache", registry=self.registry
        )
        self.cache_misses = Counter(
            "edge_cache_misses",
            "Requests the hot-object cache could not answer",
            registry=self.registry,
        )
        self.cache_bytes = Gauge(
            "edge_cache_bytes", "Memory held by the hot-object cache", registry=self.registry
        )
        self.cache_entries = Gauge(
            "edge_cache_entries", "Objects in the hot-object cache", registry=self.registry
        )
        self._children: dict[tuple[str, int], tuple[Any, Any]] = {}

    def watch_cache(self, cache: HotCache) -> None:
        """Cache size is read at scrape time: nothing to update per request."""
        self.cache_bytes.set_function(lambda: cache.bytes)
        self.cache_entries.set_function(lambda: len(cache))

    def observe(self, outcome: str, status: int, sent: int, seconds: float, cache: str) -> None:
        children = self._children.get((outcome, status))
        if children is None:  # resolve labels once per pair: .labels() takes a lock
            children = (self.requests.labels(outcome, str(status)), self.latency.labels(outcome))
            self._children[outcome, status] = children
        children[0].inc()
        children[1].observe(seconds)
        if sent:
            self.bytes_sent.inc(sent)
        if cache == "hit" or cache == "shared":
            self.cache_hits.inc()
        elif cache == "miss":
            self.cache_misses.inc()


class AccessLog:
    """JSON lines to a file descriptor, written by a daemon thread off the event loop."""

    def __init__(self, fd: int = 1) -> None:
        self.fd = fd
        self._lines: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write, name="edge-access-log", daemon=True)
        self._thread.start()

    def put(self, line: bytes) -> None:
        self._lines.put(line)

    def close(self, timeout: float = 2.0) -> None:
        """Write what is queued, then stop the thread."""
        self._lines.put(None)
        self._thread.join(timeout)

    def _write(self) -> None:
        while True:
            line = self._lines.get()
            batch = []
            while line is not None:
                batch.append(line)
                try:
                    line = self._lines.get_nowait()
                except queue.Empty:
                    break
            if batch:
                data = b"".join(batch)
                while data:
                    try:
                        data = data[os.write(self.fd, data) :]
                    except InterruptedError:
                        continue
                    except OSError:
                        break  # stdout is gone: drop the log rather than the service
            if line is None:
                return


class Observer:
    def __init__(
        self, *, metrics: Metrics | None, log: AccessLog | None, proxies: ProxyPolicy
    ) -> None:
        self.metrics = metrics
        self.log = log
        self.proxies = proxies

    def start(self) -> Exchange:
        if self.metrics is not None:
            self.metrics.in_flight.inc()
        return Exchange()

    def finish(self, scope: Scope, exchange: Exchange) -> None:
        seconds = time.perf_counter() - exchange.started
        if self.metrics is not None:
            self.metrics.in_flight.dec()
            self.metrics.observe(
                exchange.outcome, exchange.status, exchange.sent, seconds, exchange.cache
            )
        if self.log is not None:
            self.log.put(self.line(scope, exchange, seconds))

    def line(self, scope: Scope, exchange: Exchange, seconds: float) -> bytes:
        client, scheme = self.proxies.client_and_scheme(scope)
        target = (scope.get("raw_path") or scope["path"].encode())[:MAX_LOGGED_TARGET]
        if scope["query_string"]:
            target += b"?" + redact(scope["query_string"][:MAX_LOGGED_TARGET])
        return orjson.dumps(
            {
                "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z",
                "client": client,
                "scheme": scheme,
                "method": scope["method"],
                "path": target.decode("latin-1"),
                "status": exchange.status,
                "bytes": exchange.sent,
                "duration_ms": round(seconds * 1000, 3),
                "outcome": exchange.outcome,
                "cache": exchange.cache,
            },
            option=orjson.OPT_APPEND_NEWLINE,
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
