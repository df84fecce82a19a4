"""Plugin ``paper-report``: the paper's Tables I-III and Figures 1-3 beside this harness's
numbers, as a report (figures embedded in every leaderboard page, and a text of its own).

The paper (../shared/seeds/000_79d978905b8847dd.txt) trains its combined CNN (Algorithm 1),
attacks it with FGSM (eq. 1) and retrains it with FGSM adversarial training (Algorithm 2).
Its figures:

- ``<stem>-bars.png``: accuracy before attack, after FGSM, and after FGSM on the
  adversarially trained model (and PGD beside it), one group per dataset (the paper's Fig. 3);
- ``<stem>-<dataset>-examples.png``: test images before and after each attack with the true
  label and both predictions, and the perturbation magnified (the paper's Figs. 1 and 2);
- ``<stem>-<dataset>-eps.png``: robust accuracy against eps, one line per defense.

Its text (``harness report paper``) renders the three tables with the paper's number and ours
in adjacent columns, and PGD and AutoAttack at the same eps beside them (the standard
AutoAttack, ``autoattack``; ART's 3-attack ensemble, ``art-autoattack``, named in the cell
where only that ran); the leaderboards README embeds it. It names the paper's own model,
attack and defense (paper-cnn, FGSM, Algorithm 2 as ``advtrain``), which is what a report
about the paper is for.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import Figure, MetricSpec, ReportSpec, hookimpl

if TYPE_CHECKING:
    import numpy as np

    from harness import Result, ResultSet

BASELINE, ADVTRAIN = "none", "advtrain"
EXAMPLE_ATTACKS = 6


def _ok_evasion(results: ResultSet) -> list[Result]:
    return [r for r in results.records if r.ok and r.category == "evasion"
            and r.robust_acc is not None]


def _main_model(rows: list[Result]) -> str | None:
    models = sorted({r.model for r in rows})
    return "paper-cnn" if "paper-cnn" in models else (models[0] if models else None)


def _fgsm_eps(rows: list[Result], model: str | None) -> float | None:
    """The eps at which FGSM was run on both the undefended and the advtrain model: the
    dataset's own eps when it was (as its records' training configuration gives it), else
    0.1, else the smallest."""
    found = {(r.defense, r.eps) for r in rows
             if r.model == model and r.attack == "fgsm" and r.eps is not None}
    both = sorted(e for d, e in found if d == BASELINE and (ADVTRAIN, e) in found)
    if not both:
        return None
    own = {(r.config.get("training") or {}).get("dataset_eps") for r in rows} - {None}
    for preferred in (*own, 0.1):
        if preferred in both:
            return float(preferred)
    return both[0]


def _find(rows: list[Result], **want: Any) -> Result | None:
    for r in rows:
        if all(getattr(r, k) == v for k, v in want.items()):
            return r
    return None


def _bar_sets(rows: list[Result]) -> list[tuple[str, str, float]]:
    """(dataset, main model, FGSM eps) for every dataset that has the bars' cells."""
    out = []
    for dataset in sorted({r.dataset for r in rows}):
        ds_rows = [r for r in rows if r.dataset == dataset]
        model = _main_model(ds_rows)
        eps = _fgsm_eps(ds_rows, model)
        if eps is not None and model is not None:
            out.append((dataset, model, eps))
    return out


def plan_figures(results: ResultSet, stem: str) -> dict[str | None, list[Figure]]:
    """The figures of a page, by dataset (None: the page-wide bar chart)."""
    rows = _ok_evasion(results)
    out: dict[str | None, list[Figure]] = {}
    bar_sets = _bar_sets(rows)
    for dataset in sorted({r.dataset for r in rows}):
        ds_rows = [r for r in rows if r.dataset == dataset]
        model = _main_model(ds_rows)
        eps = _fgsm_eps(ds_rows, model)
        figures = []
        if eps is not None and any(r.examples and r.model == model
                                   and r.defense == BASELINE and r.eps == eps
                                   for r in ds_rows):
            figures.append(Figure(
                f"{stem}-{dataset}-examples.png",
                f"{dataset}, {model} without defense: test images (top), their adversarial "
                f"versions at eps {eps:g} (middle) and the perturbation, magnified (bottom), "
                "for each attack; titles give the true label and the predictions",
                "examples", dataset, model, eps))
        if any(len({r.eps for r in ds_rows if r.model == m and r.attack == a
                    and r.eps is not None}) >= 2
               for m in {r.model for r in ds_rows} for a in ("fgsm", "pgd")):
            figures.append(Figure(
                f"{stem}-{dataset}-eps.png",
                f"{dataset}: robust accuracy against eps, one line per defense (PGD solid, "
                "FGSM dashed), one panel per model", "eps", dataset))
        if figures:
            out[dataset] = figures
    if bar_sets:
        eps_text = ", ".join(f"{d} eps {e:g}" for d, _, e in bar_sets)
        out[None] = [Figure(
            f"{stem}-bars.png",
            f"Accuracy before attack, after FGSM, and after FGSM and PGD on the FGSM-trained "
            f"model (advtrain), {bar_sets[0][1]} ({eps_text}): the paper's Fig. 3 with PGD beside",
            "bars")]
    return out


def _save(fig, path: Path) -> None:
    fig.savefig(path, dpi=110, bbox_inches="tight", metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)


def _or_nan(value: float | None) -> float:
    """``value``, or NaN (no bar) when the number is missing."""
    return math.nan if value is None else value


def _bars(results: ResultSet, figure: Figure, path: Path) -> None:
    import matplotlib.pyplot as plt
    import numpy as np

    rows = _ok_evasion(results)
    groups = []
    for dataset, model, eps in _bar_sets(rows):
        ds_rows = [r for r in rows if r.dataset == dataset]
        base = _find(ds_rows, model=model, defense=BASELINE, attack="fgsm", eps=eps)
        adv = _find(ds_rows, model=model, defense=ADVTRAIN, attack="fgsm", eps=eps)
        pgd = _find(ds_rows, model=model, defense=ADVTRAIN, attack="pgd", eps=eps)
        if base is None or adv is None:
            continue
        groups.append((f"{dataset}\n(eps {eps:g})", [
            _or_nan(base.clean_acc), _or_nan(base.robust_acc), _or_nan(adv.robust_acc),
            _or_nan(pgd.robust_acc if pgd else None)]))
    labels = ["clean, no defense", "FGSM, no defense", "FGSM, advtrain", "PGD, advtrain"]
    colors = ["#4c72b0", "#dd8452", "#55a868", "#c44e52"]
    fig, ax = plt.subplots(figsize=(1.9 * len(groups) + 3, 3.6))
    width = 0.2
    for i, (label, color) in enumerate(zip(labels, colors, strict=True)):
        xs = np.arange(len(groups)) + (i - 1.5) * width
        values = [100 * g[1][i] for g in groups]
        bars = ax.bar(xs, values, width, label=label, color=color)
        for bar, v in zip(bars, values, strict=True):
            if not np.isnan(v):
                ax.annotate(f"{v:.1f}", (bar.get_x() + bar.get_width() / 2, v),
                            ha="center", va="bottom", fontsize=7)
    ax.set_xticks(np.arange(len(groups)), [g[0] for g in groups])
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 108)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title("Accuracy before and after FGSM, without and with adversarial training",
                 fontsize=10)
    _save(fig, path)


def _examples(results: ResultSet, figure: Figure, path: Path) -> None:
    import matplotlib.pyplot as plt
    import numpy as np

    from harness import attack_label, decode_examples

    rows = [r for r in _ok_evasion(results) if r.dataset == figure.dataset
            and r.model == figure.model and r.defense == BASELINE
            and r.eps == figure.eps and r.examples]
    order = {"fgsm": 0, "pgd": 1, "autoattack": 2, "art-autoattack": 2, "square": 3,
             "art-fgsm": 9}
    # one row per attack: its plain cell (no options given) on the most images
    plain: dict[str, Result] = {}
    for r in sorted(rows, key=lambda r: (bool(r.config.get("attack_options")), -(r.n_test or 0),
                                         r.cell_key)):
        plain.setdefault(r.attack, r)
    rows = sorted(plain.values(), key=lambda r: (order.get(r.attack, 2), r.attack))
    rows = rows[:EXAMPLE_ATTACKS]
    n = max(r.examples["shape"][0] for r in rows if r.examples)
    # the dataset's class names, from any of its cells that recorded them
    names = next((list(r.examples["class_names"]) for r in rows
                  if r.examples and r.examples.get("class_names")), [])
    fig, axes = plt.subplots(3 * len(rows), n, figsize=(1.45 * n, 1.55 * 3 * len(rows)),
                             squeeze=False, layout="constrained")
    for a, r in enumerate(rows):
        ex = dict(r.examples or {})
        x, adv = decode_examples(ex, "x"), decode_examples(ex, "x_adv")
        delta = adv - x
        scale = float(np.abs(delta).max()) or 1.0
        for j in range(n):
            top, mid, low = axes[3 * a, j], axes[3 * a + 1, j], axes[3 * a + 2, j]
            for ax in (top, mid, low):
                ax.set_xticks([])
                ax.set_yticks([])
            if j >= len(x):
                continue
            _show(top, x[j])
            _show(mid, adv[j])
            _show(low, 0.5 + 0.5 * delta[j] / scale)
            y, p, q = ex["y"][j], ex["pred"][j], ex["pred_adv"][j]
            size = 5.5 if names else 7
            top.set_title(f"true {_label(names, y)}\npred {_label(names, p)}" if names
                          else f"true {y}, pred {p}",
                          fontsize=size, color="black" if p == y else "red")
            mid.set_title(f"pred {_label(names, q)}", fontsize=size,
                          color="black" if q == y else "red")
            low.set_title(f"x{0.5 / scale:.0f}" if scale < 0.5 else "x1", fontsize=6)
        axes[3 * a, 0].set_ylabel(attack_label(r), fontsize=8, rotation=0, ha="right", va="center")
    fig.suptitle(f"{figure.dataset}: {figure.model}, no defense, eps {figure.eps:g} "
                 "(red: misclassified)", fontsize=9)
    _save(fig, path)


def _label(names: list[str], k: int) -> str:
    """Class ``k``'s name when the record has the names, else its number."""
    return names[k] if 0 <= k < len(names) else str(k)


def _show(ax, image: np.ndarray) -> None:
    import numpy as np

    image = np.clip(image, 0, 1)
    if image.shape[0] == 1:
        ax.imshow(image[0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(np.transpose(image, (1, 2, 0)), interpolation="nearest")


def _eps(results: ResultSet, figure: Figure, path: Path) -> None:
    import matplotlib.pyplot as plt

    rows = [r for r in _ok_evasion(results) if r.dataset == figure.dataset
            and r.eps is not None and r.attack in ("fgsm", "pgd")]
    models = sorted({r.model for r in rows})
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.4), squeeze=False,
                             layout="constrained")
    defenses = sorted({r.defense for r in rows}, key=lambda d: (d != BASELINE, d))
    colors = {d: plt.get_cmap("tab10")(i % 10) for i, d in enumerate(defenses)}
    classes = next((r.metrics.get("num_classes") for r in rows
                    if r.metrics.get("num_classes")), None)
    for ax, model in zip(axes[0], models, strict=True):
        for defense in defenses:
            for attack, style in (("pgd", "-"), ("fgsm", "--")):
                series = sorted((r.eps or 0.0, r.robust_acc or 0.0) for r in rows
                                if r.model == model and r.defense == defense
                                and r.attack == attack)
                if len(series) < 1:
                    continue
                ax.plot([e for e, _ in series], [100 * a for _, a in series], style,
                        marker="o", markersize=3, color=colors[defense],
                        label=f"{defense} ({attack.upper()})")
        if classes:
            ax.axhline(100 / classes, color="gray", linewidth=0.8, linestyle=":")
        ax.set_title(model, fontsize=9)
        ax.set_xlabel("eps (Linf, pixel units)")
        ax.set_ylabel("robust accuracy (%)")
        ax.set_ylim(-2, 102)
        ax.legend(fontsize=6)
    fig.suptitle(f"{figure.dataset}: robust accuracy against eps (dotted: chance)", fontsize=9)
    _save(fig, path)


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


def _cell(records: list[Result], dataset: str, defense: str, attack: str,
          eps: float) -> Result | None:
    best = None
    for r in records:
        if (r.dataset, r.model, r.defense, r.attack) == (dataset, MODEL, defense, attack) \
                and r.eps == eps and r.ok:
            if best is None or (r.n_test or 0) > (best.n_test or 0):
                best = r
    return best


#: How the tables show an accuracy of a record (the paper's own numbers are quoted as printed).
ACCURACY = MetricSpec(name="accuracy", label="accuracy", format="percent", higher_is_better=True)


def _pct(r: Result | None, key: str = "robust_acc", note: str = "") -> str:
    value = r.value(key) if r is not None else None
    if r is None or value is None:
        return "no number yet"
    notes = [f"n={r.n_test}"] if r.n_test and r.n_test < 10_000 else []
    notes += [note] if note else []
    return ACCURACY.render(value) + (f" ({'; '.join(notes)})" if notes else "")


# The AutoAttack column: the standard AutoAttack, else ART's 3-attack ensemble (named).
STANDARD_AUTOATTACK, ART_AUTOATTACK = "autoattack", "art-autoattack"


def _autoattack(records: list[Result], dataset: str, defense: str, eps: float
                ) -> tuple[str, bool]:
    """The AutoAttack cell: the standard AutoAttack's number, else ART's ensemble's with its
    name; and whether it is ART's."""
    standard = _cell(records, dataset, defense, STANDARD_AUTOATTACK, eps)
    if standard is not None:
        return _pct(standard), False
    art = _cell(records, dataset, defense, ART_AUTOATTACK, eps)
    if art is not None:
        return _pct(art, note=ART_AUTOATTACK), True
    return _pct(None), False


# The paper's ImageNet row, where full ImageNet has not run: Imagenette, named as what it is.
STAND_INS = {"imagenet": "imagenette"}
IMAGENETTE_NOTE = (
    "The ImageNet row is measured on Imagenette (fast.ai's 10-class subset of ImageNet's "
    "photographs, at the image size named), not on ImageNet: it is comparable only in kind. "
    "The paper's own ImageNet numbers come from a small CNN, so from a subset of classes too, "
    "but neither its classes nor its image size are stated; with 10 classes chance is 10% "
    "and a 74% is not the same achievement as on 1,000 classes, and eps 0.03 means a "
    "different perturbation at a different resolution.")


def _stand_in(records: list[Result], dataset: str, eps: float) -> tuple[str, str]:
    """The dataset whose records fill the paper's row ``dataset``, and the row's name: the
    dataset itself when it has a baseline FGSM cell, else its stand-in when that has one."""
    other = STAND_INS.get(dataset)
    if other is None or _cell(records, dataset, "none", "fgsm", eps) is not None:
        return dataset, NAMES[dataset]
    base = _cell(records, other, "none", "fgsm", eps)
    if base is None:
        return dataset, NAMES[dataset]
    shape = base.config.get("image_shape")
    size = f"{shape[1]} px" if shape else "size not recorded"
    return other, f"{NAMES[dataset]} (Imagenette: 10 classes, {size})"


def comparison(results: ResultSet) -> str:
    """Markdown: Tables I, II and III, paper beside harness, PGD and AutoAttack beside."""
    from tabulate import tabulate

    records = results.records
    t1, t2, t3, missing = [], [], [], []
    art_shown = False
    stand_in_shown = False
    for paper_dataset, (eps, clean, fgsm, adv) in PAPER.items():
        dataset, name = _stand_in(records, paper_dataset, eps)
        stand_in_shown = stand_in_shown or dataset != paper_dataset
        base = _cell(records, dataset, "none", "fgsm", eps)
        trained = _cell(records, dataset, "advtrain", "fgsm", eps)
        if base is None:
            missing.append(f"- {name}: `{REPRODUCE.format(dataset=dataset, eps=eps)}`")
        (aa_base, art_base), (aa_trained, art_trained) = (
            _autoattack(records, dataset, d, eps) for d in ("none", "advtrain"))
        art_shown = art_shown or art_base or art_trained
        t1.append([name, f"{clean:.2f}%", _pct(base, "clean_acc")])
        t2.append([name, f"{eps:g}", f"{fgsm:.2f}%", _pct(base),
                   _pct(_cell(records, dataset, "none", "pgd", eps)), aa_base])
        t3.append([name, f"{eps:g}", f"{adv:.2f}%", _pct(trained), _pct(trained, "clean_acc"),
                   _pct(_cell(records, dataset, "advtrain", "pgd", eps)), aa_trained])
    fmt: dict[str, Any] = {"tablefmt": "github", "disable_numparse": True}
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
    if stand_in_shown:
        parts += [IMAGENETTE_NOTE, ""]
    if art_shown:
        parts += ["AutoAttack is the standard one (`autoattack`: APGD-CE, APGD-T, FAB-T, Square "
                  "with 5,000 queries); a number marked `art-autoattack` is ART's 3-attack "
                  "ensemble (APGD-CE, APGD-DLR, Square with 1,000 queries), shown where the "
                  "standard has not run.", ""]
    if missing:
        parts += ["No numbers yet for these datasets (their data cannot be fetched on the "
                  "machine that made this leaderboard); to reproduce where the data is, "
                  "with DATA the folder that holds it:", "", *missing, ""]
    return "\n".join(parts)




def _draw(results: ResultSet, figure: Figure, path: Path) -> None:
    {"bars": _bars, "examples": _examples, "eps": _eps}[figure.kind](results, figure, path)


@hookimpl
def harness_register_reports(register: Callable[[ReportSpec], None]) -> None:
    """Register ``paper``."""
    register(ReportSpec(
        name="paper",
        description="The paper's Tables I-III and Figs. 1-3 beside the harness's numbers",
        figures=plan_figures, draw=_draw, text=comparison,
    ))
