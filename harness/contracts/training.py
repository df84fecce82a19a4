"""The types of a training run: the data split, the context and the report a training-stage
defense receives and returns (the loop itself is :mod:`harness.contracts.training`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from harness.contracts.data import ImageData, to_float
from harness.contracts.settings import TrainSettings
from harness.util.seeds import derive_seed

Augment = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
EpochFn = Callable[[int], float | None]

@dataclass(frozen=True)
class TrainData:
    """The training images split into a training part and a held-out validation part.

    The images are float in [0, 1], or uint8 for a defense that declares ``reads_uint8``
    (:class:`harness.contracts.specs.DefenseSpec`): it converts its batches with
    :func:`harness.contracts.data.to_float`, as :func:`train_supervised` does."""

    x: torch.Tensor
    y: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    num_classes: int

    @classmethod
    def split(cls, data: ImageData, val_fraction: float, seed: int) -> TrainData:
        """Seeded split of ``data``'s training set; the test set is never touched."""
        return cls.from_tensors(data.x_train, data.y_train, data.num_classes, val_fraction,
                                seed)

    @classmethod
    def from_tensors(cls, x: torch.Tensor, y: torch.Tensor, num_classes: int,
                     val_fraction: float, seed: int) -> TrainData:
        """Seeded split of the training images ``x`` with labels ``y``."""
        n = len(x)
        n_val = max(1, int(round(n * val_fraction))) if val_fraction > 0 else 0
        shuffle = torch.Generator().manual_seed(derive_seed(seed, "validation-split"))
        order = torch.randperm(n, generator=shuffle).to(x.device)
        val, train = order[:n_val], order[n_val:]
        return cls(x[train], y[train], x[val], y[val], num_classes)

    def floats(self) -> TrainData:
        """This split with float images (itself when they are float already)."""
        if self.x.dtype != torch.uint8 and self.x_val.dtype != torch.uint8:
            return self
        return TrainData(to_float(self.x), self.y, to_float(self.x_val), self.y_val,
                         self.num_classes)


@dataclass
class TrainContext:
    """What a training-stage defense is given besides model and data."""

    settings: TrainSettings
    device: torch.device
    dataset_eps: float
    resume_path: Path | None = None
    label: str = "train"
    show_progress: bool = True


@dataclass
class TrainReport:
    """What a training run did: epochs, best epoch, time and throughput."""

    epochs_run: int
    best_epoch: int
    best_val_loss: float
    seconds: float
    images: int
    history: list[dict] = field(default_factory=list)

    @property
    def images_per_s(self) -> float:
        """Training images processed per second (each original image once per epoch)."""
        return self.images / self.seconds if self.seconds > 0 else float("nan")
