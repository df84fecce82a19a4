"""Which distribution provided the dataset, model, defense and attack of a record, so that a
spec another distribution provides is never shown as the harness's own.

A third-party plugin may register a spec under a built-in's name (with the built-in disabled:
``--disable-plugin robustness-harness:fgsm``). Every record's ``config`` keeps the
``"distribution version"`` of the plugin behind each of its specs (the cell's
``attack_plugin`` and ``defense_plugin``; the trained model's ``dataset_plugin``,
``model_plugin`` and ``defense_plugin`` under ``training``). Names the harness's own
distribution provided render as they are, as do in-process plugins (a test's, which have no
distribution); any other name gets its distribution after it, ``fgsm (acme-attacks 1.0)``,
wherever rows are labelled, and pages and claims list those plugins. Pure Python, no torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from harness.contracts.records import Result
from harness.contracts.specs import Spec
from harness.util.version import DISTRIBUTION

#: The kinds of spec a record names, in the order pages list them.
KINDS = ("dataset", "model", "defense", "attack")
# What plugins without a distribution of their own are recorded as (harness.planning.plan).
_NO_DISTRIBUTION = ("in-process", "<in-process>")


def distribution_of(spec: Spec) -> str:
    """``'distribution version'`` of the plugin that registered ``spec`` (``in-process`` for a
    spec no plugin registered), as plans and records store it."""
    info = spec.plugin
    return f"{info.distribution} {info.version}" if info is not None else "in-process"


def plugin_of(record: Result, kind: str) -> str | None:
    """The ``'distribution version'`` of the plugin that provided the record's ``kind`` spec,
    as its config stored it; None when it did not (older records, pairings that did not run).
    The trained model's fields count only for the spec the record names."""
    config = record.config
    training = config.get("training")
    training = training if isinstance(training, Mapping) else {}
    value = config.get(f"{kind}_plugin")
    if value is None and training.get(kind) == getattr(record, kind):
        value = training.get(f"{kind}_plugin")
    return value if isinstance(value, str) and value else None


def third_party(record: Result, kind: str) -> str | None:
    """The ``'distribution version'`` of the record's ``kind`` plugin when another
    distribution than the harness's own provided it, else None."""
    provided = plugin_of(record, kind)
    if provided is None:
        return None
    distribution = provided.rsplit(" ", 1)[0]
    if distribution == DISTRIBUTION or distribution in _NO_DISTRIBUTION:
        return None
    return provided


def provided_name(name: str, record: Result, kind: str) -> str:
    """``name`` as rows show it: ``'fgsm (acme-attacks 1.0)'`` when another distribution
    provided the record's ``kind`` spec, else ``name`` unchanged."""
    other = third_party(record, kind)
    return f"{name} ({other})" if other else name


def named_by(name: str, records: Iterable[Result], kind: str) -> str:
    """``name`` (a ``kind`` spec of ``records``) as the first record that says which plugin
    provided it labels it (:func:`provided_name`), else ``name``."""
    for record in records:
        if plugin_of(record, kind) is not None:
            return provided_name(name, record, kind)
    return name


def third_party_plugins(records: Iterable[Result]) -> dict[str, str]:
    """``{'attack fgsm': 'acme-attacks 1.0', ...}``: every spec of ``records`` that another
    distribution provided, by kind and name (several versions joined); empty when the
    harness's own distribution provided them all."""
    found: dict[str, set[str]] = {}
    for record in records:
        for kind in KINDS:
            other = third_party(record, kind)
            if other:
                found.setdefault(f"{kind} {getattr(record, kind)}", set()).add(other)
    return {name: ", ".join(sorted(v)) for name, v in sorted(found.items())}


def third_party_field(records: Iterable[Result]) -> dict[str, dict[str, str]]:
    """``{"third_party_plugins": {...}}`` for a claim of ``records`` when some of its specs
    came from another distribution than the harness's own, else ``{}`` (so the claims of
    built-ins are unchanged)."""
    found = third_party_plugins(records)
    return {"third_party_plugins": found} if found else {}


def provenance_lines(records: Iterable[Result]) -> list[str]:
    """The pages' Provenance line naming the specs other distributions provided (none when
    the harness's own provided them all)."""
    found = third_party_plugins(records)
    if not found:
        return []
    return ["- provided by other distributions than " + DISTRIBUTION + ": "
            + "; ".join(f"{name} from {dist}" for name, dist in found.items())]
