"""edge.memo: a memo counts the bytes its keys and values really hold, and is emptied
before it passes either of its bounds (entries, bytes)."""

from __future__ import annotations

import os
import sys
import tracemalloc

from edge.memo import SLOT_BYTES, Memo


def test_a_memo_counts_its_bytes_as_tracemalloc_does() -> None:
    """Keys and values as the request path keeps them: their real size is never undercounted."""
    memo: Memo[bytes, str] = Memo(max_entries=1_000_000, max_bytes=1 << 40)
    keys = [os.urandom(8).hex().encode() * 20 + b"%d" % n for n in range(20_000)]
    values = [key.decode() for key in keys]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for key, value in zip(keys, values, strict=True):
        memo.remember(key, value, sys.getsizeof(key) + sys.getsizeof(value))
    slots = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    held = slots + sum(map(sys.getsizeof, keys)) + sum(map(sys.getsizeof, values))
    assert held <= memo.bytes <= 1.5 * held
    assert slots / len(memo) <= SLOT_BYTES


def test_a_memo_is_emptied_before_it_passes_either_bound() -> None:
    memo: Memo[int, bytes] = Memo(max_entries=10, max_bytes=10_000)
    for n in range(100):
        memo.remember(n, b"", 10)
        assert len(memo) <= 10
    memo.clear()
    for n in range(100):
        memo.remember(n, b"v" * 1000, 1033)
        assert memo.bytes <= 10_000
