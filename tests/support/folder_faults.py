"""Each row of the folder's failure table produced by a real fault in front of a real
FileStorage: missing files, symlinks out and in loops, a FIFO, a file that shrinks, a read
the kernel fails with EIO, a file another process may not read."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from edge.storage import failures
from edge.storage.base import NO_CONDITIONS, Reply, Stat, Storage
from edge.storage.failures import Fault, Row
from edge.storage.files import FileChunks
from tests.support.canned import UNPRIVILEGED
from tests.support.fault_rig import Outcome, folder, name, produces, read_folder


@produces(failures.FILE_MISSING)
def missing_file(request: pytest.FixtureRequest, row: Row) -> Outcome:
    return read_folder(folder(request))


@produces(failures.FILE_OUTSIDE)
def symlink_out(request: pytest.FixtureRequest, row: Row) -> Outcome:
    root = folder(request)
    (root / "private" / "secret.png").write_bytes(b"secret")
    (root / "public" / "x.png").symlink_to(root / "private" / "secret.png")
    return read_folder(root)


@produces(failures.FILE_NOT_REGULAR)
def fifo(request: pytest.FixtureRequest, row: Row) -> Outcome:
    """A FIFO: opened without blocking (a blocking open would wait for a writer forever)."""
    root = folder(request)
    os.mkfifo(root / "public" / "x.png")
    return read_folder(root)


@produces(failures.FILE_OPEN_FAILED)
def symlink_loop(request: pytest.FixtureRequest, row: Row) -> Outcome:
    root = folder(request)
    (root / "public" / "x.png").symlink_to(root / "public" / "y.png")
    (root / "public" / "y.png").symlink_to(root / "public" / "x.png")
    outcome = read_folder(root)
    assert outcome.error is not None and "Too many levels of symbolic links" in outcome.error.reason
    return outcome


@produces(failures.FILE_SHRANK)
def shrinks(request: pytest.FixtureRequest, row: Row) -> Outcome:
    root = folder(request)
    path = root / "public" / "x.png"
    path.write_bytes(b"s" * (1024 * 1024))

    async def read_then_truncate(storage: Storage) -> Reply:
        reply = await storage.read("public/x.png", NO_CONDITIONS, head=False)
        os.truncate(path, 1000)
        return reply

    return read_folder(root, then=read_then_truncate)


@produces(failures.FILE_READ_FAILED)
def input_output_error(request: pytest.FixtureRequest, row: Row) -> Outcome:
    """A read the kernel fails with EIO: this process's own memory at address 0, which is
    never mapped, read through /proc/self/mem (as a failing disk would fail a pread)."""

    async def read_eio(storage: Storage) -> Reply:
        fd = os.open("/proc/self/mem", os.O_RDONLY | os.O_CLOEXEC)
        stat = Stat(size=100, etag='"m"', last_modified=0, content_type=None)
        return Reply(200, stat, 0, 99, FileChunks(fd, 0, 99, "public/x.png"))

    return read_folder(folder(request), then=read_eio)


@produces(failures.FILE_ROOT)
def folder_gone(request: pytest.FixtureRequest, row: Row) -> Outcome:
    root = folder(request)

    async def check_after_removal(storage: Storage) -> Reply:
        (root / "public").rmdir()
        (root / "private").rmdir()
        root.rmdir()
        await storage.check()
        raise AssertionError("no folder, and the check passed")

    return read_folder(root, then=check_after_removal)


#: Drops the capabilities that let root read any file, so a file's mode bits apply.


@produces(failures.FILE_DENIED)
def permission_denied(request: pytest.FixtureRequest, row: Row) -> Outcome:
    """A file edge may not read, read by a process without the capabilities that let root
    read anything (the test's own process may be root): it says which row it met."""
    root = folder(request)
    (root / "public" / "x.png").write_bytes(b"x")
    (root / "public" / "x.png").chmod(0)
    code = (
        "import asyncio\n"
        "from edge.storage import Conditions, FileStorage, failures\n"
        "names = {id(row): name for name, row in vars(failures).items()}\n"
        f"storage = FileStorage({str(root)!r})\n"
        "try:\n"
        "    asyncio.run(storage.read('public/x.png', Conditions(), head=False))\n"
        "except failures.Fault as error:\n"
        "    print(names[id(error.row)], error.reason, sep='|')\n"
    )
    done = subprocess.run(
        [*UNPRIVILEGED, sys.executable, "-c", code], capture_output=True, text=True, timeout=30
    )
    met, _, reason = done.stdout.strip().partition("|")
    assert met == name(row), done.stdout + done.stderr
    error = Fault(row)
    error.reason = reason  # as the other process wrote it
    return Outcome(error=error)
