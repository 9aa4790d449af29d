"""``edge sign --transform`` and ``edge verify`` on transform URLs: output, exit codes and
one-line errors."""

from __future__ import annotations

import pytest

from edge.cli import main
from edge.keys import b64url_encode

KEYS = f"main:hs256:{b64url_encode(bytes(range(32)))}"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(list(args))
    except SystemExit as exit_:  # argparse usage errors
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_SIGNING_KEYS", KEYS)


def test_sign_a_transform_then_verify_it(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "sign", "/i/bob/café.png", "--expires-in", "60", "--transform", "w=800&p:thumb"
    )
    assert code == 0
    url = out.strip()
    assert url.startswith("/i/bob/caf%C3%A9.png?w=800&p:thumb&sig=")
    code, out, _ = run(capsys, "verify", url)
    verdict, explanation = out.splitlines()
    assert (code, verdict) == (0, "VALID")
    assert explanation.endswith("for transform p:thumb&w=800")
    code, out, _ = run(capsys, "verify", url.replace("w=800", "w=801"))
    verdict, explanation = out.splitlines()
    assert (code, verdict) == (1, "SIGNATURE_INVALID")
    assert explanation == "signature matches no candidate key; transform p:thumb&w=801"


def test_without_a_transform_the_url_grants_the_stored_object_only(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for transform in ([], ["--transform", ""]):
        code, out, _ = run(capsys, "sign", "/i/a/b.png", "--expires-in", "60", *transform)
        url = out.strip()
        assert code == 0 and "?sig=" in url
        code, out, _ = run(capsys, "verify", url)
        assert code == 0 and out.splitlines()[1].endswith("for the stored object only")
        code, out, _ = run(capsys, "verify", url + "&w=8")
        assert (code, out.splitlines()[0]) == (1, "SIGNATURE_INVALID")


@pytest.mark.parametrize(
    ("transform", "message"),
    [
        ("w=0800", "--transform: transform parameter w='0800' is malformed"),
        ("fit=Cover", "--transform: transform parameter fit='Cover' is malformed"),
        ("w=", "--transform: transform parameter w='' is malformed"),
        ("w=8&w=8", "--transform: transform parameter w is given more than once"),
        ("p:a&p:b", "--transform: more than one preset"),
        ("p:a=1", "--transform: preset 'p:a' takes no value"),
        ("v=3", "--transform: 'v' is not a transform parameter"),
        ("w=800&sig=x", "--transform: 'sig' is not a transform parameter"),
        ("aspect=16%3A9", "--transform: transform parameter aspect='16%3A9' is malformed"),
    ],
)
def test_a_malformed_transform_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], transform: str, message: str
) -> None:
    code, out, err = run(
        capsys, "sign", "/i/a/b.png", "--expires-in", "5", "--transform", transform
    )
    assert code == 2 and out == ""
    assert err.startswith(f"edge: {message}") and err.count("\n") == 1


@pytest.mark.parametrize(
    ("query", "verdict", "says"),
    [
        ("w=abc", "BAD_REQUEST", "transform parameter w='abc' is malformed"),
        ("w=800&fit=cover&v=2", "UNSIGNED", "public images only; transform fit=cover&w=800"),
        ("v=2", "UNSIGNED", "public images only; no transform"),
        ("w=8&w=8&sig=x&exp=1", "BAD_REQUEST", "w is given more than once"),
    ],
)
def test_verify_explains_the_transform(
    capsys: pytest.CaptureFixture[str], query: str, verdict: str, says: str
) -> None:
    code, out, _ = run(capsys, "verify", f"https://img.test/i/a/b.png?{query}")
    lines = out.splitlines()
    assert lines[0] == verdict and says in lines[1] and len(lines) == 2
    assert code == (0 if verdict == "UNSIGNED" else 1)
