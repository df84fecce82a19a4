"""``stripes-cnn``: one convolution, pooled to 4x4, and a linear head."""

from __future__ import annotations

from torch import nn

from harness import ModelInput, Standardize


def stripes_cnn(model_input: ModelInput, width: int) -> nn.Module:
    """Pixels in [0, 1] in, logits out; standardized inside when the dataset gives stats."""
    layers: list[nn.Module] = []
    if model_input.mean is not None and model_input.std is not None:
        layers.append(Standardize(model_input.mean, model_input.std))
    layers += [
        nn.Conv2d(model_input.channels, width, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(4), nn.Flatten(),
        nn.Linear(width * 16, model_input.num_classes),  # the last nn.Linear is the head
    ]
    return nn.Sequential(*layers)
