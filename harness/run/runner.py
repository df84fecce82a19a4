"""Runs a plan in this process: skip what is stored, get each job's model, evaluate, store.

The work itself (training a job, evaluating a cell) is done by :class:`harness.run.work.Worker`;
this loop only decides what is left to do and writes the results store, the one writer.
Nothing already computed is lost: finished cells are committed one by one, finished models
are cached, unfinished trainings keep their state epoch by epoch, and a re-run of the same
command picks up where the last one stopped. A cell that raises is recorded as failed and
the rest goes on.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.contracts.records import NOT_APPLICABLE, Result, ResultSet
from harness.planning.plan import BenchConfig, Cell, Plan, Skipped, make_plan
from harness.planning.registry import Registry
from harness.planning.setup import WorkSetup
from harness.results.metadata import now, run_metadata
from harness.results.store import ResultStore, StoreError
from harness.run.executors.base import Executor, Progress
from harness.run.executors.serial import SerialExecutor
from harness.run.identity import plugins_config, skipped_identity

if TYPE_CHECKING:
    from harness.run.model_cache import ModelCache

STORE_ATTEMPTS = 5      # tries of one cell's write before the run stops
STORE_RETRY_S = 0.5     # first wait between tries; doubled after each


def in_process_modules() -> tuple[str, ...]:
    """The modules registered in-process as plugins (``harness.testing``'s), by name, so
    worker processes register them too."""
    import types

    from harness.planning.loading import TEST_PLUGINS

    return tuple(obj.__name__ for _, obj in TEST_PLUGINS if isinstance(obj, types.ModuleType))


@dataclass
class BenchOutcome:
    """The records of every cell of the run (fresh or reused) and the runs behind them."""

    run_id: str
    metadata: dict[str, Any]
    results: ResultSet = field(default_factory=ResultSet)

    @property
    def records(self) -> list[Result]:
        """Every record of the run, in plan order."""
        return self.results.records

    @property
    def failed(self) -> list[Result]:
        """Records of cells that failed."""
        return [r for r in self.records if r.status == "failed"]

    @property
    def not_applicable(self) -> list[Result]:
        """Records of pairings left out as n/a."""
        return [r for r in self.records if r.status == NOT_APPLICABLE]

    def add(self, record: Result, metadata: Any = None) -> None:
        """Add ``record`` (with its run's metadata when it came from an earlier run)."""
        self.results.records.append(record)
        if record.run_id not in self.results.runs:
            self.results.runs[record.run_id] = metadata if metadata is not None else {}


def not_applicable_result(item: Skipped, run_id: str, seed: int) -> Result:
    """The record of a pairing the plan left out, with the reason."""
    return Result(**skipped_identity(item, run_id), status=NOT_APPLICABLE, error=item.reason,
                  created_at=now(),
                  config={"seed": seed, **plugins_config(item.attack, item.defense)})


class Runner:
    """Executes a :class:`Plan` on one device against one store and model cache."""

    def __init__(self, config: BenchConfig, registry: Registry, store: ResultStore,
                 cache: ModelCache, *, show_progress: bool = True, argv: list[str] | None = None,
                 disabled_plugins: tuple[str, ...] = (), executor: Executor | None = None):
        self.config = config
        self.registry = registry
        self.store = store
        self.argv = argv
        self.show_progress = show_progress
        self.plan: Plan = make_plan(config, registry)
        self.executor = executor if executor is not None else SerialExecutor()
        self.setup = WorkSetup(config, cache.root.parent, disabled_plugins, show_progress,
                               plugin_modules=in_process_modules(),
                               refuse_damaged=cache.refuse_damaged)
        self.stored = 0     # records this run has written to the store
        self._reported_by_job = {j.key: j.supplied.reported for j in self.plan.jobs
                                 if j.supplied is not None and j.supplied.reported is not None}

    def pending(self, outcome: BenchOutcome) -> list[Cell]:
        """The cells not stored yet; the stored ones are added to ``outcome``."""
        left = []
        for cell in self.plan.cells:
            stored = None if self.config.no_cache else self.store.latest_ok(cell.key)
            if stored is None:
                left.append(cell)
            else:
                outcome.add(self._reported(stored.record), stored.metadata)
        return left

    def _reported(self, record: Result) -> Result:
        """``record`` with the robust accuracy its supplied model's authors report (this run's
        ``reported`` option) in ``config["reported"]``, which the claims check against; other
        records as they are."""
        reported = self._reported_by_job.get(record.train_key)
        if reported is None and "reported" not in record.config:
            return record
        config = {k: v for k, v in record.config.items() if k != "reported"}
        if reported is not None:
            config["reported"] = reported
        return record.replace(config=config)

    def run(self) -> BenchOutcome:
        """Run every cell of the plan; return all their records. When every cell is stored,
        nothing is set up: no worker, no device, no data, no model (nor torch imported)."""
        outcome = BenchOutcome("", {})
        pending = self.pending(outcome)
        worker = None
        if pending:
            from harness.run.work import Worker

            worker = Worker(self.setup, self.registry, self.plan)
        metadata = run_metadata(self.registry, worker.device if worker else None,
                                self.config.as_dict(), self.argv)
        metadata["executor"] = self.executor.info()
        outcome.metadata = metadata
        jobs = [j for j in self.plan.jobs if any(c.job.key == j.key for c in pending)]
        parallel = not isinstance(self.executor, SerialExecutor)
        if pending:     # nothing left to compute: no worker is started
            self.executor.prepare(self.setup)
        progress = None
        try:
            if worker is not None:
                worker.preflight(jobs, pending)
            outcome.run_id = self._write(lambda: self.store.start_run(metadata),
                                         "nor is any of the rest")
            for item in self.plan.skipped:
                self._store(outcome, not_applicable_result(item, outcome.run_id,
                                                           self.config.seed))
            progress = Progress(len(jobs), len(pending),
                                enabled=self.show_progress and parallel)
            for record in self.executor.execute(jobs, pending, worker, progress) \
                    if worker is not None else ():
                self._store(outcome, record.replace(run_id=outcome.run_id))
                progress.cell_done(record)
        except BaseException:   # Ctrl-C or a failure of the driver: stop the workers now
            self.executor.close(now=True)
            raise
        finally:
            self.executor.close()
            if progress is not None:
                progress.close()
        self._write(lambda: self.store.finish_run(outcome.run_id, now()),
                    "only the run's end time is not")
        return outcome

    def _store(self, outcome: BenchOutcome, record: Result) -> None:
        """Write ``record`` (see :meth:`_write`) and add it to ``outcome``; when another
        process stored the cell meanwhile, the store keeps that record and the outcome
        holds it, with its run's metadata (``--no-cache`` replaces it instead)."""
        record = self._reported(record)
        write = self.store.replace_result if self.config.no_cache else self.store.add_result
        stored = self._write(
            lambda: write(record),
            f"the cell {record.dataset}/{record.model}/{record.defense}/{record.attack} "
            "and the ones after it are not")
        if stored is None:
            self.stored += 1
            outcome.add(record, outcome.metadata)
        else:
            outcome.add(stored.record, stored.metadata)

    def _write(self, write: Callable[[], Any], lost: str) -> Any:
        """Run ``write``, retrying a locked or busy database a few times; when that still
        fails (or the disk is full) stop the run with :class:`StoreError`: one line saying
        how many cells are stored, what is not (``lost``), and that a rerun resumes."""
        for attempt in range(STORE_ATTEMPTS):
            try:
                return write()
            except sqlite3.OperationalError as exc:
                if attempt + 1 < STORE_ATTEMPTS and "full" not in str(exc):
                    time.sleep(STORE_RETRY_S * 2 ** attempt)
                    continue
                raise StoreError(
                    f"could not write to the results database {self.store.path} ({exc}): the "
                    f"run stops; {self.stored} cells of this run are stored, {lost}; fix the "
                    "database (space, lock) and run the same command again to resume"
                ) from None
        return None
