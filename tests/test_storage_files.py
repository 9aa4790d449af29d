"""edge.storage.files: a folder as storage, read directly (the serving tests go through HTTP)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from edge.errors import NotFound, RangeNotSatisfiable, StorageError
from edge.storage import CHUNK_BYTES, Conditions, FileStorage
from edge.storage.base import NO_CONDITIONS, read_whole


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for visibility in ("public", "private"):
        (tmp_path / visibility / "alice").mkdir(parents=True)
    return tmp_path


def read(storage: FileStorage, key: str, conditions: Conditions = NO_CONDITIONS) -> bytes:
    async def main() -> bytes:
        reply = await storage.read(key, conditions, head=False)
        if reply.body is not None:
            return await read_whole(reply.body)
        return reply.data or b""

    return asyncio.run(main())


def test_small_files_are_read_whole_and_large_ones_stream(root: Path) -> None:
    small, large = b"s" * 100, os.urandom(3 * CHUNK_BYTES + 5)
    (root / "public" / "alice" / "small.png").write_bytes(small)
    (root / "public" / "alice" / "large.png").write_bytes(large)
    storage = FileStorage(root)
    reply = asyncio.run(storage.read("public/alice/small.png", NO_CONDITIONS, head=False))
    assert reply.body is None and reply.data == small
    assert read(storage, "public/alice/large.png") == large
    assert read(storage, "public/alice/large.png", Conditions(range=(10, 19))) == large[10:20]
    etag = asyncio.run(storage.read("public/alice/large.png", NO_CONDITIONS, head=True)).stat.etag
    unchanged = asyncio.run(
        storage.read("public/alice/large.png", Conditions(if_none_match=etag), head=False)
    )
    assert unchanged.status == 304 and unchanged.body is None


def test_missing_outside_and_odd_files_are_not_found(root: Path) -> None:
    (root / "private" / "alice" / "secret.png").write_bytes(b"secret")
    (root / "public" / "alice" / "to-private.png").symlink_to(
        root / "private" / "alice" / "secret.png"
    )
    (root / "public" / "alice" / "folder.png").mkdir()
    storage = FileStorage(root)
    for key in ("public/alice/none.png", "public/alice/to-private.png", "public/alice/folder.png"):
        with pytest.raises(NotFound):
            read(storage, key)
    (root / "public" / "alice" / "tiny.png").write_bytes(b"1234")
    with pytest.raises(RangeNotSatisfiable) as refused:
        read(storage, "public/alice/tiny.png", Conditions(range=(10, None)))
    assert refused.value.size == 4


def test_a_resumed_read_is_the_same_object_or_an_error(root: Path) -> None:
    data = os.urandom(2 * CHUNK_BYTES)
    target = root / "public" / "alice" / "big.png"
    target.write_bytes(data)
    storage = FileStorage(root)
    stat = asyncio.run(storage.read("public/alice/big.png", NO_CONDITIONS, head=True)).stat

    async def resumed(start: int) -> bytes:
        return await read_whole(
            await storage.resume("public/alice/big.png", stat, start, stat.size - 1)
        )

    assert asyncio.run(resumed(100)) == data[100:]
    staged = target.with_suffix(".new")
    staged.write_bytes(os.urandom(2 * CHUNK_BYTES))
    os.utime(staged, ns=(1, 1))
    staged.rename(target)
    with pytest.raises(StorageError, match="changed during a download"):
        asyncio.run(resumed(100))


def test_a_missing_root_fails_the_check(tmp_path: Path) -> None:
    asyncio.run(FileStorage(tmp_path).check())
    with pytest.raises(StorageError):
        asyncio.run(FileStorage(tmp_path / "gone").check())


def test_a_large_file_read_whole_takes_one_read_after_its_first_chunks(root: Path) -> None:
    """``read_whole`` reads a file's remaining bytes in one call (a transform's source: one
    thread hop, not one per chunk), after chunks already taken, and notices a file that
    shrank since it was opened."""
    large = os.urandom(5 * CHUNK_BYTES + 7)
    path = root / "public" / "alice" / "large.jpg"
    path.write_bytes(large)
    storage = FileStorage(root)

    async def first_chunk_then_rest() -> tuple[bytes, bytes]:
        reply = await storage.read("public/alice/large.jpg", NO_CONDITIONS, head=False)
        assert reply.body is not None
        first = await reply.body.__aiter__().__anext__()
        return first, await read_whole(reply.body)

    first, rest = asyncio.run(first_chunk_then_rest())
    assert first == large[:CHUNK_BYTES] and first + rest == large

    async def shrunk() -> bytes:
        reply = await storage.read("public/alice/large.jpg", NO_CONDITIONS, head=False)
        assert reply.body is not None
        path.write_bytes(large[: 2 * CHUNK_BYTES])
        return await read_whole(reply.body)

    with pytest.raises(StorageError):
        asyncio.run(shrunk())
