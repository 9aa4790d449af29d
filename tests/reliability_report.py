"""Regenerate ``docs/reliability.md`` from runs: ``python -m tests.reliability_report``
(``make reliability``). It runs the reliability tests (the bad-input corpus, hypothesis
over the server, the fuzz target, storage and client faults, overload), then writes what
they tried and what came out, from their JUnit results and the figures they record."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from tests.support.artifacts import RELIABILITY

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "docs" / "reliability.md"
TESTS = [
    "tests/test_corpus.py",
    "tests/test_reliability.py",
    "tests/test_storage_faults.py",
    "tests/test_serving_edges.py",
    "tests/test_server.py",
    "tests/test_memory_bounds.py",
    "tests/test_logwriter.py",
    "tests/test_image_stream.py",
    "tests/test_storage_kept_alive.py",
    "tests/test_transform_fuzz.py",
]


def run_tests() -> Path:
    for old in RELIABILITY.glob("*.json"):
        old.unlink()
    RELIABILITY.mkdir(parents=True, exist_ok=True)
    junit = RELIABILITY / "junit.xml"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={junit}",
            *TESTS,
        ],
        cwd=ROOT,
        env={"EDGE_FUZZ_SECONDS": "20", **os.environ},  # the suite's 10 s, doubled for the report
        check=False,
    )
    return junit


def load(name: str) -> dict[str, Any] | None:
    path = RELIABILITY / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def render(junit: Path) -> str:
    suite = ET.parse(junit).getroot()  # noqa: S314 (our own pytest run wrote it)
    cases = suite.iter("testcase")
    rows, failed = [], 0
    for case in cases:
        outcome = "passed"
        if case.find("failure") is not None or case.find("error") is not None:
            outcome, failed = "**FAILED**", failed + 1
        elif case.find("skipped") is not None:
            outcome = "skipped"
        module = case.get("classname", "").rsplit(".", 1)[-1]
        rows.append(
            f"| `{module}` | `{case.get('name')}` | {outcome} | {float(case.get('time', 0)):.1f} |"
        )
    out = [
        "# Reliability report",
        "",
        f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.machine()}, "
        f"Python {platform.python_version()}, by `make reliability` "
        "(`python -m tests.reliability_report`). Every figure below comes from that run; "
        "the same tests run in CI with `make test`.",
        "",
        f"**{len(rows)} tests, {failed} failed.**",
        "",
        "## Bad input",
        "",
        "Each case is sent as written over a raw socket (no client normalises it) to a real "
        "uvicorn serving edge; the private test object carries a canary string and every "
        "response is scanned for it. Through nginx, nginx refuses some hostile input itself, "
        "in edge's JSON error shape (an unknown method 405, a line over 16 KiB 431), and cuts "
        "ranges from its cache; edge's answers pass unchanged.",
        "",
        "| run | cases | by class | statuses | bytes scanned | 5xx | wrong answers |",
        "| --- | ---: | --- | --- | ---: | ---: | ---: |",
    ]
    for name, label in (("corpus-file", "folder storage"), ("corpus-s3", "S3 (moto server)"),
                        ("corpus-nginx", "through nginx")):  # fmt: skip
        data = load(name)
        if data is None:
            out.append(f"| {label} | not run | | | | | |")
            continue
        classes = ", ".join(f"{k} {v}" for k, v in data["classes"].items())
        statuses = ", ".join(f"{k}: {v}" for k, v in data["statuses"].items())
        out.append(
            f"| {label} | {data['cases']} | {classes} | {statuses} | "
            f"{data['bytes_scanned_for_canary']:,} | {data['server_errors']} | {data['failures']} |"
        )
    out += ["", "## Generated input", ""]
    for kind in ("file", "s3"):
        data = load(f"hypothesis-{kind}")
        if data:
            statuses = ", ".join(f"{k}: {v}" for k, v in data["statuses"].items())
            out.append(
                f"- hypothesis, {kind} storage: {data['examples']} URLs built from hostile "
                f"pieces, answers {statuses}; none outside the defined set, no canary byte."
            )
    fuzz = load("fuzz")
    if fuzz:
        out.append(
            f"- atheris (libFuzzer) over the path rules and the verifier: {fuzz['runs']:,} "
            f"inputs in {fuzz['seconds']} s, {fuzz['crashes']} crashes "
            "(any exception but a 400/403 EdgeError counts as one)."
        )
    decoders = {fmt: load(f"fuzz-{fmt}") for fmt in ("jpeg", "png", "gif", "webp", "avif")}
    if all(decoders.values()):
        counts = ", ".join(f"{fmt} {data['examples']}" for fmt, data in decoders.items() if data)
        out.append(
            f"- hypothesis over the decoders: damaged JPEG, PNG, GIF, WebP and AVIF files "
            f"({counts}) through the transform engine in a child process: every one an "
            "image of the size asked for or a 422, no crash, no timeout, no worker left busy."
        )
    faults = [row for row in rows if "test_storage_faults" in row or "storage" in row.split("|")[2]]
    out += ["", "## Storage faults", "",
            "Injected by a fault proxy in front of the S3 server (500, SlowDown, bodies cut or "
            "reset after the headers, silence) or by replacing objects mid-download; each case "
            "runs on the storages it applies to.", "",
            f"{sum('passed' in row for row in faults)} of {len(faults)} fault tests passed:", "",
            "| module | test | outcome | seconds |", "| --- | --- | --- | ---: |", *faults]  # fmt: skip
    out += [
        "",
        "## Client faults: 1,000 downloads aborted mid-body (a real `edge serve` process)",
        "",
    ]
    out += ["| storage | time | descriptors before / after | RSS KiB before / after | storage connections after (pool 4) |",
            "| --- | ---: | --- | --- | ---: |"]  # fmt: skip
    for kind in ("file", "s3"):
        data = load(f"aborts-{kind}")
        if data:
            out.append(
                f"| {kind} | {data['seconds']} s | {data['fds_before']} / {data['fds_after']} | "
                f"{data['rss_kib_before']:,} / {data['rss_kib_after']:,} | "
                f"{data['storage_connections_after']} |"
            )
    out += ["", "## Overload", ""]
    out += ["| storage | clients x requests | read slots | served | 503 OVERLOADED | cached hits refused | p50 | p99 | max |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for kind in ("file", "s3"):
        data = load(f"overload-{kind}")
        if data:
            out.append(
                f"| {kind} | {data['clients']} x {data['requests'] // data['clients']} | "
                f"{data['slots']} (wait {data['queue_timeout_s']} s, storage {data['storage_delay_s']} s) | "
                f"{data['served']} | {data['refused_503']} | {data['hot_hits_refused']} | "
                f"{data['p50_ms']} ms | {data['p99_ms']} ms | {data['max_ms']} ms |"
            )
    out += bounds(rows)
    out += ["", "## Every test of the run", "", "| module | test | outcome | seconds |",
            "| --- | --- | --- | ---: |", *rows]  # fmt: skip
    return "\n".join(out) + "\n"


def bounds(rows: list[str]) -> list[str]:
    """What a stranger can hold, each flooded on a real process (the figures the tests
    recorded), and the kept-alive storage connection checked on a second S3 server."""
    out = ["", "## Bounds a stranger can hit", ""]
    idle, header, files = load("bounds-idle"), load("bounds-header"), load("bounds-files")
    memory, stall = load("bounds-memory"), load("bounds-log-stall")
    if idle:
        out.append(
            f"- **Idle and half-sent connections**: {idle['idle']} connections that sent "
            f"nothing and {idle['trickling']} sending a byte every 0.2 s were all closed "
            f"{idle['all_closed_after_s']} s after opening (`EDGE_HEADER_TIMEOUT="
            f"{idle['header_timeout_s']}`), while fresh requests were served."
        )
    if files:
        out.append(
            f"- **File limit**: under `nofile={files['nofile']}` (systemd's default), "
            f"{files['opened']:,} connections opened against a cap of {files['cap']}: the "
            f"excess got `503` and were closed, and {files['served_after']} requests in a row "
            "were served after."
        )
    if header:
        out.append(
            f"- **Request head**: a 64 MiB header was refused `431` after "
            f"{header['sent_before_refusal'] / 1024:,.0f} KiB had been sent (bound "
            f"{header['bound_bytes'] // 1024} KiB); the process's peak RSS grew "
            f"{header['peak_rss_growth_kib']:,} KiB."
        )
    if memory:
        bound = memory["bound"] / 2**20
        memos = (memory["bound"] - memory["cache_bytes"] - 4 * 2**20) // (2 * 2**20)
        for name, growth in memory.items():
            if name.startswith("distinct"):
                out.append(
                    f"- **Memory, {name}** ({memory['requests'][name]:,} requests, hot "
                    f"cache {memory['cache_bytes'] / 2**20:.0f} MiB): RSS grew "
                    f"{growth / 2**20:.1f} MiB in all so far (bound {bound:.0f} MiB: the cache, "
                    f"{memos} memos of 2 MiB, 4 MiB of allocator slack)."
                )
    if stall:
        out.append(
            f"- **Log stall**: stdout and stderr pipes of {stall['pipe_bytes']:,} bytes that "
            f"nobody read; {stall['requests']} requests each logging a warning, and "
            f"{stall['malformed']} malformed requests, answered in {stall['seconds']} s; "
            f"`/healthz` then took {stall['healthz_ms']} ms. Every line came out once the "
            "pipes were read."
        )
    for kind in ("file", "s3"):
        slow = load(f"bounds-slow-readers-{kind}")
        if slow:
            out.append(
                f"- **Clients that stop reading** ({kind}): {slow['stalled']} downloads of a "
                f"32 MiB object never read, against {slow['slots']} read slots; all "
                f"{slow['others_served']} other objects were served, and the paused downloads "
                f"read on where they were ({slow['storage_reads']} storage reads in all)."
            )
    kept = [row for row in rows if "test_storage_kept_alive" in row]
    out += ["", "A kept-alive storage connection carries one answer at a time (s3rver, an "
            "S3 server that keeps connections alive, with one storage connection, a canary in "
            "every private object):", "", "| module | test | outcome | seconds |",
            "| --- | --- | --- | ---: |", *kept]  # fmt: skip
    return out


def main() -> int:
    junit = run_tests()
    REPORT.write_text(render(junit), encoding="utf-8")
    print(f"wrote {REPORT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
