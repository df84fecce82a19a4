"""Records for tests of renderers and checks (the harness's and a report plugin author's):
:func:`make_record` takes the evaluators' numbers by name beside the record's fields."""

from __future__ import annotations

from typing import Any

from harness.contracts.metrics import HARNESS_METRICS, TIMING_METRICS
from harness.contracts.records import FIELD_NAMES, Result

_TIMINGS = frozenset(m.name for m in TIMING_METRICS)


def make_record(**fields: Any) -> Result:
    """A :class:`Result` from keyword fields, where any harness metric (``clean_acc=0.9``,
    ``robust_acc=...``, ``n_test=...``) goes into ``metrics`` and any timing
    (``train_seconds=...``) into ``timings``, beside those given as ``metrics=``/``timings=``.
    Unknown names are refused (a TypeError naming them)."""
    metrics = dict(fields.pop("metrics", None) or {})
    timings = dict(fields.pop("timings", None) or {})
    unknown = sorted(k for k in fields if k not in FIELD_NAMES and k not in HARNESS_METRICS)
    if unknown:
        raise TypeError(f"make_record: unknown fields {unknown}")
    for name in [k for k in fields if k not in FIELD_NAMES]:
        value = fields.pop(name)
        if value is not None:
            (timings if name in _TIMINGS else metrics)[name] = value
    return Result(**fields, metrics=metrics, timings=timings)
