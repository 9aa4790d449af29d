"""``edge check-storage``: what the configured storage is, as the edge would use it, and
whether it can serve anything.

For a bucket: the endpoint and where it was found, the addressing and why, the
region signed for and where it came from, botocore's name for the credentials'
source (never a secret), whether one listing of the bucket succeeds, and whether
``public/`` and ``private/`` hold anything. For a folder: whether ``public/`` and
``private/`` are folders inside it, and whether they hold anything. Each fact is a
line on stdout; each problem a line of its own on stderr, and the exit status is 1.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

from edge.errors import ConfigError, EdgeError
from edge.storage.config import S3Settings, StorageTarget

FOLDERS = ("public/", "private/")
_STYLES = {"path": "path-style", "virtual": "virtual-hosted"}


@dataclass
class Report:
    facts: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        width = max((len(name) for name, _ in self.facts), default=0) + 1
        return [f"{name + ':':{width}} {value}" for name, value in self.facts]


async def check_storage(target: StorageTarget, s3: S3Settings) -> Report:
    """The report of the storage ``target`` names, reached with ``s3``'s settings."""
    report = Report([("storage", str(target))])
    if target.kind == "file":
        check_folder(target.location, report)
    else:
        await _check_bucket(target, s3, report)
    return report


def check_folder(root: str, report: Report) -> None:
    if not os.path.isdir(root):
        report.problems.append(f"folder {root} does not exist")
        return
    empty = []
    for folder in FOLDERS:
        path = os.path.join(root, folder)
        if not os.path.isdir(path):
            report.facts.append((folder, "missing"))
            report.problems.append(
                f"{root} has no {folder} folder inside: every {folder[:-1]} image is 404"
            )
            continue
        first = _first_file(path)
        report.facts.append((folder, f"holds {first}" if first else "empty"))
        if first is None:
            empty.append(folder)
    if len(empty) == len(FOLDERS):
        report.problems.append(f"{root}: public/ and private/ hold nothing: every image is 404")


def missing_folders(root: str) -> list[str]:
    """Which of ``public/`` and ``private/`` are not folders inside ``root``."""
    return [folder for folder in FOLDERS if not os.path.isdir(os.path.join(root, folder))]


def _first_file(path: str) -> str | None:
    """A file below ``path`` (its name from ``path``'s parent), or None; the walk stops
    at the first one, so a large folder costs one look."""
    parent = os.path.dirname(os.path.normpath(path))
    for directory, _, files in os.walk(path):
        if files:
            return os.path.relpath(os.path.join(directory, sorted(files)[0]), parent)
    return None


async def _check_bucket(target: StorageTarget, s3: S3Settings, report: Report) -> None:
    from edge.storage import open_storage
    from edge.storage.s3 import S3Storage

    try:
        storage = open_storage(target, replace(s3, check_bucket=False))
        assert isinstance(storage, S3Storage)
        await storage.open()
    except (ConfigError, EdgeError) as error:
        report.problems.append(_reason(error))
        return
    try:
        assert storage.endpoint is not None and storage.address is not None
        endpoint = storage.endpoint.url or "AWS"
        guess = storage.region
        try:
            await storage.first_key("")
            answered = "answers (a listing of one key)"
        except EdgeError as error:
            answered = "does not answer"
            report.problems.append(f"bucket {target.location}: {_reason(error)}")
        address = storage.address  # the region's answer may have moved it
        region = storage.region
        if region != guess:
            region += f" (the bucket's, as S3 named it; first guess {guess})"
        else:
            region += f" ({storage.region_source})"
        report.facts += [
            ("endpoint", f"{endpoint} ({storage.endpoint.source})"),
            ("addressing", f"{_STYLES[address.style]}, {address.url} ({address.why})"),
            ("region", region),
            ("credentials", storage.credential_source),
            ("bucket", answered),
        ]
        if report.problems:
            return
        found = []
        for folder in FOLDERS:
            try:
                first = await storage.first_key(folder)
            except EdgeError as error:
                report.problems.append(f"{folder}: {_reason(error)}")
                return
            held = f"holds {first[len(target.prefix) :]}" if first else "empty"
            report.facts.append((folder, held))
            found.append(first)
        if not any(found):
            report.problems.append(
                f"{target}: public/ and private/ hold nothing: every image is 404 (is the"
                " prefix in EDGE_STORAGE right?)"
            )
    finally:
        await storage.aclose()


def _reason(error: Exception) -> str:
    return error.reason if isinstance(error, EdgeError) else str(error)
