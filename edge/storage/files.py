"""A local folder as storage: the zero-setup default.

The folder can never be escaped: paths are validated before they get here (no
``..``, no backslash, no NUL), and the resolved file must lie inside the
visibility's own folder, so no symlink leads out of the root or from
``public/`` into ``private/``; a listing of a folder (:meth:`FileStorage.siblings`)
keeps to the same rule. Blocking calls run in the default executor.
Each failure is raised from its row of :mod:`edge.storage.failures`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat as stat_module
from pathlib import Path

from edge.storage.base import (
    CHUNK_BYTES,
    Conditions,
    Reply,
    Stat,
    Storage,
    decide,
    sibling_names,
)
from edge.storage.failures import (
    FILE_MISSING,
    FILE_NOT_REGULAR,
    FILE_OUTSIDE,
    FILE_READ_FAILED,
    FILE_ROOT,
    FILE_SHRANK,
    file_open_row,
)

log = logging.getLogger("edge")

#: Opened without blocking: a FIFO would otherwise hold a thread until a writer came
#: (it is then refused as not a regular file); reads of regular files ignore the flag.
OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK


class FileStorage(Storage):
    kind = "file"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        # Each visibility's own folder (and the presets'), resolved once; a file must resolve
        # inside it.
        self._folders = {
            v: os.path.realpath(self.root / v) + os.sep for v in ("public", "private", "presets")
        }

    async def open(self) -> None:
        """Start, but say so when ``public/`` or ``private/`` is missing: the edge would
        answer 404 for each of their images (``edge check-storage`` says it too)."""
        from edge.storage.report import missing_folders

        for folder in missing_folders(str(self.root)):
            log.warning(
                "EDGE_STORAGE: %s has no %s folder inside: every %s image is 404",
                *(self.root, folder, folder[:-1]),
            )

    async def check(self) -> None:
        if not await asyncio.to_thread(self.root.is_dir):
            raise FILE_ROOT.exception(root=self.root)

    async def read(self, key: str, conditions: Conditions, *, head: bool) -> Reply:
        return await asyncio.to_thread(self._read, key, conditions, head)

    def _read(self, key: str, conditions: Conditions, head: bool) -> Reply:
        visibility, _, rest = key.partition("/")
        folder = self._folders[visibility]
        real = os.path.realpath(folder + rest)
        if not real.startswith(folder):
            raise FILE_OUTSIDE.exception(key=key, folder=folder)
        try:
            fd = os.open(real, OPEN_FLAGS)
        except OSError as error:
            raise file_open_row(error).exception(key=key, detail=error.strerror) from None
        keep_open = False
        try:
            info = os.fstat(fd)  # of the open file: its bytes and its validators agree
            if not stat_module.S_ISREG(info.st_mode):
                raise FILE_NOT_REGULAR.exception(key=key)
            stat = Stat(
                size=info.st_size,
                etag=f'"{info.st_mtime_ns:x}-{info.st_size:x}"',
                last_modified=int(info.st_mtime),
                content_type=None,
            )
            status, start, end = decide(stat, conditions)
            if head or status == 304:
                return Reply(status, stat, start, end, None)
            length = end - start + 1
            if length <= CHUNK_BYTES:
                data = _pread(fd, length, start, key)
                if len(data) != length:
                    raise FILE_SHRANK.exception(key=key)
                return Reply(status, stat, start, end, None, data)
            keep_open = True
            return Reply(status, stat, start, end, FileChunks(fd, start, end, key))
        finally:
            if not keep_open:
                os.close(fd)

    async def siblings(self, key: str) -> list[str]:
        return await asyncio.to_thread(self._siblings, key)

    def _siblings(self, key: str) -> list[str]:
        """Each candidate name looked up in ``key``'s folder: at most seven lookups, however
        many files the folder holds (a scan of a folder of 100,000 would take 50 ms a
        request). A folder or a name that resolves (through a symlink) outside the
        visibility's own folder is not counted, as a read would find nothing there; nor is
        anything but a regular file."""
        directory, _, names = sibling_names(key)
        if not names:
            return []
        visibility, _, rest = directory.partition("/")
        folder = self._folders[visibility]
        real = os.path.realpath(folder + rest)
        if not (real + os.sep).startswith(folder):
            return []
        found = []
        for name in names:
            target = os.path.realpath(os.path.join(real, name))
            if not target.startswith(folder):
                continue
            try:
                info = os.stat(target)
            except OSError as error:
                row = file_open_row(error)
                if row is FILE_MISSING:  # no such file, or no such folder
                    continue
                raise row.exception(key=directory + name, detail=error.strerror) from None
            if stat_module.S_ISREG(info.st_mode):
                found.append(directory + name)
        return found


class FileChunks:
    """Bytes ``start..end`` of an open file, a chunk at a time; owns the descriptor."""

    def __init__(self, fd: int, start: int, end: int, key: str) -> None:
        self._fd, self._position, self._end, self._key = fd, start, end, key

    def __aiter__(self) -> FileChunks:
        return self

    async def __anext__(self) -> bytes:
        if self._position > self._end or self._fd < 0:
            raise StopAsyncIteration
        size = min(CHUNK_BYTES, self._end - self._position + 1)
        data = await asyncio.to_thread(_pread, self._fd, size, self._position, self._key)
        if not data:
            raise FILE_SHRANK.exception(key=self._key)
        self._position += len(data)
        return data

    async def read_rest(self) -> bytes:
        """Every byte not yet read, in one thread call: for a reader that wants them all
        at once (a transform's source, read whole anyway), one hop instead of one per 64
        KiB (a 6 MiB photo: 90 hops, about 3 ms of a 25 ms transform on one core)."""
        length = self._end - self._position + 1
        if length <= 0 or self._fd < 0:
            return b""
        data = await asyncio.to_thread(_pread, self._fd, length, self._position, self._key)
        if len(data) != length:
            raise FILE_SHRANK.exception(key=self._key)
        self._position += length
        return data

    async def aclose(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _pread(fd: int, size: int, position: int, key: str) -> bytes:
    try:
        return os.pread(fd, size, position)
    except OSError as error:
        raise FILE_READ_FAILED.exception(key=key, detail=error.strerror) from None
