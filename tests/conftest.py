"""The suite's fixtures, and only them: the environment cleared of AWS_* and EDGE_*, the
session's S3 servers, and the serving world on each storage. What they are built from
lives in tests/support/."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import (
    BUCKET,
    MotoServer,
    S3rver,
    s3_client,
    start_moto,
    start_s3rver,
)
from tests.support.signers import Signers
from tests.support.typescript import StrictErrors, strict_errors
from tests.support.world import (
    AWS,
    S3RVER_AWS,
    WORLDS,
    World,
    folder_world,
    s3_world,
    s3rver_world,
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's AWS credentials or EDGE_* settings (as aiobotocore's tests)."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "EDGE_")):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def moto_server() -> MotoServer:
    server = start_moto()
    s3_client(server.endpoint_url).create_bucket(Bucket=BUCKET)
    return server


@pytest.fixture(scope="session")
def s3rver_server() -> Iterator[S3rver]:
    """A second, independent S3 server (Node.js), one per session: tests keep apart by prefix."""
    with start_s3rver() as server:
        yield server


@pytest.fixture(scope="session")
def signers(tmp_path_factory: pytest.TempPathFactory) -> Signers:
    """Every language's signer; Go's and Rust's harnesses built on first use, once a session."""
    return Signers(tmp_path_factory.mktemp("signers"))


@pytest.fixture(scope="session")
def strict_typescript() -> StrictErrors:
    """tests/browser/strict/ under ``tsc --strict``, one program for the session."""
    return strict_errors()


@pytest.fixture(params=WORLDS)
def world(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[World]:
    """The same world on a folder and on moto's S3 (and, for the serving behaviour suite, on
    s3rver, and on both S3 servers with the hot cache off: tests/support/world.py): each
    test that takes it runs on each."""
    kind: str = request.param
    if kind == "file":
        world = folder_world(tmp_path)
    else:
        s3rver = kind.startswith("s3rver")
        for name, value in (S3RVER_AWS if s3rver else AWS).items():
            monkeypatch.setenv(name, value)
        cache = not kind.endswith("-cache-off")
        if s3rver:
            world = s3rver_world(request.getfixturevalue("s3rver_server"), cache=cache)
        else:
            world = s3_world(request.getfixturevalue("moto_server"), cache=cache)
    with world.stack:
        yield world
