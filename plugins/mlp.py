"""Built-in model ``mlp``: a two-layer perceptron with exactly one hidden ReLU layer.

Flatten -> Linear(d, hidden) -> ReLU -> Linear(hidden, K) on the pixels (standardized first
when the dataset gives a mean and std), trained by the shared loop like ``paper-cnn``. It
offers ``two-layer-relu`` on top of the torch features, for attacks and defenses that rely on
that exact structure (e.g. certificates or poisoning attacks written for one hidden layer).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from harness import TORCH_MODEL_OFFERS, ModelSpec, ResolvedOptions, count, hookimpl, options

if TYPE_CHECKING:
    from torch import nn

    from harness import ModelInput

OPTIONS = options(
    count("hidden", 128, "width of the hidden layer"),
)


def build(model_input: ModelInput, variant: str | None, resolved: ResolvedOptions) -> nn.Module:
    """The MLP for ``model_input``; the resolved option ``hidden`` is the width of the hidden
    layer."""
    from torch import nn

    from harness import Standardize

    hidden = resolved.hidden
    layers: list[nn.Module] = []
    if model_input.mean is not None and model_input.std is not None:
        layers.append(Standardize(model_input.mean, model_input.std))
    d = model_input.channels * model_input.height * model_input.width
    layers += [nn.Flatten(), nn.Linear(d, hidden), nn.ReLU(),
               nn.Linear(hidden, model_input.num_classes)]
    return nn.Sequential(*layers)


@hookimpl
def harness_register_models(register: Callable[[ModelSpec], None]) -> None:
    """Register ``mlp``."""
    register(ModelSpec(
        name="mlp",
        description="Two-layer perceptron: Flatten, Linear(d, hidden), ReLU, Linear(hidden, K)",
        build=build,
        offers=TORCH_MODEL_OFFERS | {"two-layer-relu"},
        options=OPTIONS,
        smoke_options={"hidden": 16},
    ))
