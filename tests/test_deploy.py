"""Deployment files, checked statically: their commands are real, their probes real endpoints."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge import errors
from edge.cli import build_parser
from edge.keys import generate
from edge.responses import error_body
from edge.server import RESERVED_FILES
from edge.settings import Settings, documented
from tests.support.nginx import adapt, nginx_binary

DEPLOY = Path(__file__).parent.parent / "deploy"
ENDPOINTS = ("/healthz", "/readyz")


def edge_args(command: list[str]) -> list[str]:
    assert Path(command[0]).name == "edge", command
    return command[1:]


def test_dockerfile_runs_a_real_command_with_a_real_healthcheck() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    (cmd,) = re.findall(r"^CMD (\[.*\])$", text, re.MULTILINE)
    args = build_parser().parse_args(edge_args(json.loads(cmd)))
    assert args.run.__name__ == "run_serve" and args.host == "0.0.0.0"  # noqa: S104 (a container)
    assert re.search(r"^USER 10001$", text, re.MULTILINE), "the image runs as non-root"
    health = re.search(r"HEALTHCHECK[^\n]*\\\n\s+CMD (\[.*\])", text)
    assert health is not None
    assert any(endpoint in health.group(1) for endpoint in ENDPOINTS)


def files_needed(env: dict[str, str]) -> int:
    """Open files an edge with these settings needs (edge.server.fit_open_files)."""
    settings = Settings.from_env({k: v for k, v in env.items() if k.startswith("EDGE_")})
    return settings.max_connections + settings.s3_max_connections + RESERVED_FILES


def test_systemd_unit_runs_a_real_command() -> None:
    text = (DEPLOY / "edge.service").read_text()
    (line,) = re.findall(r"^ExecStart=(.*)$", text, re.MULTILINE)
    args = build_parser().parse_args(edge_args(line.split()))
    assert args.run.__name__ == "run_serve" and args.workers == 2
    (limit,) = re.findall(r"^LimitNOFILE=(\d+)$", text, re.MULTILINE)
    assert int(limit) >= files_needed({}), "systemd's default 1024 cannot hold the connections"


# --- Kubernetes, compose and nginx ---------------------------------------------------

VARIABLES = {name for name, _ in documented()}


def manifests() -> dict[str, dict[str, Any]]:
    docs = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "edge.yaml").read_text()))
    return {doc["kind"]: doc for doc in docs}


def check_env(env: dict[str, str]) -> None:
    """Every EDGE_ variable exists, and its value is one the edge accepts."""
    edge_vars = {name: value for name, value in env.items() if name.startswith("EDGE_")}
    assert set(edge_vars) <= VARIABLES, set(edge_vars) - VARIABLES
    Settings.from_env(edge_vars)
    assert set(env) - set(edge_vars) <= {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def test_kubernetes_manifests() -> None:
    docs = manifests()
    assert set(docs) == {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
    deployment = docs["Deployment"]
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    (container,) = pod["spec"]["containers"]
    args = build_parser().parse_args(container["args"])
    assert args.run.__name__ == "run_serve"
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert ports["http"] == int(container["args"][container["args"].index("--port") + 1])
    plain = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    check_env(plain)
    Settings.from_env(plain).check_server(port=args.port, workers=args.workers)
    assert (
        int(plain["EDGE_METRICS"])
        == ports["metrics"]
        == int(pod["metadata"]["annotations"]["prometheus.io/port"])
    )
    (secret,) = [e for e in container["env"] if "valueFrom" in e]
    assert secret["name"] == "EDGE_SIGNING_KEYS" and "secretKeyRef" in secret["valueFrom"]
    assert pod["spec"]["terminationGracePeriodSeconds"] > float(plain["EDGE_SHUTDOWN_TIMEOUT"])
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
    assert pod["spec"]["securityContext"]["runAsUser"] == 10001  # the Dockerfile's user
    assert docs["Service"]["spec"]["selector"] == labels
    assert docs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == labels
    assert (
        docs["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"]
        == deployment["metadata"]["name"]
    )


def test_compose_file() -> None:
    compose = yaml.safe_load((DEPLOY / "compose" / "compose.yaml").read_text())
    services = compose["services"]
    assert {"edge1", "edge2", "minio", "nginx"} <= set(services)
    for name in ("edge1", "edge2"):
        service = services[name]
        assert (
            DEPLOY / "compose" / service["build"]["context"] / service["build"]["dockerfile"]
        ).exists()
        env = dict(service["environment"])
        assert env["EDGE_SIGNING_KEYS"].startswith(
            "${EDGE_SIGNING_KEYS:?"
        )  # required, never defaulted
        env["EDGE_SIGNING_KEYS"] = generate("hs256", "k")[0]
        check_env(env)
        assert service["ulimits"]["nofile"]["soft"] >= files_needed(env)
        assert (
            env["AWS_SECRET_ACCESS_KEY"] == services["minio"]["environment"]["MINIO_ROOT_PASSWORD"]
        )
    volume = services["nginx"]["volumes"][0].split(":")[0]
    assert (DEPLOY / "compose" / volume).exists()


def test_compose_nginx_config_is_the_proxy_config_with_service_names() -> None:
    proxy = (DEPLOY / "nginx" / "edge-proxy.conf").read_text()
    expected = proxy.replace("pid /run/nginx-edge-proxy.pid;", "pid /run/nginx.pid;")
    # The container's logs are its streams: nginx's messages on stderr, requests on stdout.
    expected = expected.replace(
        "error_log /var/log/nginx/edge-proxy-error.log ", "error_log /dev/stderr "
    )
    expected = expected.replace(
        "access_log /var/log/nginx/edge-proxy-access.log ", "access_log /dev/stdout "
    )
    expected = expected.replace("server 127.0.0.1:8080 ", "server edge1:8080 ").replace(
        "server 127.0.0.1:8081 ", "server edge2:8080 "
    )
    expected_body = expected.split("\n", 2)[2]
    assert (DEPLOY / "compose" / "nginx.conf").read_text().split("\n", 1)[1] == expected_body


@pytest.mark.parametrize(
    "config", ["nginx/edge-proxy.conf", "nginx/auth-request.conf", "compose/nginx.conf"]
)
def test_nginx_configs_pass_nginx_t(config: str, tmp_path: Path) -> None:
    text = (DEPLOY / config).read_text().replace("server edge1:8080", "server 127.0.0.1:8080")
    text = text.replace("server edge2:8080", "server 127.0.0.1:8081")
    adapted = adapt(
        text,
        workdir=tmp_path,
        listen=18000,
        upstreams=["127.0.0.1:8080", "127.0.0.1:8081"],
        root=tmp_path,
    )
    (tmp_path / "nginx.conf").write_text(adapted)
    done = subprocess.run(
        [nginx_binary(), "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr


# --- the proxy config's own bounds and answers ------------------------------------------

#: Every bound edge-proxy.conf sets on clients, on what a request may hold, and on edges.
PROXY_BOUNDS = (
    "client_header_timeout",
    "client_header_buffer_size",
    "large_client_header_buffers",
    "client_max_body_size",
    "client_body_buffer_size",
    "client_body_timeout",
    "keepalive_timeout",
    "keepalive_requests",
    "send_timeout",
    "reset_timedout_connection",
    "proxy_buffering",
    "proxy_buffer_size",
    "proxy_buffers",
    "proxy_busy_buffers_size",
    "proxy_max_temp_file_size",
    "proxy_temp_path",
    "max_size",
    "proxy_connect_timeout",
    "proxy_send_timeout",
    "proxy_read_timeout",
    "proxy_next_upstream_tries",
)


def test_proxy_config_bounds_are_set_and_explained() -> None:
    config = (DEPLOY / "nginx" / "edge-proxy.conf").read_text()
    guide = (DEPLOY.parent / "docs" / "deployment.md").read_text(encoding="utf-8")
    for bound in PROXY_BOUNDS:
        assert re.search(rf"(^|\s){bound}[ =]", config, re.MULTILINE), f"{bound} is not set"
        assert f"`{bound}" in guide, f"docs/deployment.md does not explain {bound}"


def test_proxy_config_answers_exactly_as_edge_does() -> None:
    """Each answer nginx makes itself is byte for byte one edge makes: same code, message
    and status; and every status nginx can produce is turned into one of them."""
    config = (DEPLOY / "nginx" / "edge-proxy.conf").read_text()
    every: list[type[errors.EdgeError]] = [errors.EdgeError, *errors.EdgeError.__subclasses__()]
    kinds = {kind.code: kind for kind in every}
    answers = re.findall(
        r"^\s*location = (/_edge_error/\w+) \{\n(?:.*\n)*?\s*return (\d+) '(.*)';$",
        config,
        re.MULTILINE,
    )
    assert len(answers) == 8
    for _, status, body in answers:
        code = json.loads(body)["error"]["code"]
        kind = kinds[code]
        assert body.encode() == error_body(kind.code, kind.message, kind.status)
        assert int(status) == kind.status
    pages = dict(re.findall(r"^\s*error_page ([\d ]+) =\d+ (\S+);$", config, re.MULTILINE))
    statuses = {int(s) for codes in pages for s in codes.split()}
    assert statuses == {400, 404, 405, 413, 414, 494, 500, 501, 502, 503, 504, 505}
    assert set(pages.values()) == {location for location, _, _ in answers}
