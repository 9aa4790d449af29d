"""The load harness: edge against its baselines, same run, same body, same core.

One uvicorn worker (or nginx worker) pinned to core 0, ``wrk`` pinned to core 1.
Rounds are interleaved (every scenario once per round) and each ratio is taken
within its round, so a slow minute of the VM hits edge and its baselines alike;
the tables report medians over rounds. Besides requests per second and latency,
the server's own CPU time per request is read from /proc (user and system),
which shows what a request costs the process whatever the machine's pace.

Run: ``python -m bench.load`` (``make bench``). Writes ``bench/results/load.md``
and ``bench/results/load.png``. Options: ``--rounds N`` (3), ``--seconds S`` (5),
``--only TEXT`` (only the scenarios whose name holds TEXT, printed, nothing written).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import cold, memory, report
from bench.world import (
    PRIVATE,
    PUBLIC,
    ROOT,
    World,
    edge_argv,
    free_port,
    headers_for_baseline,
    uvicorn_argv,
    wait_ready,
)

SERVER_CORE, LOAD_CORE = 0, 1
CONNECTIONS = 32
NGINX_SECRET = "bench-secure-link-secret"  # test data, not a secret


@dataclass
class Scenario:
    name: str
    server: str
    path: str
    status: int
    baseline: bool = False
    rps: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)  # server CPU per request, user + system
    sys_share: list[float] = field(default_factory=list)
    errors: int = 0
    ratios: list[float] = field(default_factory=list)
    cpu_ratios: list[float] = field(default_factory=list)  # bare's CPU per request / this one's


@dataclass
class Wrk:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    non_2xx: int


def wrk(
    url: str, seconds: float, *, connections: int = CONNECTIONS, script: str | None = None
) -> Wrk:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", url]
    if script:
        argv[1:1] = ["-s", script]
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


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def nginx_config(world: World, port: int) -> Path:
    """nginx serving the same files: public as they are, private behind ``secure_link``."""
    folder = world.root / "nginx"
    folder.mkdir(exist_ok=True)
    conf = folder / "nginx.conf"
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf.write_text(
        f"""{user}worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log error;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    open_file_cache max=100 inactive=60s;
    types {{ image/png png; }}
    server {{
        listen 127.0.0.1:{port} reuseport;
        location /i/ {{ root {world.images}/public; rewrite ^/i/(.*)$ /$1 break; }}
        location /p/ {{
            secure_link $arg_md5,$arg_expires;
            secure_link_md5 "$secure_link_expires$uri {NGINX_SECRET}";
            if ($secure_link = "") {{ return 403; }}
            if ($secure_link = "0") {{ return 410; }}
            root {world.images}/private;
            rewrite ^/p/(.*)$ /$1 break;
        }}
    }}
}}
"""
    )
    return conf


def nginx_signed(path: str, expires: int) -> str:
    digest = hashlib.md5(f"{expires}{path} {NGINX_SECRET}".encode(), usedforsecurity=False)
    import base64

    md5 = base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
    return f"{path}?md5={md5}&expires={expires}"


def start_servers(world: World) -> dict[str, tuple[int, int]]:
    """Every server of the run, pinned to the server core: name -> (port, pid)."""
    servers: dict[str, tuple[int, int]] = {}
    port = free_port()  # the access log's cost has its own A/B harness: bench/log_cost.py
    proc = world.start(edge_argv(port), env=world.edge_env(EDGE_ACCESS_LOG="off"), core=SERVER_CORE)
    headers = wait_ready(port, PUBLIC, proc=proc)
    servers["edge"] = (port, proc.pid)
    key = world.edge_env()["EDGE_SIGNING_KEYS"].split(":")[2]
    baseline_env = world.edge_env(
        BENCH_BODY=str(world.images / "public/alice/hit.png"),
        BENCH_HEADERS=headers_for_baseline(headers),
        BENCH_ROOT=str(world.images),
        BENCH_KEY=key,
    )
    for name, app in (("bare", "bench.baselines:bare"), ("afternoon", "bench.baselines:afternoon")):
        port = free_port()
        proc = world.start(uvicorn_argv(app, port), env=baseline_env, core=SERVER_CORE)
        wait_ready(port, PUBLIC, proc=proc)
        servers[name] = (port, proc.pid)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if Path(nginx).exists():
        port = free_port()
        conf = nginx_config(world, port)
        proc = world.start([nginx, "-c", str(conf), "-g", "daemon off;"], core=SERVER_CORE)
        wait_ready(port, PUBLIC, proc=proc)
        pid = int((conf.parent / "nginx.pid").read_text())
        worker = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
        servers["nginx"] = (port, int(worker.split()[0]))  # the worker does the work
    return servers


def scenarios(world: World, servers: dict[str, tuple[int, int]]) -> list[Scenario]:
    signed = world.signed()
    at = signed.index("sig=") + 4
    tampered = signed[:at] + ("B" if signed[at] == "A" else "A") + signed[at + 1 :]
    expired = world.signed(exp=int(time.time()) - 60)
    found = [
        Scenario("bare ASGI app (ceiling)", "bare", PUBLIC, 200, baseline=True),
        Scenario("edge: public hit", "edge", PUBLIC, 200),
        Scenario("edge: private signed hit", "edge", signed, 200),
        Scenario("edge: bad signature", "edge", tampered, 403),
        Scenario("edge: expired", "edge", expired, 403),
        Scenario("edge: not found", "edge", "/i/alice/missing.png", 404),
        Scenario("Starlette route: public", "afternoon", PUBLIC, 200, baseline=True),
        Scenario("Starlette route: private signed", "afternoon", signed, 200, baseline=True),
    ]
    if "nginx" in servers:
        expires = int(time.time()) + 6 * 3600
        found += [
            Scenario("nginx: public", "nginx", PUBLIC, 200, baseline=True),
            Scenario(
                "nginx secure_link: private",
                "nginx",
                nginx_signed(PRIVATE.replace("/i/", "/p/"), expires),
                200,
                baseline=True,
            ),
        ]
    return found


def check_status(port: int, path: str, status: int) -> None:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            got = reply.status
    except urllib.error.HTTPError as error:
        got = error.code
    if got != status:
        raise SystemExit(f"{path} on port {port}: status {got}, expected {status}")


def measure(
    servers: dict[str, tuple[int, int]], scenario: Scenario, seconds: float, label: str
) -> float:
    """One wrk run of a scenario, recorded in it; returns its requests per second."""
    port, pid = servers[scenario.server]
    before = cpu_seconds(pid)
    result = wrk(f"http://127.0.0.1:{port}{scenario.path}", seconds)
    after = cpu_seconds(pid)
    user, system = after[0] - before[0], after[1] - before[1]
    scenario.rps.append(result.rps)
    scenario.p50.append(result.p50_ms)
    scenario.p99.append(result.p99_ms)
    scenario.cpu_us.append((user + system) / max(result.requests, 1) * 1e6)
    scenario.sys_share.append(system / max(user + system, 1e-9))
    expected_non_2xx = result.requests if scenario.status >= 300 else 0
    scenario.errors += result.errors + abs(result.non_2xx - expected_non_2xx)
    print(f"  {label}: {scenario.name:42} {result.rps:>9,.0f} req/s", flush=True)
    return result.rps


def run_rounds(
    servers: dict[str, tuple[int, int]], found: list[Scenario], *, rounds: int, seconds: float
) -> None:
    """Every scenario bracketed by runs of the bare app: its ratio is to the mean of the
    two bare runs around it, seconds apart, since this VM drifts by a third in a minute."""
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


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    rounds = int(args[args.index("--rounds") + 1]) if "--rounds" in args else 3
    seconds = float(args[args.index("--seconds") + 1]) if "--seconds" in args else 5
    only = args[args.index("--only") + 1] if "--only" in args else None  # a quick A/B: no files
    if shutil.which("wrk") is None:
        print("bench needs wrk: apt-get install wrk (Debian's package)", file=sys.stderr)
        return 2
    world = World(Path(tempfile.mkdtemp(prefix="edge-bench-"))).build()
    try:
        servers = start_servers(world)
        found = scenarios(world, servers)
        if only is not None:
            found = [found[0], *(s for s in found[1:] if only in s.name)]
        print(f"{len(found)} scenarios, {rounds} rounds of {seconds:g} s", flush=True)
        run_rounds(servers, found, rounds=rounds, seconds=seconds)
        world.stop_all()
        if only is not None:
            for s in found:
                ratio, cpu = median(s.ratios), median(s.cpu_ratios)
                print(f"{s.name:45} ratio {ratio:.2f}x  CPU ratio {cpu:.2f}x")
            return 0
        print("cold misses from S3", flush=True)
        misses = cold.run(world, seconds=seconds)
        world.stop_all()
        print("memory: 8 slow downloads of 256 MiB", flush=True)
        mem = memory.run(world)
    finally:
        world.stop_all()
        shutil.rmtree(world.root, ignore_errors=True)
    report.write(found, misses, mem, rounds=rounds, seconds=seconds)
    return 0


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
