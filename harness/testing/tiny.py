"""Tiny data, models and attack contexts that tests (the harness's and a plugin author's)
build in a second: real training and real attacks, on a few 8x8 images."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from harness.contracts.context import AttackContext, PoisonedSet
from harness.contracts.data import ImageData
from harness.run.provider import victim_trainer
from harness.train.loop import TrainContext, TrainData, TrainReport, TrainSettings


def tiny_image_data(n_train: int = 96, n_test: int = 32, channels: int = 1, size: int = 8,
                    num_classes: int = 3, seed: int = 0) -> ImageData:
    """A small, learnable image set: each class is a bright square in its own place."""
    g = torch.Generator().manual_seed(seed)

    def make(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(n) % num_classes
        x = torch.rand(n, channels, size, size, generator=g) * 0.3
        for c in range(num_classes):
            r = (c * 2) % (size - 2)
            x[y == c, :, r:r + 3, r:r + 3] += 0.6
        return x.clamp(0, 1), y

    x_train, y_train = make(n_train)
    x_test, y_test = make(n_test)
    return ImageData(x_train, y_train, x_test, y_test, num_classes=num_classes)


def tiny_classifier(channels: int = 1, size: int = 8, num_classes: int = 3,
                    seed: int = 0) -> nn.Module:
    """A small conv net with fixed random weights, in eval mode, for attack checks."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(channels, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(8 * (size // 2) ** 2, num_classes),
    ).eval()


def trained_tiny_classifier(seed: int = 0) -> nn.Module:
    """:func:`tiny_classifier` fitted to :func:`tiny_image_data` (it predicts every class, so
    attacks that need a starting point of another class find one)."""
    data = tiny_image_data(seed=seed)
    model = tiny_classifier(num_classes=data.num_classes, seed=seed).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        nn.functional.cross_entropy(model(data.x_train), data.y_train).backward()
        opt.step()
    return model.eval()


TINY_SETTINGS = TrainSettings(epochs=15, batch_size=32, lr=1e-2, patience=15, seed=0)


def tiny_context(data: ImageData | None = None, *, n_test: int | None = None,
                 new_model: Callable[[], nn.Module] | None = None,
                 fit: Callable[[nn.Module, TrainData, TrainContext], TrainReport] | None = None,
                 ) -> AttackContext:
    """An :class:`~harness.contracts.context.AttackContext` over :func:`tiny_image_data` on the CPU.

    ``new_model`` builds the victim architecture (default :func:`tiny_classifier`); ``fit``
    trains it instead of the shared loop (for models with their own ``ModelSpec.fit``).
    ``clean_model()`` trains one on the clean training set the first time it is called.
    """
    data = data or tiny_image_data()
    k = data.num_classes
    c, h, _ = data.image_shape
    make = new_model or (lambda: tiny_classifier(channels=c, size=h, num_classes=k))

    def build(seed: int | None = None) -> nn.Module:
        if seed is not None:
            torch.manual_seed(seed)
        return make()

    # The same trainer the runner hands attacks (harness.run.provider.victim_trainer).
    train = victim_trainer(TINY_SETTINGS, torch.device("cpu"), 0.1, k, fit)

    clean: list[nn.Module] = []

    def clean_model():
        if not clean:
            model = build()
            train(model, data.x_train, data.y_train, "clean victim")
            clean.append(model.eval())
        return clean[0]

    return AttackContext(data=data, device=torch.device("cpu"), seed=0, dataset_eps=0.1,
                         new_model=build, train=train, clean_model=clean_model, n_test=n_test,
                         model_name="tiny")


def reaching_bounds(x: torch.Tensor) -> torch.Tensor:
    """``x`` stretched image by image so that its darkest tenth of pixels is exactly 0 and
    its brightest tenth exactly 1 (the content kept in between): the images an evasion attack
    must keep in [0, 1], and that an attack which forgets to clamp leaves."""
    flat = x.float().flatten(1)
    low, high = flat.quantile(torch.tensor([0.1, 0.9], device=flat.device), dim=1,
                              keepdim=True)
    stretched = (flat - low) / (high - low).clamp_min(1e-12)
    return stretched.clamp(0.0, 1.0).view_as(x).to(x.dtype)


def corner_backdoor(data: ImageData, rate: float = 0.2, target: int = 0) -> PoisonedSet:
    """A simple backdoor on ``data``: a bright 2x2 corner, label ``target``, on ``rate``."""
    x, y = data.x_train.clone(), data.y_train.clone()
    candidates = (y != target).nonzero().flatten()
    chosen = candidates[torch.randperm(len(candidates), generator=torch.Generator()
                                       .manual_seed(3))[:int(rate * len(x))]]
    is_poison = torch.zeros(len(x), dtype=torch.bool)
    is_poison[chosen] = True
    x[chosen, :, -2:, -2:] = 1.0
    y[chosen] = target
    keep = data.y_test != target
    x_eval = data.x_test[keep].clone()
    x_eval[:, :, -2:, -2:] = 1.0
    return PoisonedSet(x, y, is_poison, x_eval, torch.full((len(x_eval),), target))
