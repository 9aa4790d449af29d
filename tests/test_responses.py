"""edge.responses: the header policy and the one place errors become HTTP answers."""

from __future__ import annotations

import json

import pytest

from edge import errors
from edge.responses import (
    ATTACHMENT,
    CORS_ANY,
    NO_STORE,
    NOSNIFF,
    OCTET_STREAM,
    SVG_POLICY,
    error_response,
    last_modified_header,
    type_headers,
)


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("image/png", ((b"content-type", b"image/png"),)),
        ("image/svg+xml", ((b"content-type", b"image/svg+xml"), SVG_POLICY)),
        ("text/html", (OCTET_STREAM, ATTACHMENT)),
        ("application/javascript", (OCTET_STREAM, ATTACHMENT)),
        ("application/octet-stream", (OCTET_STREAM, ATTACHMENT)),
    ],
)
def test_what_is_not_an_image_is_a_download_and_svg_is_sandboxed(
    content_type: str, expected: tuple[tuple[bytes, bytes], ...]
) -> None:
    assert type_headers(content_type) == expected


def test_last_modified_is_an_http_date() -> None:
    assert last_modified_header(0) == (b"last-modified", b"Thu, 01 Jan 1970 00:00:00 GMT")


KINDS = [
    errors.BadRequest,
    errors.NotFound,
    errors.SignatureInvalid,
    errors.MethodNotAllowed,
    errors.HeadersTooLarge,
    errors.StorageError,
    errors.StorageTimeout,
    errors.NotReady,
    errors.EdgeError,
]


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.__name__)
@pytest.mark.parametrize("cors", [True, False])
def test_an_error_answer_shows_its_code_and_message_never_its_reason(
    kind: type[errors.EdgeError], cors: bool
) -> None:
    status, headers, body = error_response(kind("the secret reason: key k1"), cors=cors)
    assert status == kind.status
    assert json.loads(body) == {
        "error": {"code": kind.code, "message": kind.message, "status": kind.status}
    }
    assert b"secret" not in body
    named = dict(headers)
    assert named[b"content-type"] == b"application/json"
    assert named[b"content-length"] == str(len(body)).encode()
    assert NO_STORE in headers and NOSNIFF in headers
    assert (CORS_ANY in headers) is cors
    assert (b"allow" in named) is (kind is errors.MethodNotAllowed)


def test_errors_that_carry_data_say_it_in_their_headers() -> None:
    _, headers, _ = error_response(errors.RangeNotSatisfiable("past the end", size=42), cors=False)
    assert (b"content-range", b"bytes */42") in headers
    _, headers, _ = error_response(errors.Overloaded("busy", retry_after=3), cors=False)
    assert (b"retry-after", b"3") in headers
    _, again, _ = error_response(errors.Overloaded("busy", retry_after=1), cors=False)
    assert (b"retry-after", b"1") in again and (b"retry-after", b"3") not in again
