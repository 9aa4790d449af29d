"""Edge's own cost per request, without the server around it: the profiler's view.

``bench.instructions`` counts a whole request through uvicorn, where uvicorn is
most of it. This drives the ASGI app in-process (same scope, headers and body as
under wrk, send() a no-op) so that, under callgrind, the difference between two
runs of N requests is edge's own work; ``bare`` is the same loop around a bare
app, the harness's own floor. Used to find where a hit's time goes, one change
at a time (bench/README.md lists what each change saved).

    valgrind --tool=callgrind python -m bench.hotpath CASE N [--without MEMO] [--world DIR]
    python -m bench.hotpath --help

Differencing N = 1000 and N = 11000 and dividing by 10000 gives instructions per
request; ``python -m bench.hotpath --all`` does that for every case (needs valgrind).

``realistic`` replays :mod:`bench.traffic`'s request list (the one the load
harness's realistic rows replay through wrk), access log on, with the hot cache
first filled with every object the run asks for, as a minute of that traffic
leaves it, and the memos then emptied, as after any of their emptyings; then
:data:`WARM` requests of the list, then the N counted. ``--without MEMO`` switches
one memo off (``bench.inprocess``); ``python -m bench.hotpath --memos`` measures
each memo's hit rate on the list and what it saves per request, on the list and on
one repeated URL, and writes ``bench/results/memos.md``.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench import inprocess, traffic
from bench.inprocess import App, Counted
from bench.sources import photo
from bench.world import PUBLIC, ROOT, World

CASES = ("bare", "public", "signed", "bad-signature", "expired", "not-found")
#: The same with the access log on, its writer thread asleep until the end (under
#: valgrind its 20 ms wake-ups would land on every request): the line's own cost.
LOG_CASES = ("public+log", "signed+log")
#: The same with Server-Timing on (EDGE_SERVER_TIMING): what the header costs a hit.
TIMING_CASES = ("public+timing", "signed+timing")
#: A public and a signed hit asked by a browser (its dozen headers, a referer and a user
#: agent among them), log off and on: what scanning headers and logging the browser's
#: fields cost.
BROWSER_CASES = ("public+browser", "public+browser+log", "signed+browser", "signed+browser+log")
#: A cached variant hit: ``?w=400`` of a 4 MP JPEG, made once by the request that fills
#: the cache, then asked again and again (bench.transform_load's "cached variant hit").
VARIANT = "variant"
VARIANT_PATH = "/i/alice/photo-4mp.jpg"
BROWSER = (
    (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"),
    (b"accept", b"image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5"),
    (b"accept-language", b"en-GB,en;q=0.5"),
    (b"accept-encoding", b"gzip, deflate, br, zstd"),
    (b"referer", b"https://app.example.com/albums/2026/summer?page=2"),
    (b"sec-fetch-dest", b"image"),
    (b"sec-fetch-mode", b"no-cors"),
    (b"sec-fetch-site", b"cross-site"),
    (b"connection", b"keep-alive"),
    (b"priority", b"u=5, i"),
)
REALISTIC = "realistic"
VALGRIND = ("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null")
COUNTS = (1000, 11000)  # differenced
#: Requests of the list replayed before the counted ones: the memos fill and empty as
#: they do on a server that has been up a while.
WARM = 5_000
#: Requests over which the hit rates are counted, from the end of WARM on.
HIT_WINDOW = 100_000
#: Each memo and the single-URL case it serves (where it would hit every time); the
#: forwarded clients' memo serves only traffic through a trusted proxy: realistic.
REPEATED = {
    "validated paths": "public+log",
    "access-log kinds": "public+log",
    "verified signatures": "signed+log",
    "refused signatures": "bad-signature+log",
}
RESULTS = ROOT / "bench" / "results" / "memos.md"
INSTRUCTIONS = ROOT / "bench" / "results" / "instructions.md"


def request_target(world: World, case: str) -> str:
    case = case.removesuffix("+log").removesuffix("+timing").removesuffix("+browser")
    if case == "signed":
        return world.signed()
    if case == "bad-signature":
        signed = world.signed()
        at = signed.index("sig=") + 4
        return signed[:at] + ("B" if signed[at] == "A" else "A") + signed[at + 1 :]
    if case == "expired":
        return world.signed(exp=int(time.time()) - 60)
    if case == "not-found":
        return "/i/alice/none.png"
    if case == VARIANT:
        return f"{VARIANT_PATH}?w=400"
    return PUBLIC


def make_app(
    world: World, case: str, without: Iterable[str] = ()
) -> tuple[App, Callable[[], Awaitable[None]]]:
    """The app for ``case`` and its start-up coroutine (the storage's open)."""
    if case == "bare":
        data = (world.images / "public/alice/hit.png").read_bytes()
        headers = [(b"content-type", b"image/png"), (b"content-length", b"%d" % len(data))]

        async def bare(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": data})

        async def nothing() -> None:
            pass

        return bare, nothing
    if case == REALISTIC:
        # The cache keeps objects for the whole run (runs of different lengths, under
        # valgrind or not, see the same cache); the proxy's X-Forwarded-For names clients.
        env = world.edge_env(
            EDGE_ACCESS_LOG="json", EDGE_TRUSTED_PROXIES="127.0.0.1", EDGE_CACHE_TTL="3600"
        )
    else:
        env = world.edge_env(
            EDGE_ACCESS_LOG="json" if case.endswith("+log") else "off",
            EDGE_SERVER_TIMING="on" if case.endswith("+timing") else "off",
            # The variant's one transform, under valgrind on a busy machine, took past the
            # default 10 s: its 503 was then every request's, and nothing was counted.
            EDGE_TRANSFORM_TIMEOUT="600",
        )
    app, start = inprocess.build(env)
    if without:
        inprocess.replace(app, inprocess.off, *without)
    return app, start


def scope(
    raw: bytes, query: bytes, forwarded: bytes | None = None, *, browser: bool = False
) -> dict[str, Any]:
    """A request's scope, built per request as uvicorn does: fresh bytes, fresh lists."""
    headers = [(b"host", b"127.0.0.1:8080")]
    if forwarded is not None:
        headers.append((b"x-forwarded-for", forwarded))
    if browser:
        headers += [(bytes(bytearray(n)), bytes(bytearray(v))) for n, v in BROWSER]  # fresh
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8080),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": "GET",
        "root_path": "",
        "path": raw.decode("latin-1"),
        "raw_path": raw,
        "query_string": query,
        "headers": headers,
    }


class Answers:
    """receive() and send() for the app; send keeps the last status."""

    def __init__(self) -> None:
        self.status = 0

    async def receive(self) -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]


async def drive(world: World, case: str, count: int, without: Iterable[str] = ()) -> int:
    """``count`` requests (after one that fills the cache); the status they all got."""
    if case == REALISTIC:
        await replay(world, count, without)
        return 200
    if case == VARIANT:
        source = world.images / "public" / VARIANT_PATH.removeprefix("/i/")
        if not source.exists():
            source.write_bytes(photo(2400, 1600))
    app, start = make_app(world, case, without)
    await start()
    steady()
    raw, _, query = request_target(world, case).partition("?")
    answers = Answers()
    statuses: set[int] = set()
    browser = "+browser" in case
    for _ in range(count + 1):
        request = scope(raw.encode(), query.encode(), browser=browser)
        await app(request, answers.receive, answers.send)
        statuses.add(answers.status)
    inprocess.close(app)  # the one write of every line, counted
    if len(statuses) != 1:
        raise SystemExit(f"{case}: answers changed during the run: {statuses}")
    return statuses.pop()


def steady() -> None:
    """Move everything made so far (imports, the app, the world) out of the garbage
    collector's reach: otherwise a full collection, which walks all of it (millions of
    instructions), falls in or out of the counted window with any small change of program,
    and a difference of 1,000 instructions per request between two versions meant nothing.
    What the requests allocate is still collected, and counted."""
    gc.collect()
    gc.freeze()


Counts = dict[str, tuple[int, int, int]]  # memo -> (lookups, hits, emptyings)


async def replay(
    world: World,
    count: int,
    without: Iterable[str] = (),
    *,
    horizon: int = COUNTS[-1],
    checkpoints: tuple[int, ...] = (),
) -> list[Counts]:
    """The realistic case: fill the cache with every object of the first WARM + ``horizon``
    requests, empty the memos, replay WARM + ``count`` requests of the list. With
    ``checkpoints`` (request numbers counted from the end of WARM), every memo counts its
    lookups and hits, and their totals at each checkpoint are returned."""
    app, start = make_app(world, REALISTIC, without)
    if checkpoints:
        inprocess.replace(app, inprocess.counted)
    await start()
    listing = list(traffic.read(world.root / "requests.txt", WARM + max(horizon, count)))
    first: dict[bytes, tuple[bytes, bytes, bytes, int]] = {}
    for request in listing[: WARM + horizon]:  # a 200 for each object that has one
        if request[0] not in first or first[request[0]][3] != 200:
            first[request[0]] = request
    answers = Answers()
    for raw, query, client, _ in first.values():
        await app(scope(raw, query, client), answers.receive, answers.send)
    inprocess.replace(app, inprocess.emptied)
    found: list[Counts] = []
    marks = {WARM + mark for mark in checkpoints}
    for number, (raw, query, client, status) in enumerate(listing[: WARM + count]):
        if number in marks:
            found.append(_counts(app))
        await app(scope(raw, query, client), answers.receive, answers.send)
        if answers.status != status:
            raise SystemExit(f"request {number} of the list: {answers.status}, expected {status}")
    if WARM + count in marks:
        found.append(_counts(app))
    inprocess.close(app)
    return found


def _counts(app: object) -> Counts:
    found = {}
    for name, (owner, attribute) in inprocess.memos(app).items():
        memo = getattr(owner, attribute)
        assert isinstance(memo, Counted)
        found[name] = (memo.lookups, memo.hits, memo.clears)
    return found


def per_request(case: str, without: str | None = None, world: Path | None = None) -> float:
    """Instructions per request under callgrind: runs of 1000 and 11000, differenced."""
    extra = ["--without", without] if without else []
    if world is not None:
        extra += ["--world", str(world)]
    counts = []
    for count in COUNTS:
        done = subprocess.run(
            [*VALGRIND, sys.executable, "-m", "bench.hotpath", case, str(count), *extra],
            capture_output=True,
            text=True,
            check=True,
        )
        found = re.search(r"Collected : (\d+)", done.stderr)
        assert found, done.stderr[-500:]
        counts.append(int(found.group(1)))
    return (counts[1] - counts[0]) / (COUNTS[1] - COUNTS[0])


def realistic_world() -> tuple[World, str]:
    """A world with the realistic objects and request list (``requests.txt``) written, and
    the list in one sentence."""
    world = World(Path(tempfile.mkdtemp(prefix="edge-hotpath-"))).build()
    found = traffic.build(world)
    found.write(world.root / "requests.txt")
    return world, found.summary()


def arguments(args: list[str]) -> argparse.Namespace:
    cases = ", ".join((*CASES, *LOG_CASES, *TIMING_CASES, *BROWSER_CASES, VARIANT, REALISTIC))
    parser = argparse.ArgumentParser(
        prog="python -m bench.hotpath",
        description="Edge's own instructions per request, in-process. --all or --memos run "
        "everything under valgrind; CASE N drives N requests of one case (run it under "
        "valgrind --tool=callgrind yourself).",
    )
    parser.add_argument(
        "case", nargs="?", help=f"one case to drive: {cases} (a case +log: the access log on)"
    )
    parser.add_argument("count", nargs="?", type=int, help="requests of it")
    parser.add_argument("--all", action="store_true", help="every case, instructions per request")
    parser.add_argument(
        "--memos", action="store_true", help="each memo's hit rate and saving: results/memos.md"
    )
    parser.add_argument("--without", metavar="MEMO", help="switch one memo off (bench.inprocess)")
    parser.add_argument("--world", type=Path, help="a world prepared by the parent process")
    found = parser.parse_args(args)
    if not (found.all or found.memos) and (found.case is None or found.count is None):
        parser.error("give CASE and N, or --all, or --memos")
    return found


def main(argv: list[str]) -> int:
    args = arguments(argv)
    if args.all:
        world, _ = realistic_world()
        try:
            for case in (*CASES, *LOG_CASES, *TIMING_CASES, *BROWSER_CASES, VARIANT, REALISTIC):
                found = per_request(case, world=world.root if case == REALISTIC else None)
                print(f"{case:18} {found:10,.0f} instructions per request", flush=True)
        finally:
            shutil.rmtree(world.root, ignore_errors=True)
        return 0
    if args.memos:
        return memo_report()
    without = [args.without] if args.without else []
    import uvloop  # edge's loop under uvicorn

    if args.world is not None:  # prepared by the parent: writing 10,000 objects under valgrind
        world = World(args.world)
        print(args.case, uvloop.run(drive(world, args.case, args.count, without)), file=sys.stderr)
        return 0
    world = World(Path(tempfile.mkdtemp(prefix="edge-hotpath-"))).build()
    try:
        print(args.case, uvloop.run(drive(world, args.case, args.count, without)), file=sys.stderr)
    finally:
        shutil.rmtree(world.root, ignore_errors=True)
    return 0


def memo_report() -> int:
    """Hit rates (in-process, at full speed) and instructions saved (under callgrind)."""
    import uvloop

    if shutil.which("valgrind") is None:
        print("needs valgrind: apt-get install valgrind", file=sys.stderr)
        return 2
    world, summary = realistic_world()
    try:
        marks = (0, COUNTS[0], COUNTS[1], HIT_WINDOW)
        found = uvloop.run(replay(world, HIT_WINDOW, horizon=HIT_WINDOW, checkpoints=marks))
        rates = {name: _rate(found[0], found[3], name) for name in found[0]}
        window = {name: _rate(found[1], found[2], name) for name in found[0]}
        print("hit rates:", {k: f"{v[0]:.1%}" for k, v in rates.items()}, flush=True)
        jobs: list[tuple[str, str | None]] = [(REALISTIC, None)]
        jobs += [(REALISTIC, name) for name in rates]
        jobs += sorted({(case, None) for case in REPEATED.values()})
        jobs += [(case, name) for name, case in REPEATED.items()]
        with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
            counted = dict(
                zip(
                    jobs,
                    pool.map(lambda job: per_request(job[0], job[1], world.root), jobs),
                    strict=True,
                )
            )
    finally:
        shutil.rmtree(world.root, ignore_errors=True)
    for job, value in counted.items():
        print(f"{job[0]:18} without {job[1] or '(none)':22} {value:10,.0f}", flush=True)
    text = memo_table(summary, rates, window, counted)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(text, encoding="utf-8")
    print(text)
    return 0


def _rate(start: Counts, end: Counts, name: str) -> tuple[float, int]:
    """(hit rate, emptyings) of a memo between two checkpoints."""
    lookups = end[name][0] - start[name][0]
    hits = end[name][1] - start[name][1]
    return (hits / lookups if lookups else float("nan")), end[name][2] - start[name][2]


def whole_hit() -> int | None:
    """Event-loop instructions of a cached public hit through uvicorn, log on, from the last
    ``bench.instructions`` run: what "1% of a hit" is taken of."""
    if not INSTRUCTIONS.exists():
        return None
    row = re.compile(r"^\| edge, public hit, log on \| ([\d,]+) \|", re.M)
    found = row.search(INSTRUCTIONS.read_text())
    return int(found.group(1).replace(",", "")) if found else None


def memo_table(
    summary: str,
    rates: dict[str, tuple[float, int]],
    window: dict[str, tuple[float, int]],
    counted: dict[tuple[str, str | None], float],
) -> str:
    hit = whole_hit()
    threshold = hit / 100 if hit else None
    base = counted[(REALISTIC, None)]
    lines = [
        "# What each hot-path memo saves",
        "",
        f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}. Made by `python -m bench.hotpath --memos`: edge "
        "in-process, access log on, instructions per request under callgrind ((Ir(N="
        f"{COUNTS[1]}) - Ir(N={COUNTS[0]})) / {COUNTS[1] - COUNTS[0]}), each memo switched "
        "off in turn (the bench replaces it with one that never hits and keeps nothing).",
        "",
        f"Realistic traffic: `bench/traffic.py`'s list (the load harness's realistic rows: "
        f"{summary}), hot cache filled first, memos emptied, {WARM:,} requests replayed before "
        f"those counted. Hit rates over the {HIT_WINDOW:,} requests after those (in brackets: over "
        "the requests callgrind counts). All memos on, a request of the list costs "
        f"{base:,.0f} instructions in-process. One repeated URL: the single-URL case the memo "
        "serves, where it hits every time.",
        "",
        "| memo | hit rate, realistic (emptied) | saved per request, realistic | "
        "saved per request, one repeated URL | pays? |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for name, (rate, clears) in rates.items():
        saved = counted[(REALISTIC, name)] - base
        case = REPEATED.get(name)
        repeated = f"{counted[(case, name)] - counted[(case, None)]:,.0f} ({case})" if case else "-"
        verdict = "-" if threshold is None else "yes" if saved >= threshold else "**no**"
        share = f" ({saved / hit:.1%})" if hit else ""
        lines.append(
            f"| {name} | {rate:.1%} [{window[name][0]:.1%}] ({clears:,}x) | "
            f"{saved:,.0f}{share} | {repeated} | {verdict} |"
        )
    if hit:
        lines += [
            "",
            f"A memo pays if it saves at least 1% of a cached hit's instructions per request on "
            f"realistic traffic: {threshold:,.0f}, 1% of the {hit:,} event-loop instructions "
            "of a public hit through uvicorn with the log on (`instructions.md`). Percentages "
            "in brackets are of that hit.",
        ]
    lines += [
        "",
        "A memo switched off still has its lookup made (a miss) and the size of what its owner "
        "would keep computed: what it saves is overstated by those, a few hundred "
        "instructions at most. Emptied: how many times the memo reached its bound "
        f"({HIT_WINDOW:,} requests) and was emptied.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
