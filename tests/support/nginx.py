"""Run real nginx with a config from deploy/nginx/, its ports, paths and upstreams rewritten:
its logs are written into the test's folder, at the levels and in the formats shipped."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx

from tests.support.client import TLS
from tests.support.servers import free_port

DEPLOY_NGINX = Path(__file__).parent.parent.parent / "deploy" / "nginx"
#: Where nginx writes before it has read its config (its -e option).
STARTUP_LOG = "startup-error.log"


def nginx_binary() -> str:
    found = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(found).exists(), "nginx is missing: .ci/run installs nginx-light"
    return found


def adapt(
    config: str, *, workdir: Path, listen: int, upstreams: list[str], root: Path | None = None
) -> str:
    """The shipped config, pointed at this test's ports and folders."""
    config = re.sub(r"^pid .*;$", f"pid {workdir}/nginx.pid;", config, flags=re.MULTILINE)
    # Every log where it was, in the test's folder instead (compose's streams as files).
    config = config.replace(" /var/log/nginx/", f" {workdir}/")
    config = config.replace("error_log /dev/stderr ", f"error_log {workdir}/stderr.log ")
    config = config.replace("access_log /dev/stdout ", f"access_log {workdir}/stdout.log ")
    config = config.replace("listen 8000;", f"listen 127.0.0.1:{listen};")
    config = config.replace("/var/cache/nginx/edge", str(workdir / "cache"))
    if root is not None:
        config = config.replace("root /srv/images;", f"root {root};")
    servers = re.findall(r"^\s*server 127\.0\.0\.1:\d+[^;]*;$", config, flags=re.MULTILINE)
    assert servers, "the config names its upstream edges"
    options = re.sub(r"^\s*server 127\.0\.0\.1:\d+", "", servers[0]).rstrip(";")
    block = "\n".join(f"        server {address}{options};" for address in upstreams)
    for line in servers[1:]:
        config = config.replace(line + "\n", "")
    config = config.replace(servers[0], block)
    if os.geteuid() == 0:  # workers must read the test's private temp folders
        config = "user root;\n" + config
    return config


def logs(workdir: Path) -> str:
    """Every log nginx wrote in ``workdir``, for a failure's message."""
    return "\n".join(f"{log.name}: {log.read_text()}" for log in sorted(workdir.glob("*.log")))


def edit(config: str, edits: Sequence[tuple[str, str]]) -> str:
    """A test's own changes to a shipped config (a shorter timeout): each old text once."""
    for old, new in edits:
        assert config.count(old) == 1, f"the config has no single {old!r} to change"
        config = config.replace(old, new)
    return config


@contextlib.contextmanager
def run_nginx(
    name: str,
    workdir: Path,
    *,
    upstreams: list[str],
    root: Path | None = None,
    edits: Sequence[tuple[str, str]] = (),
) -> Iterator[str]:
    workdir.mkdir(parents=True, exist_ok=True)
    listen = free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(
        adapt(
            edit((DEPLOY_NGINX / name).read_text(), edits),
            workdir=workdir,
            listen=listen,
            upstreams=upstreams,
            root=root,
        )
    )
    nginx = nginx_binary()
    # -e: even what nginx says before it reads the config goes to the test's folder.
    startup = ["-p", str(workdir), "-e", str(workdir / STARTUP_LOG), "-c", str(conf)]
    check = subprocess.run(
        [nginx, "-t", *startup],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    process = subprocess.Popen(
        [nginx, *startup, "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{listen}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(base + "/nginx-ready-probe", timeout=1, verify=TLS)
                break
            except httpx.TransportError:
                assert process.poll() is None, logs(workdir)
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.05)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
