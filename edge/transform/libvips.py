"""libvips, set up once per process for untrusted input and a bounded pool.

- **Loaders**: every loader is blocked but the six formats edge transforms (JPEG, PNG,
  WebP, AVIF/HEIF, GIF, SVG). The wheel's libvips also reads TIFF, Ultra HDR, raw, CSV,
  matrix and its own ``.v`` format, each one more parser for a stranger's bytes to reach;
  blocked, such a source is "not in a known format", whatever its name says.
- **Operation cache off** (``cache_set_max(0)``): libvips keeps up to 100 recent
  operations (100 MiB) to reuse their results, which helps a program that repeats work on
  one image; edge never asks twice for the same operation on the same buffer, so the cache
  would only hold memory (a source of up to ``EDGE_TRANSFORM_MAX_SOURCE_BYTES`` each) past
  the request. Measured: no difference in CPU per transform (bench/transform.py).
- **Threads**: libvips runs each pipeline on ``concurrency`` threads of its own; with
  ``EDGE_TRANSFORM_WORKERS`` transforms at once, ``cores / workers`` each (1 by default)
  keeps the process at about one busy thread per core.
"""

from __future__ import annotations

import os

import pyvips

TRUSTED_LOADERS = (
    "VipsForeignLoadJpeg",
    "VipsForeignLoadPng",
    "VipsForeignLoadWebp",
    "VipsForeignLoadHeif",
    "VipsForeignLoadNsgif",
    "VipsForeignLoadSvg",
)
#: Savers the engine uses, by output format (``heifsave`` writes AVIF with ``compression=av1``).
SAVERS = {
    "jpeg": "jpegsave_buffer",
    "png": "pngsave_buffer",
    "webp": "webpsave_buffer",
    "avif": "heifsave_buffer",
    "gif": "gifsave_buffer",
}


def configure() -> None:
    """Block untrusted loaders and turn the operation cache off (idempotent)."""
    pyvips.operation_block_set("VipsForeignLoad", True)
    for loader in TRUSTED_LOADERS:
        pyvips.operation_block_set(loader, False)
    pyvips.cache_set_max(0)
    pyvips.cache_set_max_mem(0)
    pyvips.cache_set_max_files(0)


def set_threads(workers: int) -> int:
    """Give each of ``workers`` concurrent transforms its share of the cores; returns it."""
    share = max(1, (len(os.sched_getaffinity(0)) or 1) // workers)
    pyvips.concurrency_set(share)
    return share


def version() -> str:
    return f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}"


def has(operation: str) -> bool:
    """Whether this libvips has ``operation`` (e.g. ``jxlsave_buffer``)."""
    return bool(pyvips.type_find("VipsOperation", operation))
