"""Expands a bench configuration into training jobs and evaluation cells, with cache keys.

Each (dataset, model, defense, training settings) is one training job, trained once; every
(attack, eps) is a cell evaluated against that job's model. Every name and value is checked
here, before any work starts.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.registry import Registry
from harness.specs import AttackSpec, DatasetSpec, DefenseSpec, ModelSpec
from harness.training import TrainSettings

ALL = "all"


@dataclass(frozen=True)
class BenchConfig:
    """Everything ``harness bench`` was asked to do."""

    datasets: tuple[str, ...] = ("digits",)
    models: tuple[str, ...] = ("paper-cnn",)
    attacks: tuple[str, ...] = ("fgsm",)
    defenses: tuple[str, ...] = ("none", "advtrain")
    eps: tuple[float, ...] | None = None
    baseline: bool = True
    n_train: int | None = None
    n_test: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    patience: int | None = None
    seed: int = 0
    device: str = "auto"
    data_root: Path | None = None
    download: bool = False
    image_size: int | None = None
    attack_batch_size: int = 256
    model_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    attack_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    defense_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    no_cache: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready configuration, stored with every result."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["data_root"] = str(self.data_root) if self.data_root is not None else None
        for k in ("datasets", "models", "attacks", "defenses", "eps"):
            out[k] = list(out[k]) if out[k] is not None else None
        return out


@dataclass(frozen=True)
class TrainingJob:
    """One model to train (or load from the cache)."""

    dataset: DatasetSpec
    model_name: str
    model: ModelSpec
    variant: str | None
    model_options: dict[str, Any]
    defense: DefenseSpec
    defense_options: dict[str, Any]
    settings: TrainSettings
    n_train: int | None
    key: str
    key_fields: dict[str, Any]


@dataclass(frozen=True)
class Cell:
    """One (trained model, attack, eps) evaluation."""

    job: TrainingJob
    attack: AttackSpec
    attack_options: dict[str, Any]
    eps: float | None
    n_test: int | None
    key: str


@dataclass(frozen=True)
class Plan:
    """The training jobs and the cells evaluated on each."""

    jobs: tuple[TrainingJob, ...]
    cells: tuple[Cell, ...]

    def cells_of(self, job: TrainingJob) -> list[Cell]:
        """The cells that need ``job``'s model."""
        return [c for c in self.cells if c.job.key == job.key]


def digest(fields: dict[str, Any]) -> str:
    """A stable short hash of JSON-serializable ``fields``."""
    text = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _plugin_version(spec) -> str:
    return f"{spec.plugin.distribution} {spec.plugin.version}" if spec.plugin else "in-process"


def _expand(kind: str, names: tuple[str, ...], registry: Registry) -> list[str]:
    out: list[str] = []
    for name in names:
        if name == ALL:
            expanded = registry.names(kind)
            if kind == "model":
                expanded = [n for n in expanded if not registry.specs["model"][n].takes_variant]
            out += expanded
        else:
            out.append(name)
    return list(dict.fromkeys(out))


def _check_positive(name: str, value: float | None, integer: bool = False) -> None:
    if value is None:
        return
    if integer and (not isinstance(value, int) or value < 1):
        raise UsageError(f"--{name} must be a positive integer, got {value!r}")
    if not integer and not (value > 0 and math.isfinite(value)):
        raise UsageError(f"--{name} must be positive, got {value!r}")


def _check_option_owners(given: dict[str, dict], known: list[str], flag: str) -> None:
    for owner in given:
        if owner not in known:
            raise UsageError(f"{flag} names '{owner}', which is not in this run "
                             f"({', '.join(known) or 'nothing'})")


def settings_for(config: BenchConfig, model: ModelSpec) -> TrainSettings:
    """Training settings: the command line over the model's defaults over the harness's."""
    values = {**TrainSettings().as_dict(), **dict(model.train_defaults)}
    for name in ("epochs", "batch_size", "lr", "patience"):
        if getattr(config, name) is not None:
            values[name] = getattr(config, name)
    values["seed"] = config.seed
    return TrainSettings(**values)


def make_plan(config: BenchConfig, registry: Registry) -> Plan:
    """Validate ``config`` against ``registry`` and expand the cross-product."""
    for name in ("n_train", "n_test", "epochs", "batch_size", "patience", "image_size"):
        _check_positive(name.replace("_", "-"), getattr(config, name), integer=True)
    _check_positive("lr", config.lr)
    _check_positive("attack-batch-size", config.attack_batch_size, integer=True)
    if config.eps is not None:
        for e in config.eps:
            if not (0 < e <= 1):
                raise UsageError(f"--eps {e} is out of range: eps is in pixel units of [0, 1], "
                                 "so it must be in (0, 1] (e.g. 0.1 for MNIST, 0.03 for CIFAR-10)")

    datasets = [registry.dataset(n) for n in _expand("dataset", config.datasets, registry)]
    model_names = _expand("model", config.models, registry)
    models = [(n, *registry.model(n)) for n in model_names]
    attacks = [registry.attack(n) for n in _expand("attack", config.attacks, registry)]
    defense_names = _expand("defense", config.defenses, registry)
    defenses = [registry.defense(n) for n in defense_names]
    if config.baseline:
        baselines = [s for s in registry.specs["defense"].values() if s.baseline]
        defenses = [b for b in baselines if b not in defenses] + defenses
    for kind, items in (("dataset", datasets), ("model", models), ("attack", attacks),
                        ("defense", defenses)):
        if not items:
            raise UsageError(f"no {kind} selected")
    for d in defenses:
        if d.stage != "training":
            raise UsageError(f"defense '{d.name}' has stage '{d.stage}', which this runner does "
                             "not run yet (only training-stage defenses)")
    for a in attacks:
        if a.category != "evasion":
            raise UsageError(f"attack '{a.name}' is a {a.category} attack, which this runner does "
                             "not run yet (only evasion attacks)")
    _check_option_owners(config.model_options, model_names, "--model-opt")
    _check_option_owners(config.attack_options, [a.name for a in attacks], "--attack-opt")
    _check_option_owners(config.defense_options, [d.name for d in defenses], "--defense-opt")

    jobs: list[TrainingJob] = []
    cells: list[Cell] = []
    for ds in datasets:
        eps_values = list(config.eps) if config.eps is not None else None
        for model_name, model, variant in models:
            settings = settings_for(config, model)
            m_opts = dict(config.model_options.get(model_name, {}))
            for defense in defenses:
                d_opts = dict(config.defense_options.get(defense.name, {}))
                fields = {
                    "dataset": ds.name, "dataset_plugin": _plugin_version(ds),
                    "dataset_eps": ds.default_eps, "n_train": config.n_train,
                    "image_size": config.image_size,
                    "model": model_name, "model_plugin": _plugin_version(model),
                    "model_options": m_opts,
                    "defense": defense.name, "defense_plugin": _plugin_version(defense),
                    "defense_options": d_opts, "settings": settings.as_dict(),
                }
                job = TrainingJob(ds, model_name, model, variant, m_opts, defense, d_opts,
                                  settings, config.n_train, digest(fields), fields)
                jobs.append(job)
                for attack in attacks:
                    a_opts = dict(config.attack_options.get(attack.name, {}))
                    default = attack.default_eps if attack.default_eps is not None \
                        else ds.default_eps
                    budgets = (eps_values or [default]) if attack.bounded else [None]
                    n_test = config.n_test if config.n_test is not None \
                        else attack.budget_images
                    for eps in budgets:
                        eps = float(eps) if eps is not None else None
                        key = digest({"job": job.key, "attack": attack.name,
                                      "attack_plugin": _plugin_version(attack),
                                      "attack_config": dict(attack.config),
                                      "attack_options": a_opts, "eps": eps,
                                      "n_test": n_test, "seed": config.seed})
                        cells.append(Cell(job, attack, a_opts, eps, n_test, key))
    return Plan(tuple(jobs), tuple(cells))
