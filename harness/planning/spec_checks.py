"""The checks every spec passes when it is registered: each declared field in range, with
"Did you mean" for a typo, and a ``build`` that refuses options that were not resolved."""

from __future__ import annotations

import dataclasses
import difflib
import math
import warnings
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import Any, cast

from harness.contracts.metrics import MetricSpec
from harness.contracts.options import CheckedBuild, OptionSchema
from harness.contracts.roles import ATTACK_ROLES, DEFENSE_ROLES
from harness.contracts.specs import (
    ATTACK_CATEGORIES,
    DEFENSE_STAGES,
    MODEL_FEATURES,
    NORMS,
    THREAT_MODELS,
    AttackSpec,
    DatasetSpec,
    DefenseSpec,
    ModelSpec,
    PluginInfo,
    ReportSpec,
    Spec,
)
from harness.util.errors import UndeclaredOptionsWarning, UsageError


def _did_you_mean(value: object, known: Iterable[str]) -> str:
    if not isinstance(value, str):
        return ""
    by_lower = {k.lower(): k for k in known}
    close = difflib.get_close_matches(value.lower(), list(by_lower), n=3, cutoff=0.6)
    return f" Did you mean: {', '.join(by_lower[c] for c in close)}?" if close else ""


def _one_of(field_name: str, value: object, known: Collection[str]) -> str | None:
    """``norm 'Linf' is not one of inf, 2, ... Did you mean: inf?`` or None."""
    if isinstance(value, str) and value in known:
        return None
    return (f"{field_name} {value!r} is not one of {', '.join(known)}."
            f"{_did_you_mean(value, known)}")


def _subset(field_name: str, value: object, known: Collection[str], what: str,
            example: str) -> str | None:
    """A problem when ``value`` is not a (frozen)set of names in ``known``, else None."""
    if not isinstance(value, set | frozenset) or not all(isinstance(v, str) for v in value):
        return (f"{field_name} must be a frozenset of strings, e.g. "
                f"frozenset({{{example!r}}}); got {value!r}")
    unknown = sorted(value - set(known))
    if not unknown:
        return None
    first = unknown[0]
    return (f"{field_name} has {first!r}, which is not {what}.{_did_you_mean(first, known)} "
            f"Known: {', '.join(sorted(known))}")


def _eps_problem(field_name: str, value: object, nullable: bool) -> str | None:
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or not 0 < value <= 1:
        return (f"{field_name} must be in (0, 1] (pixel units of [0, 1]"
                f"{'; None for the dataset default' if nullable else ''}); got {value!r}")
    return None


def _callable(field_name: str, value: object, nullable: bool = False) -> str | None:
    if callable(value) or (nullable and value is None):
        return None
    return f"{field_name} must be callable{' or None' if nullable else ''}; got {value!r}"


def _flag(field_name: str, value: object) -> str | None:
    return None if isinstance(value, bool) else f"{field_name} must be True or False; got " \
                                                f"{value!r}"


def _common_problems(spec: Spec) -> Iterator[str | None]:
    description = spec.description
    if not isinstance(description, str) or not description.strip() or "\n" in description:
        yield f"description must be one non-empty line; got {description!r}"
    if not isinstance(spec, ReportSpec):
        factory = "load" if isinstance(spec, DatasetSpec) else "build"
        yield _callable(factory, getattr(spec, factory))


def _dataset_problems(spec: DatasetSpec) -> Iterator[str | None]:
    yield _eps_problem("default_eps", spec.default_eps, nullable=False)
    if (spec.mean is None) != (spec.std is None):
        yield "mean and std must be given together (or neither)"
        return
    if spec.mean is None or spec.std is None:
        return
    if len(spec.mean) != len(spec.std) or not spec.mean:
        yield (f"mean and std must have one value per channel, the same number; got "
               f"{len(spec.mean)} and {len(spec.std)}")
    if not all(isinstance(s, int | float) and s > 0 for s in spec.std):
        yield f"std must be positive; got {spec.std!r}"


def _configurable_problems(kind: str, spec: ModelSpec | AttackSpec | DefenseSpec
                           ) -> Iterator[str | None]:
    if not isinstance(spec.options, OptionSchema):
        yield ("options must be an OptionSchema (harness.options(Option(...), ...)); "
               f"got {type(spec.options).__name__}")
        return
    if not isinstance(spec.config, Mapping):
        yield f"config must be a mapping; got {type(spec.config).__name__}"
    if not isinstance(spec.smoke_options, Mapping):
        yield f"smoke_options must be a mapping; got {type(spec.smoke_options).__name__}"
        return
    try:
        spec.options.resolve(f"{kind} {spec.name}", spec.smoke_options)
    except UsageError as exc:
        yield f"smoke_options: {exc}"


def _metric_problems(spec: AttackSpec | DefenseSpec) -> Iterator[str | None]:
    metrics = spec.metrics
    if not isinstance(metrics, tuple | list) or not all(isinstance(m, MetricSpec)
                                                       for m in metrics):
        yield ("metrics must be a tuple of harness.MetricSpec; got "
               f"{metrics!r}")
        return
    names = [m.name for m in metrics]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        yield f"metrics declares {', '.join(repr(n) for n in twice)} more than once"


def _model_problems(spec: ModelSpec) -> Iterator[str | None]:
    yield _subset("offers", spec.offers, MODEL_FEATURES, "a model feature", "gradients")
    yield _flag("takes_variant", spec.takes_variant)
    yield _callable("list_variants", spec.list_variants, nullable=True)
    yield _callable("fit", spec.fit, nullable=True)
    yield _flag("supplied", spec.supplied)
    yield _callable("fingerprint", spec.fingerprint, nullable=True)
    if spec.supplied is True and spec.fingerprint is None and not spec.takes_variant:
        yield ("supplied needs takes_variant=True: a supplied file kind is named KIND:PATH "
               "(or declare a fingerprint)")
    suffixes = spec.suffixes
    if not isinstance(suffixes, tuple) or not all(isinstance(x, str) and x.startswith(".")
                                                  for x in suffixes):
        yield f"suffixes must be a tuple of file suffixes such as ('.onnx',); got {suffixes!r}"
    if spec.supplied is True and "training-loop" in spec.offers:
        yield "a supplied model is never trained: leave 'training-loop' out of offers"
    if not isinstance(spec.train_defaults, Mapping):
        yield f"train_defaults must be a mapping; got {spec.train_defaults!r}"
    elif spec.train_defaults:
        from dataclasses import fields

        from harness.contracts.settings import TrainSettings

        known = [f.name for f in fields(TrainSettings)]
        for key in spec.train_defaults:
            if key not in known:
                yield (f"train_defaults has {key!r}, which is not a training setting."
                       f"{_did_you_mean(key, known)} Known: {', '.join(known)}")


def _attack_problems(spec: AttackSpec) -> Iterator[str | None]:
    yield _one_of("threat_model", spec.threat_model, THREAT_MODELS)
    yield _one_of("norm", spec.norm, NORMS)
    yield _one_of("category", spec.category, ATTACK_CATEGORIES)
    yield _subset("needs", spec.needs, MODEL_FEATURES, "a model feature", "gradients")
    yield _subset("roles", spec.roles, ATTACK_ROLES, "an attack role", "iterative")
    yield _eps_problem("default_eps", spec.default_eps, nullable=True)
    yield _flag("bounded", spec.bounded)
    yield _flag("targeted", spec.targeted)
    budget = spec.budget_images
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int)
                               or budget < 1):
        yield f"budget_images must be a positive integer or None; got {budget!r}"


def _defense_problems(spec: DefenseSpec) -> Iterator[str | None]:
    yield _one_of("stage", spec.stage, DEFENSE_STAGES)
    if spec.answers is not None:
        yield _subset("answers", spec.answers, ATTACK_CATEGORIES, "an attack category",
                      "evasion")
    yield _subset("needs", spec.needs, MODEL_FEATURES, "a model feature", "gradients")
    yield _subset("roles", spec.roles, DEFENSE_ROLES, "a defense role", "baseline")
    yield _flag("baseline", spec.baseline)
    yield _flag("randomized", spec.randomized)
    samples = spec.eot_samples
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        yield f"eot_samples must be a positive integer; got {samples!r}"


def _report_problems(spec: ReportSpec) -> Iterator[str | None]:
    for name in ("figures", "draw", "text"):
        yield _callable(name, getattr(spec, name), nullable=True)
    if (spec.figures is None) != (spec.draw is None):
        yield "figures and draw must be given together (or neither)"


_KIND_PROBLEMS: dict[str, Callable[[Any], Iterator[str | None]]] = {
    "dataset": _dataset_problems,
    "model": _model_problems,
    "attack": _attack_problems,
    "defense": _defense_problems,
    "report": _report_problems,
}


def spec_problems(kind: str, spec: Spec) -> list[str]:
    """What is wrong with the declared fields of ``spec`` (a ``kind`` spec), one line each;
    empty when it is valid. Each line starts with the field's name."""
    found: list[str | None] = [*_common_problems(spec), *_KIND_PROBLEMS[kind](spec)]
    if isinstance(spec, ModelSpec | AttackSpec | DefenseSpec):
        found += _configurable_problems(kind, spec)
    if isinstance(spec, AttackSpec | DefenseSpec):
        found += _metric_problems(spec)
    return [p for p in found if p]


# ---------------------------------------------------------------- declared options

#: (distribution, kind, name) of the specs already warned about (once per process).
_WARNED_UNDECLARED: set[tuple[str, str, str]] = set()


def _warn_undeclared(kind: str, spec: ModelSpec | AttackSpec | DefenseSpec,
                     owner: PluginInfo) -> None:
    """Warn, once per spec, that ``spec`` declares no options."""
    seen = (owner.distribution, kind, spec.name)
    if seen in _WARNED_UNDECLARED:
        return
    _WARNED_UNDECLARED.add(seen)
    warnings.warn(
        f"{owner.label()}: {kind} '{spec.name}' declares no options, so they reach its build "
        "unchecked and stay out of the cache keys and `harness list --options`: declare them "
        "with options=harness.options(harness.Option(name=..., type=..., default=...), ...)",
        UndeclaredOptionsWarning, stacklevel=5)


def with_checked_build(kind: str, spec: Spec, owner: PluginInfo) -> Spec:
    """``spec`` as the registry keeps it: a spec with declared options gets a ``build`` that
    refuses options that were not resolved (:class:`harness.contracts.options.CheckedBuild`); one
    that
    declares none is kept as it is, with a warning (once per spec)."""
    if not isinstance(spec, ModelSpec | AttackSpec | DefenseSpec):
        return spec
    if spec.options.undeclared:
        _warn_undeclared(kind, spec, owner)
        return spec
    build = spec.build
    inner = build.__wrapped__ if isinstance(build, CheckedBuild) else build
    checked = CheckedBuild(inner, f"{kind} '{spec.name}'", spec.options)
    return cast(Spec, dataclasses.replace(cast(Any, spec), build=checked))


