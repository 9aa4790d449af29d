"""`edge check-storage`, run as a command: what it says of a bucket (moto, a store that
refuses) and of a folder, its exit status, one line per problem; the warning a folder
without public/ or private/ gets at start-up; and the bucket's start-up check, made once by
`edge serve` for all its workers, and by uvicorn run on the factory directly."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from pathlib import Path

import boto3
import httpx
import pytest

from edge.app import Edge
from edge.settings import Settings
from edge.storage.probe import CHECKED_VARIABLE
from tests.support.canned import s3_error
from tests.support.client import TLS
from tests.support.processes import check_storage, clean_env, edge_process, stop
from tests.support.servers import BUCKET, MotoServer, free_port, run_uvicorn
from tests.support.signed_store import Seen, SignedStore, signed_store
from tests.support.stores import tiny_store
from tests.support.world import AWS, KEYS

_prefixes = itertools.count()


def moto_env(moto: MotoServer, storage: str) -> dict[str, str]:
    return {**AWS, "EDGE_STORAGE": storage, "EDGE_S3_ENDPOINT_URL": moto.endpoint_url}


def test_a_bucket_that_answers(moto_server: MotoServer, tmp_path: Path) -> None:
    prefix = f"check{next(_prefixes)}/"
    client = boto3.client(
        "s3", endpoint_url=moto_server.endpoint_url, region_name="us-east-1", **_keys()
    )
    client.put_object(Bucket=BUCKET, Key=f"{prefix}private/bob/b.png", Body=b"x")
    code, facts, problems = check_storage(
        {**moto_env(moto_server, f"s3://{BUCKET}/{prefix}"), "EDGE_S3_REGION": "us-east-1"},
        tmp_path,
    )
    assert (code, problems) == (0, []), problems
    assert facts["endpoint"] == f"{moto_server.endpoint_url} (EDGE_S3_ENDPOINT_URL)"
    assert facts["addressing"].startswith(f"path-style, {moto_server.endpoint_url}/{BUCKET}/")
    assert facts["region"] == "us-east-1 (EDGE_S3_REGION)"
    assert facts["credentials"] == "env", "botocore's name for the source, never a key"
    assert facts["bucket"].startswith("answers")
    assert (facts["public/"], facts["private/"]) == ("empty", "holds private/bob/b.png")
    assert AWS["AWS_SECRET_ACCESS_KEY"] not in str(facts)


def test_a_missing_bucket_is_one_line(moto_server: MotoServer, tmp_path: Path) -> None:
    code, facts, problems = check_storage(moto_env(moto_server, "s3://no-such-bucket"), tmp_path)
    assert code == 1 and len(problems) == 1, problems
    assert problems[0].startswith(
        "edge check-storage: bucket no-such-bucket: S3 answered 404 NoSuchBucket"
    )
    assert facts["bucket"] == "does not answer" and "public/" not in facts


def test_an_empty_prefix_is_a_problem(moto_server: MotoServer, tmp_path: Path) -> None:
    code, facts, problems = check_storage(
        moto_env(moto_server, f"s3://{BUCKET}/nothing-here/"), tmp_path
    )
    assert code == 1 and facts["public/"] == facts["private/"] == "empty"
    assert problems == [
        f"edge check-storage: s3://{BUCKET}/nothing-here/: public/ and private/ hold nothing:"
        " every image is 404 (is the prefix in EDGE_STORAGE right?)"
    ]


def test_a_store_that_refuses_says_its_code(tmp_path: Path) -> None:
    async def deny(connection: int, number: int, head: bytes) -> bytes:
        return s3_error("403 Forbidden", "AccessDenied")

    with tiny_store(deny) as (port, _):
        env = {
            **AWS,
            "EDGE_STORAGE": "s3://locked",
            "EDGE_S3_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        }
        code, facts, problems = check_storage(env, tmp_path)
    assert code == 1 and len(problems) == 1 and facts["bucket"] == "does not answer"
    assert "bucket locked: S3 answered 403 AccessDenied" in problems[0]


def test_no_credentials_is_one_line(tmp_path: Path) -> None:
    env = {
        "EDGE_STORAGE": "s3://photos",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    code, _, problems = check_storage(env, tmp_path)
    assert code == 1 and len(problems) == 1 and "needs AWS credentials" in problems[0]


def test_a_folder(tmp_path: Path) -> None:
    root = tmp_path / "images"
    (root / "public" / "alice").mkdir(parents=True)
    (root / "public" / "alice" / "a.png").write_bytes(b"x")
    code, facts, problems = check_storage({"EDGE_STORAGE": str(root)}, tmp_path)
    assert code == 1 and facts["public/"] == "holds public/alice/a.png"
    assert facts["private/"] == "missing"
    assert problems == [
        f"edge check-storage: {root} has no private/ folder inside: every private image is 404"
    ]
    (root / "private").mkdir()
    code, facts, problems = check_storage({"EDGE_STORAGE": str(root)}, tmp_path)
    assert (code, problems, facts["private/"]) == (0, [], "empty")


def test_a_folder_without_its_visibility_folders_starts_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings.from_env(
        {"EDGE_STORAGE": str(tmp_path), "EDGE_SIGNING_KEYS": KEYS, "EDGE_ACCESS_LOG": "off"}
    )
    with run_uvicorn(Edge(settings)) as base:
        assert httpx.get(base + "/readyz", timeout=10, verify=TLS).status_code == 200
    said = [r.getMessage() for r in caplog.records if r.name == "edge"]
    for folder in ("public", "private"):
        line = (
            f"EDGE_STORAGE: {tmp_path} has no {folder}/ folder inside: every {folder} image is 404"
        )
        assert line in said, said


SECRET = "secret-of-the-test"


def started(log: Path, process: subprocess.Popen[bytes], workers: int) -> None:
    """Wait until ``workers`` servers have said their start-up (the storage opened) is done."""
    deadline = time.monotonic() + 60
    while log.read_text().count("Application startup complete.") < workers:
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


def signed_env(store: SignedStore, tmp_path: Path, **extra: str) -> dict[str, str]:
    return clean_env(
        AWS_ACCESS_KEY_ID="AKIDTEST",
        AWS_SECRET_ACCESS_KEY=SECRET,
        AWS_CONFIG_FILE=str(tmp_path / "no-config"),
        AWS_ENDPOINT_URL=store.endpoint_url,
        EDGE_STORAGE=f"s3://{BUCKET}",
        EDGE_METRICS="off",
        EDGE_ACCESS_LOG="off",
        **extra,
    )


def listings(store: SignedStore) -> list[Seen]:
    return [seen for seen in store.seen if seen.path.rstrip("/") == f"/{BUCKET}"]


@pytest.mark.parametrize(
    ("region", "checks"), [("us-east-1", 1), ("eu-west-1", 2)], ids=["region", "other-region"]
)
def test_edge_serve_checks_the_bucket_once_for_all_its_workers(
    tmp_path: Path, region: str, checks: int
) -> None:
    """One listing (two where S3 names another region: followed once), not one per worker;
    each worker signs for the region the check found from its first read on."""
    with signed_store(bucket=BUCKET, region=region, secret=SECRET, virtual=False) as store:
        port = free_port()
        args = ["serve", "--port", str(port), "--workers", "2"]
        with edge_process(args, env=signed_env(store, tmp_path), cwd=tmp_path) as process:
            started(tmp_path / "edge.log", process, workers=2)
            assert len(store.seen) == checks and listings(store) == store.seen, store.seen
            for n in range(8):  # a connection each: both workers read, as the kernel deals
                httpx.get(f"http://127.0.0.1:{port}/i/alice/{n}.png", timeout=10, verify=TLS)
    reads = store.seen[checks:]
    assert reads and all(seen.region == region and seen.valid for seen in reads), reads
    assert listings(store) == store.seen[:checks], "no worker lists the bucket"


def test_uvicorn_on_the_factory_checks_the_bucket_itself(tmp_path: Path) -> None:
    """Run directly, edge checks at start-up, even with what `edge serve` tells its workers
    in its environment (a copy of another process's, not from its parent)."""
    with signed_store(bucket=BUCKET, region="us-east-1", secret=SECRET, virtual=False) as store:
        env = signed_env(store, tmp_path, **{CHECKED_VARIABLE: "1 us-east-1"})
        argv = ["-m", "uvicorn", "--factory", "edge.app:create_app", "--port", str(free_port())]
        with (tmp_path / "edge.log").open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, *argv], env=env, cwd=tmp_path, stdout=log, stderr=log
            )
        try:
            started(tmp_path / "edge.log", process, workers=1)
        finally:
            stop(process)
    assert len(listings(store)) == 1, store.seen


def _keys() -> dict[str, str]:
    return {
        "aws_access_key_id": AWS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": AWS["AWS_SECRET_ACCESS_KEY"],
    }
