"""The shared supervised training loop (Algorithm 1's training), resumable epoch by epoch.

Adam on softmax cross-entropy, data reshuffled every epoch, validation loss watched to stop
early and keep the best weights; an epoch that does not improve it multiplies the learning
rate by ``lr_decay`` (Keras' ReduceLROnPlateau with patience 1; 1.0 turns it off).
A training-stage defense calls :func:`train_supervised`, optionally with a per-minibatch
``augment`` (Algorithm 2 passes FGSM pairs).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from harness.data import ImageData, batches
from harness.devices import synchronize
from harness.progress import progress_bar

Augment = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class TrainSettings:
    """Everything besides data, model and defense that shapes the trained weights."""

    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    patience: int = 3
    lr_decay: float = 0.5
    val_fraction: float = 0.1
    seed: int = 0

    def as_dict(self) -> dict:
        """Plain dict, for cache keys and stored configuration."""
        return asdict(self)


@dataclass(frozen=True)
class TrainData:
    """The training images split into a training part and a held-out validation part."""

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
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 7))
        order = order.to(x.device)
        val, train = order[:n_val], order[n_val:]
        return cls(x[train], y[train], x[val], y[val], num_classes)


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


def _loss_on(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
             augment: Augment | None, batch_size: int) -> float:
    total, count = torch.zeros((), device=x.device), 0
    for idx in batches(len(x), batch_size, device=x.device):
        xb, yb = x[idx], y[idx]
        model.eval()
        if augment is not None:
            xb, yb = augment(model, xb, yb)
        with torch.no_grad():
            total += F.cross_entropy(model(xb), yb, reduction="sum")
        count += len(yb)
    return float(total) / max(count, 1)


def _save_state(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def train_supervised(model: torch.nn.Module, data: TrainData, ctx: TrainContext,
                     augment: Augment | None = None) -> TrainReport:
    """Train ``model`` in place; resume from ``ctx.resume_path`` if a partial state is there.

    ``augment(model, x, y)`` turns each minibatch into the one the update is computed on; it
    is called with the model in eval mode and must return tensors on the same device.
    """
    s = ctx.settings
    opt = torch.optim.Adam(model.parameters(), lr=s.lr)
    start_epoch, best_val, best_epoch, bad, seconds = 0, math.inf, -1, 0, 0.0
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    history: list[dict] = []
    if ctx.resume_path is not None and ctx.resume_path.exists():
        state = torch.load(ctx.resume_path, map_location=ctx.device, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        best_state = state["best_state"]
        start_epoch, best_val, best_epoch = state["epoch"], state["best_val"], state["best_epoch"]
        bad, seconds, history = state["bad_epochs"], state["seconds"], state["history"]

    epoch = start_epoch
    bar = progress_bar(total=s.epochs, initial=start_epoch, desc=ctx.label, unit="epoch",
                       enabled=ctx.show_progress)
    try:
        while epoch < s.epochs and bad < s.patience:
            synchronize(ctx.device)
            t0 = time.perf_counter()
            torch.manual_seed(s.seed * 100_003 + epoch)
            shuffle = torch.Generator().manual_seed(s.seed * 100_003 + epoch)
            running, seen = 0.0, 0
            for idx in batches(len(data.x), s.batch_size, generator=shuffle, device=data.x.device):
                xb, yb = data.x[idx], data.y[idx]
                if augment is not None:
                    model.eval()
                    xb, yb = augment(model, xb, yb)
                model.train()
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                running += loss.detach() * len(yb)
                seen += len(yb)
            val = _loss_on(model, data.x_val, data.y_val, augment, 2 * s.batch_size) \
                if len(data.x_val) else float(running.item() / seen)
            synchronize(ctx.device)
            seconds += time.perf_counter() - t0
            epoch += 1
            history.append({"epoch": epoch, "train_loss": float(running.item() / seen),
                            "val_loss": val})
            if val < best_val:
                best_val, best_epoch, bad = val, epoch, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                bad += 1
                for group in opt.param_groups:
                    group["lr"] *= s.lr_decay
            bar.update(1)
            bar.set_postfix(val_loss=f"{val:.4f}", best=best_epoch)
            if ctx.resume_path is not None:
                _save_state(ctx.resume_path, {
                    "model": model.state_dict(), "optimizer": opt.state_dict(),
                    "best_state": best_state, "epoch": epoch, "best_val": best_val,
                    "best_epoch": best_epoch, "bad_epochs": bad, "seconds": seconds,
                    "history": history,
                })
    finally:
        bar.close()
    model.load_state_dict(best_state)
    model.eval()
    return TrainReport(epochs_run=epoch, best_epoch=best_epoch, best_val_loss=best_val,
                       seconds=seconds, images=len(data.x) * epoch, history=history)
