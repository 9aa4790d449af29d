"""Settings: one frozen object from the environment, errors that name the variable."""

from __future__ import annotations

import dataclasses

import pytest

from edge.errors import ConfigError
from edge.keys import b64url_encode
from edge.settings import Settings, documented

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
