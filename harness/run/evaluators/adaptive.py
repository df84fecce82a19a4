"""Adaptive attacks on input transformations: the model an attack is crafted on (BPDA, EoT).

An input-transformation defense puts a transformation ``T`` in front of the model and
classifies ``model(T(x))``. ``T`` is usually not differentiable (bit-depth reduction, a median
filter, JPEG) or random, so an attack crafted on the undefended model measures transfer, not
robustness: Athalye, Carlini & Wagner, "Obfuscated Gradients Give a False Sense of Security:
Circumventing Defenses to Adversarial Examples", ICML 2018, showed that such defenses fall to
attacks that differentiate through them. The two tools of that paper, built here as modules
that any attack which takes a model can be run on:

- :class:`BPDA` (Backward Pass Differentiable Approximation, section 4.1): the forward pass
  runs the true transformation, so the logits are exactly ``model(T(x))``; the backward pass
  replaces ``T`` by a differentiable ``g`` with ``g(x) ~ T(x)``, the identity by default
  (``dT/dx ~ I``, the paper's choice for the input transformations of Guo et al. and for
  bit-depth reduction), or the transformation's own ``approximate(x)`` when it declares one.
- :class:`EoT` (Expectation over Transformation, section 4.3; Athalye et al., "Synthesizing
  Robust Adversarial Examples", ICML 2018): for a random ``T``, the mean of the logits over
  ``samples`` independent draws.

:func:`adaptive_model` composes them as a transformation's declaration asks
(:attr:`harness.contracts.specs.DefenseSpec.randomized`,
:attr:`~harness.contracts.specs.DefenseSpec.eot_samples`,
and the optional ``approximate`` method of :class:`harness.contracts.specs.InputTransformation`).
The defended pipeline that judges the examples stays ``model(T(x))``, one draw of ``T``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from harness.contracts.specs import EOT_SAMPLES
from harness.planning.plan import adaptive_label  # the label of the cells these models attack

if TYPE_CHECKING:
    from harness.contracts.specs import DefenseSpec

__all__ = ["BPDA", "EOT_SAMPLES", "EoT", "adaptive_label", "adaptive_model",
           "adaptive_model_of", "approximation_of"]

Approximation = Callable[[torch.Tensor], torch.Tensor]


class _ForwardAs(torch.autograd.Function):
    """``value`` in the forward pass, the gradient of ``surrogate`` in the backward pass.

    Unlike ``surrogate + (value - surrogate).detach()``, the forward value is ``value``
    bit for bit (the sum can differ from it in the last bit of a float)."""

    @staticmethod
    def forward(ctx: Any, surrogate: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """A copy of ``value``."""
        return value.clone()

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> tuple[torch.Tensor, None]:
        """The incoming gradient, all of it to ``surrogate``."""
        return grads[0], None


def approximation_of(transformation: Any) -> Approximation | None:
    """The transformation's declared differentiable approximation (its ``approximate``
    method), or None when it declares none (BPDA then uses the identity)."""
    approximate = getattr(transformation, "approximate", None)
    return approximate if callable(approximate) else None


class BPDA(nn.Module):
    """``model(T(x))`` forward, differentiated as ``model(g(x))`` (Athalye et al. 2018, 4.1).

    ``T`` is ``transformation.transform`` (run without gradient); ``g`` is ``approximation``,
    else the transformation's own ``approximate`` method, else the identity (the
    straight-through estimator). The logits equal ``model(transformation.transform(x))``
    exactly; the input gradient is ``J_g(x)^T grad_model(T(x))``: with the identity, the
    model's input gradient at ``T(x)``. Each forward call runs ``T`` once, so a random
    transformation draws afresh on every call (see :class:`EoT`).
    """

    def __init__(self, transformation: Any, model: nn.Module,
                 approximation: Approximation | None = None):
        super().__init__()
        self.transformation = transformation
        self.model = model
        self.approximation = (approximation if approximation is not None
                              else approximation_of(transformation))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The model's logits on ``T(x)``, with the gradient of ``g`` in place of ``T``'s."""
        with torch.no_grad():
            value = self.transformation.transform(x)
        surrogate = x if self.approximation is None else self.approximation(x)
        if surrogate.shape != value.shape:
            raise ValueError(f"BPDA: the approximation's output {tuple(surrogate.shape)} and "
                             f"the transformation's {tuple(value.shape)} differ in shape")
        return self.model(_ForwardAs.apply(surrogate, value))


class EoT(nn.Module):
    """The mean of ``module``'s logits over ``samples`` calls (Expectation over
    Transformation; Athalye et al. 2018, section 4.3).

    Each call of ``module`` (a :class:`BPDA` around a random transformation) draws its own
    randomness, so the output is a Monte Carlo estimate of ``E_t[f(t(x))]``, the expected
    logits, and an attack run on it differentiates its own loss at the averaged logits,
    ``grad_x L(E_t[f(t(x))], y)``. That works unchanged with any attack that takes a model.
    The EoT of Athalye et al. averages the loss gradients instead,
    ``E_t[grad_x L(f(t(x)), y)] = grad_x E_t[L(f(t(x)), y)]``, the gradient of the expected
    loss: the two coincide for a loss linear in the logits and differ otherwise (a
    cross-entropy is not), but both ascend a loss of the randomized classifier, and the
    averaged logits are also what a defense that votes over draws classifies with.
    """

    def __init__(self, module: nn.Module, samples: int):
        super().__init__()
        if samples < 1:
            raise ValueError(f"EoT: samples must be at least 1; got {samples}")
        self.module = module
        self.samples = samples

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The mean of ``samples`` independent evaluations of ``module(x)``."""
        return torch.stack([self.module(x) for _ in range(self.samples)]).mean(dim=0)


def adaptive_model(transformation: Any, model: nn.Module, *, randomized: bool,
                   samples: int = EOT_SAMPLES,
                   approximation: Approximation | None = None) -> nn.Module:
    """The module an adaptive attack on ``model(transformation.transform(x))`` is crafted on:
    :class:`BPDA` of the transformation and the model, inside :class:`EoT` over ``samples``
    draws when the transformation is ``randomized``."""
    bpda = BPDA(transformation, model, approximation)
    return EoT(bpda, samples) if randomized else bpda


def adaptive_model_of(spec: DefenseSpec, transformation: Any, model: nn.Module) -> nn.Module:
    """:func:`adaptive_model` as the defense ``spec`` declares it (``randomized``,
    ``eot_samples``; the approximation is the built ``transformation``'s own, if any)."""
    return adaptive_model(transformation, model, randomized=spec.randomized,
                          samples=spec.eot_samples)

