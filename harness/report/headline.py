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

**Ranking rule** (:func:`not_ranked_because`): a row is ranked only when the reference
ensemble (an attack declaring both the ensemble and the reference role: the standard
AutoAttack among the built-ins) ran on it at that eps, adaptively (through BPDA, with EoT
for a randomized transformation) when the defense is an input transformation. Ranked rows
come first, best worst case first; a row whose worst case's 95% interval overlaps the one
above it shares its rank (``=2``). The others follow, marked with why they are not ranked.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from harness.contracts import roles
from harness.contracts.categories import CATEGORIES, STAGES
from harness.contracts.intervals import overlap, wilson
from harness.contracts.outcomes import WorstCase, worst_cases
from harness.contracts.provenance import provided_name
from harness.contracts.records import Result
from harness.report.checks import UNCOUNTED, WITHHELD
from harness.report.labels import dataset_eps, defense_label, trained_eps


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
    clean_n: int | None = None
    attack_n: tuple[int | None, ...] = ()
    not_ranked: str | None = None
    rank: str = ""
    beyond: tuple[tuple[str, float | None, int | None], ...] = ()

    def beside(self, label: str) -> tuple[float | None, int | None]:
        """The value and n of the non-evasion number ``label`` (a category's
        :class:`~harness.contracts.categories.HeadlineNumber`), ``(None, None)`` if absent."""
        return next(((v, n) for name, v, n in self.beyond if name == label), (None, None))

    def measured(self) -> list[tuple[float | None, int | None]]:
        """Each attack column's accuracy with the number of images it was measured on."""
        counts = self.attack_n or (None,) * len(self.attacks)
        return list(zip(self.attacks, counts, strict=True))

    def ranking_interval(self) -> tuple[float, float] | None:
        """The 95% interval of the number the row is ranked by: its worst case, else its
        ensemble's accuracy (None when neither is known)."""
        if self.worst is not None and self.worst.n and not math.isnan(self.worst.robust_acc):
            return wilson(self.worst.robust_acc, self.worst.n)
        ensemble, n = self.measured()[-1]
        return wilson(ensemble, n) if ensemble is not None and n else None


NO_ENSEMBLE = "no reference ensemble"
NON_ADAPTIVE = "non-adaptive ensemble only"
NO_COUNTED = "every attack too weak to measure robustness"


def counts(record: Result, flags: Mapping[str, str]) -> bool:
    """Whether ``record`` counts toward its row's worst case and rank: not when a check found
    its attack too weak to measure robustness (:data:`harness.report.checks.UNCOUNTED`)."""
    return not set(flags.get(record.cell_key, "")) & UNCOUNTED


def not_ranked_because(cells: list[Result]) -> str | None:
    """Why a headline row made of ``cells`` is not ranked (None: it is): no cell of the
    reference ensemble, or, for an input transformation, none crafted through it."""
    ensembles = [r for r in cells if r.has_role(roles.ENSEMBLE) and r.has_role(roles.REFERENCE)]
    if not ensembles:
        return NO_ENSEMBLE if cells else NO_COUNTED
    stage = STAGES.get(cells[0].defense_stage)
    if stage is not None and stage.adaptive and not any(r.adaptive for r in ensembles):
        return NON_ADAPTIVE
    return None


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
    counted = [r for cells in groups.values() for r in cells if counts(r, flags)]
    worst = {w.key: w for w in worst_cases(counted)}
    beyond = _beyond(records, flags)
    rows = [(dataclasses.replace(_row(key, cells, worst.get(key), flags),
                                 beyond=beyond.get((key[0], key[1], key[2], key[4]), ())),
             cells) for key, cells in groups.items()]
    rows.sort(key=lambda hc: (hc[0].dataset, hc[0].eps, hc[0].not_ranked is not None,
                              -_known(hc[0].worst.robust_acc if hc[0].worst else None),
                              -_known(hc[0].clean_acc), hc[0].model, hc[0].defense))
    return _ranked(rows)


def beyond_labels(records: Iterable[Result]) -> list[str]:
    """The labels of the non-evasion numbers some record of ``records`` can give a summary
    row, in the categories' order."""
    present = {r.category for r in records if r.ok}
    return [c.headline.label for name, c in CATEGORIES.items()
            if c.headline is not None and name in present]


def _beyond(records: Iterable[Result], flags: Mapping[str, str]
            ) -> dict[tuple[str, str, str, str], tuple[tuple[str, float | None, int | None], ...]]:
    """Per trained model (dataset, model, defense, training key), each category's headline
    number from its cell at the declared options (the first by attack name otherwise); a cell
    whose numbers a check withholds gives none."""
    found: dict[tuple[str, str, str, str], dict[str, Result]] = {}
    for r in sorted(records, key=lambda r: (bool(r.config.get("attack_options")), r.attack,
                                            r.cell_key)):
        category = CATEGORIES.get(r.category)
        if (r.ok and category is not None and category.headline is not None
                and not set(flags.get(r.cell_key, "")) & WITHHELD):
            found.setdefault((r.dataset, r.model, r.defense, r.train_key), {}).setdefault(
                category.headline.label, r)
    out = {}
    for key, by_label in found.items():
        numbers = []
        for category in CATEGORIES.values():
            h = category.headline
            if h is not None and h.label in by_label:
                r = by_label[h.label]
                value = r.value(h.metric)
                numbers.append((h.label, float(value) if isinstance(value, int | float)
                                else None, r.n_test))
        out[key] = tuple(numbers)
    return out


def _row(key: tuple[str, str, str, float, str], cells: list[Result], worst: WorstCase | None,
         flags: Mapping[str, str]) -> HeadlineRow:
    picked = [pick(cells, column) for column in COLUMNS]
    main = next((p for p in picked if p is not None), cells[0])
    iterative = picked[1]
    codes = sorted({c for r in cells for c in flags.get(r.cell_key, "")})
    return HeadlineRow(
        key[0], provided_name(key[1], main, "model"), defense_label(main), key[3],
        adaptive=any(r.adaptive for r in cells), clean_acc=main.clean_acc,
        attacks=tuple(p.robust_acc if p is not None else None for p in picked),
        worst=worst, flags="".join(codes), train_seconds=main.train_seconds,
        images_per_s=iterative.value("attack_images_per_s") if iterative is not None
        else None, clean_n=main.n_test,
        attack_n=tuple(p.n_test if p is not None else None for p in picked),
        not_ranked=not_ranked_because([r for r in cells if counts(r, flags)]))


def _ranked(rows: list[tuple[HeadlineRow, list[Result]]]
            ) -> list[tuple[HeadlineRow, list[Result]]]:
    """``rows`` (sorted) with their ranks within each dataset and eps: the position among the
    ranked rows, shared (``=k``) with the row above when the 95% intervals overlap."""
    out: list[tuple[HeadlineRow, list[Result]]] = []
    place, previous = 0, None
    where: tuple[str, float] | None = None
    for row, cells in rows:
        if row.not_ranked is not None:
            out.append((row, cells))
            continue
        if (row.dataset, row.eps) != where:
            where, place, previous = (row.dataset, row.eps), 0, None
        place += 1
        interval = row.ranking_interval()
        tied = previous is not None and interval is not None and overlap(previous[1], interval)
        number = previous[0] if tied and previous is not None else place
        shown = f"={number}" if tied else str(number)
        out.append((dataclasses.replace(row, rank=shown), cells))
        previous = (number, interval) if interval is not None else None
    shared = {(r.dataset, r.eps, r.rank) for r, _ in out if r.rank.startswith("=")}
    return [(dataclasses.replace(r, rank=f"={r.rank}") if (r.dataset, r.eps, f"={r.rank}")
             in shared else r, cells) for r, cells in out]


def _known(value: float | None) -> float:
    return -1.0 if value is None or math.isnan(value) else value
