"""The paper's Tables I-III beside this harness's numbers on the same data and method.

The paper (../shared/seeds/000_79d978905b8847dd.txt) trains its combined CNN (Algorithm 1),
attacks it with FGSM (eq. 1) and retrains it with FGSM adversarial training (Algorithm 2).
:func:`comparison` renders, from committed result records, the three tables with the
paper's number and ours in adjacent columns, and PGD and AutoAttack at the same eps beside
them. ``python -m harness.paper leaderboards/*.json`` prints it for the leaderboards README.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tabulate import tabulate

# dataset -> (paper's eps, Table I test acc, Table II FGSM acc, Table III FGSM acc after
# adversarial training), in percent.
PAPER: dict[str, tuple[float, float, float, float]] = {
    "mnist": (0.1, 86.22, 65.87, 80.25),
    "fashion-mnist": (0.1, 87.27, 60.45, 81.82),
    "cifar10": (0.03, 78.19, 49.32, 71.17),
    "imagenet": (0.03, 74.26, 46.70, 70.01),
}
NAMES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10",
         "imagenet": "ImageNet"}
MODEL = "paper-cnn"
REPRODUCE = ("harness bench --dataset {dataset} --model paper-cnn --attack fgsm,pgd,autoattack "
             "--defense advtrain --eps {eps:g} --data-root DATA")


def _cell(records, dataset, defense, attack, eps) -> dict[str, Any] | None:
    best = None
    for r in records:
        if (r.get("dataset"), r.get("model"), r.get("defense"), r.get("attack")) == (
                dataset, MODEL, defense, attack) and r.get("eps") == eps \
                and r.get("status") == "ok":
            if best is None or (r.get("n_test") or 0) > (best.get("n_test") or 0):
                best = r
    return best


def _pct(r: dict[str, Any] | None, key: str = "robust_acc") -> str:
    if r is None or r.get(key) is None:
        return "no number yet"
    n = f" (n={r['n_test']})" if r.get("n_test") and r["n_test"] < 10_000 else ""
    return f"{100 * r[key]:.2f}%{n}"


def comparison(records: list[dict[str, Any]]) -> str:
    """Markdown: Tables I, II and III, paper beside harness, PGD and AutoAttack beside."""
    t1, t2, t3, missing = [], [], [], []
    for dataset, (eps, clean, fgsm, adv) in PAPER.items():
        name = NAMES[dataset]
        base = _cell(records, dataset, "none", "fgsm", eps)
        trained = _cell(records, dataset, "advtrain", "fgsm", eps)
        if base is None:
            missing.append(f"- {name}: `{REPRODUCE.format(dataset=dataset, eps=eps)}`")
        t1.append([name, f"{clean:.2f}%", _pct(base, "clean_acc")])
        t2.append([name, f"{eps:g}", f"{fgsm:.2f}%", _pct(base),
                   _pct(_cell(records, dataset, "none", "pgd", eps)),
                   _pct(_cell(records, dataset, "none", "autoattack", eps))])
        t3.append([name, f"{eps:g}", f"{adv:.2f}%", _pct(trained), _pct(trained, "clean_acc"),
                   _pct(_cell(records, dataset, "advtrain", "pgd", eps)),
                   _pct(_cell(records, dataset, "advtrain", "autoattack", eps))])
    fmt = dict(tablefmt="github", disable_numparse=True)
    parts = [
        "**Table I: test accuracy, no attack** (paper-cnn, standard training)", "",
        tabulate(t1, headers=["dataset", "paper", "harness"], **fmt), "",
        "**Table II: accuracy under attack, no defense**", "",
        tabulate(t2, headers=["dataset", "eps", "paper FGSM", "harness FGSM", "harness PGD",
                              "harness AutoAttack"], **fmt), "",
        "**Table III: accuracy under attack after FGSM adversarial training (Algorithm 2)**",
        "",
        tabulate(t3, headers=["dataset", "eps", "paper FGSM", "harness FGSM", "harness clean",
                              "harness PGD", "harness AutoAttack"], **fmt), "",
    ]
    if missing:
        parts += ["No numbers yet for these datasets (their data cannot be fetched on the "
                  "machine that made this leaderboard); to reproduce where the data is, "
                  "with DATA the folder that holds it:", "", *missing, ""]
    return "\n".join(parts)


def main(paths: list[str]) -> int:
    """Print the comparison for the records in ``paths`` (JSON files)."""
    records = [r for p in paths for r in json.loads(Path(p).read_text())]
    print(comparison(records), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
