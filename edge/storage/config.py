"""What the storage package is told: where images live, and how to reach a bucket.

These are the storage's own settings groups, so the storage package never sees
the app-wide ``edge.settings.Settings``: ``Settings`` reads them from ``EDGE_*``
variables and hands over just these.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Literal

from edge.errors import ConfigError

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")


@dataclass(frozen=True, slots=True)
class StorageTarget:
    """Where images live: a folder (``location`` its absolute path) or a bucket
    (``location`` its name, ``prefix`` empty or ending in ``/``)."""

    kind: Literal["file", "s3"]
    location: str
    prefix: str = ""

    def __str__(self) -> str:
        return f"s3://{self.location}/{self.prefix}" if self.kind == "s3" else self.location


@dataclass(frozen=True, slots=True)
class S3Settings:
    """How a process reaches its bucket (``EDGE_S3_*``). Credentials are not here: the
    AWS chain finds them, and edge never holds one in its settings."""

    endpoint_url: str | None  # None for AWS
    region: str | None  # None: the AWS chain's
    max_connections: int
    connect_timeout: float
    read_timeout: float
    max_attempts: int
    addressing: Literal["auto", "path", "virtual"] = "auto"
    check_bucket: bool = False  # Settings says on; a bare S3Settings (a test's) checks nothing


def parse_storage(name: str, text: str) -> StorageTarget:
    """``s3://bucket[/prefix]``, ``file:///abs/path`` or a plain (relative) folder path."""
    if not text:  # abspath("") would be the working directory
        raise ConfigError(f"{name}: empty; expected s3://bucket[/prefix] or a folder path")
    if text.startswith("s3://"):
        bucket, _, prefix = text.removeprefix("s3://").partition("/")
        if not _BUCKET.fullmatch(bucket):
            raise ConfigError(f"{name}: {bucket!r} is not a valid S3 bucket name")
        prefix = prefix.strip("/")
        return StorageTarget("s3", bucket, prefix + "/" if prefix else "")
    if "://" in text and not text.startswith("file://"):
        raise ConfigError(f"{name}: expected s3://bucket[/prefix], file:///path or a folder path")
    folder = text.removeprefix("file://")
    if text.startswith("file://") and not folder.startswith("/"):
        raise ConfigError(f"{name}: a file:// URL needs an absolute path (file:///srv/images)")
    return StorageTarget("file", os.path.abspath(folder))
