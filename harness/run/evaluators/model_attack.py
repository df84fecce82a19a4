"""Inference and extraction cells: the attack runs against the trained victim and reports
its own (declared) metrics."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from harness.contracts.categories import not_built
from harness.contracts.metrics import plugin_metrics
from harness.contracts.specs import ModelAttack
from harness.run.evaluators.base import EvalEnv, Measured
from harness.run.evaluators.scoring import predict
from harness.util.devices import synchronize

if TYPE_CHECKING:
    from harness.contracts.data import ImageData
    from harness.planning.plan import Cell
    from harness.run.provider import TrainedModel


class ModelAttackEvaluator:
    """Scores cells whose attack takes the whole trained model (``run(model, ctx)``)."""

    def __init__(self, env: EvalEnv):
        self.env = env

    def evaluate(self, cell: Cell, trained: TrainedModel, data: ImageData) -> Measured:
        """The attack's metrics, the victim's clean accuracy and the attack's time."""
        env = self.env
        ctx = env.provider.context(cell, trained, data, env.seed)
        synchronize(env.device)
        t0 = time.perf_counter()
        attack = cell.attack.build(cell.attack_params)
        if not isinstance(attack, ModelAttack):
            raise not_built(attack, ModelAttack, f"attack {cell.attack.name}")
        metrics = attack.run(trained.model, ctx)
        synchronize(env.device)
        seconds = time.perf_counter() - t0
        measured = plugin_metrics(f"attack {cell.attack.name}", metrics)
        clean = float((predict(trained.model, data.x_test) == data.y_test).float().mean())
        n_test = {} if cell.n_test is None else {"n_test": cell.n_test}
        return Measured(metrics={**measured, "clean_acc": clean, **n_test},
                        timings={"attack_seconds": seconds})
