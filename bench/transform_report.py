"""The transform scenarios' results: ``results/transform-load.md`` and its chart."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

from bench.measure import Scenario, median, verdict
from bench.report import machine
from bench.transform_cold import CONTENDERS, LABELS, Row
from bench.transform_hits import Loaded
from bench.transform_memory import Bomb, Peak

RESULTS = Path(__file__).parent / "results"
MIB = 1024 * 1024
#: The targets each report line is judged by.
VS_BARE, VS_THUMBOR = 0.9, 1.2
HIT_VS_BARE = 0.85
LOADED_P99_MS, LOADED_SHARE = 50.0, 0.5
PEAK_BYTES = 256 * MIB
BOMB_MS, BOMB_BYTES = 50.0, 8 * MIB
#: What a met target and a miss say in this report.
_verdict = partial(verdict, words=("pass", "**miss by {:.0%}**"))


@dataclass
class Outcome:
    rows: list[Row]
    hit: list[Scenario]
    loaded: list[Loaded]
    peaks: list[Peak]
    bomb: Bomb
    rounds: int
    seconds: float
    load_average: tuple[float, float]  # the machine's 1-minute load average: lowest, highest


def cold_table(rows: list[Row]) -> list[str]:
    """One line per case and layout; each ratio twice: measured req/s, and CPU per request
    (theirs over edge's: the req/s ratio a core of its own would give each)."""
    lines = [
        "| layout | source -> output | req/s: edge, bare, thumbor | CPU ms/req: edge, bare, "
        "thumbor | edge / bare, req/s and CPU (>= 0.9x) | edge / thumbor, req/s and CPU "
        "(>= 1.2x) | errors |",
        "| --- | --- | --- | --- | --- | --- | ---: |",
    ]
    for row in rows:
        rps = ", ".join(f"{median(row.runs[c].rps):.1f}" for c in CONTENDERS)
        cpu = ", ".join(f"{median(row.runs[c].cpu_ms):.1f}" for c in CONTENDERS)
        errors = sum(row.runs[c].errors for c in CONTENDERS)
        lines.append(
            f"| {row.layout} | {row.case.name} | {rps} | {cpu} "
            f"| {_pair(row, 'vs_bare', 'cpu_vs_bare', VS_BARE)} "
            f"| {_pair(row, 'vs_thumbor', 'cpu_vs_thumbor', VS_THUMBOR)} | {errors} |"
        )
    return lines


def _pair(row: Row, rps: str, cpu: str, target: float) -> str:
    by_rps, by_cpu = row.ratio(rps), row.ratio(cpu)
    return (
        f"{by_rps:.2f}x {_verdict(by_rps, target, at_least=True)}; "
        f"CPU {by_cpu:.2f}x {_verdict(by_cpu, target, at_least=True)}"
    )


def write(outcome: Outcome, notes: str, *, save: bool = True) -> str:
    hit = outcome.hit[1]
    hit_ratio, hit_cpu = median(hit.ratios), median(hit.cpu_ratios)
    lines = [
        "# Transforms under load",
        "",
        f"{machine()}; the machine's 1-minute load average ranged from "
        f"{outcome.load_average[0]:.1f} to {outcome.load_average[1]:.1f} during the run "
        "(other engineers' tests share it). Made by `python -m bench.transform_load` "
        f"(`make bench`): {outcome.rounds} interleaved rounds of {outcome.seconds:g} s per "
        "contender and case, medians over rounds, ratios taken within a round. CPU per "
        "request is the server processes' own user + system time from /proc (every thread; "
        "thumbor's forked children summed). How each row is run: `bench/README.md`.",
        "",
        "## Cold transforms (no cache anywhere; a new width, 300 to 1299 px, per request)",
        "",
        *cold_table(outcome.rows),
        "",
        "## Cached variant hit (one core)",
        "",
        f"`{hit.path}` asked again and again: edge {median(hit.rps):,.0f} req/s, "
        f"p99 {median(hit.p99):.1f} ms, {median(hit.cpu_us):.0f} µs CPU per request; the bare "
        f"ASGI app answering the same bytes {median(outcome.hit[0].rps):,.0f} req/s, "
        f"{median(outcome.hit[0].cpu_us):.0f} µs. Ratio {hit_ratio:.2f}x "
        f"(>= {HIT_VS_BARE}x: {_verdict(hit_ratio, HIT_VS_BARE, at_least=True)}); CPU ratio "
        f"{hit_cpu:.2f}x. A plain cached hit of the same bytes (stored as an original), "
        f"in the same rounds: {median(outcome.hit[2].ratios):.2f}x, CPU "
        f"{median(outcome.hit[2].cpu_ratios):.2f}x.",
        "",
        "## Cached hits while cold transforms saturate the pool",
        "",
        "| layout | alone: req/s, p50, p99 ms | under load: req/s, p50, p99 ms | transforms/s "
        "beside | p99 <= 50 ms | loaded / alone req/s (>= 0.5x) |",
        "| --- | --- | --- | ---: | --- | --- |",
    ]
    for run in outcome.loaded:
        share = median(run.ratios)
        lines.append(
            f"| {run.layout} | {run.rps('alone'):,.0f}, {run.p50('alone'):.1f}, "
            f"{run.p99('alone'):.1f} | {run.rps('loaded'):,.0f}, {run.p50('loaded'):.1f}, "
            f"{run.p99('loaded'):.1f} | {median(run.transforms_rps):.1f} "
            f"| {_verdict(run.p99('loaded'), LOADED_P99_MS, at_least=False)} "
            f"| {share:.2f}x {_verdict(share, LOADED_SHARE, at_least=True)} |"
        )
    lines += ["", "## Memory: 8 concurrent cold transforms of the 24 MP JPEG", ""]
    for peak in outcome.peaks:
        default = peak is outcome.peaks[0]
        target = f"; <= 256 MiB: {_verdict(peak.growth_bytes, PEAK_BYTES, at_least=False)}"
        lines.append(
            f"- {peak.label}: statuses {sorted(set(peak.statuses))}, {peak.seconds:.1f} s, "
            f"peak RSS growth {peak.growth_bytes / MIB:.0f} MiB" + (target if default else "")
        )
    bomb = outcome.bomb
    lines += [
        "",
        "## Bomb: a 20000 x 20000 PNG (1-bit, 48 KiB) refused",
        "",
        f"{len(bomb.statuses)} requests one after another, statuses "
        f"{sorted(set(bomb.statuses))}: median {bomb.median_ms:.1f} ms (< 50 ms: "
        f"{_verdict(bomb.median_ms, BOMB_MS, at_least=False)}), slowest {bomb.max_ms:.1f} ms; "
        f"edge's CPU per refusal {bomb.cpu_ms:.2f} ms; peak RSS growth "
        f"{bomb.growth_bytes / MIB:.1f} MiB (< 8 MiB: "
        f"{_verdict(bomb.growth_bytes, BOMB_BYTES, at_least=False)}).",
        "",
        notes,
    ]
    text = "\n".join(lines).rstrip() + "\n"
    print(text)
    if save:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "transform-load.md").write_text(text, encoding="utf-8")
        chart(outcome.rows)
    return text


def chart(rows: list[Row]) -> None:
    """Requests per second by case, one group of bars per contender, one panel per layout."""
    import matplotlib  # only here: the harness's other modules run without it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layouts = sorted({row.layout for row in rows}, key=lambda name: name != "one core")
    fig, axes = plt.subplots(1, len(layouts), figsize=(7 * len(layouts), 6), squeeze=False)
    colours = {"edge": "#2f6fb0", "bare": "#888888", "thumbor": "#d98b2b"}
    for ax, layout in zip(axes[0], layouts, strict=True):
        mine = [row for row in rows if row.layout == layout][::-1]
        for offset, contender in enumerate(CONTENDERS):
            values = [median(row.runs[contender].rps) for row in mine]
            ys = [n + (1 - offset) * 0.27 for n in range(len(mine))]
            ax.barh(ys, values, height=0.27, color=colours[contender], label=LABELS[contender])
        ax.set_yticks(range(len(mine)), [row.case.name for row in mine], fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel("requests/s (log scale), a new width per request")
        ax.set_title(f"cold transforms, {layout}")
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "transform-load.png", dpi=110)
    plt.close(fig)
