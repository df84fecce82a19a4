"""What every evaluator shares: its environment and the builder of the typed record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import torch

from harness.contracts.provenance import distribution_of
from harness.contracts.records import FAILED, OK, Result
from harness.results.metadata import now

if TYPE_CHECKING:
    from harness.contracts.data import ImageData
    from harness.planning.plan import Cell
    from harness.run.adversarial import AdversarialStore
    from harness.run.provider import ModelProvider, TrainedModel


@dataclass
class EvalEnv:
    """The run-wide things an evaluator works with."""

    provider: ModelProvider
    adversarial: AdversarialStore
    device: torch.device
    seed: int
    attack_batch_size: int
    show_progress: bool = False


class Evaluator(Protocol):
    """Scores the cells of one attack category."""

    def __init__(self, env: EvalEnv) -> None: ...

    def evaluate(self, cell: Cell, trained: TrainedModel, data: ImageData) -> Result:
        """The record of ``cell`` against ``trained`` (its job's model) on ``data``."""
        ...


def _base(cell: Cell, status: str, seed: int, attack_batch_size: int) -> dict[str, Any]:
    job = cell.job
    config: dict[str, Any] = {
        "training": job.key_fields, "attack_options": cell.attack_options,
        "attack_config": cell.attack.key_config(), "defense_options": cell.defense_options,
        "n_test": cell.n_test, "seed": seed, "attack_batch_size": attack_batch_size,
        "attack_plugin": distribution_of(cell.attack),
        "defense_plugin": distribution_of(cell.defense)}
    if cell.check:
        config["check"] = True
    return dict(
        cell_key=cell.key, train_key=job.key, run_id="", dataset=job.dataset.name,
        model=job.model_name, defense=cell.defense.name, attack=cell.attack.name,
        eps=cell.eps, status=status, category=cell.attack.category,
        defense_stage=cell.defense.stage, threat_model=cell.attack.threat_model,
        norm=cell.attack.norm, adaptive=cell.adaptive,
        attack_roles=tuple(sorted(cell.attack.roles)),
        defense_roles=tuple(sorted(cell.defense.roles)), created_at=now(), config=config)


def ok_result(cell: Cell, env: EvalEnv, trained: TrainedModel, **values: Any) -> Result:
    """The record of a cell that produced ``values``."""
    return Result(**_base(cell, OK, env.seed, env.attack_batch_size), **trained.train_values,
                  **values)


def failed_result(cell: Cell, seed: int, attack_batch_size: int, error: str,
                  **values: Any) -> Result:
    """The record of a cell that failed with ``error``."""
    return Result(**_base(cell, FAILED, seed, attack_batch_size), error=error, **values)
