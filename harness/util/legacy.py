"""The module paths of 0.1, kept importable for one more minor version with a warning.

0.2.0 moved every private module of the core into its wing (``harness.specs`` is
``harness.contracts.specs``). Code that imports an old path gets the new module and a
``DeprecationWarning`` naming it and the front door (``from harness import X``), which is what
plugins should import; the old paths go in 0.3.0.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from importlib.machinery import ModuleSpec
from types import ModuleType

#: Old module path -> where it lives now.
MOVED: dict[str, str] = {
    "harness.adaptive": "harness.run.evaluators.adaptive",
    "harness.adversarial": "harness.run.adversarial",
    "harness.art_bridge": "harness.art.bridge",
    "harness.art_declarations": "harness.art.declarations",
    "harness.augment": "harness.train.augment",
    "harness.callables": "harness.util.callables",
    "harness.categories": "harness.contracts.categories",
    "harness.checks": "harness.report.checks",
    "harness.claims": "harness.report.claims",
    "harness.context": "harness.contracts.context",
    "harness.data": "harness.contracts.data",
    "harness.devices": "harness.util.devices",
    "harness.errors": "harness.util.errors",
    "harness.evaluation": "harness.run.evaluators.scoring",
    "harness.evaluators": "harness.run.evaluators",
    "harness.executors": "harness.run.executors",
    "harness.figures": "harness.contracts.figures",
    "harness.files": "harness.util.files",
    "harness.gradients": "harness.train.gradients",
    "harness.headline": "harness.report.headline",
    "harness.hookspecs": "harness.contracts.hookspecs",
    "harness.host_memory": "harness.util.host_memory",
    "harness.leaderboard": "harness.report.leaderboard",
    "harness.listing": "harness.report.listing",
    "harness.metadata": "harness.results.metadata",
    "harness.metrics": "harness.contracts.metrics",
    "harness.model_cache": "harness.run.model_cache",
    "harness.models": "harness.contracts.models",
    "harness.options": "harness.contracts.options",
    "harness.outcomes": "harness.contracts.outcomes",
    "harness.plan": "harness.planning.plan",
    "harness.plugins": "harness.planning.loading",
    "harness.poisoning": "harness.run.evaluators.poisoning",
    "harness.progress": "harness.util.progress",
    "harness.provenance": "harness.contracts.provenance",
    "harness.provider": "harness.run.provider",
    "harness.records": "harness.contracts.records",
    "harness.registry": "harness.planning.registry",
    "harness.reporting": "harness.report.reporting",
    "harness.roles": "harness.contracts.roles",
    "harness.runner": "harness.run.runner",
    "harness.seeds": "harness.util.seeds",
    "harness.settings": "harness.contracts.settings",
    "harness.setup": "harness.planning.setup",
    "harness.specs": "harness.contracts.specs",
    "harness.store": "harness.results.store",
    "harness.summary": "harness.report.summary",
    "harness.supplied": "harness.planning.supplied",
    "harness.training": "harness.train.loop",
    "harness.work": "harness.run.work",
    "harness.executors.base": "harness.run.executors.base",
    "harness.executors.local": "harness.run.executors.local",
    "harness.executors.serial": "harness.run.executors.serial",
    "harness.executors.ray_executor": "harness.run.executors.ray_executor",
    "harness.evaluators.base": "harness.run.evaluators.base",
    "harness.evaluators.evasion": "harness.run.evaluators.evasion",
    "harness.evaluators.model_attack": "harness.run.evaluators.model_attack",
    "harness.evaluators.poisoning": "harness.run.evaluators.poisoning",
}


class _Alias(importlib.abc.Loader):
    """Loads an old path as the module that replaced it: the placeholder module the import
    system makes is swapped for the new one in ``sys.modules`` (which the import statement
    returns), so the new module keeps its own name and spec."""

    def __init__(self, new: str):
        self.new = new

    def exec_module(self, module: ModuleType) -> None:
        """Warn, then put the new module where the old one would be."""
        warnings.warn(f"{module.__name__} moved to {self.new} in harness 0.2.0 and is private: "
                      "import public names from the front door (from harness import ...); the "
                      "old path goes in 0.3.0", DeprecationWarning, stacklevel=2)
        sys.modules[module.__name__] = importlib.import_module(self.new)


class LegacyFinder(importlib.abc.MetaPathFinder):
    """Finds the old module paths of :data:`MOVED`."""

    def find_spec(self, fullname: str, path: object = None, target: object = None
                  ) -> ModuleSpec | None:
        """The alias spec of an old path, else None (the normal finders go on)."""
        new = MOVED.get(fullname)
        if new is None:
            return None
        return importlib.util.spec_from_loader(fullname, _Alias(new))


def install() -> None:
    """Put the finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, LegacyFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, LegacyFinder())   # before the path finder: a moved
        # package's submodules must not load a second time from its new folder
