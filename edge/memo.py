"""Bounded memos for the hot path: a dict that is emptied when full.

Every memo of the request path (validated paths, verified and refused URLs,
log lines, Cache-Control headers) keeps its entries this way: emptying costs
nothing per request, unlike an LRU's bookkeeping on every hit, and a flood of
distinct keys costs only the refills, never memory. "Full" is counted both in
entries and in real bytes: each insertion says what it holds (its key and
value, measured with ``sys.getsizeof``), so long keys, which anyone can send,
fill a memo sooner instead of holding more.
"""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")

#: Entries a memo holds before it is emptied, unless its owner says otherwise.
MEMO_SIZE = 4096
#: Bytes a memo holds before it is emptied: keys, values and their dict slots.
MEMO_BYTES = 2 * 1024 * 1024
#: A dict slot and hash-table share per entry (measured: tests/test_memo.py).
SLOT_BYTES = 100


class Memo(dict[K, V]):
    """A dict with :meth:`remember`; read it as any dict (``get`` stays C-fast)."""

    __slots__ = ("bytes", "max_bytes", "max_entries")

    def __init__(self, *, max_entries: int = MEMO_SIZE, max_bytes: int = MEMO_BYTES) -> None:
        super().__init__()
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0

    def remember(self, key: K, value: V, size: int) -> V:
        """Keep ``value`` under ``key``, ``size`` being the bytes both hold, emptying the
        memo first if it would pass either bound."""
        size += SLOT_BYTES
        if len(self) >= self.max_entries or self.bytes + size > self.max_bytes:
            self.clear()
            self.bytes = 0
        self[key] = value
        self.bytes += size
        return value
