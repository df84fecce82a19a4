"""What every evaluator shares: its environment, what it returns (:class:`Measured`), and the
one place a cell's record is assembled (:func:`cell_record`) around the cell's identity
(:mod:`harness.run.identity`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import torch

from harness.contracts.records import FAILED, OK, Result
from harness.results.metadata import now
from harness.run.identity import cell_config, cell_identity

if TYPE_CHECKING:
    from harness.contracts.data import ImageData
    from harness.planning.plan import Cell
    from harness.run.adversarial import AdversarialStore
    from harness.run.evaluators.chunks import ChunkStore
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

    @property
    def chunks(self) -> ChunkStore:
        """Where evasion cells scored in chunks keep their finished chunks: beside the
        adversarial examples, ``<adversarial store>/chunks``."""
        from harness.run.evaluators.chunks import ChunkStore

        return ChunkStore(self.adversarial.root / "chunks")


@dataclass(frozen=True)
class Measured:
    """What an evaluator measured on one cell: its numbers by declared name (``metrics``),
    the attack's ``timings`` (``attack_seconds``, ``attack_images_per_s``), and the evidence
    (``examples`` for the pictures, per-image ``outcomes``); ``config`` adds what shaped the
    numbers beyond the cell (e.g. a retry at a smaller batch)."""

    metrics: Mapping[str, float]
    timings: Mapping[str, float] = field(default_factory=dict)
    examples: Mapping[str, Any] | None = None
    outcomes: Mapping[str, Any] | None = None
    config: Mapping[str, Any] = field(default_factory=dict)


def cell_images(cell: Cell, data: ImageData, seed: int) -> ImageData:
    """``data`` with the cell's seeded subset of test images (``--n-test`` or the attack's
    ``budget_images``), or all of them."""
    if cell.n_test is not None and cell.n_test < len(data.x_test):
        return data.subset(None, cell.n_test, seed)
    return data


class Evaluator(Protocol):
    """Scores the cells of one attack category."""

    def __init__(self, env: EvalEnv) -> None: ...

    def evaluate(self, cell: Cell, trained: TrainedModel, data: ImageData) -> Measured:
        """What ``cell`` measures against ``trained`` (its job's model) on ``data``."""
        ...


def cell_record(cell: Cell, env: EvalEnv, measured: Measured | None = None, *,
                error: str | None = None, trained: TrainedModel | None = None,
                timings: Mapping[str, float] | None = None,
                context: Mapping[str, Any] | None = None) -> Result:
    """The record of ``cell``: ok with what was ``measured``, or failed with ``error``
    (``timings``: what the failed attempt took). The training timings come from
    ``trained`` (when the model was trained or loaded); ``context`` is what the worker adds
    to the provenance (image shape, worker, peak memory)."""
    train = {} if trained is None else {k: v for k, v in trained.train_values.items()
                                        if v is not None}
    done = measured if error is None else None
    return Result(
        **cell_identity(cell), status=OK if done is not None else FAILED, error=error,
        metrics=dict(done.metrics) if done is not None else {},
        timings={**train, **(done.timings if done is not None else timings or {})},
        examples=done.examples if done is not None else None,
        outcomes=done.outcomes if done is not None else None,
        created_at=now(),
        config={**cell_config(cell, env.seed, env.attack_batch_size),
                **(done.config if done is not None else {}), **(context or {})})
