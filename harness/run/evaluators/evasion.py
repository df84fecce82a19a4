"""Evasion cells: attack the test images (through an input transformation when the cell's
defense is one), score them, keep the examples, and check the stored ones.

The clean predictions of a trained model are computed once and shared by all its cells (a
deterministic model in eval mode predicts the same labels for the same images); the stored
examples are checked by reading them back and comparing them with what was scored, tensor
for tensor, so no forward pass is spent on re-scoring identical images."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from harness.contracts.categories import not_built, stage_of
from harness.contracts.metrics import plugin_metrics
from harness.contracts.outcomes import encode
from harness.contracts.specs import Attack, InputTransformation
from harness.run.adversarial import examples
from harness.run.evaluators.base import EvalEnv, Measured, cell_images
from harness.run.evaluators.chunks import evaluate_in_chunks
from harness.run.evaluators.scoring import AttackResult, Budget, evaluate_attack, predict

if TYPE_CHECKING:
    from harness.contracts.data import ImageData
    from harness.planning.plan import Cell
    from harness.run.provider import TrainedModel


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
        # (model, n_test) -> the model's clean predictions on those test images: the cells of
        # one trained model share them (only the latest model's are kept).
        self._clean: tuple[torch.nn.Module, dict[int | None, torch.Tensor]] | None = None

    def clean_predictions(self, model: torch.nn.Module, x: torch.Tensor,
                          n_test: int | None) -> torch.Tensor:
        """``model``'s labels for the test images ``x`` (the first ``n_test`` of the run's
        subset), computed once per model and subset."""
        if self._clean is None or self._clean[0] is not model:
            self._clean = (model, {})
        known = self._clean[1]
        if n_test not in known or len(known[n_test]) != len(x):
            known[n_test] = predict(model, x)
        return known[n_test]

    def evaluate(self, cell: Cell, trained: TrainedModel, data: ImageData) -> Measured:
        """Robust accuracy, perturbation sizes, queries and throughput of ``cell``. The
        attack's output is verified before it is scored (shape, finite, [0, 1], and for a
        bounded attack its eps in its declared Lp norm; see :class:`Budget`): an invalid one
        raises :class:`harness.util.errors.InvalidAttackOutput` and the cell fails. An attack with
        a ``metrics()`` method adds its own numbers over the cell (declared in its spec)."""
        env, model = self.env, trained.model
        data = cell_images(cell, data, env.seed)
        defended, target = _pipeline(cell, model)
        # An input transformation may be random: its clean predictions stay the cell's own.
        clean = (self.clean_predictions(model, data.x_test, cell.n_test) if defended is None
                 else None)
        attack = _built(cell)
        measure = getattr(attack, "metrics", None)
        result, config = self._score(cell, attack, model if target is None else target,
                                     defended, data, clean, chunks=measure is None)
        x_adv, robust_correct = result.x_adv, result.robust_correct
        assert x_adv is not None and robust_correct is not None, \
            "evaluate_attack(keep_adversarial=True) returns x_adv and robust_correct"
        judge = defended if defended is not None else model
        env.adversarial.save(cell.key, x_adv, data.y_test)
        env.chunks.remove(cell.key)
        stored_acc = self._stored_accuracy(cell.key, judge, x_adv, data.y_test, robust_correct)
        shown = examples(data.x_test, x_adv, data.y_test,
                         predict(judge, data.x_test[:4]), predict(judge, x_adv[:4]),
                         class_names=data.class_names)
        own = plugin_metrics(f"attack {cell.attack.name}", measure()) if measure else {}
        return Measured(
            metrics={**own, "clean_acc": result.clean_acc, "robust_acc": result.robust_acc,
                     "attack_success_rate": result.attack_success_rate,
                     "mean_linf": result.mean_linf, "mean_l2": result.mean_l2,
                     "median_l0": result.median_l0, "median_l2": result.median_l2,
                     "median_linf": result.median_linf,
                     "queries_per_image": result.queries_per_image, "n_test": result.n_test,
                     "num_classes": float(data.num_classes), "stored_robust_acc": stored_acc},
            timings={"attack_seconds": result.attack_seconds,
                     "attack_images_per_s": result.attack_images_per_s},
            examples=shown, outcomes=encode(data.test_positions.tolist(),
                                            robust_correct.cpu().tolist()),
            config=config)

    def _score(self, cell: Cell, attack: Attack, model: torch.nn.Module,
               defended: torch.nn.Module | None, data: ImageData, clean: torch.Tensor | None,
               *, chunks: bool) -> tuple[AttackResult, dict[str, Any]]:
        """``attack`` crafted on ``model`` against every test image (judged by ``defended``
        when there is one), in chunks when the cell asks for them and ``chunks`` allows it
        (not for an attack reporting its own metrics over the whole cell); with what the
        record's config says of the chunks."""
        env = self.env
        budget = f"eps={cell.eps:g}" if cell.eps is not None else "unbounded"
        mode = f" [{cell.adaptive}]" if cell.adaptive else ""

        def attack_range(start: int, stop: int, attack: Attack | None = None) -> AttackResult:
            """Score a fresh attack (or ``attack``) on test images ``[start, stop)``."""
            return evaluate_attack(
                model, attack if attack is not None else _built(cell),
                data.x_test[start:stop], data.y_test[start:stop], cell.eps,
                batch_size=env.attack_batch_size,
                label=f"{cell.attack.name}{mode} {budget} on {cell.defense.name}",
                show_progress=env.show_progress, defended=defended, keep_adversarial=True,
                name=cell.attack.name,
                budget=Budget.of(cell.attack.norm, cell.attack.bounded, cell.eps),
                clean_predictions=clean[start:stop] if clean is not None else None)

        if cell.chunk_images is None:
            return attack_range(0, len(data.x_test), attack), {}
        if not chunks:
            return attack_range(0, len(data.x_test), attack), {"chunks": (
                "not used: the attack reports its own metrics over the whole cell")}
        result, done = evaluate_in_chunks(env.chunks, cell.key, env.seed, data.x_test,
                                          cell.chunk_images, attack_range)
        return result, {"chunks": done}

    def _stored_accuracy(self, key: str, judge: torch.nn.Module, x_adv: torch.Tensor,
                         y: torch.Tensor, robust_correct: torch.Tensor) -> float:
        """The robust accuracy of the examples as stored: read back and compared with the
        scored ones; identical tensors score what was scored, and only a stored copy that
        differs is classified again (the "stored examples" check then reports the gap)."""
        x_stored, y_stored = self.env.adversarial.load(key, self.env.device)
        if torch.equal(x_stored, x_adv.detach()) and torch.equal(y_stored, y):
            correct = robust_correct
        else:
            correct = predict(judge, x_stored) == y_stored
        return float(correct.sum()) / len(correct)


def _built(cell: Cell) -> Attack:
    """``cell``'s attack object, checked against the evasion protocol."""
    attack = cell.attack.build(cell.attack_params)
    if not isinstance(attack, Attack):
        raise not_built(attack, Attack, f"attack {cell.attack.name}")
    return attack


def _pipeline(cell: Cell, model: torch.nn.Module
              ) -> tuple[torch.nn.Module | None, torch.nn.Module | None]:
    """For a cell of an input transformation: the defended model that judges the images and,
    for an adaptive cell, the model the attack is crafted on (BPDA through the transformation,
    with EoT when it is randomized); ``(None, None)`` for any other cell."""
    if not stage_of(cell.defense).on_baseline or cell.defense.baseline:
        return None, None
    transformation = cell.defense.build(cell.defense_params)
    if not isinstance(transformation, InputTransformation):
        raise not_built(transformation, InputTransformation, f"defense {cell.defense.name}")
    if not cell.adaptive:
        return Transformed(transformation, model), None
    from harness.run.evaluators.adaptive import adaptive_model_of

    return (Transformed(transformation, model),
            adaptive_model_of(cell.defense, transformation, model))
