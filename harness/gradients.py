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
