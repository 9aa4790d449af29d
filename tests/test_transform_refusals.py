"""A running edge refuses what the transform contract refuses, before any storage request:
a malformed or repeated transform parameter (400, signed or not), and transform parameters
the signature does not cover (403). Serving transformed images is the engine's part."""

from __future__ import annotations

import httpx

from edge.samples import CANARY, png
from edge.signing import sign_url
from tests.support.client import TLS
from tests.support.world import World

EXP_IN = 600


def test_refused_before_any_storage_request(world: World) -> None:
    public = world.put("public", "alice", "photo.png", png(8, 8))
    private = world.put("private", "alice", "secret.png", png(8, 8) + CANARY)
    base = world.serve()
    signed = world.sign(private)  # grants the stored object only
    with_w = sign_url(
        private, key=world.key, exp=int(signed.rpartition("exp=")[2]), transform="w=200"
    )
    refusals = [
        (f"{public}?w=abc", 400, "BAD_REQUEST"),
        (f"{public}?fit=Cover&v=3", 400, "BAD_REQUEST"),
        (f"{public}?p:a&p:b", 400, "BAD_REQUEST"),
        (f"{signed}&w=0800", 400, "BAD_REQUEST"),  # judged before the signature
        (f"{with_w}&w=200", 400, "BAD_REQUEST"),  # given twice
        (f"{signed}&w=200", 403, "SIGNATURE_INVALID"),  # added to a URL signed without any
        (with_w.replace("w=200", "w=2000"), 403, "SIGNATURE_INVALID"),
        (with_w.replace("w=200&", ""), 403, "SIGNATURE_INVALID"),
    ]
    with httpx.Client(base_url=base, timeout=30, verify=TLS) as client:
        for target, status, code in refusals:
            answer = client.get(target)
            assert answer.status_code == status, target
            assert answer.json()["error"]["code"] == code, target
            assert CANARY not in answer.content
        assert world.storage_reads() == []
