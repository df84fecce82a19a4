"""Files and folders: writing safely when several processes share a folder (atomic
replacement through per-process temporary names, an exclusive lock per piece of work), output
paths checked before any work, a file's SHA-256, and where ``HARNESS_HOME`` is.

Two ``harness bench`` runs (or two workers) on one ``HARNESS_HOME`` never write the same
temporary file, and never train the same model at the same time: the second waits for the
lock, then finds the model in the cache.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from uuid import uuid4

from harness.util.errors import UsageError


def temporary_name(path: Path) -> Path:
    """A name beside ``path`` that no other process or call uses."""
    return path.with_name(f"{path.name}.{os.getpid()}.{uuid4().hex[:8]}.tmp")


@contextlib.contextmanager
def atomic_write(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` in one step (readers
    see the old file or the new one, never half of one); on failure it is removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` (created if needed) for the block; another
    process asking for the same lock waits. The lock goes with the process if it dies."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def refuse_unwritable(files: Iterable[tuple[str, Path | None]],
                      folders: Iterable[tuple[str, Path | None]]) -> None:
    """Raise :class:`UsageError` (``'--out: cannot write PATH: why'``) for the first output
    file or folder, each named by its option, that cannot be written; None paths are skipped."""
    for option, path in files:
        problem = output_problem(path) if path is not None else None
        if problem:
            raise UsageError(f"{option}: cannot write {path}: {problem}")
    for option, folder in folders:
        problem = folder_problem(folder) if folder is not None else None
        if problem:
            raise UsageError(f"{option}: cannot write {folder}: {problem}")


def set_aside(path: Path, folder: Path) -> Path:
    """Move ``path`` into ``folder`` (created if needed) under its own name, or a unique one
    when that is taken there; return where it went."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    if target.exists():
        target = folder / f"{path.name}.{uuid4().hex[:8]}"
    os.replace(path, target)
    return target


def folder_problem(folder: Path) -> str | None:
    """Why files cannot be created in ``folder`` (or, while it is missing, why it could not
    be created), or None. Creates nothing that stays: it probes the folder, or its nearest
    existing ancestor, with a real temporary file, so read-only mounts are found even where
    permission bits are not enforced (as root)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a folder"
    try:
        probe = temporary_name(existing / ".write-probe")
        probe.touch()
        probe.unlink()
    except OSError as exc:
        return f"cannot write in {existing}: {exc.strerror or exc}"
    return None


def output_problem(path: Path) -> str | None:
    """Why ``path`` cannot be written as an output file (a folder, a missing or unwritable
    folder, a read-only file), or None. Creates nothing."""
    if path.is_dir():
        return f"{path} is a folder, not a file"
    folder = path.parent
    if not folder.is_dir():
        return f"folder {folder} does not exist"
    if path.exists() and not os.access(path, os.W_OK):
        return f"{path} is read-only"
    try:
        probe = temporary_name(path)
        probe.touch()
        probe.unlink()
    except OSError as exc:
        return f"cannot write in {folder}: {exc.strerror or exc}"
    return None


def harness_home() -> Path:
    """``$HARNESS_HOME``, else ``$XDG_CACHE_HOME/harness``, else ``~/.cache/harness``."""
    if os.environ.get("HARNESS_HOME"):
        return Path(os.environ["HARNESS_HOME"])
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "harness"


def sha256_of(path: Path) -> str:
    """The SHA-256 of ``path``'s bytes, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
