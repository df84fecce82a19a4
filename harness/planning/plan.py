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

from dataclasses import dataclass

from harness.contracts import roles
from harness.contracts.categories import (
    category_of,
    defense_needs,
    refusal,
    stage_of,
    trains_on_baseline,
)
from harness.contracts.specs import MODEL_FEATURES, AttackSpec, DatasetSpec, DefenseSpec, ModelSpec
from harness.planning.cells import (
    Cell,
    Plan,
    Skipped,
    TrainingJob,
    adaptive_label,
    cell_of,
    digest,
    skipped_pairing,
    supplied_job,
    training_job,
)
from harness.planning.config import ALL, BenchConfig, check_config, settings_for
from harness.planning.model_choice import ModelChoice, choose_model, is_supplied_name
from harness.planning.registry import Registry
from harness.planning.supplied import (
    SUPPLIED_DEFENSE,
    ModelContractError,
)
from harness.util.errors import UsageError, quoted

# The automatic large-eps check: the run's iterative white-box attack at this eps on this
# many test images, for every model and defense with an evasion cell (``--no-checks`` leaves
# it out). See harness.report.checks.
CHECK_EPS, CHECK_IMAGES = 0.5, 500


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


def _check_option_owners(given: dict[str, dict], known: list[str], flag: str) -> None:
    for owner in given:
        if owner not in known:
            raise UsageError(f"{flag} names {quoted(owner)}, which is not in this run "
                             f"({', '.join(known) or 'nothing'})")


@dataclass(frozen=True)
class _Selection:
    """The specs a configuration names, expanded and checked."""

    datasets: list[DatasetSpec]
    models: list[ModelChoice]
    attacks: list[AttackSpec]
    defenses: list[DefenseSpec]
    baseline: DefenseSpec | None


def _augmenting(registry: Registry) -> list[str]:
    """The defenses that apply ``--augment`` to each minibatch (the baseline first)."""
    return [d.name for d in sorted(registry.defenses.values(), key=lambda d: not d.baseline)
            if d.stage == "training" and d.augments]


def _joined(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


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
                         f"(defenses {_joined(_augmenting(registry))} take it)")
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
                    self.skipped.append(skipped_pairing(ds, model_name, defense, attack, problem))
                    continue
                trainer = chosen.baseline if trains_on_baseline(defense, attack) \
                    and chosen.baseline is not None else defense
                if trainer.name not in made:
                    made[trainer.name] = training_job(config, ds, model_name, model, variant,
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
        job = supplied_job(self.config, ds, choice, settings_for(self.config, choice.spec))
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
                    self.skipped.append(skipped_pairing(ds, label, defense, attack, problem))
                    continue
                used = True
                self.cells += _cells_of(self.config, ds, job, defense, attack)
            if self.config.checks:
                _add_check_cell(self.config, self.registry, self.cells, ds.name, label,
                                choice.spec, defense)
        if used:
            self.jobs.append(job)


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
    return [cell_of(config, job, defense, d_opts, attack, a_opts, eps, n_test, adaptive=mode)
            for eps in budgets for mode in modes]


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
    cells.append(cell_of(config, last.job, defense, last.defense_options, attack,
                       dict(config.attack_options.get(attack.name, {})), CHECK_EPS,
                       min(config.n_test or CHECK_IMAGES, CHECK_IMAGES), check=True))


__all__ = ["ALL", "BenchConfig", "Cell", "Plan", "Skipped", "TrainingJob", "adaptive_label",
           "check_attack", "check_config", "choose_model", "default_names", "digest",
           "is_supplied_name", "make_plan", "pairing_problem", "settings_for",
           "supplied_refusal"]
