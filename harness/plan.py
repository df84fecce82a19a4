"""Expands a bench configuration into training jobs and evaluation cells, with cache keys.

Each (dataset, model, training-stage defense, training settings) is one training job,
trained once. Every (defense, attack, eps) is a cell evaluated against a job's model: a
training defense's own model, or the undefended model for input transformations and
poisoning detectors (and for poisoning attacks, which train their own victims). A pairing
that cannot work (a poisoning detector against an evasion attack, an attack that needs
gradients against a model without them) is not an error: it is listed as n/a with the
reason. Every name and value is checked here, before any work starts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import roles
from harness.categories import (
    category_of,
    defense_needs,
    refusal,
    stage_of,
    trains_on_baseline,
)
from harness.errors import UsageError, quoted
from harness.registry import Registry
from harness.settings import EARLY_STOP_ON, TrainSettings
from harness.specs import MODEL_FEATURES, AttackSpec, DatasetSpec, DefenseSpec, ModelSpec
from harness.supplied import (
    SUPPLIED_DEFENSE,
    SUPPLIED_KEYS,
    SUPPLIED_OPTIONS,
    ModelContractError,
    SuppliedModel,
    describe_supplied,
    file_sha256,
    split_weights,
)

ALL = "all"
# The largest --image-size: 4096 x 4096 x 3 float32 is 201 MB an image, already more than a
# benchmark can hold for a dataset; beyond it a typo (100000) would only exhaust memory.
MAX_IMAGE_SIZE = 4096
# The automatic large-eps check: the run's iterative white-box attack at this eps on this
# many test images, for every model and defense with an evasion cell (``--no-checks`` leaves
# it out). See harness.checks.
CHECK_EPS, CHECK_IMAGES = 0.5, 500


@dataclass(frozen=True)
class BenchConfig:
    """Everything ``harness bench`` was asked to do."""

    # Empty: the specs of that kind that declare ``default=True`` (the main command's).
    datasets: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    attacks: tuple[str, ...] = ()
    defenses: tuple[str, ...] = ()
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
    checks: bool = True
    # GPU speed options; both change the numbers in their last digits, so both are part of
    # the training and cell keys when set (and absent from them when not).
    amp: str | None = None
    cudnn_benchmark: bool = False
    # Early stopping: None keeps the models' and the harness's defaults (see TrainSettings).
    early_stop_on: str | None = None
    early_stop_eps: float | None = None
    augment: str | None = None

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
    model_params: dict[str, Any] = field(default_factory=dict)
    defense_params: dict[str, Any] = field(default_factory=dict)
    amp: str | None = None
    # A model supplied trained (harness.supplied): loaded as it is, never trained or cached.
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
    attack_params: dict[str, Any] = field(default_factory=dict)
    defense_params: dict[str, Any] = field(default_factory=dict)
    check: bool = False
    adaptive: str | None = None


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


def _describe(feature: str) -> str:
    return f"'{feature}' ({MODEL_FEATURES[feature]})" if feature in MODEL_FEATURES \
        else f"'{feature}'"


def pairing_problem(model_name: str, model: ModelSpec, defense: DefenseSpec,
                    attack: AttackSpec) -> str | None:
    """Why ``attack`` against ``model`` with ``defense`` cannot be evaluated, or None."""
    reason = refusal(defense, attack)
    if reason is not None:
        return reason
    for owner, needs in ((f"defense {defense.name}", defense_needs(defense)),
                         (f"attack {attack.name}", attack.needs)):
        missing = sorted(set(needs) - set(model.offers))
        if missing:
            return (f"model {model_name} offers no {', '.join(map(_describe, missing))}, "
                    f"which {owner} needs")
    return None


def digest(fields: dict[str, Any]) -> str:
    """A stable short hash of JSON-serializable ``fields``."""
    text = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _plugin_version(spec) -> str:
    return f"{spec.plugin.distribution} {spec.plugin.version}" if spec.plugin else "in-process"


def default_names(kind: str, registry: Registry) -> list[str]:
    """The names of the ``kind`` specs that declare themselves part of the default run."""
    return [n for n in registry.names(kind) if getattr(registry.specs[kind][n], "default", False)]


def _expand(kind: str, names: tuple[str, ...], registry: Registry) -> list[str]:
    out: list[str] = []
    for name in names or tuple(default_names(kind, registry)):
        if name == ALL:
            expanded = registry.names(kind)
            if kind == "model":
                expanded = [n for n in expanded if not registry.models[n].takes_variant]
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
            raise UsageError(f"{flag} names {quoted(owner)}, which is not in this run "
                             f"({', '.join(known) or 'nothing'})")


def settings_for(config: BenchConfig, model: ModelSpec) -> TrainSettings:
    """Training settings: the command line over the model's defaults over the harness's."""
    values = {**TrainSettings().as_dict(), **dict(model.train_defaults)}
    for name in ("epochs", "batch_size", "lr", "patience", "early_stop_on", "early_stop_eps",
                 "augment"):
        if getattr(config, name) is not None:
            values[name] = getattr(config, name)
    values["seed"] = config.seed
    return TrainSettings(**values)


def _supplied_job(config: BenchConfig, ds: DatasetSpec, choice: ModelChoice,
                  settings: TrainSettings) -> TrainingJob:
    """The job of a supplied model: loaded, never trained, so no training settings or
    training subset shape it; the file's SHA-256 does."""
    supplied = choice.supplied
    assert supplied is not None
    model = choice.spec
    fields: dict[str, Any] = {
        "dataset": ds.name, "dataset_plugin": _plugin_version(ds),
        "dataset_eps": ds.default_eps, "image_size": config.image_size,
        "model": choice.spec_name, "model_plugin": _plugin_version(model),
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


def _training_job(config: BenchConfig, ds: DatasetSpec, model_name: str, model: ModelSpec,
                  variant: str | None, settings: TrainSettings, m_opts: dict[str, Any],
                  defense: DefenseSpec) -> TrainingJob:
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
    if model.key_config():
        fields["model_config"] = model.key_config()
    if defense.key_config():
        fields["defense_config"] = defense.key_config()
    if config.amp is not None:
        fields["amp"] = config.amp
    if config.cudnn_benchmark:
        fields["cudnn_benchmark"] = True
    return TrainingJob(ds, model_name, model, variant, m_opts, defense, d_opts, settings,
                       config.n_train, digest(fields), fields,
                       model_params=model.resolve_options(m_opts),
                       defense_params=defense.resolve_options(d_opts), amp=config.amp)


def _check_twice(flag: str, values: tuple[Any, ...], shown: Any) -> None:
    """A value listed twice in ``flag`` is a UsageError (it would be one cell, not two)."""
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            raise UsageError(f"{flag} lists {shown(value)} twice")
        seen.add(value)


# What ``--amp`` accepts: bfloat16 autocast needs no loss scaling, so every trainer takes it.
AMP_DTYPES = ("bf16",)


def check_config(config: BenchConfig) -> None:
    """Every number of ``config`` in range, no name or eps listed twice (UsageError
    otherwise). :func:`make_plan` runs it; the command line runs it first, before it opens
    anything under HARNESS_HOME."""
    for name in ("n_train", "n_test", "epochs", "batch_size", "patience", "image_size"):
        _check_positive(name.replace("_", "-"), getattr(config, name), integer=True)
    _check_positive("lr", config.lr)
    _check_positive("attack-batch-size", config.attack_batch_size, integer=True)
    if not isinstance(config.seed, int) or not 0 <= config.seed < 2**63:
        raise UsageError(f"--seed must be an integer in [0, 2**63), got {_shown(config.seed)}")
    if config.image_size is not None and config.image_size > MAX_IMAGE_SIZE:
        gigabytes = 3 * 4 * config.image_size ** 2 / 1e9
        raise UsageError(
            f"--image-size {config.image_size} is too large: at most {MAX_IMAGE_SIZE} (one "
            f"3-channel float32 image of that side takes {gigabytes:.3g} GB, and every image "
            "of the dataset is held in memory at that size)")
    for e in config.eps or ():
        if not (0 < e <= 1):
            raise UsageError(f"--eps {e} is out of range: eps is in pixel units of [0, 1], "
                             "so it must be in (0, 1] (e.g. 0.1 for MNIST, 0.03 for CIFAR-10)")
    _check_twice("--eps", tuple(config.eps or ()), lambda e: f"{e:g}")
    if config.early_stop_on is not None and config.early_stop_on not in EARLY_STOP_ON:
        raise UsageError(f"--early-stop-on {config.early_stop_on!r}: use one of "
                         f"{', '.join(EARLY_STOP_ON)}")
    if config.early_stop_eps is not None and not 0 < config.early_stop_eps <= 1:
        raise UsageError(f"--early-stop-eps {config.early_stop_eps:g} is out of range: eps is "
                         "in pixel units of [0, 1], so it must be in (0, 1]")
    if config.amp is not None and config.amp not in AMP_DTYPES:
        raise UsageError(f"--amp {config.amp!r} is not offered: use {', '.join(AMP_DTYPES)} "
                         "(fp16 would need a loss scaler inside every trainer, ART's too)")
    for kind in ("dataset", "model", "attack", "defense"):
        _check_twice(f"--{kind}", getattr(config, f"{kind}s"), quoted)


def _shown(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else f"{text[:40]}… ({len(text)} digits)"


@dataclass(frozen=True)
class ModelChoice:
    """One ``--model`` name, resolved: the spec (for ``ARCH@FILE``, the architecture's, less
    what a trained model cannot offer), its variant, the plugin's options and, for a supplied
    model, what identifies it."""

    name: str
    spec: ModelSpec
    variant: str | None
    options: dict[str, Any]
    supplied: SuppliedModel | None = None

    @property
    def spec_name(self) -> str:
        """The registered name (``timm:resnet18`` for a family's variant, no file path)."""
        if self.spec.supplied or self.variant is None:
            return self.spec.name
        return f"{self.spec.name}:{self.variant}"


def choose_model(name: str, given: dict[str, Any], registry: Registry) -> ModelChoice:
    """The :class:`ModelChoice` of ``--model name`` with its ``--model-opt`` options ``given``:
    a supplied model's file is read for its SHA-256 here (a missing file is a
    :class:`harness.supplied.ModelContractError`, before any work)."""
    arch, weights = split_weights(name)
    spec, variant = registry.model_variant(arch)
    core = {k: v for k, v in given.items() if k in SUPPLIED_KEYS}
    plugin = {k: v for k, v in given.items() if k not in SUPPLIED_KEYS}
    if weights is None and not spec.supplied:
        if core:
            raise UsageError(f"--model-opt {quoted(name)}.{sorted(core)[0]}: only a supplied "
                             "model (KIND:PATH or ARCH@WEIGHTS) takes "
                             f"{', '.join(sorted(SUPPLIED_KEYS))}")
        return ModelChoice(name, spec, variant, plugin)
    resolved = SUPPLIED_OPTIONS.resolve(f"model {name}", core)
    if weights is not None:
        if spec.supplied:
            raise UsageError(f"--model {quoted(name)}: {spec.name} models are files already; "
                             f"use {spec.name}:PATH without @")
        sha = file_sha256(weights, f"--model {quoted(name)}")
        supplied = describe_supplied(f"{arch}@", weights, resolved, sha, weights_for=arch)
        supplied = _with_path(supplied, weights)
        offers = spec.offers - {"training-loop"}
        return ModelChoice(name, _as_supplied(spec, offers), variant, plugin,
                           dataclasses.replace(supplied, asked=name))
    if spec.fingerprint is not None:
        sha = spec.fingerprint(variant, plugin)
        supplied = describe_supplied(spec.name, None, resolved, sha)
    else:
        path = Path(variant or "")
        sha = file_sha256(path, f"--model {quoted(name)}")
        supplied = _with_path(describe_supplied(f"{spec.name}:", path, resolved, sha), path)
    return ModelChoice(name, spec, variant, plugin, dataclasses.replace(supplied, asked=name))


def is_supplied_name(name: str, registry: Registry) -> bool:
    """Whether ``--model name`` names a supplied model (``KIND:PATH`` or ``ARCH@FILE``)."""
    arch, weights = split_weights(name)
    return weights is not None or registry.model(arch).supplied


def _with_path(supplied: SuppliedModel, path: Path) -> SuppliedModel:
    return dataclasses.replace(supplied, path=str(path))


def _as_supplied(spec: ModelSpec, offers: frozenset[str]) -> ModelSpec:
    return dataclasses.replace(spec, offers=offers, fit=None)


@dataclass(frozen=True)
class _Selection:
    """The specs a configuration names, expanded and checked."""

    datasets: list[DatasetSpec]
    models: list[ModelChoice]
    attacks: list[AttackSpec]
    defenses: list[DefenseSpec]
    baseline: DefenseSpec | None


def _select(config: BenchConfig, registry: Registry) -> _Selection:
    datasets = [registry.dataset(n) for n in _expand("dataset", config.datasets, registry)]
    model_names = _expand("model", config.models, registry)
    models = [choose_model(n, dict(config.model_options.get(n, {})), registry)
              for n in model_names]
    attacks = [registry.attack(n) for n in _expand("attack", config.attacks, registry)]
    defenses = [registry.defense(n) for n in _expand("defense", config.defenses, registry)]
    baselines = [s for s in registry.defenses.values() if s.baseline]
    if config.baseline:
        defenses = [b for b in baselines if b not in defenses] + defenses
    for kind, items in (("dataset", datasets), ("model", models), ("attack", attacks),
                        ("defense", defenses)):
        if not items:
            raise UsageError(f"no {kind} selected")
    baseline = baselines[0] if baselines else None
    if baseline is None and any(stage_of(d).on_baseline for d in defenses):
        raise UsageError("input transformations and poisoning detectors sit on top of the "
                         "undefended model, but no baseline defense is registered (is the "
                         "plugin that provides the baseline defense disabled?)")
    refusing = [d.name for d in defenses if d.stage == "training" and not d.augments]
    if config.augment is not None and refusing:
        raise UsageError(f"--augment {config.augment}: defense{'s' if len(refusing) > 1 else ''} "
                         f"{', '.join(refusing)} train{'' if len(refusing) > 1 else 's'} inside "
                         "a library's own fit and cannot augment each minibatch; run "
                         f"{'them' if len(refusing) > 1 else 'it'} without --augment "
                         "(defenses none, advtrain and fbf take it)")
    _check_option_owners(config.model_options, model_names, "--model-opt")
    _check_option_owners(config.attack_options, [a.name for a in attacks], "--attack-opt")
    _check_option_owners(config.defense_options, [d.name for d in defenses], "--defense-opt")
    return _Selection(datasets, models, attacks, defenses, baseline)


def make_plan(config: BenchConfig, registry: Registry) -> Plan:
    """Validate ``config`` against ``registry`` and expand the cross-product."""
    check_config(config)
    chosen = _select(config, registry)
    plan = _PlanBuilder(config, registry)
    for ds in chosen.datasets:
        for choice in chosen.models:
            if choice.supplied is not None:
                plan.add_supplied(chosen, ds, choice)
            else:
                plan.add_model(chosen, ds, choice.name, choice.spec, choice.variant)
    return Plan(tuple(plan.jobs), tuple(plan.cells), tuple(plan.skipped))


def supplied_refusal(label: str, defense: DefenseSpec, attack: AttackSpec) -> str | None:
    """Why a supplied model ``label`` cannot be evaluated with ``defense`` against ``attack``
    (it would have to be trained), or None."""
    if category_of(attack).own_victims:
        return (f"{attack.name} is a {attack.category} attack: it trains its own victims, and "
                f"{label} is supplied trained (the harness does not train it)")
    if not defense.baseline and not stage_of(defense).on_baseline:
        return (f"{defense.name} is a training defense: it would train the model, and {label} "
                "is supplied trained (the harness does not train it); evaluate "
                f"{defense.name} on an architecture the harness trains (e.g. --model paper-cnn)")
    return None


class _PlanBuilder:
    """Collects the jobs, cells and n/a pairings of a plan, model by model."""

    def __init__(self, config: BenchConfig, registry: Registry):
        self.config, self.registry = config, registry
        self.jobs: list[TrainingJob] = []
        self.cells: list[Cell] = []
        self.skipped: list[Skipped] = []

    def add_model(self, chosen: _Selection, ds: DatasetSpec, model_name: str, model: ModelSpec,
                  variant: str | None) -> None:
        """Every pairing of defense and attack on one (dataset, model)."""
        config = self.config
        settings = settings_for(config, model)
        m_opts = dict(config.model_options.get(model_name, {}))
        made: dict[str, TrainingJob] = {}
        for defense in chosen.defenses:
            for attack in chosen.attacks:
                problem = pairing_problem(model_name, model, defense, attack)
                if problem is not None:
                    self.skipped.append(_skipped(ds, model_name, defense, attack, problem))
                    continue
                trainer = chosen.baseline if trains_on_baseline(defense, attack) \
                    and chosen.baseline is not None else defense
                if trainer.name not in made:
                    made[trainer.name] = _training_job(config, ds, model_name, model, variant,
                                                       settings, m_opts, trainer)
                    self.jobs.append(made[trainer.name])
                self.cells += _cells_of(config, ds, made[trainer.name], defense, attack)
            if config.checks:
                _add_check_cell(config, self.registry, self.cells, ds.name, model_name, model,
                                defense)


    def add_supplied(self, chosen: _Selection, ds: DatasetSpec, choice: ModelChoice) -> None:
        """Every pairing on a supplied model: its own cells under :data:`SUPPLIED_DEFENSE`,
        input transformations in front of it; what would train it is n/a (or, when every
        model of the run is supplied and the defense was asked for, refused)."""
        supplied = choice.supplied
        assert supplied is not None
        label = supplied.label
        job = _supplied_job(self.config, ds, choice, settings_for(self.config, choice.spec))
        defenses = [SUPPLIED_DEFENSE] + [d for d in chosen.defenses if not d.baseline]
        all_supplied = all(c.supplied is not None for c in chosen.models)
        used = False
        for defense in defenses:
            for attack in chosen.attacks:
                problem = supplied_refusal(label, defense, attack)
                if problem is not None and all_supplied and not defense.baseline \
                        and not stage_of(defense).on_baseline:
                    raise ModelContractError(problem)
                problem = problem or pairing_problem(label, choice.spec, defense, attack)
                if problem is not None:
                    self.skipped.append(_skipped(ds, label, defense, attack, problem))
                    continue
                used = True
                self.cells += _cells_of(self.config, ds, job, defense, attack)
            if self.config.checks:
                _add_check_cell(self.config, self.registry, self.cells, ds.name, label,
                                choice.spec, defense)
        if used:
            self.jobs.append(job)


def _skipped(ds: DatasetSpec, model_name: str, defense: DefenseSpec, attack: AttackSpec,
             problem: str) -> Skipped:
    key = digest({"dataset": ds.name, "model": model_name, "defense": defense.name,
                  "attack": attack.name, "n/a": problem})
    return Skipped(ds.name, model_name, defense, attack, problem, key)


def _cells_of(config: BenchConfig, ds: DatasetSpec, job: TrainingJob, defense: DefenseSpec,
              attack: AttackSpec) -> list[Cell]:
    """The cells of one pairing: one per eps for a bounded attack of a per-eps category."""
    d_opts = dict(config.defense_options.get(defense.name, {}))
    a_opts = dict(config.attack_options.get(attack.name, {}))
    default = attack.default_eps if attack.default_eps is not None else ds.default_eps
    per_eps = attack.bounded and category_of(attack).per_eps
    budgets: list[float | None] = (
        [float(e) for e in (config.eps if config.eps is not None else [default])]
        if per_eps else [None])
    n_test = config.n_test if config.n_test is not None else attack.budget_images
    modes: list[str | None] = [None]
    if per_eps and stage_of(defense).adaptive and not defense.baseline:
        modes.append(adaptive_label(defense))
    return [_cell(config, job, defense, d_opts, attack, a_opts, eps, n_test, adaptive=mode)
            for eps in budgets for mode in modes]


def adaptive_label(defense: DefenseSpec) -> str:
    """How an attack is made adaptive to ``defense``: ``"bpda"``, or ``"bpda+eot"`` for a
    randomized one."""
    return "bpda+eot" if defense.randomized else "bpda"


def check_attack(registry: Registry) -> AttackSpec | None:
    """The attack of the large-eps check: the reference iterative white-box attack (not an
    ensemble), else the first such attack by name; None when none is registered."""
    candidates = [s for s in registry.attacks.values()
                  if roles.ITERATIVE in s.roles and roles.ENSEMBLE not in s.roles]
    candidates.sort(key=lambda s: (roles.REFERENCE not in s.roles, s.name))
    return candidates[0] if candidates else None


def _add_check_cell(config: BenchConfig, registry: Registry, cells: list[Cell], dataset: str,
                    model_name: str, model: ModelSpec, defense: DefenseSpec) -> None:
    """The iterative attack at a very large eps beside the last evasion cell of (model,
    defense), unless the run has it already: at that budget accuracy should fall to about
    chance."""
    attack = check_attack(registry)
    if attack is None or pairing_problem(model_name, model, defense, attack) is not None:
        return
    own = [c for c in cells if c.defense.name == defense.name and c.job.model_name == model_name
           and category_of(c.attack).per_eps and c.job.dataset.name == dataset]
    if not own or any(c.attack.name == attack.name and (c.eps or 0) >= CHECK_EPS for c in own):
        return
    last = own[-1]
    cells.append(_cell(config, last.job, defense, last.defense_options, attack,
                       dict(config.attack_options.get(attack.name, {})), CHECK_EPS,
                       min(config.n_test or CHECK_IMAGES, CHECK_IMAGES), check=True))


def _cell(config: BenchConfig, job: TrainingJob, defense: DefenseSpec, d_opts: dict[str, Any],
          attack: AttackSpec, a_opts: dict[str, Any], eps: float | None,
          n_test: int | None, check: bool = False, adaptive: str | None = None) -> Cell:
    """A cell and its cache key: everything that shapes its numbers."""
    fields = {"job": job.key, "attack": attack.name, "attack_plugin": _plugin_version(attack),
              "attack_config": attack.key_config(), "attack_options": a_opts, "eps": eps,
              "n_test": n_test, "seed": config.seed}
    if defense.name != job.defense.name:
        fields.update(defense=defense.name, defense_plugin=_plugin_version(defense),
                      defense_config=defense.key_config(), defense_options=d_opts)
    if adaptive is not None:
        fields["adaptive"] = adaptive
        if defense.randomized:
            fields["eot_samples"] = defense.eot_samples
    return Cell(job, defense, d_opts, attack, a_opts, eps, n_test, digest(fields),
                attack_params=attack.resolve_options(a_opts),
                defense_params=defense.resolve_options(d_opts), check=check, adaptive=adaptive)
