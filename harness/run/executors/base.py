"""What every executor shares: the options, the checks made before any work, the
aggregated progress display, and the choice of executor by name."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from harness.util.errors import UsageError

if TYPE_CHECKING:
    from harness.contracts.records import Result
    from harness.planning.plan import Cell, TrainingJob
    from harness.run.work import Worker, WorkSetup

EXECUTORS = ("serial", "local", "ray")


@dataclass(frozen=True)
class ExecutorOptions:
    """``--executor``, ``--workers``, ``--gpus-per-task``, ``--ray-address``,
    ``--shared-home``."""

    name: str = "serial"
    workers: int | None = None
    gpus_per_task: float | None = None
    ray_address: str | None = None
    shared_home: bool = False


class Executor(Protocol):
    """Runs training jobs and cells; yields each cell's record as it is done."""

    def prepare(self, setup: WorkSetup) -> None:
        """Start what the executor needs (worker processes, a Ray connection) for ``setup``'s
        plan, before the driver's own checks so that both overlap; UsageError when it
        cannot."""
        ...

    def execute(self, jobs: list[TrainingJob], cells: list[Cell], worker: Worker,
                progress: Progress) -> Iterator[Result]:
        """Train ``jobs`` and evaluate ``cells``; ``worker`` is the driver's (its setup and
        plan travel to the workers); jobs and running tasks are reported to ``progress``
        (the runner reports the cells it stores)."""
        ...

    def close(self, now: bool = False) -> None:
        """Stop what :meth:`prepare` started: once idle, or ``now`` (interrupted)."""
        ...

    def info(self) -> dict[str, Any]:
        """What the run's metadata records of the executor."""
        ...


def visible_gpus() -> int:
    """How many CUDA devices torch sees here."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def cpu_count() -> int:
    """The CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def check_options(options: ExecutorOptions, device: str) -> None:
    """Refuse an executor choice that cannot work (UsageError: one line, exit 2)."""
    if options.name not in EXECUTORS:
        raise UsageError(f"--executor {options.name!r}: use one of {', '.join(EXECUTORS)}")
    if options.workers is not None and options.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {options.workers}")
    g = options.gpus_per_task
    if g is not None:
        if not 0 < g <= 1:
            raise UsageError(f"--gpus-per-task must be in (0, 1] (a fraction packs several "
                             f"tasks on one GPU, e.g. 0.25 for four), got {g:g}")
        if options.name == "serial":
            raise UsageError("--gpus-per-task packs tasks of a parallel executor onto GPUs: "
                             "use it with --executor local or ray")
        if options.name == "local" and (device == "cpu" or visible_gpus() == 0):
            raise UsageError("--gpus-per-task was given, but this run has no GPU (torch sees "
                             "none, or --device cpu)")
    if options.name == "serial" and options.workers not in (None, 1):
        raise UsageError("--workers needs a parallel executor: --executor local or ray")


class Progress:
    """One aggregated display across workers: jobs and cells done out of total, running,
    failed, elapsed and ETA (a bar on a terminal); each failure is one line on stderr naming
    the cell and the worker, terminal or not."""

    def __init__(self, jobs: int, cells: int, *, enabled: bool):
        from harness.util.progress import progress_bar

        self.jobs, self.cells = jobs, cells
        self.jobs_done = self.cells_done = self.failed = self.running = 0
        self.started = time.perf_counter()
        self.bar = progress_bar(total=cells, desc="cells", unit="cell", enabled=enabled)
        self._show()

    def _show(self) -> None:
        self.bar.set_postfix_str(f"jobs {self.jobs_done}/{self.jobs}, running {self.running}, "
                                 f"failed {self.failed}")

    def started_one(self, n: int = 1) -> None:
        """``n`` more tasks are running."""
        self.running += n
        self._show()

    def job_done(self, error: str | None, name: str, worker: str) -> None:
        """A training job finished (``error``: why it failed)."""
        self.jobs_done += 1
        self.running = max(0, self.running - 1)
        if error is not None:
            self._say(f"training {name} failed on {worker or 'a worker'}: {error}")
        self._show()

    def cell_done(self, record: Result) -> None:
        """A cell finished; a failure is announced."""
        self.cells_done += 1
        self.running = max(0, self.running - 1)
        if record.status == "failed":
            self.failed += 1
            where = record.config.get("worker", "a worker")
            eps = f" eps {record.eps:g}" if record.eps is not None else ""
            self._say(f"cell {record.dataset}/{record.model}/{record.defense}/{record.attack}"
                      f"{eps} failed on {where}: {(record.error or '')[:200]}")
        self.bar.update(1)
        self._show()

    def _say(self, text: str) -> None:
        self.bar.write(f"harness: {text}", file=sys.stderr)

    def close(self) -> None:
        """Remove the bar."""
        self.bar.close()


def task_threads(workers: int) -> int:
    """Torch threads per worker: the CPUs split between the workers (at least one)."""
    return max(1, cpu_count() // max(1, workers))
