"""The `edge` command's contract: output, exit codes, one-line errors and no leaked secrets."""

from __future__ import annotations

import time

import pytest

from edge.cli import main
from edge.keys import b64url_encode, parse_keyring

SECRET = b64url_encode(bytes(range(32)))
KEYS = f"main:hs256:{SECRET}"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(list(args))
    except SystemExit as exit_:  # argparse usage errors
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_keygen_hs256_default_kid_is_dated(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "keygen")
    assert code == 0
    (entry,) = out.splitlines()
    assert entry.startswith("k" + time.strftime("%Y%m%d", time.gmtime()) + ":hs256:")
    assert parse_keyring(entry).signing_key is not None


def test_keygen_ed25519_prints_the_public_entry(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "keygen", "--alg", "ed25519", "--kid", "ed")
    assert code == 0
    private, public = out.splitlines()
    assert private.startswith("ed:ed25519:") and public.startswith("ed:ed25519-pub:")
    assert "ed25519-pub" in err


def test_sign_then_verify_round_trip(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGE_SIGNING_KEYS", KEYS)
    code, out, _ = run(
        capsys, "sign", "/i/bob/café.png", "--expires-in", "60", "--base-url", "https://img.test/"
    )
    assert code == 0
    url = out.strip()
    assert url.startswith("https://img.test/i/bob/caf%C3%A9.png?sig=") and "kid=" not in url
    code, out, _ = run(capsys, "verify", url)
    assert (code, out.splitlines()[0]) == (0, "VALID")
    code, out, _ = run(capsys, "verify", url, "--now", str(int(time.time()) + 61))
    assert (code, out.splitlines()[0]) == (1, "SIGNATURE_EXPIRED")


def test_sign_with_kid_carries_kid(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGE_SIGNING_KEYS", KEYS)
    code, out, _ = run(capsys, "sign", "/i/a/b.png", "--expires-in", "5", "--kid", "main")
    assert code == 0 and out.strip().endswith("&kid=main")


@pytest.mark.parametrize(
    ("env", "args", "message"),
    [
        ({}, ["sign", "/i/a/b", "--expires-in", "5"], "EDGE_SIGNING_KEYS is empty"),
        ({}, ["verify", "/i/a/b"], "EDGE_SIGNING_KEYS is empty"),
        ({"EDGE_SIGNING_KEYS": "main:hs256:c2hvcnQ"}, ["verify", "/i/a/b"], "entry 1 (kid 'main')"),
        (
            {"EDGE_SIGNING_KEYS": KEYS},
            ["sign", "/i/a/../b", "--expires-in", "5"],
            "not a valid image path",
        ),
        (
            {"EDGE_SIGNING_KEYS": KEYS},
            ["sign", "/i/a/b", "--expires-in", "5", "--kid", "x"],
            "no key with kid",
        ),
        (
            {"EDGE_SIGNING_KEYS": KEYS},
            ["sign", "/i/a/b", "--expires-in", "99999999"],
            "EDGE_MAX_TTL",
        ),
        (
            {"EDGE_SIGNING_KEYS": "p:ed25519-pub:" + SECRET},
            ["sign", "/i/a/b", "--expires-in", "5"],
            "no key that can sign",
        ),
        ({"EDGE_MAX_TTL": "soon", "EDGE_SIGNING_KEYS": KEYS}, ["verify", "/i/a/b"], "EDGE_MAX_TTL"),
    ],
)
def test_configuration_and_usage_errors_are_one_line_exit_2(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    args: list[str],
    message: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code, out, err = run(capsys, *args)
    assert code == 2 and out == ""
    assert err.startswith("edge: ") and err.count("\n") == 1 and message in err
    assert SECRET not in err and "c2hvcnQ" not in err


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["sign", "/i/a/b"],
        ["sign", "/i/a/b", "--expires-in", "-5"],
        ["verify"],
        ["keygen", "--alg", "rsa"],
    ],
)
def test_argument_errors_exit_2(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    code, _, err = run(capsys, *args)
    assert code == 2 and "usage:" in err


def test_verify_accepts_absolute_urls_and_fragments(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGE_SIGNING_KEYS", KEYS)
    code, out, _ = run(capsys, "verify", "https://img.test:8443/i/a/b.png?v=1#top")
    assert (code, out.splitlines()[0]) == (0, "UNSIGNED")
    code, out, _ = run(capsys, "verify", "https://img.test/i/a/%ff")
    assert (code, out.splitlines()[0]) == (1, "BAD_REQUEST")
