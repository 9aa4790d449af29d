"""Edge as an ASGI app inside the bench's own process, for the profiler (``bench.hotpath``).

The one module of bench/ that reaches into edge beyond signing URLs: it builds the app
from its public constructors (``Edge``, ``Settings``, ``AccessLog``), so a rename of
those is a fix here alone, and it finds the hot path's memos by walking the app's
objects for :class:`edge.memo.Memo` instances, wherever they live (the image handler,
the verifier, the observer, or where a restructuring moves them), so that they can be
counted or switched off, in the bench only: edge's code is never changed.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

from edge.accesslog import AccessLog
from edge.app import Edge
from edge.memo import Memo
from edge.settings import Settings

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]

#: Table names of the memos, by the attribute that holds each (Parser.paths,
#: ParsedTransforms.parsed, VariantKeyMemo.requests and keys,
#: Verifier._memo, _refused and _unsigned, Observer.kinds, ProxyPolicy.seen, AccessLog.clients,
#: referers and agents). A memo not named here is listed as ``Owner.attribute``.
NAMES = {
    "paths": "validated paths",
    "parsed": "parsed transforms",
    "requests": "variant keys",
    "keys": "variant transform keys",
    "_memo": "verified signatures",
    "_refused": "refused signatures",
    "_unsigned": "unsigned queries",
    "kinds": "access-log kinds",
    "seen": "forwarded clients",
    "clients": "access-log clients",
    "referers": "access-log referers",
    "agents": "access-log user agents",
}


def build(env: dict[str, str]) -> tuple[Edge, Callable[[], Awaitable[None]]]:
    """Edge configured by ``env``, and its start-up coroutine (the storage's open). An access
    log writes to /dev/null and its thread sleeps until the end (under valgrind its 20 ms
    wake-ups would land on every request), its queue unbounded for the run's lines."""
    edge = Edge(Settings.from_env(env))
    if edge.observer.log is not None:
        edge.observer.log.close()
        sink = os.open(os.devnull, os.O_WRONLY)
        proxies = edge.observer.log.proxies
        edge.observer.log = AccessLog(sink, proxies=proxies, interval=3600, max_bytes=1 << 30)
    return edge, edge.storage.open


def close(app: object) -> None:
    """Write and stop the access log, if the app has one (its one write, counted)."""
    log = getattr(getattr(app, "observer", None), "log", None)
    if log is not None:
        log.close()


class Counted(Memo[Any, Any]):
    """A memo that counts its lookups, hits and emptyings; otherwise the same memo."""

    __slots__ = ("clears", "hits", "lookups")

    def __init__(self, *, max_entries: int, max_bytes: int) -> None:
        super().__init__(max_entries=max_entries, max_bytes=max_bytes)
        self.hits = self.lookups = self.clears = 0

    def get(self, key: Any, default: Any = None) -> Any:
        self.lookups += 1
        value = super().get(key, default)
        if value is not default:
            self.hits += 1
        return value

    def clear(self) -> None:
        self.clears += 1
        super().clear()


class Off(Memo[Any, Any]):
    """A memo switched off: every lookup misses and nothing is kept. What its owner computes
    to store (the entry's size) is still computed, and the call made."""

    __slots__ = ()

    def remember(self, key: Any, value: Any, size: int) -> Any:
        return value


def memos(app: object, *, depth: int = 4) -> dict[str, tuple[object, str]]:
    """Every memo reachable from ``app`` through edge's own objects: name -> (owner,
    attribute). A memo shared by two owners (the verifier is) is listed once."""
    found: dict[str, tuple[object, str]] = {}
    seen: set[int] = set()
    level: list[object] = [app]
    for _ in range(depth):
        below: list[object] = []
        for owner in level:
            for attribute, value in _attributes(owner):
                if id(value) in seen:
                    continue
                seen.add(id(value))
                if isinstance(value, Memo):
                    name = NAMES.get(attribute, f"{type(owner).__name__}.{attribute}")
                    found[name] = (owner, attribute)
                elif type(value).__module__.startswith("edge."):
                    below.append(value)
        level = below
    return found


def _attributes(owner: object) -> list[tuple[str, object]]:
    names = list(getattr(owner, "__dict__", {}))
    for kind in type(owner).__mro__:
        names += [n for n in getattr(kind, "__slots__", ()) if isinstance(n, str)]
    return [(n, getattr(owner, n)) for n in names if hasattr(owner, n)]


def replace(app: object, make: Callable[[Memo[Any, Any]], Memo[Any, Any]], *names: str) -> None:
    """Put ``make(memo)`` where each named memo was (every memo if no name is given)."""
    found = memos(app)
    unknown = set(names) - set(found)
    if unknown:
        raise SystemExit(f"no such memo: {', '.join(sorted(unknown))}; found: {', '.join(found)}")
    for name in names or tuple(found):
        owner, attribute = found[name]
        old = getattr(owner, attribute)
        setattr(owner, attribute, make(old))


def counted(memo: Memo[Any, Any]) -> Memo[Any, Any]:
    return Counted(max_entries=memo.max_entries, max_bytes=memo.max_bytes)


def off(memo: Memo[Any, Any]) -> Memo[Any, Any]:
    return Off(max_entries=memo.max_entries, max_bytes=memo.max_bytes)


def emptied(memo: Memo[Any, Any]) -> Memo[Any, Any]:
    memo.clear()
    memo.bytes = 0
    return memo
