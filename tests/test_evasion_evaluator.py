"""The evasion evaluator at its floor: clean predictions once per trained model, and the
stored examples checked by comparing tensors (a differing stored copy is re-scored)."""

from __future__ import annotations

import torch

from harness.run.adversarial import AdversarialStore
from harness.run.evaluators.base import EvalEnv
from harness.run.evaluators.evasion import EvasionEvaluator
from harness.run.evaluators.scoring import QueryCounter
from harness.testing import tiny_image_data, trained_tiny_classifier

Counting = QueryCounter     # counts the images it classifies


def evaluator(tmp_path) -> EvasionEvaluator:
    env = EvalEnv(provider=None, adversarial=AdversarialStore(tmp_path),  # type: ignore[arg-type]
                  device=torch.device("cpu"), seed=0, attack_batch_size=16)
    return EvasionEvaluator(env)


def test_clean_predictions_are_computed_once_per_model_and_subset(tmp_path):
    data = tiny_image_data()
    model = Counting(trained_tiny_classifier())
    ev = evaluator(tmp_path)
    first = ev.clean_predictions(model, data.x_test, None)
    assert model.images == len(data.x_test)
    assert torch.equal(ev.clean_predictions(model, data.x_test, None), first)
    assert model.images == len(data.x_test)                 # shared, not recomputed
    ev.clean_predictions(model, data.x_test[:10], 10)        # another subset: its own
    assert model.images == len(data.x_test) + 10
    other = Counting(trained_tiny_classifier(seed=1))
    ev.clean_predictions(other, data.x_test, None)           # another model: its own
    assert other.images == len(data.x_test)
    assert torch.equal(first, trained_tiny_classifier()(data.x_test).argmax(1))


def test_stored_examples_are_compared_not_reclassified_unless_they_differ(tmp_path):
    data = tiny_image_data()
    model = Counting(trained_tiny_classifier())
    ev = evaluator(tmp_path)
    x_adv = (data.x_test + 0.2).clamp(0, 1)
    correct = model.model(x_adv).argmax(1) == data.y_test
    ev.env.adversarial.save("cell", x_adv, data.y_test)
    assert ev._stored_accuracy("cell", model, x_adv, data.y_test, correct) == \
        float(correct.float().mean())
    assert model.images == 0                                 # identical: no forward pass
    ev.env.adversarial.save("cell", data.x_test, data.y_test)   # a stored copy that differs
    clean_correct = model.model(data.x_test).argmax(1) == data.y_test
    assert ev._stored_accuracy("cell", model, x_adv, data.y_test, correct) == \
        float(clean_correct.float().mean())
    assert model.images == len(data.x_test)


def test_an_attacks_own_metrics_are_numbers_or_the_cell_fails_naming_it():
    import pytest

    from harness.contracts.metrics import plugin_metrics

    assert plugin_metrics("attack odd", {"after": 1, "gap": 0.5}) == {"after": 1.0, "gap": 0.5}
    for bad in ({"after": "many"}, {"after": True}, {3: 0.5}):
        with pytest.raises(TypeError, match="attack odd returned non-numeric metrics"):
            plugin_metrics("attack odd", bad)
