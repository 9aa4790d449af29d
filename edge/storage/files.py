"""A local folder as storage: the zero-setup default.

The folder can never be escaped: paths are validated before they get here (no
``..``, no backslash, no NUL), and the resolved file must lie inside the
visibility's own folder, so no symlink leads out of the root or from
``public/`` into ``private/``. Blocking calls run in the default executor.
"""

from __future__ import annotations

import asyncio
import os
import stat as stat_module
from pathlib import Path

from edge.errors import NotFound, StorageError
from edge.storage.base import CHUNK_BYTES, Conditions, Reply, Stat, Storage, decide


class FileStorage(Storage):
    kind = "file"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        # Each visibility's own folder, resolved once; a file must resolve inside it.
        self._folders = {v: os.path.realpath(self.root / v) + os.sep for v in ("public", "private")}

    async def check(self) -> None:
        if not await asyncio.to_thread(self.root.is_dir):
            raise StorageError(f"{self.root} is not a directory")

    async def read(self, key: str, conditions: Conditions, *, head: bool) -> Reply:
        return await asyncio.to_thread(self._read, key, conditions, head)

    def _read(self, key: str, conditions: Conditions, head: bool) -> Reply:
        visibility, _, rest = key.partition("/")
        folder = self._folders[visibility]
        real = os.path.realpath(folder + rest)
        if not real.startswith(folder):
            raise NotFound(f"{key} resolves outside {folder}")
        try:
            fd = os.open(real, os.O_RDONLY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise NotFound(f"no file for {key}") from None
        except OSError as error:
            raise StorageError(f"cannot open {key}: {error.strerror}") from None
        keep_open = False
        try:
            info = os.fstat(fd)  # of the open file: its bytes and its validators agree
            if not stat_module.S_ISREG(info.st_mode):
                raise NotFound(f"{key} is not a regular file")
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
                data = os.pread(fd, length, start)
                if len(data) != length:
                    raise StorageError(f"{key} shrank while being read")
                return Reply(status, stat, start, end, None, data)
            keep_open = True
            return Reply(status, stat, start, end, FileChunks(fd, start, end, key))
        finally:
            if not keep_open:
                os.close(fd)


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
        data = await asyncio.to_thread(os.pread, self._fd, size, self._position)
        if not data:
            raise StorageError(f"{self._key} shrank while being read")
        self._position += len(data)
        return data

    async def aclose(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
