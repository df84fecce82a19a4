"""Renders result records as leaderboard markdown: per dataset, one table per attack category.

Evasion tables are ranked by robust accuracy within each eps; poisoning, inference and
extraction tables carry the metrics of their threat; pairings that cannot work are listed
under "Not applicable" with the reason.

Deterministic: the same records give byte-identical markdown (no clock, no machine state;
everything shown comes from the records and the metadata stored with them).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from tabulate import tabulate

from harness.checks import LEGEND, flags_by_cell
from harness.figures import Figure, markdown, plan_figures


def _pct(value: float | None) -> str:
    return "" if value is None or math.isnan(value) else f"{100 * value:.2f}%"


def _num(value: float | None, digits: int = 4) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _rate(value: float | None) -> str:
    if value is None or math.isnan(value):
        return ""
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _eps(value: float | None) -> str:
    return "unbounded" if value is None else f"{value:g}"


def _value(record: dict[str, Any], key: str) -> Any:
    """A column's value: a record field, else one of the record's metrics."""
    value = record.get(key)
    if value is None:
        value = (record.get("metrics") or {}).get(key)
    return value


def _category(record: dict[str, Any]) -> str:
    return record.get("category") or "evasion"


def _defense(record: dict[str, Any]) -> str:
    stage = record.get("defense_stage") or "training"
    return record["defense"] + ("†" if stage == "input-transformation" else "")


def _status(record: dict[str, Any]) -> str:
    if record["status"] == "ok":
        return "ok"
    error = (record.get("error") or "").replace("|", "/").replace("\n", " ")
    return f"FAILED: {error[:160]}"


# (header, record key or None, formatter); a metric column is shown only when some row has it.
COLUMNS: list[tuple[str, str | None, Callable[[Any], str]]] = [
    ("model", "model", str),
    ("defense", "defense_label", str),
    ("attack", "attack", str),
    ("eps", "eps", _eps),
    ("clean acc", "clean_acc", _pct),
    ("robust acc", "robust_acc", _pct),
    ("attack success", "attack_success_rate", _pct),
    ("mean Linf", "mean_linf", _num),
    ("mean L2", "mean_l2", _num),
    ("median L0 (successful)", "median_l0", lambda v: _num(v, 1)),
    ("median L2 (successful)", "median_l2", _num),
    ("median Linf (successful)", "median_linf", _num),
    ("queries/img", "queries_per_image", lambda v: _num(v, 1)),
    ("n test", "n_test", lambda v: "" if v is None else str(v)),
    ("train img/s", "train_images_per_s", _rate),
    ("attack img/s", "attack_images_per_s", _rate),
]
ALWAYS = {"model", "defense_label", "attack", "eps", "clean_acc", "robust_acc", "n_test"}

# Metrics of the other categories: key -> (header, formatter). Keys not listed are shown
# under their own name.
METRICS: dict[str, tuple[str, Callable[[Any], str]]] = {
    "poison_rate": ("poison rate", _pct),
    "n_poison": ("poisons", lambda v: _num(v, 0)),
    "clean_model_acc": ("clean acc, unpoisoned", _pct),
    "clean_acc": ("clean acc", _pct),
    "attack_success_rate": ("attack success", _pct),
    "precision": ("detection precision", _pct),
    "recall": ("detection recall", _pct),
    "f1": ("detection F1", lambda v: _num(v, 3)),
    "flagged": ("flagged", lambda v: _num(v, 0)),
    "clean_acc_after": ("clean acc after removal", _pct),
    "attack_success_after": ("attack success after removal", _pct),
    "mi_accuracy": ("membership accuracy", _pct),
    "mi_auc": ("membership AUC", lambda v: _num(v, 3)),
    "mi_advantage": ("membership advantage", lambda v: _num(v, 3)),
    "n_members": ("members", lambda v: _num(v, 0)),
    "inversion_confidence": ("inversion confidence", _pct),
    "inversion_accuracy": ("classes reached", _pct),
    "inversion_distance": ("inversion L2 to class mean", lambda v: _num(v, 3)),
    "inversion_baseline_distance": ("overall mean's L2 to class mean", lambda v: _num(v, 3)),
    "inversion_start_distance": ("start image's L2 to class mean", lambda v: _num(v, 3)),
    "reconstruction_l2": ("reconstruction L2", lambda v: _num(v, 3)),
    "baseline_l2": ("baseline L2", lambda v: _num(v, 3)),
    "label_correct": ("label recovered", _pct),
    "victim_acc": ("victim acc", _pct),
    "thief_acc": ("stolen model acc", _pct),
    "agreement": ("agreement", _pct),
    "queries": ("queries", lambda v: _num(v, 0)),
    "n_test": ("n test", lambda v: "" if v is None else str(int(v))),
    "attack_seconds": ("seconds", lambda v: _num(v, 1)),
}
CATEGORY_COLUMNS: dict[str, tuple[str, ...]] = {
    "poisoning": ("poison_rate", "n_poison", "clean_model_acc", "clean_acc",
                  "attack_success_rate", "flagged", "precision", "recall", "f1", "clean_acc_after",
                  "attack_success_after", "n_test", "attack_seconds"),
    "inference": ("clean_acc",),
    "extraction": ("clean_acc",),
}
CATEGORY_NOTES: dict[str, str] = {
    "poisoning": (
        "The victim is trained on the poisoned training set. Clean acc is its accuracy on the "
        "clean test set (unpoisoned: the same model trained on clean data); attack success "
        "is the share of the attack's inputs (triggered test images or chosen targets; n "
        "test of them) classified as the attacker wants. A detector's flags are scored "
        "against the true poisons; the victim is then retrained without the flagged samples."),
    "inference": (
        "Inference attacks against the trained victim (clean acc is the victim's). "
        "Membership: attack accuracy on a balanced held-out set of members and non-members "
        "(50% is chance). Inversion: the victim's confidence in the reconstructed class and "
        "the L2 distance to the class mean, beside the same distance from the overall mean."),
    "extraction": (
        "The attacker queries the victim on unlabelled images and trains a copy of its "
        "architecture; stolen model acc and agreement with the victim are measured on test "
        "images the attacker never queried."),
}




def _sort_key(record: dict[str, Any]) -> tuple:
    ok = record["status"] == "ok"
    robust = record.get("robust_acc") if ok else None
    eps = record["eps"]
    return (eps is None, eps if eps is not None else 0.0, not ok,
            -(robust if robust is not None else -1.0), record["model"], record["defense"],
            record["attack"])


def dataset_table(records: list[dict[str, Any]]) -> str:
    """A markdown table of one dataset's evasion records: by eps, each ranked by robust
    accuracy.

    Metric columns that no record has (e.g. medians in results from an older harness) are
    left out.
    """
    flags = flags_by_cell(records)
    records = [{**r, "defense_label": _defense(r)} for r in records]
    columns = [c for c in COLUMNS if c[1] in ALWAYS or _has_value(records, c[1])]
    rows = []
    rank, last_eps = 0, object()
    for r in sorted(records, key=_sort_key):
        rank = rank + 1 if r["eps"] == last_eps else 1
        last_eps = r["eps"]
        check = [flags.get(r["cell_key"], "")] if flags else []
        rows.append([rank, *[fmt(r.get(key)) for _, key, fmt in columns], *check, _status(r)])
    headers = ["rank", *[h for h, _, _ in columns], *(["checks"] if flags else []), "status"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def checks_legend(records: list[dict[str, Any]]) -> str:
    """What each flag raised in ``records`` means ('' when none was raised)."""
    codes = sorted(set("".join(flags_by_cell(records).values())))
    return "\n".join(f"- **{c}**: {LEGEND[c]}" for c in codes)


def _has_value(records: list[dict[str, Any]], key: str) -> bool:
    return any(isinstance(_value(r, key), int | float) and not math.isnan(_value(r, key))
               for r in records)


def category_table(records: list[dict[str, Any]], category: str) -> str:
    """A markdown table of one dataset's records of a non-evasion ``category``."""
    keys = list(CATEGORY_COLUMNS.get(category, ("clean_acc",)))
    present = {k for r in records for k in (r.get("metrics") or {})}
    extra = sorted((present & set(METRICS)) - set(keys) - {"n_test", "attack_seconds"},
                   key=list(METRICS).index)
    keys = [k for k in keys + extra if _has_value(records, k)]
    if category != "poisoning":
        keys += [k for k in ("n_test", "attack_seconds") if _has_value(records, k)]
    details = any(set(r.get("metrics") or {}) - set(METRICS) for r in records)
    rows = []
    for r in sorted(records, key=lambda r: (r["model"], r["attack"], r["defense"] != "none",
                                            r["defense"])):
        cells = [r["model"], r["defense"], r["attack"]]
        cells += [METRICS[k][1](_value(r, k)) for k in keys]
        if details:
            cells.append(_details(r))
        rows.append([*cells, _status(r)])
    headers = ["model", "defense", "attack", *[METRICS[k][0] for k in keys],
               *(["details"] if details else []), "status"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def _details(record: dict[str, Any]) -> str:
    """The record's metrics the leaderboard has no column for, as ``name=value``."""
    metrics = record.get("metrics") or {}
    return "; ".join(f"{k}={metrics[k]:.4g}" if isinstance(metrics[k], float) else
                     f"{k}={metrics[k]}" for k in sorted(metrics) if k not in METRICS)


def not_applicable_table(records: list[dict[str, Any]], all_records: list[dict[str, Any]]
                         ) -> str:
    """The pairings left out, grouped by model, defense and reason."""
    per_category: dict[str, set[str]] = {}
    for r in all_records:
        per_category.setdefault(_category(r), set()).add(r["attack"])
    groups: dict[tuple[str, str, str, str], list[str]] = {}
    for r in records:
        key = (r["model"], r["defense"], _category(r), r.get("error") or "")
        groups.setdefault(key, []).append(r["attack"])
    rows = []
    for (model, defense, category, reason), attacks in sorted(groups.items()):
        attacks = sorted(set(attacks))
        everyone = per_category.get(category, set())
        what = (f"all {len(attacks)} {category} attacks" if len(attacks) > 1
                and set(attacks) == everyone else ", ".join(attacks))
        rows.append([model, defense, what, reason.replace("|", "/")])
    return tabulate(rows, headers=["model", "defense", "attacks", "why not"],
                    tablefmt="github", disable_numparse=True)


CATEGORY_TITLES = {"evasion": "Evasion", "poisoning": "Poisoning", "inference": "Inference",
                   "extraction": "Extraction"}
TRANSFORMATION_NOTE = ("† input transformation: evaluated against non-adaptive attacks, "
                       "crafted on the undefended model, then classified through the "
                       "transformation.")


def dataset_section(records: list[dict[str, Any]], figures: list[Figure] = ()) -> list[str]:
    """The markdown parts of one dataset: a table per category (the evasion table followed
    by ``figures``), then the n/a pairings."""
    parts: list[str] = []
    applicable = [r for r in records if r["status"] != "n/a"]
    skipped = [r for r in records if r["status"] == "n/a"]
    for category in CATEGORY_TITLES:
        rows = [r for r in applicable if _category(r) == category]
        if not rows:
            continue
        parts += [f"### {CATEGORY_TITLES[category]}", ""]
        if category == "evasion":
            parts += [dataset_table(rows), ""]
            legend = checks_legend(rows)
            if legend:
                parts += ["Checks that failed (flags in the checks column):", "", legend, ""]
            for figure in figures:
                parts += markdown(figure)
            if any(r.get("defense_stage") == "input-transformation" for r in rows):
                parts += [TRANSFORMATION_NOTE, ""]
        else:
            parts += [CATEGORY_NOTES[category], "", category_table(rows, category), ""]
    if skipped:
        parts += ["### Not applicable", "", "Pairings the plan left out, and why.", "",
                  not_applicable_table(skipped, records), ""]
    return parts


def _distinct(values: Iterable[Any]) -> str:
    seen = sorted({str(v) for v in values if v not in (None, "")})
    return ", ".join(seen) if seen else "unknown"


def _wall_time(records: list[dict[str, Any]]) -> str:
    """Training time of the distinct models plus the time of every cell, as measured."""
    trained: dict[str, float] = {}
    for r in records:
        if r.get("train_key") and isinstance(r.get("train_seconds"), int | float):
            trained[r["train_key"]] = r["train_seconds"]
    cells = sum(r["attack_seconds"] for r in records
                if isinstance(r.get("attack_seconds"), int | float)
                and not math.isnan(r["attack_seconds"]))
    train = sum(trained.values())
    return (f"{(train + cells) / 60:.1f} min of measured compute: training {train / 60:.1f} "
            f"min ({len(trained)} models), attacks and defenses {cells / 60:.1f} min "
            f"({sum(1 for r in records if r.get('status') == 'ok')} cells)")


def footer(records: list[dict[str, Any]]) -> str:
    """Versions, hardware and provenance of the runs behind ``records``."""
    metas = [r.get("metadata") or {} for r in records]
    libs: dict[str, set[str]] = {}
    for m in metas:
        for name, ver in (m.get("libraries") or {}).items():
            libs.setdefault(name, set()).add(ver)
    plugins: dict[str, set[str]] = {}
    for m in metas:
        for name, ver in (m.get("plugins") or {}).items():
            plugins.setdefault(name, set()).add(ver)
    stamps = [m["timestamp"] for m in metas if m.get("timestamp")]
    lines = [
        f"- harness: {_distinct(m.get('harness') for m in metas)}; "
        f"git commit: {_distinct(m.get('git_commit') for m in metas)}",
        f"- hardware: {_distinct(m.get('device_name') for m in metas)} "
        f"(device {_distinct(m.get('device') for m in metas)})",
        f"- python: {_distinct(m.get('python') for m in metas)}; "
        + "; ".join(f"{n}: {', '.join(sorted(v))}" for n, v in sorted(libs.items())),
        "- plugins: " + "; ".join(f"{n}: {', '.join(sorted(v))}"
                                  for n, v in sorted(plugins.items())),
        f"- seed: {_distinct(m.get('seed') for m in metas)}; runs from "
        f"{min(stamps, default='?')} to {max(stamps, default='?')} (UTC)",
        f"- wall time: {_wall_time(records)}",
        f"- commands: {_distinct(m.get('command') for m in metas)}",
    ]
    return "\n".join(lines)


def render(records: list[dict[str, Any]], title: str = "Adversarial robustness leaderboard",
           figures_stem: str | None = None) -> str:
    """The whole leaderboard page for ``records``.

    With ``figures_stem`` the page embeds the figures :func:`harness.figures.draw_all` draws
    for that stem (the page's file name without ``.md``), beside the page.
    """
    by_dataset: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_dataset.setdefault(r["dataset"], []).append(r)
    parts = [f"# {title}", ""]
    if not records:
        parts += ["No results yet: run `harness bench`.", ""]
        return "\n".join(parts)
    figures = plan_figures(records, figures_stem) if figures_stem else {}
    parts += [
        "Accuracies are on the test images (n test); robust acc is the accuracy on the "
        "adversarial examples, attack success the share of correctly classified images the "
        "attack turns wrong. eps is in pixel units of [0, 1]. Throughput: training images "
        "(each original image once per epoch) and attacked test images per second, on the "
        "hardware below.",
        "",
    ]
    for figure in figures.get(None, []):
        parts += markdown(figure)
    for dataset in sorted(by_dataset):
        parts += [f"## {dataset}", "",
                  *dataset_section(by_dataset[dataset], figures.get(dataset, []))]
    parts += ["## Provenance", "", footer(records), ""]
    return "\n".join(parts)
