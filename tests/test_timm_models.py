"""timm:<name> models: sized to the dataset, normalization inside, local pretrained weights."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from harness.data import ModelInput
from harness.errors import UsageError
from harness_plugins.timm_models import build

MNIST_LIKE = ModelInput(1, 28, 28, 10)
CIFAR_LIKE = ModelInput(3, 32, 32, 10, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def test_built_with_the_datasets_channels_and_classes():
    model = build(MNIST_LIKE, "test_resnet", {})
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_standardization_is_the_first_layer_for_colour_data():
    model = build(CIFAR_LIKE, "test_resnet", {})
    assert torch.allclose(model[0](torch.full((1, 3, 4, 4), 0.5)), torch.zeros(1, 3, 4, 4))


def test_pretrained_from_a_local_safetensors_file(tmp_path):
    torch.manual_seed(1)
    source = build(MNIST_LIKE, "test_resnet", {})
    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, path)
    torch.manual_seed(2)
    loaded = build(MNIST_LIKE, "test_resnet", {"pretrained": str(path)})
    fresh = build(MNIST_LIKE, "test_resnet", {})
    state = loaded.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in source.state_dict().items())
    assert not all(torch.equal(v, fresh.state_dict()[k]) for k, v in state.items())


def test_missing_pretrained_file_is_a_clear_error(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        build(MNIST_LIKE, "test_resnet", {"pretrained": str(tmp_path / "nope.safetensors")})


def test_unknown_option_is_named():
    with pytest.raises(UsageError, match="has no option 'pretrianed'"):
        build(MNIST_LIKE, "test_resnet", {"pretrianed": True})
