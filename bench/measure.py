"""How every wall-clock scenario is measured: wrk on its core, the server's CPU from /proc,
each scenario bracketed by runs of the bare app, medians over interleaved rounds.

The bottom of the bench's import graph with :mod:`bench.world`: scenarios
(``single``, ``realistic``, ``cold``, ``memory``) and entry points (``load``,
``log_cost``) share these figures and methods, so none of them imports another's.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

#: One server process pinned to one core, the load generator to the other.
SERVER_CORE, LOAD_CORE = 0, 1
CONNECTIONS = 32


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def verdict(value: float, target: float, *, at_least: bool, words: tuple[str, str]) -> str:
    """Whether ``value`` meets ``target`` (at least it, or at most), in a report's own words:
    ``words`` is what a met target says, then a miss's format of its share (``{:.1%}``)."""
    met = value >= target if at_least else value <= target
    if met:
        return words[0]
    miss = (target - value) / target if at_least else (value - target) / target
    return words[1].format(miss)


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def peak_rss(pid: int) -> int:
    """A process's peak resident set so far (VmHWM), in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
    assert match
    return int(match.group(1)) * 1024


def at_once(work: Callable[[int], None], count: int) -> float:
    """``work(0)`` to ``work(count - 1)``, each on a thread of its own, all started at once:
    the seconds until the last one ended."""
    threads = [threading.Thread(target=work, args=(n,)) for n in range(count)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.monotonic() - started


@dataclass
class Wrk:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    non_2xx: int


def wrk(
    url: str,
    seconds: float,
    *,
    connections: int = CONNECTIONS,
    script: str | None = None,
    script_args: tuple[str, ...] = (),
    timeout: float | None = None,
) -> Wrk:
    """One wrk run (one thread, on the load core), parsed. ``timeout``: seconds a request
    may take before wrk counts it as an error (wrk's default is 2)."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", url]
    if timeout is not None:
        argv[1:1] = ["--timeout", f"{timeout:g}s"]
    if script:
        argv[1:1] = ["-s", script]
    if script_args:
        argv += ["--", *script_args]
    if (os.cpu_count() or 1) > 1:
        argv = ["taskset", "-c", str(LOAD_CORE), *argv]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return Wrk(
        requests=requests,
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        p50_ms=_ms(re.search(r"^\s+50%\s+([\d.]+\w+)", out, re.M).group(1)),  # type: ignore[union-attr]
        p99_ms=_ms(re.search(r"^\s+99%\s+([\d.]+\w+)", out, re.M).group(1)),  # type: ignore[union-attr]
        errors=sum(int(n) for n in errors.groups()) if errors else 0,
        non_2xx=int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0,
    )


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


@dataclass
class Replay:
    """wrk replaying a request list with ``replay.lua`` rather than one URL: each run goes on
    where the previous one stopped, so the rounds together walk the list like a trace."""

    lua: Path
    requests: Path  # one "target client status" per line
    statuses: list[int]  # each line's expected status
    offset: int = 0

    def expected_non_2xx(self, count: int) -> int:
        """How many of the next ``count`` requests answer neither 2xx nor 3xx."""
        size = len(self.statuses)
        return sum(self.statuses[(self.offset + n) % size] >= 400 for n in range(count))


@dataclass
class Scenario:
    """One row of the load table, with its measurements over the rounds."""

    name: str
    server: str
    path: str  # the URL's path and query; a replay's first request when it has one
    status: int
    baseline: bool = False
    replay: Replay | None = None
    warm: float = 0.0  # seconds of a replay run, unrecorded, before each recorded run
    rps: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)  # server CPU per request, user + system
    sys_share: list[float] = field(default_factory=list)
    errors: int = 0
    ratios: list[float] = field(default_factory=list)
    cpu_ratios: list[float] = field(default_factory=list)  # bare's CPU per request / this one's


Servers = dict[str, tuple[int, int]]  # name -> (port, pid of the process doing the work)


def check_status(port: int, path: str, status: int) -> None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            got = reply.status
    except urllib.error.HTTPError as error:
        got = error.code
    if got != status:
        raise SystemExit(f"{path} on port {port}: status {got}, expected {status}")


#: A replay's non-2xx count may differ from its list's by the requests in flight at the end.
_IN_FLIGHT = CONNECTIONS


def measure(servers: Servers, scenario: Scenario, seconds: float, label: str) -> float:
    """One wrk run of a scenario, recorded in it; returns its requests per second."""
    port, pid = servers[scenario.server]
    replay = scenario.replay
    if replay is not None and scenario.warm > 0:
        replay.offset += _replay(port, replay, scenario.warm).requests
    before = cpu_seconds(pid)
    if replay is None:
        result = wrk(f"http://127.0.0.1:{port}{scenario.path}", seconds)
        expected, slack = (result.requests if scenario.status >= 300 else 0), 0
    else:
        result = _replay(port, replay, seconds)
        expected, slack = replay.expected_non_2xx(result.requests), _IN_FLIGHT
        replay.offset += result.requests
    after = cpu_seconds(pid)
    user, system = after[0] - before[0], after[1] - before[1]
    scenario.rps.append(result.rps)
    scenario.p50.append(result.p50_ms)
    scenario.p99.append(result.p99_ms)
    scenario.cpu_us.append((user + system) / max(result.requests, 1) * 1e6)
    scenario.sys_share.append(system / max(user + system, 1e-9))
    wrong = abs(result.non_2xx - expected)
    scenario.errors += result.errors + (wrong if wrong > slack else 0)
    print(f"  {label}: {scenario.name:42} {result.rps:>9,.0f} req/s", flush=True)
    return result.rps


def _replay(port: int, replay: Replay, seconds: float) -> Wrk:
    args = (str(replay.requests), str(replay.offset))
    return wrk(f"http://127.0.0.1:{port}", seconds, script=str(replay.lua), script_args=args)


def run_rounds(servers: Servers, found: list[Scenario], *, rounds: int, seconds: float) -> None:
    """Every scenario bracketed by runs of the bare app (``found[0]``): its ratio is to the
    mean of the two bare runs around it, seconds apart, since this VM drifts by a third in
    a minute. Rounds alternate the order."""
    for scenario in found:
        check_status(servers[scenario.server][0], scenario.path, scenario.status)
    bare, others = found[0], found[1:]
    for number in range(rounds):
        label = f"round {number + 1}"
        order = others if number % 2 == 0 else others[::-1]
        previous = measure(servers, bare, seconds, label)
        for scenario in order:
            rps = measure(servers, scenario, seconds, label)
            bare_cpu = bare.cpu_us[-1]
            following = measure(servers, bare, seconds, label)
            scenario.ratios.append(rps / ((previous + following) / 2))
            scenario.cpu_ratios.append((bare_cpu + bare.cpu_us[-1]) / 2 / scenario.cpu_us[-1])
            previous = following
    bare.ratios = bare.cpu_ratios = [1.0] * rounds
