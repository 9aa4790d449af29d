"""Exactly N requests for one URL over one keep-alive connection, then SIGTERM to the server.

For instruction counts under callgrind: run the server under valgrind, this
client with N and with a larger N, and difference the totals (start-up cancels).
Usage: python -m bench.tools.cg_client PORT N SERVER_PID [PATH]
"""

from __future__ import annotations

import http.client
import os
import signal
import sys
import time


def connect(port: int, path: str, *, wait: float = 300) -> http.client.HTTPConnection:
    """A connection once the server answers ``path`` (it starts slowly under valgrind)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("GET", path)
            conn.getresponse().read()  # also fills edge's hot-object cache
            return conn
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def main() -> int:
    port, count, pid = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    path = sys.argv[4] if len(sys.argv) > 4 else "/i/alice/hit.png"
    conn = connect(port, path)
    for _ in range(count):
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"status {response.status}")
    conn.close()
    os.kill(pid, signal.SIGTERM)
    return 0


if __name__ == "__main__":
    sys.exit(main())
