"""Decoder fuzzing: damaged JPEG, PNG, GIF, WebP and AVIF files (tests/support/mutations.py)
through the transform engine, in a child process that renders as the edge does
(tests/support/render_child.py), and a handful through a real edge.

The only outcomes are an image that decodes again, or 422 UNPROCESSABLE_IMAGE: no crash
(the child would die and the input be reported), no exception of another kind, no
transform running into its deadline, and every worker free again after each input.
Each format has a child of its own, so one format's crash or hang fails that format
alone; a failure names the input (its length, hash and first bytes, the whole of it saved
under tests/artifacts/fuzz/), the child's exit status and the last lines of its stderr.
Reproducible and bounded: examples derandomized (the same inputs on every run, no
example database), no shrinking (a failing input is reported as found, at once, not after
hundreds of replays of a hang), ``EDGE_FUZZ_EXAMPLES`` per format (default 200: the file
took 25 s on the project's 2-core VM while other work kept it busy); set it higher for a
longer hunt (10,000 examples, 2,000 a format, found nothing: 3 minutes).
"""

from __future__ import annotations

import collections
import hashlib
import os
import random
import re
import time
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import strategies as st

from edge.transform.plan import AVIF_MAX_SIDE
from tests.support.artifacts import ARTIFACTS, write_artifact
from tests.support.client import TLS
from tests.support.mutations import FORMATS, damaged, handful, seeds, valid
from tests.support.render_child import Outcome, RenderChild
from tests.support.transform_images import decoded, encoded, quadrants
from tests.support.world import World

EXAMPLES = int(os.environ.get("EDGE_FUZZ_EXAMPLES", "200"))
#: The engine's deadline in the child: a transform of these small files takes milliseconds.
TIMEOUT = 5.0
OUTPUTS = ("jpeg", "png", "webp", "avif", "gif")
#: Transforms that reach every kind of step: shrink-on-load alone, smartcrop, steps in
#: memory (blur, a turn), a mirror and grayscale.
TRANSFORMS: list[dict[str, object]] = [
    {"w": 32},
    {"w": 20, "h": 20, "crop": "attention"},
    {"w": 24, "blur": 2, "rotate": 90},
    {"h": 16, "flip": "h", "grayscale": True},
]


#: Bytes of a failing input a report shows (in hex); the whole input is saved.
HEAD = 64


@pytest.fixture
def child() -> Iterator[RenderChild]:
    """A child of the test's own: another test's crash or hang is not this one's."""
    running = RenderChild(TIMEOUT)
    yield running
    running.close()


def described(data: bytes, transform: dict[str, object], output: str, child: RenderChild) -> str:
    """A failing input, short enough to read whole, and what the child that had it left."""
    digest = hashlib.sha256(data).hexdigest()[:16]
    saved = ARTIFACTS / "fuzz" / f"{digest}.bin"
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_bytes(data)
    return (
        f"input: {len(data)} bytes (saved as {saved}), the first {HEAD} in hex:"
        f" {data[:HEAD].hex()}; transform {transform}, output {output}\n{child.last_words()}"
    )


def judge(outcome: Outcome, transform: dict[str, object]) -> str:
    """The outcome's name, once checked: an image of the size asked for, or a 422; every
    worker free."""
    kind = outcome[0]
    assert kind in ("image", "unprocessable"), f"{outcome}"
    assert outcome[-1] == 0, f"{outcome[-1]} workers still busy after the answer"
    if kind == "image":
        fmt, width, height, frames = outcome[1:5]
        wanted = (transform.get("w", width), transform.get("h", height))
        if fmt == "avif":  # scaled down to fit AVIF's bound: never larger than asked
            assert width <= wanted[0] and height <= wanted[1], outcome
            assert max(width, height) <= AVIF_MAX_SIDE, outcome
        else:
            assert (width, height) == wanted, outcome
        assert width > 0 and height > 0 and frames >= 1, outcome
        return "image"
    return f"422 {outcome[1]}"


@pytest.mark.slow
def test_the_seeds_are_valid_images(child: RenderChild) -> None:
    for fmt in FORMATS:
        assert all(image.width > 0 for image in valid(fmt)), fmt
        for seed in seeds()[fmt]:
            outcome = child.render(seed, {"w": 32}, "png")
            assert outcome[0] == "image" and outcome[2] == 32, (fmt, outcome)


@pytest.mark.slow
def test_a_crash_a_hang_or_a_timeout_is_reported_and_the_next_input_gets_a_new_child() -> None:
    """What the fuzzing would report: the child killed by a signal, silent too long, or
    its render past the deadline; with its exit status and its stderr's last lines. The
    next input meets a new child, every worker free."""
    child = RenderChild(0.2, grace=0.3)
    try:
        assert child.render(b"", {}, "crash") == ("crash", "signal SIGSEGV")
        said = child.last_words()
        assert said.startswith("child signal SIGSEGV") and "crashing as asked" in said, said
        assert child.render(seeds()["png"][0], {"w": 8}, "png")[:3] == ("image", "png", 8)
        assert child.last_words().startswith("child running"), child.last_words()
        begun = time.monotonic()
        assert child.render(b"", {}, "hang") == ("hang", 0.5)
        assert time.monotonic() - begun < 5
        assert child.last_words().startswith("child signal SIGKILL"), child.last_words()
        assert child.render(b"", {}, "slow") == ("timeout", 1), "its worker still at it"
        assert child.last_words().startswith("child signal SIGKILL"), child.last_words()
        assert child.render(b"not an image", {"w": 8}, "png") == (
            "unprocessable",
            "source_unreadable",
            0,
        )
        assert child.crashes == 1
    finally:
        child.close()


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
def test_damaged_files_become_an_image_or_422(fmt: str, child: RenderChild) -> None:
    tally: collections.Counter[str] = collections.Counter()

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,  # the child's deadline and the parent's wait bound each example
        phases=[Phase.explicit, Phase.generate],  # no shrinking: bounded, even on a failure
        verbosity=Verbosity.quiet,  # the failure says the input its own way, not as a repr
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        data=damaged(fmt),
        transform=st.sampled_from(TRANSFORMS),
        output=st.sampled_from(OUTPUTS),
    )
    def check(data: bytes, transform: dict[str, object], output: str) -> None:
        outcome = child.render(data, transform, output)
        try:
            tally[judge(outcome, transform)] += 1
        except AssertionError as failed:
            raise AssertionError(f"{failed}\n{described(data, transform, output, child)}") from None

    check()
    assert child.crashes == 0
    assert tally["image"] and sum(tally.values()) > tally["image"], (
        f"both outcomes reached: {dict(tally)}"
    )
    write_artifact(f"fuzz-{fmt}", {"examples": sum(tally.values()), "outcomes": dict(tally)})


EXTENSIONS = {"jpeg": "jpg", "png": "png", "gif": "gif", "webp": "webp", "avif": "avif"}


@pytest.mark.parametrize("world", ["file"], indirect=True)
def test_damaged_files_through_a_real_edge(world: World) -> None:
    """A handful of damages per format, served (as themselves, or converted to another
    format): 200 with an image, or 422; the edge then transforms as before, its one worker
    free."""
    chosen = random.Random(16)  # the same outputs on every run
    asked = []
    for fmt in FORMATS:
        for name, data in handful(fmt).items():
            stem = f"{fmt}-{re.sub(r'[^a-z0-9]+', '-', name)}"
            world.put("public", "alice", f"{stem}.{EXTENSIONS[fmt]}", data)
            output = chosen.choice(sorted(EXTENSIONS.values()))
            asked.append((f"/i/alice/{stem}.{output}?w=32", name))
    good = world.put("public", "alice", "good.png", encoded(quadrants(300, 200)))
    base = world.serve(EDGE_TRANSFORM_WORKERS="1", EDGE_TRANSFORM_QUEUE_TIMEOUT="0.2")
    statuses: collections.Counter[int] = collections.Counter()
    with httpx.Client(base_url=base, timeout=30, verify=TLS) as client:
        for target, name in asked:
            answer = client.get(target)
            statuses[answer.status_code] += 1
            assert answer.status_code in (200, 422), (target, name, answer.text)
            if answer.status_code == 200:
                assert decoded(answer.content).width <= 32, target
            else:
                assert answer.json()["error"]["code"] == "UNPROCESSABLE_IMAGE", target
        assert client.get("/healthz").status_code == 200
        after = client.get(f"{good}?w=50")
        assert after.status_code == 200 and decoded(after.content).width == 50
    assert statuses[200] and statuses[422] and sum(statuses.values()) >= 25, statuses
