"""Automatic evaluation checks over evasion results: what an FGSM-only evaluation misses.

Each check compares cells of the same dataset, model and defense and flags the cells whose
numbers do not add up. They are computed from the records alone, so a leaderboard rendered
from committed results shows the same flags as the run that produced them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# Code -> what a flag means (the legend under every table that has flags).
LEGEND: dict[str, str] = {
    "P": "the iterative attack (PGD) is weaker than its single-step version (FGSM) at this "
         "eps: the iterative attack is broken or badly tuned",
    "M": "FGSM leaves at least 20 points more accuracy than PGD at this eps: FGSM overstates "
         "the robustness (gradient masking / catastrophic overfitting)",
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
}
SINGLE_STEP, ITERATIVE, BLACK_BOX = "fgsm", "pgd", "square"
WHITE_BOX_ITERATIVE = ("pgd", "autoattack", "ifgsm")
LARGE_EPS = 0.5
MASKING_GAP = 0.20


@dataclass(frozen=True)
class Flag:
    """One failed check on one cell."""

    cell_key: str
    code: str
    message: str


def _tolerance(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Slack for comparing two accuracies: half a point on the same images, two standard
    errors of the difference when the cells were measured on different numbers of images."""
    if a.get("n_test") == b.get("n_test"):
        return 0.005
    se = 0.0
    for r in (a, b):
        p, n = r["robust_acc"], max(int(r.get("n_test") or 1), 1)
        se += p * (1 - p) / n
    return max(0.005, 2 * math.sqrt(se))


def _pct(v: float) -> str:
    return f"{100 * v:.2f}%"


def _groups(records: Iterable[dict[str, Any]]) -> dict[tuple, list[dict[str, Any]]]:
    out: dict[tuple, list[dict[str, Any]]] = {}
    for r in records:
        if r.get("status") != "ok" or (r.get("category") or "evasion") != "evasion":
            continue
        if r.get("robust_acc") is None or r.get("eps") is None:
            continue
        out.setdefault((r["dataset"], r["model"], r["defense"]), []).append(r)
    return out


def run_checks(records: Iterable[dict[str, Any]]) -> list[Flag]:
    """Every flag raised by the checks over ``records`` (ok evasion cells only)."""
    records = list(records)
    flags: list[Flag] = []
    for (dataset, model, defense), rows in sorted(_groups(records).items()):
        where = f"{dataset}/{model}/{defense}"
        by = {(r["attack"], r["eps"]): r for r in rows}
        for (attack, eps), r in sorted(by.items()):
            if attack == SINGLE_STEP and (ITERATIVE, eps) in by:
                it = by[(ITERATIVE, eps)]
                if it["robust_acc"] > r["robust_acc"] + _tolerance(r, it):
                    flags.append(Flag(it["cell_key"], "P", f"{where} eps {eps:g}: PGD "
                                      f"{_pct(it['robust_acc'])} > FGSM {_pct(r['robust_acc'])}"))
                if r["robust_acc"] - it["robust_acc"] >= MASKING_GAP:
                    flags.append(Flag(r["cell_key"], "M", f"{where} eps {eps:g}: FGSM "
                                      f"{_pct(r['robust_acc'])} vs PGD {_pct(it['robust_acc'])}"))
            if attack == SINGLE_STEP and r.get("clean_acc") is not None \
                    and r["robust_acc"] > r["clean_acc"] + _tolerance(r, r):
                flags.append(Flag(r["cell_key"], "L", f"{where} eps {eps:g}: FGSM "
                                  f"{_pct(r['robust_acc'])} > clean {_pct(r['clean_acc'])}"))
            if attack == BLACK_BOX:
                white = [by[(a, eps)] for a in WHITE_BOX_ITERATIVE + (SINGLE_STEP,)
                         if (a, eps) in by]
                if white and all(r["robust_acc"] < w["robust_acc"] - _tolerance(r, w)
                                 for w in white):
                    best = min(white, key=lambda w: w["robust_acc"])
                    flags.append(Flag(r["cell_key"], "B", f"{where} eps {eps:g}: Square "
                                      f"{_pct(r['robust_acc'])} < {best['attack']} "
                                      f"{_pct(best['robust_acc'])}"))
            classes = (r.get("metrics") or {}).get("num_classes")
            if attack in WHITE_BOX_ITERATIVE and eps >= LARGE_EPS and classes \
                    and r["robust_acc"] > 2 / classes:
                flags.append(Flag(r["cell_key"], "C", f"{where} {attack} eps {eps:g}: "
                                  f"{_pct(r['robust_acc'])} with {int(classes)} classes"))
            stored = (r.get("metrics") or {}).get("stored_robust_acc")
            if stored is not None and \
                    abs(stored - r["robust_acc"]) > 0.5 / max(int(r.get("n_test") or 1), 1):
                flags.append(Flag(r["cell_key"], "S", f"{where} {attack} eps {eps:g}: "
                                  f"stored {_pct(stored)} vs reported {_pct(r['robust_acc'])}"))
        per_attack: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            per_attack.setdefault(r["attack"], []).append(r)
        for attack, series in sorted(per_attack.items()):
            series.sort(key=lambda r: r["eps"])
            for lo, hi in zip(series, series[1:], strict=False):
                if hi["robust_acc"] > lo["robust_acc"] + _tolerance(lo, hi):
                    flags.append(Flag(hi["cell_key"], "E", f"{where} {attack}: "
                                      f"{_pct(hi['robust_acc'])} at eps {hi['eps']:g} > "
                                      f"{_pct(lo['robust_acc'])} at eps {lo['eps']:g}"))
    return flags


def flags_by_cell(records: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Cell key -> its flag codes, e.g. ``'ME'``."""
    out: dict[str, str] = {}
    for flag in run_checks(records):
        codes = out.get(flag.cell_key, "")
        if flag.code not in codes:
            out[flag.cell_key] = "".join(sorted(codes + flag.code))
    return out
