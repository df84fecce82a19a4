"""Built-in model ``paper-cnn``: the combined CNN of Algorithm 1 of the paper.

Conv(3x3) + MaxPool(2x2) + ReLU blocks (the paper's conv-ReLU-pool, computed in the cheaper
order that gives the same function), repeated while the feature map stays at least 4 pixels
wide (one block for 8x8 digits, two for 28x28 MNIST, three for 32x32 CIFAR-10, at most five),
then a classification head chosen as the paper does: one dense ReLU layer for the simple
grayscale datasets (MNIST, Fashion-MNIST), dense-dropout-dense for colour images or more than
ten classes (CIFAR-10, ImageNet; the paper puts CIFAR-10 there although it has ten classes).
The output layer returns logits; the softmax is applied inside the cross-entropy loss
(numerically the same as a softmax layer with categorical cross-entropy). For colour
datasets, standardization (Algorithm 1's preprocessing) is the model's first layer, so
attacks work in pixel units of [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from harness import (
    ModelSpec,
    Option,
    ResolvedOptions,
    UsageError,
    fraction,
    hookimpl,
    options,
)

if TYPE_CHECKING:
    from torch import nn

    from harness import ModelInput

OPTIONS = options(
    Option(name="filters", type="int-list", default=[32, 64, 128, 128, 256], min=1,
           help="filters of each conv block, in order (the input size picks how many blocks)"),
    Option(name="kernel", type="int", default=3, min=1, help="side of the conv kernels"),
    Option(name="dense", type="int", default=128, min=1, help="width of the first dense layer"),
    Option(name="dense2", type="int", default=128, min=1,
           help="width of the second dense layer (large head only)"),
    fraction("dropout", 0.5, "dropout between the dense layers (large head only), in [0, 1)"),
    Option(name="large_head", type="bool", default=None, nullable=True,
           help="dense-dropout-dense head (null: for colour images or more than 10 classes)"),
)


def block_count(size: int, max_blocks: int = 5) -> int:
    """How many conv+pool blocks an input of side ``size`` gets (>= 1, <= ``max_blocks``)."""
    blocks = 1
    while blocks < max_blocks and size // 2 ** (blocks + 1) >= 4:
        blocks += 1
    return blocks


def build(model_input: ModelInput, variant: str | None, resolved: ResolvedOptions
          ) -> nn.Module:
    """Build the CNN for ``model_input`` (channels, size, classes, normalization) with the
    ``resolved`` options (every option of :data:`OPTIONS`)."""
    import torch
    from torch import nn

    from harness import Standardize

    o = resolved
    if o.dropout >= 1:
        raise UsageError(f"model paper-cnn: option 'dropout' must be below 1 (1 drops every "
                         f"unit); got {o.dropout!r}")
    large = o.large_head
    if large is None:
        large = model_input.channels == 3 or model_input.num_classes > 10
    layers: list[nn.Module] = []
    if model_input.mean is not None and model_input.std is not None:
        layers.append(Standardize(model_input.mean, model_input.std))
    channels = model_input.channels
    n_blocks = block_count(min(model_input.height, model_input.width), len(o.filters))
    for filters in o.filters[:n_blocks]:
        # Pooling before the ReLU is the same function as after it (max and ReLU commute;
        # outputs and input gradients are bit-identical) on a quarter of the values.
        layers += [nn.Conv2d(channels, filters, o.kernel, padding=o.kernel // 2),
                   nn.MaxPool2d(2), nn.ReLU()]
        channels = filters
    layers.append(nn.Flatten())
    with torch.no_grad():
        flat = nn.Sequential(*layers)(
            torch.zeros(1, model_input.channels, model_input.height, model_input.width)
        ).shape[1]
    if large:
        layers += [nn.Linear(flat, o.dense), nn.ReLU(), nn.Dropout(o.dropout),
                   nn.Linear(o.dense, o.dense2), nn.ReLU(),
                   nn.Linear(o.dense2, model_input.num_classes)]
    else:
        layers += [nn.Linear(flat, o.dense), nn.ReLU(),
                   nn.Linear(o.dense, model_input.num_classes)]
    # channels_last: the convolutions' fast layout (forward and input gradient about 0.65x
    # of NCHW on the CPU; see leaderboards/throughput.md). The parameters keep their names and
    # positions, so weights cached before this still load.
    return nn.Sequential(*layers).to(memory_format=torch.channels_last)


@hookimpl
def harness_register_models(register: Callable[[ModelSpec], None]) -> None:
    """Register ``paper-cnn``."""
    register(ModelSpec(
        name="paper-cnn",
        default=True,
        description="The paper's combined CNN (Algorithm 1): conv/pool blocks sized to the input",
        build=build,
        options=OPTIONS,
    ))
