"""edge.observe: each finished request becomes a metrics update and an access-log line;
durations in milliseconds to the microsecond, lines' text kept per kind of request (bounded),
metrics rows the same with the log on or off."""

from __future__ import annotations

import os
from typing import Any

import pytest

from edge.accesslog import AccessLog
from edge.metrics import Metrics
from edge.observe import Observer
from edge.record import Record, with_reason
from tests.support.clock import Clock
from tests.support.records import answered, public_hit, queued


def timed(clock: Clock, observer: Observer, scope: dict[str, Any], seconds: float) -> None:
    """A request that takes ``seconds`` by ``clock``, from its start to its finish."""
    record = observer.start()
    clock.now += seconds
    observer.finish(scope, record)


def test_durations_are_milliseconds_to_the_microsecond(monkeypatch: pytest.MonkeyPatch) -> None:
    log = AccessLog(os.open(os.devnull, os.O_WRONLY))
    log.close()
    clock = Clock()
    observer = Observer(metrics=None, log=log, clock=clock)
    taken = [0.0, 0.0000004, 0.000123, 0.0015, 0.000123, 1.2345678, 12.3456789, 0.000123]
    for seconds in taken:
        timed(clock, observer, public_hit(1)[0], seconds)
    assert [record["duration_ms"] for record in queued(log)] == [
        0.0,
        0.0,
        0.123,
        1.5,
        0.123,
        1234.567,
        12345.678,
        0.123,
    ]
    assert [line.split(b",", 1)[0] for line in log.lines][2:4] == [b"0.123", b"1.5"], "shortest"


def test_remembered_lines_stay_per_request_and_bounded() -> None:
    """A line's text is reused only for the same facts (here: path and query, client, status);
    the memo is bounded in entries, and long paths and queries are never kept."""
    log = AccessLog(os.open(os.devnull, os.O_WRONLY))
    log.close()
    observer = Observer(metrics=None, log=log)
    observer.kinds.max_entries = 3

    def logged(raw_path: bytes, query: bytes, client: str = "10.0.0.1", status: int = 200) -> Any:
        exchange = answered(Record(0.0), status, 5, "-", "hit")
        scope = {
            "client": (client, 1),
            "method": "GET",
            "raw_path": raw_path,
            "query_string": query,
            "headers": [],
        }
        observer.finish(scope, exchange)
        return queued(log)[-1]

    for round_ in range(2):  # the second round reads from the memo, or refills it
        for number in range(5):
            raw = b"/i/a/%d.png" % number
            assert logged(raw, b"")["path"] == raw.decode()
            assert logged(raw, b"sig=s%d&exp=1" % number)["path"] == (
                raw.decode() + "?sig=[redacted]&exp=1"
            )
            assert logged(raw, b"exp=2&sig=t")["path"] == raw.decode() + "?exp=2&sig=[redacted]"
            assert logged(raw, b"", client=f"10.0.0.{round_}")["client"] == f"10.0.0.{round_}"
            assert logged(raw, b"", status=304 + round_)["status"] == 304 + round_
    assert len(observer.kinds) <= 3
    observer.kinds.clear()
    long_query = b"sig=s&pad=" + b"x" * 2000
    assert logged(b"/i/a/long.png", long_query)["path"].endswith("sig=[redacted]&pad=" + "x" * 2000)
    assert observer.kinds == {}, "a long (path, query) is formatted each time, never kept"


def test_refusals_of_one_url_for_two_reasons_keep_their_own_lines() -> None:
    """The same URL refused the same way for another reason (a preset first unknown, then
    written malformed) is another kind of line: the memo never hands out the first reason.
    Metrics rows do not split by reason."""
    log = AccessLog(os.open(os.devnull, os.O_WRONLY))
    log.close()
    metrics = Metrics()
    observer = Observer(metrics=metrics, log=log)
    scope = {**public_hit(1)[0], "query_string": b"p:thumb"}
    for reason in ("preset_unknown", "preset_malformed", "preset_unknown", "-"):
        outcome = with_reason("bad_request", reason)
        observer.finish(scope, answered(observer.start(), 400, 86, outcome, "-"))
    lines = queued(log)
    assert [line.get("reason") for line in lines] == [
        "preset_unknown",
        "preset_malformed",
        "preset_unknown",
        None,  # a line without a reason has no such field
    ]
    assert {line["outcome"] for line in lines} == {"bad_request"}
    assert len(observer.kinds) == 3
    (family,) = [f for f in metrics.registry.collect() if f.name == "edge_requests"]
    assert [(s.labels, s.value) for s in family.samples if s.name == "edge_requests_total"] == [
        ({"outcome": "bad_request", "status": "400"}, 4.0)
    ]


def test_metrics_are_the_same_with_the_log_on_or_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the log on, metrics rows are found through the log's memo: same counts."""
    clock = Clock()
    seen = []
    for log in (None, AccessLog(os.open(os.devnull, os.O_WRONLY))):
        metrics = Metrics()
        observer = Observer(metrics=metrics, log=log, clock=clock)
        clock.now = 0.0
        for number, (seconds, status) in enumerate([(0.0004, 200), (0.03, 200), (2.0, 404)] * 3):
            scope, _ = public_hit(number % 2)
            exchange = answered(observer.start(), status, number, "public", "hit")
            clock.now += seconds
            observer.finish(scope, exchange)
        seen.append({key: list(row) for key, row in metrics.stats.rows.items()})
        assert metrics.stats.in_flight == 0
        if log is not None:
            log.close()
    assert seen[0] == seen[1] and len(seen[0]) == 2
