"""Renders result records as leaderboard markdown: one table per dataset, ranked.

Deterministic: the same records give byte-identical markdown (no clock, no machine state;
everything shown comes from the records and the metadata stored with them).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from tabulate import tabulate


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


def _status(record: dict[str, Any]) -> str:
    if record["status"] == "ok":
        return "ok"
    error = (record.get("error") or "").replace("|", "/").replace("\n", " ")
    return f"FAILED: {error[:160]}"


# (header, record key or None, formatter); a metric column is shown only when some row has it.
COLUMNS: list[tuple[str, str | None, Callable[[Any], str]]] = [
    ("model", "model", str),
    ("defense", "defense", str),
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
ALWAYS = {"model", "defense", "attack", "eps", "clean_acc", "robust_acc", "n_test"}


def _has(records: list[dict[str, Any]], key: str) -> bool:
    return any(isinstance(r.get(key), int | float) and not math.isnan(r[key]) for r in records)


def _sort_key(record: dict[str, Any]) -> tuple:
    ok = record["status"] == "ok"
    robust = record.get("robust_acc") if ok else None
    eps = record["eps"]
    return (eps is None, eps if eps is not None else 0.0, not ok,
            -(robust if robust is not None else -1.0), record["model"], record["defense"],
            record["attack"])


def dataset_table(records: list[dict[str, Any]]) -> str:
    """A markdown table of one dataset's records: by eps, each eps ranked by robust accuracy.

    Metric columns that no record has (e.g. medians in results from an older harness) are
    left out.
    """
    columns = [c for c in COLUMNS if c[1] in ALWAYS or _has(records, c[1])]
    rows = []
    rank, last_eps = 0, object()
    for r in sorted(records, key=_sort_key):
        rank = rank + 1 if r["eps"] == last_eps else 1
        last_eps = r["eps"]
        rows.append([rank, *[fmt(r.get(key)) for _, key, fmt in columns], _status(r)])
    headers = ["rank", *[h for h, _, _ in columns], "status"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def _distinct(values: Iterable[Any]) -> str:
    seen = sorted({str(v) for v in values if v not in (None, "")})
    return ", ".join(seen) if seen else "unknown"


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
        f"- commands: {_distinct(m.get('command') for m in metas)}",
    ]
    return "\n".join(lines)


def render(records: list[dict[str, Any]], title: str = "Adversarial robustness leaderboard"
           ) -> str:
    """The whole leaderboard page for ``records``."""
    by_dataset: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_dataset.setdefault(r["dataset"], []).append(r)
    parts = [f"# {title}", ""]
    if not records:
        parts += ["No results yet: run `harness bench`.", ""]
        return "\n".join(parts)
    parts += [
        "Accuracies are on the test images (n test); robust acc is the accuracy on the "
        "adversarial examples, attack success the share of correctly classified images the "
        "attack turns wrong. eps is in pixel units of [0, 1]. Throughput: training images "
        "(each original image once per epoch) and attacked test images per second, on the "
        "hardware below.",
        "",
    ]
    for dataset in sorted(by_dataset):
        parts += [f"## {dataset}", "", dataset_table(by_dataset[dataset]), ""]
    parts += ["## Provenance", "", footer(records), ""]
    return "\n".join(parts)
