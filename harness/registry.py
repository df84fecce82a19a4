"""Name -> spec lookup for the four plugin kinds, with "Did you mean" errors."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field

from harness.errors import PluginError, UsageError
from harness.specs import AttackSpec, DatasetSpec, DefenseSpec, ModelSpec, PluginInfo, Spec

KINDS: dict[str, type] = {
    "dataset": DatasetSpec,
    "model": ModelSpec,
    "attack": AttackSpec,
    "defense": DefenseSpec,
}


def unknown_name_message(kind: str, name: str, available: Iterable[str]) -> str:
    """``unknown attack 'fgsn'. Did you mean: fgsm? Available: fgsm, pgd``."""
    names = sorted(available)
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    listed = ", ".join(names) if names else "(none registered)"
    return f"unknown {kind} '{name}'.{hint} Available: {listed}"


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

    def add(self, kind: str, spec: Spec, owner: PluginInfo) -> None:
        """Record ``spec`` under ``kind``; a duplicate name is an error naming both owners."""
        expected = KINDS[kind]
        if not isinstance(spec, expected):
            raise PluginError(
                f"{owner.label()}: register() for {kind}s got {type(spec).__name__}, "
                f"expected {expected.__name__}"
            )
        if not spec.name or spec.name != spec.name.strip() or "," in spec.name:
            raise PluginError(f"{owner.label()}: invalid {kind} name {spec.name!r}")
        existing = self.specs[kind].get(spec.name)
        if existing is not None:
            raise PluginError(
                f"{owner.label()}: {kind} '{spec.name}' is already registered by "
                f"{existing.plugin.label() if existing.plugin else 'another plugin'}; "
                "disable one of the two plugins (--disable-plugin NAME) or rename the spec"
            )
        self.specs[kind][spec.name] = spec
        record = self.plugins.setdefault(owner.name, PluginRecord(owner))
        record.registered.setdefault(kind, []).append(spec.name)

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

    def model(self, name: str) -> tuple[ModelSpec, str | None]:
        """The model spec for ``name`` and its variant (``timm:resnet18`` -> timm, resnet18)."""
        base, sep, variant = name.partition(":")
        spec = self.specs["model"].get(base)
        if spec is None or not isinstance(spec, ModelSpec):
            shown = [
                f"{n}:<name>" if s.takes_variant else n  # type: ignore[union-attr]
                for n, s in self.specs["model"].items()
            ]
            raise UsageError(unknown_name_message("model", name, shown))
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
                    f"unknown model '{name}': '{variant}' is not a {base} architecture.{hint} "
                    f"{len(variants)} are available (harness list models --variants {base})"
                )
        return spec, (variant or None)
