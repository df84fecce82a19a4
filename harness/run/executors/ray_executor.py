"""The Ray executor: each training job and each cell is a Ray task (Ray core, not Tune).

``--executor ray`` starts a local Ray (``ray.init(num_cpus=..., num_gpus=...)``) unless a
cluster is given by ``--ray-address`` or ``RAY_ADDRESS``. Each task declares its resources:
its CPU threads and, on GPUs, a share of one (``--gpus-per-task 0.25`` packs four cells on a
GPU). A cell task takes its job's task result as an argument, so Ray starts it as soon as
its model exists. The trained weights travel through Ray's object store (workers on other
machines need not share ``HARNESS_HOME``); with ``--shared-home`` (``HARNESS_HOME`` on shared
storage) they travel through the model cache instead. A worker that dies is retried by Ray
(``max_retries``); an exception in a cell's own code is a failed record, not retried.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from harness.run.executors.base import ExecutorOptions, Progress, cpu_count, task_threads
from harness.util.errors import UsageError

if TYPE_CHECKING:
    from harness.contracts.records import Result
    from harness.planning.plan import Cell, TrainingJob
    from harness.run.work import Worker, WorkSetup

MAX_RETRIES = 3
ADDRESS_ENV = "RAY_ADDRESS"


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError("--executor ray needs Ray, which is not installed: pip install "
                         "'robustness-harness[ray]'") from None
    return ray


def unreachable(address: str, timeout: float = 5.0) -> str | None:
    """Why ``host:port`` (or ``ray://host:port``) cannot be reached over TCP, or None
    ("auto" and other forms are left to Ray). Ray itself waits minutes before it gives up."""
    import socket

    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or not host:
        return None
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return None
    except OSError as exc:
        return f"nothing answers at {target} ({exc.strerror or exc})"


class RayExecutor:
    """Runs a plan's jobs and cells as Ray tasks, locally or on a cluster."""

    def __init__(self, options: ExecutorOptions, device: str):
        self.options = options
        self.device = device
        self.address = options.ray_address or os.environ.get(ADDRESS_ENV) or None
        self.workers = options.workers or cpu_count()
        self.threads = task_threads(self.workers) if not self.address else 1
        self.gpus_per_task = options.gpus_per_task
        self._started = False
        self.setup: WorkSetup | None = None
        self._warming: list[Any] = []

    def prepare(self, setup: WorkSetup) -> None:
        """Connect to the cluster (or start a local Ray); check its GPUs when asked for;
        start one task per worker that builds its worker and loads the data, while the
        driver checks the plan."""
        ray = _ray()
        problem = unreachable(self.address) if self.address else None
        if problem:
            raise UsageError(f"--ray-address {self.address}: {problem}; start the cluster "
                             "with `ray start --head` and pass the address it prints")
        try:
            if self.address:
                ray.init(address=self.address, log_to_driver=False)
            else:
                from harness.run.executors.base import visible_gpus

                ray.init(num_cpus=self.workers * self.threads, num_gpus=visible_gpus(),
                         include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray"
            raise UsageError(f"cannot start {where}: {str(exc).splitlines()[0]}") from None
        self._started = True
        if self.gpus_per_task and ray.cluster_resources().get("GPU", 0) <= 0:
            self.close()
            raise UsageError("--gpus-per-task was given, but the Ray cluster has no GPU")
        from harness.run.work import warm_up

        self.setup = dataclasses.replace(setup, show_progress=False, threads=self.threads)
        warm = self._remote(warm_up)
        self._warming = [warm.remote(self.setup) for _ in range(self.workers)]

    def _remote(self, function: Any) -> Any:
        ray = _ray()
        gpus = self.gpus_per_task if self.gpus_per_task and self.device != "cpu" else 0
        return ray.remote(max_retries=MAX_RETRIES, num_cpus=self.threads,
                          num_gpus=gpus)(function)

    def execute(self, jobs: list[TrainingJob], cells: list[Cell], worker: Worker,
                progress: Progress) -> Iterator[Result]:
        """Submit every job and every cell; yield each cell's record as it is done."""
        from harness.run.work import evaluate_cell, train_job

        ray = _ray()
        setup = self.setup or dataclasses.replace(worker.setup, show_progress=False,
                                                  threads=self.threads)
        ship = not self.options.shared_home
        train, evaluate = self._remote(train_job), self._remote(evaluate_cell)
        job_refs = {job.key: train.remote(setup, job.key, ship) for job in jobs}
        waiting: dict[Any, tuple[str, Any]] = {ref: ("job", key) for key, ref in job_refs.items()}
        for cell in cells:
            waiting[evaluate.remote(setup, cell.key, job_refs[cell.job.key])] = ("cell", cell)
        progress.started_one(len(jobs))
        while waiting:
            (ref,), _ = ray.wait(list(waiting), num_returns=1)
            kind, what = waiting.pop(ref)
            try:
                value = ray.get(ref)
            except Exception as exc:  # Ray gave up: the worker died MAX_RETRIES + 1 times
                value = exc
            if kind == "job":
                error = str(value) if isinstance(value, Exception) else value.error
                progress.job_done(error, what, getattr(value, "worker", ""))
                progress.started_one(sum(1 for c in cells if c.job.key == what))
            elif isinstance(value, Exception):
                yield worker.training_failed(what, f"{type(value).__name__}: {value}"[:480],
                                             what="Ray task failed")
            else:
                yield value

    def info(self) -> dict[str, Any]:
        """The cluster (None: a local Ray), workers, threads and GPU share per task."""
        return {"executor": "ray", "address": self.address, "workers": self.workers,
                "threads": self.threads, "gpus_per_task": self.gpus_per_task,
                "shared_home": self.options.shared_home}

    def close(self, now: bool = False) -> None:
        """Disconnect from Ray (and stop it if this run started it); the tasks of this
        driver end with it."""
        if self._started:
            _ray().shutdown()
            self._started = False
