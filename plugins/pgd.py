"""Built-in attack ``pgd``: projected gradient descent under an Linf budget (Madry et al.).

Random start uniform in [-eps, eps], ``steps`` signed-gradient steps of 2.5 * eps / steps
(default 10), each followed by projection onto the eps-ball and [0, 1]. The stronger control
that every FGSM number is shown beside. ``restarts`` runs it again from new random starts for
the images the previous runs left correctly classified (e.g. 50 steps x 10 restarts, as Wong
et al. 2020 evaluate); each image keeps its first misclassified example, else the last one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from harness import (
    ITERATIVE,
    REFERENCE,
    AttackSpec,
    Option,
    ResolvedOptions,
    UsageError,
    count,
    hookimpl,
    options,
)

if TYPE_CHECKING:
    import torch

OPTIONS = options(
    count("steps", 10, "signed-gradient steps"),
    Option(name="step_size", type="float", default=None, nullable=True, min=0,
           min_exclusive=True, help="size of each step in pixel units (null: 2.5 * eps / steps)"),
    Option(name="random_start", type="bool", default=True,
           help="start from a uniform random point of the eps-ball"),
    count("seed", 0, "seed of the random start", low=0),
    count("restarts", 1, "runs from new random starts for the images still classified "
          "correctly"),
)


class PGD:
    """Linf PGD; ``step_size`` None means 2.5 * eps / steps."""

    def __init__(self, steps: int, step_size: float | None, random_start: bool, seed: int,
                 restarts: int = 1):
        self.steps, self.step_size, self.random_start, self.seed = (
            steps, step_size, random_start, seed)
        self.restarts = restarts
        self._generators: dict[str, torch.Generator] = {}

    def _generator(self, device: torch.device) -> torch.Generator:
        import torch

        key = str(device)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[key]

    def perturb(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                eps: float | None) -> torch.Tensor:
        """PGD examples within the Linf eps-ball around ``x`` (the best of ``restarts`` runs:
        a later run only for the images every earlier one left correctly classified)."""
        import torch

        if eps is None:
            raise UsageError("attack pgd is bounded: perturb needs an eps (the Linf budget in "
                             "pixel units), got None")

        x_adv = self._run(model, x.detach(), y, eps)
        for _ in range(self.restarts - 1):
            with torch.no_grad():
                left = (model(x_adv).argmax(1) == y).nonzero().flatten()
            if len(left) == 0:
                break
            x_adv[left] = self._run(model, x.detach()[left], y[left], eps)
        return x_adv

    def _run(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
             eps: float) -> torch.Tensor:
        """One PGD run from a random start (or from ``x``)."""
        from harness import pgd_examples

        return pgd_examples(model, x, y, eps, steps=self.steps, step_size=self.step_size,
                            generator=self._generator(x.device),
                            random_start=self.random_start)


def build(resolved: ResolvedOptions) -> PGD:
    """The attack with the resolved options (steps, step_size, random_start, seed, restarts)."""
    return PGD(steps=resolved.steps, step_size=resolved.step_size,
               random_start=resolved.random_start, seed=resolved.seed,
               restarts=resolved.restarts)


@hookimpl
def harness_register_attacks(register: Callable[[AttackSpec], None]) -> None:
    """Register ``pgd``."""
    register(AttackSpec(
        name="pgd",
        description="Projected gradient descent, Linf, random start, 10 steps of 2.5*eps/steps",
        build=build,
        threat_model="white-box",
        norm="inf",
        survey_table="Table 1",
        roles=frozenset({ITERATIVE, REFERENCE}),
        options=OPTIONS,
    ))
