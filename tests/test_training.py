"""Training: Algorithm 2's minibatches, early stopping, and resuming an interrupted training."""

from __future__ import annotations

import types

import pytest
import torch
import torch.nn.functional as F

import harness.training as training
from harness.data import ModelInput
from harness.testing import tiny_classifier, tiny_image_data
from harness.training import TrainContext, TrainData, TrainSettings, train_supervised
from harness_plugins import paper_cnn
from harness_plugins.advtrain import FGSMAdversarialTraining
from harness_plugins.fgsm import fgsm


def _ctx(**kw) -> TrainContext:
    settings = TrainSettings(**{"epochs": 3, "batch_size": 32, "lr": 1e-2, "patience": 3,
                                "seed": 0, **kw})
    return TrainContext(settings=settings, device=torch.device("cpu"), dataset_eps=0.1,
                        show_progress=False)


def test_advtrain_updates_on_x_and_fgsm_of_x_with_labels_repeated(monkeypatch):
    data = TrainData.split(tiny_image_data(n_train=64), 0.0, 0)
    model = tiny_classifier()
    seen = []

    def recording_cross_entropy(logits, target, **kw):
        if model.training:  # the update's loss, not validation
            seen.append((recorded_x[-1], target.clone(), snapshot[-1]))
        return F.cross_entropy(logits, target, **kw)

    recorded_x, snapshot = [], []

    def pre_hook(module, args):
        if module.training:
            recorded_x.append(args[0].detach().clone())
            snapshot.append({k: v.clone() for k, v in module.state_dict().items()})

    model.register_forward_pre_hook(pre_hook)
    monkeypatch.setattr(training, "F", types.SimpleNamespace(cross_entropy=recording_cross_entropy))
    FGSMAdversarialTraining(eps=0.2).train(model, data, _ctx(epochs=1))
    assert len(seen) == 2  # 64 images, batch 32
    for x_tilde, y_tilde, weights in seen:
        half = len(x_tilde) // 2
        x, x_adv = x_tilde[:half], x_tilde[half:]
        assert torch.equal(y_tilde[:half], y_tilde[half:])
        reference = tiny_classifier()
        reference.load_state_dict(weights)
        assert torch.equal(x_adv, fgsm(reference.eval(), x, y_tilde[:half], 0.2))


def test_advtrain_eps_defaults_to_the_datasets(monkeypatch):
    used = []
    import harness_plugins.fgsm as fgsm_module

    def spy(model, x, y, eps):
        used.append(eps)
        return fgsm(model, x, y, eps)

    monkeypatch.setattr(fgsm_module, "fgsm", spy)
    data = TrainData.split(tiny_image_data(n_train=32), 0.0, 0)
    ctx = _ctx(epochs=1)
    ctx.dataset_eps = 0.07
    FGSMAdversarialTraining(eps=None).train(tiny_classifier(), data, ctx)
    assert used and set(used) == {0.07}


def test_early_stopping_keeps_the_best_weights():
    data = TrainData.split(tiny_image_data(n_train=128), 0.25, 0)
    model = tiny_classifier()
    report = train_supervised(model, data, _ctx(epochs=40, lr=0.05, patience=2))
    best = min(h["val_loss"] for h in report.history)
    assert report.best_val_loss == pytest.approx(best)
    assert report.epochs_run < 40 or report.best_epoch == 40
    assert report.epochs_run - report.best_epoch <= 2
    model.eval()
    val = F.cross_entropy(model(data.x_val), data.y_val).item()
    assert val == pytest.approx(best, rel=1e-5)


def test_interrupted_training_resumes_to_the_same_weights(tmp_path):
    data = TrainData.split(tiny_image_data(n_train=96), 0.2, 0)

    def fresh():
        torch.manual_seed(0)
        return paper_cnn.build(ModelInput(1, 8, 8, 3), None, {})

    straight = fresh()
    train_supervised(straight, data, _ctx(epochs=4, patience=10))

    state = tmp_path / "partial.pt"

    class Stop(Exception):
        pass

    interrupted = fresh()
    ctx = _ctx(epochs=4, patience=10)
    ctx.resume_path = state
    original = training._save_state

    def save_then_stop(path, payload):
        original(path, payload)
        if payload["epoch"] == 2:
            raise Stop

    training._save_state = save_then_stop
    try:
        with pytest.raises(Stop):
            train_supervised(interrupted, data, ctx)
    finally:
        training._save_state = original
    assert state.exists()
    resumed = fresh()
    report = train_supervised(resumed, data, ctx)
    assert report.epochs_run == 4 and len(report.history) == 4
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_partial_state_is_loaded_without_unpickling(tmp_path, monkeypatch):
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    data = TrainData.split(tiny_image_data(n_train=64), 0.2, 0)
    ctx = _ctx(epochs=1)
    ctx.resume_path = tmp_path / "p.pt"
    train_supervised(tiny_classifier(), data, ctx)
    monkeypatch.setattr(torch, "load", spy)
    ctx.settings = TrainSettings(epochs=2, batch_size=32, lr=1e-2, patience=3, seed=0)
    train_supervised(tiny_classifier(), data, ctx)
    assert calls == [True]
