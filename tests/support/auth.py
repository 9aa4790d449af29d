"""What the /auth tests (test_authorize.py) and the nginx auth_request tests
(test_nginx_auth_request.py) share: private objects that carry their own name and the
canary, and names a verdict must carry exactly."""

from __future__ import annotations

from edge.samples import CANARY


def private(name: str) -> bytes:
    """A private object's bytes: its own name, so a test tells objects apart, and the canary."""
    return b"private " + name.encode() + b" " + CANARY


NAMES = [
    "café au lait.png",
    "a?b.png",
    "100%.png",
    "100%25.png",
    "x#y.png",
    "semi;colon.png",
    "quote\"'.png",
    "plus+sign.png",
    " lead.png",
    "日本.png",
    "nested/deeper/x.png",
    ".hidden.png",
]
