"""Every refusal names its cause in its access-log line (`reason`): the list in
docs/troubleshooting.md is exactly the set of slugs the code can write, and a real edge
writes each of them for a request that earns it, never with the signature."""

from __future__ import annotations

import ast
import gzip
import json
import re
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from edge.errors import NO_SLUG, EdgeError
from edge.keys import parse_keyring
from edge.signing import sign_url
from tests.support.client import raw_request
from tests.support.processes import clean_env, edge_process, populated, wait_ready
from tests.support.servers import BUCKET, MotoServer, free_port
from tests.support.transform_images import SLOW, encoded, flat, quadrants, slow_source
from tests.support.world import AWS, KEYS

ROOT = Path(__file__).parent.parent
TROUBLESHOOTING = ROOT / "docs" / "troubleshooting.md"


def documented_reasons() -> list[str]:
    """The reasons troubleshooting.md lists, in its order."""
    text = TROUBLESHOOTING.read_text(encoding="utf-8")
    table = text[text.index("<!-- reasons:start -->") : text.index("<!-- reasons:end -->")]
    return re.findall(r"^\| `([a-z0-9_]+)` \|", table, re.MULTILINE)


def code_reasons() -> set[str]:
    """Every slug the package can write, read from its source: each string in a ``slug=``
    argument (where a refusal is raised) and each class-level ``slug = "..."`` (an error
    type's own)."""
    found: set[str] = set()
    for module in sorted((ROOT / "edge").rglob("*.py")):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            values: list[ast.expr] = []
            if isinstance(node, ast.keyword) and node.arg == "slug":
                values.append(node.value)
            elif isinstance(node, ast.ClassDef):
                for statement in node.body:
                    if isinstance(statement, ast.Assign):
                        targets, value = statement.targets, statement.value
                    elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
                        targets, value = [statement.target], statement.value
                    else:
                        continue
                    if any(
                        isinstance(target, ast.Name) and target.id == "slug" for target in targets
                    ):
                        values.append(value)
            for value in values:
                found.update(
                    constant.value
                    for constant in ast.walk(value)
                    if isinstance(constant, ast.Constant) and isinstance(constant.value, str)
                )
    return found - {NO_SLUG}


def test_the_documented_reasons_are_the_ones_the_code_writes() -> None:
    documented = documented_reasons()
    assert len(documented) == len(set(documented)), "a reason is listed twice"
    assert set(documented) == code_reasons()
    assert EdgeError.slug == NO_SLUG == "-"  # what every other line says


def test_slugs_are_short_plain_names() -> None:
    for slug in code_reasons():
        assert re.fullmatch(r"[a-z][a-z0-9_]{2,30}", slug), slug


# --- a real edge writes each one ---------------------------------------------------------

SIG = "A" * 43  # well-formed, made by no key
LATER = str(int(time.time()) + 3600)


#: A request sent and what it must get: method, target, headers, status, reason.
Case = tuple[str, str, list[tuple[str, str]], int, str]


def requests(signed: dict[str, str]) -> list[Case]:
    """(method, target, headers, status, reason) of a refusal per reason, for the edge with
    keys and small transform limits; ``signed`` holds the URLs minted for it."""
    auth = "/auth"
    return [
        ("GET", "/i/alice/%ff.png", [], 400, "path_not_utf8"),
        ("GET", "/i/.alice/photo.png", [], 400, "user_malformed"),
        ("GET", "/i/alice/", [], 400, "no_file"),
        ("GET", "/i/alice//photo.png", [], 400, "empty_segment"),
        ("GET", "/i/alice/a%01.png", [], 400, "control_byte"),
        ("GET", "/i/alice/../photo.png", [], 400, "dot_segment"),
        ("GET", "/i/alice/" + "a" * 1100, [], 400, "path_too_long"),
        ("GET", "/i/alice/" + "a" * 300, [], 400, "segment_too_long"),
        ("GET", "/i/alice/photo.png?w=0800", [], 400, "transform_malformed"),
        ("GET", "/i/alice/photo.png?w=8&w=8", [], 400, "transform_repeated"),
        ("GET", "/i/alice/photo.png?p:bad!", [], 400, "preset_name_malformed"),
        ("GET", "/i/alice/photo.png?p:thumb=x", [], 400, "preset_with_value"),
        ("GET", "/i/alice/photo.png?p:a&p:b", [], 400, "preset_repeated"),
        ("GET", "/i/alice/photo.png?p:nothere", [], 400, "preset_unknown"),
        ("GET", "/i/alice/photo.png?p:broken", [], 400, "preset_malformed"),
        ("GET", "/i/alice/photo.bmp?w=10", [], 400, "output_format_unknown"),
        ("POST", "/i/alice/photo.png", [], 405, "method_not_allowed"),
        ("GET", f"/i/alice/secret.png?sig={SIG}&exp={LATER}&sig={SIG}", [], 403, "param_repeated"),
        ("GET", f"/i/alice/secret.png?exp={LATER}", [], 403, "sig_missing"),
        ("GET", f"/i/alice/secret.png?sig={SIG}", [], 403, "exp_missing"),
        ("GET", f"/i/alice/secret.png?sig={SIG}&exp=0{LATER}", [], 403, "exp_malformed"),
        ("GET", f"/i/alice/secret.png?sig={SIG}&exp={LATER}&kid=a%20b", [], 403, "kid_malformed"),
        ("GET", f"/i/alice/secret.png?sig={SIG}&exp={LATER}&kid=gone", [], 403, "kid_unknown"),
        ("GET", f"/i/alice/secret.png?sig=AAAA&exp={LATER}", [], 403, "sig_malformed"),
        ("GET", f"/i/alice/secret.png?sig={SIG}&exp={LATER}", [], 403, "no_key_matched"),
        ("GET", signed["too far"], [], 403, "exp_beyond_max_ttl"),
        ("GET", signed["expired"], [], 403, "expired"),
        ("GET", signed["expired"], [], 403, "expired"),  # again: from the verifier's memo
        ("GET", f"/i/alice/secret.png?sig={SIG}&exp={LATER}", [], 403, "no_key_matched"),  # too
        ("GET", "/i/alice/text.jpg?w=10", [], 422, "source_unreadable"),
        ("GET", "/i/alice/cut.gif?w=10", [], 422, "source_corrupt"),
        ("GET", "/i/alice/big.png?w=10", [], 422, "source_too_large"),
        ("GET", "/i/alice/wide.png?w=10", [], 422, "source_too_many_pixels"),
        ("GET", "/i/alice/photo.png?w=10000&h=10000", [], 422, "output_too_many_pixels"),
        ("GET", "/i/alice/photo.png?w=16", [], 422, "output_too_large"),
        ("GET", auth, [], 403, "uri_header_missing"),
        (
            "GET",
            auth,
            [("X-Original-URI", "/i/alice/photo.png")] * 2,
            403,
            "uri_header_repeated",
        ),
        ("GET", auth, [("X-Original-URI", "/x/photo.png")], 403, "path_prefix"),
        ("GET", auth, [("X-Original-URI", "/i/alice/a%20")], 403, "name_ends_with_space"),
        ("GET", auth, [("X-Original-URI", "/i/alice/photo.png?w=10")], 403, "transform_elsewhere"),
        (
            "GET",
            auth,
            [("X-Original-URI", "/i/alice/photo.png"), ("X-Original-Method", "POST")],
            403,
            "method_not_allowed",
        ),
        # Not refusals: the reason stays "-", even right after refusals of the same path.
        ("GET", "/i/alice/photo.png", [], 200, NO_SLUG),
        ("GET", signed["good"], [], 200, NO_SLUG),
        ("GET", "/i/alice/none.png", [], 404, NO_SLUG),
        ("GET", auth, [("X-Original-URI", signed["good"])], 200, NO_SLUG),
    ]


#: The edge with no keys and transforms for signed URLs only: what the first cannot show.
UNKEYED: list[Case] = [
    ("GET", "/i/alice/photo.png?w=10", [], 403, "transform_unsigned"),
    ("GET", f"/i/alice/photo.png?sig={SIG}&exp={LATER}", [], 403, "no_keys"),
]


#: The edge with a short transform timeout: a transform it stops.
TIMED: list[Case] = [
    ("GET", f"/i/alice/slow.png?{SLOW}", [], 503, "transform_too_slow"),
    ("GET", "/i/alice/photo.png?w=10", [], 200, NO_SLUG),
]


def store(root: Path) -> None:
    """What the refusals need beside the populated folder's photo.png and secret.png."""
    public = root / "public" / "alice"
    (public / "text.jpg").write_bytes(b"hello, world\n")
    (public / "cut.gif").write_bytes(encoded(quadrants(64, 64), "gif")[:100])  # header whole
    (public / "big.png").write_bytes(bytes(range(256)) * 20)  # 5120 bytes, over 4 KiB
    (public / "wide.png").write_bytes(encoded(flat((9, 9, 9), 200, 200)))  # 40,000 pixels
    (public / "slow.png").write_bytes(slow_source())
    (root / "presets" / "alice").mkdir(parents=True)
    (root / "presets" / "alice" / "broken.json").write_bytes(b"not json")


def logged(log: Path, count: int) -> list[dict[str, Any]]:
    """The first ``count`` access-log lines of /i/ and /auth requests, once written."""
    deadline = time.monotonic() + 10
    while True:
        lines = [
            json.loads(line)
            for line in log.read_text().splitlines()
            if line.startswith("{") and ('"path":"/i/' in line or '"path":"/auth' in line)
        ]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


#: The edge on moto's bucket: what a folder cannot show (it stores no Content-Encoding).
ON_S3: list[Case] = [("GET", "/i/alice/packed.png?w=10", [], 422, "source_encoded")]


def s3_settings(moto: MotoServer) -> dict[str, str]:
    """The settings of the run on moto, its source stored gzip-encoded."""
    prefix = "refusals/"
    boto3.client("s3", endpoint_url=moto.endpoint_url, region_name="us-east-1").put_object(
        Bucket=BUCKET,
        Key=f"{prefix}public/alice/packed.png",
        Body=gzip.compress(encoded(flat((9, 9, 9), 20, 20))),
        ContentType="image/png",
        ContentEncoding="gzip",
    )
    return {
        "EDGE_STORAGE": f"s3://{BUCKET}/{prefix}",
        "EDGE_S3_ENDPOINT_URL": moto.endpoint_url,
        "EDGE_S3_REGION": "us-east-1",
        **AWS,
    }


@pytest.mark.slow
def test_every_reason_reaches_the_access_log_of_a_real_edge(
    tmp_path: Path, moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in AWS.items():
        monkeypatch.setenv(name, value)
    key = parse_keyring(KEYS).signing_key
    assert key is not None
    now = int(time.time())
    signed = {
        "good": sign_url("/i/alice/secret.png", key=key, exp=now + 600),
        "expired": sign_url("/i/alice/secret.png", key=key, exp=now - 60),
        "too far": sign_url("/i/alice/secret.png", key=key, exp=now + 604800 + 3600),
    }
    keyed = requests(signed)
    runs = {
        "keyed": (
            keyed,
            {
                "EDGE_SIGNING_KEYS": KEYS,
                "EDGE_TRANSFORM_MAX_SOURCE_BYTES": "4KiB",
                "EDGE_TRANSFORM_MAX_SOURCE_PIXELS": "10000",
                "EDGE_TRANSFORM_MAX_OUTPUT_BYTES": "16",
            },
        ),
        "unkeyed": (UNKEYED, {"EDGE_TRANSFORMS": "signed"}),
        "timed": (TIMED, {"EDGE_TRANSFORM_TIMEOUT": "0.2"}),
        "s3": (ON_S3, s3_settings(moto_server)),
    }
    seen: set[str] = set()
    for name, (cases, settings) in runs.items():
        folder = tmp_path / name
        folder.mkdir()
        root = populated(folder)
        store(root)
        port = free_port()
        env = clean_env(**{"EDGE_STORAGE": str(root), **settings})
        with edge_process(["serve", "--port", str(port)], env=env, cwd=folder) as process:
            base = f"http://127.0.0.1:{port}"
            wait_ready(base, process)
            for method, target, headers, status, _ in cases:
                answer = raw_request(base, target, method=method, headers=headers)[0]
                assert answer == status, (method, target, answer)
            lines = logged(folder / "edge.log", len(cases))
        text = (folder / "edge.log").read_text()
        assert [(line["status"], line.get("reason", NO_SLUG)) for line in lines] == [
            (status, reason) for _, _, _, status, reason in cases
        ], name
        for line in lines:
            assert ("reason" in line) == (line["status"] not in (200, 404)), line
        seen.update(line.get("reason", NO_SLUG) for line in lines)
        for url in signed.values():
            assert url.split("sig=")[1].split("&")[0] not in text, "a signature is never logged"
        assert KEYS.split(":")[2] not in text, "nor a key"
    assert seen - {NO_SLUG} == set(documented_reasons()), "every documented reason, for real"
