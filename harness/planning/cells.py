"""The units of a plan and their cache keys: training jobs (one trained, or supplied, model
each), cells (one model, defense, attack and eps each) and the pairings left out as n/a.
Everything that shapes a unit's numbers is in its key."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from harness.contracts.categories import category_of
from harness.contracts.options import ResolvedOptions
from harness.contracts.settings import TrainSettings
from harness.contracts.specs import AttackSpec, DatasetSpec, DefenseSpec, ModelSpec
from harness.planning.config import BenchConfig
from harness.planning.model_choice import ModelChoice
from harness.planning.supplied import (
    SUPPLIED_DEFENSE,
    SuppliedModel,
)


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
    model_params: ResolvedOptions = field(default_factory=ResolvedOptions)
    defense_params: ResolvedOptions = field(default_factory=ResolvedOptions)
    amp: str | None = None
    # A model supplied trained (harness.planning.supplied): loaded as it is, never trained or
    # cached.
    supplied: SuppliedModel | None = None


@dataclass(frozen=True)
class Cell:
    """One (trained model, defense, attack, eps) evaluation.

    ``job`` trained the model the cell uses; ``defense`` is the job's own defense for a
    training defense, else the input transformation or poisoning detector on top of the
    undefended job. ``*_options`` are what the user gave (part of the key), ``*_params``
    the resolved options ``build`` receives. ``check``: an automatic check cell.
    """

    job: TrainingJob
    defense: DefenseSpec
    defense_options: dict[str, Any]
    attack: AttackSpec
    attack_options: dict[str, Any]
    eps: float | None
    n_test: int | None
    key: str
    attack_params: ResolvedOptions = field(default_factory=ResolvedOptions)
    defense_params: ResolvedOptions = field(default_factory=ResolvedOptions)
    check: bool = False
    adaptive: str | None = None
    chunk_images: int | None = None


@dataclass(frozen=True)
class Skipped:
    """A pairing that cannot work, and why (shown as n/a)."""

    dataset: str
    model: str
    defense: DefenseSpec
    attack: AttackSpec
    reason: str
    key: str


@dataclass(frozen=True)
class Plan:
    """The training jobs, the cells evaluated on each, and the pairings left out."""

    jobs: tuple[TrainingJob, ...]
    cells: tuple[Cell, ...]
    skipped: tuple[Skipped, ...] = ()

    def cells_of(self, job: TrainingJob) -> list[Cell]:
        """The cells that need ``job``'s model."""
        return [c for c in self.cells if c.job.key == job.key]

    def job(self, key: str) -> TrainingJob:
        """The training job with train key ``key``."""
        for job in self.jobs:
            if job.key == key:
                return job
        raise KeyError(f"no training job {key} in this plan")

    def cell(self, key: str) -> Cell:
        """The cell with cell key ``key``."""
        for cell in self.cells:
            if cell.key == key:
                return cell
        raise KeyError(f"no cell {key} in this plan")


def digest(fields: dict[str, Any]) -> str:
    """A stable short hash of JSON-serializable ``fields``."""
    text = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def plugin_version(spec) -> str:
    """``'distribution version'`` of the plugin behind ``spec``, as keys record it."""
    return f"{spec.plugin.distribution} {spec.plugin.version}" if spec.plugin else "in-process"


def supplied_job(config: BenchConfig, ds: DatasetSpec, choice: ModelChoice,
                  settings: TrainSettings) -> TrainingJob:
    """The job of a supplied model: loaded, never trained, so no training settings or
    training subset shape it; the file's SHA-256 does."""
    supplied = choice.supplied
    assert supplied is not None
    model = choice.spec
    fields: dict[str, Any] = {
        "dataset": ds.name, "dataset_plugin": plugin_version(ds),
        "dataset_eps": ds.default_eps, "image_size": config.image_size,
        "model": choice.spec_name, "model_plugin": plugin_version(model),
        "model_options": choice.options, "supplied": supplied.key_fields(),
        "defense": SUPPLIED_DEFENSE.name}
    if model.key_config():
        fields["model_config"] = model.key_config()
    if config.amp is not None:
        fields["amp"] = config.amp
    return TrainingJob(ds, supplied.label, model, choice.variant, choice.options,
                       SUPPLIED_DEFENSE, {}, settings, config.n_train, digest(fields), fields,
                       model_params=model.resolve_options(choice.options), amp=config.amp,
                       supplied=supplied)


def training_job(config: BenchConfig, ds: DatasetSpec, model_name: str, model: ModelSpec,
                  variant: str | None, settings: TrainSettings, m_opts: dict[str, Any],
                  defense: DefenseSpec) -> TrainingJob:
    """The job that trains ``model`` with ``defense`` on ``ds``, and its key."""
    d_opts = dict(config.defense_options.get(defense.name, {}))
    fields = {
        "dataset": ds.name, "dataset_plugin": plugin_version(ds),
        "dataset_eps": ds.default_eps, "n_train": config.n_train,
        "image_size": config.image_size,
        "model": model_name, "model_plugin": plugin_version(model),
        "model_options": m_opts,
        "defense": defense.name, "defense_plugin": plugin_version(defense),
        "defense_options": d_opts, "settings": settings.as_dict(),
    }
    if model.key_config():
        fields["model_config"] = model.key_config()
    if defense.key_config():
        fields["defense_config"] = defense.key_config()
    if config.amp is not None:
        fields["amp"] = config.amp
    if config.cudnn_benchmark:
        fields["cudnn_benchmark"] = True
    model_params, model_eps, model_chosen = resolved_for(model, m_opts, ds)
    defense_params, defense_eps, defense_chosen = resolved_for(defense, d_opts, ds)
    fields.update(_eps_fields(model_eps=model_eps, defense_eps=defense_eps,
                              model_dataset_defaults=model_chosen,
                              defense_dataset_defaults=defense_chosen))
    return TrainingJob(ds, model_name, model, variant, m_opts, defense, d_opts, settings,
                       config.n_train, digest(fields), fields, model_params=model_params,
                       defense_params=defense_params, amp=config.amp)


def resolved_for(spec: ModelSpec | AttackSpec | DefenseSpec, given: dict[str, Any],
                 ds: DatasetSpec) -> tuple[ResolvedOptions, dict[str, Any], dict[str, Any]]:
    """``given`` resolved for ``spec``'s ``build``: every option with a default for ``ds``
    (``Option.per_dataset``) and not given set to it, then every option declared
    ``dataset_eps`` and left null set to ``ds``'s eps; and the values so set, each kind apart
    (part of the key that uses them)."""
    schema = spec.options
    resolved, chosen = schema.with_dataset_defaults(spec.resolve_options(given), given, ds.name)
    resolved, filled = schema.with_dataset_eps(resolved, ds.default_eps)
    return resolved, filled, chosen


def _eps_fields(**filled: dict[str, Any]) -> dict[str, Any]:
    """The key fields of options set by the planner (dataset eps, per-dataset defaults):
    only those that were, so a key without such an option is what it was."""
    return {name: values for name, values in filled.items() if values}


def skipped_pairing(ds: DatasetSpec, model_name: str, defense: DefenseSpec, attack: AttackSpec,
             problem: str) -> Skipped:
    """A pairing left out as n/a with ``problem``, keyed by what it is."""
    key = digest({"dataset": ds.name, "model": model_name, "defense": defense.name,
                  "attack": attack.name, "n/a": problem})
    return Skipped(ds.name, model_name, defense, attack, problem, key)


def adaptive_label(defense: DefenseSpec) -> str:
    """How an attack is made adaptive to ``defense``: ``"bpda"``, or ``"bpda+eot"`` for a
    randomized one."""
    return "bpda+eot" if defense.randomized else "bpda"


def cell_of(config: BenchConfig, job: TrainingJob, defense: DefenseSpec, d_opts: dict[str, Any],
          attack: AttackSpec, a_opts: dict[str, Any], eps: float | None,
          n_test: int | None, check: bool = False, adaptive: str | None = None) -> Cell:
    """A cell and its cache key: everything that shapes its numbers."""
    fields = {"job": job.key, "attack": attack.name, "attack_plugin": plugin_version(attack),
              "attack_config": attack.key_config(), "attack_options": a_opts, "eps": eps,
              "n_test": n_test, "seed": config.seed}
    attack_params, attack_eps, attack_chosen = resolved_for(attack, a_opts, job.dataset)
    defense_params, defense_eps, defense_chosen = resolved_for(defense, d_opts, job.dataset)
    fields.update(_eps_fields(attack_eps=attack_eps, attack_dataset_defaults=attack_chosen))
    if defense.name != job.defense.name:
        fields.update(defense=defense.name, defense_plugin=plugin_version(defense),
                      defense_config=defense.key_config(), defense_options=d_opts,
                      **_eps_fields(defense_eps=defense_eps,
                                    defense_dataset_defaults=defense_chosen))
    if adaptive is not None:
        fields["adaptive"] = adaptive
        if defense.randomized:
            fields["eot_samples"] = defense.eot_samples
    chunk = config.chunk_images if category_of(attack).chunked else None
    if chunk is not None:
        fields["chunk_images"] = chunk
    return Cell(job, defense, d_opts, attack, a_opts, eps, n_test, digest(fields),
                attack_params=attack_params, defense_params=defense_params, check=check,
                adaptive=adaptive, chunk_images=chunk)
