"""timm:<name> models: sized to the dataset, normalization inside, local pretrained weights."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from harness.contracts.data import ModelInput
from harness.util.errors import UsageError
from harness_plugins.timm_models import OPTIONS
from harness_plugins.timm_models import build as build_resolved

MNIST_LIKE = ModelInput(1, 28, 28, 10)
CIFAR_LIKE = ModelInput(3, 32, 32, 10, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def build(model_input: ModelInput, variant: str, options: dict) -> torch.nn.Module:
    """``timm:<variant>`` as the runner builds it: ``options`` resolved by the schema."""
    return build_resolved(model_input, variant, OPTIONS.resolve(f"model timm:{variant}",
                                                                options))


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
    with pytest.raises(UsageError, match="has no option 'pretrianed'. Did you mean: pretrained"):
        build(MNIST_LIKE, "test_resnet", {"pretrianed": True})


def test_options_are_typed():
    with pytest.raises(UsageError, match="option 'img_size' must be an integer >= 1"):
        build(MNIST_LIKE, "test_resnet", {"img_size": 0})
    with pytest.raises(UsageError, match="option 'drop_rate' must be below 1"):
        build(MNIST_LIKE, "test_resnet", {"drop_rate": 1.0})
    with pytest.raises(UsageError, match="option 'pretrained' must be true, false or the path"):
        build(MNIST_LIKE, "test_resnet", {"pretrained": 3})
