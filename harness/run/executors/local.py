"""The local executor: worker processes on this machine, from the standard library.

On a CPU box, N workers split the CPUs' threads between them; on a GPU box each worker is
pinned to one GPU (``CUDA_VISIBLE_DEVICES``), one per GPU or ``1 / --gpus-per-task`` per GPU.
Each training job is a task; its cells are submitted as soon as its model is in the model
cache (the workers share this machine's ``HARNESS_HOME``). A worker that dies (killed, out of
memory on the host) breaks the pool: a new pool is started and the unfinished tasks are
given to it again, up to :data:`MAX_RETRIES` times each.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.run.executors.base import ExecutorOptions, Progress, task_threads, visible_gpus

if TYPE_CHECKING:
    from multiprocessing.sharedctypes import Synchronized

    from harness.contracts.records import Result
    from harness.planning.plan import Cell, TrainingJob
    from harness.run.work import Worker, WorkSetup

MAX_RETRIES = 2


def _start_worker(slot: Synchronized | None, gpus: int) -> None:
    """Pin this worker process to its GPU (before torch starts CUDA); leave Ctrl-C to the
    driver, which stops the workers itself (a worker interrupted on its own would only break
    the pool)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if slot is None:
        return
    with slot.get_lock():
        mine = slot.value
        slot.value += 1
    os.environ["CUDA_VISIBLE_DEVICES"] = str(mine % gpus)


@dataclass
class _Task:
    """A training job (``cell`` None) or a cell, and how often it was started."""

    job: TrainingJob
    cell: Cell | None = None
    attempts: int = 0


class LocalExecutor:
    """Runs a plan's jobs and cells in ``--workers`` processes on this machine."""

    def __init__(self, options: ExecutorOptions, device: str):
        self.gpus = 0 if device == "cpu" else visible_gpus()
        per_gpu = round(1 / options.gpus_per_task) if options.gpus_per_task else 1
        default = self.gpus * per_gpu if self.gpus else max(1, os.cpu_count() or 1)
        self.workers = options.workers or default
        self.threads = task_threads(self.workers)
        self._slot: Any = None
        self._tasks: _Tasks | None = None

    def prepare(self, setup: WorkSetup) -> None:
        """Start the worker processes and let each build its worker and load the data while
        the driver checks the plan."""
        from harness.run.work import warm_up

        workers_setup = dataclasses.replace(setup, show_progress=False, threads=self.threads)
        self._tasks = _Tasks(self, workers_setup)
        for _ in range(self.workers):
            self._tasks.pool.submit(warm_up, workers_setup)

    def new_pool(self) -> ProcessPoolExecutor:
        """A pool of ``workers`` spawned processes, each pinned to its GPU if there are any."""
        context = multiprocessing.get_context("spawn")
        if self._slot is None and self.gpus:
            self._slot = context.Value("i", 0)
        return ProcessPoolExecutor(self.workers, mp_context=context, initializer=_start_worker,
                                   initargs=(self._slot, self.gpus))

    def execute(self, jobs: list[TrainingJob], cells: list[Cell], worker: Worker,
                progress: Progress) -> Iterator[Result]:
        """Train every job in the pool, then each job's cells as soon as it is trained."""
        if self._tasks is None:
            self.prepare(worker.setup)
        tasks = self._tasks
        assert tasks is not None
        for job in jobs:
            tasks.submit(_Task(job))
        progress.started_one(len(jobs))
        try:
            while tasks.running:
                for task, value in tasks.wait():
                    yield from self._finished(task, value, cells, worker, progress, tasks)
                for task in tasks.restart_if_broken():
                    yield from self._gave_up(task, cells, worker, progress)
        except BaseException:       # Ctrl-C, or the driver stopped: stop the workers now
            self.close(now=True)
            raise
        self.close()

    def _finished(self, task: _Task, value: Any, cells: list[Cell], worker: Worker,
                  progress: Progress, tasks: _Tasks) -> Iterator[Result]:
        """A task's value: a cell's record, or a job's outcome that releases its cells."""
        if task.cell is not None:
            yield value if not isinstance(value, Exception) else \
                worker.training_failed(task.cell, value)
            return
        error = str(value) if isinstance(value, Exception) else value.error
        progress.job_done(error, task.job.key, getattr(value, "worker", ""))
        own = [c for c in cells if c.job.key == task.job.key]
        if error is not None:
            for cell in own:
                yield worker.training_failed(cell, error)
            return
        for cell in own:
            tasks.submit(_Task(task.job, cell))
        progress.started_one(len(own))

    @staticmethod
    def _gave_up(task: _Task, cells: list[Cell], worker: Worker, progress: Progress
                 ) -> Iterator[Result]:
        why = f"the worker process died {task.attempts} times running it"
        if task.cell is not None:
            yield worker.training_failed(task.cell, why, what="worker died")
            return
        progress.job_done(why, task.job.key, "")
        for cell in (c for c in cells if c.job.key == task.job.key):
            yield worker.training_failed(cell, why)

    def close(self, now: bool = False) -> None:
        """Stop the worker processes: after their tasks, or ``now`` (what they were doing is
        lost; finished cells and models, and the last finished epoch, are kept)."""
        if self._tasks is not None:
            self._tasks.shutdown(now)
            self._tasks = None

    def info(self) -> dict[str, Any]:
        """Workers, threads per worker and GPUs."""
        return {"executor": "local", "workers": self.workers, "threads": self.threads,
                "gpus": self.gpus}


class _Tasks:
    """The running tasks of one pool; when a worker dies the pool breaks, and the unfinished
    tasks go to a new pool (those started too often are given up)."""

    def __init__(self, executor: LocalExecutor, setup: WorkSetup):
        self.executor, self.setup = executor, setup
        self.pool = executor.new_pool()
        self.running: dict[Future[Any], _Task] = {}
        self.broken: list[_Task] = []

    def submit(self, task: _Task) -> None:
        """Start ``task`` in the pool."""
        from harness.run.work import evaluate_cell, train_job

        task.attempts += 1
        future = (self.pool.submit(train_job, self.setup, task.job.key) if task.cell is None
                  else self.pool.submit(evaluate_cell, self.setup, task.cell.key))
        self.running[future] = task

    def wait(self) -> list[tuple[_Task, Any]]:
        """The tasks that finished next, with their value (an exception when the worker's
        harness code raised); those whose worker died are kept for :meth:`restart_if_broken`."""
        done, _ = wait(self.running, return_when=FIRST_COMPLETED)
        out = []
        for future in done:
            task = self.running.pop(future)
            try:
                out.append((task, future.result()))
            except BrokenProcessPool:
                self.broken.append(task)
            except Exception as exc:
                out.append((task, exc))
        return out

    def restart_if_broken(self) -> list[_Task]:
        """After a worker died: a new pool runs every unfinished task again; returns those
        already started more than :data:`MAX_RETRIES` times, which are given up."""
        if not self.broken:
            return []
        unfinished = self.broken + list(self.running.values())
        self.broken, self.running = [], {}
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = self.executor.new_pool()
        given_up = [t for t in unfinished if t.attempts > MAX_RETRIES]
        for task in unfinished:
            if task.attempts <= MAX_RETRIES:
                self.submit(task)
        return given_up

    def shutdown(self, now: bool = False) -> None:
        """Stop the worker processes, ``now`` (terminated) or once idle."""
        if now:
            for process in list(getattr(self.pool, "_processes", {}).values()):
                process.terminate()
        self.pool.shutdown(wait=not now, cancel_futures=True)
