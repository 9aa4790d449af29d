"""Settings: one frozen object from the environment, errors that name the variable."""

from __future__ import annotations

import dataclasses

import pytest

from edge.cache import MISSING_SHARE, HotCache
from edge.errors import ConfigError
from edge.keys import b64url_encode
from edge.settings import Settings, documented
from edge.storage import S3Settings, StorageTarget
from edge.storage.base import Stat

SECRET = b64url_encode(bytes(range(32)))


def test_defaults_are_safe() -> None:
    settings = Settings.from_env({})
    assert len(settings.signing_keys) == 0, (
        "no key configured means no private image, never an empty key"
    )
    assert settings.max_ttl == 7 * 24 * 3600
    assert settings.clock_leeway == 0


def test_values_are_read_and_frozen() -> None:
    settings = Settings.from_env(
        {"EDGE_SIGNING_KEYS": f"k:hs256:{SECRET}", "EDGE_MAX_TTL": "0", "EDGE_CLOCK_LEEWAY": " 5 "}
    )
    assert settings.signing_keys.by_kid["k"].alg == "hs256"
    assert (settings.max_ttl, settings.clock_leeway) == (0, 5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.max_ttl = 3  # type: ignore[misc]


@pytest.mark.parametrize("value", ["-1", "1.5", "ten", "1e3", "١٢", "9" * 13])
@pytest.mark.parametrize("name", ["EDGE_MAX_TTL", "EDGE_CLOCK_LEEWAY"])
def test_bad_numbers_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"^{name}: expected a whole number of seconds"):
        Settings.from_env({name: value})


def test_bad_keyring_names_the_variable_not_the_secret() -> None:
    with pytest.raises(ConfigError, match=r"^EDGE_SIGNING_KEYS: entry 1") as caught:
        Settings.from_env({"EDGE_SIGNING_KEYS": f"k:hs512:{SECRET}"})
    assert SECRET not in str(caught.value)


def test_every_setting_is_documented_with_a_parsable_default() -> None:
    names = [name for name, _ in documented()]
    assert names == sorted(set(names), key=names.index) and all(
        n.startswith("EDGE_") for n in names
    )
    for name, spec in documented():
        assert len(spec.help) > 20, name
        spec.parse(name, spec.default)


@pytest.mark.parametrize(
    "name", ["EDGE_MAX_STORAGE_READS", "EDGE_CACHE_MAX_BYTES", "EDGE_METRICS", "EDGE_MAX_TTL"]
)
def test_a_number_too_long_to_convert_is_a_config_error(name: str) -> None:
    """Python refuses int() of 4301 digits with a ValueError; it must be a one-line error."""
    with pytest.raises(ConfigError, match=f"^{name}: expected"):
        Settings.from_env({name: "9" * 5000})


def test_an_empty_storage_is_refused_not_the_working_directory() -> None:
    with pytest.raises(ConfigError, match=r"^EDGE_STORAGE: empty"):
        Settings.from_env({"EDGE_STORAGE": " "})


def test_modes_are_literals_and_the_s3_group_is_handed_over_whole() -> None:
    settings = Settings.from_env(
        {
            "EDGE_ACCESS_LOG": "OFF",
            "EDGE_METRICS": "9100",
            "EDGE_STORAGE": "s3://bucket/some/prefix/",
            "EDGE_S3_REGION": "eu-west-1",
            "EDGE_S3_READ_TIMEOUT": "0.5",
            "EDGE_S3_ADDRESSING": "Virtual",
        }
    )
    assert (settings.access_log, settings.metrics) == ("off", 9100)
    assert settings.storage == StorageTarget("s3", "bucket", "some/prefix/")
    assert settings.s3 == S3Settings(
        endpoint_url=None,
        region="eu-west-1",
        max_connections=64,
        connect_timeout=2.0,
        read_timeout=0.5,
        max_attempts=3,
        addressing="virtual",
        check_bucket=True,
    )
    with pytest.raises(ConfigError, match=r"^EDGE_S3_ADDRESSING: expected auto, path or virtual"):
        Settings.from_env({"EDGE_S3_ADDRESSING": "dns"})


# --- Settings that parse one by one but cannot work together ---------------------------


def test_a_cache_object_limit_above_the_cache_is_refused() -> None:
    """EDGE_CACHE_MAX_BYTES=256 (a unit left off) with the 1 MiB object limit."""
    with pytest.raises(
        ConfigError,
        match=r"^EDGE_CACHE_MAX_OBJECT_BYTES: 1048576 is above the 224 bytes"
        r" EDGE_CACHE_MAX_BYTES \(256\) leaves for found objects",
    ):
        Settings.from_env({"EDGE_CACHE_MAX_BYTES": "256"})


def test_the_cache_limit_is_the_share_the_cache_keeps_for_found_objects() -> None:
    max_bytes = 64 * 1024
    share = max_bytes - max_bytes // MISSING_SHARE
    fits = {"EDGE_CACHE_MAX_BYTES": str(max_bytes), "EDGE_CACHE_MAX_OBJECT_BYTES": str(share)}
    assert Settings.from_env(fits).cache_max_object_bytes == share
    over = {**fits, "EDGE_CACHE_MAX_OBJECT_BYTES": str(share + 1)}
    with pytest.raises(ConfigError, match=r"^EDGE_CACHE_MAX_OBJECT_BYTES: "):
        Settings.from_env(over)
    # What the check prevents: a cache whose object limit lets in what it cannot keep.
    cache = HotCache(max_bytes=max_bytes, max_object_bytes=share + 1, ttl=60)
    big = b"x" * (share + 1)
    assert cache.put("public/alice/big.png", Stat(len(big), '"e"', 1, None), big) is None
    assert cache.get("public/alice/big.png") is None
    # With the cache off (TTL 0), its sizes do not matter.
    assert Settings.from_env({**over, "EDGE_CACHE_TTL": "0"}).cache_ttl == 0


def test_s3_settings_without_a_storage_are_refused() -> None:
    """The edge would serve the default folder and ignore the bucket it was told about."""
    s3 = {"EDGE_S3_REGION": "eu-west-1", "EDGE_S3_ENDPOINT_URL": "http://minio:9000"}
    with pytest.raises(
        ConfigError,
        match=r"^EDGE_STORAGE: not set, so edge would serve the folder \S+images and ignore"
        " EDGE_S3_ENDPOINT_URL, EDGE_S3_REGION; set EDGE_STORAGE=s3://",
    ):
        Settings.from_env(s3)
    assert Settings.from_env({**s3, "EDGE_STORAGE": "s3://bucket"}).s3.region == "eu-west-1"
    # A folder chosen on purpose (edge demo, a test) keeps its unused S3 values;
    # an empty one is the same as unset.
    assert Settings.from_env({**s3, "EDGE_STORAGE": "/srv/images"}).storage.kind == "file"
    assert Settings.from_env({"EDGE_S3_REGION": " "}).s3_region is None


@pytest.mark.parametrize(
    ("metrics", "port", "workers", "error"),
    [
        ("9100", 8080, 2, None),  # edge serve listens once, for every worker
        ("8080", 8080, 1, "^EDGE_METRICS: port 8080 is the server's own"),
        ("9100", 8080, 1, None),
        ("local", 8080, 4, None),
        ("on", 8080, 4, None),
    ],
)
def test_a_metrics_port_must_not_be_the_server_s(
    metrics: str, port: int, workers: int, error: str | None
) -> None:
    settings = Settings.from_env({"EDGE_METRICS": metrics})
    if error is None:
        settings.check_server(port=port, workers=workers)
    else:
        with pytest.raises(ConfigError, match=error):
            settings.check_server(port=port, workers=workers)


def test_transform_mode_and_bare_hosts() -> None:
    defaults = Settings.from_env({})
    assert (defaults.transforms, defaults.bare_hosts) == ("on", frozenset())
    settings = Settings.from_env(
        {"EDGE_TRANSFORMS": "Signed", "EDGE_BARE_HOSTS": "CDN.example.com, cdn2.example.com:8443"}
    )
    assert settings.transforms == "signed"
    assert settings.bare_hosts == {"cdn.example.com", "cdn2.example.com:8443"}
    with pytest.raises(ConfigError, match=r"^EDGE_TRANSFORMS: expected on or signed, got 'off'"):
        Settings.from_env({"EDGE_TRANSFORMS": "off"})
    for bad in ("cdn.example.com/i", "http://cdn.example.com", "a b", "-x.com"):
        with pytest.raises(ConfigError, match=r"^EDGE_BARE_HOSTS: expected host names"):
            Settings.from_env({"EDGE_BARE_HOSTS": bad})
