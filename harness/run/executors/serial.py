"""The serial executor: this process trains each job and evaluates its cells in turn."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from harness.util.errors import PASS_THROUGH

if TYPE_CHECKING:
    from harness.contracts.records import Result
    from harness.planning.plan import Cell, TrainingJob
    from harness.run.executors.base import Progress
    from harness.run.work import Worker, WorkSetup


class SerialExecutor:
    """Today's behaviour and the default: one job after another, in this process."""

    def prepare(self, setup: WorkSetup) -> None:
        """Nothing to start."""

    def execute(self, jobs: list[TrainingJob], cells: list[Cell], worker: Worker,
                progress: Progress) -> Iterator[Result]:
        """Each job's model, then its cells, in plan order."""
        for job in jobs:
            own = [c for c in cells if c.job.key == job.key]
            progress.started_one()
            try:
                trained = worker.trained(job)
            except PASS_THROUGH:
                raise
            except BaseException as exc:    # a plugin's SystemExit fails the job's cells
                progress.job_done(str(exc), job.key, "this process")
                for cell in own:
                    yield worker.training_failed(cell, exc)
                continue
            progress.job_done(None, job.key, "this process")
            for cell in own:
                progress.started_one()
                yield worker.evaluate(cell, trained)

    def close(self, now: bool = False) -> None:
        """Nothing to stop."""

    def info(self) -> dict[str, Any]:
        """``{"executor": "serial"}``."""
        return {"executor": "serial"}
