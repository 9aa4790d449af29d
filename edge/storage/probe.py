"""Asking whether the bucket is there: once at start-up, and when a 404 cannot say.

At start-up (``EDGE_S3_CHECK_BUCKET=on``) one listing (ListObjects) of one key, bounded by the
S3 timeouts and attempts, must succeed: a missing bucket, a refusal (the store's error
code said), the wrong region (followed once first, see :mod:`.region`), or no answer at
all is one line naming the bucket, and the edge does not start. A listing rather than
a HEAD of the bucket, because a HEAD's refusal has no body, so no S3 error code to
name; and because it needs ``s3:ListBucket``, which transforms need too (a source is
looked for with one listing).

At runtime, a ``404`` without an error document (every HEAD's) cannot say whether the
object or the bucket is missing: :class:`BucketWatch` asks with a HEAD of the bucket,
at most one at a time and once per :data:`CONFIRM_SECONDS`, so a stream of HEADs of
missing keys costs the store one request more per period, not one per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Iterator

from edge.errors import ConfigError, StorageError, StorageTimeout
from edge.storage.failures import NO_SUCH_BUCKET, Fault

#: How long the bucket's answer to a bare 404's check is kept.
CONFIRM_SECONDS = 5.0
#: What ``edge serve`` tells its workers once its own start-up check passed: its process ID
#: and the region the bucket answered from, so the bucket is listed once, not once per
#: worker. Not a setting: any other process (``uvicorn edge.app:create_app`` run directly,
#: a copy of the environment) checks for itself.
CHECKED_VARIABLE = "EDGE_BUCKET_CHECKED"


class BucketWatch:
    """Whether the bucket answered lately, asked with ``check`` (a HEAD of the bucket)."""

    def __init__(
        self, check: Callable[[], Awaitable[None]], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._check, self._clock = check, clock
        self._until = -float("inf")
        self._gone: Fault | None = None  # the bucket's 404, while it is kept
        self._lock = asyncio.Lock()

    async def confirm(self) -> None:
        """Return if the object's 404 stands (the bucket answered, or could not say);
        raise NO_SUCH_BUCKET's error if the bucket itself is missing."""
        async with self._lock:  # one check at a time; the others take its answer
            if self._clock() >= self._until:
                self._gone = None
                try:
                    await self._check()
                except Fault as error:
                    if error.row is NO_SUCH_BUCKET:
                        self._gone = error
                except (StorageError, StorageTimeout):
                    pass  # no answer about the bucket: the object's 404 stands
                self._until = self._clock() + CONFIRM_SECONDS
            if self._gone is not None:
                raise self._gone.again()


async def check_at_start(listing: Callable[[], Awaitable[object]], bucket: str) -> None:
    """Run the start-up listing; any failure is one line naming the bucket and what the
    store said, and how to start without the check."""
    try:
        await listing()
    except (StorageError, StorageTimeout) as error:
        raise ConfigError(
            f"EDGE_STORAGE: bucket {bucket} did not pass the start-up check: {error.reason}"
            " (EDGE_S3_CHECK_BUCKET=off starts without it)"
        ) from None


@contextlib.contextmanager
def checked_for_workers(region: str | None) -> Iterator[None]:
    """While ``edge serve`` runs its workers, tell them the bucket passed its check
    (``region``: the one it answered from; None: no check was made, nothing to tell)."""
    os.environ.pop(CHECKED_VARIABLE, None)
    if region is not None:
        os.environ[CHECKED_VARIABLE] = f"{os.getpid()} {region}"
    try:
        yield
    finally:
        os.environ.pop(CHECKED_VARIABLE, None)


def checked_region() -> str | None:
    """The region the bucket answered ``edge serve``'s check from, when this process is
    ``edge serve`` (one worker runs in it) or one of its workers; None: check it here."""
    pid, _, region = os.environ.get(CHECKED_VARIABLE, "").partition(" ")
    return region if region and pid in (str(os.getpid()), str(os.getppid())) else None
