"""A ``--model`` name resolved: an architecture the harness trains, a family's variant, or a
supplied model (``KIND:PATH``, ``ARCH@FILE``) read for its SHA-256 before any work."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.contracts.options import unknown_option_message
from harness.contracts.specs import ModelSpec
from harness.planning.registry import Registry
from harness.planning.supplied import (
    SUPPLIED_KEYS,
    SUPPLIED_OPTIONS,
    SuppliedModel,
    describe_supplied,
    file_sha256,
    split_weights,
)
from harness.util.errors import UsageError, quoted


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
    :class:`harness.planning.supplied.ModelContractError`, before any work)."""
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
    known = [*spec.options.names(), *sorted(SUPPLIED_KEYS)]
    for key in plugin:
        if key not in spec.options.names() and not spec.options.passthrough:
            raise UsageError(unknown_option_message(f"model {quoted(name)}", key, known))
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
