"""The transform engine in a process of its own, for fuzzing: a decoder that crashes
(a segfault in a C library) kills this child, not the test, which then reports the input
that did it and starts another child.

The child renders as the edge does: through a :class:`TransformPool` with a deadline.
Each answer says what became of the input (an image, checked to decode again; ``422``
with its slug; a timeout; any other exception, with its traceback) and how many workers
were still busy afterwards. Run by :class:`RenderChild`; ``python -m
tests.support.render_child SECONDS`` speaks length-prefixed pickles on stdin and stdout.
The outputs ``crash`` and ``hang`` make the child do that, so a test can show that the
parent reports both.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).parent.parent.parent
#: What became of one input: ("image", format, width, height, frames, busy),
#: ("unprocessable", slug, busy), ("timeout", busy), ("error", traceback, busy), or,
#: from the parent, ("crash", how) and ("hang", seconds).
Outcome = tuple[Any, ...]


def _send(stream: IO[bytes], value: object) -> None:
    body = pickle.dumps(value)
    stream.write(struct.pack(">I", len(body)) + body)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    head = stream.read(4)
    if len(head) < 4:
        raise EOFError
    body = stream.read(struct.unpack(">I", head)[0])
    return pickle.loads(body)  # noqa: S301 (our own child, over a pipe)


class RenderChild:
    """The parent's side: one child at a time, started again after a crash or a hang."""

    def __init__(self, timeout: float, *, grace: float = 10.0) -> None:
        self.timeout = timeout
        #: How much longer than the engine's deadline an answer may take (a loaded machine).
        self.grace = grace
        self.process: subprocess.Popen[bytes] | None = None
        self.crashes = 0

    def _start(self) -> subprocess.Popen[bytes]:
        """The running child, or a new one once it says it is ready (its imports can take
        seconds on a busy machine: that is not counted against an input)."""
        if self.process is None or self.process.poll() is not None:
            self.close()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.support.render_child", str(self.timeout)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                cwd=ROOT,
            )
            assert self.process.stdout is not None
            ready, _, _ = select.select([self.process.stdout], [], [], 120)
            assert ready and _receive(self.process.stdout) == ("ready",), "no child started"
        return self.process

    def render(self, data: bytes, transform: dict[str, object], output: str) -> Outcome:
        process = self._start()
        assert process.stdin is not None and process.stdout is not None
        try:
            _send(process.stdin, (data, transform, output))
        except BrokenPipeError:
            return self._died(process)
        waited = self.timeout + self.grace
        ready, _, _ = select.select([process.stdout], [], [], waited)
        if not ready:
            process.kill()
            process.wait()
            return ("hang", waited)
        try:
            return tuple(_receive(process.stdout))
        except EOFError:
            return self._died(process)

    def _died(self, process: subprocess.Popen[bytes]) -> Outcome:
        code = process.wait()
        self.crashes += 1
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit {code}"
        return ("crash", how)

    def close(self) -> None:
        """End the child (its input closed, it exits) and let go of its pipes."""
        process, self.process = self.process, None
        if process is None:
            return
        assert process.stdin is not None and process.stdout is not None
        with contextlib.suppress(BrokenPipeError):
            process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


async def _serve(seconds: float, requests: IO[bytes], answers: IO[bytes]) -> None:
    import pyvips

    from edge.errors import TransformTimeout, UnprocessableImage
    from edge.transform import Limits, Transform, TransformPool, render

    pool = TransformPool(2, wait=seconds, timeout=seconds)
    limits = Limits()
    _send(answers, ("ready",))
    while True:
        try:
            data, fields, output = _receive(requests)
        except EOFError:
            break
        if output == "crash":
            os.kill(os.getpid(), signal.SIGSEGV)
        if output == "hang":
            time.sleep(3600)
        try:
            deadline = pool.deadline()
            made = await pool.run(
                render, data, Transform(**fields), output, limits, deadline, deadline=deadline
            )
            image = pyvips.Image.new_from_buffer(made.data, "")
            image.avg()  # every pixel decodes again
            found: Outcome = ("image", made.format, made.width, made.height, made.frames)
        except UnprocessableImage as error:
            found = ("unprocessable", error.slug)
        except TransformTimeout:
            found = ("timeout",)
        except Exception:
            found = ("error", traceback.format_exc())
        for _ in range(3):  # the worker's release is on its way to the loop
            await asyncio.sleep(0)
        _send(answers, (*found, pool.busy))
    pool.close()


def main() -> None:
    seconds = float(sys.argv[1])
    requests = os.fdopen(sys.stdin.fileno(), "rb", closefd=False)
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # nothing else, a C library's printf included, may write to the answers
    asyncio.run(_serve(seconds, requests, answers))


if __name__ == "__main__":
    main()
