"""Every registered spec passes the contract checks of harness.testing.

Attacks and defenses run with their ``smoke_options`` (tiny budgets); ``pytest -m slow`` runs
them with their declared defaults too.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from harness.contracts.context import AttackContext
from harness.contracts.data import DATA_ENV, DataOptions, ModelInput
from harness.contracts.options import Option, options
from harness.contracts.specs import AttackSpec
from harness.planning.loading import load_registry
from harness.testing import (
    check_attack_spec,
    check_dataset_spec,
    check_defense_spec,
    check_model_spec,
    tiny_context,
)
from harness.train.gradients import fgsm_step
from harness.util.seeds import seed_globals

REGISTRY = load_registry(strict=True)

# The smallest timm architecture that builds for 8x8 single-channel images quickly.
TIMM_VARIANT = "test_resnet"
# The real datasets of this checkout (MNIST, Fashion-MNIST), beside the repository.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _ids(kind: str) -> list[str]:
    return REGISTRY.names(kind)


@pytest.mark.parametrize("name", _ids("dataset"))
def test_dataset_contract(name: str, monkeypatch: pytest.MonkeyPatch):
    """Loads each dataset where its files are (skipped, with the loader's message, where not)."""
    if DATA_ENV not in os.environ and SHARED_DATA.is_dir():
        monkeypatch.setenv(DATA_ENV, str(SHARED_DATA))
    check_dataset_spec(REGISTRY.dataset(name))


def test_digits_dataset_loads_under_the_contract():
    data = check_dataset_spec(REGISTRY.dataset("digits"), DataOptions())
    assert data.image_shape == (1, 8, 8)


def test_missing_dataset_is_skipped_with_the_loaders_message(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    with pytest.raises(pytest.skip.Exception, match=r"^dataset 'mnist': .*not found"):
        check_dataset_spec(REGISTRY.dataset("mnist"))


def _save_tiny(kind: str, mi: ModelInput, folder: Path) -> str:
    """A small trained-shape classifier for ``mi`` saved as a ``kind`` file (the supplied
    kinds' contract runs on real files)."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(mi.channels, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                        nn.Linear(4 * mi.height * mi.width, mi.num_classes)).eval()
    x = torch.rand(2, mi.channels, mi.height, mi.width)
    path = folder / f"{kind}-{mi.channels}x{mi.height}"
    if kind == "torchscript":
        torch.jit.script(net).save(str(path))
    elif kind == "export":
        batch = torch.export.Dim("batch")
        torch.export.save(torch.export.export(net, (x,), dynamic_shapes=({0: batch},)),
                          str(path))
    elif kind == "onnx":
        torch.onnx.export(net, (x,), str(path), input_names=["x"],
                          dynamic_axes={"x": {0: "batch"}}, dynamo=False)
    else:
        raise AssertionError(f"no file saver for the supplied model kind {kind!r}: add one")
    return str(path)


@pytest.mark.parametrize("name", _ids("model"))
def test_model_contract(name: str, tmp_path: Path):
    spec = REGISTRY.model(name)
    big = ModelInput(3, 32, 32, 10, (0.5, 0.5, 0.5), (0.25,) * 3)
    if spec.supplied:
        for mi in (ModelInput(1, 8, 8, 10), big):
            check_model_spec(spec, _save_tiny(name, mi, tmp_path), mi)
        return
    variant = TIMM_VARIANT if spec.takes_variant else None
    check_model_spec(spec, variant)
    check_model_spec(spec, variant, big)


# Attacks that need a particular kind of victim get one: the model that offers the feature.
VICTIMS = {"svm": "svm", "logreg": "logreg", "two-layer-relu": "mlp"}
# A narrow mlp: functionally equivalent extraction finds one critical point per hidden unit.
VICTIM_OPTIONS = {"mlp": {"hidden": 16}}


def _victim_context(spec: AttackSpec) -> AttackContext | None:
    """A tiny context whose victim offers what ``spec`` needs (None: the default conv net)."""
    wanted = [VICTIMS[f] for f in sorted(spec.needs) if f in VICTIMS]
    if not wanted:
        return None
    model = REGISTRY.model(wanted[0])
    assert spec.needs <= model.offers, (spec.name, model.name)
    options = model.resolve_options(VICTIM_OPTIONS.get(model.name, {}))
    return tiny_context(new_model=lambda: model.build(ModelInput(1, 8, 8, 3), None, options),
                        fit=model.fit)


# Attacks whose first call in a process costs far more than any budget can cut: ART's
# Brendel & Bethge compiles a numba jitclass (about 30 s, not cacheable). Their smoke
# contract runs with ``-m slow`` beside the declared defaults.
COMPILE_ON_FIRST_CALL = {"brendel-bethge"}


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.slow) if n in COMPILE_ON_FIRST_CALL else n
    for n in _ids("attack")])
def test_attack_contract(name: str):
    """With the attack's smoke_options: the tiny budgets."""
    spec = REGISTRY.attack(name)
    check_attack_spec(spec, ctx=_victim_context(spec), options=spec.smoke_options)


def _seeded_outcome(spec: AttackSpec) -> Any:
    """What the attack gives on the tiny victim after the worker's per-cell seeding."""
    seed_globals(0, "cell", spec.name)
    return check_attack_spec(spec, ctx=_victim_context(spec), options=spec.smoke_options)


#: Wall-clock fields of a training report: measured, not computed, so never equal twice.
TIMINGS = {"seconds", "images_per_s"}


def _same(a: Any, b: Any) -> bool:
    """Equal outcomes: tensors element for element, records field for field (timings
    aside)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return all(_same(getattr(a, f.name), getattr(b, f.name))
                   for f in dataclasses.fields(a) if f.name not in TIMINGS)
    if isinstance(a, dict):
        keys = set(a) - TIMINGS
        return keys == set(b) - TIMINGS and all(_same(a[k], b[k]) for k in keys)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.slow) if n in COMPILE_ON_FIRST_CALL else n
    for n in _ids("attack")])
def test_every_attack_gives_the_same_numbers_twice(name: str):
    """Run twice with the same seed, each registered attack gives the same examples,
    poisons or metrics (ART's attacks that draw from unseeded generators included: the
    bridge seeds them, harness.art.bridge.reproducible_random_states)."""
    spec = REGISTRY.attack(name)
    assert _same(_seeded_outcome(spec), _seeded_outcome(spec)), name


@pytest.mark.slow
@pytest.mark.parametrize("name", _ids("attack"))
def test_attack_contract_at_declared_defaults(name: str):
    """With no options: what ``harness bench`` runs unless told otherwise."""
    spec = REGISTRY.attack(name)
    check_attack_spec(spec, ctx=_victim_context(spec), options={})


@pytest.mark.parametrize("name", _ids("defense"))
def test_defense_contract(name: str):
    """With the defense's smoke_options."""
    spec = REGISTRY.defense(name)
    check_defense_spec(spec, options=spec.smoke_options)


@pytest.mark.parametrize("name", _ids("defense"))
def test_every_defense_gives_the_same_numbers_twice(name: str):
    """Run twice with the same seed, each registered defense gives the same transformed
    images, flags or training report (weights and losses)."""
    spec = REGISTRY.defense(name)

    def outcome() -> Any:
        seed_globals(0, "cell", spec.name)
        return check_defense_spec(spec, options=spec.smoke_options)

    assert _same(outcome(), outcome()), name


@pytest.mark.slow
@pytest.mark.parametrize("name", _ids("defense"))
def test_defense_contract_at_declared_defaults(name: str):
    check_defense_spec(REGISTRY.defense(name), options={})


class StepsFGSM:
    """FGSM: the attack object of the spec below."""

    def perturb(self, model, x, y, eps):
        return fgsm_step(model, x, y, eps)


def test_smoke_options_are_the_default_of_the_checks():
    """``check_attack_spec(spec)`` runs the smoke options; ``options={}`` the defaults."""
    seen: list[dict] = []

    def build(resolved):
        seen.append(dict(resolved))
        return StepsFGSM()

    spec = AttackSpec(name="steps-fgsm", description="d", build=build,
                      threat_model="white-box", norm="inf",
                      options=options(Option(name="steps", type="int", default=10, min=1),
                                      Option(name="seed", type="int", default=0)),
                      smoke_options={"steps": 1})
    check_attack_spec(spec)
    check_attack_spec(spec, options={})
    check_attack_spec(spec, options={"seed": 3})
    assert seen == [{"steps": 1, "seed": 0}, {"steps": 10, "seed": 0}, {"steps": 10, "seed": 3}]


def test_every_kind_has_builtins():
    assert {"digits", "mnist", "fashion-mnist", "cifar10", "imagenet"} <= set(_ids("dataset"))
    assert {"paper-cnn", "timm", "mlp", "svm", "logreg"} <= set(_ids("model"))
    assert {"fgsm", "pgd", "backdoor", "membership-inference", "copycat"} <= set(_ids("attack"))
    assert {"none", "advtrain", "madry-pgd", "jpeg", "spectral-signature"} <= set(_ids("defense"))
    categories = {REGISTRY.attack(n).category for n in _ids("attack")}
    assert categories == {"evasion", "poisoning", "inference", "extraction", "certification",
                          "corruption"}
    stages = {REGISTRY.defense(n).stage for n in _ids("defense")}
    assert stages == {"training", "input-transformation", "poisoning-detection"}


def test_contract_check_catches_an_attack_over_budget():
    class TooStrong:
        def perturb(self, model, x, y, eps):
            return (x + 2 * eps).clamp(0, 1)

    spec = replace(REGISTRY.attack("fgsm"), build=lambda options: TooStrong())
    with pytest.raises(AssertionError, match="exceeds eps"):
        check_attack_spec(spec)


@pytest.mark.parametrize("name,protocol,method", [
    ("feature-squeezing", "InputTransformation", "transform"),
    ("spectral-signature", "PoisonDetector", "detect"),
    ("advtrain", "TrainingDefense", "train"),
])
def test_contract_check_names_the_protocol_a_defense_misses(name: str, protocol: str,
                                                             method: str):
    class Nothing:
        def apply(self, x):
            return x

    spec = replace(REGISTRY.defense(name), build=lambda options: Nothing())
    with pytest.raises(AssertionError, match=rf"defense {name}: build returned Nothing, which "
                                             rf"does not implement {protocol} \(it needs "
                                             rf"{method}\)"):
        check_defense_spec(spec)


def test_contract_check_catches_an_undeclared_field():
    spec = replace(REGISTRY.attack("fgsm"), needs=frozenset({"gradient"}))
    with pytest.raises(AssertionError, match=r"needs has 'gradient'.*Did you mean: gradients\?"):
        check_attack_spec(spec)
