"""Renders result records as leaderboard markdown: one table per dataset, ranked.

Deterministic: the same records give byte-identical markdown (no clock, no machine state;
everything shown comes from the records and the metadata stored with them).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from tabulate import tabulate

HEADERS = ["rank", "model", "defense", "attack", "eps", "clean acc", "robust acc",
           "attack success", "mean Linf", "mean L2", "n test", "train img/s", "attack img/s",
           "status"]


def _pct(value: float | None) -> str:
    return "" if value is None or math.isnan(value) else f"{100 * value:.2f}%"


def _num(value: float | None, digits: int = 4) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _rate(value: float | None) -> str:
    if value is None or math.isnan(value):
        return ""
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _status(record: dict[str, Any]) -> str:
    if record["status"] == "ok":
        return "ok"
    error = (record.get("error") or "").replace("|", "/").replace("\n", " ")
    return f"FAILED: {error[:160]}"


def _sort_key(record: dict[str, Any]) -> tuple:
    ok = record["status"] == "ok"
    robust = record.get("robust_acc") if ok else None
    return (record["eps"], not ok, -(robust if robust is not None else -1.0), record["model"],
            record["defense"], record["attack"])


def dataset_table(records: list[dict[str, Any]]) -> str:
    """A markdown table of one dataset's records: by eps, each eps ranked by robust accuracy."""
    rows = []
    rank, last_eps = 0, None
    for r in sorted(records, key=_sort_key):
        rank = rank + 1 if r["eps"] == last_eps else 1
        last_eps = r["eps"]
        rows.append([rank, r["model"], r["defense"], r["attack"], f"{r['eps']:g}",
                     _pct(r.get("clean_acc")), _pct(r.get("robust_acc")),
                     _pct(r.get("attack_success_rate")), _num(r.get("mean_linf")),
                     _num(r.get("mean_l2")), r.get("n_test") or "",
                     _rate(r.get("train_images_per_s")), _rate(r.get("attack_images_per_s")),
                     _status(r)])
    return tabulate(rows, headers=HEADERS, tablefmt="github", disable_numparse=True)


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
