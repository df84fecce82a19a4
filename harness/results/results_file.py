"""The results file ``harness bench --json`` writes: every record, the runs behind them and
what is derived from them: each record's 95% intervals and the per-image worst cases (read
back by :meth:`harness.contracts.records.ResultSet.from_json`, which ignores the derived
parts)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from harness.contracts.intervals import wilson
from harness.contracts.metrics import HARNESS_METRICS
from harness.contracts.outcomes import worst_cases
from harness.contracts.records import RESULTS_FORMAT, Result, ResultSet, jsonable


def intervals(record: Result) -> dict[str, list[float]]:
    """The 95% Wilson interval of each accuracy-like number of ``record`` (the harness's
    percent metrics) on its ``n_test`` images, ``{name: [low, high]}`` ({} without n)."""
    n = record.n_test
    if not n:
        return {}
    out = {}
    for name, value in sorted(record.metrics.items()):
        spec = HARNESS_METRICS.get(name)
        if spec is not None and spec.format == "percent" and isinstance(value, int | float) \
                and value == value:
            out[name] = list(wilson(float(value), n))
    return out


def _record(record: Result) -> dict[str, Any]:
    data = record.as_dict()
    data["intervals"] = intervals(record)
    return data


def results_json(results: ResultSet) -> str:
    """The results file: ``{"format", "runs", "records", "worst_case"}``, sorted keys, NaN as
    null. Each record carries its ``intervals`` (derived, see :func:`intervals`);
    ``worst_case`` (derived from the records' per-image outcomes, see
    :mod:`harness.contracts.outcomes`) lists, per dataset, model, defense and eps, the share
    of images no attack broke, over the n images every attack saw, with its 95% interval
    (over every attack of the file: the pages' worst case also leaves out attacks the checks
    found too weak to measure robustness, flag W)."""
    worst = []
    for w in worst_cases(results.records):
        entry = jsonable(dataclasses.asdict(w))
        entry["robust_acc_interval"] = list(wilson(w.robust_acc, w.n)) if w.n else None
        worst.append(jsonable(entry))
    data = {"format": RESULTS_FORMAT,
            "runs": {k: jsonable(dict(v)) for k, v in sorted(results.runs.items())},
            "records": [_record(r) for r in results.records],
            "worst_case": worst}
    return json.dumps(data, indent=2, sort_keys=True) + "\n"
