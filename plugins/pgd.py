"""Built-in attack ``pgd``: projected gradient descent under an Linf budget (Madry et al.).

Random start uniform in [-eps, eps], ``steps`` signed-gradient steps of 2.5 * eps / steps
(default 10), each followed by projection onto the eps-ball and [0, 1]. The stronger control
that every FGSM number is shown beside.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from harness.errors import UsageError
from harness.hookspecs import hookimpl
from harness.options import resolve_options
from harness.specs import AttackSpec

if TYPE_CHECKING:
    import torch

DEFAULTS = {"steps": 10, "step_size": None, "random_start": True, "seed": 0}


class PGD:
    """Linf PGD; ``step_size`` None means 2.5 * eps / steps."""

    def __init__(self, steps: int, step_size: float | None, random_start: bool, seed: int):
        if not isinstance(steps, int) or steps < 1:
            raise UsageError(f"pgd.steps must be a positive integer, got {steps!r}")
        self.steps, self.step_size, self.random_start, self.seed = (
            steps, step_size, bool(random_start), int(seed))
        self._generators: dict = {}

    def _generator(self, device: torch.device) -> torch.Generator:
        import torch

        key = str(device)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[key]

    def perturb(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                eps: float) -> torch.Tensor:
        """PGD examples within the Linf eps-ball around ``x``."""
        import torch
        import torch.nn.functional as F

        x = x.detach()
        alpha = self.step_size if self.step_size is not None else 2.5 * eps / self.steps
        x_adv = x.clone()
        if self.random_start:
            noise = torch.rand(x.shape, generator=self._generator(x.device), device=x.device,
                               dtype=x.dtype)
            x_adv = (x + (2 * noise - 1) * eps).clamp_(0.0, 1.0)
        for _ in range(self.steps):
            x_adv.requires_grad_(True)
            with torch.enable_grad():
                loss = F.cross_entropy(model(x_adv), y)
                (grad,) = torch.autograd.grad(loss, x_adv)
            x_adv = x_adv.detach() + alpha * grad.sign()
            x_adv = torch.minimum(torch.maximum(x_adv, x - eps), x + eps).clamp_(0.0, 1.0)
        return x_adv


def build(options: Mapping[str, Any]) -> PGD:
    """The attack with ``options`` (steps, step_size, random_start, seed) over the defaults."""
    return PGD(**resolve_options("attack pgd", options, DEFAULTS))


@hookimpl
def harness_register_attacks(register):
    """Register ``pgd``."""
    register(AttackSpec(
        name="pgd",
        description="Projected gradient descent, Linf, random start, 10 steps of 2.5*eps/steps",
        build=build,
        threat_model="white-box",
        norm="inf",
        survey_table="Table 1",
    ))
