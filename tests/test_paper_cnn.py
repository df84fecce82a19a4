"""paper-cnn (Algorithm 1): architecture sized to the input, its declared options, and real
accuracy on MNIST."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from harness.contracts.data import ModelInput
from harness.util.errors import UsageError
from harness_plugins.paper_cnn import OPTIONS, block_count, build


def _cnn(model_input: ModelInput) -> nn.Sequential:
    """paper-cnn with its declared default options (``build`` gets them all, resolved)."""
    return build(model_input, None, OPTIONS.resolve("model paper-cnn", {}))


def _convs(model):
    return [m for m in model if isinstance(m, nn.Conv2d)]


def test_blocks_follow_the_input_size():
    assert [block_count(s) for s in (8, 28, 32, 64, 224)] == [1, 2, 3, 4, 5]
    assert len(_convs(_cnn(ModelInput(1, 28, 28, 10)))) == 2


def test_head_is_dense_for_grayscale_and_dense_dropout_dense_for_colour():
    small = _cnn(ModelInput(1, 28, 28, 10))
    large = _cnn(ModelInput(3, 32, 32, 10, (0.5,) * 3, (0.2,) * 3))
    assert not any(isinstance(m, nn.Dropout) for m in small)
    assert sum(isinstance(m, nn.Linear) for m in small) == 2
    assert any(isinstance(m, nn.Dropout) for m in large)
    assert sum(isinstance(m, nn.Linear) for m in large) == 3


def test_colour_standardization_is_inside_the_model():
    model = _cnn(ModelInput(3, 32, 32, 10, (0.5,) * 3, (0.25,) * 3))
    x = torch.full((1, 3, 32, 32), 0.5)
    assert torch.allclose(model[0](x), torch.zeros_like(x))


def test_options_are_typed_and_bounded():
    assert OPTIONS.defaults() == {"filters": [32, 64, 128, 128, 256], "kernel": 3, "dense": 128,
                                  "dense2": 128, "dropout": 0.5, "large_head": None}
    for bad in ({"filters": [32, 0]}, {"filters": []}, {"kernel": 0}, {"dense": 0},
                {"dropout": -0.1}, {"large_head": "yes"}):
        with pytest.raises(UsageError, match="model paper-cnn: option"):
            OPTIONS.resolve("model paper-cnn", bad)
    with pytest.raises(UsageError, match="'dropout' must be below 1"):
        build(ModelInput(3, 32, 32, 10), None, OPTIONS.resolve("model paper-cnn",
                                                               {"dropout": 1.0}))
    forced = build(ModelInput(1, 8, 8, 3), None, OPTIONS.resolve(
        "model paper-cnn", {"large_head": True, "filters": [4], "dense": 8, "dense2": 6}))
    assert [m.out_features for m in forced if isinstance(m, nn.Linear)] == [8, 6, 3]


def test_learns_real_mnist(shared_data, isolated_home):
    """A short run on 6000 real MNIST images: well above chance, far from the full budget."""
    from harness.planning.loading import load_registry
    from harness.planning.plan import BenchConfig
    from harness.results.store import ResultStore
    from harness.run.model_cache import ModelCache
    from harness.run.runner import Runner

    config = BenchConfig(datasets=("mnist",), defenses=("none",), n_train=6000, n_test=2000,
                         epochs=4, data_root=shared_data, device="cpu", checks=False)
    outcome = Runner(config, load_registry(), ResultStore(isolated_home / "r.sqlite"),
                     ModelCache(isolated_home / "m"), show_progress=False).run()
    (record,) = outcome.records
    assert record.ok and record.n_test == 2000
    assert record.clean_acc > 0.94
    assert record.robust_acc < record.clean_acc


def test_pooling_before_relu_is_the_papers_function_with_the_same_parameter_names():
    torch.manual_seed(0)
    model = _cnn(ModelInput(1, 28, 28, 10)).eval()
    assert list(model.state_dict()) == ["0.weight", "0.bias", "3.weight", "3.bias",
                                        "7.weight", "7.bias", "9.weight", "9.bias"]
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    paper_order = [nn.ReLU() if isinstance(m, nn.MaxPool2d) else
                   nn.MaxPool2d(2) if isinstance(m, nn.ReLU) and i < 6 else m
                   for i, m in enumerate(model)]
    reference = nn.Sequential(*paper_order).eval()     # conv, ReLU, pool: Algorithm 1's order
    assert [type(m).__name__ for m in reference][:3] == ["Conv2d", "ReLU", "MaxPool2d"]
    x = torch.rand(16, 1, 28, 28)
    grads = []
    for net in (model, reference):
        xx = x.clone().requires_grad_(True)
        out = net(xx)
        nn.functional.cross_entropy(out, torch.arange(16) % 10).backward()
        grads.append((out.detach(), xx.grad))
    assert torch.equal(grads[0][0], grads[1][0]) and torch.equal(grads[0][1], grads[1][1])
