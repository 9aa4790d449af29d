"""What every benchmark serves: a folder with one public and one private 16 KiB image,
a keyring, and helpers to start servers pinned to a core and wait for them."""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edge.keys import parse_keyring
from edge.signing import sign_url

BODY_BYTES = 16 * 1024
KEYRING = "bench:hs256:" + "YmVuY2gtb25seS1rZXktbm90LWEtc2VjcmV0LTMyYnk"  # test data, not a secret
PUBLIC = "/i/alice/hit.png"
PRIVATE = "/i/alice/secret.png"


def body(seed: int = 1) -> bytes:
    """Fixed pseudo-random bytes: compressible bodies would flatter nothing, but be honest."""
    return random.Random(seed).randbytes(BODY_BYTES)


@dataclass
class World:
    root: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def images(self) -> Path:
        return self.root / "images"

    def build(self) -> World:
        for folder, name, seed in (("public", "hit.png", 1), ("private", "secret.png", 2)):
            target = self.images / folder / "alice" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(body(seed))
        return self

    def signed(self, path: str = PRIVATE, *, exp: int | None = None) -> str:
        return signer()(path, exp or int(time.time()) + 6 * 3600)

    def edge_env(self, **overrides: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGE_", "AWS_"))}
        env.update(EDGE_STORAGE=str(self.images), EDGE_SIGNING_KEYS=KEYRING, EDGE_METRICS="on")
        env.update(overrides)
        return env

    def start(
        self,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        core: int | None = None,
        stdout: int = subprocess.DEVNULL,
    ) -> subprocess.Popen[bytes]:
        if core is not None and shutil.which("taskset") and (os.cpu_count() or 1) > 1:
            argv = ["taskset", "-c", str(core), *argv]
        # stderr to a file, never a pipe nobody reads: a chatty server would block on it.
        with (self.root / f"server-{len(self.procs)}.log").open("wb") as log:
            proc = subprocess.Popen(argv, env=env, stdout=stdout, stderr=log, cwd=ROOT)
        proc.log = log.name  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def drained_pipe(self, core: int) -> int:
        """A pipe's write end whose reader is ``cat`` to /dev/null on ``core``: where a server's
        access log goes, as to a container runtime or journald. The caller closes the fd
        once the server holds it."""
        read_end, write_end = os.pipe()
        drain = ["cat"]
        if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
            drain = ["taskset", "-c", str(core), "cat"]
        self.procs.append(subprocess.Popen(drain, stdin=read_end, stdout=subprocess.DEVNULL))
        os.close(read_end)
        return write_end

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()


ROOT = Path(__file__).resolve().parent.parent


def signer(keyring: str = KEYRING) -> Callable[[str, int], str]:
    """``sign(path, exp)``: signed URLs (path and query) under the keyring's signing key."""
    key = parse_keyring(keyring).signing_key
    assert key is not None

    def sign(path: str, exp: int) -> str:
        return sign_url(path, key=key, exp=exp)

    return sign


def edge_argv(port: int) -> list[str]:
    return [sys.executable, "-m", "edge.cli", "serve", "--port", str(port)]


def uvicorn_argv(app: str, port: int) -> list[str]:
    """A baseline on the same server stack as edge (uvicorn, httptools, uvloop, one worker)."""
    return [
        sys.executable, "-m", "uvicorn", app, "--port", str(port), "--loop", "uvloop",
        "--http", "httptools", "--no-access-log", "--no-server-header", "--log-level", "warning",
    ]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(
    port: int, path: str, *, proc: subprocess.Popen[bytes] | None = None, timeout: float = 60
) -> dict[str, str]:
    """Poll until ``path`` answers 200; returns its headers (baselines copy edge's)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            stderr = Path(proc.log).read_text(errors="replace")  # type: ignore[attr-defined]
            raise SystemExit(f"server exited with {proc.returncode}: {stderr[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
                reply.read()
                return dict(reply.headers.items())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def headers_for_baseline(edge_headers: dict[str, str]) -> str:
    """Edge's response headers, minus the ones a server adds itself, as JSON for a baseline."""
    skip = {"date", "server", "content-length", "connection", "keep-alive"}
    return json.dumps([[k.lower(), v] for k, v in edge_headers.items() if k.lower() not in skip])
