"""Every registered spec passes the contract checks of harness.testing."""

from __future__ import annotations

import pytest

from harness.data import DataOptions, ModelInput
from harness.plugins import load_registry
from harness.testing import (
    check_attack_spec,
    check_dataset_spec,
    check_defense_spec,
    check_model_spec,
)

REGISTRY = load_registry(strict=True)

# The smallest timm architecture that builds for 8x8 single-channel images quickly.
TIMM_VARIANT = "test_resnet"


def _ids(kind: str) -> list[str]:
    return REGISTRY.names(kind)


@pytest.mark.parametrize("name", _ids("dataset"))
def test_dataset_contract(name):
    check_dataset_spec(REGISTRY.dataset(name))


def test_digits_dataset_loads_under_the_contract():
    data = check_dataset_spec(REGISTRY.dataset("digits"), DataOptions())
    assert data.image_shape == (1, 8, 8)


@pytest.mark.parametrize("name", _ids("model"))
def test_model_contract(name):
    spec = REGISTRY.specs["model"][name]
    variant = TIMM_VARIANT if spec.takes_variant else None
    check_model_spec(spec, variant)
    check_model_spec(spec, variant, ModelInput(3, 32, 32, 10, (0.5, 0.5, 0.5), (0.25,) * 3))


@pytest.mark.parametrize("name", _ids("attack"))
def test_attack_contract(name):
    check_attack_spec(REGISTRY.attack(name))


@pytest.mark.parametrize("name", _ids("defense"))
def test_defense_contract(name):
    check_defense_spec(REGISTRY.defense(name))


def test_every_kind_has_builtins():
    assert {"digits", "mnist", "fashion-mnist", "cifar10", "imagenet"} <= set(_ids("dataset"))
    assert {"paper-cnn", "timm"} <= set(_ids("model"))
    assert {"fgsm", "pgd"} <= set(_ids("attack"))
    assert {"none", "advtrain"} <= set(_ids("defense"))


def test_contract_check_catches_an_attack_over_budget():
    from dataclasses import replace

    class TooStrong:
        def perturb(self, model, x, y, eps):
            return (x + 2 * eps).clamp(0, 1)

    spec = replace(REGISTRY.attack("fgsm"), build=lambda options: TooStrong())
    with pytest.raises(AssertionError, match="exceeds eps"):
        check_attack_spec(spec)
