"""Hypothesis strategies for valid image paths and hostile URL pieces."""

from __future__ import annotations

from hypothesis import strategies as st

from edge.paths import MAX_PATH_BYTES, MAX_SEGMENT_BYTES

USER_CHARS = "ABCXYZabcxyz0189_.-"
# Any character but "/", backslash, C0 controls, DEL and lone surrogates; reserved
# characters, spaces and non-ASCII (accents, CJK, emoji, fullwidth look-alikes) included.
SEGMENT_CHARS = st.characters(
    exclude_categories=["Cs"],
    exclude_characters="/\\\x7f" + "".join(map(chr, range(32))),
)

users = st.text(USER_CHARS, min_size=1, max_size=64).filter(lambda u: not u.startswith("."))
segments = st.text(SEGMENT_CHARS, min_size=1, max_size=40).filter(
    lambda s: s not in (".", "..") and len(s.encode()) <= MAX_SEGMENT_BYTES
)


@st.composite
def image_paths(draw: st.DrawFn) -> str:
    """A decoded ``/i/{user}/{file}`` path that the spec calls valid."""
    path = f"/i/{draw(users)}/" + "/".join(draw(st.lists(segments, min_size=1, max_size=5)))
    if len(path.encode()) > MAX_PATH_BYTES:
        path = path.encode()[:MAX_PATH_BYTES].decode(errors="ignore").rstrip("/.")
    return path


def percent_variants(data: st.DataObject, text: str, *, keep: str = "") -> str:
    """Percent-encode any UTF-8 byte of ``text`` or not, in upper or lower case hex."""
    out = []
    for byte in text.encode():
        char = chr(byte)
        literal_ok = byte < 128 and (char.isalnum() or char in "-._~" + keep)
        if literal_ok and not data.draw(st.booleans()):
            out.append(char)
        else:
            escape = f"%{byte:02X}"
            out.append(escape if data.draw(st.booleans()) else escape.lower())
    return "".join(out)


# Pieces attackers use: separators, escapes, dot segments, NUL, DEL, backslash,
# fullwidth solidus and full stop (U+FF0F, U+FF0E), overlong UTF-8 and parameter names.
hostile_text = st.lists(
    st.sampled_from(
        [
            *"/%.&=;?#+ \\\x00\x7f\u00e9\uff0f\uff0e0123456789abcdefsigexpkid_-",
            *("%2e", "%2F", "%ff", "%00", "sig=", "exp=", "kid=", "..", "%C0%AE"),
        ]
    ),
    max_size=30,
).map("".join)
