"""Inference attacks (survey Table 4) from ART: contracts, and checks that they find what is
there (an overfitted victim leaks membership, inversion raises the victim's confidence, a
logistic regression's missing training row is found) and nothing where it is not."""

from __future__ import annotations

import pytest
import torch

from harness.contracts.data import ImageData, ModelInput
from harness.contracts.metrics import MetricSpec
from harness.testing import (
    check_attack_spec,
    tiny_context,
    tiny_image_data,
    trained_tiny_classifier,
)
from harness.util.errors import UsageError
from harness_plugins import art_inference, mlp, sklearn_models

NAMES = ("membership-inference", "model-inversion", "database-reconstruction")


@pytest.fixture
def registry(harness_plugin):
    """The registry with art-inference and the scikit-learn models."""
    harness_plugin(sklearn_models, entry_points=False)
    return harness_plugin(art_inference, entry_points=False)


def _model_context(registry, name, data=None):
    spec = registry.model(name)
    data = data or tiny_image_data()
    c, h, w = data.image_shape
    return tiny_context(data, new_model=lambda: spec.build(ModelInput(c, h, w, data.num_classes),
                                                           None, spec.resolve_options({})),
                        fit=spec.fit)


def _logreg_context(registry, data=None):
    return _model_context(registry, "logreg", data)


def built(registry, name, **options):
    """The attack ``name`` as the runner builds it: options resolved by its spec."""
    spec = registry.attack(name)
    return spec.build(spec.resolve_options(options))


def test_specs_are_table_4_inference_attacks(registry):
    for name in NAMES:
        spec = registry.attack(name)
        assert spec.category == "inference" and spec.survey_table == "Table 4"
        assert not spec.bounded and spec.norm == "none"
    assert registry.attack("database-reconstruction").needs == {"sklearn", "logreg"}
    assert registry.attack("model-inversion").needs == {"gradients"}
    # The cache key is the ART class and the declared defaults, as before options were typed.
    assert registry.attack("model-inversion").key_config() == {
        "art_class": "MIFace", "max_iter": 200, "window_length": 100, "threshold": 0.99,
        "learning_rate": 0.1, "start": 0.0}


def test_declared_metrics_render_as_the_leaderboard_shows_them(registry):
    declared = {m.name: m for n in NAMES for m in registry.attack(n).metrics}
    assert list(declared) == [
        "mi_accuracy", "mi_auc", "mi_advantage", "n_members", "inversion_confidence",
        "inversion_accuracy", "inversion_distance", "inversion_baseline_distance",
        "inversion_start_distance", "reconstruction_l2", "baseline_l2", "label_correct"]
    assert declared["mi_accuracy"] == MetricSpec(name="mi_accuracy",
                                                 label="membership accuracy", format="percent")
    assert declared["mi_auc"].render(0.91234) == "0.912"
    assert declared["n_members"].render(16.0) == "16"
    assert declared["label_correct"].render(0.5) == "50.00%"
    # Reported but not declared: shown in the details column.
    assert "n_rows" not in declared and "n_features" not in declared


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
    declared = {m.name for m in registry.attack("database-reconstruction").metrics}
    assert declared == set(metrics) - {"n_rows", "n_features"}


def test_smoke_budgets_run_and_report_every_declared_metric(registry):
    for name in NAMES:
        spec = registry.attack(name)
        ctx = _logreg_context(registry) if "logreg" in spec.needs else None
        metrics = check_attack_spec(spec, ctx=ctx, options=spec.smoke_options)
        assert {m.name for m in spec.metrics} <= set(metrics), name


def _noise_data(seed: int, n: int = 200) -> ImageData:
    """Random images with random labels: nothing to learn, so a fitted model memorizes."""
    g = torch.Generator().manual_seed(seed)
    return ImageData(torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g),
                     torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g),
                     num_classes=3)


def _memorizer(x: torch.Tensor, y: torch.Tensor) -> torch.nn.Module:
    torch.manual_seed(0)
    model = mlp.build(ModelInput(1, 8, 8, 3), None,
                      mlp.OPTIONS.resolve("model mlp", {"hidden": 256}))
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
    attack = built(registry, "membership-inference", input_type=input_type)
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
    metrics = built(registry, "model-inversion", max_iter=100).run(model, ctx)
    assert metrics["inversion_confidence"] > max(0.9, float(start.max()))
    assert metrics["inversion_accuracy"] == 1.0
    # The reconstructions moved from the blank start towards their classes' training images.
    assert metrics["inversion_distance"] < 0.8 * metrics["inversion_start_distance"]


def test_database_reconstruction_finds_the_missing_row(registry):
    ctx = _logreg_context(registry)
    metrics = built(registry, "database-reconstruction", n_rows=24).run(ctx.clean_model(), ctx)
    assert metrics["label_correct"] == 1.0
    assert metrics["reconstruction_l2"] < 0.25 * metrics["baseline_l2"]


def test_bad_options_and_models_are_usage_errors(registry):
    with pytest.raises(UsageError, match="Its options"):
        built(registry, "membership-inference", n_members=10)
    with pytest.raises(UsageError, match="input_type"):
        built(registry, "membership-inference", input_type="logits")
    with pytest.raises(UsageError, match="start"):
        built(registry, "model-inversion", start=2)
    with pytest.raises(UsageError, match="search"):
        built(registry, "database-reconstruction", search="all")
    with pytest.raises(UsageError, match="epochs"):
        built(registry, "membership-inference", epochs=0)
    attack = built(registry, "database-reconstruction", n_rows=24)
    with pytest.raises(UsageError, match="logreg"):
        attack.run(trained_tiny_classifier(), tiny_context())
    ctx = _model_context(registry, "svm")
    with pytest.raises(UsageError, match="LogisticRegression"):
        attack.run(ctx.clean_model(), ctx)
    with pytest.raises(UsageError, match="n_rows"):
        built(registry, "database-reconstruction", n_rows=4).run(
            _logreg_context(registry).clean_model(), tiny_context())
