"""atheris fuzz target: the raw request target through the path rules and the verifier.

Whatever the bytes, the only outcomes are the defined ones: a grant, None
(unsigned), or an EdgeError whose status is 400 or 403. Anything else (another
exception, another status) is a crash that atheris reports with its input.
Run: ``python -m tests.fuzz.url_target -max_total_time=30 -rss_limit_mb=1024``.
"""

from __future__ import annotations

import sys
import time

import atheris

with atheris.instrument_imports():
    from edge.errors import EdgeError
    from edge.keys import parse_keyring
    from edge.paths import request_path
    from edge.signing import Verifier, sign_url

KEYS = "fuzz:hs256:" + "ZnV6ei1vbmx5LWtleS1ub3QtYS1zZWNyZXQtMzJieXRlcw"  # test data
NOW = 1_800_000_000
VERIFIER = Verifier(parse_keyring(KEYS), max_ttl=7 * 86400, clock=lambda: float(NOW))
_key = parse_keyring(KEYS).signing_key
assert _key is not None
#: A valid URL to start from, so mutations explore around the accepting paths too.
SEED = sign_url("/i/alice/photo.png", key=_key, exp=NOW + 600).encode()


def judge(data: bytes) -> None:
    raw_path, _, query = data.partition(b"?")
    try:
        path = request_path(raw_path)
        grant = VERIFIER.verify(path, query)
    except EdgeError as error:
        if error.status not in (400, 403):
            raise AssertionError(f"status {error.status} for {data!r}") from error
        return
    assert grant is None or (grant.kid == "fuzz" and grant.exp > NOW), grant
    assert path.startswith("/i/"), path


def main(argv: list[str]) -> None:
    corpus = argv[-1] if len(argv) > 1 and not argv[-1].startswith("-") else None
    if corpus:
        from pathlib import Path

        Path(corpus).mkdir(parents=True, exist_ok=True)
        (Path(corpus) / "seed").write_bytes(SEED)
    started = time.monotonic()
    atheris.Setup(argv, judge)
    try:
        atheris.Fuzz()
    finally:  # pragma: no cover: Fuzz() exits the process when its time is up
        print(f"fuzzed for {time.monotonic() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv)
