"""deploy/grafana/edge.json and deploy/prometheus/alerts.yml read what edge really exports:
promtool checks and unit-tests the rules, the dashboard is sound Grafana JSON, and a real
Prometheus scraping a real edge (after real traffic: hits, misses, 403s, 404s, a storage
failure, a transform, overload refusals) finds every metric and label they name, evaluates
every rule without error, and answers every query of theirs with data."""

from __future__ import annotations

import asyncio
import json
import re
import select
import socket
import subprocess
import time
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from edge.samples import png
from tests.support.client import TLS
from tests.support.prometheus import PROMTOOL, Prometheus, start_prometheus, wait_for_scrapes
from tests.support.world import World

ROOT = Path(__file__).parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "edge.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERT_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yml"
JOB = "edge"  # the job name alerts.yml assumes
PNG = png(32, 32)
#: What Grafana puts in place of its variables before it sends a query.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$job": JOB, "$instance": ".*"}
#: Words of PromQL that are neither metrics nor functions.
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or"}
KEYWORDS |= {"unless", "bool", "offset", "inf", "nan"}
#: What the issue asks the dashboard to show, by the metrics that show it.
DASHBOARD_METRICS = {
    "edge_requests_total",  # request rate by outcome, error and overload shares
    "edge_request_duration_seconds_bucket",  # p50, p99
    "edge_cache_hits_total",  # hit ratio
    "edge_cache_misses_total",
    "edge_storage_request_duration_seconds_bucket",  # storage latency
    "edge_storage_errors_total",
    "edge_connections_rejected_total",  # overload refusals of connections
    "edge_requests_in_flight",
    "edge_transform_duration_seconds_count",  # transforms by format and outcome
    "edge_transform_duration_seconds_bucket",  # ...their p99
    "edge_ready",
}
ALERT_NAMES = {
    "EdgeErrorRatio",
    "EdgeLatencyP99",
    "EdgeStorageErrors",
    "EdgeOverloaded",
    "EdgeNotReady",
    "EdgeDown",
}


@cache
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def panels() -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    found: list[dict[str, Any]] = []
    for panel in dashboard()["panels"]:
        found += [panel, *panel.get("panels", [])]
    return found


def dashboard_queries() -> list[str]:
    return [target["expr"] for panel in panels() for target in panel.get("targets", [])]


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def grafana(expr: str) -> str:
    """The query Grafana sends: its variables replaced."""
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"a variable the test does not know: {expr}"
    return expr


def names(expr: str) -> tuple[dict[str, set[str]], set[str]]:
    """The metrics a PromQL expression reads (each with the labels its selectors match on),
    and the labels it aggregates or matches by."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # no string can look like a name
    text = re.sub(r"\[[^\]]*\]", "", text)  # nor a range
    metrics: dict[str, set[str]] = {}
    for name, matchers in re.findall(r"([A-Za-z_:][\w:]*)?\s*\{([^}]*)\}", text):
        assert name, f"a selector without a metric name: {expr}"
        metrics.setdefault(name, set()).update(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers))
    text = re.sub(r"\{[^}]*\}", "", text)
    grouping = r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)"
    labels = {label for group in re.findall(grouping, text) for label in re.findall(r"\w+", group)}
    text = re.sub(grouping, "", text)
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)(\s*\()?", text):
        if not match.group(2) and match.group(1) not in KEYWORDS:  # a function is called
            metrics.setdefault(match.group(1), set())
    return metrics, labels


def comparison_removed(expr: str) -> str:
    """An alert's expression without its final threshold: the value it compares."""
    bare = re.sub(r"\s*(?:>|<|>=|<=|==|!=)\s*[\d.]+\s*$", "", expr.strip())
    assert bare != expr.strip(), f"no threshold at the end of {expr}"
    return bare


def test_names_reads_promql() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (job, le) (rate(x_bucket{outcome=~"a|b{c}"}[5m])))'
        " / on (job) sum(rate(y_total[$__rate_interval]) or z) > 1"
    )
    assert names(expr) == ({"x_bucket": {"outcome"}, "y_total": set(), "z": set()}, {"job", "le"})


def test_alert_rules_pass_promtool() -> None:
    for command in (["check", "rules", str(ALERTS)], ["test", "rules", str(ALERT_TESTS)]):
        done = subprocess.run([PROMTOOL, *command], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
    assert {rule["alert"] for rule in alert_rules()} == ALERT_NAMES
    for rule in alert_rules():
        assert rule["labels"]["severity"] in {"page", "ticket"}, rule["alert"]
        assert rule["annotations"]["runbook"].startswith("docs/deployment.md#alerts: ")


def test_the_runbook_has_a_line_per_alert() -> None:
    guide = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    runbook = guide[guide.index("\n### Alerts\n") :]
    for name in ALERT_NAMES:
        assert f"**{name}**" in runbook, name


def test_the_dashboard_is_sound_grafana_json() -> None:
    board = dashboard()
    assert board["uid"] and board["title"] and isinstance(board["schemaVersion"], int)
    datasource = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    assert [i["name"] for i in board["__inputs"]] == ["DS_PROMETHEUS"]
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == datasource, variable["name"]
    used = {v for expr in dashboard_queries() for v in re.findall(r"\$(\w+)", expr)}
    assert used <= {*variables, "__rate_interval"}, used
    ids, cells = set(), set[tuple[int, int]]()
    for panel in panels():
        assert panel["id"] not in ids, panel["title"]
        ids.add(panel["id"])
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) for k in "hwxy"), panel["title"]
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] >= 0 and grid["x"] + grid["w"] <= 24
        mine = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine
        if panel["type"] == "row":
            continue
        assert panel["type"] in {"timeseries", "stat", "gauge", "bargauge", "table"}
        assert panel["title"] and panel["description"], panel["id"]
        assert panel["datasource"] == datasource, panel["title"]
        targets = panel["targets"]
        assert targets and len({t["refId"] for t in targets}) == len(targets), panel["title"]
        for target in targets:
            assert target["datasource"] == datasource and target["expr"].strip(), panel["title"]
    shown = {metric for expr in dashboard_queries() for metric in names(grafana(expr))[0]}
    assert shown >= DASHBOARD_METRICS, DASHBOARD_METRICS - shown


def traffic(world: World, base: str) -> None:
    """Every kind of answer the dashboard and the rules count, through real connections."""
    public = world.put("public", "alice", "photo.png", PNG)
    private = world.put("private", "alice", "secret.png", PNG)
    slow = [world.put("public", "alice", f"slow{n}.png", PNG) for n in range(3)]
    assert world.root is not None
    (world.root / "public" / "alice" / "loop.png").symlink_to("loop.png")  # open: ELOOP
    asked = {
        public: 200,  # a miss
        public + "?again": 200,  # a hit
        world.sign(private): 200,
        "/i/alice/missing.png": 404,
        world.sign(private, exp=int(time.time()) - 5): 403,
        public + "?sig=x&exp=1": 403,
        public + "?w=16": 200,  # a transform
        "/i/alice/loop.png": 502,  # a storage failure
        "/readyz": 200,
    }
    with httpx.Client(base_url=base, timeout=30, verify=TLS) as client:
        assert {path: client.get(path).status_code for path in asked} == asked

    # One storage read slot (EDGE_MAX_STORAGE_READS=1), slow storage: two of three are refused.
    assert world.counting is not None
    world.counting.delay = 0.5

    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=base, timeout=30, verify=TLS) as client:
            answers = await asyncio.gather(*(client.get(path) for path in slow))
        return sorted(answer.status_code for answer in answers)

    assert asyncio.run(burst()) == [200, 503, 503]
    world.counting.delay = 0.0

    # EDGE_MAX_CONNECTIONS=4: of eight idle connections, the fifth on is answered 503 and closed.
    address = urlsplit(base)
    connections = [socket.create_connection((address.hostname, address.port)) for _ in range(8)]
    try:
        readable, _, _ = select.select(connections, [], [], 5)
        assert readable and readable[0].recv(100).startswith(b"HTTP/1.1 503 ")
    finally:
        for connection in connections:
            connection.close()


def rules_evaluated(prometheus: Prometheus) -> list[dict[str, Any]]:
    """The rules as Prometheus runs them, once each has been evaluated (bounded wait)."""
    deadline = time.monotonic() + 20
    while True:
        groups = prometheus.api("rules")["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        if rules and all(rule["health"] != "unknown" for rule in rules):
            return rules
        assert time.monotonic() < deadline, rules
        time.sleep(0.2)


@pytest.mark.parametrize("world", ["file"], indirect=True)
def test_a_real_prometheus_scraping_a_real_edge_reads_every_query(world: World) -> None:
    base = world.serve(
        EDGE_MAX_STORAGE_READS="1", EDGE_QUEUE_TIMEOUT="0.05", EDGE_MAX_CONNECTIONS="4"
    )
    traffic(world, base)
    target = urlsplit(base).netloc
    with start_prometheus(JOB, [target], rule_files=[ALERTS]) as prometheus:
        wait_for_scrapes(prometheus, JOB, 2)  # rate() needs two
        rules = rules_evaluated(prometheus)
        exported = set(prometheus.api("label/__name__/values"))

        # Prometheus loaded alerts.yml and evaluates every rule without error.
        assert {rule["name"] for rule in rules} == ALERT_NAMES
        for rule in rules:
            assert rule["health"] == "ok" and not rule.get("lastError"), rule

        label_names: dict[str, set[str]] = {}

        def labels_of(metric: str) -> set[str]:
            if metric not in label_names:
                series = prometheus.api("series", **{"match[]": metric})
                label_names[metric] = {label for one in series for label in one}
            return label_names[metric]

        queries = [grafana(expr) for expr in dashboard_queries()]
        queries += [comparison_removed(rule["expr"]) for rule in alert_rules()]
        for query in [*queries, *(rule["expr"] for rule in alert_rules())]:
            metrics, grouping = names(query)
            for metric, matched in metrics.items():
                assert metric in exported, f"{metric} is not in the scrape ({query})"
                missing = matched - labels_of(metric)
                assert not missing, f"{metric} has no {missing} ({query})"
            have = set().union(*(labels_of(metric) for metric in metrics))
            assert grouping <= have, f"no metric of {query} has {grouping - have}"
            prometheus.query(query)  # evaluates without error
        for query in queries:  # and, thresholds apart, finds what it reads
            assert prometheus.query(query), f"no data: {query}"
        assert prometheus.query('edge_ready{job="edge"}')[0]["value"][1] == "1"

        # The template variables' queries (Grafana's label_values) name real series and labels.
        for variable in dashboard()["templating"]["list"]:
            if variable["type"] == "query":
                found = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]["query"])
                assert found, variable["name"]
                series = prometheus.api("series", **{"match[]": grafana(found.group(1))})
                assert series and all(found.group(2) in one for one in series), variable["name"]
