"""Corruption cells: the trained model classifies corrupted copies of the test images, every
corruption of the suite at every severity, each batch checked before it is scored.

The generator of each (corruption, severity) is seeded from the run seed, the cell's key and
both names (:func:`harness.util.seeds.derive_seed`), on the run's device, so the corrupted
images are the same whatever ran before and in any executor. The first test image under each
corruption and severity travels with the record (8-bit) for the page's grid figure.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import torch

from harness.contracts.categories import not_built
from harness.contracts.corruption import Corruptions, check_corrupted, corruption_metric
from harness.contracts.data import batches, to_float
from harness.run.adversarial import encode_pixels
from harness.run.evaluators.base import EvalEnv, Measured, cell_images
from harness.run.evaluators.scoring import predict
from harness.util.devices import synchronize
from harness.util.seeds import derive_seed

if TYPE_CHECKING:
    from harness.contracts.data import ImageData
    from harness.planning.plan import Cell
    from harness.run.provider import TrainedModel


class CorruptionEvaluator:
    """Scores corruption cells (one per suite and its options; no eps)."""

    def __init__(self, env: EvalEnv):
        self.env = env

    def evaluate(self, cell: Cell, trained: TrainedModel, data: ImageData) -> Measured:
        """Accuracy per corruption and severity, per corruption (mean over severities), over
        all of them, and the seconds per test image of the whole sweep."""
        env, model = self.env, trained.model.eval()
        data = cell_images(cell, data, env.seed)
        suite = cell.attack.build(cell.attack_params)
        if not isinstance(suite, Corruptions):
            raise not_built(suite, Corruptions, f"attack {cell.attack.name}")
        y = data.y_test
        metrics: dict[str, float] = {}
        shown: dict[str, Any] = {"shape": [1, *data.image_shape], "images": {}}
        synchronize(env.device)
        t0 = time.perf_counter()
        c, h, w = data.image_shape
        names = list(suite.corruptions((c, h, w)))
        for name in names:
            accuracies = []
            for severity in suite.severities(name):
                seed = derive_seed(env.seed, "corruption", cell.key, name, str(severity))
                generator = torch.Generator(device=env.device).manual_seed(seed)
                correct, first = 0, None
                for idx in batches(len(y), env.attack_batch_size, device=y.device):
                    x = to_float(data.x_test[idx])
                    corrupted = check_corrupted(cell.attack.name, name, severity, x,
                                                suite.corrupt(name, x, severity, generator))
                    correct += int((predict(model, corrupted) == y[idx]).sum())
                    first = corrupted[:1] if first is None else first
                accuracies.append(correct / len(y))
                metrics[corruption_metric(name, severity)] = accuracies[-1]
                if first is not None:
                    shown["images"][f"{name}/{severity}"] = encode_pixels(first)
            metrics[corruption_metric(name)] = sum(accuracies) / len(accuracies)
        synchronize(env.device)
        seconds = time.perf_counter() - t0
        means = [metrics[corruption_metric(name)] for name in names]
        metrics.update({
            "clean_acc": int((predict(model, data.x_test) == y).sum()) / len(y),
            "mean_corruption_acc": sum(means) / len(means) if means else float("nan"),
            "n_test": float(len(y))})
        shown["x"] = encode_pixels(to_float(data.x_test[:1]))
        return Measured(metrics=metrics, examples=shown,
                        timings={"attack_seconds": seconds,
                                 "seconds_per_image": seconds / max(len(y), 1)})
