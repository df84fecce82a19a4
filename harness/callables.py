"""Modules that can be called as the function they are named after.

The front door (:mod:`harness`) exports a few functions that share their module's name:
``harness.options(Option(...))`` is :func:`harness.options.options`. Importing the module
``harness.options`` binds the name ``options`` of the package to the module, whichever was
there before, so the module itself is made callable: ``harness.options(...)`` calls the
function and ``harness.options.Option`` is still the class, in every import order.
"""

from __future__ import annotations

import sys
import types
from typing import Any


class CallableModule(types.ModuleType):
    """A module whose call is a call of its function named in ``__front_door_call__``."""

    __front_door_call__: str

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """The module's namesake function called with ``args`` and ``kwargs``."""
        return getattr(self, self.__front_door_call__)(*args, **kwargs)


def make_callable(module_name: str, function_name: str) -> None:
    """Make the loaded module ``module_name`` callable as its function ``function_name``
    (call it at the end of the module)."""
    module = sys.modules[module_name]
    module.__class__ = CallableModule
    module.__front_door_call__ = function_name  # type: ignore[attr-defined]
