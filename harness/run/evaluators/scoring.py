"""Clean and robust accuracy of a trained model under one attack at one eps, with timings."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from harness.contracts.data import batches, to_float
from harness.contracts.specs import Attack
from harness.util.devices import synchronize
from harness.util.errors import InvalidAttackOutput, quoted
from harness.util.progress import progress_bar

# A change smaller than this (a float32 rounding of a clipped pixel) does not count for L0.
L0_TOLERANCE = 1e-4
# How far outside [0, 1] a pixel may be (float rounding), and the slack on a budget: a
# perturbation of size ``m`` is within ``eps`` when ``m <= eps * (1 + rel) + abs``.
RANGE_TOLERANCE = 1e-6
BUDGET_RTOL, BUDGET_ATOL = 1e-5, 1e-6
_NORM_LABELS = {"inf": "Linf", "2": "L2", "1": "L1", "0": "L0"}


@dataclass(frozen=True)
class Budget:
    """The budget a bounded attack's output is held to: ``eps`` in the attack's declared
    ``norm``, one of ``"inf"``, ``"2"``, ``"1"``, ``"0"`` (for L0, ``eps`` counts the pixel
    values changed by more than ``L0_TOLERANCE``). Norms without an Lp budget
    (``"wasserstein"``, ``"none"``) are not budget-checked: :meth:`of` gives None for them."""

    norm: str
    eps: float

    @classmethod
    def of(cls, norm: str, bounded: bool, eps: float | None) -> Budget | None:
        """The budget of an attack declaring ``norm`` and ``bounded`` run at ``eps``; None
        when there is none to check (unbounded attack, no eps, or a norm that is not Lp)."""
        if not bounded or eps is None or norm not in _NORM_LABELS:
            return None
        return cls(norm, eps)

    @property
    def label(self) -> str:
        """``'Linf'``, ``'L2'``, ``'L1'`` or ``'L0'``."""
        return _NORM_LABELS[self.norm]

    def sizes(self, delta: torch.Tensor) -> torch.Tensor:
        """Each image's perturbation size in this norm (``delta`` flattened per image)."""
        if self.norm == "inf":
            return delta.abs().amax(1)
        if self.norm == "2":
            return delta.norm(dim=1)
        if self.norm == "1":
            return delta.abs().sum(1)
        return (delta.abs() > L0_TOLERANCE).sum(1).float()

    def bound(self) -> float:
        """The largest size accepted: ``eps`` with its relative and absolute slack."""
        return self.eps * (1 + BUDGET_RTOL) + BUDGET_ATOL


class QueryCounter(torch.nn.Module):
    """Wraps a model and counts the images it is asked about (every forward pass)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self.images = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The wrapped model's logits; counts ``len(x)`` queries."""
        self.images += len(x)
        return self.model(x)


@dataclass(frozen=True)
class AttackResult:
    """The numbers one (model, attack, eps) cell reports. Accuracies are fractions in [0, 1].

    Mean norms are over all images; median norms over the successful perturbations only
    (NaN when there are none). Queries count every image the attack sent through the model.
    """

    clean_acc: float
    robust_acc: float
    attack_success_rate: float
    mean_linf: float
    mean_l2: float
    median_l0: float
    median_l2: float
    median_linf: float
    queries_per_image: float
    n_test: int
    attack_seconds: float
    x_adv: torch.Tensor | None = None
    robust_correct: torch.Tensor | None = None
    # With ``keep_adversarial``: each image's clean correctness and perturbation sizes
    # (columns Linf, L2, L0) and the queries, so that parts can be combined (:func:`combined`).
    clean_correct: torch.Tensor | None = None
    sizes: torch.Tensor | None = None
    queries: int = 0

    @property
    def attack_images_per_s(self) -> float:
        """Test images attacked per second (GPU work synchronized before the clock is read)."""
        return self.n_test / self.attack_seconds if self.attack_seconds > 0 else float("nan")


@torch.no_grad()
def predict(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Predicted labels of ``model`` (in eval mode) for ``x`` (float, or uint8 converted per
    batch), batch by batch."""
    model.eval()
    return torch.cat([model(to_float(x[idx])).argmax(1) for idx in batches(len(x), batch_size,
                                                                   device=x.device)])


def _median(values: torch.Tensor) -> float:
    return float(values.float().median()) if len(values) else float("nan")


def evaluate_attack(model: torch.nn.Module, attack: Attack, x: torch.Tensor, y: torch.Tensor,
                    eps: float | None, *, batch_size: int = 256, label: str = "attack",
                    show_progress: bool = True, defended: torch.nn.Module | None = None,
                    keep_adversarial: bool = False, name: str = "attack",
                    budget: Budget | None = None,
                    clean_predictions: torch.Tensor | None = None) -> AttackResult:
    """Attack every test image and measure accuracy before and after.

    Every batch the attack returns is verified before it is scored: the input's shape and
    dtype, finite, in [0, 1] (up to ``RANGE_TOLERANCE``) and, given a ``budget``, within it
    (up to its slack); a violation raises :class:`InvalidAttackOutput` naming the attack
    (``name``, its plugin name), the measured value and the bound: nothing invalid is scored.

    The attack success rate counts, among the images the model classified correctly, those
    whose adversarial version it gets wrong. Perturbation norms are means over all images.
    ``defended`` (an input transformation in front of ``model``) classifies the clean and
    adversarial images instead of ``model``, while the attack is crafted on ``model``: the
    non-adaptive evaluation of an input-transformation defense. ``keep_adversarial`` returns
    the adversarial examples in the result. ``clean_predictions`` are the judge's labels for
    ``x`` when the caller has them already (they are computed otherwise). uint8 images are
    converted batch by batch (:func:`harness.contracts.data.to_float`); the attack sees float ones.
    """
    model.eval()
    judge = defended.eval() if defended is not None else model
    clean = clean_predictions if clean_predictions is not None else predict(judge, x)
    clean_correct = clean == y
    robust_correct = torch.empty_like(clean_correct)
    linf = torch.empty(len(x), device=x.device)
    l2 = torch.empty(len(x), device=x.device)
    l0 = torch.empty(len(x), device=x.device)
    adv_dtype = torch.float32 if x.dtype == torch.uint8 else x.dtype   # what to_float gives
    x_adv_all = (torch.empty(x.shape, dtype=adv_dtype, device=x.device) if keep_adversarial
                 else None)
    counter = QueryCounter(model).eval()
    seconds = 0.0
    bar = progress_bar(total=len(x), desc=label, unit="img", enabled=show_progress)
    try:
        for idx in batches(len(x), batch_size, device=x.device):
            xb, yb = to_float(x[idx]), y[idx]
            synchronize(x.device)
            t0 = time.perf_counter()
            x_adv = attack.perturb(counter, xb, yb, eps)
            synchronize(x.device)
            seconds += time.perf_counter() - t0
            _check_output(x_adv, xb, name)
            delta = (x_adv.detach() - xb).flatten(1)
            sizes = {"inf": delta.abs().amax(1), "2": delta.norm(dim=1),
                     "0": (delta.abs() > L0_TOLERANCE).sum(1).float()}
            if budget is not None:
                measured = sizes[budget.norm] if budget.norm in sizes else budget.sizes(delta)
                _check_budget(measured, budget, name)
            linf[idx], l2[idx], l0[idx] = sizes["inf"], sizes["2"], sizes["0"]
            robust_correct[idx] = predict(judge, x_adv.detach()) == yb
            if x_adv_all is not None:
                x_adv_all[idx] = x_adv.detach()
            bar.update(len(idx))
    finally:
        bar.close()
    return _result(clean_correct, robust_correct, linf, l2, l0, counter.images, seconds,
                   x_adv_all)


def combined(parts: list[AttackResult]) -> AttackResult:
    """One result from ``parts`` that attacked consecutive ranges of the same images (each
    made with ``keep_adversarial``): the numbers are those of one run over all of them, the
    seconds and queries their sums."""
    if not parts or any(p.x_adv is None or p.robust_correct is None or p.sizes is None
                        or p.clean_correct is None for p in parts):
        raise ValueError("combined() needs parts made with keep_adversarial=True")
    return scored(torch.cat([p.clean_correct for p in parts if p.clean_correct is not None]),
                  torch.cat([p.robust_correct for p in parts if p.robust_correct is not None]),
                  torch.cat([p.sizes for p in parts if p.sizes is not None]),
                  sum(p.queries for p in parts), sum(p.attack_seconds for p in parts),
                  torch.cat([p.x_adv for p in parts if p.x_adv is not None]))


def scored(clean_correct: torch.Tensor, robust_correct: torch.Tensor, sizes: torch.Tensor,
           queries: int, seconds: float, x_adv: torch.Tensor) -> AttackResult:
    """The result of images attacked into ``x_adv``, from their outcomes, their perturbation
    ``sizes`` (columns Linf, L2, L0), the queries and the seconds it took."""
    return _result(clean_correct, robust_correct, sizes[:, 0], sizes[:, 1], sizes[:, 2],
                   queries, seconds, x_adv)


def _check_output(x_adv: torch.Tensor, x: torch.Tensor, name: str) -> None:
    """An attack's output for the batch ``x``: a tensor of the same shape and dtype, finite, in
    [0, 1] (:class:`InvalidAttackOutput` otherwise). One host sync per batch: NaN and inf
    show in the minimum or maximum."""
    attack = f"attack {quoted(name)}"
    if not isinstance(x_adv, torch.Tensor):
        raise InvalidAttackOutput(f"{attack} returned a {type(x_adv).__name__}, not a tensor")
    if x_adv.shape != x.shape:
        raise InvalidAttackOutput(f"{attack} returned shape {tuple(x_adv.shape)} for input "
                                  f"{tuple(x.shape)}")
    if x_adv.dtype != x.dtype:
        raise InvalidAttackOutput(f"{attack} returned {x_adv.dtype} images for {x.dtype} "
                                  f"ones; it must return the input's dtype (x_adv.to(x.dtype))")
    low, high = torch.stack(torch.aminmax(x_adv.detach().float())).tolist()
    if not (math.isfinite(low) and math.isfinite(high)):
        raise InvalidAttackOutput(f"{attack} returned non-finite values (NaN or inf) in its "
                                  "adversarial examples")
    if low < -RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
        raise InvalidAttackOutput(f"{attack} returned values outside [0, 1] (min {low:.6g}, "
                                  f"max {high:.6g})")


def _check_budget(sizes: torch.Tensor, budget: Budget, name: str) -> None:
    """Each image's perturbation size (in the budget's norm) within the budget."""
    largest = float(sizes.max())
    if largest > budget.bound():
        raise InvalidAttackOutput(f"attack {quoted(name)} exceeded its budget: max "
                                  f"{budget.label} {largest:.6g} > eps {budget.eps:g}")


def _result(clean_correct: torch.Tensor, robust_correct: torch.Tensor, linf: torch.Tensor,
            l2: torch.Tensor, l0: torch.Tensor, queries: int, seconds: float,
            x_adv: torch.Tensor | None) -> AttackResult:
    """The cell's numbers from its per-image outcomes and perturbation sizes."""
    n = len(clean_correct)
    n_clean = int(clean_correct.sum())
    success = clean_correct & ~robust_correct
    fooled = int(success.sum())
    return AttackResult(
        clean_acc=n_clean / n,
        robust_acc=int(robust_correct.sum()) / n,
        attack_success_rate=fooled / n_clean if n_clean else float("nan"),
        mean_linf=float(linf.mean()),
        mean_l2=float(l2.mean()),
        median_l0=_median(l0[success]),
        median_l2=_median(l2[success]),
        median_linf=_median(linf[success]),
        queries_per_image=queries / n,
        n_test=n,
        attack_seconds=seconds,
        x_adv=x_adv,
        robust_correct=robust_correct,
        clean_correct=clean_correct if x_adv is not None else None,
        sizes=torch.stack([linf, l2, l0], 1) if x_adv is not None else None,
        queries=queries,
    )
