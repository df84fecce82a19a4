"""The layout rules the core keeps: small functions, docstrings, roles instead of names, and
plugins that never import each other (only a plugin's own private ``_NAME_impl`` module)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from harness.categories import CATEGORIES, STAGES
from harness.metadata import LIBRARIES
from harness.plugins import load_registry
from harness.specs import ATTACK_CATEGORIES, DEFENSE_STAGES, MODEL_FEATURES, NORMS

ROOT = Path(__file__).resolve().parents[1]
CORE = sorted((ROOT / "harness").rglob("*.py"))
PLUGINS = sorted((ROOT / "plugins").glob("*.py"))
# Argument parsing is a list of declarations, not logic: the one exception to the limit.
LONG_ALLOWED = {"build_parser"}
MAX_LINES = 60


def _functions(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_core_function_is_longer_than_60_lines(path: Path):
    long = [f"{f.name} ({f.end_lineno - f.lineno + 1} lines)" for f in _functions(path)
            if f.name not in LONG_ALLOWED and f.end_lineno - f.lineno + 1 > MAX_LINES]
    assert not long, f"{path.name}: {', '.join(long)}"


@pytest.mark.parametrize("path", CORE + PLUGINS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_module_has_a_docstring(path: Path):
    assert ast.get_docstring(ast.parse(path.read_text())), f"{path} has no module docstring"


def _own_implementation(path: Path) -> str | None:
    """The one module of ``harness_plugins`` that ``plugins/NAME.py`` may import: its private
    implementation ``plugins/_NAME_impl.py`` (torch-side code it imports lazily, so that
    registering the plugin stays cheap), when that file exists. Nothing else may import it."""
    impl = path.with_name(f"_{path.stem}_impl.py")
    return f"harness_plugins.{impl.stem}" if impl.exists() else None


@pytest.mark.parametrize("path", PLUGINS, ids=lambda p: p.name)
def test_no_plugin_imports_another_plugin(path: Path):
    allowed = _own_implementation(path)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            # a relative import (``from ._x_impl import y``) is one of harness_plugins too
            module = f"harness_plugins.{node.module or ''}" if node.level else node.module or ""
            assert not module.startswith("harness_plugins") or module == allowed, \
                (path.name, module)
        if isinstance(node, ast.Import):
            assert not any(a.name.startswith("harness_plugins") for a in node.names)


def test_a_private_implementation_module_belongs_to_one_plugin():
    for path in PLUGINS:
        if path.name.startswith("_") and path.name != "__init__.py":
            assert path.stem.endswith("_impl"), f"{path.name}: private modules are _NAME_impl"
            owner = path.with_name(f"{path.stem[1:].removesuffix('_impl')}.py")
            assert owner.exists(), f"{path.name} has no plugin {owner.name} to belong to"


def _string_constants(path: Path) -> set[str]:
    """Every string literal of ``path`` that is not a docstring or part of an f-string."""
    tree = ast.parse(path.read_text())
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef)
                  and n.body and isinstance(n.body[0], ast.Expr)
                  and isinstance(n.body[0].value, ast.Constant)}
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
            and isinstance(n.value, str) and id(n) not in docstrings}


def test_the_core_names_no_built_in_plugin():
    registry = load_registry()
    builtin = {name for kind, specs in registry.specs.items() for name, spec in specs.items()
               if spec.plugin is not None and spec.plugin.distribution == "robustness-harness"}
    # Words of the core's own vocabularies that some built-in also uses as its name.
    vocabulary = set(NORMS) | set(MODEL_FEATURES) | set(LIBRARIES) | {"null"}
    for path in CORE:
        if path.name == "cli.py":   # help texts give examples; checked without them below
            continue
        named = (_string_constants(path) & builtin) - vocabulary
        assert not named, f"{path.relative_to(ROOT)} names built-in plugins: {sorted(named)}"


def test_declared_categories_and_stages_are_the_spec_vocabulary():
    assert tuple(CATEGORIES) == ATTACK_CATEGORIES
    assert tuple(STAGES) == DEFENSE_STAGES
