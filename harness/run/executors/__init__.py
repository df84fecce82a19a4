"""Executors: the same plan run serially, in worker processes on one machine, or on Ray.

:func:`make_executor` checks the choice (workers, GPUs, Ray installed and reachable) before
any work; every executor yields the cells' records to the runner, the one writer of the
results store.
"""

from __future__ import annotations

from harness.run.executors.base import Executor, ExecutorOptions, check_options

__all__ = ["Executor", "ExecutorOptions", "make_executor"]


def make_executor(options: ExecutorOptions, device: str = "auto") -> Executor:
    """The executor ``options`` ask for, checked (UsageError: one line, exit 2)."""
    check_options(options, device)
    if options.name == "local":
        from harness.run.executors.local import LocalExecutor

        return LocalExecutor(options, device)
    if options.name == "ray":
        from harness.run.executors.ray_executor import RayExecutor

        return RayExecutor(options, device)
    from harness.run.executors.serial import SerialExecutor

    return SerialExecutor()
