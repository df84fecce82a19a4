"""Models mlp, svm and logreg: contracts, the scikit-learn fit copied exactly into torch, the
estimator rebuilt from cached weights, and the MLP's single hidden ReLU layer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from harness.contracts.data import ModelInput
from harness.contracts.specs import TORCH_MODEL_OFFERS
from harness.run.model_cache import ModelCache
from harness.testing import check_model_spec, tiny_image_data
from harness.train.loop import TrainContext, TrainData, TrainSettings
from harness.util.errors import UsageError
from harness_plugins import mlp, sklearn_models


def _fit(spec, data=None, options=None):
    data = data or tiny_image_data()
    c, h, w = data.image_shape
    model = spec.build(ModelInput(c, h, w, data.num_classes), None,
                       spec.resolve_options(options or {}))
    ctx = TrainContext(settings=TrainSettings(seed=0), device=torch.device("cpu"),
                       dataset_eps=0.1, show_progress=False)
    report = spec.fit(model, TrainData.split(data, 0.1, 0), ctx)
    return model, report, data


def test_contracts_and_offers(harness_plugin):
    harness_plugin(sklearn_models, entry_points=False)
    registry = harness_plugin(mlp, entry_points=False)
    for name in ("mlp", "svm", "logreg"):
        check_model_spec(registry.model(name))
    svm, logreg = registry.model("svm"), registry.model("logreg")
    assert svm.offers == {"gradients", "scores", "labels", "sklearn", "svm"}
    assert logreg.offers == {"gradients", "scores", "labels", "sklearn", "logreg"}
    assert svm.fit is not None and logreg.fit is not None
    assert registry.model("mlp").offers == TORCH_MODEL_OFFERS | {"two-layer-relu"}


@pytest.mark.parametrize("kind", ["svm", "logreg"])
def test_fit_logits_are_the_decision_function(harness_plugin, kind):
    spec = harness_plugin(sklearn_models, entry_points=False).model(kind)
    model, report, data = _fit(spec)
    assert report.epochs_run == 1 and report.best_epoch == 1 and report.seconds > 0
    assert report.images == len(TrainData.split(data, 0.1, 0).x)
    assert report.history[0]["converged"] and report.history[0]["train_accuracy"] > 0.9
    assert np.isnan(report.best_val_loss) == (kind == "svm")
    # The module against a scikit-learn estimator fitted independently on the same data.
    split = TrainData.split(data, 0.1, 0)
    reference = sklearn_models.make_estimator(kind, spec.resolve_options({}), seed=0)
    reference.fit(split.x.flatten(1).numpy(), split.y.numpy())
    x = data.x_test.flatten(1).numpy()
    with torch.no_grad():
        logits = model(data.x_test).numpy()
    np.testing.assert_allclose(logits, reference.decision_function(x), rtol=1e-4, atol=1e-4)
    assert (logits.argmax(1) == reference.predict(x)).all()
    rebuilt = model.sklearn_estimator()
    np.testing.assert_allclose(rebuilt.decision_function(x), logits, rtol=1e-4, atol=1e-4)
    assert (rebuilt.predict(x) == reference.predict(x)).all()
    assert float((torch.from_numpy(rebuilt.predict(x)) == data.y_test).float().mean()) > 0.9
    if kind == "logreg":
        np.testing.assert_allclose(rebuilt.predict_proba(x), reference.predict_proba(x),
                                   atol=1e-5)


@pytest.mark.parametrize("kind", ["svm", "logreg"])
def test_estimator_survives_the_safetensors_cache(harness_plugin, tmp_path, kind):
    spec = harness_plugin(sklearn_models, entry_points=False).model(kind)
    model, _, data = _fit(spec)
    cache = ModelCache(tmp_path)
    cache.save("k", model, {"note": "test"})
    fresh = spec.build(ModelInput(1, 8, 8, data.num_classes), None, spec.resolve_options({}))
    with pytest.raises(UsageError, match="not been fitted"):
        fresh.sklearn_estimator()
    cache.load("k", fresh, torch.device("cpu"))
    x = data.x_test.flatten(1).numpy()
    a, b = model.sklearn_estimator(), fresh.sklearn_estimator()
    assert type(a) is type(b) and a.get_params() == b.get_params()
    np.testing.assert_array_equal(a.coef_, b.coef_)
    np.testing.assert_array_equal(a.decision_function(x), b.decision_function(x))


def test_two_classes_and_absent_classes(harness_plugin):
    """Binary: logits [-f/2, f/2]; a class missing from the training set is never predicted."""
    spec = harness_plugin(sklearn_models, entry_points=False).model("logreg")
    model, _, data = _fit(spec, tiny_image_data(num_classes=2))
    x = data.x_test.flatten(1).numpy()
    est = model.sklearn_estimator()
    assert est.coef_.shape == (1, 64)
    with torch.no_grad():
        probs = model(data.x_test).softmax(1).numpy()
    np.testing.assert_allclose(probs, est.predict_proba(x), atol=1e-5)
    full = tiny_image_data(num_classes=4)
    keep = full.y_train != 3
    from harness.contracts.data import ImageData
    partial = ImageData(full.x_train[keep], full.y_train[keep], full.x_test, full.y_test, 4)
    model, _, _ = _fit(spec, partial)
    with torch.no_grad():
        assert (model(full.x_test).argmax(1) != 3).all()


def test_art_estimator_agrees_with_the_module(harness_plugin):
    spec = harness_plugin(sklearn_models, entry_points=False).model("svm")
    model, _, data = _fit(spec)
    est = sklearn_models.art_estimator(model)
    assert type(est).__name__ == "ScikitlearnSVC" and est.clip_values is not None
    x = data.x_test.flatten(1).numpy()
    with torch.no_grad():
        assert (est.predict(x).argmax(1) == model(data.x_test).argmax(1).numpy()).all()
    with pytest.raises(UsageError, match="scikit-learn model"):
        sklearn_models.art_estimator(nn.Linear(2, 2))


def test_options_are_declared_and_bad_ones_are_usage_errors(harness_plugin):
    harness_plugin(sklearn_models, entry_points=False)
    registry = harness_plugin(mlp, entry_points=False)
    svm, net = registry.model("svm"), registry.model("mlp")
    # The cache keys are the defaults, as when they were the specs' config.
    assert svm.key_config() == {"C": 1.0, "tol": 1e-4, "max_iter": 1000}
    assert net.key_config() == {"hidden": 128}
    with pytest.raises(UsageError, match="Its options"):
        svm.resolve_options({"gamma": 1})
    with pytest.raises(UsageError, match="option 'C' must be a number > 0"):
        svm.resolve_options({"C": 0})
    with pytest.raises(UsageError, match="option 'max_iter' must be an integer >= 1"):
        svm.resolve_options({"max_iter": 1.5})
    with pytest.raises(UsageError, match="option 'hidden' must be an integer >= 1"):
        net.resolve_options({"hidden": 0})
    assert net.resolve_options(net.smoke_options) == {"hidden": 16}


def test_mlp_has_exactly_one_hidden_relu_layer():
    model = mlp.build(ModelInput(1, 8, 8, 10), None,
                      mlp.OPTIONS.resolve("model mlp", {"hidden": 16}))
    kinds = [type(m) for m in model]
    assert kinds == [nn.Flatten, nn.Linear, nn.ReLU, nn.Linear]
    assert model[1].in_features == 64 and model[1].out_features == 16
    assert model[3].in_features == 16 and model[3].out_features == 10
    colour = mlp.build(ModelInput(3, 8, 8, 10, (0.5,) * 3, (0.2,) * 3), None,
                       mlp.OPTIONS.resolve("model mlp", {}))
    assert [type(m).__name__ for m in colour][:2] == ["Standardize", "Flatten"]
    assert sum(isinstance(m, nn.ReLU) for m in colour) == 1
