"""How a record's defense is labelled on pages and in checks: its name, who provided it, the
eps it was trained at and the loss early stopping followed; and the eps its row is shown at."""

from __future__ import annotations

from collections.abc import Mapping

from harness.contracts.provenance import third_party
from harness.contracts.records import Result

__all__ = ["dataset_eps", "defense_label", "trained_eps"]


def dataset_eps(record: Result) -> float | None:
    """The dataset's default eps the record's model was trained with (from its config)."""
    training = record.config.get("training")
    value = training.get("dataset_eps") if isinstance(training, Mapping) else None
    return float(value) if isinstance(value, int | float) else None


def trained_eps(record: Result) -> float | None:
    """The eps the record's defense was trained at when the run set one, else None."""
    training = record.config.get("training")
    options = training.get("defense_options") if isinstance(training, Mapping) else None
    if isinstance(options, Mapping) and isinstance(options.get("eps"), int | float):
        return float(options["eps"])
    return None


def defense_label(record: Result) -> str:
    """The defense's name, with the distribution that provided it when not the harness's own
    (:mod:`harness.contracts.provenance`), the eps it was trained at when the run set one and the
    validation loss early stopping followed when not the clean one
    (``fbf (trained at eps 0.3, stopped on robust loss)``)."""
    eps = trained_eps(record)
    training = record.config.get("training")
    settings = training.get("settings") if isinstance(training, Mapping) else None
    stop = settings.get("early_stop_on") if isinstance(settings, Mapping) else None
    provider = third_party(record, "defense")
    notes = ([provider] if provider else []) + \
        ([f"trained at eps {eps:g}"] if eps is not None else []) + \
        ([f"stopped on {stop} loss"] if stop not in (None, "clean") else [])
    return f"{record.defense} ({', '.join(notes)})" if notes else record.defense
