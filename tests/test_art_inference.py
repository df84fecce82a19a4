"""Inference attacks (survey Table 4) from ART: contracts, and checks that they find what is
there (an overfitted victim leaks membership, inversion raises the victim's confidence, a
logistic regression's missing training row is found) and nothing where it is not."""

from __future__ import annotations

import pytest
import torch

from harness.data import ImageData, ModelInput
from harness.errors import UsageError
from harness.testing import (
    check_attack_spec,
    tiny_context,
    tiny_image_data,
    trained_tiny_classifier,
)
from harness_plugins import art_inference, mlp, sklearn_models

NAMES = ("membership-inference", "model-inversion", "database-reconstruction")


@pytest.fixture
def registry(harness_plugin):
    """The registry with art-inference and the scikit-learn models."""
    harness_plugin(sklearn_models, entry_points=False)
    return harness_plugin(art_inference, entry_points=False)


def _logreg_context(registry, data=None):
    spec = registry.model("logreg")[0]
    data = data or tiny_image_data()
    c, h, w = data.image_shape
    return tiny_context(data, new_model=lambda: spec.build(ModelInput(c, h, w, data.num_classes),
                                                           None, {}), fit=spec.fit)


def test_specs_are_table_4_inference_attacks(registry):
    for name in NAMES:
        spec = registry.attack(name)
        assert spec.category == "inference" and spec.survey_table == "Table 4"
        assert not spec.bounded and spec.norm == "none"
    assert registry.attack("database-reconstruction").needs == {"sklearn", "logreg"}
    assert registry.attack("model-inversion").needs == {"gradients"}


def test_membership_inference_contract(registry):
    metrics = check_attack_spec(registry.attack("membership-inference"),
                                options={"n_samples": 32, "epochs": 5})
    assert metrics["n_members"] == 16
    assert 0 <= metrics["mi_accuracy"] <= 1 and 0 <= metrics["mi_auc"] <= 1


def test_model_inversion_contract(registry):
    metrics = check_attack_spec(registry.attack("model-inversion"), options={"max_iter": 20})
    assert 0 <= metrics["inversion_confidence"] <= 1


def test_database_reconstruction_contract(registry):
    ctx = _logreg_context(registry)
    metrics = check_attack_spec(registry.attack("database-reconstruction"), ctx=ctx,
                                model=ctx.clean_model(), options={"n_rows": 24})
    assert metrics["n_features"] == 16 and metrics["n_rows"] == 24


def _noise_data(seed: int, n: int = 200) -> ImageData:
    """Random images with random labels: nothing to learn, so a fitted model memorizes."""
    g = torch.Generator().manual_seed(seed)
    return ImageData(torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g),
                     torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g),
                     num_classes=3)


def _memorizer(x: torch.Tensor, y: torch.Tensor) -> torch.nn.Module:
    torch.manual_seed(0)
    model = mlp.build(ModelInput(1, 8, 8, 3), None, {"hidden": 256})
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


@pytest.mark.parametrize("input_type", ["prediction", "loss"])
def test_membership_inference_finds_memorized_members_and_nothing_else(registry, input_type):
    data = _noise_data(0)
    victim = _memorizer(data.x_train, data.y_train)
    assert float((victim(data.x_train).argmax(1) == data.y_train).float().mean()) == 1.0
    attack = registry.attack("membership-inference").build({"input_type": input_type})
    leak = attack.run(victim, tiny_context(data))
    assert leak["mi_auc"] > 0.85 and leak["mi_accuracy"] > 0.75 and leak["mi_advantage"] > 0.5
    # A victim trained on other images: "members" and non-members are alike to it.
    other = _noise_data(1)
    blind = attack.run(_memorizer(other.x_train, other.y_train), tiny_context(data))
    assert abs(blind["mi_auc"] - 0.5) < 0.15 and abs(blind["mi_advantage"]) < 0.25


def test_model_inversion_raises_the_victims_confidence(registry):
    model = trained_tiny_classifier()
    ctx = tiny_context()
    with torch.no_grad():
        start = model(torch.zeros(1, 1, 8, 8)).softmax(1)
    metrics = registry.attack("model-inversion").build({"max_iter": 100}).run(model, ctx)
    assert metrics["inversion_confidence"] > max(0.9, float(start.max()))
    assert metrics["inversion_accuracy"] == 1.0
    # The reconstructions moved from the blank start towards their classes' training images.
    assert metrics["inversion_distance"] < 0.8 * metrics["inversion_start_distance"]


def test_database_reconstruction_finds_the_missing_row(registry):
    ctx = _logreg_context(registry)
    metrics = registry.attack("database-reconstruction").build({"n_rows": 24}).run(
        ctx.clean_model(), ctx)
    assert metrics["label_correct"] == 1.0
    assert metrics["reconstruction_l2"] < 0.25 * metrics["baseline_l2"]


def test_bad_options_and_models_are_usage_errors(registry):
    with pytest.raises(UsageError, match="Its options"):
        registry.attack("membership-inference").build({"n_members": 10})
    with pytest.raises(UsageError, match="input_type"):
        registry.attack("membership-inference").build({"input_type": "logits"})
    with pytest.raises(UsageError, match="start"):
        registry.attack("model-inversion").build({"start": 2})
    with pytest.raises(UsageError, match="search"):
        registry.attack("database-reconstruction").build({"search": "all"})
    attack = registry.attack("database-reconstruction").build({"n_rows": 24})
    with pytest.raises(UsageError, match="logreg"):
        attack.run(trained_tiny_classifier(), tiny_context())
    svm = registry.model("svm")[0]
    ctx = tiny_context(new_model=lambda: svm.build(ModelInput(1, 8, 8, 3), None, {}),
                       fit=svm.fit)
    with pytest.raises(UsageError, match="LogisticRegression"):
        attack.run(ctx.clean_model(), ctx)
    with pytest.raises(UsageError, match="n_rows"):
        registry.attack("database-reconstruction").build({"n_rows": 4}).run(
            _logreg_context(registry).clean_model(), tiny_context())
