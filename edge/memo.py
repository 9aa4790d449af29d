"""Bounded memos for the hot path: a dict that is emptied when full.

Every memo of the request path (validated paths, verified and refused URLs,
log fragments, Cache-Control headers) keeps its entries this way: emptying
costs nothing per request, unlike an LRU's bookkeeping on every hit, and a
flood of distinct keys costs only the refills, never memory.
"""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")

#: Entries a memo holds before it is emptied, unless its owner says otherwise.
MEMO_SIZE = 4096


def remember(memo: dict[K, V], key: K, value: V, size: int) -> V:
    """Keep ``value`` under ``key``, emptying ``memo`` first if it holds ``size`` entries."""
    if len(memo) >= size:
        memo.clear()
    memo[key] = value
    return value
