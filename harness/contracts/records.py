"""The one typed result record: what every cell produced, and what ran it.

The evaluators build :class:`Result`; the store's columns, the results JSON, the checks, the
leaderboard, the figures and the terminal summary all read it. Run metadata (versions,
hardware, command) is kept once per run (``ResultSet.runs``), not copied into every record.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

RESULTS_FORMAT = "harness-results/2"

OK, FAILED, NOT_APPLICABLE = "ok", "failed", "n/a"


@dataclass(frozen=True, kw_only=True)
class Result:
    """One cell's record. Accuracies are fractions in [0, 1]; NaN-free (None when missing).

    ``status`` is "ok", "failed" (``error`` says why) or "n/a" (a pairing the plan left out;
    ``error`` holds the reason). ``metrics`` holds the category's and the plugin's other
    numbers by declared name; ``examples`` a few 8-bit images for the pictures; ``outcomes``
    which test images the cell saw and which it left correctly classified (see
    :mod:`harness.contracts.outcomes`), for the per-image worst case over attacks; ``adaptive``
    how an
    attack on an input transformation was made adaptive (``"bpda"``, ``"bpda+eot"``; None:
    crafted on the undefended model, or no transformation); ``config`` everything that shaped
    the numbers (the cache key's fields).
    """

    cell_key: str
    train_key: str
    run_id: str
    dataset: str
    model: str
    defense: str
    attack: str
    eps: float | None
    status: str
    error: str | None = None
    category: str = "evasion"
    defense_stage: str = "training"
    threat_model: str | None = None
    norm: str | None = None
    attack_roles: tuple[str, ...] = ()
    defense_roles: tuple[str, ...] = ()
    adaptive: str | None = None
    clean_acc: float | None = None
    robust_acc: float | None = None
    attack_success_rate: float | None = None
    mean_linf: float | None = None
    mean_l2: float | None = None
    median_l0: float | None = None
    median_l2: float | None = None
    median_linf: float | None = None
    queries_per_image: float | None = None
    n_test: int | None = None
    train_seconds: float | None = None
    train_images_per_s: float | None = None
    attack_seconds: float | None = None
    attack_images_per_s: float | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    examples: Mapping[str, Any] | None = None
    outcomes: Mapping[str, Any] | None = None
    created_at: str = ""
    config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether the cell produced numbers."""
        return self.status == OK

    def value(self, name: str) -> Any:
        """A field's value, else the metric called ``name`` (None when neither has it)."""
        if name in _FIELD_NAMES:
            value = getattr(self, name)
            if value is not None:
                return value
        return self.metrics.get(name)

    def has_baseline_defense(self) -> bool:
        """Whether the cell's defense is the undefended reference."""
        return "baseline" in self.defense_roles

    def has_role(self, role: str) -> bool:
        """Whether the cell's attack declared ``role``."""
        return role in self.attack_roles

    def replace(self, **changes: Any) -> Result:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: NaN becomes None, tuples become lists."""
        return {f.name: jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Result:
        """A record from :meth:`as_dict`'s output (or an older record: unknown keys such as
        ``metadata`` are ignored, missing ones take their defaults)."""
        values = {k: v for k, v in data.items() if k in _FIELD_NAMES}
        for name in ("attack_roles", "defense_roles"):
            values[name] = tuple(values.get(name) or ())
        values["metrics"] = dict(values.get("metrics") or {})
        values["config"] = dict(values.get("config") or {})
        values["category"] = values.get("category") or "evasion"
        values["defense_stage"] = values.get("defense_stage") or "training"
        return cls(**values)


_FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(Result))


def jsonable(value: Any) -> Any:
    """``value`` ready for JSON: NaN as None, tuples as lists, mappings as dicts."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value


@dataclass
class ResultSet:
    """Records with the metadata of the runs that produced them."""

    records: list[Result] = field(default_factory=list)
    runs: dict[str, Mapping[str, Any]] = field(default_factory=dict)

    def metadata(self, record: Result) -> Mapping[str, Any]:
        """The metadata of the run that produced ``record`` ({} when unknown)."""
        return self.runs.get(record.run_id, {})

    def only(self, records: Iterable[Result]) -> ResultSet:
        """The same runs with just ``records``."""
        kept = list(records)
        ids = {r.run_id for r in kept}
        return ResultSet(kept, {k: v for k, v in self.runs.items() if k in ids})

    @classmethod
    def from_json(cls, text: str) -> ResultSet:
        """Read a results file: this format, or an older list of records each carrying its
        run's ``metadata``. Raises ValueError with what is wrong."""
        data = json.loads(text)
        if isinstance(data, list):
            runs: dict[str, Mapping[str, Any]] = {}
            records = []
            for item in data:
                if not isinstance(item, dict):
                    raise ValueError("a record is not a JSON object")
                runs.setdefault(item.get("run_id", ""), item.get("metadata") or {})
                records.append(Result.from_dict(item))
            return cls(records, runs)
        if not isinstance(data, dict) or data.get("format") != RESULTS_FORMAT:
            raise ValueError(f"not a harness results file (expected \"format\": "
                             f"\"{RESULTS_FORMAT}\")")
        return cls([Result.from_dict(r) for r in data.get("records", [])],
                   dict(data.get("runs", {})))
