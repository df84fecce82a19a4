"""Writing files safely when several processes share a folder: atomic replacement through
per-process temporary names, and an exclusive lock per piece of work.

Two ``harness bench`` runs (or two workers) on one ``HARNESS_HOME`` never write the same
temporary file, and never train the same model at the same time: the second waits for the
lock, then finds the model in the cache.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4


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
