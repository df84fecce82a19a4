"""Snippets of the guide's reference section: one poisoning attack and one input
transformation, registered by the plugin ``stripes-extras``."""

from __future__ import annotations

from harness import AttackSpec, DefenseSpec, Option, hookimpl, options


class LabelFlip:
    """Relabel a share of one class's training images as another class."""

    def __init__(self, rate: float, source: int, target: int):
        self.rate, self.source, self.target = rate, source, target

    def poison(self, ctx):
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

    def transform(self, x):
        """``x`` rounded to the grid; same shape, in [0, 1], ``x`` untouched."""
        return (x * self.levels).round() / self.levels


@hookimpl
def harness_register_attacks(register):
    """Register ``label-flip``."""
    register(AttackSpec(
        name="label-flip",
        description="Relabels a share of one class's training images as another class",
        build=lambda resolved: LabelFlip(**resolved),
        threat_model="black-box", norm="none", category="poisoning", targeted=True,
        needs=frozenset(),
        options=options(
            Option(name="rate", type="float", default=0.5, min=0, max=1, min_exclusive=True,
                   help="share of the source class relabelled"),
            Option(name="source", type="int", default=1, min=0, help="class whose labels flip"),
            Option(name="target", type="int", default=0, min=0, help="label they get"),
        ),
    ))


@hookimpl
def harness_register_defenses(register):
    """Register ``quantize``."""
    register(DefenseSpec(
        name="quantize",
        description="Rounds every pixel to a few bits before the undefended model sees it",
        build=lambda resolved: Quantize(**resolved),
        stage="input-transformation",
        options=options(Option(name="bits", type="int", default=3, min=1, max=8)),
    ))
