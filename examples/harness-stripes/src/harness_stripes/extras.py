"""Snippets of the guide's reference section: one poisoning attack and one input
transformation, registered by the plugin ``stripes-extras``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from harness import AttackSpec, DefenseSpec, ResolvedOptions, count, hookimpl, options, positive

if TYPE_CHECKING:
    import torch

    from harness import AttackContext, PoisonedSet


class LabelFlip:
    """Relabel a share of one class's training images as another class."""

    def __init__(self, rate: float, source: int, target: int):
        self.rate, self.source, self.target = rate, source, target

    def poison(self, ctx: AttackContext) -> PoisonedSet:
        """The training set with flipped labels; the attack aims at the source class's test
        images (targeted: it wants them classified as ``target``)."""
        import torch

        from harness import PoisonedSet, derive_seed

        x, y = ctx.data.x_train.clone(), ctx.data.y_train.clone()
        candidates = (y == self.source).nonzero().flatten().cpu()
        order = torch.randperm(len(candidates), generator=torch.Generator().manual_seed(
            derive_seed(ctx.seed, "label-flip", "choice")))
        chosen = candidates[order[:max(1, int(self.rate * len(candidates)))]].to(y.device)
        is_poison = torch.zeros(len(y), dtype=torch.bool, device=y.device)
        is_poison[chosen] = True
        y[chosen] = self.target
        keep = ctx.data.y_test == self.source
        x_eval = ctx.data.x_test[keep]
        return PoisonedSet(x, y, is_poison, x_eval, torch.full_like(ctx.data.y_test[keep],
                                                                    self.target))


class Quantize:
    """Round every pixel to ``bits`` bits (feature squeezing)."""

    def __init__(self, bits: int):
        self.levels = 2 ** bits - 1

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` rounded to the grid; same shape, in [0, 1], ``x`` untouched."""
        return (x * self.levels).round() / self.levels


def build_label_flip(resolved: ResolvedOptions) -> LabelFlip:
    """The attack with its resolved options (rate, source, target)."""
    return LabelFlip(rate=resolved.rate, source=resolved.source, target=resolved.target)


@hookimpl
def harness_register_attacks(register: Callable[[AttackSpec], None]) -> None:
    """Register ``label-flip``."""
    register(AttackSpec(
        name="label-flip",
        description="Relabels a share of one class's training images as another class",
        build=build_label_flip,
        threat_model="black-box", norm="none", category="poisoning", targeted=True,
        needs=frozenset(),
        options=options(
            positive("rate", 0.5, "share of the source class relabelled", high=1),
            count("source", 1, "class whose labels flip", low=0),
            count("target", 0, "label they get", low=0),
        ),
    ))


@hookimpl
def harness_register_defenses(register: Callable[[DefenseSpec], None]) -> None:
    """Register ``quantize``."""
    register(DefenseSpec(
        name="quantize",
        description="Rounds every pixel to a few bits before the undefended model sees it",
        build=lambda resolved: Quantize(bits=resolved.bits),
        stage="input-transformation",
        options=options(count("bits", 3, "bits kept per pixel", high=8)),
    ))
