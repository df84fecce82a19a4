"""Built-in attack ``fgsm``: the Fast Gradient Sign Method, eq. (1) of the paper.

x_adv = clip(x + eps * sign(grad_x J(theta, x, y)), 0, 1): untargeted, in pixel units of
[0, 1], one gradient per batch on the run's device. J is the softmax cross-entropy averaged
over the batch, as in ART's ``FastGradientMethod`` (norm=inf), whose output it equals.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from harness import (
    REFERENCE,
    SINGLE_STEP,
    AttackSpec,
    ResolvedOptions,
    UsageError,
    hookimpl,
    options,
)

if TYPE_CHECKING:
    import torch


def fgsm(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """FGSM adversarial examples for ``x`` with true labels ``y`` (eq. 1, clipped to [0, 1])."""
    from harness import fgsm_step

    return fgsm_step(model, x, y, eps)


class FGSM:
    """The ``fgsm`` attack object (it has no options)."""

    def perturb(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                eps: float | None) -> torch.Tensor:
        """FGSM examples (see :func:`fgsm`); ``eps`` is the budget (a bounded attack)."""
        if eps is None:
            raise UsageError("attack fgsm is bounded: perturb needs an eps (the Linf budget in "
                             "pixel units), got None")
        return fgsm(model, x, y, eps)


def build(resolved: ResolvedOptions) -> FGSM:
    """The attack; ``fgsm`` declares no options (its schema refuses any)."""
    return FGSM()


@hookimpl
def harness_register_attacks(register: Callable[[AttackSpec], None]) -> None:
    """Register ``fgsm``."""
    register(AttackSpec(
        name="fgsm",
        default=True,
        description="Fast Gradient Sign Method, eq. (1): one signed-gradient step of size eps",
        build=build,
        threat_model="white-box",
        norm="inf",
        survey_table="Table 1",
        roles=frozenset({SINGLE_STEP, REFERENCE}),
        options=options(),
    ))
