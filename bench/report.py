"""The load harness's results: a Markdown table and a PNG chart in bench/results/."""

from __future__ import annotations

import os
import platform
import time
from functools import partial
from pathlib import Path

from bench.cold import ColdResult
from bench.measure import CONNECTIONS, Scenario, median, verdict
from bench.memory import MemoryResult
from bench.realistic import Outcome

RESULTS = Path(__file__).parent / "results"
MIB = 1024 * 1024

#: scenario name -> minimum ratio to the bare ASGI app (the load table's targets)
TARGETS = {
    "edge: public hit": 0.85,
    "edge: private signed hit": 0.80,
    "edge: bad signature": 0.90,
    "edge: expired": 0.90,
    "edge: not found": 0.90,
}
COLD_TARGET = 0.6
#: What a met target and a miss say in this report.
_verdict = partial(verdict, words=("met", "**missed by {:.1%}**"))
MEMORY_TARGET = 64 * MIB


BOUNDS = """## What bounds the misses

Most of every scenario's CPU is uvicorn's, which the bare app pays too: about
140,000 instructions per request. Counted in instructions, which do not drift
(`instructions.md`), edge's hits and rejections meet their ratios; wall-clock
ratios sit 5 to 10 points lower, because the instructions edge adds are the
interpreter's (calls, dict lookups), which retire fewer per cycle than
uvicorn's C parser and loop, and because this VM's speed drifts: the bare app's
runs in this one ranged from {low:,.0f} to {high:,.0f} req/s. What is left of
edge's own work, and what each change saved: `bench/README.md`."""


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({model}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def write(
    found: list[Scenario],
    cold: ColdResult,
    memory: MemoryResult,
    realistic: Outcome,
    *,
    rounds: int,
    seconds: float,
) -> str:
    lines = [
        "# Load benchmark",
        "",
        f"{time.strftime('%Y-%m-%d')}; {machine()}. Made by `python -m bench.load` "
        f"(`make bench`): {rounds} interleaved rounds of {seconds:g} s per scenario, "
        f"`wrk -t1 -c{CONNECTIONS}` on core 1, each server one process (one uvicorn or nginx "
        "worker) on core 0, 16 KiB body, loopback. Medians over rounds; each ratio is taken "
        "against the mean of the two bare ASGI app runs just before and after it. CPU per "
        "request is the server process's own user + system time from /proc (sys = the "
        "kernel's share of it); `CPU ratio` is the bare app's CPU per request (runs around "
        "it) over this one's.",
        "",
        "| scenario | req/s | ratio to bare | p50 ms | p99 ms | CPU µs/req (sys) | CPU ratio "
        "| errors | target |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for s in found:
        ratio = median(s.ratios)
        target = TARGETS.get(s.name)
        goal = f">= {target:.2f}x: {_verdict(ratio, target, at_least=True)}" if target else ""
        lines.append(
            f"| {s.name} | {median(s.rps):,.0f} | {ratio:.2f}x | {median(s.p50):.2f} | "
            f"{median(s.p99):.2f} | {median(s.cpu_us):.0f} ({median(s.sys_share):.0%}) | "
            f"{median(s.cpu_ratios):.2f}x | {s.errors} | {goal} |"
        )
    by_name = {s.name: s for s in found}
    lines += [
        "",
        "Edge runs with the access log off here, as a load test would; what the log costs",
        "a cached hit is measured by `bench/log_cost.py` (`log-cost.md`).",
    ]
    bare = by_name.get("bare ASGI app (ceiling)")
    if bare is not None and any(
        median(by_name[name].ratios) < target for name, target in TARGETS.items() if name in by_name
    ):
        lines += ["", *BOUNDS.format(low=min(bare.rps), high=max(bare.rps)).splitlines()]
    lines += ["", *realistic_section(realistic)]
    cold_ratio = cold.edge_cpu_us / cold.get_object_cpu_us
    lines += [
        "",
        "## Cold misses from S3 (moto's server, every request a different object)",
        "",
        f"wrk with 8 connections for {seconds:g} s: {cold.requests:,} requests, "
        f"{cold.rps:,.0f} req/s (moto's server is the bottleneck), p50 {cold.p50_ms:.1f} ms, "
        f"p99 {cold.p99_ms:.1f} ms, {cold.non_2xx} not 200.",
        "",
        "| CPU per object | µs |",
        "| --- | ---: |",
        f"| edge process, whole request (HTTP in, S3 read, HTTP out) | {cold.edge_cpu_us:.0f} |",
        f"| plain aiobotocore `get_object` + read, client process | {cold.get_object_cpu_us:.0f} |",
        f"| `generate_presigned_url` + aiohttp GET, client process | "
        f"{cold.presigned_get_cpu_us:.0f} |",
        "",
        f"Edge / get_object: {cold_ratio:.2f}x; target <= {COLD_TARGET}x: "
        f"{_verdict(cold_ratio, COLD_TARGET, at_least=False)}.",
        "",
        "## Memory: 8 slow downloads of one 256 MiB object at once",
        "",
        f"{memory.readers} readers, {memory.object_bytes // MIB} MiB each, "
        f"{sum(memory.received) // MIB} MiB received in {memory.seconds:.0f} s; "
        f"edge's peak RSS grew by {memory.peak_growth_bytes / MIB:.1f} MiB; target <= 64 MiB: "
        f"{_verdict(memory.peak_growth_bytes, MEMORY_TARGET, at_least=False)}.",
    ]
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "load.md").write_text(text, encoding="utf-8")
    chart(found)
    print(text)
    return text


def realistic_section(outcome: Outcome) -> list[str]:
    """What the realistic rows replayed, and how often each edge's hot cache answered."""
    lines = [
        "## Realistic traffic",
        "",
        f"The `edge: realistic` rows replay one request list through wrk (`bench/traffic.py`): "
        f"{outcome.summary}. Each recorded run goes on where the previous one stopped, after "
        f"{outcome.warm_seconds:g} s of the list unrecorded (the hot cache keeps entries 60 s and "
        "a scenario's runs are minutes apart). The edges trust 127.0.0.1 as a proxy, so "
        "`X-Forwarded-For` names the client; the errors column counts answers whose status "
        "differs from the list's.",
        "",
    ]
    for name, rate in outcome.cache_hits.items():
        lines.append(f"- {name}: {rate:.1%} of image requests answered from the hot cache.")
    lines += [
        "",
        "Each memo's hit rate on this list, and what it saves per request, are measured "
        "in-process by `python -m bench.hotpath --memos` (`memos.md`).",
    ]
    return lines


def chart(found: list[Scenario]) -> None:
    import matplotlib  # only here: the harness's other modules run without it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [s.name for s in found]
    ratios = [median(s.ratios) for s in found]
    colors = ["#888888" if s.baseline else "#2f6fb0" for s in found]
    fig, ax = plt.subplots(figsize=(9, 0.42 * len(found) + 1.2))
    ax.barh(names[::-1], ratios[::-1], color=colors[::-1])
    for name, target in TARGETS.items():
        if name in names:
            y = len(names) - 1 - names.index(name)
            ax.plot([target, target], [y - 0.4, y + 0.4], color="#c0392b", linewidth=2)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("requests/s relative to the bare ASGI app (same run); red: target")
    ax.set_title(f"edge load benchmark, {time.strftime('%Y-%m-%d')}")
    fig.tight_layout()
    fig.savefig(RESULTS / "load.png", dpi=110)
    plt.close(fig)
