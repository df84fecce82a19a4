"""The two units of work of a plan: train one job, evaluate one cell.

A :class:`Worker` holds what a process needs to do either (registry, plan, device, data,
model provider, one evaluator per category) and keeps it between calls. :func:`train_job`
and :func:`evaluate_cell` take only plain, picklable inputs (a :class:`WorkSetup` and a key),
so an executor can send them to other processes or machines; the serial runner calls the
same worker in-process. Workers never write the results store: they return records.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from harness.contracts.categories import category_of, not_built, stage_of
from harness.contracts.data import DataOptions, ImageData
from harness.contracts.specs import AttackSpec, DefenseSpec
from harness.planning.plan import Cell, Plan, TrainingJob, digest, make_plan
from harness.planning.setup import WorkSetup
from harness.results.metadata import peak_memory
from harness.run.adversarial import AdversarialStore
from harness.run.evaluators import evaluator_for
from harness.run.evaluators.base import EvalEnv, Evaluator, Measured, cell_record
from harness.run.model_cache import ModelCache
from harness.run.provider import ModelProvider, TrainedModel
from harness.util.devices import resolve_device, use_cudnn_benchmark
from harness.util.errors import PASS_THROUGH, quoted
from harness.util.host_memory import keep_large_blocks
from harness.util.seeds import seed_globals

if TYPE_CHECKING:
    from harness.contracts.records import Result
    from harness.planning.registry import Registry


def worker_id() -> str:
    """``host:pid`` of this process, as failure messages and records name a worker."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _registry_for(setup: WorkSetup) -> Registry:
    import importlib

    from harness.contracts.specs import PluginInfo
    from harness.planning.loading import load_registry

    extra = [(PluginInfo(name=m, distribution="<in-process>", version="0"),
              importlib.import_module(m)) for m in setup.plugin_modules]
    return load_registry(strict=True, disabled=setup.disabled_plugins, extra_plugins=extra)


def error_text(exc: BaseException) -> str:
    """``'ValueError: message (at file.py:12)'``: an exception in one line."""
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" (at {Path(last[0].filename).name}:{last[0].lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


class Worker:
    """Trains jobs and evaluates cells of one plan on one device."""

    def __init__(self, setup: WorkSetup, registry: Registry | None = None,
                 plan: Plan | None = None):
        config = setup.config
        self.setup = setup
        keep_large_blocks()
        if setup.threads is not None:
            torch.set_num_threads(setup.threads)
        self.registry = registry if registry is not None else _registry_for(setup)
        self.plan = plan if plan is not None else make_plan(config, self.registry)
        self.device = resolve_device(config.device)
        use_cudnn_benchmark(self.device, config.cudnn_benchmark)
        cache = ModelCache(setup.home / "models", refuse_damaged=setup.refuse_damaged)
        self.provider = ModelProvider(cache, self.device,
                                      show_progress=setup.show_progress,
                                      no_cache=config.no_cache)
        self.env = EvalEnv(self.provider, AdversarialStore(setup.home / "adversarial"),
                           self.device, config.seed, config.attack_batch_size,
                           setup.show_progress)
        self._data: dict[str, ImageData] = {}
        self._evaluators: dict[str, Evaluator] = {}
        self._trained: dict[str, TrainedModel] = {}

    def data(self, job: TrainingJob) -> ImageData:
        """The run's subset of ``job``'s dataset, on the device (loaded once)."""
        name = job.dataset.name
        if name not in self._data:
            config = self.setup.config
            options = DataOptions(root=config.data_root, download=config.download,
                                  image_size=config.image_size)
            full = job.dataset.load(options)
            _warn_if_fewer(name, "--n-train", config.n_train, len(full.x_train), "training")
            _warn_if_fewer(name, "--n-test", config.n_test, len(full.x_test), "test")
            self._data[name] = full.subset(config.n_train, config.n_test,
                                           config.seed).to(self.device)
        return self._data[name]

    def preflight(self, jobs: list[TrainingJob], cells: list[Cell]) -> None:
        """Load the data and build every attack, defense and model once, so bad options and
        missing files fail before any work."""
        built: set[str] = set()
        for cell in cells:
            for spec, params in ((cell.attack, cell.attack_params),
                                 (cell.defense, cell.defense_params)):
                once = digest({"kind": type(spec).__name__, "name": spec.name,
                               "params": params})
                if once not in built:
                    _check_built(spec, spec.build(params))
                    built.add(once)
        for job in jobs:
            data = self.data(job)
            if job.supplied is not None:    # loaded and checked, never trained
                needs = any("gradients" in c.attack.needs for c in cells if c.job.key == job.key)
                self.provider.check_supplied(job, data, needs_gradients=needs)
                continue
            job.defense.build(job.defense_params)
            self.provider.build(job, data)

    def trained(self, job: TrainingJob) -> TrainedModel:
        """``job``'s trained model (kept for the next cells of the same job)."""
        if job.key not in self._trained:
            self._trained = {job.key: self.provider.trained(job, self.data(job))}
        return self._trained[job.key]

    def evaluator(self, cell: Cell) -> Evaluator:
        """The evaluator of ``cell``'s category (one per worker)."""
        category = category_of(cell.attack)
        if category.name not in self._evaluators:
            self._evaluators[category.name] = evaluator_for(category)(self.env)
        return self._evaluators[category.name]

    def evaluate(self, cell: Cell, trained: TrainedModel) -> Result:
        """``cell``'s record; an exception in the attack or defense is a failed record, and so
        is any other ``BaseException`` a plugin raises (``sys.exit`` in an attack), except
        ``KeyboardInterrupt`` (Ctrl-C stops the run) and ``GeneratorExit``. The record's
        ``config["image_shape"]`` is the images' (channels, height, width) as evaluated, and
        ``config["peak_memory_mib"]`` this worker process's peak memory so far
        (:func:`harness.results.metadata.peak_memory`). A CUDA
        out-of-memory error is retried once at half the attack batch, and the record says so
        (``config["oom_retry"]``)."""
        t0 = time.perf_counter()
        # Attacks that draw from the global generators (many of ART's) get the same stream in
        # every executor and whatever ran before in this process.
        seed_globals(self.env.seed, "cell", cell.key)
        measured, error = None, None
        try:
            try:
                measured = self.evaluator(cell).evaluate(cell, trained, self.data(cell.job))
            except torch.cuda.OutOfMemoryError:
                measured = self._evaluate_at_half_batch(cell, trained)
        except (KeyboardInterrupt, GeneratorExit):
            raise
        except BaseException as exc:  # a plugin's sys.exit fails its cell, not the run
            error = _cell_error(cell, exc)
        loaded = self._data.get(cell.job.dataset.name)
        context: dict[str, Any] = {"image_shape": list(loaded.image_shape)} \
            if loaded is not None else {}
        if "load_seconds" in trained.info:     # a supplied model: what reading it took
            context["load_seconds"] = trained.info["load_seconds"]
        context.update(worker=worker_id(), peak_memory_mib=peak_memory())
        return cell_record(cell, self.env, measured, error=error, trained=trained,
                           timings={"attack_seconds": time.perf_counter() - t0},
                           context=context)

    def _evaluate_at_half_batch(self, cell: Cell, trained: TrainedModel) -> Measured:
        torch.cuda.empty_cache()
        half = max(1, self.env.attack_batch_size // 2)
        env = dataclasses.replace(self.env, attack_batch_size=half)
        evaluator = evaluator_for(category_of(cell.attack))(env)
        measured = evaluator.evaluate(cell, trained, self.data(cell.job))
        return dataclasses.replace(measured, config={**measured.config, "oom_retry": {
            "attack_batch_size": half, "was": self.env.attack_batch_size}})

    def receive(self, job: TrainingJob, weights: bytes, info: dict[str, Any]) -> None:
        """Put ``job``'s weights, trained by another worker that shares no folder with this
        one, into this worker's model cache (unless they are there already)."""
        if not self.provider.cache.has(job.key):
            self.provider.cache.put(job.key, weights, info)

    def training_failed(self, cell: Cell, error: BaseException | str, *,
                        what: str = "training failed") -> Result:
        """The record of a cell whose model could not be trained, or whose task was lost
        (``error``: the exception, or its text when it came from another process; ``what``
        says what happened: "training failed", "worker died", ...)."""
        text = error if isinstance(error, str) else error_text(error)
        return cell_record(cell, self.env, error=f"{what}: {text}")


def _check_built(spec: AttackSpec | DefenseSpec, obj: object) -> None:
    """Refuse, before any work, an object a spec's ``build`` gave that does not implement the
    protocol of its category or stage (a :class:`PluginError` naming the spec)."""
    protocol = category_of(spec).protocol if isinstance(spec, AttackSpec) \
        else stage_of(spec).protocol
    if not isinstance(obj, protocol):
        raise not_built(obj, protocol, f"{spec.KIND} {spec.name}")


def _cell_error(cell: Cell, exc: BaseException) -> str:
    """A failed cell's error: the exception in one line; one that is not an ``Exception``
    (``SystemExit``) says so, since a plugin should never raise it."""
    if isinstance(exc, Exception):
        return error_text(exc)
    return f"{type(exc).__name__} raised inside attack {quoted(cell.attack.name)}: " \
           f"{error_text(exc)}"


_WARNED: set[tuple[str, str, int]] = set()


def _warn_if_fewer(dataset: str, flag: str, asked: int | None, available: int,
                   which: str) -> None:
    """One line on stderr (once per process) when ``flag`` asks for more images than
    ``dataset`` has: the run uses them all, which the user should know."""
    if asked is None or asked <= available or (dataset, flag, asked) in _WARNED:
        return
    _WARNED.add((dataset, flag, asked))
    print(f"harness: {flag} {asked} is more than {dataset}'s {available} {which} images; "
          f"using all {available}", file=sys.stderr)


_WORKERS: dict[str, Worker] = {}


def worker_for(setup: WorkSetup) -> Worker:
    """This process's worker for ``setup`` (built on first use, then reused)."""
    key = digest({"config": setup.config.as_dict(), "home": str(setup.home),
                  "disabled": list(setup.disabled_plugins),
                  "plugins": list(setup.plugin_modules), "threads": setup.threads,
                  "refuse_damaged": setup.refuse_damaged})
    if key not in _WORKERS:
        _WORKERS.clear()
        _WORKERS[key] = Worker(setup)
    return _WORKERS[key]


def warm_up(setup: WorkSetup) -> str:
    """Build this process's worker for ``setup`` and load its datasets, so that a pool's
    start-up overlaps the driver's checks instead of the first tasks; returns the worker id."""
    worker = worker_for(setup)
    for job in worker.plan.jobs:
        worker.data(job)
    return worker_id()


@dataclass(frozen=True)
class TrainOutcome:
    """What training one job gave: its report, or why it failed; with the weights when they
    must travel to workers that share no folder (``ship``)."""

    key: str
    info: dict[str, Any] | None = None
    error: str | None = None
    weights: bytes | None = None
    worker: str = ""


def train_job(setup: WorkSetup, train_key: str, ship: bool = False) -> TrainOutcome:
    """Train (or load) the job ``train_key`` of ``setup``'s plan. An exception in the training
    is returned as the outcome's error, not raised (it is the job's own failure, which
    retrying would repeat)."""
    worker = worker_for(setup)
    job = worker.plan.job(train_key)
    try:
        trained = worker.trained(job)
    except PASS_THROUGH:
        raise
    except BaseException as exc:    # a plugin's SystemExit fails the job, not the run
        return TrainOutcome(train_key, error=error_text(exc), worker=worker_id())
    # a supplied model is read from its file by every worker, never shipped or cached
    weights = worker.provider.cache.export(job.key)[0] if ship and job.supplied is None \
        else None
    return TrainOutcome(train_key, trained.info, weights=weights, worker=worker_id())


def evaluate_cell(setup: WorkSetup, cell_key: str, trained: TrainOutcome | None = None
                  ) -> Result:
    """Evaluate the cell ``cell_key`` of ``setup``'s plan. ``trained`` is its job's outcome
    when the job ran elsewhere: its error fails the cell, its shipped weights are put into
    this worker's cache; without it the job is trained (or loaded) here."""
    worker = worker_for(setup)
    cell = worker.plan.cell(cell_key)
    if trained is not None and trained.error is not None:
        return worker.training_failed(cell, trained.error)
    if trained is not None and trained.weights is not None and trained.info is not None:
        worker.receive(cell.job, trained.weights, trained.info)
    try:
        model = worker.trained(cell.job)
    except PASS_THROUGH:
        raise
    except BaseException as exc:    # a plugin's SystemExit fails the cell, not the run
        return worker.training_failed(cell, exc)
    return worker.evaluate(cell, model)
