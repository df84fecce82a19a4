"""The certification category's contract: what a certifier returns, how it is checked before
it is scored, and the numbers a certification cell reports.

A certifier (randomized smoothing, Cohen et al. 2019, is the built-in one) says of each test
image which class its smoothed classifier gives and the L2 radius within which that class
provably holds (with probability at least ``1 - alpha`` over its noise draws), or that it
abstains. A certificate is a claim, so the evaluator also attacks the smoothed classifier at
each certified radius (:mod:`harness.run.evaluators.certification`): a certified image that
the attack breaks within its radius is a broken certificate (flag V), never a number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from harness.util.errors import InvalidAttackOutput, quoted

if TYPE_CHECKING:
    import torch

#: A certified radius may exceed the cap by float rounding only.
RADIUS_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Certificates:
    """A certifier's verdict on a batch of images: ``prediction`` (int64, the smoothed
    classifier's class, ``-1`` where it abstains) and ``radius`` (float, the certified L2
    radius in pixel units of [0, 1]; 0 where it abstains)."""

    prediction: torch.Tensor
    radius: torch.Tensor


@runtime_checkable
class Certifier(Protocol):
    """What a certification spec's factory returns.

    ``model`` is the trained base classifier in eval mode (logits); ``x`` images in [0, 1] on
    its device. Every method draws its noise from a generator of its own, seeded, so a cell
    gives the same certificates twice.
    """

    def certify(self, model: torch.nn.Module, x: torch.Tensor) -> Certificates:
        """Each image's certified class and radius (CERTIFY of Cohen et al.)."""
        ...

    def predict(self, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        """The smoothed classifier's class of each image, ``-1`` where it abstains
        (PREDICT): what a certified class must stay within the certified radius."""
        ...

    def smoothed(self, model: torch.nn.Module) -> torch.nn.Module:
        """A differentiable stand-in for the smoothed classifier (log of the mean softmax
        over fresh noise draws: Expectation over Transformation) for attacks to craft on."""
        ...

    def max_radius(self) -> float:
        """The largest radius this certifier can certify (its sample size and alpha)."""
        ...


def check_certificates(name: str, found: object, n: int, num_classes: int,
                       cap: float) -> Certificates:
    """``found``, what certifier ``name`` returned for ``n`` images, checked before it is
    scored: :class:`Certificates` of ``n`` int64 classes in ``[-1, num_classes)`` and ``n``
    finite radii in ``[0, cap]``, 0 where it abstains; :class:`InvalidAttackOutput` naming the
    certifier and what was wrong otherwise."""
    import torch

    who = f"certifier {quoted(name)}"
    if not isinstance(found, Certificates):
        raise InvalidAttackOutput(f"{who} returned a {type(found).__name__}, not Certificates")
    pred, radius = found.prediction, found.radius
    if pred.shape != (n,) or radius.shape != (n,):
        raise InvalidAttackOutput(f"{who} returned predictions {tuple(pred.shape)} and radii "
                                  f"{tuple(radius.shape)} for {n} images")
    if pred.dtype != torch.int64 or not radius.is_floating_point():
        raise InvalidAttackOutput(f"{who} returned {pred.dtype} predictions and {radius.dtype} "
                                  "radii; it must return int64 classes and float radii")
    if n and (int(pred.min()) < -1 or int(pred.max()) >= num_classes):
        raise InvalidAttackOutput(f"{who} returned a class outside [-1, {num_classes})")
    largest = float(radius.max()) if n else 0.0
    if n and (not math.isfinite(largest) or float(radius.min()) < 0):
        raise InvalidAttackOutput(f"{who} returned a negative or non-finite radius")
    if largest > cap + RADIUS_TOLERANCE:
        raise InvalidAttackOutput(f"{who} certified radius {largest:.6g}, above the largest its "
                                  f"sample size allows ({cap:.6g}, its max_radius())")
    if n and bool(((pred == -1) & (radius != 0)).any()):
        raise InvalidAttackOutput(f"{who} gave a radius to an image it abstains on")
    return found
