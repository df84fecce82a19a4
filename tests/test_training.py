"""Training: Algorithm 2's minibatches, the one loop's early stopping (on the clean or the
objective loss), learning-rate decay, and resuming an interrupted training."""

from __future__ import annotations

import types

import pytest
import torch
import torch.nn.functional as F

import harness.train.gradients as gradients
import harness.train.loop as training
from harness.contracts.data import ModelInput
from harness.planning.plan import digest
from harness.testing import tiny_classifier, tiny_image_data
from harness.train.loop import (
    TrainContext,
    TrainData,
    TrainSettings,
    fit_epochs,
    train_supervised,
)
from harness_plugins import paper_cnn
from harness_plugins.advtrain import FGSMAdversarialTraining

fgsm = gradients.fgsm_step


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


def test_advtrain_eps_defaults_to_the_datasets_in_the_plan_and_its_key():
    """The planner puts the dataset's eps into a null ``dataset_eps`` option before the key is
    computed: advtrain receives 0.1 on digits and the key shows it; another eps is another
    key."""
    from harness.planning.loading import load_registry
    from harness.planning.plan import BenchConfig, make_plan

    registry = load_registry()
    jobs = {}
    for given in ({}, {"advtrain": {"eps": 0.1}}, {"advtrain": {"eps": 0.2}}):
        plan = make_plan(BenchConfig(defenses=("advtrain",), defense_options=given,
                                     baseline=False), registry)
        (job,) = plan.jobs
        jobs[str(given)] = job
    default, named, other = jobs.values()
    assert default.defense_params["eps"] == 0.1 and default.key_fields["defense_eps"] == {
        "eps": 0.1}
    assert named.defense_params["eps"] == 0.1 and "defense_eps" not in named.key_fields
    assert other.defense_params["eps"] == 0.2 and other.key != default.key


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
        return paper_cnn.build(ModelInput(1, 8, 8, 3), None,
                               paper_cnn.OPTIONS.resolve("model paper-cnn", {}))

    straight = fresh()
    train_supervised(straight, data, _ctx(epochs=4, patience=10))

    state = tmp_path / "partial.pt"

    class Stop(Exception):
        pass

    interrupted = fresh()
    ctx = _ctx(epochs=4, patience=10)
    ctx.resume_path = state
    original = training._save_state

    def save_then_stop(path, states):
        original(path, states)
        if states["train"]["epoch"] == 2:
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


def _advtrain_history(early_stop_on: str):
    data = TrainData.split(tiny_image_data(n_train=96), 0.25, 0)
    model = tiny_classifier()
    report = FGSMAdversarialTraining(eps=0.2).train(
        model, data, _ctx(epochs=1, early_stop_on=early_stop_on))
    return model, data, report.history[0]["val_loss"]


def test_advtrain_stops_early_on_the_clean_loss_by_default():
    model, data, recorded = _advtrain_history("clean")
    clean = F.cross_entropy(model(data.x_val), data.y_val).item()
    assert recorded == pytest.approx(clean, rel=1e-5)


def test_advtrain_objective_watches_the_fgsm_augmented_loss():
    model, data, recorded = _advtrain_history("objective")
    x_adv = fgsm(model, data.x_val, data.y_val, 0.2)
    objective = F.cross_entropy(model(torch.cat([data.x_val, x_adv])),
                                torch.cat([data.y_val, data.y_val])).item()
    clean = F.cross_entropy(model(data.x_val), data.y_val).item()
    assert recorded == pytest.approx(objective, rel=1e-5)
    assert recorded > clean + 1e-3  # a different number, not the clean loss


def test_early_stop_on_is_checked_and_part_of_the_cache_key():
    with pytest.raises(ValueError, match="clean, robust, objective"):
        TrainSettings(early_stop_on="adversarial")
    clean, objective = TrainSettings(), TrainSettings(early_stop_on="objective")
    assert clean.as_dict()["early_stop_on"] == "clean"
    assert digest({"settings": clean.as_dict()}) != digest({"settings": objective.as_dict()})


def test_robust_early_stopping_watches_the_pgd_loss_at_its_eps():
    model, data, recorded = _advtrain_history("robust")
    generator = torch.Generator().manual_seed(
        training.derive_seed(0, "train", "robust-validation"))
    x_adv = gradients.pgd_examples(model, data.x_val, data.y_val, 0.1, generator=generator)
    robust = F.cross_entropy(model(x_adv), data.y_val).item()
    clean = F.cross_entropy(model(data.x_val), data.y_val).item()
    assert recorded == pytest.approx(robust, rel=1e-5)      # dataset eps 0.1 by default
    assert recorded > clean + 1e-3
    # the eps is part of the key only when set; "robust" is a key of its own
    plain, robust_default = TrainSettings(), TrainSettings(early_stop_on="robust")
    at = TrainSettings(early_stop_on="robust", early_stop_eps=0.3)
    assert "early_stop_eps" not in plain.as_dict() and at.as_dict()["early_stop_eps"] == 0.3
    assert len({digest({"s": s.as_dict()}) for s in (plain, robust_default, at)}) == 3


def test_learning_rate_is_decayed_after_an_epoch_without_improvement():
    """Validation labels shifted by one: the better the model learns the training labels, the
    worse its validation loss, so every epoch after the first fails to improve it."""
    data = TrainData.split(tiny_image_data(n_train=96), 0.25, 0)
    data = TrainData(data.x, data.y, data.x_val, (data.y_val + 1) % data.num_classes,
                     data.num_classes)
    report = train_supervised(tiny_classifier(), data,
                              _ctx(epochs=4, patience=10, lr_decay=0.5))
    lrs = [h["lr"] for h in report.history]
    assert lrs == pytest.approx([1e-2, 1e-2, 5e-3, 2.5e-3])


def test_resume_file_is_written_under_a_unique_temporary_name(tmp_path, monkeypatch):
    names = []
    real_save = torch.save

    def spy(obj, path, *args, **kwargs):
        names.append(path.name)
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", spy)
    ctx = _ctx(epochs=2)
    ctx.resume_path = tmp_path / "job.partial.pt"
    train_supervised(tiny_classifier(), TrainData.split(tiny_image_data(n_train=64), 0.2, 0),
                     ctx)
    assert len(names) == 2 and len(set(names)) == 2
    assert all(n.startswith("job.partial.pt.") and n.endswith(".tmp") for n in names)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.partial.pt"]


def test_fit_epochs_keeps_each_phase_in_the_resume_file(tmp_path):
    data = TrainData.split(tiny_image_data(n_train=64), 0.2, 0)
    ctx = _ctx(epochs=2)
    ctx.resume_path = tmp_path / "job.partial.pt"
    model = tiny_classifier()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    def epoch(_):
        loss = F.cross_entropy(model(data.x), data.y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    first = fit_epochs(model, data, ctx, epoch, optimizer=optimizer, phase="first")
    fit_epochs(model, data, ctx, epoch, optimizer=optimizer, phase="second")
    states = torch.load(ctx.resume_path, weights_only=True)
    assert set(states) == {"first", "second"}
    assert states["first"]["history"] == first.history
    assert all(h["phase"] == "first" for h in first.history)
