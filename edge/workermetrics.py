"""Metrics that add up across the processes of ``edge serve --workers N``.

Each worker keeps counting as one process does (:mod:`edge.metrics`: plain numbers
on the event loop, nothing shared, so a request costs the same with one worker or
many). What is shared is a snapshot: every :data:`PUBLISH_SECONDS`, before it
answers a scrape, and when it stops, a worker writes its whole registry (request
rows, storage and transform histograms, gauges) as one small JSON file,
``worker-{pid}.json``, into a private folder that ``edge serve`` made for this run
(:func:`shared_folder`, named by :data:`FOLDER_VARIABLE` in the workers'
environment). A scrape sums every worker's file: counters and histograms add up,
gauges add up over the workers still running (``edge_requests_in_flight``, the hot
caches' bytes and entries), ``_created`` is the earliest.

- **Any worker answers with the total**: it publishes its own file, then reads all
  of them, so what one scrape showed is on disk for the next, whichever worker
  answers it. The other workers' counts are at most :data:`PUBLISH_SECONDS` old.
- **A metrics port** (``EDGE_METRICS=9100``) is listened on once, by ``edge serve``
  itself (the supervisor), which reads the same files; the workers do not bind it.
- **A worker that is gone** (stopped by uvicorn, crashed, restarted after
  ``SIGHUP``) no longer holds the lock on its ``worker-{pid}.lock``; its gauges
  stop counting at once, and the next worker to start folds its counters into
  ``retired.json``, so totals never go down and the folder holds the running
  workers' files, those of workers stopped since the last start, and one more.
- Readers and the fold take a lock on the folder (shared and exclusive), so a
  scrape never sees a worker's counts twice or not at all. Files are replaced by
  rename, never written in place.
- ``edge serve`` removes the folder when it stops; a folder left by one that was
  killed is removed by the next one started by the same user.

A crashed worker loses at most its last :data:`PUBLISH_SECONDS` of counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson
from prometheus_client import CollectorRegistry, Metric, start_http_server
from prometheus_client.registry import Collector

#: The variable ``edge serve`` sets for its workers: the folder they publish into.
FOLDER_VARIABLE = "EDGE_WORKER_METRICS_DIR"
#: How often a worker publishes its counts (also before each scrape it answers, and at exit).
PUBLISH_SECONDS = 1.0
_PREFIX = "edge-metrics-"
_RETIRED = "retired.json"
_FOLDER_LOCK = ".lock"

#: One family as written: name, type, help, unit, then (sample name, labels, value) rows.
Snapshot = list[tuple[str, str, str, str, list[tuple[str, dict[str, str], float]]]]


#: Gauges that are a verdict, not an amount: the lowest of the running workers' (one worker
#: that cannot reach storage makes the whole server not ready).
LOWEST = frozenset({"edge_ready"})


def snapshot(families: Iterable[Metric]) -> Snapshot:
    return [
        (f.name, f.type, f.documentation, f.unit, [(s.name, s.labels, s.value) for s in f.samples])
        for f in families
    ]


def merge(sources: Iterable[tuple[bool, Snapshot]]) -> list[Metric]:
    """Sum snapshots: ``(live, snapshot)`` pairs; the gauges of a source not live are left
    out. Samples keep the order they were first seen in (a histogram's buckets stay in order)."""
    families: dict[str, Metric] = {}
    sums: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for live, families_of_source in sources:
        for name, kind, documentation, unit, samples in families_of_source:
            if kind == "gauge" and not live:
                continue
            if name not in families:
                families[name] = Metric(name, documentation, kind, unit)
            values = sums.setdefault(name, {})
            for sample, labels, value in samples:
                key = (sample, tuple(labels.items()))
                if sample.endswith("_created") or name in LOWEST:
                    values[key] = min(values.get(key, value), value)
                else:
                    values[key] = values.get(key, 0.0) + value
    for name, family in families.items():
        for (sample, pairs), value in sums[name].items():
            family.add_sample(sample, dict(pairs), value)
    return list(families.values())


class SharedCollector(Collector):
    """Every worker's published counts, summed; ``before`` runs first (a worker publishes
    its own)."""

    def __init__(self, folder: Path, before: Callable[[], None] | None = None) -> None:
        self.folder = folder
        self.before = before

    def describe(self) -> list[Metric]:
        return []  # nothing to read at registration: the families are the workers'

    def collect(self) -> Iterator[Metric]:
        if self.before is not None:
            self.before()
        with _locked(self.folder, fcntl.LOCK_SH):
            sources = [(_running(path), _read(path)) for path in self._files()]
        yield from merge(sources)

    def _files(self) -> list[Path]:
        return [self.folder / _RETIRED, *sorted(self.folder.glob("worker-*.json"))]


class Publisher:
    """One worker's side: holds its lock for its life, writes its snapshot on a timer."""

    def __init__(self, folder: Path, registry: CollectorRegistry) -> None:
        self.folder, self.registry = folder, registry
        pid = os.getpid()
        self.path = folder / f"worker-{pid}.json"
        self._timer: asyncio.TimerHandle | None = None
        with _locked(folder, fcntl.LOCK_EX):
            _fold_stopped(folder)
            self._lock: IO[bytes] | None = (folder / f"worker-{pid}.lock").open("wb")
            fcntl.flock(self._lock, fcntl.LOCK_EX)
            self.publish()

    def publish(self, *, live: bool = True) -> None:
        data = {"live": live, "families": snapshot(self.registry.collect())}
        temporary = self.path.with_suffix(".tmp")
        temporary.write_bytes(orjson.dumps(data))
        os.replace(temporary, self.path)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        def tick() -> None:
            self.publish()
            self._timer = loop.call_later(PUBLISH_SECONDS, tick)

        self._timer = loop.call_later(PUBLISH_SECONDS, tick)

    def close(self) -> None:
        """The last counts, gauges marked as no longer running; the lock let go."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._lock is None:
            return
        with contextlib.suppress(OSError):  # the folder may be gone with edge serve
            self.publish(live=False)
        self._lock.close()
        self._lock = None


@contextlib.contextmanager
def shared_folder(metrics: object, workers: int) -> Iterator[Path | None]:
    """What ``edge serve`` does around its workers: a fresh private folder named in their
    environment, a metrics port's listener if ``metrics`` is one, and, once they have
    stopped, the folder removed. Nothing with one worker, or metrics off."""
    if workers <= 1 or metrics == "off":
        os.environ.pop(FOLDER_VARIABLE, None)  # only ever set by edge serve, for its workers
        yield None
        return
    _remove_abandoned()
    folder = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-"))
    os.environ[FOLDER_VARIABLE] = str(folder)
    server = None
    try:
        if isinstance(metrics, int):
            registry = CollectorRegistry()
            registry.register(SharedCollector(folder))
            server, _ = start_http_server(metrics, registry=registry)
        yield folder
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        os.environ.pop(FOLDER_VARIABLE, None)
        shutil.rmtree(folder, ignore_errors=True)


def worker_folder() -> Path | None:
    """The folder this worker publishes into, if ``edge serve`` runs several."""
    folder = os.environ.get(FOLDER_VARIABLE)
    return Path(folder) if folder else None


@contextlib.contextmanager
def _locked(folder: Path, how: int) -> Iterator[None]:
    with (folder / _FOLDER_LOCK).open("ab") as lock:
        fcntl.flock(lock, how)
        yield  # closing the file lets the lock go


def _read(path: Path) -> Snapshot:
    try:
        data: dict[str, Any] = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):  # no retired counts yet, or a torn folder
        return []
    return [
        (n, k, d, u, [(s, ls, v) for s, ls, v in rows]) for n, k, d, u, rows in data["families"]
    ]


def _running(path: Path) -> bool:
    """Whether the worker that wrote ``path`` still runs: it holds its lock file while it does
    (the kernel lets the lock go when a process ends, however it ends)."""
    if path.name == _RETIRED:
        return False
    try:
        with path.with_suffix(".lock").open("rb") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
    except FileNotFoundError:
        pass
    return False


def _fold_stopped(folder: Path) -> None:
    """Fold the counters of workers that are gone into ``retired.json`` (the folder's lock
    held exclusively): a restarted worker's files do not pile up."""
    stopped = [p for p in sorted(folder.glob("worker-*.json")) if not _running(p)]
    if not stopped:
        return
    retired = folder / _RETIRED
    merged = merge((False, _read(path)) for path in [retired, *stopped])
    temporary = retired.with_suffix(".tmp")
    temporary.write_bytes(orjson.dumps({"live": False, "families": snapshot(merged)}))
    os.replace(temporary, retired)
    for path in stopped:
        path.unlink(missing_ok=True)
        path.with_suffix(".lock").unlink(missing_ok=True)


def _remove_abandoned() -> None:
    """Remove the folders of ``edge serve`` processes of this user that are gone (killed
    before they could remove their own)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{_PREFIX}*-*"):
        pid = folder.name.removeprefix(_PREFIX).partition("-")[0]
        try:
            if not pid.isdigit() or folder.stat().st_uid != os.getuid():
                continue
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except OSError:  # another user's process, or the folder went meanwhile
            continue
