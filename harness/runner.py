"""Runs a plan: load data, train (or load) each model once, evaluate every cell, store it.

Nothing already computed is lost: finished cells are committed to the store one by one,
finished models are cached, unfinished trainings keep their state epoch by epoch, and a
re-run of the same command picks up where the last one stopped. A cell that raises is
recorded as failed and the rest goes on.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from harness.data import DataOptions, ImageData, ModelInput
from harness.devices import resolve_device
from harness.evaluation import evaluate_attack
from harness.metadata import now, run_metadata
from harness.model_cache import ModelCache
from harness.plan import BenchConfig, Cell, Plan, TrainingJob, make_plan
from harness.registry import Registry
from harness.store import ResultStore
from harness.training import TrainContext, TrainData


@dataclass
class BenchOutcome:
    """The records of every cell of the run (fresh or reused) and the run's metadata."""

    run_id: str
    metadata: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed(self) -> list[dict[str, Any]]:
        """Records of cells that failed."""
        return [r for r in self.records if r["status"] != "ok"]


def _error_text(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" (at {Path(last[0].filename).name}:{last[0].lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


class Runner:
    """Executes a :class:`Plan` on one device against one store and model cache."""

    def __init__(self, config: BenchConfig, registry: Registry, store: ResultStore,
                 cache: ModelCache, *, show_progress: bool = True, argv: list[str] | None = None):
        self.config = config
        self.registry = registry
        self.store = store
        self.cache = cache
        self.show_progress = show_progress
        self.argv = argv
        self.plan: Plan = make_plan(config, registry)
        self.device = resolve_device(config.device)

    def _load_datasets(self) -> dict[str, ImageData]:
        options = DataOptions(root=self.config.data_root, download=self.config.download,
                              image_size=self.config.image_size)
        out: dict[str, ImageData] = {}
        for job in self.plan.jobs:
            name = job.dataset.name
            if name not in out:
                data = job.dataset.load(options)
                out[name] = data.subset(self.config.n_train, self.config.n_test,
                                        self.config.seed).to(self.device)
        return out

    def _model_input(self, job: TrainingJob, data: ImageData) -> ModelInput:
        c, h, w = data.image_shape
        return ModelInput(c, h, w, data.num_classes, job.dataset.mean, job.dataset.std)

    def _build_model(self, job: TrainingJob, data: ImageData) -> torch.nn.Module:
        torch.manual_seed(job.settings.seed)
        model = job.model.build(self._model_input(job, data), job.variant, job.model_options)
        return model.to(self.device)

    def _preflight(self, data: dict[str, ImageData]) -> None:
        """Build every attack, defense and model once so bad options fail before any work."""
        for cell in self.plan.cells:
            cell.attack.build(cell.attack_options)
        for job in self.plan.jobs:
            job.defense.build(job.defense_options)
            self._build_model(job, data[job.dataset.name])

    def _trained_model(self, job: TrainingJob, data: ImageData) -> tuple[torch.nn.Module, dict]:
        model = self._build_model(job, data)
        if self.config.no_cache:
            self.cache.discard(job.key)
        elif self.cache.has(job.key):
            info = self.cache.load(job.key, model, self.device)
            model.eval()
            return model, {**info, "cached": True}
        defense = job.defense.build(job.defense_options)
        train_data = TrainData.split(data, job.settings.val_fraction, job.settings.seed)
        ctx = TrainContext(settings=job.settings, device=self.device,
                           dataset_eps=job.dataset.default_eps,
                           resume_path=self.cache.partial_path(job.key),
                           label=f"train {job.dataset.name}/{job.model_name}/{job.defense.name}",
                           show_progress=self.show_progress)
        report = defense.train(model, train_data, ctx)
        model.eval()
        info = {"key_fields": job.key_fields, "epochs_run": report.epochs_run,
                "best_epoch": report.best_epoch, "best_val_loss": report.best_val_loss,
                "train_seconds": report.seconds, "train_images": report.images,
                "train_images_per_s": report.images_per_s, "history": report.history,
                "device": str(self.device), "finished_at": now()}
        self.cache.save(job.key, model, info)
        return model, {**info, "cached": False}

    def _record(self, cell: Cell, run_id: str, status: str, **values: Any) -> dict[str, Any]:
        job = cell.job
        return {
            "cell_key": cell.key, "train_key": job.key, "run_id": run_id,
            "dataset": job.dataset.name, "model": job.model_name, "defense": job.defense.name,
            "attack": cell.attack.name, "eps": cell.eps, "status": status, "error": None,
            "threat_model": cell.attack.threat_model, "norm": cell.attack.norm,
            "created_at": now(),
            "config": {"training": job.key_fields, "attack_options": cell.attack_options,
                       "n_test": cell.n_test, "seed": self.config.seed,
                       "attack_batch_size": self.config.attack_batch_size},
            **values,
        }

    def run(self) -> BenchOutcome:
        """Run every cell of the plan; return all their records."""
        data = self._load_datasets()
        self._preflight(data)
        metadata = run_metadata(self.registry, self.device, self.config.as_dict(), self.argv)
        run_id = self.store.start_run(metadata)
        outcome = BenchOutcome(run_id, metadata)
        for job in self.plan.jobs:
            cells = self.plan.cells_of(job)
            pending = []
            for cell in cells:
                stored = None if self.config.no_cache else self.store.latest_ok(cell.key)
                if stored is not None:
                    outcome.records.append(stored)
                else:
                    pending.append(cell)
            if not pending:
                continue
            ds = data[job.dataset.name]
            try:
                model, info = self._trained_model(job, ds)
            except Exception as exc:
                error = f"training failed: {_error_text(exc)}"
                for cell in pending:
                    record = self._record(cell, run_id, "failed", error=error)
                    self.store.add_result(record)
                    outcome.records.append({**record, "metadata": metadata})
                continue
            for cell in pending:
                outcome.records.append({**self._evaluate(cell, model, info, ds, run_id),
                                        "metadata": metadata})
        self.store.finish_run(run_id, now())
        return outcome

    def _evaluate(self, cell: Cell, model: torch.nn.Module, info: dict, data: ImageData,
                  run_id: str) -> dict[str, Any]:
        train_values = {"train_seconds": info["train_seconds"],
                        "train_images_per_s": info["train_images_per_s"]}
        t0 = time.perf_counter()
        if cell.n_test is not None and cell.n_test < len(data.x_test):
            data = data.subset(None, cell.n_test, self.config.seed)
        budget = f"eps={cell.eps:g}" if cell.eps is not None else "unbounded"
        try:
            attack = cell.attack.build(cell.attack_options)
            result = evaluate_attack(
                model, attack, data.x_test, data.y_test, cell.eps,
                batch_size=self.config.attack_batch_size,
                label=f"{cell.attack.name} {budget} on {cell.job.defense.name}",
                show_progress=self.show_progress)
        except Exception as exc:
            record = self._record(cell, run_id, "failed", error=_error_text(exc),
                                  attack_seconds=time.perf_counter() - t0, **train_values)
        else:
            record = self._record(
                cell, run_id, "ok", clean_acc=result.clean_acc, robust_acc=result.robust_acc,
                attack_success_rate=result.attack_success_rate, mean_linf=result.mean_linf,
                mean_l2=result.mean_l2, median_l0=result.median_l0,
                median_l2=result.median_l2, median_linf=result.median_linf,
                queries_per_image=result.queries_per_image, n_test=result.n_test,
                attack_seconds=result.attack_seconds,
                attack_images_per_s=result.attack_images_per_s, **train_values)
        self.store.add_result(record)
        return record
