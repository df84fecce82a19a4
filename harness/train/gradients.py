"""Gradient primitives shared by attacks and training defenses (no plugin imports another).

:func:`fgsm_step` is eq. (1) of the paper: ``clip(x + eps * sign(grad_x J(theta, x, y)), 0, 1)``
with J the softmax cross-entropy averaged over the batch (as ART's ``FastGradientMethod``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def input_gradient(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The gradient of the mean softmax cross-entropy of ``model`` at ``x`` w.r.t. ``x``."""
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        loss = F.cross_entropy(model(x), y)
        (grad,) = torch.autograd.grad(loss, x)
    return grad


def fgsm_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
              eps: float) -> torch.Tensor:
    """FGSM adversarial examples for ``x`` with true labels ``y`` (eq. 1, clipped to [0, 1])."""
    return (x.detach() + eps * input_gradient(model, x, y).sign()).clamp_(0.0, 1.0)


def pgd_examples(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *,
                 steps: int = 10, step_size: float | None = None,
                 generator: torch.Generator | None = None,
                 random_start: bool = True) -> torch.Tensor:
    """Linf PGD (Madry et al.) on ``x``: a uniform random start in the eps-ball (drawn from
    ``generator``), then ``steps`` signed-gradient steps of ``step_size`` (None: 2.5 * eps /
    steps), each projected onto the eps-ball and [0, 1]."""
    x = x.detach()
    alpha = step_size if step_size is not None else 2.5 * eps / steps
    x_adv = x.clone()
    if random_start:
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x_adv = (x + (2 * noise - 1) * eps).clamp_(0.0, 1.0)
    for _ in range(steps):
        x_adv = x_adv + alpha * input_gradient(model, x_adv, y).sign()
        x_adv = torch.minimum(torch.maximum(x_adv, x - eps), x + eps).clamp_(0.0, 1.0)
    return x_adv
