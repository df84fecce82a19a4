"""The leaderboard's pictures, drawn with matplotlib from the records alone.

- ``<stem>-bars.png``: accuracy before attack, after FGSM, and after FGSM on the
  adversarially trained model (and PGD beside it), one group per dataset (the paper's Fig. 3);
- ``<stem>-<dataset>-examples.png``: test images before and after each attack with the true
  label and both predictions, and the perturbation magnified (the paper's Figs. 1 and 2);
- ``<stem>-<dataset>-eps.png``: robust accuracy against eps, one line per defense.

Which figures a page gets, their file names and captions depend only on the records, so
the markdown that embeds them is deterministic; the PNGs are drawn beside the page.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.adversarial import decode

BASELINE, ADVTRAIN = "none", "advtrain"
EXAMPLE_ATTACKS = 6


@dataclass(frozen=True)
class Figure:
    """One picture of a page: file name, caption, and what to draw."""

    filename: str
    caption: str
    kind: str
    dataset: str | None = None
    model: str | None = None
    eps: float | None = None


def _ok_evasion(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("status") == "ok"
            and (r.get("category") or "evasion") == "evasion" and r.get("robust_acc") is not None]


def _main_model(rows: list[dict[str, Any]]) -> str | None:
    models = sorted({r["model"] for r in rows})
    return "paper-cnn" if "paper-cnn" in models else (models[0] if models else None)


def _fgsm_eps(rows: list[dict[str, Any]], model: str) -> float | None:
    """The eps at which FGSM was run on both the undefended and the advtrain model."""
    found = {(r["defense"], r["eps"]) for r in rows if r["model"] == model
             and r["attack"] == "fgsm"}
    both = sorted(e for d, e in found if d == BASELINE and (ADVTRAIN, e) in found)
    if not both:
        return None
    return 0.1 if 0.1 in both else both[0]


def _find(rows, **want) -> dict[str, Any] | None:
    for r in rows:
        if all(r.get(k) == v for k, v in want.items()):
            return r
    return None


def _bar_sets(rows: list[dict[str, Any]]) -> list[tuple[str, str, float]]:
    """(dataset, main model, FGSM eps) for every dataset that has the bars' cells."""
    out = []
    for dataset in sorted({r["dataset"] for r in rows}):
        ds_rows = [r for r in rows if r["dataset"] == dataset]
        model = _main_model(ds_rows)
        eps = _fgsm_eps(ds_rows, model)
        if eps is not None:
            out.append((dataset, model, eps))
    return out


def plan_figures(records: list[dict[str, Any]], stem: str) -> dict[str | None, list[Figure]]:
    """The figures of a page, by dataset (None: the page-wide bar chart)."""
    rows = _ok_evasion(records)
    out: dict[str | None, list[Figure]] = {}
    bar_sets = _bar_sets(rows)
    for dataset in sorted({r["dataset"] for r in rows}):
        ds_rows = [r for r in rows if r["dataset"] == dataset]
        model = _main_model(ds_rows)
        eps = _fgsm_eps(ds_rows, model)
        figures = []
        if eps is not None and any(r.get("examples") and r["model"] == model
                                   and r["defense"] == BASELINE and r["eps"] == eps
                                   for r in ds_rows):
            figures.append(Figure(
                f"{stem}-{dataset}-examples.png",
                f"{dataset}, {model} without defense: test images (top), their adversarial "
                f"versions at eps {eps:g} (middle) and the perturbation, magnified (bottom), "
                "for each attack; titles give the true label and the predictions",
                "examples", dataset, model, eps))
        if any(len({r["eps"] for r in ds_rows if r["model"] == m and r["attack"] == a
                    and r["eps"] is not None}) >= 2
               for m in {r["model"] for r in ds_rows} for a in ("fgsm", "pgd")):
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


def markdown(figure: Figure) -> list[str]:
    """The markdown lines that embed ``figure``."""
    return [f"![{figure.caption}]({figure.filename})", "", f"*{figure.caption}.*", ""]


def draw_all(records: list[dict[str, Any]], stem: str, folder: Path) -> list[Path]:
    """Draw every figure of the page ``stem`` into ``folder``; return the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    written = []
    for figures in plan_figures(records, stem).values():
        for figure in figures:
            path = Path(folder) / figure.filename
            {"bars": _bars, "examples": _examples, "eps": _eps}[figure.kind](
                records, figure, path)
            written.append(path)
    return written


def _save(fig, path: Path) -> None:
    fig.savefig(path, dpi=110, bbox_inches="tight", metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)


def _bars(records, figure: Figure, path: Path) -> None:
    import matplotlib.pyplot as plt

    rows = _ok_evasion(records)
    groups = []
    for dataset, model, eps in _bar_sets(rows):
        ds_rows = [r for r in rows if r["dataset"] == dataset]
        base = _find(ds_rows, model=model, defense=BASELINE, attack="fgsm", eps=eps)
        adv = _find(ds_rows, model=model, defense=ADVTRAIN, attack="fgsm", eps=eps)
        pgd = _find(ds_rows, model=model, defense=ADVTRAIN, attack="pgd", eps=eps)
        groups.append((f"{dataset}\n(eps {eps:g})", [
            base["clean_acc"], base["robust_acc"], adv["robust_acc"],
            pgd["robust_acc"] if pgd else np.nan]))
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


def _examples(records, figure: Figure, path: Path) -> None:
    import matplotlib.pyplot as plt

    rows = [r for r in _ok_evasion(records) if r["dataset"] == figure.dataset
            and r["model"] == figure.model and r["defense"] == BASELINE
            and r["eps"] == figure.eps and r.get("examples")]
    order = {"fgsm": 0, "pgd": 1, "autoattack": 2, "square": 3, "art-fgsm": 9}
    rows = sorted(rows, key=lambda r: (order.get(r["attack"], 2), r["attack"]))[:EXAMPLE_ATTACKS]
    n = max(r["examples"]["shape"][0] for r in rows)
    fig, axes = plt.subplots(3 * len(rows), n, figsize=(1.45 * n, 1.55 * 3 * len(rows)),
                             squeeze=False, layout="constrained")
    for a, r in enumerate(rows):
        ex = r["examples"]
        x, adv = decode(ex, "x"), decode(ex, "x_adv")
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
            top.set_title(f"true {y}, pred {p}", fontsize=7,
                          color="black" if p == y else "red")
            mid.set_title(f"pred {q}", fontsize=7, color="black" if q == y else "red")
            low.set_title(f"x{0.5 / scale:.0f}" if scale < 0.5 else "x1", fontsize=6)
        axes[3 * a, 0].set_ylabel(r["attack"], fontsize=8, rotation=0, ha="right", va="center")
    fig.suptitle(f"{figure.dataset}: {figure.model}, no defense, eps {figure.eps:g} "
                 "(red: misclassified)", fontsize=9)
    _save(fig, path)


def _show(ax, image: np.ndarray) -> None:
    image = np.clip(image, 0, 1)
    if image.shape[0] == 1:
        ax.imshow(image[0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(np.transpose(image, (1, 2, 0)), interpolation="nearest")


def _eps(records, figure: Figure, path: Path) -> None:
    import matplotlib.pyplot as plt

    rows = [r for r in _ok_evasion(records) if r["dataset"] == figure.dataset
            and r["eps"] is not None and r["attack"] in ("fgsm", "pgd")]
    models = sorted({r["model"] for r in rows})
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.4), squeeze=False,
                             layout="constrained")
    defenses = sorted({r["defense"] for r in rows}, key=lambda d: (d != BASELINE, d))
    colors = {d: plt.get_cmap("tab10")(i % 10) for i, d in enumerate(defenses)}
    classes = next(((r.get("metrics") or {}).get("num_classes") for r in rows
                    if (r.get("metrics") or {}).get("num_classes")), None)
    for ax, model in zip(axes[0], models, strict=True):
        for defense in defenses:
            for attack, style in (("pgd", "-"), ("fgsm", "--")):
                series = sorted((r["eps"], r["robust_acc"]) for r in rows if r["model"] == model
                                and r["defense"] == defense and r["attack"] == attack)
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
