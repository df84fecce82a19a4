"""Runs a plan: load data, train (or load) each model once, evaluate every cell, store it.

Each attack category has its own evaluation: evasion attacks perturb test images (through
an input transformation when the cell's defense is one); poisoning attacks poison the
training set, the victim is retrained on it, and a poisoning detector's flags are scored
and the victim retrained without them; inference and extraction attacks run against the
trained victim and report their own metrics. Pairings the plan left out are stored as n/a.

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

from harness.adversarial import AdversarialStore, examples
from harness.context import AttackContext, PoisonedSet
from harness.data import DataOptions, ImageData, ModelInput
from harness.devices import resolve_device, synchronize
from harness.evaluation import evaluate_attack, predict
from harness.metadata import now, run_metadata
from harness.model_cache import ModelCache
from harness.plan import BenchConfig, Cell, Plan, Skipped, TrainingJob, digest, make_plan
from harness.poisoning import attack_success, detection_scores
from harness.registry import Registry
from harness.store import ResultStore
from harness.training import TrainContext, TrainData, TrainReport, train_supervised


@dataclass
class BenchOutcome:
    """The records of every cell of the run (fresh or reused) and the run's metadata."""

    run_id: str
    metadata: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed(self) -> list[dict[str, Any]]:
        """Records of cells that failed."""
        return [r for r in self.records if r["status"] == "failed"]

    @property
    def not_applicable(self) -> list[dict[str, Any]]:
        """Records of pairings left out as n/a."""
        return [r for r in self.records if r["status"] == "n/a"]


class Transformed(torch.nn.Module):
    """An input-transformation defense in front of a model: ``model(transform(x))``."""

    def __init__(self, transformation: Any, model: torch.nn.Module):
        super().__init__()
        self.transformation = transformation
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The model's logits on the transformed images."""
        with torch.no_grad():
            x = self.transformation.transform(x)
        return self.model(x)


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
        self.adversarial = AdversarialStore(cache.root.parent / "adversarial")
        self.plan: Plan = make_plan(config, registry)
        self.device = resolve_device(config.device)
        self._poisoned: dict[str, tuple[PoisonedSet, torch.nn.Module, float]] = {}
        self._members: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

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

    def _build_model(self, job: TrainingJob, data: ImageData,
                     seed: int | None = None) -> torch.nn.Module:
        torch.manual_seed(job.settings.seed if seed is None else seed)
        model = job.model.build(self._model_input(job, data), job.variant, job.model_options)
        return model.to(self.device)

    def _preflight(self, data: dict[str, ImageData]) -> None:
        """Build every attack, defense and model once so bad options fail before any work."""
        built: set[str] = set()
        for cell in self.plan.cells:
            for spec, options in ((cell.attack, cell.attack_options),
                                  (cell.defense, cell.defense_options)):
                once = digest({"kind": type(spec).__name__, "name": spec.name, "options": options})
                if once not in built:
                    spec.build(options)
                    built.add(once)
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
        if job.defense.baseline and job.model.fit is not None:
            report = job.model.fit(model, train_data, ctx)
        else:
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
            "dataset": job.dataset.name, "model": job.model_name, "defense": cell.defense.name,
            "attack": cell.attack.name, "eps": cell.eps, "status": status, "error": None,
            "category": cell.attack.category, "defense_stage": cell.defense.stage,
            "threat_model": cell.attack.threat_model, "norm": cell.attack.norm,
            "created_at": now(),
            "config": {"training": job.key_fields, "attack_options": cell.attack_options,
                       "attack_config": dict(cell.attack.config),
                       "defense_options": cell.defense_options,
                       "n_test": cell.n_test, "seed": self.config.seed,
                       "attack_batch_size": self.config.attack_batch_size},
            **values,
        }

    def _skipped_record(self, item: Skipped, run_id: str) -> dict[str, Any]:
        return {
            "cell_key": item.key, "train_key": "", "run_id": run_id, "dataset": item.dataset,
            "model": item.model, "defense": item.defense.name, "attack": item.attack.name,
            "eps": None, "status": "n/a", "error": item.reason,
            "category": item.attack.category, "defense_stage": item.defense.stage,
            "threat_model": item.attack.threat_model, "norm": item.attack.norm,
            "created_at": now(), "config": {"seed": self.config.seed},
        }

    def run(self) -> BenchOutcome:
        """Run every cell of the plan; return all their records."""
        data = self._load_datasets()
        self._preflight(data)
        metadata = run_metadata(self.registry, self.device, self.config.as_dict(), self.argv)
        run_id = self.store.start_run(metadata)
        outcome = BenchOutcome(run_id, metadata)
        for item in self.plan.skipped:
            record = self._skipped_record(item, run_id)
            self.store.add_result(record)
            outcome.records.append({**record, "metadata": metadata})
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
            self._poisoned.clear()
        self.store.finish_run(run_id, now())
        return outcome

    def _evaluate(self, cell: Cell, model: torch.nn.Module, info: dict, data: ImageData,
                  run_id: str) -> dict[str, Any]:
        train_values = {"train_seconds": info["train_seconds"],
                        "train_images_per_s": info["train_images_per_s"]}
        t0 = time.perf_counter()
        try:
            if cell.attack.category == "evasion":
                values = self._evasion(cell, model, data)
            elif cell.attack.category == "poisoning":
                values = self._poisoning(cell, model, data)
            else:
                values = self._model_attack(cell, model, data)
        except Exception as exc:
            record = self._record(cell, run_id, "failed", error=_error_text(exc),
                                  attack_seconds=time.perf_counter() - t0, **train_values)
        else:
            values.setdefault("attack_seconds", time.perf_counter() - t0)
            record = self._record(cell, run_id, "ok", **values, **train_values)
        self.store.add_result(record)
        return record

    def _evasion(self, cell: Cell, model: torch.nn.Module, data: ImageData) -> dict[str, Any]:
        if cell.n_test is not None and cell.n_test < len(data.x_test):
            data = data.subset(None, cell.n_test, self.config.seed)
        budget = f"eps={cell.eps:g}" if cell.eps is not None else "unbounded"
        defended = None
        if cell.defense.stage == "input-transformation":
            defended = Transformed(cell.defense.build(cell.defense_options), model)
        attack = cell.attack.build(cell.attack_options)
        result = evaluate_attack(
            model, attack, data.x_test, data.y_test, cell.eps,
            batch_size=self.config.attack_batch_size,
            label=f"{cell.attack.name} {budget} on {cell.defense.name}",
            show_progress=self.show_progress, defended=defended, keep_adversarial=True)
        judge = defended if defended is not None else model
        self.adversarial.save(cell.key, result.x_adv, data.y_test)
        x_stored, y_stored = self.adversarial.load(cell.key, self.device)
        stored_acc = float((predict(judge, x_stored) == y_stored).sum()) / len(y_stored)
        shown = examples(data.x_test, result.x_adv, data.y_test,
                         predict(judge, data.x_test[:4]), predict(judge, result.x_adv[:4]))
        return {"metrics": {"num_classes": float(data.num_classes),
                            "stored_robust_acc": stored_acc},
                "examples": shown,
                "clean_acc": result.clean_acc, "robust_acc": result.robust_acc,
                "attack_success_rate": result.attack_success_rate,
                "mean_linf": result.mean_linf, "mean_l2": result.mean_l2,
                "median_l0": result.median_l0, "median_l2": result.median_l2,
                "median_linf": result.median_linf,
                "queries_per_image": result.queries_per_image, "n_test": result.n_test,
                "attack_seconds": result.attack_seconds,
                "attack_images_per_s": result.attack_images_per_s}

    def _context(self, cell: Cell, model: torch.nn.Module, data: ImageData) -> AttackContext:
        job = cell.job

        def new_model(seed: int | None = None) -> torch.nn.Module:
            return self._build_model(job, data, seed)

        def train(victim: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                  label: str = "train") -> TrainReport:
            split = TrainData.from_tensors(x, y, data.num_classes, job.settings.val_fraction,
                                           job.settings.seed)
            ctx = TrainContext(settings=job.settings, device=self.device,
                               dataset_eps=job.dataset.default_eps,
                               label=f"{label} {job.dataset.name}/{job.model_name}",
                               show_progress=self.show_progress)
            if job.model.fit is not None:
                report = job.model.fit(victim, split, ctx)
            else:
                report = train_supervised(victim, split, ctx)
            victim.eval()
            return report

        if job.key not in self._members:
            fitted = TrainData.split(data, job.settings.val_fraction, job.settings.seed)
            self._members = {job.key: (fitted.x, fitted.y)}    # one job's at a time
        return AttackContext(data=data, device=self.device, seed=self.config.seed,
                             dataset_eps=job.dataset.default_eps, new_model=new_model,
                             train=train, clean_model=lambda: model, n_test=cell.n_test,
                             members=self._members[job.key], model_name=job.model_name,
                             show_progress=self.show_progress)

    def _poisoned_victim(self, cell: Cell, ctx: AttackContext
                         ) -> tuple[PoisonedSet, torch.nn.Module, float]:
        """The poisoned set and the victim trained on it, shared by a run's cells of one
        poisoning attack (against ``none`` and against each detector)."""
        key = digest({"job": cell.job.key, "attack": cell.attack.name,
                      "options": cell.attack_options, "config": dict(cell.attack.config),
                      "n_test": cell.n_test, "seed": self.config.seed})
        if key not in self._poisoned:
            synchronize(self.device)
            t0 = time.perf_counter()
            poisoned = cell.attack.build(cell.attack_options).poison(ctx)
            victim = ctx.new_model()
            ctx.train(victim, poisoned.x_train, poisoned.y_train, "poisoned victim")
            synchronize(self.device)
            self._poisoned[key] = (poisoned, victim.eval(), time.perf_counter() - t0)
        return self._poisoned[key]

    def _poisoning(self, cell: Cell, model: torch.nn.Module, data: ImageData) -> dict[str, Any]:
        ctx = self._context(cell, model, data)
        poisoned, victim, seconds = self._poisoned_victim(cell, ctx)
        x_test, y_test = data.x_test, data.y_test
        metrics: dict[str, float] = {"poison_rate": poisoned.rate,
                                     "n_poison": float(poisoned.is_poison.sum()),
                                     **poisoned.details}
        values: dict[str, Any] = {
            "clean_acc": float((predict(victim, x_test) == y_test).float().mean()),
            "attack_success_rate": attack_success(victim, poisoned),
            "n_test": len(poisoned.x_eval),
        }
        metrics["clean_model_acc"] = float((predict(model, x_test) == y_test).float().mean())
        if cell.defense.stage == "poisoning-detection":
            t0 = time.perf_counter()
            detector = cell.defense.build(cell.defense_options)
            flagged = detector.detect(victim, poisoned.x_train, poisoned.y_train, ctx)
            metrics.update(detection_scores(flagged, poisoned.is_poison))
            keep = ~flagged.to(poisoned.x_train.device).bool()
            repaired = ctx.new_model()
            ctx.train(repaired, poisoned.x_train[keep], poisoned.y_train[keep],
                      "victim without flagged samples")
            metrics["clean_acc_after"] = float(
                (predict(repaired, x_test) == y_test).float().mean())
            metrics["attack_success_after"] = attack_success(repaired, poisoned)
            seconds += time.perf_counter() - t0
        values.update(metrics=metrics, attack_seconds=seconds)
        return values

    def _model_attack(self, cell: Cell, model: torch.nn.Module, data: ImageData
                      ) -> dict[str, Any]:
        ctx = self._context(cell, model, data)
        synchronize(self.device)
        t0 = time.perf_counter()
        metrics = cell.attack.build(cell.attack_options).run(model, ctx)
        synchronize(self.device)
        seconds = time.perf_counter() - t0
        bad = {k: v for k, v in metrics.items() if not isinstance(v, int | float)}
        if bad:
            raise TypeError(f"attack {cell.attack.name} returned non-numeric metrics {bad}")
        return {"clean_acc": float((predict(model, data.x_test) == data.y_test)
                                   .float().mean()),
                "metrics": {k: float(v) for k, v in metrics.items()},
                "n_test": cell.n_test, "attack_seconds": seconds}
