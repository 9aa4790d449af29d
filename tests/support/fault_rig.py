"""A rig for producing each row of the failure table through a real fault: a registry
of scenarios (:func:`produces`), and reads through the real clients, S3Storage and
FileStorage, run to their end. The scenarios: tests/support/s3_faults.py and
tests/support/folder_faults.py; the test that runs them: tests/test_storage_failures.py."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from edge.errors import EdgeError
from edge.storage import failures
from edge.storage.base import NO_CONDITIONS, Conditions, Reply, Storage, read_whole
from edge.storage.config import S3Settings
from edge.storage.failures import FILE_ROWS, S3_ROWS, Row
from edge.storage.files import FileStorage
from edge.storage.s3 import S3Storage
from tests.support.canned import HEAD_OK
from tests.support.servers import BUCKET
from tests.support.stores import Parts, tiny_store

ROWS: tuple[Row, ...] = tuple(dict.fromkeys((*S3_ROWS, *FILE_ROWS)))
NAMES = {row: name for name, row in vars(failures).items() if isinstance(row, Row)}
#: Attempts per S3 call in these tests: a retried row is seen this many times.
ATTEMPTS = 3
#: A timeout the silent stores outlast (tests.support.canned.SILENCE), short so tests stay quick.
SHORT = 0.3
KEY = "public/alice/x.png"


def name(row: Row) -> str:
    """The row's name in edge.storage.failures, for test ids and messages."""
    return NAMES[row]


@dataclass
class Outcome:
    """What a read came to: an error or a reply, and how many requests the store saw
    (None where no request reaches a store: connection failures)."""

    error: EdgeError | None = None
    reply: Reply | None = None
    requests: int | None = None


Scenario = Callable[[pytest.FixtureRequest, Row], Outcome]
SCENARIOS: dict[Row, Scenario] = {}


def produces(*rows: Row) -> Callable[[Scenario], Scenario]:
    def register(scenario: Scenario) -> Scenario:
        for row in rows:
            SCENARIOS[row] = scenario
        return scenario

    return register


async def outcome_of(read: Awaitable[Reply]) -> Outcome:
    """Run a read to its end (a body read whole, so a failing body shows)."""
    try:
        reply = await read
        if reply.body is not None:
            reply = replace(reply, body=None, data=await read_whole(reply.body))
        return Outcome(reply=reply)
    except EdgeError as error:
        return Outcome(error=error)


def read_s3(
    endpoint: str,
    *,
    key: str = KEY,
    conditions: Conditions = NO_CONDITIONS,
    head: bool = False,
    then: Callable[[S3Storage], Awaitable[Reply]] | None = None,
    bucket: str = BUCKET,
    **options: Any,
) -> Outcome:
    """One read through a real S3Storage (``then``: a read of the scenario's own instead);
    ``options`` are S3Settings fields."""
    defaults: dict[str, Any] = {
        "region": "us-east-1",
        "max_connections": 64,
        "max_attempts": ATTEMPTS,
        "connect_timeout": 2.0,
        "read_timeout": 2.0,
    }
    settings = S3Settings(endpoint_url=endpoint, **{**defaults, **options})

    async def main() -> Outcome:
        storage = S3Storage(bucket=bucket, settings=settings)
        try:
            await storage.open()  # may fail: the credentials are fetched here
        except EdgeError as error:
            return Outcome(error=error)
        try:
            if then is not None:
                return await outcome_of(then(storage))
            return await outcome_of(storage.read(key, conditions, head=head))
        finally:
            await storage.aclose()

    return asyncio.run(asyncio.wait_for(main(), 60))


def read_canned(
    reply: bytes | Parts | None, *, conditions: Conditions = NO_CONDITIONS, **options: Any
) -> Outcome:
    """A read from a loopback store that answers every GET with ``reply``."""

    async def answer(connection: int, request: int, head: bytes) -> bytes | Parts | None:
        return HEAD_OK if head.startswith(b"HEAD") else reply

    with tiny_store(answer) as (port, seen):
        outcome = read_s3(f"http://127.0.0.1:{port}", conditions=conditions, **options)
    outcome.requests = len([line for line in seen if line.startswith(b"GET")])
    return outcome


def read_folder(
    root: Path,
    key: str = "public/x.png",
    *,
    then: Callable[[Storage], Awaitable[Reply]] | None = None,
) -> Outcome:
    storage = FileStorage(root)

    async def main() -> Outcome:
        if then is not None:
            return await outcome_of(then(storage))
        return await outcome_of(storage.read(key, NO_CONDITIONS, head=False))

    return asyncio.run(asyncio.wait_for(main(), 10))


def folder(request: pytest.FixtureRequest) -> Path:
    root: Path = request.getfixturevalue("tmp_path") / "root"
    (root / "public").mkdir(parents=True)
    (root / "private").mkdir()
    return root
