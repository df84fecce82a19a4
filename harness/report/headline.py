"""The headline rows a reader can cite: one per (dataset, model, defense) at the dataset's eps
(and at the eps the defense was trained at, when the run set one).

Each row holds the clean accuracy, the robust accuracy under the reference single-step,
iterative and ensemble attacks (FGSM, PGD and the standard AutoAttack among the built-ins:
found by their declared roles, never by name), the per-image worst case over every attack of
the group with the images it is taken over (n), the flags of the group's cells, the training
time and the reference iterative attack's images/s. For an input transformation the attack
columns show the adaptive cells (BPDA/EoT on the whole pipeline) when there are any, since
those measure the pipeline, not how well examples transfer. The markdown pages and the
terminal summary both start with these rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from harness.contracts import roles
from harness.contracts.outcomes import WorstCase, worst_cases
from harness.contracts.provenance import provided_name, third_party
from harness.contracts.records import Result


@dataclass(frozen=True)
class Column:
    """A headline attack column: the reference attack with ``role`` (and not ``unless``)."""

    role: str
    unless: str | None = None
    fallback: str = ""

    def matches(self, record: Result) -> bool:
        """Whether ``record``'s attack plays this column's role."""
        return record.has_role(self.role) and not (self.unless and record.has_role(self.unless))


COLUMNS = (Column(roles.SINGLE_STEP, fallback="single-step"),
           Column(roles.ITERATIVE, unless=roles.ENSEMBLE, fallback="iterative"),
           Column(roles.ENSEMBLE, fallback="ensemble"))


@dataclass(frozen=True)
class HeadlineRow:
    """One (dataset, model, defense) at ``eps``; accuracies are fractions (None: not run).
    ``model`` and ``defense`` are labels: the name, with the distribution that provided it
    when not the harness's own (and the defense's training notes, :func:`defense_label`)."""

    dataset: str
    model: str
    defense: str
    eps: float
    adaptive: bool
    clean_acc: float | None
    attacks: tuple[float | None, ...]
    worst: WorstCase | None
    flags: str
    train_seconds: float | None
    images_per_s: float | None


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


def headline_eps(record: Result) -> set[float]:
    """The eps a headline row is shown at for the record's model: the dataset's, and the eps
    its defense was trained at when the run set one (``--defense-opt NAME.eps=0.3``)."""
    found = {dataset_eps(record), trained_eps(record)}
    return {e for e in found if e is not None}


def pick(records: list[Result], column: Column) -> Result | None:
    """The cell of ``column``'s reference attack (a REFERENCE-role attack first, then by
    name) at its declared options, preferring adaptive cells."""
    found = [r for r in records if column.matches(r)]
    found.sort(key=lambda r: (not r.adaptive, bool(r.config.get("attack_options")),
                              not r.has_role(roles.REFERENCE), r.attack))
    return found[0] if found else None


def column_names(records: Iterable[Result]) -> list[str]:
    """Each attack column's header: the names of the attacks that filled it."""
    names: list[str] = []
    for column in COLUMNS:
        used = sorted({r.attack for r in records if column.matches(r)
                       and r.has_role(roles.REFERENCE)}) or \
            sorted({r.attack for r in records if column.matches(r)})
        names.append("/".join(used) if used else column.fallback)
    return names


def headline_rows(records: Iterable[Result], flags: Mapping[str, str]) -> list[HeadlineRow]:
    """The headline rows of ``records`` (evasion-like ok cells at their dataset's eps, check
    cells excluded), best worst case first within each dataset."""
    return [row for row, _ in headline_groups(records, flags)]


def headline_groups(records: Iterable[Result], flags: Mapping[str, str]
                    ) -> list[tuple[HeadlineRow, list[Result]]]:
    """Each headline row with the cells it was made from (one trained model at one eps), in
    :func:`headline_rows`' order."""
    groups: dict[tuple[str, str, str, float, str], list[Result]] = {}
    for r in records:
        if (r.ok and r.eps is not None and r.robust_acc is not None
                and not r.config.get("check") and r.eps in headline_eps(r)):
            groups.setdefault((r.dataset, r.model, r.defense, r.eps, r.train_key),
                              []).append(r)
    worst = {w.key: w for w in worst_cases(r for cells in groups.values() for r in cells)}
    rows = []
    for key, cells in groups.items():
        picked = [pick(cells, column) for column in COLUMNS]
        main = next((p for p in picked if p is not None), cells[0])
        iterative = picked[1]
        codes = sorted({c for r in cells for c in flags.get(r.cell_key, "")})
        rows.append((HeadlineRow(
            key[0], provided_name(key[1], main, "model"), defense_label(main), key[3],
            adaptive=any(r.adaptive for r in cells), clean_acc=main.clean_acc,
            attacks=tuple(p.robust_acc if p is not None else None for p in picked),
            worst=worst.get(key), flags="".join(codes), train_seconds=main.train_seconds,
            images_per_s=iterative.value("attack_images_per_s") if iterative is not None
            else None),
            cells))
    rows.sort(key=lambda hc: (hc[0].dataset, hc[0].eps,
                              -_known(hc[0].worst.robust_acc if hc[0].worst else None),
                              -_known(hc[0].clean_acc), hc[0].model, hc[0].defense))
    return rows


def _known(value: float | None) -> float:
    return -1.0 if value is None or math.isnan(value) else value
