"""The transform engine in a process of its own, for fuzzing: a decoder that crashes
(a segfault in a C library) kills this child, not the test, which then reports the input
that did it and starts another child. A child that hangs, or whose render ran into its
deadline (its worker thread may still be at it), is ended too: the next input always
meets a child with every worker free. What the child wrote on stderr (libvips' warnings,
a C library's message before it died) goes to a file of the parent's, whose last lines
and the child's exit status a failure reports (:meth:`RenderChild.last_words`).

The child renders as the edge does: through a :class:`TransformPool` with a deadline.
Each answer says what became of the input (an image, checked to decode again; ``422``
with its slug; a timeout; any other exception, with its traceback) and how many workers
were still busy afterwards. Run by :class:`RenderChild`; ``python -m
tests.support.render_child SECONDS`` speaks length-prefixed pickles on stdin and stdout.
The outputs ``crash``, ``hang`` and ``slow`` (a render past its deadline) make the child do
that, so a test can show what the parent reports and that the next input meets a new child.
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
import tempfile
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


#: How much of the child's stderr a failure shows: its last bytes.
STDERR_TAIL = 2000


class RenderChild:
    """The parent's side: one child at a time, started again after a crash, a hang or a
    timeout."""

    def __init__(self, timeout: float, *, grace: float = 10.0) -> None:
        self.timeout = timeout
        #: How much longer than the engine's deadline an answer may take (a loaded machine).
        self.grace = grace
        self.process: subprocess.Popen[bytes] | None = None
        self.crashes = 0
        self._stderr: int | None = None  # the running child's stderr: an unnamed file
        #: The exit status and stderr tail of the child the last input ended, if it did.
        self._ended: tuple[str, str] | None = None

    def _start(self) -> subprocess.Popen[bytes]:
        """The running child, or a new one once it says it is ready (its imports can take
        seconds on a busy machine: that is not counted against an input)."""
        if self.process is None or self.process.poll() is not None:
            self.close()
            self._stderr = _unnamed_file()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.support.render_child", str(self.timeout)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                cwd=ROOT,
            )
            assert self.process.stdout is not None
            ready, _, _ = select.select([self.process.stdout], [], [], 120)
            said = _receive(self.process.stdout) if ready else None
            assert said == ("ready",), f"no child started: {self.last_words()}"
        return self.process

    def render(self, data: bytes, transform: dict[str, object], output: str) -> Outcome:
        self._ended = None
        process = self._start()
        assert process.stdin is not None and process.stdout is not None
        try:
            _send(process.stdin, (data, transform, output))
        except BrokenPipeError:
            return self._died(process)
        waited = self.timeout + self.grace
        ready, _, _ = select.select([process.stdout], [], [], waited)
        if not ready:
            self._end(process)
            return ("hang", waited)
        try:
            outcome = tuple(_receive(process.stdout))
        except EOFError:
            return self._died(process)
        if outcome[0] == "timeout":  # its worker may still be rendering: not the next input's
            self._end(process)
        return outcome

    def last_words(self) -> str:
        """The exit status (or ``running``) and the last lines on stderr of the child that
        answered the last input: what a failure reports beside the input."""
        if self._ended is not None:
            status, tail = self._ended
        else:
            running = self.process is not None and self.process.poll() is None
            status, tail = ("running" if running else "not started"), self._tail()
        return f"child {status}; its stderr's last lines:\n{tail or '(nothing)'}"

    def _tail(self) -> str:
        if self._stderr is None:
            return ""
        size = os.fstat(self._stderr).st_size
        tail = os.pread(self._stderr, STDERR_TAIL, max(0, size - STDERR_TAIL))
        return tail.decode("utf-8", "replace")

    def _died(self, process: subprocess.Popen[bytes]) -> Outcome:
        self.crashes += 1
        return ("crash", self._end(process))

    def _end(self, process: subprocess.Popen[bytes]) -> str:
        """Kill the child if it still runs; keep its exit status and stderr's tail for
        :meth:`last_words`, and return the status."""
        if process.poll() is None:
            process.kill()
        code = process.wait()
        status = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit {code}"
        self._ended = (status, self._tail())
        self.close()
        return status

    def close(self) -> None:
        """End the child (its input closed, it exits) and let go of its pipes and file."""
        process, self.process = self.process, None
        stderr, self._stderr = self._stderr, None
        if process is not None:
            assert process.stdin is not None and process.stdout is not None
            with contextlib.suppress(BrokenPipeError):
                process.stdin.close()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            process.stdout.close()
        if stderr is not None:
            os.close(stderr)


def _unnamed_file() -> int:
    """A file descriptor of a temporary file already unlinked: gone once closed."""
    fd, name = tempfile.mkstemp(prefix="render-child-")
    os.unlink(name)
    return fd


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
        if output == "crash":  # as a C library would: a last word on stderr, then the signal
            os.write(2, b"render child: crashing as asked\n")
            os.kill(os.getpid(), signal.SIGSEGV)
        if output == "hang":
            time.sleep(3600)
        try:
            deadline = pool.deadline()
            if output == "slow":
                await pool.run(time.sleep, seconds * 4, deadline=deadline)
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
