"""The one typed result record: what every cell produced, and what ran it.

The evaluators build :class:`Result`; the store's columns, the results JSON, the checks, the
leaderboard, the figures and the terminal summary all read it. Run metadata (versions,
hardware, command) is kept once per run (``ResultSet.runs``), not copied into every record.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.contracts.record_upgrade import RESULTS_FORMAT, upgrade_file, upgrade_record

__all__ = ["FAILED", "FIELD_NAMES", "NOT_APPLICABLE", "OK", "RESULTS_FORMAT", "Result", "ResultSet",
           "jsonable"]


OK, FAILED, NOT_APPLICABLE = "ok", "failed", "n/a"


@dataclass(frozen=True, kw_only=True)
class Result:
    """One cell's record: its identity, its status, its numbers, its evidence and what ran it.

    - **Identity** (built once, from the cell or the pairing the plan left out: see
      :func:`harness.run.identity`): the keys, the dataset, model, defense, attack and eps,
      the category and defense stage, the threat model and norm, the roles, and ``adaptive``
      (how an attack on an input transformation was made adaptive: ``"bpda"``,
      ``"bpda+eot"``; None: crafted on the undefended model, or no transformation).
    - **Status**: "ok", "failed" (``error`` says why) or "n/a" (a pairing the plan left out;
      ``error`` holds the reason).
    - **Metrics**: every number the cell measured, by declared name (the evaluators' in
      :mod:`harness.contracts.metrics`, the plugins' in their specs); accuracies are
      fractions in [0, 1]. **Timings**: ``train_seconds``, ``train_images_per_s``,
      ``attack_seconds``, ``attack_images_per_s`` (incidental, of this run).
    - **Evidence**: ``examples`` (a few 8-bit images for the pictures) and ``outcomes``
      (which test images the cell saw and which it left correctly classified, see
      :mod:`harness.contracts.outcomes`).
    - **Provenance**: ``run_id``, ``created_at`` and ``config``, everything that shaped the
      numbers (the cache key's fields).

    Records of older harnesses are read through :mod:`harness.contracts.record_upgrade`.
    """

    cell_key: str
    train_key: str
    run_id: str
    dataset: str
    model: str
    defense: str
    attack: str
    eps: float | None
    category: str = "evasion"
    defense_stage: str = "training"
    threat_model: str | None = None
    norm: str | None = None
    attack_roles: tuple[str, ...] = ()
    defense_roles: tuple[str, ...] = ()
    adaptive: str | None = None
    status: str
    error: str | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    timings: Mapping[str, float] = field(default_factory=dict)
    examples: Mapping[str, Any] | None = None
    outcomes: Mapping[str, Any] | None = None
    created_at: str = ""
    config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether the cell produced numbers."""
        return self.status == OK

    def value(self, name: str) -> Any:
        """The metric or timing called ``name`` (None when the record has neither)."""
        found = self.metrics.get(name)
        return found if found is not None else self.timings.get(name)

    def _number(self, name: str) -> float | None:
        value = self.metrics.get(name)
        return None if value is None else float(value)

    @property
    def clean_acc(self) -> float | None:
        """The accuracy on the clean test images the cell saw."""
        return self._number("clean_acc")

    @property
    def robust_acc(self) -> float | None:
        """The accuracy on the adversarial examples (evasion cells)."""
        return self._number("robust_acc")

    @property
    def attack_success_rate(self) -> float | None:
        """The share of correctly classified images the attack turned wrong."""
        return self._number("attack_success_rate")

    @property
    def n_test(self) -> int | None:
        """How many test images the cell saw."""
        value = self.metrics.get("n_test")
        return None if value is None else int(value)

    @property
    def train_seconds(self) -> float | None:
        """The model's training time (None for a model the harness did not train)."""
        return self.timings.get("train_seconds")

    @property
    def attack_seconds(self) -> float | None:
        """The attack's time on the cell's images."""
        return self.timings.get("attack_seconds")

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
        """A record from :meth:`as_dict`'s output, or from a record of any older harness
        (brought to this shape by :func:`harness.contracts.record_upgrade.upgrade_record`)."""
        return cls(**upgrade_record(data, FIELD_NAMES))


#: The record's fields, as the store's columns and the results file's keys.
FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(Result))


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
        """Read a results file of this format or any older one (see
        :mod:`harness.contracts.record_upgrade`). Raises ValueError with what is wrong."""
        records, runs = upgrade_file(text)
        return cls([Result.from_dict(r) for r in records], runs)
