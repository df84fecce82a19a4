"""paper-cnn (Algorithm 1): architecture sized to the input, and real accuracy on MNIST."""

from __future__ import annotations

import torch
from torch import nn

from harness.data import ModelInput
from harness_plugins.paper_cnn import block_count, build


def _convs(model):
    return [m for m in model if isinstance(m, nn.Conv2d)]


def test_blocks_follow_the_input_size():
    assert [block_count(s) for s in (8, 28, 32, 64, 224)] == [1, 2, 3, 4, 5]
    assert len(_convs(build(ModelInput(1, 28, 28, 10), None, {}))) == 2


def test_head_is_dense_for_grayscale_and_dense_dropout_dense_for_colour():
    small = build(ModelInput(1, 28, 28, 10), None, {})
    large = build(ModelInput(3, 32, 32, 10, (0.5,) * 3, (0.2,) * 3), None, {})
    assert not any(isinstance(m, nn.Dropout) for m in small)
    assert sum(isinstance(m, nn.Linear) for m in small) == 2
    assert any(isinstance(m, nn.Dropout) for m in large)
    assert sum(isinstance(m, nn.Linear) for m in large) == 3


def test_colour_standardization_is_inside_the_model():
    model = build(ModelInput(3, 32, 32, 10, (0.5,) * 3, (0.25,) * 3), None, {})
    x = torch.full((1, 3, 32, 32), 0.5)
    assert torch.allclose(model[0](x), torch.zeros_like(x))


def test_learns_real_mnist(shared_data, isolated_home):
    """A short run on 6000 real MNIST images: well above chance, far from the full budget."""
    from harness.model_cache import ModelCache
    from harness.plan import BenchConfig
    from harness.plugins import load_registry
    from harness.runner import Runner
    from harness.store import ResultStore

    config = BenchConfig(datasets=("mnist",), defenses=("none",), n_train=6000, n_test=2000,
                         epochs=4, data_root=shared_data, device="cpu", checks=False)
    outcome = Runner(config, load_registry(), ResultStore(isolated_home / "r.sqlite"),
                     ModelCache(isolated_home / "m"), show_progress=False).run()
    (record,) = outcome.records
    assert record["n_test"] == 2000
    assert record["clean_acc"] > 0.94
    assert record["robust_acc"] < record["clean_acc"]
