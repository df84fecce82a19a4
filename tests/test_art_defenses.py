"""Tests of the ``art-defenses`` plugin: every spec meets the contract, and each defense does
what it claims on tiny inputs (squeezing quantizes, smoothing removes salt, JPEG stays close,
distillation returns logits, PGD training buys robustness, resuming continues the run) under
the harness's training loop (learning-rate decay, clean early stopping)."""

from __future__ import annotations

import pytest
import torch

import harness.train.loop as training
from harness.testing import (
    check_defense_spec,
    tiny_classifier,
    tiny_image_data,
)
from harness.train.loop import TrainContext, TrainData, TrainSettings
from harness.util.errors import UsageError
from harness_plugins import art_defenses
from harness_plugins.pgd import PGD

TRAINING = [d.name for d in art_defenses.TRAINING]
TRANSFORMS = [d.name for d in art_defenses.TRANSFORMATIONS]
_DECLARED = {d.name: d for d in (*art_defenses.TRAINING, *art_defenses.TRANSFORMATIONS)}


def _ctx(epochs: int = 3, patience: int = 3, early_stop_on: str = "clean",
         **kw) -> TrainContext:
    settings = TrainSettings(epochs=epochs, batch_size=32, lr=1e-2, patience=patience, seed=0,
                             early_stop_on=early_stop_on)
    return TrainContext(settings=settings, device=torch.device("cpu"), dataset_eps=0.1,
                        show_progress=False, **kw)


def _build(name: str, **options):
    """The defense ``name`` built as the core builds it: with its resolved options."""
    spec = _DECLARED[name].spec()
    return spec.build(spec.resolve_options(options, dataset_eps=0.1))


@pytest.mark.parametrize("name", TRAINING + TRANSFORMS)
def test_contract(harness_plugin, name):
    registry = harness_plugin(art_defenses, entry_points=False)
    spec = registry.defense(name)
    assert spec.config["art_class"]
    check_defense_spec(spec)


@pytest.mark.parametrize("name", TRAINING)
def test_training_report_and_best_weights(harness_plugin, name):
    spec = harness_plugin(art_defenses, entry_points=False).defense(name)
    data = TrainData.split(tiny_image_data(), 0.1, 0)
    model = tiny_classifier(num_classes=data.num_classes)
    report = spec.build(spec.resolve_options(dict(spec.smoke_options), dataset_eps=0.1)).train(
        model, data, _ctx())
    assert not model.training
    student = [h for h in report.history if h.get("phase", "student") == "student"]
    assert report.epochs_run == len(student) and report.best_epoch >= 1
    assert report.best_val_loss == min(h["val_loss"] for h in student)
    # The model holds the best epoch's weights: its validation loss is the reported best.
    temperature = spec.key_config().get("temperature", 1)
    with torch.no_grad():
        val = torch.nn.functional.cross_entropy(model(data.x_val) / temperature, data.y_val)
    assert float(val) == pytest.approx(report.best_val_loss, rel=1e-4, abs=1e-5)
    assert report.images >= len(data.x) * report.epochs_run


def test_unknown_and_bad_options_are_usage_errors(harness_plugin):
    registry = harness_plugin(art_defenses, entry_points=False)
    with pytest.raises(UsageError, match="max_iter"):
        registry.defense("madry-pgd").resolve_options({"steps": 3})
    with pytest.raises(UsageError, match="eps"):
        registry.defense("fbf").resolve_options({"eps": 2.0})
    with pytest.raises(UsageError, match="bit_depth"):
        registry.defense("feature-squeezing").resolve_options({"bit_depth": 0})
    with pytest.raises(UsageError, match="quality"):
        registry.defense("jpeg").resolve_options({"qualty": 50})
    with pytest.raises(UsageError, match="temperature"):
        registry.defense("distillation").resolve_options({"temperature": 0.5})


def test_options_are_declared_with_todays_defaults(harness_plugin):
    registry = harness_plugin(art_defenses, entry_points=False)
    trades = registry.defense("trades")
    assert trades.config == {"art_class": "AdversarialTrainerTRADESPyTorch"}
    assert trades.key_config() == {"art_class": "AdversarialTrainerTRADESPyTorch",
                                   "eps": None, "eps_step": None, "max_iter": 7, "beta": 6.0}
    assert registry.defense("distillation").key_config() == {
        "art_class": "DefensiveDistillation", "temperature": 100, "lr_factor": 10}
    assert registry.defense("jpeg").key_config() == {"art_class": "JpegCompression",
                                                     "quality": 50}


def test_feature_squeezing_one_bit_is_binary():
    x = torch.rand(4, 1, 8, 8)
    out = _build("feature-squeezing", bit_depth=1).transform(x)
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(out, (x > 0.5).float())
    out2 = _build("feature-squeezing").transform(x)  # default: 2 bits
    assert (out2 * 3 - (out2 * 3).round()).abs().max() < 1e-5  # levels 0, 1/3, 2/3, 1
    assert len(out2.unique()) == 4
    assert (out2 - x).abs().max() <= 1 / 6 + 1e-6


def test_spatial_smoothing_removes_isolated_salt():
    x = torch.zeros(2, 3, 8, 8)
    x[:, :, 4, 4] = 1.0
    out = _build("spatial-smoothing").transform(x)
    assert out.abs().max() == 0
    block = torch.zeros(1, 1, 8, 8)
    block[:, :, 2:6, 2:6] = 1.0  # a 3x3 median keeps a 4x4 square but its 4 corners
    smoothed = _build("spatial-smoothing").transform(block)
    assert smoothed.sum() == 12 and smoothed[0, 0, 3:5, 3:5].min() == 1


@pytest.mark.parametrize("shape", [(3, 1, 8, 8), (2, 1, 28, 28), (2, 3, 32, 32)])
def test_jpeg_changes_the_image_but_keeps_it_close(shape):
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(shape, generator=g) * 0.2 + torch.linspace(0.2, 0.8, shape[-1])).clamp(0, 1)
    out = _build("jpeg").transform(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert not torch.allclose(out, x, atol=1e-3)
    assert (out - x).abs().mean() < 0.1
    low = _build("jpeg", quality=5).transform(x)
    assert (low - x).abs().mean() > (out - x).abs().mean()


def test_transform_keeps_dtype_float64():
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    out = _build("feature-squeezing").transform(x)
    assert out.dtype == torch.float64 and torch.equal(x, x.clone())


def test_distilled_model_returns_logits_at_temperature_one():
    """Trained at T=100, the student is evaluated on its own logits, which are far larger than
    a normally trained model's: the saturated softmax that masks its gradients."""
    from harness.train.loop import train_supervised

    data = TrainData.split(tiny_image_data(), 0.1, 0)
    model = tiny_classifier(num_classes=data.num_classes)
    _build("distillation").train(model, data, _ctx(epochs=5))
    standard = tiny_classifier(num_classes=data.num_classes)
    train_supervised(standard, data, _ctx(epochs=5))
    with torch.no_grad():
        logits, reference = model(data.x_val), standard(data.x_val)
    assert (logits.argmax(1) == data.y_val).float().mean() >= 0.9
    assert logits.abs().mean() > 10 * reference.abs().mean()


def test_resume_continues_from_saved_epoch(tmp_path):
    data = TrainData.split(tiny_image_data(), 0.1, 0)
    path = tmp_path / "job.partial.pt"
    first = tiny_classifier(num_classes=data.num_classes)
    defense = _build("art-advtrain")
    defense.train(first, data, _ctx(epochs=2, resume_path=path))
    assert path.exists()
    resumed = tiny_classifier(num_classes=data.num_classes)
    report = defense.train(resumed, data, _ctx(epochs=4, resume_path=path))
    straight = tiny_classifier(num_classes=data.num_classes)
    full = defense.train(straight, data, _ctx(epochs=4))
    assert report.epochs_run == full.epochs_run == 4
    assert [h["val_loss"] for h in report.history] == pytest.approx(
        [h["val_loss"] for h in full.history], rel=1e-5)


def test_madry_pgd_is_more_robust_than_standard_training():
    from harness.train.loop import train_supervised

    data = tiny_image_data(n_train=192, n_test=96, seed=1)
    split = TrainData.split(data, 0.1, 0)
    eps = 0.25
    standard = tiny_classifier(num_classes=data.num_classes)
    train_supervised(standard, split, _ctx(epochs=8))
    robust = tiny_classifier(num_classes=data.num_classes)
    _build("madry-pgd", eps=eps, max_iter=3).train(robust, split, _ctx(epochs=8))

    def robust_accuracy(model):
        x_adv = PGD(steps=10, step_size=None, random_start=True, seed=0).perturb(
            model, data.x_test, data.y_test, eps)
        with torch.no_grad():
            return float((model(x_adv).argmax(1) == data.y_test).float().mean())

    with torch.no_grad():
        assert float((robust(data.x_test).argmax(1) == data.y_test).float().mean()) > 0.8
    assert robust_accuracy(robust) > robust_accuracy(standard) + 0.2


def test_distillation_resumes_both_phases(tmp_path):
    """A finished two-phase state file restores teacher and student without training again."""
    data = TrainData.split(tiny_image_data(), 0.1, 0)
    path = tmp_path / "job.partial.pt"
    defense = _build("distillation")
    first = tiny_classifier(num_classes=data.num_classes)
    report = defense.train(first, data, _ctx(resume_path=path))
    assert set(torch.load(path, weights_only=True)) == {"teacher", "student"}
    again = tiny_classifier(num_classes=data.num_classes, seed=5)  # other weights: all loaded
    resumed = defense.train(again, data, _ctx(resume_path=path))
    assert resumed.history == report.history and resumed.seconds == report.seconds
    for a, b in zip(first.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def _shifted_validation() -> TrainData:
    """Validation labels shifted by one class: the better a model learns the training labels,
    the worse its validation loss, so epochs after the first do not improve it."""
    data = TrainData.split(tiny_image_data(), 0.25, 0)
    return TrainData(data.x, data.y, data.x_val, (data.y_val + 1) % data.num_classes,
                     data.num_classes)


def _expected_lrs(history: list[dict], lr: float, decay: float) -> list[float]:
    """The learning rate of each epoch under the decay rule, from the validation losses."""
    out, best = [], float("inf")
    for entry in history:
        out.append(lr)
        if entry["val_loss"] < best:
            best = entry["val_loss"]
        else:
            lr *= decay
    return out


@pytest.mark.parametrize("name", TRAINING)
def test_learning_rate_is_halved_after_an_epoch_without_improvement(name, monkeypatch):
    steps: list[float] = []
    original_step = torch.optim.Adam.step

    def recording_step(self, *args, **kwargs):
        steps.append(self.param_groups[0]["lr"])
        return original_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", recording_step)
    data = _shifted_validation()
    declaration = _DECLARED[name]
    report = _build(name, **declaration.smoke_options).train(
        tiny_classifier(num_classes=data.num_classes), data, _ctx(epochs=4, patience=10))
    start = 1e-2 * declaration.defaults.get("lr_factor", 1)
    for phase in {h.get("phase") for h in report.history}:
        history = [h for h in report.history if h.get("phase") == phase]
        lrs = [h["lr"] for h in history]
        assert lrs == pytest.approx(_expected_lrs(history, start, 0.5))
        assert lrs[-1] < start, f"{name}: no epoch without improvement, nothing to check"
    if name != "fbf":  # fbf's cycle moves the rate within an epoch; the others step at it
        assert sorted(set(steps), reverse=True) == pytest.approx(
            sorted({h["lr"] for h in report.history}, reverse=True))


def test_art_defenses_refuse_early_stopping_on_their_objective():
    data = TrainData.split(tiny_image_data(), 0.1, 0)
    with pytest.raises(UsageError, match="early_stop_on='clean'"):
        _build("madry-pgd").train(tiny_classifier(num_classes=data.num_classes), data,
                                  _ctx(early_stop_on="objective"))


def test_art_defenses_stop_early_on_the_robust_loss():
    data = TrainData.split(tiny_image_data(), 0.1, 0)
    clean = _build("fbf").train(tiny_classifier(num_classes=data.num_classes), data,
                                _ctx(epochs=1, early_stop_on="clean"))
    robust = _build("fbf").train(tiny_classifier(num_classes=data.num_classes), data,
                                 _ctx(epochs=1, early_stop_on="robust"))
    # the same epoch (same seeds), validated on PGD examples: a larger loss
    assert robust.history[0]["val_loss"] > clean.history[0]["val_loss"] + 1e-3


def test_interrupted_art_training_resumes_to_the_same_weights(tmp_path, monkeypatch):
    data = TrainData.split(tiny_image_data(), 0.1, 0)
    defense = _build("art-advtrain")
    straight = tiny_classifier(num_classes=data.num_classes)
    full = defense.train(straight, data, _ctx(epochs=4, patience=10))

    class Stop(Exception):
        pass

    original = training._save_state

    def save_then_stop(path, states):
        original(path, states)
        if states["train"]["epoch"] == 2:
            raise Stop

    path = tmp_path / "job.partial.pt"
    monkeypatch.setattr(training, "_save_state", save_then_stop)
    with pytest.raises(Stop):
        defense.train(tiny_classifier(num_classes=data.num_classes), data,
                      _ctx(epochs=4, patience=10, resume_path=path))
    monkeypatch.setattr(training, "_save_state", original)
    resumed = tiny_classifier(num_classes=data.num_classes, seed=5)  # weights come from file
    report = defense.train(resumed, data, _ctx(epochs=4, patience=10, resume_path=path))
    assert report.epochs_run == 4
    assert [h["val_loss"] for h in report.history] == pytest.approx(
        [h["val_loss"] for h in full.history], rel=1e-5)
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("name", TRANSFORMS)
def test_a_transformation_takes_values_outside_the_image_range(name):
    """An attack crafting through the pipeline may hand it values outside [0, 1] (ART's
    universal perturbations do): clipped first, never an error (ART's JPEG raised one)."""
    x = torch.linspace(-0.2, 1.2, 2 * 1 * 8 * 8).reshape(2, 1, 8, 8)
    out = _build(name).transform(x)
    assert out.shape == x.shape and float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert torch.equal(_build(name).transform(x), _build(name).transform(x.clamp(0, 1)))
