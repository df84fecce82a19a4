"""Built-in model ``mlp``: a two-layer perceptron with exactly one hidden ReLU layer.

Flatten -> Linear(d, hidden) -> ReLU -> Linear(hidden, K) on the pixels (standardized first
when the dataset gives a mean and std), trained by the shared loop like ``paper-cnn``. It
offers ``two-layer-relu`` on top of the torch features, for attacks and defenses that rely on
that exact structure (e.g. certificates or poisoning attacks written for one hidden layer).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness import TORCH_MODEL_OFFERS, ModelSpec, Option, hookimpl, options

OPTIONS = options(
    Option(name="hidden", type="int", default=128, min=1, help="width of the hidden layer"),
)


def build(model_input, variant: str | None, resolved: Mapping[str, Any]):
    """The MLP for ``model_input``; the resolved option ``hidden`` is the width of the hidden
    layer."""
    from torch import nn

    from harness import Standardize

    hidden = resolved["hidden"]
    layers: list[nn.Module] = []
    if model_input.mean is not None and model_input.std is not None:
        layers.append(Standardize(model_input.mean, model_input.std))
    d = model_input.channels * model_input.height * model_input.width
    layers += [nn.Flatten(), nn.Linear(d, hidden), nn.ReLU(),
               nn.Linear(hidden, model_input.num_classes)]
    return nn.Sequential(*layers)


@hookimpl
def harness_register_models(register):
    """Register ``mlp``."""
    register(ModelSpec(
        name="mlp",
        description="Two-layer perceptron: Flatten, Linear(d, hidden), ReLU, Linear(hidden, K)",
        build=build,
        offers=TORCH_MODEL_OFFERS | {"two-layer-relu"},
        options=OPTIONS,
        smoke_options={"hidden": 16},
    ))
