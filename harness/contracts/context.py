"""What non-evasion attacks and poisoning detectors are handed: the run's data and tools.

An evasion attack only needs a model and a batch; poisoning, inference and extraction
attacks need the whole dataset, a way to build and train fresh models of the victim's
architecture (the poisoned victim, a thief, a shadow model), and the clean victim.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from harness.contracts.data import ImageData
from harness.contracts.training import TrainReport


@dataclass
class AttackContext:
    """The run's data and tools for one cell.

    ``data`` holds the run's training and test sets on ``device``. ``new_model(seed)``
    builds an untrained model of the victim's architecture on ``device`` (seed None: the
    victim's own initial weights); ``train(model, x, y, label)`` trains it in place the way
    the undefended victim was trained (same settings, a validation split taken from ``x``).
    ``clean_model()`` is the victim trained on the clean training set (from the model
    cache). ``members`` are the images and labels the victim was fitted on (the training set
    less its validation split), when known. ``n_test`` is the cell's test-image budget (None:
    all).
    """

    data: ImageData
    device: torch.device
    seed: int
    dataset_eps: float
    new_model: Callable[..., torch.nn.Module]
    train: Callable[[torch.nn.Module, torch.Tensor, torch.Tensor, str], TrainReport]
    clean_model: Callable[[], torch.nn.Module]
    n_test: int | None = None
    members: tuple[torch.Tensor, torch.Tensor] | None = None
    model_name: str = ""
    show_progress: bool = False

    def rng(self, purpose: str | int = 0) -> torch.Generator:
        """A CPU generator seeded from the run's seed and ``purpose`` (by name: two purposes
        never share a stream; see :func:`harness.util.seeds.derive_seed`)."""
        from harness.util.seeds import derive_seed

        return torch.Generator().manual_seed(derive_seed(self.seed, "context", str(purpose)))

    def test_subset(self, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``n`` (default: the cell's budget) of a seeded shuffle of the test set."""
        n = n if n is not None else self.n_test
        x, y = self.data.x_test, self.data.y_test
        if n is None or n >= len(x):
            return x, y
        order = torch.randperm(len(x), generator=self.rng("test-subset"))
        idx = order[:n].sort().values.to(x.device)
        return x[idx], y[idx]


@dataclass
class PoisonedSet:
    """What a poisoning attack returns.

    ``x_train``/``y_train``: the whole training set as the victim receives it (clean and
    poisoned samples together). ``is_poison``: a boolean mask over it, the ground truth
    the detectors are scored against. ``x_eval``/``y_eval``: the inputs the attack aims at
    (test images with the trigger, or the chosen target images) and, for a ``targeted``
    attack, the labels it wants them to get; for an untargeted one, their true labels (the
    attack succeeds when the victim gets them wrong). ``details`` are extra numbers to
    report (e.g. the target class).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    is_poison: torch.Tensor
    x_eval: torch.Tensor
    y_eval: torch.Tensor
    targeted: bool = True
    details: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.x_train) != len(self.y_train) or len(self.x_train) != len(self.is_poison):
            raise ValueError("x_train, y_train and is_poison differ in length")
        if self.is_poison.dtype != torch.bool:
            raise ValueError("is_poison must be a boolean mask")
        if len(self.x_eval) != len(self.y_eval):
            raise ValueError("x_eval and y_eval differ in length")

    @property
    def rate(self) -> float:
        """The share of the training set that is poisoned."""
        return float(self.is_poison.float().mean()) if len(self.is_poison) else 0.0
