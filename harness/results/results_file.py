"""The results file ``harness bench --json`` writes: every record, the runs behind them and
the per-image worst cases derived from them (read back by
:meth:`harness.contracts.records.ResultSet.from_json`)."""

from __future__ import annotations

import dataclasses
import json

from harness.contracts.outcomes import worst_cases
from harness.contracts.records import RESULTS_FORMAT, ResultSet, jsonable


def results_json(results: ResultSet) -> str:
    """The results file: ``{"format", "runs", "records", "worst_case"}``, sorted keys, NaN as
    null. ``worst_case`` (derived from the records' per-image outcomes, see
    :mod:`harness.contracts.outcomes`; ignored when read back) lists, per dataset, model,
    defense and eps, the share of images no attack broke, over the n images every attack
    saw."""
    data = {"format": RESULTS_FORMAT,
            "runs": {k: jsonable(dict(v)) for k, v in sorted(results.runs.items())},
            "records": [r.as_dict() for r in results.records],
            "worst_case": [jsonable(dataclasses.asdict(w)) for w in worst_cases(results.records)]}
    return json.dumps(data, indent=2, sort_keys=True) + "\n"
