"""Executors: the same plan run serially, in worker processes on one machine, or on Ray.

:func:`make_executor` checks the choice (workers, GPUs, Ray installed and reachable) before
any work; every executor yields the cells' records to the runner, the one writer of the
results store.
"""

from harness.executors.base import Executor, ExecutorOptions, make_executor

__all__ = ["Executor", "ExecutorOptions", "make_executor"]
