"""Where image bytes live: one small interface, a local folder and an S3 bucket behind it.

Keys follow the spec's layout, ``public/{user}/{file}`` and ``private/{user}/{file}``
under the folder or the bucket prefix; the server picks the key, so an
unsigned request never names a private object.
"""

from __future__ import annotations

import os

from edge.errors import ConfigError
from edge.storage.base import CHUNK_BYTES, Body, Conditions, Reply, Stat, Storage
from edge.storage.config import S3Settings, StorageTarget
from edge.storage.files import FileStorage

__all__ = [
    "CHUNK_BYTES",
    "Body",
    "Conditions",
    "FileStorage",
    "Reply",
    "S3Settings",
    "Stat",
    "Storage",
    "StorageTarget",
    "open_storage",
]


def open_storage(target: StorageTarget, s3: S3Settings) -> Storage:
    """The storage ``target`` names (``s3`` is used for a bucket only); a missing folder or
    missing credentials are start-up errors naming the variable."""
    if target.kind == "s3":
        from edge.storage.s3 import S3Storage, find_credentials  # loaded only when used

        if not find_credentials():
            raise ConfigError(
                "EDGE_STORAGE: an S3 bucket needs AWS credentials; none found (set"
                " AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with a role)"
            )
        return S3Storage(bucket=target.location, prefix=target.prefix, settings=s3)
    if not os.path.isdir(target.location):
        raise ConfigError(
            f"EDGE_STORAGE: folder {target.location!r} does not exist; create it with public/"
            " and private/ inside, or run `edge demo`"
        )
    return FileStorage(target.location)
