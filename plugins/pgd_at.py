"""Built-in defense ``pgd-at``: PGD adversarial training (Madry et al. 2018), native.

Every minibatch is replaced by its Linf PGD examples: a uniform random start in the eps-ball,
``steps`` signed-gradient steps of ``step_size`` (default eps/4, as ``madry-pgd``), each
projected onto the ball and [0, 1]; then one update on those examples. It is the same method
as ``madry-pgd`` (ART's ``AdversarialTrainerMadryPGD``), run by the harness's own epoch
(:func:`harness.train_supervised`): the attack steps take gradients with respect to the input
only (no weight gradients), nothing leaves the device, so an epoch costs about its floor of
``steps`` + 1 forward-backward passes per training image, where ART's trainer pays its
array conversions per step (``leaderboards/throughput.md`` measures both). Early stopping on
``objective`` watches the loss on PGD examples of the validation batches.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from harness import (
    DefenseSpec,
    Option,
    ResolvedOptions,
    count,
    derive_seed,
    hookimpl,
    options,
)

if TYPE_CHECKING:
    import torch

    from harness import TrainContext, TrainData, TrainReport

OPTIONS = options(
    Option(name="eps", type="float", default=None, nullable=True, min=0.0, max=1.0,
           min_exclusive=True, dataset_eps=True,
           help="Linf budget of the PGD examples; null: the dataset's eps"),
    count("steps", 7, "PGD steps per minibatch", high=1000),
    Option(name="step_size", type="float", default=None, nullable=True, min=0.0, max=1.0,
           min_exclusive=True, help="the size of each step; null: eps / 4"),
)


class PGDAdversarialTraining:
    """Madry et al.'s training on Linf PGD examples of every minibatch."""

    def __init__(self, eps: float, steps: int, step_size: float | None):
        self.eps, self.steps = eps, steps
        self.step_size = step_size if step_size is not None else eps / 4

    def train(self, model: torch.nn.Module, data: TrainData, ctx: TrainContext) -> TrainReport:
        """Train ``model`` on the PGD examples of each minibatch (random starts drawn from a
        generator seeded by the run's seed)."""
        import torch

        from harness import gradients, train_supervised

        starts = torch.Generator(device=data.x.device)
        starts.manual_seed(derive_seed(ctx.settings.seed, "pgd-at", "random-starts"))

        def pgd_batch(m: torch.nn.Module, x: torch.Tensor, y: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
            return gradients.pgd_examples(m, x, y, self.eps, steps=self.steps,
                                          step_size=self.step_size, generator=starts), y

        return train_supervised(model, data, ctx, augment=pgd_batch)


def build(resolved: ResolvedOptions) -> PGDAdversarialTraining:
    """The defense with its resolved options."""
    return PGDAdversarialTraining(eps=resolved.eps, steps=resolved.steps,
                                  step_size=resolved.step_size)


@hookimpl
def harness_register_defenses(register: Callable[[DefenseSpec], None]) -> None:
    """Register ``pgd-at``."""
    register(DefenseSpec(
        name="pgd-at",
        description="PGD adversarial training (Madry et al.), native: each minibatch "
                    "replaced by Linf PGD examples, dataset eps, 7 steps of eps/4, random start",
        build=build,
        stage="training",
        options=OPTIONS,
        smoke_options={"steps": 2},
        reads_uint8=True,
    ))
