"""Every case of the bad-input corpus against a real server, on both storages and through
nginx: the right status and JSON error, no 5xx, no traceback, no private byte.

Each run also writes its tallies to ``tests/artifacts/reliability/`` for
``docs/reliability.md`` (``make reliability``).
"""

from __future__ import annotations

import collections
import json
import logging
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from edge.keys import parse_keyring
from edge.samples import CANARY
from tests.support.artifacts import write_artifact
from tests.support.corpus import PHOTO, SECRET, Answer, Case, cases, populate, send
from tests.support.nginx import run_nginx
from tests.support.raw_http import never_shown
from tests.support.world import KEYS, World


def problems(case: Case, answer: Answer, *, through_proxy: bool = False) -> list[str]:
    """What is wrong with an answer; empty when it is right."""
    found = never_shown(answer.status, answer.raw, canary=CANARY, entitled=case.private_ok)
    if through_proxy:
        # nginx answers Range and If-Modified-Since from its cache in its own way (200, 206,
        # 304): correct HTTP. Every error, edge's or nginx's own, is JSON.
        json_error = answer.headers.get("content-type", "").startswith("application/json")
        if not json_error:
            if answer.status not in (200, 206, 304):
                found.append(f"status {answer.status} through nginx, not a JSON error")
            if case.status in (400, 403, 404, 405) and answer.status in (200, 206, 304):
                found.append(f"nginx answered {answer.status} where edge refuses")
            return found
        if nginx_refuses(case, answer):
            return found
    if answer.status != case.status:
        found.append(f"status {answer.status}, expected {case.status}")
    elif case.code is not None:
        try:
            error = json.loads(answer.body)["error"]
        except (ValueError, KeyError, TypeError):
            return [*found, f"not a JSON error: {answer.body[:80]!r}"]
        if error.get("code") != case.code or error.get("status") != case.status:
            found.append(f"error {error}, expected {case.code}")
        if answer.headers.get("cache-control") != "no-store":
            found.append(f"cache-control {answer.headers.get('cache-control')!r}")
        if not answer.headers.get("content-type", "").startswith("application/json"):
            found.append("error without a JSON content type")
    elif case.status in (200, 206):
        expected = SECRET if case.private_ok else PHOTO
        if case.status == 200 and answer.body != expected:
            found.append(f"wrong body ({len(answer.body)} bytes)")
        if case.status == 206 and answer.body != expected[:10]:
            found.append("wrong range")
    return found


#: nginx's own line limit (edge-proxy.conf's large_client_header_buffers).
NGINX_MAX_LINE = 16 * 1024


def nginx_refuses(case: Case, answer: Answer) -> bool:
    """Whether nginx itself refused the case, in edge's error shape, for a reason of its
    own: a method other than GET and HEAD (edge's parser may refuse it first: 400), or a
    request or header line longer than its buffers (edge refuses a head over
    EDGE_MAX_HEADER_BYTES; below that, edge may answer)."""
    try:
        code = json.loads(answer.body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return False
    if (answer.status, code) == (405, "METHOD_NOT_ALLOWED"):
        return case.method not in ("GET", "HEAD")
    if (answer.status, code) == (431, "HEADERS_TOO_LARGE"):
        lines = [f"{case.method} {case.target} HTTP/1.1", *(f"{k}: {v}" for k, v in case.headers)]
        return max(len(line.encode()) for line in lines) > NGINX_MAX_LINE
    return False


def run_corpus(base: str, world: World, name: str, *, through_proxy: bool = False) -> None:
    parts = urlsplit(base)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    tally: collections.Counter[str] = collections.Counter()
    statuses: collections.Counter[str] = collections.Counter()
    failures = []
    scanned = 0
    all_cases = cases(world.key)
    for case in all_cases:
        answer = send(host, port, case)
        scanned += len(answer.raw)
        tally[case.kind.split(":")[0]] += 1
        statuses[str(answer.status)] += 1
        wrong = problems(case, answer, through_proxy=through_proxy)
        if wrong:
            failures.append(f"{case.label()}: {'; '.join(wrong)}")
    write_artifact(
        name,
        {
            "cases": len(all_cases),
            "classes": dict(sorted(tally.items())),
            "statuses": dict(sorted(statuses.items())),
            "bytes_scanned_for_canary": scanned,
            "failures": len(failures),
            "server_errors": sum(n for s, n in statuses.items() if s >= "500"),
        },
    )
    assert not failures, f"{len(failures)} of {len(all_cases)} cases:\n" + "\n".join(failures)


def test_the_corpus_covers_every_class_with_many_cases() -> None:
    key = parse_keyring(KEYS).signing_key
    assert key is not None
    kinds = collections.Counter(case.kind.split(":")[0] for case in cases(key))
    assert set(kinds) == {"path", "query", "exp", "sig", "kid", "header", "method"}
    assert min(kinds.values()) >= 10 and sum(kinds.values()) >= 450


@pytest.mark.slow
def test_bad_input_corpus(world: World, caplog: pytest.LogCaptureFixture) -> None:
    populate(world)
    with caplog.at_level(logging.ERROR):
        run_corpus(world.serve(), world, f"corpus-{world.kind}")
    # No case reached the handler's "unexpected error" path (a bug logged with its traceback).
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    keys = {key for _, key in world.storage_reads()}
    assert keys, "the corpus reaches storage for the valid cases"
    for key in keys:  # nothing hostile ever reached storage as a name
        segments = key.split("/")
        assert segments[0] in ("public", "private"), key
        assert not {".", "..", ""} & set(segments) and "\\" not in key, key
        assert all(ord(char) >= 0x20 and char != "\x7f" for char in key), key


@pytest.mark.slow
@pytest.mark.parametrize("world", ["file"], indirect=True)  # nginx passes requests through
def test_bad_input_corpus_through_nginx(world: World, tmp_path: Path) -> None:
    populate(world)
    edge = world.serve().removeprefix("http://")
    with run_nginx("edge-proxy.conf", tmp_path / "nginx", upstreams=[edge]) as base:
        run_corpus(base, world, "corpus-nginx", through_proxy=True)
