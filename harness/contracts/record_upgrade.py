"""The one place older records are brought to the current shape: results files and database
rows written by any earlier harness.

Earlier shapes, all read here and nowhere else:

- 0.1's results file: a JSON list of records, each carrying its run's ``metadata``;
- format 2 (``harness-results/2``) and the database columns of 0.1 and 0.2 before metrics
  were declared: the evasion numbers as top-level fields (``clean_acc``, ``robust_acc``, ...,
  ``n_test``) and the timings beside them (``train_seconds``, ...);
- records older still, without ``category`` or ``defense_stage`` (evasion cells of a
  training defense, the only kinds there were).

Pure functions on plain mappings (no torch, no records imported), so the store and the
results-file reader share them and :class:`harness.contracts.records.Result` is built from
their output only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

RESULTS_FORMAT = "harness-results/3"
#: The results-file formats this harness reads (0.1's plain list has no format field).
READABLE_FORMATS = ("harness-results/2", RESULTS_FORMAT)

#: Numbers that were fields of the record before every number became a declared metric.
LEGACY_METRIC_FIELDS: tuple[str, ...] = (
    "clean_acc", "robust_acc", "attack_success_rate", "mean_linf", "mean_l2", "median_l0",
    "median_l2", "median_linf", "queries_per_image", "n_test")
#: Timings that were fields of the record before they were kept together.
LEGACY_TIMING_FIELDS: tuple[str, ...] = (
    "train_seconds", "train_images_per_s", "attack_seconds", "attack_images_per_s")
LEGACY_FIELDS = (*LEGACY_METRIC_FIELDS, *LEGACY_TIMING_FIELDS)

_DEFAULTS: dict[str, Any] = {"category": "evasion", "defense_stage": "training"}


def upgrade_record(data: Mapping[str, Any], fields: frozenset[str]) -> dict[str, Any]:
    """``data``, a record of any shape this harness ever wrote, as the keyword arguments of
    the current record (only names in ``fields``; unknown keys such as 0.1's ``metadata`` are
    dropped, missing ones left to their defaults). The legacy number fields move into
    ``metrics`` and ``timings`` (a number the record's own mapping already holds wins)."""
    values = {k: v for k, v in data.items() if k in fields}
    metrics = dict(_mapping(data.get("metrics")))
    timings = dict(_mapping(data.get("timings")))
    for name in LEGACY_METRIC_FIELDS:
        if data.get(name) is not None:
            metrics.setdefault(name, data[name])
    for name in LEGACY_TIMING_FIELDS:
        if data.get(name) is not None:
            timings.setdefault(name, data[name])
    values["metrics"], values["timings"] = metrics, timings
    for name in ("attack_roles", "defense_roles"):
        values[name] = tuple(values.get(name) or ())
    values["config"] = dict(_mapping(values.get("config")))
    for name, default in _DEFAULTS.items():
        values[name] = values.get(name) or default
    return values


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def upgrade_file(text: str) -> tuple[list[Mapping[str, Any]], dict[str, Mapping[str, Any]]]:
    """The records (as read, not yet upgraded) and the runs of a results file of any format
    this harness wrote. Raises ValueError saying what is wrong."""
    data = json.loads(text)
    if isinstance(data, list):          # 0.1: each record carries its run's metadata
        runs: dict[str, Mapping[str, Any]] = {}
        for item in data:
            if not isinstance(item, dict):
                raise ValueError("a record is not a JSON object")
            runs.setdefault(item.get("run_id", ""), item.get("metadata") or {})
        return list(data), runs
    if not isinstance(data, dict) or data.get("format") not in READABLE_FORMATS:
        raise ValueError(f"not a harness results file (expected \"format\": "
                         f"\"{RESULTS_FORMAT}\", or an older one: "
                         f"{', '.join(READABLE_FORMATS[:-1])})")
    records = data.get("records", [])
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ValueError("\"records\" is not a list of JSON objects")
    return records, dict(data.get("runs", {}))
