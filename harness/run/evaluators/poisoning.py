"""Poisoning cells: the victim retrained on the poisoned set (shared by one attack's cells),
the attack's success on its aimed-at inputs, and a detector's flags scored and removed."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import torch

from harness.contracts.categories import not_built, stage_of
from harness.contracts.specs import PoisonDetector, PoisoningAttack
from harness.planning.plan import digest
from harness.run.evaluators.base import EvalEnv, Measured
from harness.run.evaluators.scoring import predict
from harness.util.devices import synchronize

if TYPE_CHECKING:
    from harness.contracts.context import AttackContext, PoisonedSet
    from harness.contracts.data import ImageData
    from harness.planning.plan import Cell
    from harness.run.provider import TrainedModel


def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((predict(model, x) == y).float().mean())


class PoisoningEvaluator:
    """Scores poisoning cells; keeps the poisoned victims of one job's attacks (its cells
    against ``none`` and against every detector share them)."""

    def __init__(self, env: EvalEnv):
        self.env = env
        self._poisoned: dict[str, tuple[PoisonedSet, torch.nn.Module, float]] = {}

    def _victim(self, cell: Cell, ctx: AttackContext) -> tuple[PoisonedSet, torch.nn.Module,
                                                                float]:
        """The poisoned set and the victim trained on it, shared by the cells of one
        poisoning attack (against ``none`` and against each detector)."""
        key = cell.job.key + digest({"job": cell.job.key, "attack": cell.attack.name,
                      "options": cell.attack_options, "config": cell.attack.key_config(),
                      "n_test": cell.n_test, "seed": self.env.seed})
        if key not in self._poisoned:
            if any(not k.startswith(cell.job.key) for k in self._poisoned):
                self._poisoned.clear()    # a new job: the last job's victims are done
            synchronize(self.env.device)
            t0 = time.perf_counter()
            attack = cell.attack.build(cell.attack_params)
            if not isinstance(attack, PoisoningAttack):
                raise not_built(attack, PoisoningAttack, f"attack {cell.attack.name}")
            poisoned = attack.poison(ctx)
            victim = ctx.new_model()
            ctx.train(victim, poisoned.x_train, poisoned.y_train, "poisoned victim")
            synchronize(self.env.device)
            self._poisoned[key] = (poisoned, victim.eval(), time.perf_counter() - t0)
        return self._poisoned[key]

    def evaluate(self, cell: Cell, trained: TrainedModel, data: ImageData) -> Measured:
        """Attack success and clean accuracy of the poisoned victim; with a detector, its
        precision/recall and the victim retrained without what it flagged."""
        ctx = self.env.provider.context(cell, trained, data, self.env.seed)
        poisoned, victim, seconds = self._victim(cell, ctx)
        x_test, y_test = ctx.data.x_test, ctx.data.y_test
        metrics: dict[str, float] = {"poison_rate": poisoned.rate,
                                     "n_poison": float(poisoned.is_poison.sum()),
                                     **poisoned.details}
        metrics["clean_model_acc"] = _accuracy(trained.model, x_test, y_test)
        metrics.update({"clean_acc": _accuracy(victim, x_test, y_test),
                        "attack_success_rate": attack_success(victim, poisoned),
                        "n_test": len(poisoned.x_eval)})
        if stage_of(cell.defense).detects:
            t0 = time.perf_counter()
            metrics.update(self._detect(cell, ctx, victim, poisoned, x_test, y_test))
            seconds += time.perf_counter() - t0
        return Measured(metrics=metrics, timings={"attack_seconds": seconds})

    @staticmethod
    def _detect(cell: Cell, ctx: AttackContext, victim: torch.nn.Module,
                poisoned: PoisonedSet, x_test: torch.Tensor, y_test: torch.Tensor
                ) -> dict[str, float]:
        detector = cell.defense.build(cell.defense_params)
        if not isinstance(detector, PoisonDetector):
            raise not_built(detector, PoisonDetector, f"defense {cell.defense.name}")
        flagged = detector.detect(victim, poisoned.x_train, poisoned.y_train, ctx)
        scores = detection_scores(flagged, poisoned.is_poison)
        keep = ~flagged.to(poisoned.x_train.device).bool()
        repaired = ctx.new_model()
        ctx.train(repaired, poisoned.x_train[keep], poisoned.y_train[keep],
                  "victim without flagged samples")
        scores["clean_acc_after"] = _accuracy(repaired, x_test, y_test)
        scores["attack_success_after"] = attack_success(repaired, poisoned)
        return scores


def attack_success(model: torch.nn.Module, poisoned: PoisonedSet) -> float:
    """Share of ``poisoned.x_eval`` the victim classifies as the attacker wants.

    Targeted: predicted == ``y_eval`` (the attacker's label). Untargeted: predicted !=
    ``y_eval`` (the true label).
    """
    pred = predict(model, poisoned.x_eval)
    hit = pred == poisoned.y_eval.to(pred.device)
    wanted = hit if poisoned.targeted else ~hit
    return int(wanted.sum()) / len(wanted) if len(wanted) else float("nan")


def detection_scores(flagged: torch.Tensor, is_poison: torch.Tensor) -> dict[str, float]:
    """Precision, recall and F1 of ``flagged`` against the truth ``is_poison``.

    Precision is NaN when nothing was flagged; F1 is 0 when nothing poisoned was found.
    """
    flagged = flagged.detach().cpu().bool()
    truth = is_poison.detach().cpu().bool()
    if flagged.shape != truth.shape:
        raise ValueError(f"the detector returned {tuple(flagged.shape)} flags for "
                         f"{len(truth)} training samples")
    tp = int((flagged & truth).sum())
    n_flagged, n_poison = int(flagged.sum()), int(truth.sum())
    precision = tp / n_flagged if n_flagged else float("nan")
    recall = tp / n_poison if n_poison else float("nan")
    f1 = 2 * tp / (n_flagged + n_poison) if n_flagged + n_poison else float("nan")
    return {"precision": precision, "recall": recall, "f1": f1, "flagged": float(n_flagged)}
