"""Certification cells: certify the trained model's smoothed classifier on the test images,
check the certificates before they are scored, report certified accuracy at the radii of
:data:`~harness.contracts.metrics.CERTIFIED_RADII` up to the certifier's cap beside the
smoothed classifier's accuracy under an L2 attack of each radius (the empirical side), and
attack the smoothed classifier within the certified radius of some certified images.

The attack is L2 PGD on the certifier's differentiable stand-in for its smoothed classifier
(Expectation over Transformation through the noise), at each image's own certified radius
(times :data:`INSIDE`, strictly within it), followed by the certifier's PREDICT on the
result: a certified image whose smoothed class changes is a broken certificate (a bug in the
certifier or in the attack; with probability at most alpha it is the noise), counted in
``certificates_broken`` and flagged V by the checks.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import torch

from harness.contracts.categories import not_built
from harness.contracts.certification import Certifier, check_certificates
from harness.contracts.data import batches, to_float
from harness.contracts.metrics import CERTIFIED_RADII, certified_metric, empirical_metric
from harness.contracts.outcomes import encode
from harness.run.evaluators.base import EvalEnv, Measured, cell_images
from harness.run.evaluators.scoring import predict
from harness.util.devices import synchronize

if TYPE_CHECKING:
    from harness.contracts.data import ImageData
    from harness.planning.plan import Cell
    from harness.run.provider import TrainedModel

#: How many certified images (the first correctly certified ones) each cell attacks at their
#: own certified radius.
CHECKED_IMAGES = 20
#: How many test images (the first ones) the smoothed classifier is attacked on at each radius
#: of :data:`CERTIFIED_RADII` up to the cap, for its empirical accuracy beside the certified.
EMPIRICAL_IMAGES = 100
#: Steps of the L2 PGD that attacks them, each of ``STEP_FRACTION`` x the radius.
PGD_STEPS = 20
STEP_FRACTION = 2.5 / PGD_STEPS
#: The attack's budget as a fraction of each image's certified radius: strictly inside it.
INSIDE = 0.999


class CertificationEvaluator:
    """Scores certification cells (one per certifier and its options; no eps)."""

    def __init__(self, env: EvalEnv):
        self.env = env

    def evaluate(self, cell: Cell, trained: TrainedModel, data: ImageData) -> Measured:
        """Certified accuracy at each radius up to the cap, the smoothed classifier's
        accuracy, abstentions, the cap, the certificates attacked and broken, and the
        seconds per certified image."""
        env, model = self.env, trained.model.eval()
        data = cell_images(cell, data, env.seed)
        certifier = cell.attack.build(cell.attack_params)
        if not isinstance(certifier, Certifier):
            raise not_built(certifier, Certifier, f"attack {cell.attack.name}")
        cap = float(certifier.max_radius())
        y = data.y_test
        synchronize(env.device)
        t0 = time.perf_counter()
        found = []
        for idx in batches(len(y), env.attack_batch_size, device=y.device):
            found.append(check_certificates(
                cell.attack.name, certifier.certify(model, to_float(data.x_test[idx])),
                len(idx), data.num_classes, cap))
        synchronize(env.device)
        seconds = time.perf_counter() - t0
        pred = torch.cat([f.prediction.to(y.device) for f in found])
        radius = torch.cat([f.radius.to(y.device).float() for f in found])
        correct = pred == y
        t1 = time.perf_counter()
        checked, broken = attack_certificates(certifier, model, data.x_test, y, pred, radius)
        empirical, more_checked, more_broken = empirical_accuracy(
            certifier, model, data.x_test, y, pred, radius, cap)
        synchronize(env.device)
        attacked = time.perf_counter() - t1
        n = len(y)
        metrics = {
            "clean_acc": int((predict(model, data.x_test) == y).sum()) / len(y),
            "smoothed_acc": int(correct.sum()) / n,
            **{certified_metric(r): int((correct & (radius >= r)).sum()) / n
               for r in CERTIFIED_RADII if r <= cap},
            "abstain_rate": int((pred == -1).sum()) / n, "radius_cap": cap,
            "median_radius": float(radius[pred != -1].median()) if bool((pred != -1).any())
            else float("nan"),
            **empirical, "empirical_n": float(min(EMPIRICAL_IMAGES, n)),
            "certificates_checked": float(checked + more_checked),
            "certificates_broken": float(broken + more_broken), "n_test": float(n)}
        return Measured(metrics=metrics,
                        timings={"attack_seconds": seconds, "seconds_per_image": seconds / n,
                                 "empirical_seconds": attacked},
                        outcomes=encode(data.test_positions.tolist(),
                                        (correct & (radius > 0)).cpu().tolist()))


def attack_certificates(certifier: Certifier, model: torch.nn.Module, x: torch.Tensor,
                        y: torch.Tensor, pred: torch.Tensor, radius: torch.Tensor,
                        limit: int = CHECKED_IMAGES) -> tuple[int, int]:
    """Attack the first ``limit`` correctly certified images within their certified radius;
    return how many were attacked and how many certificates broke (the smoothed classifier's
    PREDICT gives another class, not an abstention, inside the radius)."""
    chosen = torch.nonzero((pred == y) & (radius > 0)).flatten()[:limit]
    if not len(chosen):
        return 0, 0
    x0 = to_float(x[chosen])
    eps = INSIDE * radius[chosen].to(x0.device, x0.dtype)
    x_adv = l2_pgd(certifier.smoothed(model), x0, y[chosen].to(x0.device), eps)
    after = certifier.predict(model, x_adv).to(pred.device)
    broken = (after != -1) & (after != pred[chosen])
    return len(chosen), int(broken.sum())


def empirical_accuracy(certifier: Certifier, model: torch.nn.Module, x: torch.Tensor,
                       y: torch.Tensor, pred: torch.Tensor, radius: torch.Tensor, cap: float,
                       limit: int = EMPIRICAL_IMAGES) -> tuple[dict[str, float], int, int]:
    """The smoothed classifier's accuracy (PREDICT, abstentions wrong) on L2 PGD examples of
    each radius of :data:`CERTIFIED_RADII` up to ``cap``, crafted through its noise, on the
    first ``limit`` images; with how many certificates those attacks tested (images certified
    correctly at that radius or more) and how many of them they broke."""
    k = min(limit, len(y))
    if not k:
        return {}, 0, 0
    x0, y0 = to_float(x[:k]), y[:k].to(x.device)
    smoothed = certifier.smoothed(model)
    out, checked, broken = {}, 0, 0
    for r in (r for r in CERTIFIED_RADII if r <= cap):
        x_adv = l2_pgd(smoothed, x0, y0, torch.full((k,), INSIDE * r, device=x0.device,
                                                     dtype=x0.dtype))
        after = certifier.predict(model, x_adv).to(pred.device)
        out[empirical_metric(r)] = int((after == y[:k]).sum()) / k
        held = (pred[:k] == y[:k]) & (radius[:k] >= r)
        checked += int(held.sum())
        broken += int((held & (after != -1) & (after != pred[:k])).sum())
    return out, checked, broken


def l2_pgd(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor,
           steps: int = PGD_STEPS) -> torch.Tensor:
    """Untargeted L2 PGD on ``model``'s log-probabilities, each image within its own ``eps``
    (a tensor of radii) and in [0, 1]: steps of ``STEP_FRACTION * eps`` along the normalized
    gradient, projected back onto the ball."""
    shape = (-1,) + (1,) * (x.dim() - 1)
    radius, delta = eps.view(shape), torch.zeros_like(x)
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = torch.nn.functional.nll_loss(model(x + delta), y)
        (grad,) = torch.autograd.grad(loss, delta)
        norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(shape)
        with torch.no_grad():
            delta = delta + STEP_FRACTION * radius * grad / norm
            size = delta.flatten(1).norm(dim=1).view(shape)
            delta = delta * torch.clamp(radius / size.clamp_min(1e-12), max=1.0)
            delta = (x + delta).clamp(0, 1) - x
    return (x + delta).detach()
