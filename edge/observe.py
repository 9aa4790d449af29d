"""Turns each finished request into a metrics update and an access-log line.

The image pipeline and the other endpoints fill a :class:`edge.record.Record`;
:meth:`Observer.finish` turns it into a metrics row update (:mod:`edge.metrics`)
and an access-log line (:mod:`edge.accesslog`). The clock is the observer's own,
injected, so tests pin durations without patching a module.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from orjson import dumps
from starlette.types import Scope

from edge.accesslog import NO_AGENT, NO_REFERER, AccessLog, Facts
from edge.memo import Memo
from edge.metrics import Metrics
from edge.record import UNREAD, Record

#: Requests whose path and query are longer are not remembered.
MEMO_KEY_BYTES = 1024
#: The request headers a line writes (edge.accesslog.AccessLog.referer_part, agent_part).
_BROWSER = frozenset((b"referer", b"user-agent"))


class Observer:
    """Turns each finished request into a metrics update and an access-log line.

    With the log on, one lookup by the request's facts (:data:`Facts`) finds
    both its metrics row and its line's text, kept per kind of request: images
    are asked for again and again, by many clients, and escaping, redacting and
    formatting a line cost more than the rest of a cached hit's logging. The
    client is not one of the facts (keyed by it, the memo missed on realistic
    traffic and cost more than it saved): a line is then a tuple, one dict
    lookup, ``orjson.dumps`` of the duration and of the client, and one append
    (measured: bench/README.md, the memos' table).
    """

    def __init__(
        self,
        *,
        metrics: Metrics | None,
        log: AccessLog | None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.stats = None if metrics is None else metrics.stats
        self.log = log
        self.clock = clock
        # Facts -> (metrics row or None, line text); event loop only.
        self.kinds: Memo[Facts, tuple[list[float] | None, bytes]] = Memo()

    def start(self) -> Record:
        if self.stats is not None:
            self.stats.in_flight += 1
        return Record(self.clock())

    def finish(self, scope: Scope, record: Record) -> None:
        seconds = self.clock() - record.started
        stats = self.stats
        log = self.log
        if log is None:
            if stats is not None:
                stats.record(record.outcome, record.status, record.sent, seconds, record.cache)
            return
        if log.proxied:
            client, scheme = log.proxies.client_and_scheme(scope)
        else:
            peer = scope["client"]
            client, scheme = (peer[0] if peer else "-"), scope.get("scheme", "http")
        facts = (
            scheme,
            scope["method"],
            scope.get("raw_path") or scope["path"].encode(),
            scope["query_string"],
            record.status,
            record.sent,
            record.outcome,
            record.cache,
        )
        kind = self.kinds.get(facts)
        if kind is None:
            kind = self._kind(facts)
        row, text = kind
        if stats is not None and row is not None:
            stats.add(row, seconds, record.sent)
        referer = record.referer
        if referer is UNREAD:  # not an image request's (edge.image.request.conditions_noting)
            referer = agent = None
            for name, value in scope["headers"]:
                if name in _BROWSER:  # one test per header: a browser sends a dozen
                    if name == b"referer":
                        referer = value
                    else:
                        agent = value
        else:
            agent = record.agent
        # The referer's and user agent's parts, looked up here and joined with the rest: a
        # method for the pair, and its concatenation, cost more than the two tests
        # (bench/README.md).
        first = (
            NO_REFERER
            if referer is None
            else (log.referers.get(referer) or log.referer_part(referer))
        )
        second = NO_AGENT if agent is None else log.agents.get(agent) or log.agent_part(agent)
        client_part = log.clients.get(client)
        if client_part is None:
            client_part = log.client_part(client)
        # Milliseconds to the microsecond, in orjson's shortest form (0.123, 1.5). Joined
        # here, not by a method of the log: a call costs a tenth of the line (bench/README.md).
        log.put(
            b"".join(
                (
                    dumps(seconds * 1e6 // 1 / 1000),
                    client_part,
                    record.request_id,
                    first,
                    second,
                    text,
                )
            )
        )

    def _kind(self, facts: Facts) -> tuple[list[float] | None, bytes]:
        """A new kind of request's metrics row and line text, kept unless its path and query
        are long (free to pad or forge: they would hog the memo)."""
        assert self.log is not None
        _, _, path, query, status, _, outcome, cache = facts
        row = None if self.stats is None else self.stats.row(outcome, status, cache)
        kind = (row, self.log.text(facts))
        if len(path) + len(query) <= MEMO_KEY_BYTES:
            # The facts tuple and its path and query, the line text, the pair: the rest of
            # the facts are small or shared (the metrics row is the stats' own).
            size = 128 + sys.getsizeof(path) + sys.getsizeof(query) + sys.getsizeof(kind[1])
            self.kinds.remember(facts, kind, size + 56 + 200)
        return kind
