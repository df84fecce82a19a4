"""The native attacks: FGSM is eq. (1) and equals ART's FastGradientMethod; PGD's properties
and declared options."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness.contracts.data import ModelInput
from harness.planning.loading import load_registry
from harness.testing import tiny_image_data
from harness.util.errors import UsageError
from harness_plugins import paper_cnn
from harness_plugins.fgsm import fgsm
from harness_plugins.pgd import PGD


@pytest.fixture(scope="module")
def trained_cnn():
    """A paper-cnn trained for a few steps on tiny data, so gradients are not degenerate."""
    data = tiny_image_data(n_train=128, n_test=64, num_classes=3)
    torch.manual_seed(0)
    model = paper_cnn.build(ModelInput(1, 8, 8, 3), None,
                            paper_cnn.OPTIONS.resolve("model paper-cnn", {}))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(20):
        opt.zero_grad()
        F.cross_entropy(model(data.x_train), data.y_train).backward()
        opt.step()
    return model.eval(), data


def test_fgsm_is_equation_one(trained_cnn):
    model, data = trained_cnn
    x, y, eps = data.x_test, data.y_test, 0.1
    x_req = x.clone().requires_grad_(True)
    F.cross_entropy(model(x_req), y).backward()
    expected = torch.clamp(x + eps * x_req.grad.sign(), 0, 1)
    assert torch.equal(fgsm(model, x, y, eps), expected)


def test_fgsm_equals_art_fast_gradient_method(trained_cnn):
    from art.attacks.evasion import FastGradientMethod
    from art.estimators.classification import PyTorchClassifier

    model, data = trained_cnn
    x, y, eps = data.x_test, data.y_test, 0.1
    classifier = PyTorchClassifier(model=model, loss=torch.nn.CrossEntropyLoss(),
                                   input_shape=(1, 8, 8), nb_classes=3, clip_values=(0.0, 1.0),
                                   device_type="cpu")
    art_attack = FastGradientMethod(classifier, norm=np.inf, eps=eps, batch_size=len(x))
    ours = fgsm(model, x, y, eps).numpy()
    theirs = art_attack.generate(x.numpy(), y=np.eye(3, dtype=np.float32)[y.numpy()])
    assert theirs.shape == ours.shape
    changed = np.abs(ours - x.numpy()).max()
    assert changed == pytest.approx(eps, abs=1e-6)
    np.testing.assert_array_equal(ours, theirs)


def test_fgsm_moves_every_pixel_by_eps_unless_clipped(trained_cnn):
    model, data = trained_cnn
    x, y = data.x_test, data.y_test
    delta = (fgsm(model, x, y, 0.05) - x).abs()
    inside = (x > 0.05) & (x < 0.95)
    moved = delta[inside]
    assert torch.allclose(moved[moved > 0], torch.tensor(0.05), atol=1e-6)


def test_pgd_stays_in_budget_and_beats_fgsm(trained_cnn):
    model, data = trained_cnn
    x, y, eps = data.x_test, data.y_test, 0.3
    x_pgd = PGD(steps=10, step_size=None, random_start=True, seed=0).perturb(model, x, y, eps)
    assert float((x_pgd - x).abs().max()) <= eps + 1e-6
    assert float(x_pgd.min()) >= 0 and float(x_pgd.max()) <= 1
    loss_pgd = F.cross_entropy(model(x_pgd), y)
    loss_fgsm = F.cross_entropy(model(fgsm(model, x, y, eps)), y)
    assert loss_pgd >= loss_fgsm


def test_pgd_is_seeded(trained_cnn):
    model, data = trained_cnn
    x, y = data.x_test, data.y_test
    a = PGD(steps=3, step_size=None, random_start=True, seed=1).perturb(model, x, y, 0.1)
    b = PGD(steps=3, step_size=None, random_start=True, seed=1).perturb(model, x, y, 0.1)
    c = PGD(steps=3, step_size=None, random_start=True, seed=2).perturb(model, x, y, 0.1)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_pgd_options_are_declared_with_bounds_and_fgsm_has_none():
    registry = load_registry()
    pgd, fgsm_spec = registry.attack("pgd"), registry.attack("fgsm")
    assert pgd.resolve_options({"steps": 3}) == {"steps": 3, "step_size": None,
                                                 "random_start": True, "seed": 0,
                                                 "restarts": 1}
    assert pgd.resolve_options({"step_size": 1})["step_size"] == 1.0
    for bad in ({"steps": 0}, {"steps": 2.5}, {"step_size": 0}, {"random_start": "yes"},
                {"seed": -1}, {"restarts": 0}):
        with pytest.raises(UsageError, match="attack pgd: option"):
            pgd.resolve_options(bad)
    assert fgsm_spec.resolve_options({}) == {}
    with pytest.raises(UsageError, match="attack fgsm has no option 'steps'"):
        fgsm_spec.resolve_options({"steps": 3})
    attack = pgd.build(pgd.resolve_options({"steps": 4, "seed": 3}))
    assert (attack.steps, attack.seed, attack.random_start) == (4, 3, True)


def test_pgd_restarts_only_rerun_the_images_still_correct_and_never_do_worse():
    from harness.testing import tiny_image_data, trained_tiny_classifier
    from harness_plugins.pgd import PGD

    data = tiny_image_data(n_test=64)
    model = trained_tiny_classifier()
    one = PGD(steps=2, step_size=None, random_start=True, seed=0).perturb(
        model, data.x_test, data.y_test, 0.2)
    many = PGD(steps=2, step_size=None, random_start=True, seed=0, restarts=5).perturb(
        model, data.x_test, data.y_test, 0.2)
    fooled_one = model(one).argmax(1) != data.y_test
    fooled_many = model(many).argmax(1) != data.y_test
    assert (fooled_many | ~fooled_one).all()              # what one run broke stays broken
    assert torch.equal(many[fooled_one], one[fooled_one])  # ... with the same example
    assert fooled_many.sum() > fooled_one.sum()
    assert float((many - data.x_test).abs().max()) <= 0.2 + 1e-6
