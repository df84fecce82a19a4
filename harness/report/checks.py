"""Automatic evaluation checks over evasion results: what an FGSM-only evaluation misses.

Each check compares cells of the same dataset, model and defense and flags the cells whose
numbers do not add up. They ask for the roles the attacks declared (the single-step attack,
the iterative white-box attacks, the black-box control), never for names, so a third-party
attack that declares a role takes part. They are computed from the records alone, so a
leaderboard rendered from committed results shows the same flags as the run that produced
them. They run once per command, between the run and the renderers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass

from harness.contracts import roles
from harness.contracts.categories import reports_robust_accuracy
from harness.contracts.metrics import render_metric
from harness.contracts.outcomes import attack_label
from harness.contracts.records import Result
from harness.report.labels import defense_label

# Code -> what a flag means (the legend under every table that has flags).
LEGEND: dict[str, str] = {
    "P": "the iterative attack (PGD) is weaker than its single-step version (FGSM) at this "
         "eps: the iterative attack is broken or badly tuned",
    "M": "FGSM leaves at least 20 points more accuracy than PGD at this eps: FGSM overstates "
         "the robustness (gradient masking / catastrophic overfitting)",
    "A": "the ensemble (AutoAttack) leaves at least 10 points less accuracy than this "
         "iterative attack (PGD) at this eps, beyond sampling noise: PGD overstates the "
         "robustness (gradient masking, or too few steps and restarts)",
    "L": "accuracy under FGSM is above clean accuracy: label leaking, FGSM examples are easier "
         "than clean ones for this model",
    "E": "robust accuracy rises with eps for this attack: a larger budget cannot make an "
         "attack weaker, so the smaller-eps number is too high",
    "C": "at a very large eps (>= 0.5) a gradient attack leaves accuracy above twice chance: "
         "gradients are masked or the attack does not converge",
    "B": "the black-box Square attack is stronger than every white-box attack at this eps: "
         "the white-box attacks are not using the gradients well (gradient masking)",
    "S": "accuracy recomputed from the stored adversarial examples differs from the reported "
         "robust accuracy",
    "T": "the model's clean accuracy is at chance level (at most 1.5 x 1/classes): training "
         "diverged or failed; its robust numbers mean nothing",
    "W": "the attack is too weak at this budget to measure robustness: on the undefended "
         "model (same dataset and model, same eps and options) it turned fewer than 10% of the "
         "correctly classified images; its cells do not count toward a worst case or a rank",
    "V": "a certificate is broken: an attack on the smoothed classifier changed its class "
         "within the radius it was certified at (a bug in the certifier or the attack); the "
         "cell's numbers are not shown",
}
#: Flags whose cells are left out of the worst case and the ranking.
UNCOUNTED = frozenset({"W"})
#: Flags whose cells' numbers are not shown at all.
WITHHELD = frozenset({"V"})
LARGE_EPS = 0.5
MASKING_GAP = 0.20
ENSEMBLE_GAP = 0.10
CHANCE_FACTOR = 1.5
WEAK_SUCCESS = 0.10


@dataclass(frozen=True)
class Flag:
    """One failed check on one cell."""

    cell_key: str
    code: str
    message: str


def _tolerance(a: Result, b: Result) -> float:
    """Slack for comparing two accuracies: half a point on the same images, two standard
    errors of the difference when the cells were measured on different numbers of images."""
    if a.n_test == b.n_test:
        return 0.005
    se = 0.0
    for r in (a, b):
        p, n = r.robust_acc or 0.0, max(int(r.n_test or 1), 1)
        se += p * (1 - p) / n
    return max(0.005, 2 * math.sqrt(se))


def _noise(a: Result, b: Result) -> float:
    """Two standard errors of the difference of two accuracies, as if measured on
    independent images (a conservative bound when they share them)."""
    se = sum(_acc(r) * (1 - _acc(r)) / max(int(r.n_test or 1), 1) for r in (a, b))
    return 2 * math.sqrt(se)


def _pct(v: float | None) -> str:
    return render_metric("robust_acc", v or 0.0)


def _acc(r: Result) -> float:
    return r.robust_acc if r.robust_acc is not None else math.nan


def _groups(records: Iterable[Result]) -> dict[tuple[str, str, str, str], list[Result]]:
    """The cells compared with each other: one trained model under one defense (adaptive
    cells apart), keyed by dataset, model, defense label and training key."""
    out: dict[tuple[str, str, str, str], list[Result]] = {}
    for r in records:
        if r.status != "ok" or not reports_robust_accuracy(r.category):
            continue
        if r.robust_acc is None or r.eps is None:
            continue
        # adaptive cells (an input transformation attacked through BPDA/EoT) are compared
        # with each other, not with the attacks crafted on the undefended model
        defense = defense_label(r) + (f" [{r.adaptive}]" if r.adaptive else "")
        out.setdefault((r.dataset, r.model, defense, r.train_key), []).append(r)
    return out


def _is_single_step(r: Result) -> bool:
    return r.has_role(roles.SINGLE_STEP)


def _is_counterpart(r: Result) -> bool:
    """An iterative attack compared with the single-step one (ensembles are not)."""
    return r.has_role(roles.ITERATIVE) and not r.has_role(roles.ENSEMBLE)


def _is_white_box_iterative(r: Result) -> bool:
    return r.has_role(roles.ITERATIVE) or r.has_role(roles.ENSEMBLE)


def _pair_flags(where: str, eps: float, one: Result, it: Result) -> list[Flag]:
    """P and M: a single-step cell against an iterative one at the same eps."""
    flags = []
    if _acc(it) > _acc(one) + _tolerance(one, it):
        flags.append(Flag(it.cell_key, "P", f"{where} eps {eps:g}: {it.attack} "
                          f"{_pct(it.robust_acc)} > {one.attack} {_pct(one.robust_acc)}"))
    if _acc(one) - _acc(it) >= MASKING_GAP:
        flags.append(Flag(one.cell_key, "M", f"{where} eps {eps:g}: {one.attack} "
                          f"{_pct(one.robust_acc)} vs {it.attack} {_pct(it.robust_acc)}"))
    return flags


def _ensemble_flags(where: str, eps: float, ensemble: Result, it: Result) -> list[Flag]:
    """A: an iterative cell at least :data:`ENSEMBLE_GAP` above the ensemble at the same eps,
    beyond sampling noise (flagged on the iterative cell, whose number overstates the
    robustness, as M is on the single-step one)."""
    gap = _acc(it) - _acc(ensemble)
    if gap >= ENSEMBLE_GAP and gap > _noise(it, ensemble):
        return [Flag(it.cell_key, "A", f"{where} eps {eps:g}: {attack_label(it)} "
                     f"{_pct(it.robust_acc)} vs {ensemble.attack} "
                     f"{_pct(ensemble.robust_acc)}")]
    return []


def _cell_flags(where: str, r: Result, same_eps: list[Result]) -> list[Flag]:
    """L, B, C and S: one cell, against its clean accuracy or the other cells at its eps."""
    flags = []
    eps = r.eps or 0.0
    if _is_single_step(r) and r.clean_acc is not None \
            and _acc(r) > r.clean_acc + _tolerance(r, r):
        flags.append(Flag(r.cell_key, "L", f"{where} eps {eps:g}: {r.attack} "
                          f"{_pct(r.robust_acc)} > clean {_pct(r.clean_acc)}"))
    if r.has_role(roles.BLACK_BOX):
        white = [w for w in same_eps if _is_white_box_iterative(w) or _is_single_step(w)]
        if white and all(_acc(r) < _acc(w) - _tolerance(r, w) for w in white):
            best = min(white, key=_acc)
            flags.append(Flag(r.cell_key, "B", f"{where} eps {eps:g}: {r.attack} "
                              f"{_pct(r.robust_acc)} < {best.attack} {_pct(best.robust_acc)}"))
    classes = r.metrics.get("num_classes")
    if _is_white_box_iterative(r) and eps >= LARGE_EPS and classes and _acc(r) > 2 / classes:
        flags.append(Flag(r.cell_key, "C", f"{where} {r.attack} eps {eps:g}: "
                          f"{_pct(r.robust_acc)} with {int(classes)} classes"))
    stored = r.metrics.get("stored_robust_acc")
    if stored is not None and abs(stored - _acc(r)) > 0.5 / max(int(r.n_test or 1), 1):
        flags.append(Flag(r.cell_key, "S", f"{where} {r.attack} eps {eps:g}: "
                          f"stored {_pct(stored)} vs reported {_pct(r.robust_acc)}"))
    return flags


def _eps_flags(where: str, rows: list[Result]) -> list[Flag]:
    """E: robust accuracy rising with eps, per attack."""
    flags = []
    per_attack: dict[str, list[Result]] = {}
    for r in rows:
        per_attack.setdefault(attack_label(r), []).append(r)
    for attack, series in sorted(per_attack.items()):
        series.sort(key=lambda r: r.eps or 0.0)
        for lo, hi in zip(series, series[1:], strict=False):
            if _acc(hi) > _acc(lo) + _tolerance(lo, hi):
                flags.append(Flag(hi.cell_key, "E", f"{where} {attack}: "
                                  f"{_pct(hi.robust_acc)} at eps {hi.eps:g} > "
                                  f"{_pct(lo.robust_acc)} at eps {lo.eps:g}"))
    return flags


def _at_chance(r: Result) -> bool:
    """Whether ``r``'s model is at chance: clean accuracy at most :data:`CHANCE_FACTOR` over
    its number of classes (False when either is unknown)."""
    classes = r.metrics.get("num_classes")
    return bool(classes) and r.clean_acc is not None and \
        r.clean_acc <= CHANCE_FACTOR / float(classes or 1)


def _chance_flags(records: Iterable[Result]) -> list[Flag]:
    """T: a cell whose model's clean accuracy is at chance level (training diverged); every
    ok cell that reports robust accuracy and its number of classes, bounded or not."""
    flags = []
    for r in records:
        if r.status != "ok" or not reports_robust_accuracy(r.category) or r.clean_acc is None:
            continue
        classes = r.metrics.get("num_classes")
        if classes and _at_chance(r):
            budget = f" eps {r.eps:g}" if r.eps is not None else ""
            flags.append(Flag(r.cell_key, "T", f"{r.dataset}/{r.model}/{r.defense} {r.attack}"
                              f"{budget}: clean {_pct(r.clean_acc)} with {int(classes)} "
                              f"classes (chance {_pct(1 / classes)})"))
    return flags


def _attack_setting(r: Result) -> tuple[str, str, str, str, float | None]:
    """The dataset, model, attack, the options it was given and the eps of ``r``: the same
    attack at the same budget (adaptive or not, whatever the defense)."""
    options = json.dumps(r.config.get("attack_options") or {}, sort_keys=True)
    return (r.dataset, r.model, r.attack, options, r.eps)


def _weak_flags(records: Iterable[Result]) -> list[Flag]:
    """W: every cell of an attack that, on the undefended model of the same dataset and model
    at the same budget, succeeds on fewer than :data:`WEAK_SUCCESS` of the correctly
    classified images (not judged on an undefended model at chance: T says that)."""
    cells = [r for r in records if r.ok and reports_robust_accuracy(r.category)
             and r.robust_acc is not None]
    weak: dict[tuple[str, str, str, str, float | None], Result] = {}
    for r in cells:
        success = r.attack_success_rate
        if r.has_baseline_defense() and not r.adaptive and success is not None \
                and not math.isnan(success) and success < WEAK_SUCCESS and not _at_chance(r):
            weak[_attack_setting(r)] = r
    flags = []
    for r in cells:
        base = weak.get(_attack_setting(r))
        if base is not None:
            budget = f" eps {r.eps:g}" if r.eps is not None else ""
            flags.append(Flag(r.cell_key, "W", f"{r.dataset}/{r.model} {attack_label(base)}"
                              f"{budget}: success {_pct(base.attack_success_rate)} on the "
                              "undefended model"))
    return flags


def _broken_certificate_flags(records: Iterable[Result]) -> list[Flag]:
    """V: a certification cell in which an attack broke a certificate within its radius."""
    flags = []
    for r in records:
        broken = r.metrics.get("certificates_broken")
        if r.ok and broken:
            flags.append(Flag(r.cell_key, "V", f"{r.dataset}/{r.model}/{r.defense} {r.attack}: "
                              f"{int(broken)} of {int(r.metrics.get('certificates_checked', 0))}"
                              " certificates attacked were broken within their radius"))
    return flags


def run_checks(records: Iterable[Result]) -> list[Flag]:
    """Every flag raised by the checks over ``records`` (ok evasion cells, and the
    certificates of certification cells)."""
    records = list(records)
    flags: list[Flag] = (_chance_flags(records) + _weak_flags(records)
                         + _broken_certificate_flags(records))
    for (dataset, model, defense, _), rows in sorted(_groups(records).items()):
        where = f"{dataset}/{model}/{defense}"
        by = {(attack_label(r), r.eps): r for r in rows}
        for (_, eps), r in sorted(by.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0.0)):
            same_eps = [o for (_, e), o in sorted(by.items(), key=lambda kv: kv[0][0])
                        if e == eps and o is not r]
            if _is_single_step(r):
                for it in same_eps:
                    if _is_counterpart(it):
                        flags += _pair_flags(where, eps or 0.0, r, it)
            if r.has_role(roles.ENSEMBLE):
                for it in same_eps:
                    if _is_counterpart(it):
                        flags += _ensemble_flags(where, eps or 0.0, r, it)
            flags += _cell_flags(where, r, same_eps)
        flags += _eps_flags(where, rows)
    return flags


def flags_by_cell(records: Iterable[Result]) -> dict[str, str]:
    """Cell key -> its flag codes, e.g. ``'ME'``."""
    return codes_by_cell(run_checks(records))


def codes_by_cell(flags: Iterable[Flag]) -> dict[str, str]:
    """Cell key -> the sorted codes of ``flags`` raised on it."""
    out: dict[str, str] = {}
    for flag in flags:
        codes = out.get(flag.cell_key, "")
        if flag.code not in codes:
            out[flag.cell_key] = "".join(sorted(codes + flag.code))
    return out
