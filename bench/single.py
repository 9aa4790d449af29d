"""The single-URL scenarios: each one URL asked for again and again, by edge and by the
baselines (the bare ASGI app, a Starlette route, nginx), every server one process on the
server core. Every memo of edge's hits on them: :mod:`bench.realistic` is the other view.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

from bench.measure import SERVER_CORE, Scenario, Servers
from bench.world import (
    PRIVATE,
    PUBLIC,
    World,
    edge_argv,
    free_port,
    headers_for_baseline,
    uvicorn_argv,
    wait_ready,
)

NGINX_SECRET = "bench-secure-link-secret"  # test data, not a secret
BARE = "bare ASGI app (ceiling)"


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
    md5 = base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
    return f"{path}?md5={md5}&expires={expires}"


def start_servers(world: World) -> Servers:
    """Every server of the single-URL scenarios, pinned to the server core."""
    servers: Servers = {}
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


def tamper(url: str) -> str:
    """The same signed URL with its signature's first character changed."""
    at = url.index("sig=") + 4
    return url[:at] + ("B" if url[at] == "A" else "A") + url[at + 1 :]


def edge_scenarios(world: World) -> list[Scenario]:
    """The bare app first (every scenario's bracket), then edge's single-URL scenarios."""
    signed = world.signed()
    return [
        Scenario(BARE, "bare", PUBLIC, 200, baseline=True),
        Scenario("edge: public hit", "edge", PUBLIC, 200),
        Scenario("edge: private signed hit", "edge", signed, 200),
        Scenario("edge: bad signature", "edge", tamper(signed), 403),
        Scenario("edge: expired", "edge", world.signed(exp=int(time.time()) - 60), 403),
        Scenario("edge: not found", "edge", "/i/alice/missing.png", 404),
    ]


def baseline_scenarios(world: World, servers: Servers) -> list[Scenario]:
    """What edge is set against: a Starlette route, nginx (when installed)."""
    signed = world.signed()
    found = [
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
