"""harness-stripes passes harness's contract checks."""

import harness_stripes.plugin
import pytest

from harness import (
    ModelInput,
    UsageError,
    check_attack_spec,
    check_dataset_spec,
    check_defense_spec,
    check_model_spec,
)


@pytest.fixture
def registry(harness_plugin):
    """The registry with this package's plugin (installed or not) and the built-ins."""
    return harness_plugin(harness_stripes.plugin)


def test_dataset(registry):
    data = check_dataset_spec(registry.dataset("stripes"))
    assert data.image_shape == (1, 16, 16) and data.num_classes == 4


def test_model(registry):
    spec = registry.model("stripes-cnn")
    check_model_spec(spec)                  # 1x8x8 images, 10 classes, its smoke_options
    check_model_spec(spec, options={})      # its declared defaults
    check_model_spec(spec, model_input=ModelInput(3, 32, 32, 10, (0.5,) * 3, (0.25,) * 3))


def test_attacks(registry):
    check_attack_spec(registry.attack("mi-fgsm"))
    metrics = check_attack_spec(registry.attack("loss-threshold"))
    assert set(metrics) == {"loss_mi_accuracy", "loss_gap"}


def test_defense(registry):
    check_defense_spec(registry.defense("noise-training"))


def test_options_are_checked(registry):
    with pytest.raises(UsageError, match="Did you mean: steps"):
        registry.attack("mi-fgsm").resolve_options({"step": 3})
