"""An example third-party harness plugin: the ``random-noise`` attack.

Adds eps * (a random sign per pixel) and clips to [0, 1]. It uses no gradient, so any attack
worth its name must do better at the same Linf budget: a floor to read the other rows against.
It is a separate distribution with its own entry point in the ``harness`` group, which is all
a plugin needs.

It shows the parts of a spec a plugin declares: its options (typed, with bounds and help:
the harness checks ``--attack-opt random-noise.seed=...`` against them before any work, puts
their defaults in the cache key, and hands ``build`` every option resolved), and no roles (it
is not the reference of anything the harness's checks ask for). It imports torch only when
the attack runs, so registering it (``harness list``, ``harness plugins``) stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from harness import AttackSpec, ResolvedOptions, count, hookimpl, options

if TYPE_CHECKING:
    import torch

OPTIONS = options(
    count("seed", 0, "seed of the random signs", low=0),
)


class RandomSignNoise:
    """x + eps * s, s uniform in {-1, +1} per pixel, seeded."""

    def __init__(self, seed: int):
        self.seed = seed
        self._generator: torch.Generator | None = None

    def perturb(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                eps: float | None) -> torch.Tensor:
        """Noisy copies of ``x`` (``model`` and ``y`` are not used); ``eps`` is the budget
        (the attack is bounded, so the harness always passes one)."""
        import torch

        from harness import UsageError

        if eps is None:
            raise UsageError("random-noise is bounded: perturb needs an eps (the Linf budget)")

        if self._generator is None or self._generator.device != x.device:
            self._generator = torch.Generator(device=x.device).manual_seed(self.seed)
        signs = torch.randint(0, 2, x.shape, generator=self._generator, device=x.device)
        return (x + eps * (2 * signs.to(x.dtype) - 1)).clamp(0.0, 1.0)


def build(resolved: ResolvedOptions) -> RandomSignNoise:
    """The attack for the resolved options (every option of :data:`OPTIONS`, checked)."""
    return RandomSignNoise(seed=resolved.seed)


@hookimpl
def harness_register_attacks(register: Callable[[AttackSpec], None]) -> None:
    """Register ``random-noise``."""
    register(AttackSpec(
        name="random-noise",
        description="Random sign noise of size eps per pixel: a gradient-free floor",
        build=build,
        threat_model="black-box",
        norm="inf",
        needs=frozenset(),
        options=OPTIONS,
    ))
