"""Built-in defense ``advtrain``: FGSM adversarial training, Algorithm 2 of the paper.

For each minibatch (x, y): FGSM examples x_adv from the current weights (eq. 1, clipped to
[0, 1]), then one update on the minibatch [x, x_adv] with labels [y, y]. The model starts
from fresh random weights (step 3 of Algorithm 2). eps defaults to the dataset's eps. The
harness's own epoch (:func:`harness.train.loop.train_supervised`) runs it, so with
``early_stop_on="objective"`` it stops early on the loss of [x, x_adv] validation batches.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from harness import (
    SINGLE_STEP_TRAINING,
    DefenseSpec,
    Option,
    ResolvedOptions,
    hookimpl,
    options,
)

if TYPE_CHECKING:
    import torch

    from harness import TrainContext, TrainData, TrainReport

OPTIONS = options(
    Option(name="eps", type="float", default=None, nullable=True, min=0.0, max=1.0,
           min_exclusive=True, dataset_eps=True,
           help="Linf budget of the FGSM examples; null: the dataset's eps"),
)


class FGSMAdversarialTraining:
    """Algorithm 2 with the Linf budget ``eps`` (the harness puts the dataset's eps in when
    the option is null)."""

    def __init__(self, eps: float):
        self.eps = eps

    def train(self, model: torch.nn.Module, data: TrainData, ctx: TrainContext) -> TrainReport:
        """Train ``model`` on [x, FGSM(x)] minibatches with labels [y, y]."""
        import torch

        from harness import gradients, train_supervised

        eps = self.eps

        def fgsm_pairs(m: torch.nn.Module, x: torch.Tensor, y: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
            return torch.cat([x, gradients.fgsm_step(m, x, y, eps)]), torch.cat([y, y])

        return train_supervised(model, data, ctx, augment=fgsm_pairs)


def build(options: ResolvedOptions) -> FGSMAdversarialTraining:
    """The defense with its resolved options (eps)."""
    return FGSMAdversarialTraining(eps=options.eps)


@hookimpl
def harness_register_defenses(register: Callable[[DefenseSpec], None]) -> None:
    """Register ``advtrain``."""
    register(DefenseSpec(
        name="advtrain",
        default=True,
        description="FGSM adversarial training, Algorithm 2: each minibatch is [x, x_adv]",
        build=build,
        stage="training",
        roles=frozenset({SINGLE_STEP_TRAINING}),
        options=OPTIONS,
        reads_uint8=True,
    ))
