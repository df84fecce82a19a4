"""A pytest plugin for plugin authors: register a plugin for one test, and contract checks.

Installed with harness (entry point ``pytest11``), so in any test suite::

    import my_package.plugin

    def test_my_attack(harness_plugin):
        registry = harness_plugin(my_package.plugin)     # registered for this test only
        check_attack_spec(registry.attack("my-attack"))  # runs it with its smoke_options

The contract checks check a spec's declared fields as registration does, run its factory on
tiny inputs and assert what the runner relies on. harness's own test suite runs them over
every registered spec.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from harness.contracts.specs import PluginInfo
from harness.planning import loading as _plugins
from harness.planning.registry import Registry
from harness.testing.contracts import (
    CONTRACT_EPS,
    check_attack_spec,
    check_dataset_spec,
    check_defense_spec,
    check_model_spec,
    detector_contract,
    evasion_contract,
    model_attack_contract,
    poisoning_contract,
    training_contract,
    transformation_contract,
)
from harness.testing.tiny import (
    TINY_SETTINGS,
    corner_backdoor,
    reaching_bounds,
    tiny_classifier,
    tiny_context,
    tiny_image_data,
    trained_tiny_classifier,
)

__all__ = [
    "CONTRACT_EPS",
    "TINY_SETTINGS",
    "detector_contract",
    "evasion_contract",
    "model_attack_contract",
    "poisoning_contract",
    "training_contract",
    "transformation_contract",
    "check_attack_spec",
    "check_dataset_spec",
    "check_defense_spec",
    "check_model_spec",
    "corner_backdoor",
    "harness_plugin",
    "reaching_bounds",
    "tiny_context",
    "tiny_classifier",
    "tiny_image_data",
    "trained_tiny_classifier",
]


@pytest.fixture
def harness_plugin() -> Iterator[Callable[..., Registry]]:
    """Register in-process plugins for one test; returns the resulting registry.

    ``harness_plugin(obj, name="my-plugin", *, entry_points=True)`` adds ``obj`` (a module,
    or any object with hook implementations) and returns a registry built strictly, so a
    spec that fails registration fails the test. Every registry built during the test,
    including the one ``harness.cli.main`` builds, includes it; it is removed after the test.

    - ``entry_points=True`` (the default): ``obj`` comes beside every installed plugin, the
      built-ins included. When ``obj`` is already loaded through an entry point (your own
      package, pip-installed), it is not registered a second time: the registry keeps it
      under its entry point, with its distribution and version.
    - ``entry_points=False``: the registry holds only the plugins given to the fixture, no
      built-in and no installed plugin (a test of your plugin alone, or of a name a
      built-in also uses).

    ``name`` defaults to the module's (or the object's class's) name; plugins given to the
    fixture show the distribution ``<in-process>``.
    """
    added: list[tuple[PluginInfo, object]] = []

    def add(obj: object, name: str | None = None, *, entry_points: bool = True) -> Registry:
        info = PluginInfo(name=name or str(getattr(obj, "__name__", type(obj).__name__)),
                          distribution="<in-process>", version="0")
        _plugins.TEST_PLUGINS.append((info, obj))
        added.append((info, obj))
        return _plugins.load_registry(strict=True, use_entry_points=entry_points)

    yield add
    for item in added:
        _plugins.TEST_PLUGINS.remove(item)
