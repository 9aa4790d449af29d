"""Storage.siblings: where a transform's source is looked for (``photo.webp`` made from
``photo.jpg``), in ONE storage request, on a real folder, moto and s3rver.

The same cases run on the three storages. The S3 ones are reached through a proxy in
front of the server (tests/support/faults.py) that counts every request on the wire and
can answer 500 instead; the folder's requests are its lookups (one per call, of at
most seven names, never a scan of the folder), counted around the real ``os.stat``.
Then what only S3 has: a storage prefix, a failing server, the request line itself, a
chunked answer, and the listing's XML read with its bounds.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest

from edge.errors import EdgeError, StorageError
from edge.http import IMAGE_TYPES
from edge.storage import failures
from edge.storage.base import NO_CONDITIONS, SOURCE_PREFERENCE, Storage
from edge.storage.config import S3Settings
from edge.storage.failures import Fault
from edge.storage.files import FileStorage
from edge.storage.s3 import S3Storage
from edge.storage.s3_answers import LIST_BYTES, LIST_KEYS, listed_keys
from edge.transform.types import FORMATS
from tests.support.faults import FaultProxy, fault_proxy
from tests.support.servers import BUCKET, S3RVER_KEY, free_port
from tests.support.stores import tiny_store

#: Attempts per S3 request in these tests: a 500 is tried this many times.
ATTEMPTS = 3
_prefixes = itertools.count()


@dataclass
class Store:
    """One storage and the means to fill it and to count the requests that reach it."""

    kind: str
    put: Callable[[str], None]  # an object at this storage key (below any prefix)
    make: Callable[[], Storage]  # a fresh storage, not yet opened
    requests: Callable[[], int]  # storage requests made so far
    proxy: FaultProxy | None = None  # in front of an S3 server


def s3_settings(endpoint: str) -> S3Settings:
    return S3Settings(
        endpoint_url=endpoint,
        region="us-east-1",
        max_connections=4,
        connect_timeout=2.0,
        read_timeout=2.0,
        max_attempts=ATTEMPTS,
    )


def s3_put(endpoint: str, key: str, data: bytes = b"x") -> None:
    # A session of its own: boto3's default one keeps the first credentials it found, and
    # s3rver takes only its own.
    session = boto3.session.Session()
    client = session.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.put_object(Bucket=BUCKET, Key=key, Body=data)


def run(storage: Storage, call: Callable[[Storage], Any]) -> Any:
    """``call(storage)``'s result (awaited), on a storage opened for it and closed after."""

    async def main() -> Any:
        await storage.open()
        try:
            return await call(storage)
        finally:
            await storage.aclose()

    return asyncio.run(asyncio.wait_for(main(), 30))


def siblings(store: Store, *keys: str) -> list[list[str]]:
    """The siblings of each key, asked on one storage in turn."""

    async def each(storage: Storage) -> list[list[str]]:
        return [await storage.siblings(key) for key in keys]

    result: list[list[str]] = run(store.make(), each)
    return result


@pytest.fixture
def s3_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, S3RVER_KEY)  # s3rver knows this one; moto takes any
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture(params=["folder", "moto", "s3rver"])
def store(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    s3_credentials: None,
) -> Iterator[Store]:
    """The same storage contents on a folder, a prefix of moto's bucket, s3rver's."""
    if request.param == "folder":
        for visibility in ("public", "private"):
            (tmp_path / visibility).mkdir()
        calls: list[str] = []
        lookup = FileStorage._siblings

        def counted(self: FileStorage, key: str) -> list[str]:
            looked: list[str] = []
            real_stat = os.stat

            def stat(path: str) -> os.stat_result:
                looked.append(path)
                return real_stat(path)

            with pytest.MonkeyPatch.context() as patch:  # a lookup made is a request made
                patch.setattr(os, "stat", stat)
                found = lookup(self, key)
            if looked:
                calls.append(key)
            return found

        monkeypatch.setattr(FileStorage, "_siblings", counted)

        def put_file(key: str) -> None:
            (tmp_path / key).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / key).write_bytes(b"x")

        yield Store("folder", put_file, lambda: FileStorage(tmp_path), lambda: len(calls))
        return
    server = request.getfixturevalue(f"{request.param}_server")
    prefix = f"siblings{next(_prefixes)}/"
    with fault_proxy(urlsplit(server.endpoint_url).port or 0) as proxy:
        endpoint = f"http://127.0.0.1:{proxy.port}"
        yield Store(
            request.param,
            lambda key: s3_put(server.endpoint_url, prefix + key),
            lambda: S3Storage(bucket=BUCKET, prefix=prefix, settings=s3_settings(endpoint)),
            lambda: len(proxy.seen),
            proxy,
        )


# --- the same cases on the three storages ----------------------------------------------


def test_every_other_extension_is_found_in_the_documented_order(store: Store) -> None:
    folder = "public/alice/photos/"
    for extension in (".gif", ".svg", ".webp", ".jpeg", ".avif", ".png", ".jpg"):  # not in order
        store.put(f"{folder}photo{extension}")
    webp, png, tiff = siblings(
        store, f"{folder}photo.webp", f"{folder}photo.png", f"{folder}photo.tiff"
    )
    assert webp == [f"{folder}photo{e}" for e in (".png", ".jpg", ".jpeg", ".avif", ".gif", ".svg")]
    assert png == [f"{folder}photo{e}" for e in (".jpg", ".jpeg", ".webp", ".avif", ".gif", ".svg")]
    assert tiff == [f"{folder}photo{e}" for e in SOURCE_PREFERENCE], "the key itself only goes"


def test_only_the_stem_a_dot_and_an_image_extension_count(store: Store) -> None:
    folder = "public/alice/"
    for name in (
        "photo.gif",  # the one that counts
        "photo.jpg/x.png",  # a folder named like a source: what is in it is further down
        "photo.webp/x.jpg",
        "photo.old.jpg",
        "photos.jpg",
        "xphoto.png",
        "photo.JPG",
        "photo.jpg.bak",
        "photo.tiff",
        "photo",
        "deeper/photo.png",
    ):
        store.put(folder + name)
    assert siblings(store, folder + "photo.webp") == [[folder + "photo.gif"]]
    assert siblings(store, folder + "photo.old.webp") == [[folder + "photo.old.jpg"]]


def test_an_empty_or_missing_folder_has_none(store: Store) -> None:
    store.put("public/alice/other.png")
    assert siblings(
        store,
        "public/alice/photo.webp",  # the folder holds no such name
        "public/nobody/photo.webp",  # no such folder
        "private/alice/photo.webp",  # the other visibility holds nothing
        "public/alice/other.png/photo.webp",  # a file where a folder would be
    ) == [[], [], [], []]


def test_names_with_spaces_non_ascii_and_xml_and_url_specials(store: Store) -> None:
    folder = "public/alice/été 2024 & co/"
    stem = "a b+c=d%20&amp;<é>'ü\"#?;ß漢"
    for extension in (".jpg", ".png", ".gif"):
        store.put(folder + stem + extension)
    store.put(folder + stem + "x.png")  # a longer stem
    assert siblings(store, folder + stem + ".webp") == [
        [folder + stem + extension for extension in (".png", ".jpg", ".gif")]
    ]


def test_each_call_is_exactly_one_storage_request(store: Store) -> None:
    for name in ("photo.png", "photo.jpg", "photo.webp/x.png", "photo.old.gif"):
        store.put("public/alice/" + name)
    keys = ("public/alice/photo.webp", "public/alice/photo.png", "public/nobody/photo.webp")
    before = store.requests()
    found = siblings(store, *keys)
    assert found[0] == ["public/alice/photo.png", "public/alice/photo.jpg"]
    assert store.requests() - before == len(keys), "one request per call, found or not"
    if store.proxy is not None:  # each of them a listing of the bucket
        lines = [line for line, _ in store.proxy.seen]
        assert all(line.startswith(f"GET /{BUCKET}?") for line in lines[-len(keys) :]), lines


def test_a_name_without_a_stem_asks_nothing(store: Store) -> None:
    before = store.requests()
    assert siblings(store, "public/alice/.webp") == [[]]
    assert store.requests() == before


# --- a folder ----------------------------------------------------------------------------


def test_a_large_folder_is_never_scanned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A user's folder may hold 100,000 images: a missing name costs at most seven lookups,
    not a scan of them all."""
    folder = tmp_path / "public" / "alice"
    folder.mkdir(parents=True)
    (tmp_path / "private").mkdir()
    for number in range(3000):
        (folder / f"img{number}.jpg").write_bytes(b"")
    (folder / "photo.gif").write_bytes(b"x")
    looked: list[str] = []
    real_stat = os.stat

    def counted_stat(path: Any, *args: Any, **kwargs: Any) -> Any:
        looked.append(str(path))
        return real_stat(path, *args, **kwargs)

    def no_scan(path: Any) -> Any:
        raise AssertionError(f"scanned {path}")

    monkeypatch.setattr(os, "stat", counted_stat)
    monkeypatch.setattr(os, "scandir", no_scan)
    found = siblings(
        Store("folder", lambda _: None, lambda: FileStorage(tmp_path), lambda: 0),
        "public/alice/photo.webp",
    )
    assert found == [["public/alice/photo.gif"]]
    looked = [path for path in looked if path.startswith(str(folder))]  # not open()'s own
    assert 0 < len(looked) <= len(SOURCE_PREFERENCE)


def test_a_folder_never_counts_what_resolves_outside_its_visibility(tmp_path: Path) -> None:
    for folder in ("public/alice", "private/alice", "elsewhere"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "private/alice/photo.jpg").write_bytes(b"secret")
    (tmp_path / "public/alice/photo.png").write_bytes(b"public")
    (tmp_path / "public/alice/photo.jpg").symlink_to(tmp_path / "private/alice/photo.jpg")
    (tmp_path / "public/alice/photo.gif").symlink_to(tmp_path / "public/alice/photo.png")
    (tmp_path / "public/alice/photo.avif").symlink_to(tmp_path / "public/alice/none.avif")
    (tmp_path / "public/alice/photo.jpeg").mkdir()
    (tmp_path / "public/bob").symlink_to(tmp_path / "private/alice")  # a folder leading out
    (tmp_path / "public/carol").symlink_to(tmp_path / "public/alice")  # one staying in
    storage = FileStorage(tmp_path)
    keys = ("public/alice/photo.webp", "public/bob/photo.webp", "public/carol/photo.webp")
    alice, bob, carol = run(storage, lambda s: asyncio.gather(*map(s.siblings, keys)))
    assert alice == ["public/alice/photo.png", "public/alice/photo.gif"]
    assert bob == [], "private/ is never listed through public/"
    assert carol == ["public/carol/photo.png", "public/carol/photo.gif"]


# --- S3 only -----------------------------------------------------------------------------


@pytest.mark.parametrize("server_name", ["moto", "s3rver"])
def test_a_storage_prefix_is_kept_to_and_stripped(
    server_name: str, request: pytest.FixtureRequest, s3_credentials: None
) -> None:
    endpoint = request.getfixturevalue(f"{server_name}_server").endpoint_url
    prefix = f"siblings{next(_prefixes)}/"
    user = prefix.strip("/")  # a folder no other test uses, for the storage without prefix
    for key in (
        f"{prefix}public/{user}/photo.png",
        f"{prefix}x/public/{user}/photo.jpg",  # a longer prefix: not this storage's
        f"public/{user}/photo.jpeg",  # outside the prefix
        f"{prefix}public/{user}/photo.gif",
    ):
        s3_put(endpoint, key)
    key = f"public/{user}/photo.webp"
    prefixed = S3Storage(bucket=BUCKET, prefix=prefix, settings=s3_settings(endpoint))
    unprefixed = S3Storage(bucket=BUCKET, settings=s3_settings(endpoint))
    assert run(prefixed, lambda s: s.siblings(key)) == [
        f"public/{user}/photo.png",
        f"public/{user}/photo.gif",
    ]
    assert run(unprefixed, lambda s: s.siblings(key)) == [f"public/{user}/photo.jpeg"]


def outcome(storage: Storage, call: Callable[[Storage], Any]) -> EdgeError:
    async def failing(storage: Storage) -> EdgeError:
        try:
            await call(storage)
        except EdgeError as error:
            return error
        raise AssertionError("no failure")

    error: EdgeError = run(storage, failing)
    return error


@pytest.mark.parametrize("server_name", ["moto", "s3rver"])
def test_a_server_answering_500_is_the_error_a_read_gets(
    server_name: str, request: pytest.FixtureRequest, s3_credentials: None
) -> None:
    server = request.getfixturevalue(f"{server_name}_server")
    with fault_proxy(urlsplit(server.endpoint_url).port or 0) as proxy:
        storage = S3Storage(bucket=BUCKET, settings=s3_settings(f"http://127.0.0.1:{proxy.port}"))
        proxy.faults = ["500"] * ATTEMPTS
        listed = outcome(storage, lambda s: s.siblings("public/alice/photo.webp"))
        assert len(proxy.seen) == ATTEMPTS, "retried as a read is, no more"
        proxy.faults = ["500"] * ATTEMPTS
        read = outcome(
            storage, lambda s: s.read("public/alice/photo.jpg", NO_CONDITIONS, head=False)
        )
    for error in (listed, read):
        assert isinstance(error, Fault) and error.row is failures.INTERNAL_ERROR, error
    assert type(listed) is type(read) and isinstance(listed, StorageError)
    expected = f"S3 answered 500 InternalError for public/alice/photo.* ({ATTEMPTS} attempts)"
    assert listed.reason == expected


def test_a_server_down_is_the_error_a_read_gets(s3_credentials: None) -> None:
    storage = S3Storage(bucket=BUCKET, settings=s3_settings(f"http://127.0.0.1:{free_port()}"))
    listed = outcome(storage, lambda s: s.siblings("public/alice/photo.webp"))
    read = outcome(storage, lambda s: s.read("public/alice/photo.jpg", NO_CONDITIONS, head=False))
    for error in (listed, read):
        assert isinstance(error, Fault) and error.row is failures.CONNECT_REFUSED, error
    assert listed.reason == read.reason


def listing_answer(body: bytes, *, chunked: bool = False) -> bytes:
    if chunked:  # as S3 sends listings: no Content-Length
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:50], body[50:]))
        return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body


LISTING = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
    b"<Name>edge-test</Name><Prefix>p/public/alice/a%20b.</Prefix><KeyCount>3</KeyCount>"
    b"<MaxKeys>64</MaxKeys><Delimiter>/</Delimiter><IsTruncated>false</IsTruncated>"
    b"<EncodingType>url</EncodingType>"
    b"<Contents><Key>p/public/alice/a+b.jpg</Key><Size>1</Size></Contents>"
    b"<Contents><Key>p/public/alice/a%20b.png</Key><Size>1</Size></Contents>"
    b"<CommonPrefixes><Prefix>p/public/alice/a+b.gif/</Prefix></CommonPrefixes>"
    b"</ListBucketResult>"
)


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
def test_the_request_line_is_the_signed_canonical_query(
    chunked: bool, s3_credentials: None
) -> None:
    async def answer(connection: int, number: int, head: bytes) -> bytes:
        return listing_answer(LISTING, chunked=chunked)

    with tiny_store(answer) as (port, seen):
        storage = S3Storage(
            bucket=BUCKET, prefix="p/", settings=s3_settings(f"http://127.0.0.1:{port}")
        )
        found = run(storage, lambda s: s.siblings("public/alice/a b.webp"))
    assert found == ["public/alice/a b.png", "public/alice/a b.jpg"]
    assert seen == [
        b"GET /edge-test?delimiter=%2F&encoding-type=url&list-type=2"
        b"&max-keys=" + str(LIST_KEYS).encode() + b"&prefix=p%2Fpublic%2Falice%2Fa%20b. HTTP/1.1"
    ]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"<html>busy</html>", "a 'html' document, not a ListBucketResult"),
        (b"<ListBucketResult><Contents><Key>x", "not XML (no element found"),
        (b"", "not XML (no element found"),
        (b"\xff\xfe<", "not XML"),
        (
            b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
            b"<ListBucketResult><Contents><Key>&b;</Key></Contents></ListBucketResult>",
            "a document type declaration",
        ),
        (
            b'<!DOCTYPE l SYSTEM "file:///etc/passwd"><ListBucketResult/>',
            "a document type declaration",
        ),
    ],
    ids=["html", "cut", "empty", "not-utf8", "entities", "external"],
)
def test_anything_but_a_listing_is_refused(body: bytes, detail: str) -> None:
    with pytest.raises(Fault) as refused:
        listed_keys(body, "public/alice/photo.*")
    assert refused.value.row is failures.BAD_LISTING
    assert refused.value.reason.startswith(
        f"S3 sent an unreadable listing of public/alice/photo.*: {detail}"
    ), refused.value.reason


def test_keys_are_xml_text_unless_the_listing_says_url() -> None:
    plain = (
        b"<ListBucketResult><Contents><Key>a &amp; b+c%20&#233;&lt;.jpg</Key></Contents>"
        b"<CommonPrefixes><Prefix>a &amp; b.png/</Prefix></CommonPrefixes></ListBucketResult>"
    )
    assert listed_keys(plain, "k") == ["a & b+c%20é<.jpg"]
    assert listed_keys(LISTING, "k") == ["p/public/alice/a b.jpg", "p/public/alice/a b.png"]


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "read"])
def test_a_listing_over_its_bound_is_refused(declared: bool, s3_credentials: None) -> None:
    padding = b"<Contents><Key>" + b"x" * 1000 + b"</Key></Contents>"
    body = LISTING.replace(b"</ListBucketResult>", padding * (LIST_BYTES // len(padding) + 1))
    body += b"</ListBucketResult>"

    async def answer(connection: int, number: int, head: bytes) -> bytes:
        return listing_answer(body, chunked=not declared)

    with tiny_store(answer) as (port, seen):
        storage = S3Storage(bucket=BUCKET, settings=s3_settings(f"http://127.0.0.1:{port}"))
        error = outcome(storage, lambda s: s.siblings("public/alice/photo.webp"))
    assert isinstance(error, Fault) and error.row is failures.BAD_LISTING, error
    assert f"over {LIST_BYTES}" in error.reason
    assert len(seen) == 1, "never tried again"
    assert f"{LIST_BYTES // 1024} KiB (`LIST_BYTES`)" in failures.BAD_LISTING.failure, "docs"


def test_the_source_extensions_are_the_transform_formats_and_image_types() -> None:
    assert sorted(SOURCE_PREFERENCE[:-1]) == sorted(FORMATS), "one table of image extensions"
    assert SOURCE_PREFERENCE[-1] == ".svg", "a source format no transform writes, last"
    assert len(set(SOURCE_PREFERENCE)) == len(SOURCE_PREFERENCE)
    assert all(extension[1:] in IMAGE_TYPES for extension in SOURCE_PREFERENCE)
    assert SOURCE_PREFERENCE[0] == ".png", "lossless first"


def test_the_architecture_states_the_cost_bounds_and_order() -> None:
    text = (Path(__file__).parent.parent / "docs" / "architecture.md").read_text("utf-8")
    text = " ".join(text.split())
    assert "one storage request per visibility folder" in text
    assert f"at most {LIST_KEYS} names (`LIST_KEYS`" in text
    assert f"within {LIST_BYTES // 1024} KiB (`LIST_BYTES`)" in text
    assert ", ".join(f"`{extension}`" for extension in SOURCE_PREFERENCE) in text
