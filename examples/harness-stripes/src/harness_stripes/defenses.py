"""``noise-training``: the shared training loop on noisy copies of every minibatch."""

from __future__ import annotations

import torch

from harness import TrainContext, TrainData, TrainReport, train_supervised


class NoiseTraining:
    """Each minibatch is ``[x, clip(x + sigma * N(0, 1))]`` with labels ``[y, y]``."""

    def __init__(self, sigma: float):
        self.sigma = sigma

    def train(self, model: torch.nn.Module, data: TrainData, ctx: TrainContext) -> TrainReport:
        """Train ``model`` in place with the harness's loop and this ``augment`` hook."""
        def noisy_pairs(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor):
            noisy = (x + self.sigma * torch.randn_like(x)).clamp(0.0, 1.0)
            return torch.cat([x, noisy]), torch.cat([y, y])

        return train_supervised(model, data, ctx, augment=noisy_pairs)
