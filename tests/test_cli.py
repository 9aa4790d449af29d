"""The `edge` command's contract: output, exit codes, one-line errors and no leaked secrets."""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

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


def test_keygen_ed25519_prints_the_signing_entry_alone(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """stdout is one entry, a keyring as it stands (what "$(edge keygen ...)" captures);
    stderr says which entry goes where and holds the public one for the edges."""
    code, out, err = run(capsys, "keygen", "--alg", "ed25519", "--kid", "ed")
    assert code == 0
    (private,) = out.splitlines()
    assert private.startswith("ed:ed25519:")
    signing = parse_keyring(out).signing_key  # the captured output, trailing newline and all
    assert signing is not None and signing.kid == "ed"
    assert private not in err and "signers only" in err and "(secret)" in err
    assert "verify-only" in err and "edges" in err
    (public,) = [line for line in err.splitlines() if line.startswith("ed:ed25519-pub:")]
    monkeypatch.setenv("EDGE_SIGNING_KEYS", out)
    code, url, _ = run(capsys, "sign", "/i/a/b.png", "--expires-in", "60")
    assert code == 0
    monkeypatch.setenv("EDGE_SIGNING_KEYS", public)
    code, verdict, _ = run(capsys, "verify", url.strip())
    assert (code, verdict.splitlines()[0]) == (0, "VALID")


def test_the_readme_shows_what_keygen_prints(capsys: pytest.CaptureFixture[str]) -> None:
    """The README's ed25519 example: its command as written, its stderr line for line."""
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    start = readme.index('$ export EDGE_SIGNING_KEYS="$(.venv/bin/edge keygen --alg ed25519')
    command, *shown = readme[start : readme.index("```", start)].splitlines()
    args = shlex.split(command.partition("$(.venv/bin/edge ")[2].partition(")")[0])
    code, out, err = run(capsys, *args)
    assert code == 0 and out.startswith("k2026e:ed25519:")
    public = err.splitlines()[-1]
    assert err.splitlines() == [*shown[:-1], public]
    assert shown[-1] == public.partition("-pub:")[0] + "-pub:…"


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
        (
            {"EDGE_SIGNING_KEYS": KEYS},
            ["sign", "/i/bob/caf%C3%A9.png", "--expires-in", "5"],
            "PATH looks percent-encoded already ('%C3%A9'): give it decoded, '/i/bob/café.png',"
            " or add --literal-percent if the name really holds '%C3%A9'",
        ),
        (
            {"EDGE_SIGNING_KEYS": KEYS},
            ["sign", "/i/bob/100%ff.png", "--expires-in", "5"],
            "PATH looks percent-encoded already ('%ff'): give it decoded (edge sign encodes it)",
        ),
        (
            {"EDGE_SIGNING_KEYS": KEYS},
            ["sign", "/i/a/b", "--expires-at", "1700000000"],
            "s in the past: every edge would answer 403 SIGNATURE_EXPIRED (add --allow-expired",
        ),
        (
            {"EDGE_SIGNING_KEYS": KEYS},
            ["sign", "/i/a/b", "--expires-in", "0"],
            "--expires-in 0 expires at once: every edge would answer 403 SIGNATURE_EXPIRED",
        ),
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


def test_sign_makes_the_odd_url_on_purpose(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--literal-percent signs a name that really holds '%C3'; --allow-expired an old exp."""
    monkeypatch.setenv("EDGE_SIGNING_KEYS", KEYS)
    code, out, _ = run(capsys, "sign", "/i/a/100%C3.png", "--expires-in", "60", "--literal-percent")
    assert code == 0 and out.startswith("/i/a/100%25C3.png?sig=")
    code, out, _ = run(capsys, "verify", out.strip())
    assert (code, out.splitlines()[0]) == (0, "VALID")
    code, out, _ = run(
        capsys, "sign", "/i/a/b.png", "--expires-at", "1700000000", "--allow-expired"
    )
    assert code == 0 and out.strip().endswith("&exp=1700000000")
    code, out, _ = run(capsys, "verify", out.strip())
    assert (code, out.splitlines()[0]) == (1, "SIGNATURE_EXPIRED")


def test_verify_recognises_urls_copied_from_html_and_plus_for_space(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGE_SIGNING_KEYS", KEYS)
    _, out, _ = run(
        capsys, "sign", "/i/bob/café au lait.png", "--expires-in", "60", "--kid", "main"
    )
    url = "https://img.test" + out.strip()
    assert "%20" in url and url.count("&") == 2
    from_html = url.replace("&", "&amp;")
    code, out, _ = run(capsys, "verify", from_html)
    assert code == 1
    verdict, reason, hint = out.splitlines()
    assert (verdict, reason) == (
        "SIGNATURE_INVALID",
        "sig and exp must both be given; no transform",
    )
    assert hint.startswith("hint: the URL holds '&amp;', HTML's escape for '&'")
    assert hint.endswith("with '&' this URL is VALID")
    code, out, _ = run(capsys, "verify", url.replace("%20", "+"))
    assert code == 1
    verdict, reason, hint = out.splitlines()
    assert (verdict, reason) == (
        "SIGNATURE_INVALID",
        "signature matches no candidate key; no transform",
    )
    assert hint.startswith("hint: a '+' in a path is a plus sign, not a space")
    assert hint.endswith("with %20 for each '+' the signature matches, VALID")
    code, out, _ = run(capsys, "verify", from_html.replace("%20", "+"))
    assert code == 1 and [line[:6] for line in out.splitlines()[2:]] == ["hint: ", "hint: "]
    assert out.splitlines()[3].startswith("hint: also, a '+' in a path")


def test_verify_gives_no_hint_when_nothing_would_change(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A '+' that really is a plus, in a URL signed as such, or a forged URL: no hint."""
    monkeypatch.setenv("EDGE_SIGNING_KEYS", KEYS)
    _, out, _ = run(capsys, "sign", "/i/bob/a+b.png", "--expires-in", "60")
    code, verdict, _ = run(capsys, "verify", out.strip())
    assert code == 0 and len(verdict.splitlines()) == 2
    forged = out.strip().replace("sig=", "sig=A").replace("a+b", "a+c")
    code, verdict, _ = run(capsys, "verify", forged)
    assert code == 1 and len(verdict.splitlines()) == 2


@pytest.mark.parametrize(
    "command", [[], ["keygen"], ["sign"], ["verify"], ["serve"], ["demo"], ["check-storage"]]
)
def test_help_is_plain_text(capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    """Help text comes partly from docstrings: no reStructuredText markup may show."""
    code, out, _ = run(capsys, *command, "--help")
    assert code == 0 and out.startswith("usage: edge")
    assert "``" not in out, out
    if not command:
        assert "The edge command: keygen, sign, verify, serve, demo and check-storage." in out
        assert "Exit codes: 0 success" in out


def test_sign_takes_a_kid_that_starts_with_a_dash(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """'-k' is a valid kid: --kid -k is the value, as --kid=-k is; an option stays an option."""
    monkeypatch.setenv("EDGE_SIGNING_KEYS", f"-k:hs256:{SECRET},--x:hs256:{SECRET}")
    for args in (["--kid", "-k"], ["--kid=-k"]):
        code, out, err = run(capsys, "sign", "/i/a/b.png", "--expires-in", "5", *args)
        assert code == 0, err
        assert out.strip().endswith("&kid=-k")
    code, out, _ = run(capsys, "sign", "/i/a/b.png", "--kid", "--x", "--expires-in", "5")
    assert code == 0 and out.strip().endswith("&kid=--x")
    code, _, err = run(capsys, "sign", "/i/a/b.png", "--kid", "--expires-in", "5")
    assert code == 2 and "--kid: expected one argument" in err


def test_sign_align_reproduces_the_align_vectors(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    vectors = json.loads(
        (Path(__file__).parent / "data" / "vectors-align.json").read_text(encoding="utf-8")
    )
    monkeypatch.setenv("EDGE_SIGNING_KEYS", vectors["keys"])
    monkeypatch.setenv("EDGE_MAX_TTL", "0")  # a case expires in 999999999999
    for case in vectors["sign"]:
        kid = ["--kid", case["kid"]] if case["include_kid"] else []
        if not case["include_kid"] and case["kid"] != "main":
            continue  # edge sign writes kid= whenever it is told which key
        transform = "&".join(f"{name}={value}" for name, value in case["transform"])
        code, out, err = run(
            capsys,
            "sign",
            case["path"],
            "--expires-at",
            str(case["now"] + case["expires_in"]),
            "--align",
            str(case["align"]),
            "--allow-expired",
            *kid,
            *(["--transform", transform] if transform else []),
        )
        assert (code, out.strip()) == (0, case["url"]), err


def test_sign_align_gives_one_url_per_window(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGE_SIGNING_KEYS", KEYS)
    args = ["sign", "/i/a/b.png", "--expires-in", "600", "--align", "86400"]
    before = int(time.time())
    urls = {run(capsys, *args)[1] for _ in range(3)}
    exp = int(next(iter(urls)).strip().rpartition("exp=")[2])
    assert exp % 86400 == 0 and before + 600 <= exp < int(time.time()) + 600 + 86400
    assert len(urls) == 1 or exp - before < 700  # three URLs, unless a window ended meanwhile
    monkeypatch.setenv("EDGE_MAX_TTL", "3600")
    code, _, err = run(capsys, "sign", "/i/a/b.png", "--expires-in", "3000", "--align", "86400")
    assert code == 2 and "once aligned to 86400 s" in err and "EDGE_MAX_TTL=3600" in err
    code, _, err = run(capsys, "sign", "/i/a/b.png", "--expires-in", "60", "--align", "-60")
    assert code == 2 and "usage:" in err
