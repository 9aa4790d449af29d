"""Requests as the observer and the access log see them: an ASGI scope and the record the
handler leaves once it has answered; and the lines a log queued, as its writer stamps them."""

from __future__ import annotations

import json
import time
from typing import Any

from edge.accesslog import STAMP, AccessLog
from edge.record import Record


def answered(exchange: Record, status: int, sent: int, outcome: str, cache: str) -> Record:
    """``exchange`` as the handler leaves it once it has answered."""
    exchange.status, exchange.sent, exchange.outcome, exchange.cache = status, sent, outcome, cache
    return exchange


def public_hit(number: int) -> tuple[dict[str, Any], Record]:
    """The scope and the record of a cached hit on the public ``/i/alice/{number}.png``."""
    exchange = answered(Record(0.0), 200, 5, "public", "hit")
    scope = {
        "client": ("127.0.0.1", 1),
        "scheme": "http",
        "method": "GET",
        "raw_path": b"/i/alice/%d.png" % number,
        "path": "",
        "query_string": b"",
        "headers": [],
    }
    return scope, exchange


def queued(log: AccessLog) -> list[dict[str, Any]]:
    """The lines queued on ``log``, stamped as its writer would."""
    stamp = time.strftime(STAMP, time.gmtime()).encode()
    return [json.loads(stamp + line) for line in log.lines]
