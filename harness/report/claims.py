"""Claims: one JSON file per (dataset, model, defense), in RobustBench's ``model_info`` shape,
measured from the results and checked against the robust accuracy its source reports.

A claim holds RobustBench's fields (``link``, ``name``, ``authors``, ``additional_data``,
``number_forward_passes``, ``dataset``, ``venue``, ``architecture``, ``eps``, ``clean_acc``,
``reported``, ``autoattack_acc``, ``external``, ``unreliable``, ``footnote``; accuracies as
percent strings with two decimals, ``"98.50"``, null when not measured) and what RobustBench
lacks: the ``defense``, ``threat_model``, the ``cell_keys`` and ``train_key`` it was computed
from, the ``harness_version``, ``plugins`` and ``seed`` of the runs, the per-image
``worst_case_acc`` over its ``n`` images, the 95% Wilson intervals of the clean, AutoAttack
and worst-case accuracies (``*_interval``: both ends as percent strings; see
:mod:`harness.contracts.intervals`), every attack's robust accuracy at the eps
(``attacks``), the other categories' headline numbers of the same model when they ran
(``corruptions_acc``, RobustBench's field for the mean corruption accuracy, and
``certified_acc_r0.5``, each with its ``*_interval``), ``images_per_s``, ``train_seconds``,
the ``flags`` (codes and legend) and, when ``unreliable``, the ``unreliable_reason``. The
numbers are those of the headline row (:mod:`harness.report.headline`) at the dataset's eps.

A person writes ``link``, ``name``, ``authors``, ``venue``, ``reported``, ``footnote``,
``additional_data`` and ``external`` (:data:`HUMAN_FIELDS`); :func:`write_claims` keeps them
and recomputes everything else. ``autoattack_acc`` is the ensemble column only when that
attack is the REFERENCE ensemble (the standard AutoAttack); otherwise it is null and
``autoattack_footnote`` (not ``footnote``, which is the person's) says which ensemble ran.

**The check.** A claim with a ``reported`` number is ``unreliable`` when

(a) a measured number is more than :data:`MARGIN_POINTS` points below ``reported`` and
    ``reported`` is above the upper end of that number's 95% interval (a gap beyond the
    sampling noise of its n images as well as the margin): the per-image worst case and the
    standard AutoAttack, each when measured; when neither is, the lowest robust accuracy
    among the attacks at the eps (named in the reason); or
(b) a flag of :data:`MASKING_CODES` (gradient masking, label leaking) was raised on any cell
    of the model and defense, at any eps (the large-eps check cell included).

``unreliable_reason`` lists every reason. A claim without ``reported`` is measured, not
checked: ``unreliable`` false, no reason.

**Ranked or not.** ``ranked`` and ``not_ranked_reason`` follow the summary's ranking rule
(:func:`harness.report.headline.not_ranked_because`). :func:`write_claims` lays the claims out
as RobustBench's ``model_info``, one such folder per eps
(``eps-0.1/mnist/Linf/paper-cnn--fbf.json``, :func:`claim_path`), with only the ranked
claims where its leaderboard generator reads them (every one has ``autoattack_acc``, which
it sorts by); the others sit in ``not-ranked/`` beside them. ``name``, ``link`` and ``venue``
are never null (the generator would print "None"). Pure Python, no torch.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.contracts import roles
from harness.contracts.categories import CATEGORIES
from harness.contracts.intervals import wilson
from harness.contracts.metrics import HARNESS_METRICS, render_metric
from harness.contracts.outcomes import attack_label
from harness.contracts.provenance import third_party_field
from harness.contracts.records import Result, ResultSet
from harness.report.checks import LEGEND
from harness.report.headline import COLUMNS, HeadlineRow, headline_groups, pick
from harness.util.errors import UsageError
from harness.util.files import atomic_write

# A measured number may sit this many percentage points below the reported one before the
# claim is unreliable: room for a different training run and a different test subset, far
# less than what a stronger attack takes off a masked model.
MARGIN_POINTS = 5.0
# The flag codes that say the model's robustness is overstated (see harness.report.checks.LEGEND):
# FGSM far above PGD (M), FGSM above clean (L), Square beating every white-box attack (B), a
# gradient attack far above chance at a very large eps (C), PGD far above AutoAttack (A).
MASKING_CODES = "ABCLM"
# The fields a person writes, with their value in a new claim.
HUMAN_FIELDS: dict[str, Any] = {
    "link": None, "name": None, "authors": None, "venue": None, "reported": None,
    "footnote": None, "additional_data": False, "external": None,
}
# The harness's models are deterministic: one forward pass per prediction.
NUMBER_FORWARD_PASSES = 1
THREAT_MODELS = {"inf": "Linf", "2": "L2", "1": "L1", "0": "L0"}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")

Key = tuple[str, str, str]


#: A fraction as RobustBench's percent string with two decimals (None when unknown).
percent = HARNESS_METRICS["robust_acc"].plain
#: Its 95% Wilson interval on n images, both ends as percent strings (None when unknown).
interval = HARNESS_METRICS["robust_acc"].interval


def parse_percent(value: Any, where: str) -> float | None:
    """A claim's percent (``"80.25"`` or a number) as points; None for null. UsageError when it
    is not a percent between 0 and 100."""
    if value is None:
        return None
    try:
        points = float(value)
    except (TypeError, ValueError):
        points = math.nan
    if isinstance(value, bool) or not 0 <= points <= 100:
        raise UsageError(f"{where}: 'reported' must be a percent string such as \"80.25\", "
                         f"not {value!r}")
    return points


#: The subfolder of the claims that are not ranked (beside the ranked ones, which RobustBench's
#: generator reads: it globs ``*.json`` of the dataset's threat-model folder, not below).
NOT_RANKED = "not-ranked"


def claim_path(folder: Path, dataset: str, model: str, defense: str, *, eps: str,
               threat_model: str, ranked: bool) -> Path:
    """``folder/eps-<eps>/<dataset>/<threat model>/[not-ranked/]<model>--<defense>.json``:
    ``folder/eps-<eps>`` is a ``model_info`` folder RobustBench's leaderboard generator reads
    as it is (one folder per eps, so models attacked at other budgets never share a table;
    only ranked claims where it looks). Each name with every character outside
    ``A-Za-z0-9._-`` replaced by ``_`` (``timm:resnet18`` -> ``timm_resnet18``); the true
    names are inside the file."""
    where = folder / f"eps-{_UNSAFE.sub('_', eps)}" / _UNSAFE.sub("_", dataset) / \
        _UNSAFE.sub("_", threat_model)
    return (where if ranked else where / NOT_RANKED) / \
        f"{_UNSAFE.sub('_', model)}--{_UNSAFE.sub('_', defense)}.json"


def _places(folder: Path, group: _Group) -> tuple[Path, list[Path]]:
    """Where ``group``'s claim goes, and where an earlier version of it may be: the other
    side of the ranking, or 0.2's layout ``folder/<dataset>/<model>--<defense>.json``."""
    key = group.key

    def at(ranked: bool) -> Path:
        return claim_path(folder, *key, eps=f"{group.row.eps:g}",
                          threat_model=_threat_model(group), ranked=ranked)

    ranked = group.row.not_ranked is None
    legacy = folder / _UNSAFE.sub("_", key[0]) / \
        f"{_UNSAFE.sub('_', key[1])}--{_UNSAFE.sub('_', key[2])}.json"
    return at(ranked), [at(not ranked), legacy]


def render(claim: Mapping[str, Any]) -> str:
    """The file text of a claim: sorted keys, indent 2, trailing newline."""
    return json.dumps(claim, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@dataclass
class _Group:
    """A headline row with the cells behind it."""

    row: HeadlineRow
    cells: list[Result] = field(default_factory=list)        # the row's, at its eps
    model_cells: list[Result] = field(default_factory=list)  # its model's, every eps

    @property
    def key(self) -> Key:
        return (self.row.dataset, self.row.model, self.row.defense)


def _groups(records: list[Result], flags: Mapping[str, str]) -> list[_Group]:
    """One group per headline row: its cells, and every ok cell of the same trained model(s)
    at any eps (for the flags). A model trained at another eps than the dataset's is its own
    row (labelled with that eps), so it is its own claim."""
    groups: dict[Key, _Group] = {}
    for row, cells in headline_groups(records, flags):
        # the defense too: an input transformation's cells share the undefended model's key
        models = {(r.dataset, r.model, r.defense, r.train_key) for r in cells}
        groups[(row.dataset, row.model, row.defense)] = _Group(
            row, cells, [r for r in records
                         if r.ok and (r.dataset, r.model, r.defense, r.train_key) in models])
    return list(groups.values())


def _ensemble(cells: list[Result]) -> Result | None:
    """The ensemble column's cell, picked as the headline picks it."""
    return pick(cells, next(c for c in COLUMNS if c.role == roles.ENSEMBLE))


def _one(values: Iterable[Any]) -> Any:
    """The one distinct value (None when there is none), or the sorted distinct values."""
    distinct = sorted({json.dumps(v, sort_keys=True) for v in values if v is not None})
    if len(distinct) <= 1:
        return json.loads(distinct[0]) if distinct else None
    return [json.loads(v) for v in distinct]


def _provenance(group: _Group, results: ResultSet) -> dict[str, Any]:
    """Where the claim's numbers come from: cells, trained model, runs."""
    runs = [results.runs.get(run, {}) for run in sorted({r.run_id for r in group.cells})]
    plugins: dict[str, set[str]] = {}
    for run in runs:
        for name, version in (run.get("plugins") or {}).items():
            plugins.setdefault(name, set()).add(str(version))
    supplied = _one(r.config.get("training", {}).get("supplied") for r in group.cells)
    return {
        **({"supplied": supplied} if supplied else {}),
        **third_party_field(group.cells),
        "cell_keys": sorted(r.cell_key for r in group.cells),
        "train_key": _one(r.train_key for r in group.cells),
        "harness_version": _one(run.get("harness") for run in runs),
        "plugins": {name: ", ".join(sorted(v)) for name, v in sorted(plugins.items())},
        "seed": _one(results.metadata(r).get("seed", r.config.get("seed"))
                     for r in group.cells),
    }


def _flag_codes(group: _Group, flags: Mapping[str, str]) -> str:
    return "".join(sorted({c for r in group.model_cells for c in flags.get(r.cell_key, "")}))


def _autoattack(group: _Group) -> tuple[Result | None, str | None]:
    """The standard AutoAttack's cell (None when it did not run) and, when it did not, the
    footnote that says which ensemble ran instead."""
    ensemble = _ensemble(group.cells)
    if ensemble is not None and ensemble.has_role(roles.REFERENCE):
        return ensemble, None
    if ensemble is None:
        return None, "The standard AutoAttack did not run on this model; no ensemble did."
    return None, (f"The standard AutoAttack did not run on this model; the ensemble that ran "
                  f"instead is {attack_label(ensemble)} (not the reference ensemble): "
                  f"{percent(ensemble.robust_acc)}% on {ensemble.n_test} images.")


def _threat_model(group: _Group) -> str:
    """RobustBench's threat model of the group's cells (``Linf``, ``L2``, ...)."""
    norms = {r.norm for r in group.cells if r.norm}
    return THREAT_MODELS.get(min(norms), min(norms)) if norms else "Linf"


def _measured(group: _Group, results: ResultSet, flags: Mapping[str, str]) -> dict[str, Any]:
    """Every field of a claim that the results give (all but :data:`HUMAN_FIELDS` and the
    check's ``unreliable`` and ``unreliable_reason``)."""
    row, worst = group.row, group.row.worst
    standard, note = _autoattack(group)
    codes = _flag_codes(group, flags)
    n = worst.n if worst is not None and worst.n else None
    worst_acc = worst.robust_acc if worst is not None and n else None
    return {
        "dataset": row.dataset, "architecture": row.model, "defense": row.defense,
        "number_forward_passes": NUMBER_FORWARD_PASSES, "eps": f"{row.eps:g}",
        "threat_model": _threat_model(group),
        "clean_acc": percent(row.clean_acc),
        "clean_acc_interval": interval(row.clean_acc, row.clean_n),
        "autoattack_acc": percent(standard.robust_acc) if standard else None,
        "autoattack_acc_interval": interval(standard.robust_acc, standard.n_test)
        if standard else None,
        "autoattack_footnote": note,
        "worst_case_acc": percent(worst_acc), "n": n,
        "worst_case_acc_interval": interval(worst_acc, n),
        "attacks": {attack_label(r): percent(r.robust_acc)
                    for r in sorted(group.cells, key=attack_label)},
        **{field: value for c in CATEGORIES.values() if c.headline is not None
           for field, value in _beside(row, c.headline.label, c.headline.claim).items()},
        "images_per_s": _rounded(row.images_per_s), "train_seconds": _rounded(row.train_seconds),
        "flags": {"codes": codes, "legend": {c: LEGEND[c] for c in codes if c in LEGEND}},
        **_provenance(group, results),
    }


def _beside(row: HeadlineRow, label: str, field: str) -> dict[str, Any]:
    """A category's headline number as a claim's field and its interval, if the row has it."""
    value, n = row.beside(label)
    return {} if value is None else {field: percent(value), f"{field}_interval":
                                     interval(value, n)}


def _rounded(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(value, 1)


def _below(label: str, value: float, reported: float, n: int | None) -> str | None:
    """A reason when ``value`` (a fraction measured on ``n`` images) is more than the margin
    below ``reported`` and ``reported`` is above its 95% interval: a gap the sampling noise
    of n images does not explain."""
    gap = reported - 100 * value
    if gap <= MARGIN_POINTS:
        return None
    high = 100 * wilson(value, n)[1] if n else 100 * value
    if reported <= high:
        return None
    shown = render_metric("robust_acc", value)
    return (f"{label} is {shown}, {gap:.2f} points below the reported "
            f"{reported:.2f}% (margin {MARGIN_POINTS:g} points; the 95% interval of the "
            f"measured number ends at {high:.2f}%)")


def _measured_below(group: _Group, reported: float) -> list[str | None]:
    """Reason (a): the worst case and the standard AutoAttack, each when measured; when
    neither is, the lowest robust accuracy among the attacks at the eps."""
    found: list[str | None] = []  # one entry per number measured; None: within the margin
    worst = group.row.worst
    standard, _ = _autoattack(group)
    if worst is not None and worst.n and not math.isnan(worst.robust_acc):
        found.append(_below(f"the per-image worst case over {worst.n} images",
                            worst.robust_acc, reported, worst.n))
    if standard is not None and standard.robust_acc is not None:
        found.append(_below(f"the standard AutoAttack ({attack_label(standard)}, "
                            f"{standard.n_test} images)", standard.robust_acc, reported,
                            standard.n_test))
    if not found and group.cells:
        low = min(group.cells, key=lambda r: (r.robust_acc or 0.0, attack_label(r)))
        found.append(_below(f"with neither a per-image worst case nor the standard AutoAttack "
                            f"measured, the lowest robust accuracy among the attacks, "
                            f"{attack_label(low)} ({low.n_test} images),",
                            low.robust_acc or 0.0, reported, low.n_test))
    return found


def _reasons(group: _Group, flags: Mapping[str, str], reported: float) -> list[str]:
    """Why a claim reporting ``reported`` points is unreliable (empty: it is not)."""
    found = _measured_below(group, reported)
    for code in MASKING_CODES:
        hit = sorted({f"{attack_label(r)} at eps {r.eps:g}" for r in group.model_cells
                      if code in flags.get(r.cell_key, "") and r.eps is not None})
        if hit:
            found.append(f"flag {code} on {', '.join(hit)}: {LEGEND[code]}")
    return [f for f in found if f]


def _claim(group: _Group, results: ResultSet, flags: Mapping[str, str],
          human: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The whole claim of ``group``: ``human``'s fields kept (defaults for missing ones), every
    other field measured, and the check done."""
    out = {name: human.get(name, default) for name, default in HUMAN_FIELDS.items()}
    if out["reported"] is None:     # a supplied model's reported option (harness.planning.supplied)
        given = _one(r.config.get("reported") for r in group.cells)
        out["reported"] = percent(given) if isinstance(given, int | float) else None
    out.update(_measured(group, results, flags))
    out["ranked"] = group.row.not_ranked is None
    out["not_ranked_reason"] = group.row.not_ranked
    _printable(out)
    reported = parse_percent(out["reported"], where)
    why = _reasons(group, flags, reported) if reported is not None else []
    out["unreliable"] = bool(why)
    out["unreliable_reason"] = why or None
    return out


def _printable(claim: dict[str, Any]) -> None:
    """What RobustBench's leaderboard prints, never "None": a ``name`` (the model and
    defense, when nobody wrote one), a ``link`` and ``venue`` ("" when unknown), and no
    ``footnote`` key unless one was written (its template prints a footnote that is
    defined, even null)."""
    if claim["name"] is None:
        claim["name"] = f"{claim['architecture']} with {claim['defense']}"
    for name in ("link", "venue"):
        if claim[name] is None:
            claim[name] = ""
    if claim.get("footnote") is None:
        claim.pop("footnote", None)


def claims(results: ResultSet, flags: Mapping[str, str],
           human: Mapping[Key, Mapping[str, Any]] | None = None) -> dict[Key, dict[str, Any]]:
    """The claim of every (dataset, model, defense) with a headline row, keyed by it, with the
    human fields of ``human[key]`` (the defaults where there is none)."""
    human = human or {}
    return {g.key: _claim(g, results, flags, human.get(g.key, {}), "/".join(g.key))
            for g in _groups(results.records, flags)}


@dataclass
class Written:
    """What :func:`write_claims` did: files written, already up to date, and existing claims
    the results have no row for (left as they are)."""

    written: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    untouched: list[Path] = field(default_factory=list)


def _read(path: Path, key: Key) -> dict[str, Any]:
    """The human fields of the claim file at ``path`` ({} when there is none)."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"claim {path} cannot be read: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"claim {path} is not a JSON object")
    held = (data.get("dataset"), data.get("architecture"), data.get("defense"))
    if data.get("dataset") is not None and held != key:
        raise UsageError(f"claim {path} is the claim of {'/'.join(map(str, held))}, not of "
                         f"{'/'.join(key)}: rename one of them")
    return {name: data[name] for name in HUMAN_FIELDS if name in data}


def write_claims(results: ResultSet, flags: Mapping[str, str], folder: Path) -> Written:
    """Refresh ``folder``'s claims from ``results``: every claim with a headline row is
    recomputed (its human fields kept, read from where it was: the other side of the ranking
    or 0.2's layout, which is then removed) and written, a new one with the human defaults;
    files are rewritten only when their text changes. Same inputs, same bytes."""
    done = Written()
    planned: dict[Path, Key] = {}
    for group in _groups(results.records, flags):
        path, earlier = _places(folder, group)
        if path in planned:
            raise UsageError(f"claims {sorted([planned[path], group.key])} map to the same "
                             "file name")
        planned[path] = group.key
        source = next((p for p in (path, *earlier) if p.exists()), path)
        text = render(_claim(group, results, flags, _read(source, group.key), str(source)))
        for stale in (p for p in earlier if p.exists()):
            stale.unlink()
            if stale.parent != folder and not any(stale.parent.iterdir()):
                stale.parent.rmdir()
        if path.exists() and path.read_text(encoding="utf-8") == text:
            done.unchanged.append(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
        done.written.append(path)
    done.untouched = sorted(p for p in folder.glob("**/*.json") if p not in planned)
    return done
