"""The docs' commands, run as a reader types them: the ``$ `` lines of a ```` ```console ````
block, in order, by bash, in a folder of their own that holds the repository's files and
its ``.venv``.

What a run changes, and nothing else:

- the ports the docs name (8000, 8080, 8081) become free ones, so that runs never meet
  a server already on the machine; ``edits`` may shorten a duration (each old text must
  appear exactly once);
- after a line that ends in ``&`` (a server started in the background), the next line
  waits until something listens on that line's ``--port``, as a reader sees the server
  start before typing on;
- if the suite runs as root, the commands that start with one of ``not_root`` (the ones
  whose point is to need no root, such as deploy/nginx/try.sh) run as ``nobody``
  (``setpriv``), in a folder ``nobody`` may write. Only those: the suite's Python may
  sit where ``nobody`` cannot reach it (under /root).

A run ends when the last line is done; servers still running are then stopped (the
process group), and so is any nginx whose pid file the run left in its folder.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.servers import free_port

ROOT = Path(__file__).parent.parent.parent
#: The ports the docs use: nginx's, and two edges'.
DOC_PORTS = (8000, 8080, 8081)
#: ``nobody``: who runs the commands when the suite itself runs as root.
NOBODY = 65534
#: Written by the run when its last command is done, after the variables it exported.
DONE, EXPORTED = ".console-done", ".console-env"


def console_block(path: Path, heading: str) -> str:
    """The first ```` ```console ```` block after the Markdown heading whose text is
    ``heading`` (any level)."""
    text = path.read_text(encoding="utf-8")
    found = re.search(rf"^#+ {re.escape(heading)}\n", text, re.MULTILINE)
    assert found, f"{path.name} has no heading {heading!r}"
    block = re.search(r"^```console\n(.*?)^```", text[found.end() :], re.MULTILINE | re.DOTALL)
    assert block, f"{path.name}: no console block after {heading!r}"
    return block.group(1)


def console_blocks(path: Path, *, section: str | None = None) -> list[str]:
    """Every ```` ```console ```` block of a Markdown file, or of its ``section`` (the
    heading of that text, down to the next heading of the same level or above)."""
    text = path.read_text(encoding="utf-8")
    if section is not None:
        found = re.search(rf"^(#+) {re.escape(section)}\n", text, re.MULTILINE)
        assert found, f"{path.name} has no heading {section!r}"
        text = text[found.end() :]
        end = re.search(rf"^#{{1,{len(found.group(1))}}} ", text, re.MULTILINE)
        text = text[: end.start()] if end else text
    return re.findall(r"^```console\n(.*?)^```", text, re.MULTILINE | re.DOTALL)


def outputs(block: str) -> list[str]:
    """A console block's output lines: every non-empty line that is not a command."""
    return [line for line in block.splitlines() if line.strip() and not line.startswith("$ ")]


def commands(block: str) -> list[str]:
    """A console block's commands: its ``$ `` lines (a trailing ``\\`` joins the next
    line); every other line is output."""
    found: list[str] = []
    lines = iter(block.splitlines())
    for line in lines:
        if not line.startswith("$ "):
            continue
        command = line[2:]
        while command.endswith("\\"):
            command = command[:-1] + next(lines)
        found.append(command)
    assert found, f"no command in {block!r}"
    return found


@dataclass(frozen=True)
class Run:
    """A finished run: its folder (the commands' working folder), all they printed, the
    free port that stands for each port the docs name, and the environment they left
    (what they exported)."""

    folder: Path
    output: str
    ports: Mapping[int, int]
    env: Mapping[str, str]


def as_a_user() -> str:
    """The prefix that runs a command as someone who is not root (nothing, if not root)."""
    if os.geteuid() != 0:
        return ""
    return f"setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups "


@contextlib.contextmanager
def recipe_folder() -> Iterator[Path]:
    """A fresh folder with the repository's tracked files (linked) and its ``.venv`` (the
    one running the tests), writable by whoever runs the commands; removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="edge-recipe-"))
    try:
        tracked = subprocess.run(
            ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.split()
        for name in sorted({path.split("/", 1)[0] for path in tracked}):
            (folder / name).symlink_to(ROOT / name)
        (folder / ".venv").symlink_to(Path(sys.prefix))
        if os.geteuid() == 0:
            os.chown(folder, NOBODY, NOBODY)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def script(lines: Sequence[str], ports: Mapping[int, int], not_root: Sequence[str] = ()) -> str:
    """The bash script that runs ``lines`` as :func:`run_console` says."""
    doc_port = re.compile(r"(?<=[:\s])(" + "|".join(str(p) for p in ports) + r")\b")
    body = [
        "set -euo pipefail",
        # A reader waits to see a server start (or fail) before typing on.
        "listening() {  # PORT PID",
        "  for _ in $(seq 300); do",
        "    (: </dev/tcp/127.0.0.1/$1) 2>/dev/null && return",
        '    kill -0 "$2" 2>/dev/null || { echo "the server for port $1 exited" >&2; return 1; }',
        "    sleep 0.1",
        "  done",
        '  echo "nothing listens on port $1" >&2; return 1',
        "}",
    ]
    for line in lines:
        line = doc_port.sub(lambda m: str(ports[int(m.group(1))]), line)
        body.append(as_a_user() + line if line.startswith(tuple(not_root)) else line)
        if line.rstrip().endswith("&"):
            port = re.search(r"--port (\d+)", line)
            assert port, f"a server started in the background names its --port: {line}"
            body.append(f'listening {port.group(1)} "$!"')
    body += [f"env -0 > {EXPORTED}", f": > {DONE}", "wait"]
    return "\n".join(body) + "\n"


@contextlib.contextmanager
def run_console(
    lines: Sequence[str],
    folder: Path,
    *,
    env: Mapping[str, str],
    edits: Sequence[tuple[str, str]] = (),
    not_root: Sequence[str] = (),
    timeout: float = 60,
) -> Iterator[Run]:
    """Run ``lines`` in ``folder``; yield once the last is done, its servers still running
    (their free ports in :attr:`Run.ports`); stop them afterwards."""
    lines = list(lines)
    for old, new in edits:
        assert sum(line.count(old) for line in lines) == 1, f"no single {old!r} to change"
        lines = [line.replace(old, new) for line in lines]
    ports = {port: free_port() for port in DOC_PORTS}
    log_folder = Path(tempfile.mkdtemp(prefix="edge-recipe-log-"))
    log = log_folder / "console.log"
    try:
        with log.open("wb") as out:
            process = subprocess.Popen(
                ["bash", "-c", script(lines, ports, not_root)],
                cwd=folder,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + timeout
            while not (folder / DONE).exists():
                code = process.poll()
                assert code is None, f"a command failed ({code}):\n{log.read_text()}"
                assert time.monotonic() < deadline, (
                    f"the commands took too long:\n{log.read_text()}"
                )
                time.sleep(0.05)
            exported = (folder / EXPORTED).read_text().split("\0")
            left = dict(entry.split("=", 1) for entry in exported if "=" in entry)
            yield Run(folder, log.read_text(), ports, left)
        finally:
            stop_group(process)
            for pid_file in folder.glob("nginx-local/*/run/*.pid"):
                with contextlib.suppress(ValueError, ProcessLookupError):
                    os.kill(int(pid_file.read_text()), signal.SIGTERM)
    finally:
        shutil.rmtree(log_folder, ignore_errors=True)


def stop_group(process: subprocess.Popen[bytes], *, how: int = signal.SIGTERM) -> None:
    """Stop a shell the test started and everything it started (its process group: ``how``
    is SIGINT for a Ctrl-C), killing what is still there after 10 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, how)
    deadline = time.monotonic() + 10
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(10)
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
