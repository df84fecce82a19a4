"""``mi-fgsm`` (momentum iterative FGSM) and ``loss-threshold`` (membership inference)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness import AttackContext, UsageError, input_gradient


class MomentumIterativeFGSM:
    """Dong et al. 2018: signed steps along an accumulated, L1-normalized gradient."""

    def __init__(self, steps: int, decay: float):
        self.steps, self.decay = steps, decay

    def perturb(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                eps: float | None) -> torch.Tensor:
        """Adversarial ``x`` within the Linf eps-ball, in [0, 1]; ``x`` is not modified.
        The attack is bounded, so the harness always passes an ``eps``."""
        if eps is None:
            raise UsageError("mi-fgsm is bounded: perturb needs an eps (the Linf budget)")
        x = x.detach()
        step = eps / self.steps
        momentum = torch.zeros_like(x)
        x_adv = x.clone()
        for _ in range(self.steps):
            grad = input_gradient(model, x_adv, y)
            norm = grad.abs().flatten(1).sum(1).clamp_min(1e-12).view(-1, 1, 1, 1)
            momentum = self.decay * momentum + grad / norm
            x_adv = x_adv + step * momentum.sign()
            x_adv = torch.minimum(torch.maximum(x_adv, x - eps), x + eps).clamp(0.0, 1.0)
        return x_adv


def _losses(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return F.cross_entropy(model(x), y, reduction="none")


class LossThreshold:
    """Guess "member" when the victim's loss on a sample is below a threshold (Yeom et al.)."""

    def __init__(self, n: int):
        self.n = n

    def run(self, model: torch.nn.Module, ctx: AttackContext) -> dict[str, float]:
        """Membership accuracy on ``n`` members and ``n`` test images, and the loss gap."""
        x_in, y_in = ctx.members if ctx.members is not None else (ctx.data.x_train,
                                                                   ctx.data.y_train)
        x_out, y_out = ctx.test_subset(self.n)
        n = min(self.n, len(x_in), len(x_out))
        member = _losses(model, x_in[:n], y_in[:n])
        other = _losses(model, x_out[:n], y_out[:n])
        threshold = torch.cat([member, other]).median()
        correct = int((member <= threshold).sum()) + int((other > threshold).sum())
        return {"loss_mi_accuracy": correct / (2 * n),
                "loss_gap": float(other.mean() - member.mean())}
