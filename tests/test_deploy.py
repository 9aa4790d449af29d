"""Deployment files, checked statically: their commands are real, their probes real endpoints."""

from __future__ import annotations

import json
import re
from pathlib import Path

from edge.cli import build_parser

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


def test_systemd_unit_runs_a_real_command() -> None:
    text = (DEPLOY / "edge.service").read_text()
    (line,) = re.findall(r"^ExecStart=(.*)$", text, re.MULTILINE)
    args = build_parser().parse_args(edge_args(line.split()))
    assert args.run.__name__ == "run_serve" and args.workers == 2
