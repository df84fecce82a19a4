"""Speed benchmarks (pytest-benchmark), side by side in one run.

Run them with ``.venv/bin/pytest tests/test_benchmarks.py --benchmark-enable``; in the normal
test run they execute once each, as correctness smoke tests, and time nothing.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.contracts.data import ModelInput
from harness_plugins import paper_cnn
from harness_plugins.fgsm import fgsm
from harness_plugins.pgd import PGD

BATCH = 256


@pytest.fixture(scope="module")
def mnist_sized():
    torch.manual_seed(0)
    model = paper_cnn.build(ModelInput(1, 28, 28, 10), None,
                            paper_cnn.OPTIONS.resolve("model paper-cnn", {})).eval()
    x = torch.rand(BATCH, 1, 28, 28)
    y = torch.randint(0, 10, (BATCH,))
    return model, x, y


@pytest.mark.benchmark(group="fgsm-256-mnist-images")
def test_speed_native_fgsm(benchmark, mnist_sized):
    model, x, y = mnist_sized
    out = benchmark(fgsm, model, x, y, 0.1)
    assert out.shape == x.shape


@pytest.mark.benchmark(group="fgsm-256-mnist-images")
def test_speed_art_fgsm(benchmark, mnist_sized):
    from art.attacks.evasion import FastGradientMethod
    from art.estimators.classification import PyTorchClassifier

    model, x, y = mnist_sized
    classifier = PyTorchClassifier(model=model, loss=torch.nn.CrossEntropyLoss(),
                                   input_shape=(1, 28, 28), nb_classes=10,
                                   clip_values=(0.0, 1.0), device_type="cpu")
    attack = FastGradientMethod(classifier, norm=np.inf, eps=0.1, batch_size=BATCH)
    labels = np.eye(10, dtype=np.float32)[y.numpy()]
    out = benchmark(attack.generate, x.numpy(), labels)
    np.testing.assert_array_equal(out, fgsm(model, x, y, 0.1).numpy())


@pytest.mark.benchmark(group="fgsm-256-mnist-images")
def test_speed_pgd_10_steps(benchmark, mnist_sized):
    model, x, y = mnist_sized
    attack = PGD(steps=10, step_size=None, random_start=True, seed=0)
    out = benchmark(attack.perturb, model, x, y, 0.1)
    assert float((out - x).abs().max()) <= 0.1 + 1e-6
