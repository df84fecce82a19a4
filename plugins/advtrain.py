"""Built-in defense ``advtrain``: FGSM adversarial training, Algorithm 2 of the paper.

For each minibatch (x, y): FGSM examples x_adv from the current weights (eq. 1, clipped to
[0, 1]), then one update on the minibatch [x, x_adv] with labels [y, y]. The model starts
from fresh random weights (step 3 of Algorithm 2). eps defaults to the dataset's eps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.errors import UsageError
from harness.hookspecs import hookimpl
from harness.options import resolve_options
from harness.specs import DefenseSpec

DEFAULTS = {"eps": None}


class FGSMAdversarialTraining:
    """Algorithm 2; ``eps`` None means the dataset's default eps."""

    def __init__(self, eps: float | None):
        if eps is not None and not (isinstance(eps, int | float) and 0 < eps <= 1):
            raise UsageError(f"advtrain.eps must be in (0, 1], got {eps!r}")
        self.eps = eps

    def train(self, model, data, ctx):
        """Train ``model`` on [x, FGSM(x)] minibatches with labels [y, y]."""
        import torch

        from harness.training import train_supervised
        from harness_plugins.fgsm import fgsm

        eps = self.eps if self.eps is not None else ctx.dataset_eps

        def fgsm_pairs(m, x, y):
            return torch.cat([x, fgsm(m, x, y, eps)]), torch.cat([y, y])

        return train_supervised(model, data, ctx, augment=fgsm_pairs)


def build(options: Mapping[str, Any]) -> FGSMAdversarialTraining:
    """The defense with ``options`` (eps) over the defaults."""
    return FGSMAdversarialTraining(**resolve_options("defense advtrain", options, DEFAULTS))


@hookimpl
def harness_register_defenses(register):
    """Register ``advtrain``."""
    register(DefenseSpec(
        name="advtrain",
        description="FGSM adversarial training, Algorithm 2: each minibatch is [x, x_adv]",
        build=build,
        stage="training",
    ))
