"""The layout rules the core keeps: small functions, docstrings, roles instead of names, and
plugins that never import each other (only a plugin's own private ``_NAME_impl`` module)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from harness.contracts.categories import CATEGORIES, STAGES
from harness.contracts.specs import ATTACK_CATEGORIES, DEFENSE_STAGES, MODEL_FEATURES, NORMS
from harness.planning.loading import load_registry
from harness.results.metadata import LIBRARIES

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
    """Every string literal of ``path`` that is not a docstring, the literal parts of f-strings
    included."""
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
        if path.parent.name == "cli":   # help texts give examples; checked without them below
            continue
        named = (_string_constants(path) & builtin) - vocabulary
        assert not named, f"{path.relative_to(ROOT)} names built-in plugins: {sorted(named)}"


def test_no_core_message_lists_built_in_plugins():
    """A message that lists several built-in names (``defenses none, advtrain and fbf``) is
    a list the core keeps instead of asking the registry; one name as an example is fine."""
    registry = load_registry()
    builtin = {name for specs in registry.specs.values() for name, spec in specs.items()
               if spec.plugin is not None and spec.plugin.distribution == "robustness-harness"}
    vocabulary = set(NORMS) | set(MODEL_FEATURES) | set(LIBRARIES) | {"null", "export"}
    for path in CORE:
        if path.parent.name == "cli":   # help texts give examples
            continue
        for text in _string_constants(path):
            named = (set(re.findall(r"[a-z][a-z0-9:-]*[a-z0-9]", text)) & builtin) - vocabulary
            assert len(named) < 2, f"{path.relative_to(ROOT)} lists {sorted(named)}: {text!r}"


def test_declared_categories_and_stages_are_the_spec_vocabulary():
    assert tuple(CATEGORIES) == ATTACK_CATEGORIES
    assert tuple(STAGES) == DEFENSE_STAGES


# ------------------------------------------------------------------ wings and layers

#: The wings of the core, lowest first: a module imports its own wing's modules and the
#: wings of lower floors only, never a wing beside it on its floor or above it (every import
#: counts: at the top of a module, inside a function, for type checkers only).
FLOORS: list[tuple[str, ...]] = [
    ("util",),                              # errors, files, seeds, devices, version
    ("contracts",),                         # specs, options, roles, metrics, records, data
    ("train", "art"),                       # the training loop; the bridge to ART
    ("planning",),                          # plugins into the registry, plan and keys
    ("results",),                           # the store, run metadata, the results file
    ("run", "report"),                      # executing a plan; rendering records
    ("cli", "python_api", "testing"),       # the two doors and the pytest plugin
    ("__init__",),                          # the front door re-exports everything
]
#: At most this many entries at the top of harness/: the pipeline at a glance.
MAX_ROOMS = 13
MAX_MODULE_LINES = 420


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _wing(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _floor(wing: str) -> int:
    for level, wings in enumerate(FLOORS):
        if wing in wings:
            return level
    raise AssertionError(f"harness/{wing} is in no floor of tests/test_architecture.FLOORS")


def _core_imports() -> dict[str, set[str]]:
    """Every core module and the core modules it imports (any import, anywhere in it)."""
    modules = {_module_name(p): p for p in CORE}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            found |= {t for t in targets if t in modules and t != name}
        graph[name] = found
    return graph


def test_every_import_runs_down_the_floors_of_the_wings():
    wrong = []
    for module, imported in sorted(_core_imports().items()):
        wing = _wing(module)
        for target in sorted(imported):
            other = _wing(target)
            if other != wing and _floor(other) >= _floor(wing):
                wrong.append(f"{module} imports {target}")
    assert not wrong, "imports that go up or sideways:\n" + "\n".join(wrong)


def test_the_core_has_no_import_circle():
    graph = _core_imports()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(v: str) -> None:      # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not circles, f"import circles: {circles}"


def test_the_top_of_harness_shows_the_pipeline_in_a_dozen_rooms():
    rooms = {p.stem for p in (ROOT / "harness").iterdir()
             if p.name != "__pycache__" and (p.is_dir() or p.suffix == ".py")}
    assert len(rooms) <= MAX_ROOMS, sorted(rooms)
    assert rooms == {wing for floor in FLOORS for wing in floor}, \
        "every room of harness/ is a wing of FLOORS, and every wing a room"


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_core_module_is_much_longer_than_400_lines(path: Path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.name}: {lines} lines; split it by job"


@pytest.mark.parametrize("path", PLUGINS, ids=lambda p: p.name)
def test_no_plugin_function_is_longer_than_60_lines(path: Path):
    long = [f"{f.name} ({f.end_lineno - f.lineno + 1} lines)" for f in _functions(path)
            if f.end_lineno - f.lineno + 1 > MAX_LINES]
    assert not long, f"{path.name}: {', '.join(long)}"
