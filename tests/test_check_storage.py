"""`edge check-storage`, run as a command: what it says of a bucket (moto, a store that
refuses) and of a folder, its exit status, one line per problem; and the warning a folder
without public/ or private/ gets at start-up."""

from __future__ import annotations

import itertools
from pathlib import Path

import boto3
import httpx
import pytest

from edge.app import Edge
from edge.settings import Settings
from tests.support.canned import s3_error
from tests.support.processes import check_storage
from tests.support.servers import BUCKET, MotoServer, run_uvicorn
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
        assert httpx.get(base + "/readyz", timeout=10).status_code == 200
    said = [r.getMessage() for r in caplog.records if r.name == "edge"]
    for folder in ("public", "private"):
        line = (
            f"EDGE_STORAGE: {tmp_path} has no {folder}/ folder inside: every {folder} image is 404"
        )
        assert line in said, said


def _keys() -> dict[str, str]:
    return {
        "aws_access_key_id": AWS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": AWS["AWS_SECRET_ACCESS_KEY"],
    }
