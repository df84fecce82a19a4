"""Name -> spec lookup for the plugin kinds, with "Did you mean" errors, and the checks every
spec passes when it is registered."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from harness.contracts.specs import (
    AttackSpec,
    DatasetSpec,
    DefenseSpec,
    ModelSpec,
    PluginInfo,
    ReportSpec,
    Spec,
)
from harness.planning.spec_checks import spec_problems, with_checked_build
from harness.util.errors import PluginError, UsageError, quoted

_S = TypeVar("_S", DatasetSpec, ModelSpec, AttackSpec, DefenseSpec, ReportSpec)

KINDS: dict[str, type[Spec]] = {
    "dataset": DatasetSpec,
    "model": ModelSpec,
    "attack": AttackSpec,
    "defense": DefenseSpec,
    "report": ReportSpec,
}
#: Names the command line gives a meaning of its own.
RESERVED_NAMES = frozenset({"all", "supplied"})


def unknown_name_message(kind: str, name: str, available: Iterable[str]) -> str:
    """``unknown attack 'fgsn'. Did you mean: fgsm? Available: fgsm, pgd``. The unknown name is
    shown escaped and cut (:func:`harness.util.errors.quoted`): it is whatever the user typed."""
    names = sorted(available)
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    listed = ", ".join(names) if names else "(none registered)"
    return f"unknown {kind} {quoted(name)}.{hint} Available: {listed}"


# ---------------------------------------------------------------- the registry


@dataclass
class PluginRecord:
    """A loaded plugin and the names it registered, per kind."""

    info: PluginInfo
    registered: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Registry:
    """All registered specs by kind and name, plus the plugins that gave them."""

    specs: dict[str, dict[str, Spec]] = field(default_factory=lambda: {k: {} for k in KINDS})
    plugins: dict[str, PluginRecord] = field(default_factory=dict)
    load_errors: list[str] = field(default_factory=list)

    def add(self, kind: str, spec: object, owner: PluginInfo) -> None:
        """Record ``spec`` under ``kind`` after checking every declared field.

        Raises :class:`PluginError` naming ``owner``, the spec and the field (a typo in
        ``needs`` fails here, not as a run where every cell is n/a); a duplicate name is an
        error naming both owners.
        """
        expected = KINDS[kind]
        if not isinstance(spec, expected):
            raise PluginError(
                f"{owner.label()}: register() for {kind}s got {type(spec).__name__}, "
                f"expected {expected.__name__}"
            )
        name = spec.name
        if not isinstance(name, str) or not name or name != name.strip() or "," in name \
                or name in RESERVED_NAMES:
            raise PluginError(f"{owner.label()}: invalid {kind} name {name!r} (one word or "
                              "more, no surrounding spaces, no commas, not 'all' or 'supplied')")
        problems = spec_problems(kind, spec)
        if problems:
            raise PluginError(f"{owner.label()}: {kind} '{name}': " + "; ".join(problems))
        existing = self.specs[kind].get(name)
        if existing is not None:
            raise PluginError(
                f"{owner.label()}: {kind} '{name}' is already registered by "
                f"{existing.plugin.label() if existing.plugin else 'another plugin'}; "
                "disable one of the two plugins (--disable-plugin NAME) or rename the spec"
            )
        self.specs[kind][name] = with_checked_build(kind, spec, owner)
        record = self.plugins.setdefault(owner.name, PluginRecord(owner))
        record.registered.setdefault(kind, []).append(name)

    def _typed(self, kind: str, cls: type[_S]) -> dict[str, _S]:
        return {n: s for n, s in self.specs[kind].items() if isinstance(s, cls)}

    @property
    def datasets(self) -> dict[str, DatasetSpec]:
        """The registered datasets by name."""
        return self._typed("dataset", DatasetSpec)

    @property
    def models(self) -> dict[str, ModelSpec]:
        """The registered model architectures (and families) by name."""
        return self._typed("model", ModelSpec)

    @property
    def attacks(self) -> dict[str, AttackSpec]:
        """The registered attacks by name."""
        return self._typed("attack", AttackSpec)

    @property
    def defenses(self) -> dict[str, DefenseSpec]:
        """The registered defenses by name."""
        return self._typed("defense", DefenseSpec)

    @property
    def reports(self) -> dict[str, ReportSpec]:
        """The registered reports by name."""
        return self._typed("report", ReportSpec)

    def names(self, kind: str) -> list[str]:
        """Registered names of ``kind``, sorted."""
        return sorted(self.specs[kind])

    def get(self, kind: str, name: str) -> Spec:
        """The spec called ``name``; unknown names raise :class:`UsageError` with suggestions."""
        try:
            return self.specs[kind][name]
        except KeyError:
            raise UsageError(unknown_name_message(kind, name, self.specs[kind])) from None

    def dataset(self, name: str) -> DatasetSpec:
        """The dataset spec called ``name``."""
        return self.get("dataset", name)  # type: ignore[return-value]

    def attack(self, name: str) -> AttackSpec:
        """The attack spec called ``name``."""
        return self.get("attack", name)  # type: ignore[return-value]

    def defense(self, name: str) -> DefenseSpec:
        """The defense spec called ``name``."""
        return self.get("defense", name)  # type: ignore[return-value]

    def model(self, name: str) -> ModelSpec:
        """The model spec called ``name`` (a family such as ``timm``).

        ``'timm:resnet18'`` gives the family's spec too, its variant checked as
        :meth:`model_variant` does; use that to get the variant.
        """
        if ":" in name:
            return self.model_variant(name)[0]
        return self._model_family(name, name)

    def model_variant(self, name: str) -> tuple[ModelSpec, str | None]:
        """The model spec for ``name`` and its variant (``timm:resnet18`` -> timm, resnet18).

        Raises :class:`UsageError` for an unknown family, a family that needs a variant and
        got none (or got one it does not take), and an unknown variant ("Did you mean").
        """
        base, sep, variant = name.partition(":")
        spec = self._model_family(base, name)
        if spec.takes_variant and not (sep and variant):
            raise UsageError(
                f"model '{base}' needs a variant: '{base}:<name>', e.g. '{base}:resnet18'"
            )
        if not spec.takes_variant and sep:
            raise UsageError(f"model '{base}' takes no variant; use '{base}'")
        if spec.takes_variant and spec.list_variants is not None:
            variants = list(spec.list_variants())
            if variant not in variants:
                close = difflib.get_close_matches(variant, variants, n=3, cutoff=0.6)
                hint = f" Did you mean: {', '.join(f'{base}:{c}' for c in close)}?" if close else ""
                raise UsageError(
                    f"unknown model {quoted(name)}: {quoted(variant)} is not a {base} "
                    f"architecture.{hint} "
                    f"{len(variants)} are available (harness list models --variants {base})"
                )
        return spec, (variant or None)

    def _model_family(self, base: str, asked: str) -> ModelSpec:
        spec = self.specs["model"].get(base)
        if not isinstance(spec, ModelSpec):
            shown = [
                f"{n}:<name>" if s.takes_variant else n  # type: ignore[union-attr]
                for n, s in self.specs["model"].items()
            ]
            raise UsageError(unknown_name_message("model", asked, shown))
        return spec
