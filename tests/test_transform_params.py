"""Transform parameters as pure functions: every canonical value, every malformed form of
every parameter, presets, repeats, the transform string and the effective key."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from edge.errors import BadRequest
from edge.transform_params import (
    DEFAULTS,
    TRANSFORM_MEMO_KEY_BYTES,
    TRANSFORM_NAMES,
    ParsedTransforms,
    Transform,
    parse_transform,
    split_params,
    transform_from_pairs,
)
from tests.support.transform_params import MALFORMED, VALID

#: Presets that are malformed, as they appear in a query: (raw part, what the reason says).
MALFORMED_PRESETS = [
    ("p:", "NAME must be"),
    ("p:" + "a" * 65, "NAME must be"),
    ("p:a.b", "NAME must be"),
    ("p:a%20b", "NAME must be"),
    ("p:a%2Fb", "NAME must be"),
    ("p:%C3%A9", "NAME must be"),
    ("p:a%00", "NAME must be"),
    ("p:thumb=x", "takes no value"),
    ("p:thumb=%20", "takes no value"),
    ("p:a&p:b", "more than one preset"),
    ("p:a&p:a", "more than one preset"),
    ("p:a&p%3Ab", "more than one preset"),
]


def test_the_tables_cover_every_parameter() -> None:
    assert set(VALID) == set(MALFORMED) == TRANSFORM_NAMES
    assert len(TRANSFORM_NAMES) == 12


@pytest.mark.parametrize(
    ("name", "text", "typed"),
    [(name, text, typed) for name, values in VALID.items() for text, typed in values.items()],
)
def test_every_canonical_value_parses_and_reads_back(name: str, text: str, typed: object) -> None:
    transform = parse_transform(f"{name}={text}".encode())
    assert transform is not None
    assert getattr(transform, name) == typed and type(getattr(transform, name)) is type(typed)
    assert transform.canonical() == f"{name}={text}"
    assert transform_from_pairs([(name, text)]) == transform


@pytest.mark.parametrize(
    ("name", "value"),
    [(name, value) for name, values in MALFORMED.items() for value in values],
)
def test_every_malformed_value_is_a_bad_request_naming_the_parameter(name: str, value: str) -> None:
    query = f"{name}={quote(value, safe='')}&sig=x&exp=1".encode()
    with pytest.raises(BadRequest, match=f"transform parameter {name}=.* is malformed") as raised:
        parse_transform(query)
    assert raised.value.code == "BAD_REQUEST" and raised.value.status == 400
    with pytest.raises(BadRequest, match=f"transform parameter {name}="):
        transform_from_pairs([(name, value)])


@pytest.mark.parametrize("name", sorted(TRANSFORM_NAMES))
def test_a_name_without_a_value_is_malformed_too(name: str) -> None:
    for query in (name, f"{name}=", f"v=1&{name}"):
        with pytest.raises(BadRequest, match=f"transform parameter {name}="):
            parse_transform(query.encode())


@pytest.mark.parametrize("name", sorted(TRANSFORM_NAMES))
def test_a_parameter_given_twice_is_a_bad_request(name: str) -> None:
    value = next(iter(VALID[name]))
    encoded = f"%{ord(name[0]):02x}{name[1:]}"  # the same name, percent-encoded
    for query in (f"{name}={value}&{name}={value}", f"{name}={value}&exp=1&{encoded}={value}"):
        with pytest.raises(BadRequest, match=f"transform parameter {name} is given more than once"):
            parse_transform(query.encode())
    with pytest.raises(BadRequest, match="more than once"):
        transform_from_pairs([(name, value), (name, value)])


@pytest.mark.parametrize(("query", "why"), MALFORMED_PRESETS)
def test_malformed_presets(query: str, why: str) -> None:
    with pytest.raises(BadRequest, match=why):
        parse_transform(query.encode())


def test_presets() -> None:
    thumb = Transform(preset="thumb")
    for query in (
        b"p:thumb",
        b"p:thumb=",
        b"p%3Athumb",
        b"p%3athumb=",
        b"%70:thumb",
        b"v=1&p:thumb",
    ):
        assert parse_transform(query) == thumb, query
    longest = "A-z_0" + "9" * 59
    assert parse_transform(f"p:{longest}".encode()) == Transform(preset=longest)
    assert transform_from_pairs([("p:thumb", "")]) == thumb
    assert thumb.canonical() == "p:thumb"
    assert parse_transform(b"p:Thumb") != thumb  # names are case-sensitive
    with pytest.raises(BadRequest, match="takes no value"):
        transform_from_pairs([("p:thumb", "x")])


@pytest.mark.parametrize(
    "query",
    [
        b"",
        b"sig=QcXC6tnsspH0X92dac0spwUtMW1vO-u-baCVG4xYImE&exp=1704070800",
        b"sig=x&exp=1&kid=main",
        b"v=3&utm_source=x",
        b"W=9&Fit=cover&Q=1&P:thumb",  # names are case-sensitive
        b"width=800&height=9&quality=1&preset=x&p=1&pp:x",  # near misses, ignored
        b"%57=9&%73ig=x",  # percent-encoded, but not a transform name once decoded
        b"&&&",
        b"a=w&b=h&c=p:x",  # names as values
    ],
)
def test_queries_without_transform_parameters(query: bytes) -> None:
    assert parse_transform(query) is None


def test_names_and_values_are_percent_decoded_and_plus_is_no_space() -> None:
    assert parse_transform(b"%77=%38%30%30&%61spect=16%3A9") == Transform(w=800, aspect="16:9")
    assert parse_transform(b"aspect=16%3a9&crop=top%2Dleft") == Transform(
        aspect="16:9", crop="top-left"
    )
    with pytest.raises(BadRequest):
        parse_transform(b"w=+800")
    with pytest.raises(BadRequest):
        parse_transform(b"fit=scale+down")
    with pytest.raises(BadRequest, match="is malformed"):
        parse_transform(b"w=%ff")  # bytes that are no UTF-8: malformed, not a crash


def test_only_ampersand_separates() -> None:
    with pytest.raises(BadRequest, match="w="):
        parse_transform(b"w=800;h=600")  # one parameter w, value "800;h=600"
    assert parse_transform(b"x=1;w=800") is None  # one parameter named "x", value "1;w=800"


def test_the_transform_string_is_sorted_by_name_in_byte_order() -> None:
    every = "&".join(f"{name}={next(iter(values))}" for name, values in reversed(VALID.items()))
    transform = parse_transform(f"{every}&p:zz".encode())
    assert transform is not None
    text = transform.canonical()
    names = [part.partition("=")[0] for part in text.split("&")]
    assert names == sorted(names, key=str.encode)
    assert text == (
        "aspect=original&blur=0&crop=center&dpr=1&fit=cover&flip=h&grayscale=true&h=1"
        "&p:zz&q=1&rotate=0&sharpen=0&w=1"
    )
    assert transform.params()[8] == ("p:zz", "")
    assert parse_transform(transform.canonical().encode()) == transform


def test_the_effective_transform_fills_the_defaults() -> None:
    plain = parse_transform(b"w=800")
    assert plain is not None
    same = [
        b"w=800&q=80",
        b"fit=cover&w=800&crop=center",
        b"w=800&blur=0&sharpen=0&rotate=auto",
        b"w=800&rotate=0&grayscale=false&dpr=1&aspect=original",
    ]
    for query in same:
        other = parse_transform(query)
        assert other is not None and other != plain  # signed apart...
        assert other.effective() == plain.effective(), query  # ...rendered alike
        assert other.effective_key() == plain.effective_key()
    assert plain.effective_key() == (
        "aspect=original&blur=0&crop=center&dpr=1&fit=cover&grayscale=false&q=80"
        "&rotate=0&sharpen=0&w=800"
    )
    different = [b"w=801", b"w=800&q=81", b"w=800&fit=contain", b"w=800&rotate=90", b"h=800"]
    keys = {parse_transform(query).effective_key() for query in different}  # type: ignore[union-attr]
    assert len(keys) == len(different) and plain.effective_key() not in keys
    assert DEFAULTS.effective() == DEFAULTS


def test_an_unresolved_preset_fills_nothing_and_the_url_overrides_it() -> None:
    url = parse_transform(b"p:thumb&blur=0&rotate=auto")
    assert url is not None
    assert url.effective() == Transform(blur=0, rotate=0, preset="thumb")
    assert url.effective_key() == "blur=0&p:thumb&rotate=0"
    assert parse_transform(b"p:thumb").effective_key() == "p:thumb"  # type: ignore[union-attr]
    preset = Transform(w=200, h=200, fit="cover", q=70, blur=40)
    merged = url.over(preset)
    assert merged == Transform(w=200, h=200, fit="cover", q=70, blur=0, rotate="auto")
    assert merged.effective().q == 70 and merged.effective().crop == "center"


def test_signer_pairs_are_strict() -> None:
    assert transform_from_pairs([]) is None
    assert transform_from_pairs([("w", 800), ("fit", "cover")]) == Transform(w=800, fit="cover")
    for name in ("v", "sig", "exp", "kid", "W", "p", "", "%77"):
        with pytest.raises(BadRequest, match="is not a transform parameter"):
            transform_from_pairs([(name, "1")])
    with pytest.raises(BadRequest, match="grayscale"):
        transform_from_pairs([("grayscale", True)])  # str(True) is "True"
    with pytest.raises(BadRequest):
        transform_from_pairs([("aspect", "16%3A9")])  # no decoding: the URL's text itself


def test_split_params_is_the_command_lines_form() -> None:
    assert split_params("") == []
    assert split_params("w=800&h=600&p:thumb&p:x=") == [
        ("w", "800"),
        ("h", "600"),
        ("p:thumb", ""),
        ("p:x", ""),
    ]
    assert split_params("a=b=c") == [("a", "b=c")]


def test_reasons_stay_short_whatever_a_client_sends() -> None:
    with pytest.raises(BadRequest) as raised:
        parse_transform(b"w=" + b"9" * 100_000)
    assert len(raised.value.reason) < 200


def test_parsed_transforms_are_remembered_per_raw_query_and_bounded() -> None:
    memo = ParsedTransforms()
    assert memo.parse(b"w=400") == parse_transform(b"w=400") == Transform(w=400)
    assert memo.parse(b"w=400") is memo.parse(b"w=400")  # the second from the memo
    # Another raw query is another entry, even where the transform is equal: a signature
    # never rides along with a parsed transform.
    assert memo.parse(b"w=400&exp=1&sig=x") == Transform(w=400)
    assert set(memo.parsed) == {b"w=400", b"w=400&exp=1&sig=x"}
    # Neither a query without transform parameters nor a malformed one is kept.
    assert memo.parse(b"v=3") is None
    with pytest.raises(BadRequest):
        memo.parse(b"w=0400")
    with pytest.raises(BadRequest):
        memo.parse(b"w=0400")
    assert set(memo.parsed) == {b"w=400", b"w=400&exp=1&sig=x"}
    # A flood of distinct queries holds no more than the memo's bounds, in entries and bytes.
    bound = memo.parsed.max_bytes
    for width in range(1, 10_001):
        query = b"w=%d&x=%s" % (width, b"a" * (width % 400))
        assert memo.parse(query) == Transform(w=width)
        assert len(memo.parsed) <= memo.parsed.max_entries and memo.parsed.bytes <= bound
    long = b"w=400&x=" + b"a" * TRANSFORM_MEMO_KEY_BYTES  # padded: parsed, never kept
    assert memo.parse(long) == Transform(w=400) and long not in memo.parsed
