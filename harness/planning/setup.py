"""What a worker process needs besides a key (:class:`WorkSetup`): plain, picklable data,
importable without torch, so the driver can describe the work before (or without) doing any."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.planning.plan import BenchConfig


@dataclass(frozen=True)
class WorkSetup:
    """Everything a worker process needs besides a key: plain data, picklable.

    ``plugin_modules`` are importable modules registered as plugins besides the entry points
    (the in-process plugins of the driver, e.g. a test's); ``threads`` the torch threads a
    worker process uses (None: torch's default); ``refuse_damaged`` makes a damaged cached
    model an error instead of a retraining.
    """

    config: BenchConfig
    home: Path
    disabled_plugins: tuple[str, ...] = ()
    show_progress: bool = False
    plugin_modules: tuple[str, ...] = ()
    threads: int | None = None
    refuse_damaged: bool = False
