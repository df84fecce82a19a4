"""Built-in defense ``gaussian-aug``: Gaussian noise augmentation (Cohen, Rosenfeld and Kolter
2019), the training that makes a base classifier fit for randomized smoothing.

Every training minibatch is replaced by its noisy version x + N(0, sigma^2 I), without
clipping to [0, 1] (the noise the ``smoothing`` certifier adds, so train at the sigma you
certify at). The harness's own epoch (:func:`harness.train.loop.train_supervised`) runs it: the
noise comes from torch's generator, which the loop seeds per epoch, so training is
reproducible and resumable; early stopping watches the clean validation loss as for every
defense.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from harness import DefenseSpec, ResolvedOptions, hookimpl, options, positive

if TYPE_CHECKING:
    import torch

    from harness import TrainContext, TrainData, TrainReport

OPTIONS = options(
    positive("sigma", 0.25, "standard deviation of the Gaussian noise, in pixel units"),
)


class GaussianAugmentation:
    """Training on x + N(0, sigma^2 I) minibatches."""

    def __init__(self, sigma: float):
        self.sigma = sigma

    def train(self, model: torch.nn.Module, data: TrainData, ctx: TrainContext) -> TrainReport:
        """Train ``model`` on noisy minibatches, labels unchanged."""
        import torch

        from harness import train_supervised

        sigma = self.sigma

        def noisy(m: torch.nn.Module, x: torch.Tensor, y: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
            return x + sigma * torch.randn_like(x), y

        return train_supervised(model, data, ctx, augment=noisy)


def build(options: ResolvedOptions) -> GaussianAugmentation:
    """The defense with its resolved options (sigma)."""
    return GaussianAugmentation(sigma=options.sigma)


@hookimpl
def harness_register_defenses(register: Callable[[DefenseSpec], None]) -> None:
    """Register ``gaussian-aug``."""
    register(DefenseSpec(
        name="gaussian-aug",
        description="Gaussian noise augmentation at sigma (Cohen et al. 2019): the base "
                    "classifier of randomized smoothing",
        build=build,
        stage="training",
        answers=frozenset({"evasion", "certification"}),
        options=OPTIONS,
        reads_uint8=True,
    ))
