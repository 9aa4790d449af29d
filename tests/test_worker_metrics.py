"""Metrics that add up under ``edge serve --workers N`` (edge/workermetrics.py): a real
server of two workers, real traffic over many connections, real scrapes; the folder the
workers publish into removed at exit; a restart starts from zero."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.parser import text_string_to_metric_families

from edge.workermetrics import (
    FOLDER_VARIABLE,
    Publisher,
    SharedCollector,
    _running,
    merge,
    shared_folder,
    snapshot,
)
from tests.support.client import TLS
from tests.support.processes import clean_env, edge_process, populated, stop
from tests.support.servers import free_port

WORKTREE = Path(__file__).resolve().parents[1]
IMAGE = "/i/alice/photo.png"


def requests_by_outcome(text: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "edge_requests":
            for sample in family.samples:
                outcome = sample.labels["outcome"]
                totals[outcome] = totals.get(outcome, 0.0) + sample.value
    return totals


@contextmanager
def two_workers(
    tmp_path: Path, *, metrics: str = "local"
) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    """``edge serve --workers 2`` with its temporary files in ``tmp_path/tmp``; yields the
    process, its base URL and the folder its workers publish into, once both have started."""
    root = tmp_path / "images"
    if not root.exists():
        populated(tmp_path)
    temporary = tmp_path / "tmp"
    temporary.mkdir(exist_ok=True)
    port = free_port()
    env = clean_env(
        EDGE_STORAGE=str(root),
        EDGE_ACCESS_LOG="off",
        EDGE_METRICS=metrics,
        TMPDIR=str(temporary),
        PYTHONPATH=str(WORKTREE),
    )
    args = ["serve", "--port", str(port), "--workers", "2"]
    with edge_process(args, env=env, cwd=tmp_path) as process:
        deadline = time.monotonic() + 30
        while len(running(temporary)) < 2:  # each worker publishes once started
            assert process.poll() is None, (tmp_path / "edge.log").read_text()
            assert time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.1)
        (folder,) = temporary.glob("edge-metrics-*")
        yield process, f"http://127.0.0.1:{port}", folder


def running(temporary: Path) -> list[Path]:
    return [path for path in temporary.glob("edge-metrics-*/worker-*.json") if _running(path)]


def send(base: str, count: int) -> None:
    """``count`` image requests, each on a connection of its own, eight at a time."""

    def one(_: int) -> int:
        return httpx.get(base + IMAGE, timeout=10, verify=TLS).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(one, range(count))) == {200}


def served_by_each(folder: Path) -> list[float]:
    """Image requests in each running worker's last published counts."""
    counts = []
    for path in sorted(folder.glob("worker-*.json")):
        if _running(path):
            families = orjson.loads(path.read_bytes())["families"]
            rows = next(rows for name, *_, rows in families if name == "edge_requests")
            counts.append(sum(v for _, labels, v in rows if labels["outcome"] == "public"))
    return counts


def scrape_until(url: str, public: float, *, scrapes: int | None = 0) -> int:
    """Scrape until the totals are ``public`` image requests and, unless ``scrapes`` is None
    (a metrics port's scrapes are not requests), one ``other`` per scrape made so far
    (``scrapes`` before this call); never more. Returns the scrapes made so far."""
    deadline = time.monotonic() + 10
    while True:
        response = httpx.get(url, timeout=10, verify=TLS)
        assert response.status_code == 200
        totals = requests_by_outcome(response.text)
        expected = {"public": public, **({} if scrapes is None else {"other": float(scrapes)})}
        got = {outcome: totals.get(outcome, 0.0) for outcome in expected}
        assert set(totals) <= set(expected), totals
        assert all(got[o] <= expected[o] for o in expected), (got, expected)  # never more
        scrapes = None if scrapes is None else scrapes + 1
        if got == expected:
            return scrapes or 0
        assert time.monotonic() < deadline, (got, expected)
        time.sleep(0.2)


def stop_and_check_clean(process: subprocess.Popen[bytes], tmp_path: Path) -> None:
    stop(process, how=signal.SIGTERM)
    assert process.returncode == 0, (tmp_path / "edge.log").read_text()
    assert list((tmp_path / "tmp").iterdir()) == []  # the folder is gone with edge serve


def test_every_worker_answers_with_the_total(tmp_path: Path) -> None:
    with two_workers(tmp_path) as (process, base, folder):
        send(base, 200)
        scrapes = scrape_until(base + "/metrics", 200)
        each = served_by_each(folder)
        assert len(each) == 2 and min(each) > 0 and sum(each) == 200, each  # both served
        # Whichever worker answers, the same total; the scrapes (counted as "other") answered
        # by the other worker within its last second may not be in yet, but never go back.
        seen = scrapes - 1.0
        for _ in range(10):
            scrape = httpx.get(base + "/metrics", timeout=10, verify=TLS)
            totals = requests_by_outcome(scrape.text)
            assert totals["public"] == 200
            assert seen <= totals["other"] <= scrapes
            seen, scrapes = totals["other"], scrapes + 1

        # uvicorn restarts every worker on SIGHUP: the new ones go on from the old totals.
        old = set(folder.glob("worker-*.json"))
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while len(set(running(tmp_path / "tmp")) - old) < 2:
            assert time.monotonic() < deadline, "the workers were not restarted"
            time.sleep(0.1)
        send(base, 20)
        scrape_until(base + "/metrics", 220, scrapes=scrapes)
        assert len(list(folder.glob("worker-*.json"))) <= 4  # stopped workers are folded
        stop_and_check_clean(process, tmp_path)

    with two_workers(tmp_path) as (process, base, _):  # a new run starts from zero
        send(base, 10)
        scrape_until(base + "/metrics", 10)
        stop_and_check_clean(process, tmp_path)


def test_a_metrics_port_is_listened_on_once_for_every_worker(tmp_path: Path) -> None:
    listener = free_port()
    with two_workers(tmp_path, metrics=str(listener)) as (process, base, folder):
        send(base, 200)
        scrape_until(f"http://127.0.0.1:{listener}/metrics", 200, scrapes=None)
        each = served_by_each(folder)
        assert len(each) == 2 and min(each) > 0 and sum(each) == 200, each
        assert process.poll() is None and len(running(tmp_path / "tmp")) == 2
        stop_and_check_clean(process, tmp_path)
    with two_workers(tmp_path, metrics=str(listener)) as (process, base, _):
        send(base, 10)
        scrape_until(f"http://127.0.0.1:{listener}/metrics", 10, scrapes=None)
        stop_and_check_clean(process, tmp_path)


def test_merge_adds_counters_and_running_workers_gauges() -> None:
    def registry(requests: float, in_flight: float) -> CollectorRegistry:
        made = CollectorRegistry()
        Counter("done", "d", ["kind"], registry=made).labels("a").inc(requests)
        Gauge("busy", "b", registry=made).set(in_flight)
        return made

    one, two = snapshot(registry(2, 1).collect()), snapshot(registry(3, 5).collect())
    merged = {s.name: s.value for f in merge([(True, one), (False, two)]) for s in f.samples}
    assert merged["done_total"] == 5 and merged["busy"] == 1
    created = [v for n, _, v in one[0][4] + two[0][4] if n == "done_created"]
    assert merged["done_created"] == min(created)


def test_a_gone_worker_is_folded_and_its_counts_kept(tmp_path: Path) -> None:
    made = CollectorRegistry()
    Counter("done", "d", registry=made).inc(7)
    Gauge("busy", "b", registry=made).set(3)
    gone = {"live": True, "families": snapshot(made.collect())}  # crashed: no lock held
    (tmp_path / "worker-1.json").write_bytes(orjson.dumps(gone))
    (tmp_path / "worker-1.lock").touch()
    collector = SharedCollector(tmp_path)
    totals = {s.name: s.value for f in collector.collect() for s in f.samples}
    assert totals["done_total"] == 7 and "busy" not in totals

    mine = CollectorRegistry()
    Counter("done", "d", registry=mine).inc(1)
    publisher = Publisher(tmp_path, mine)  # a new worker folds the gone one
    assert not (tmp_path / "worker-1.json").exists()
    assert (tmp_path / "retired.json").exists()
    totals = {s.name: s.value for f in collector.collect() for s in f.samples}
    assert totals["done_total"] == 8
    publisher.close()
    totals = {s.name: s.value for f in collector.collect() for s in f.samples}
    assert totals["done_total"] == 8


def test_edge_serve_shares_only_with_several_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    for metrics, workers in (("local", 1), (9100, 1), ("off", 2)):
        with shared_folder(metrics, workers) as folder:
            assert folder is None and FOLDER_VARIABLE not in os.environ
    abandoned = tmp_path / "edge-metrics-999999999-x"  # left by an edge serve that was killed
    abandoned.mkdir()
    with shared_folder("local", 2) as folder:
        assert folder is not None and folder.parent == tmp_path
        assert os.environ[FOLDER_VARIABLE] == str(folder)
        assert not abandoned.exists()
    assert FOLDER_VARIABLE not in os.environ and list(tmp_path.iterdir()) == []


def test_readiness_is_the_lowest_of_the_running_workers() -> None:
    def registry(ready: float) -> CollectorRegistry:
        made = CollectorRegistry()
        Gauge("edge_ready", "r", registry=made).set(ready)
        return made

    ready, not_ready = snapshot(registry(1).collect()), snapshot(registry(0).collect())
    merged = {s.name: s.value for f in merge([(True, ready), (True, ready)]) for s in f.samples}
    assert merged["edge_ready"] == 1, "two ready workers: ready, not 2"
    merged = {s.name: s.value for f in merge([(True, ready), (True, not_ready)]) for s in f.samples}
    assert merged["edge_ready"] == 0
