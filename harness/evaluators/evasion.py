"""Evasion cells: attack the test images (through an input transformation when the cell's
defense is one), score them, keep the examples, and re-check the stored ones."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from harness.adversarial import examples
from harness.categories import stage_of
from harness.evaluation import Budget, evaluate_attack, predict
from harness.evaluators.base import EvalEnv, ok_result

if TYPE_CHECKING:
    from harness.data import ImageData
    from harness.plan import Cell
    from harness.provider import TrainedModel
    from harness.records import Result


class Transformed(torch.nn.Module):
    """An input-transformation defense in front of a model: ``model(transform(x))``."""

    def __init__(self, transformation: Any, model: torch.nn.Module):
        super().__init__()
        self.transformation = transformation
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The model's logits on the transformed images."""
        with torch.no_grad():
            x = self.transformation.transform(x)
        return self.model(x)


class EvasionEvaluator:
    """Scores evasion cells (one per attack and eps)."""

    def __init__(self, env: EvalEnv):
        self.env = env

    def evaluate(self, cell: Cell, trained: TrainedModel, data: ImageData) -> Result:
        """Robust accuracy, perturbation sizes, queries and throughput of ``cell``. The
        attack's output is verified before it is scored (shape, finite, [0, 1], and for a
        bounded attack its eps in its declared Lp norm; see :class:`Budget`): an invalid one
        raises :class:`harness.errors.InvalidAttackOutput` and the cell fails."""
        env, model = self.env, trained.model
        if cell.n_test is not None and cell.n_test < len(data.x_test):
            data = data.subset(None, cell.n_test, env.seed)
        budget = f"eps={cell.eps:g}" if cell.eps is not None else "unbounded"
        defended = None
        if stage_of(cell.defense).on_baseline and not cell.defense.baseline:
            defended = Transformed(cell.defense.build(cell.defense_params), model)
        attack = cell.attack.build(cell.attack_params)
        result = evaluate_attack(
            model, attack, data.x_test, data.y_test, cell.eps,
            batch_size=env.attack_batch_size,
            label=f"{cell.attack.name} {budget} on {cell.defense.name}",
            show_progress=env.show_progress, defended=defended, keep_adversarial=True,
            name=cell.attack.name,
            budget=Budget.of(cell.attack.norm, cell.attack.bounded, cell.eps))
        x_adv = result.x_adv
        assert x_adv is not None, "evaluate_attack(keep_adversarial=True) returns x_adv"
        judge = defended if defended is not None else model
        env.adversarial.save(cell.key, x_adv, data.y_test)
        x_stored, y_stored = env.adversarial.load(cell.key, env.device)
        stored_acc = float((predict(judge, x_stored) == y_stored).sum()) / len(y_stored)
        shown = examples(data.x_test, x_adv, data.y_test,
                         predict(judge, data.x_test[:4]), predict(judge, x_adv[:4]))
        return ok_result(
            cell, env, trained,
            metrics={"num_classes": float(data.num_classes), "stored_robust_acc": stored_acc},
            examples=shown, clean_acc=result.clean_acc, robust_acc=result.robust_acc,
            attack_success_rate=result.attack_success_rate, mean_linf=result.mean_linf,
            mean_l2=result.mean_l2, median_l0=result.median_l0, median_l2=result.median_l2,
            median_linf=result.median_linf, queries_per_image=result.queries_per_image,
            n_test=result.n_test, attack_seconds=result.attack_seconds,
            attack_images_per_s=result.attack_images_per_s)
