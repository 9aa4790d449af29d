"""The Transforms settings: their defaults, their parsers, the limits built from them."""

from __future__ import annotations

import os

import pytest

from edge.errors import ConfigError
from edge.settings import Settings
from edge.transform import Limits


def test_the_defaults() -> None:
    settings = Settings.from_env({})
    assert Limits.from_settings(settings) == Limits(
        max_source_pixels=50_000_000,
        max_source_bytes=32 * 1024 * 1024,
        max_output_pixels=25_000_000,
        max_frames=100,
    )
    assert settings.transform_workers == len(os.sched_getaffinity(0))
    assert settings.transform_queue_timeout is None  # EDGE_QUEUE_TIMEOUT's, 0.5


def test_values_are_read() -> None:
    settings = Settings.from_env(
        {
            "EDGE_TRANSFORM_MAX_SOURCE_PIXELS": "100000000",
            "EDGE_TRANSFORM_MAX_SOURCE_BYTES": "8MiB",
            "EDGE_TRANSFORM_MAX_OUTPUT_PIXELS": "12mp",
            "EDGE_TRANSFORM_MAX_FRAMES": "1",
            "EDGE_TRANSFORM_WORKERS": "4",
        }
    )
    assert Limits.from_settings(settings) == Limits(100_000_000, 8 * 1024 * 1024, 12_000_000, 1)
    assert settings.transform_workers == 4


@pytest.mark.parametrize("value", ["0", "-1", "1.5MP", "MP", "ten", "99999999999MP", "9" * 50])
def test_bad_pixel_counts_name_the_variable(value: str) -> None:
    with pytest.raises(ConfigError, match=r"^EDGE_TRANSFORM_MAX_OUTPUT_PIXELS: expected pixels"):
        Settings.from_env({"EDGE_TRANSFORM_MAX_OUTPUT_PIXELS": value})


@pytest.mark.parametrize("value", ["0", "1025", "many", "-2", "9" * 50])
def test_bad_worker_counts_name_the_variable(value: str) -> None:
    with pytest.raises(ConfigError, match=r"^EDGE_TRANSFORM_WORKERS: expected auto"):
        Settings.from_env({"EDGE_TRANSFORM_WORKERS": value})


def test_the_transform_timeout() -> None:
    assert Settings.from_env({}).transform_timeout == 10.0
    assert Settings.from_env({"EDGE_TRANSFORM_TIMEOUT": "0.25"}).transform_timeout == 0.25


@pytest.mark.parametrize("value", ["0", "-1", "", "ten", "nan", "inf", "1e9"])
def test_bad_transform_timeouts_name_the_variable(value: str) -> None:
    with pytest.raises(ConfigError, match=r"^EDGE_TRANSFORM_TIMEOUT: expected a number of seconds"):
        Settings.from_env({"EDGE_TRANSFORM_TIMEOUT": value})


def test_the_transform_niceness() -> None:
    assert Settings.from_env({}).transform_nice == 10
    assert Settings.from_env({"EDGE_TRANSFORM_NICE": "0"}).transform_nice == 0
    assert Settings.from_env({"EDGE_TRANSFORM_NICE": "19"}).transform_nice == 19


@pytest.mark.parametrize("value", ["-1", "20", "", "low", "5.5", "0x5", "9" * 50])
def test_bad_niceness_names_the_variable(value: str) -> None:
    with pytest.raises(ConfigError, match=r"^EDGE_TRANSFORM_NICE: expected a whole number from 0"):
        Settings.from_env({"EDGE_TRANSFORM_NICE": value})
