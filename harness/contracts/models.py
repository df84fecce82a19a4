"""Building blocks shared by model plugins: in-model input standardization."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Standardize(nn.Module):
    """(x - mean) / std per channel, so the model takes pixels in [0, 1]."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Standardized ``x``."""
        return (x - self.mean) / self.std
