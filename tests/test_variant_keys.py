"""edge.image.variant_keys: a request's variant keys, remembered per (path, raw query), name
both folders and choose neither; the memo counts the bytes it really holds and stays within
its bounds under a flood of distinct requests."""

from __future__ import annotations

import sys
import tracemalloc

from edge.image.variant_keys import VariantKeyMemo
from edge.transform_params import TRANSFORM_MEMO_KEY_BYTES, Transform, parse_transform

PATH = "/i/alice/photo.jpg"
W400 = "aspect=original&blur=0&crop=center&dpr=1&fit=cover&grayscale=false&q=80&rotate=0"
W400 += "&sharpen=0&w=400"


def test_keys_name_both_folders_and_are_remembered_per_path_and_query() -> None:
    memo = VariantKeyMemo()
    keys = memo.of(PATH, b"w=400", Transform(w=400))
    assert keys is not None
    assert (keys.output, keys.asked) == ("jpeg", Transform(w=400))
    assert keys.public == f"public/alice/photo.jpg\n{W400}"
    assert keys.private == f"private/alice/photo.jpg\n{W400}"
    assert memo.of(PATH, b"w=400", Transform(w=400)) is keys  # the same strings again
    # One effective transform, other queries: other entries, equal keys (one cache entry).
    same = memo.of(PATH, b"q=80&w=400", Transform(w=400, q=80))
    signed = memo.of(PATH, b"w=400&exp=1&sig=x", Transform(w=400))
    assert same is not None and signed is not None and same is not keys
    assert (same.public, signed.public, signed.private) == (keys.public, keys.public, keys.private)
    queries = {b"w=400", b"q=80&w=400", b"w=400&exp=1&sig=x"}
    assert set(memo.requests) == {(PATH, query) for query in queries}
    # Another path, or another extension's format, at the same size.
    png = memo.of("/i/bob/photo.PNG", b"w=400", Transform(w=400))
    assert png is not None and png.output == "png"
    assert png.public == f"public/bob/photo.PNG\n{W400}"


def test_a_conversion_and_an_unknown_format() -> None:
    memo = VariantKeyMemo()
    webp = memo.of("/i/alice/photo.webp", b"", None)
    assert webp is not None and webp.output == "webp" and webp.asked == Transform()
    assert webp.public.startswith("public/alice/photo.webp\naspect=original&")
    assert memo.of("/i/alice/photo.tiff", b"w=400", Transform(w=400)) is None
    assert memo.of("/i/alice/photo", b"w=400", Transform(w=400)) is None
    assert set(memo.requests) == {("/i/alice/photo.webp", b"")}


def test_long_queries_and_paths_are_worked_out_every_time_never_kept() -> None:
    memo = VariantKeyMemo()
    query = b"w=400&x=" + b"a" * TRANSFORM_MEMO_KEY_BYTES
    path = "/i/alice/" + "d/" * 600 + "photo.jpg"
    assert memo.of(PATH, query, Transform(w=400)) is not None
    assert memo.of(path, b"w=400", Transform(w=400)) is not None
    assert len(memo.requests) == 0


def test_the_memo_counts_its_bytes_as_tracemalloc_does() -> None:
    """Fresh paths, queries and transforms, as a flood brings them: never undercounted."""
    memo = VariantKeyMemo()
    count = 1_000  # within both memos' bounds: nothing emptied
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for n in range(count):
        query = b"w=%d&x=%s" % (n + 1, b"a" * 100)
        memo.of(f"/i/alice/{n:06d}-{'p' * 100}.jpg", query, parse_transform(query))
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(memo.requests) == len(memo.keys) == count
    counted = memo.requests.bytes + memo.keys.bytes
    assert held <= counted <= 1.5 * held, (held, counted)


def test_a_flood_of_distinct_requests_stays_within_both_bounds() -> None:
    memo = VariantKeyMemo()
    requests, keys = memo.requests, memo.keys
    emptied = 0
    for n in range(30_000):
        query = b"w=%d&x=%s" % (n % 5000 + 1, b"a" * (n % 500))
        path = f"/i/alice/{n:06d}{'p' * (n % 900)}.jpg"
        found = memo.of(path, query, parse_transform(query))
        assert found is not None and found.public.startswith(f"public/alice/{n:06d}")
        emptied += len(requests) == 1
        assert len(requests) <= requests.max_entries and requests.bytes <= requests.max_bytes
        assert len(keys) <= keys.max_entries and keys.bytes <= keys.max_bytes
    assert emptied >= 2  # the bound was reached and the memo emptied, more than once
    big = sys.getsizeof("p" * 900) * 3  # a long path's entry: path and two keys
    assert requests.max_bytes // big < requests.max_entries  # bytes bound first, for these
