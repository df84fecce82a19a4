"""A pytest plugin for plugin authors: register a plugin for one test, and contract checks.

Installed with harness (entry point ``pytest11``), so in any test suite::

    def test_my_attack(harness_plugin):
        registry = harness_plugin(my_plugin_module)     # registered for this test only
        check_attack_spec(registry.attack("my-attack"))

The contract checks run a spec's factory on tiny inputs and assert what the runner relies
on. harness's own test suite runs them over every registered spec.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import pytest
import torch
from torch import nn

from harness import plugins as _plugins
from harness.data import DataOptions, ImageData, ModelInput
from harness.registry import Registry
from harness.specs import (
    ATTACK_CATEGORIES,
    DEFENSE_STAGES,
    LP_NORMS,
    NORMS,
    THREAT_MODELS,
    AttackSpec,
    DatasetSpec,
    DefenseSpec,
    ModelSpec,
    PluginInfo,
)
from harness.training import TrainContext, TrainData, TrainReport, TrainSettings

__all__ = [
    "check_attack_spec",
    "check_dataset_spec",
    "check_defense_spec",
    "check_model_spec",
    "harness_plugin",
    "tiny_classifier",
    "tiny_image_data",
    "trained_tiny_classifier",
]


@pytest.fixture
def harness_plugin() -> Iterator[Callable[..., Registry]]:
    """Register in-process plugins for one test; returns the resulting registry.

    ``harness_plugin(obj, name="my-plugin")`` adds ``obj`` (a module or object with hook
    implementations) beside the installed plugins; every registry built during the test,
    including the one ``harness.cli.main`` builds, includes it. Removed after the test.
    """
    added: list[tuple[PluginInfo, object]] = []

    def add(obj: object, name: str | None = None, *, entry_points: bool = True) -> Registry:
        info = PluginInfo(name=name or getattr(obj, "__name__", type(obj).__name__),
                          distribution="<in-process>", version="0")
        _plugins.TEST_PLUGINS.append((info, obj))
        added.append((info, obj))
        return _plugins.load_registry(strict=True, use_entry_points=entry_points)

    yield add
    for item in added:
        _plugins.TEST_PLUGINS.remove(item)


def _check_common(spec, kind: type) -> None:
    assert isinstance(spec, kind), f"expected {kind.__name__}, got {type(spec).__name__}"
    assert spec.name and spec.name == spec.name.strip() and "," not in spec.name, spec.name
    assert spec.name != "all", "'all' is reserved on the command line"
    assert spec.description and "\n" not in spec.description, \
        f"{spec.name}: description must be one line"
    assert callable(getattr(spec, "load", None) or getattr(spec, "build", None))


def tiny_image_data(n_train: int = 96, n_test: int = 32, channels: int = 1, size: int = 8,
                    num_classes: int = 3, seed: int = 0) -> ImageData:
    """A small, learnable image set: each class is a bright square in its own place."""
    g = torch.Generator().manual_seed(seed)

    def make(n: int):
        y = torch.arange(n) % num_classes
        x = torch.rand(n, channels, size, size, generator=g) * 0.3
        for c in range(num_classes):
            r = (c * 2) % (size - 2)
            x[y == c, :, r:r + 3, r:r + 3] += 0.6
        return x.clamp(0, 1), y

    return ImageData(*make(n_train), *make(n_test), num_classes=num_classes)


def tiny_classifier(channels: int = 1, size: int = 8, num_classes: int = 3,
                    seed: int = 0) -> nn.Module:
    """A small conv net with fixed random weights, in eval mode, for attack checks."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(channels, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(8 * (size // 2) ** 2, num_classes),
    ).eval()


def trained_tiny_classifier(seed: int = 0) -> nn.Module:
    """:func:`tiny_classifier` fitted to :func:`tiny_image_data` (it predicts every class, so
    attacks that need a starting point of another class find one)."""
    data = tiny_image_data(seed=seed)
    model = tiny_classifier(num_classes=data.num_classes, seed=seed).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        nn.functional.cross_entropy(model(data.x_train), data.y_train).backward()
        opt.step()
    return model.eval()


def check_dataset_spec(spec: DatasetSpec, options: DataOptions | None = None) -> ImageData | None:
    """Check a dataset spec's fields; with ``options``, also load it and check the data."""
    _check_common(spec, DatasetSpec)
    assert 0 < spec.default_eps <= 1, f"{spec.name}: default_eps must be in (0, 1]"
    assert (spec.mean is None) == (spec.std is None), f"{spec.name}: give mean and std together"
    if spec.std is not None:
        assert len(spec.mean) == len(spec.std) and all(s > 0 for s in spec.std)
    if options is None:
        return None
    data = spec.load(options)
    assert isinstance(data, ImageData)
    for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test)):
        assert x.dtype == torch.float32, f"{spec.name}: images must be float32"
        assert float(x.min()) >= 0 and float(x.max()) <= 1, f"{spec.name}: pixels not in [0, 1]"
        assert y.dtype == torch.int64
        assert int(y.min()) >= 0 and int(y.max()) < data.num_classes
    if spec.mean is not None:
        assert len(spec.mean) == data.image_shape[0]
    return data


def check_model_spec(spec: ModelSpec, variant: str | None = None,
                     model_input: ModelInput | None = None) -> nn.Module:
    """Build the model, run a forward and backward pass, check shapes and gradients."""
    _check_common(spec, ModelSpec)
    assert spec.takes_variant == (variant is not None), \
        f"{spec.name}: pass a variant exactly when the family takes one"
    mi = model_input or ModelInput(1, 8, 8, 10)
    torch.manual_seed(0)
    model = spec.build(mi, variant, {})
    assert isinstance(model, nn.Module)
    x = torch.rand(2, mi.channels, mi.height, mi.width, requires_grad=True)
    model.eval()
    out = model(x)
    assert out.shape == (2, mi.num_classes), f"{spec.name}: logits shape {tuple(out.shape)}"
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all(), \
        f"{spec.name}: no gradient reaches the input"
    return model


def check_attack_spec(spec: AttackSpec, eps: float = 0.1) -> torch.Tensor:
    """Attack a tiny classifier and check shape, range, budget, and that inputs are kept.

    A bounded attack gets ``eps`` and must stay within it in its norm; an unbounded one gets
    None.
    """
    _check_common(spec, AttackSpec)
    assert spec.threat_model in THREAT_MODELS, spec.threat_model
    assert spec.norm in NORMS, spec.norm
    assert spec.category in ATTACK_CATEGORIES, spec.category
    assert spec.default_eps is None or 0 < spec.default_eps <= 1
    model = trained_tiny_classifier()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = tiny_image_data()
    x, y = data.x_test[:16], data.y_test[:16]
    x_copy = x.clone()
    attack = spec.build({})
    x_adv = attack.perturb(model, x, y, eps if spec.bounded else None)
    assert torch.equal(x, x_copy), f"{spec.name}: the attack modified its input in place"
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1, f"{spec.name}: left [0, 1]"
    delta = (x_adv - x).flatten(1)
    bound = {"inf": delta.abs().amax(1), "2": delta.norm(dim=1), "1": delta.abs().sum(1),
             "0": (delta != 0).sum(1).float()}.get(spec.norm, delta.abs().amax(1))
    if spec.bounded and spec.norm in LP_NORMS:
        assert float(bound.max()) <= eps * (1 + 1e-5) + 1e-6, \
            f"{spec.name}: perturbation {float(bound.max())} exceeds eps {eps} in L{spec.norm}"
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items()), \
        f"{spec.name}: the attack changed the model's weights"
    return x_adv


def check_defense_spec(spec: DefenseSpec) -> TrainReport:
    """Train a tiny classifier with the defense and check it learned and reported honestly."""
    _check_common(spec, DefenseSpec)
    assert spec.stage in DEFENSE_STAGES, spec.stage
    assert spec.stage == "training", "only training-stage defenses have a contract check yet"
    data = tiny_image_data()
    model = tiny_classifier(num_classes=data.num_classes)
    before = [p.detach().clone() for p in model.parameters()]
    settings = TrainSettings(epochs=3, batch_size=32, lr=1e-2, patience=3, seed=0)
    ctx = TrainContext(settings=settings, device=torch.device("cpu"), dataset_eps=0.1,
                       show_progress=False)
    report = spec.build({}).train(model, TrainData.split(data, 0.1, 0), ctx)
    assert isinstance(report, TrainReport)
    assert 1 <= report.epochs_run <= settings.epochs
    assert report.seconds > 0 and report.images > 0 and math.isfinite(report.images_per_s)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True)), \
        f"{spec.name}: training left the weights unchanged"
    return report
