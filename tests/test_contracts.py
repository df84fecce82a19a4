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
    tiny_context,
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


# Attacks that need a particular kind of victim get one: the model that offers the feature.
VICTIMS = {"svm": "svm", "logreg": "logreg", "two-layer-relu": "mlp"}
# A narrow mlp: functionally equivalent extraction finds one critical point per hidden unit.
VICTIM_OPTIONS = {"mlp": {"hidden": 16}}


def _victim_context(spec):
    """A tiny context whose victim offers what ``spec`` needs (None: the default conv net)."""
    wanted = [VICTIMS[f] for f in sorted(spec.needs) if f in VICTIMS]
    if not wanted:
        return None
    model = REGISTRY.model(wanted[0])[0]
    assert spec.needs <= model.offers, (spec.name, model.name)
    options = VICTIM_OPTIONS.get(model.name, {})
    return tiny_context(new_model=lambda: model.build(ModelInput(1, 8, 8, 3), None, options),
                        fit=model.fit)


@pytest.mark.parametrize("name", _ids("attack"))
def test_attack_contract(name):
    spec = REGISTRY.attack(name)
    check_attack_spec(spec, ctx=_victim_context(spec))


@pytest.mark.parametrize("name", _ids("defense"))
def test_defense_contract(name):
    check_defense_spec(REGISTRY.defense(name))


def test_every_kind_has_builtins():
    assert {"digits", "mnist", "fashion-mnist", "cifar10", "imagenet"} <= set(_ids("dataset"))
    assert {"paper-cnn", "timm", "mlp", "svm", "logreg"} <= set(_ids("model"))
    assert {"fgsm", "pgd", "backdoor", "membership-inference", "copycat"} <= set(_ids("attack"))
    assert {"none", "advtrain", "madry-pgd", "jpeg", "spectral-signature"} <= set(_ids("defense"))
    categories = {REGISTRY.attack(n).category for n in _ids("attack")}
    assert categories == {"evasion", "poisoning", "inference", "extraction"}
    stages = {REGISTRY.defense(n).stage for n in _ids("defense")}
    assert stages == {"training", "input-transformation", "poisoning-detection"}


def test_contract_check_catches_an_attack_over_budget():
    from dataclasses import replace

    class TooStrong:
        def perturb(self, model, x, y, eps):
            return (x + 2 * eps).clamp(0, 1)

    spec = replace(REGISTRY.attack("fgsm"), build=lambda options: TooStrong())
    with pytest.raises(AssertionError, match="exceeds eps"):
        check_attack_spec(spec)
