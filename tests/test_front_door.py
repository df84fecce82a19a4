"""One public front door: ``harness`` itself exports everything a user or plugin author may
touch, importing it stays cheap, and the built-in plugins, the example packages and the plugin
guide import nothing else of harness (every other module is private by convention)."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import harness

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "plugin-authors.md"
# Front-door names reserved for the Python entry point of a benchmark: until its module is
# in the checkout they do not resolve (and type checkers do not see them).
RESERVED = {"evaluate", "EvaluationError"}


def _reserved_and_absent(name: str) -> bool:
    module = harness._WHERE[name][0]
    return name in RESERVED and importlib.util.find_spec(module) is None


@pytest.mark.parametrize("name", harness.__all__)
def test_every_public_name_resolves(name: str):
    if name in harness._WHERE and _reserved_and_absent(name):
        with pytest.raises(AttributeError, match="does not have"):
            getattr(harness, name)
        pytest.skip(f"{name}: {harness._WHERE[name][0]} is not in this checkout yet")
    assert getattr(harness, name) is not None


def test_a_public_name_is_the_object_of_its_module():
    for name, (module, attribute) in harness._WHERE.items():
        if _reserved_and_absent(name):
            continue
        loaded = importlib.import_module(module)
        whole = module.endswith(f".{name}") and not hasattr(loaded, attribute)
        expected = loaded if whole else getattr(loaded, attribute)
        assert getattr(harness, name) is expected, name


def test_unknown_names_are_attribute_errors():
    assert not hasattr(harness, "no_such_name")
    with pytest.raises(ImportError):
        exec("from harness import no_such_name", {})
    assert set(harness.__all__) <= set(dir(harness))


def _type_checking_names() -> set[str]:
    """The names ``harness/__init__.py`` imports for type checkers."""
    tree = ast.parse(Path(harness.__file__).read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If)
                 and isinstance(n.test, ast.Name) and n.test.id == "TYPE_CHECKING")
    return {alias.asname or alias.name for node in block.body
            if isinstance(node, ast.ImportFrom) for alias in node.names}


def test_type_checkers_see_every_public_name():
    assert _type_checking_names() == {n for n in harness._WHERE if not _reserved_and_absent(n)}


# Runs in a fresh interpreter: imports, then prints the heavy modules loaded.
PROBE = """
import json, sys
exec(sys.argv[1])
heavy = ("torch", "numpy", "art", "sklearn", "timm", "scipy", "PIL", "matplotlib")
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & set(heavy))))
"""


@pytest.mark.parametrize("statement", [
    "import harness",
    "from harness import hookimpl, AttackSpec, DatasetSpec, DefenseSpec, ModelSpec, ReportSpec, "
    "Option, OptionSchema, options, MetricSpec, ITERATIVE, roles, UsageError, ArtEvasion, "
    "TORCH_MODEL_OFFERS, derive_seed, Result, ResultSet, Figure, attack_label",
])
def test_the_front_door_imports_no_heavy_library(statement: str):
    done = subprocess.run([sys.executable, "-c", PROBE, statement], capture_output=True,
                          text=True, timeout=120, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


@pytest.mark.parametrize("first", ["import harness.contracts.options",
                                   "from harness import options",
                                   "from harness.contracts.specs import UNDECLARED"])
def test_options_is_callable_in_every_import_order(first: str):
    code = (f"{first}\nimport harness\nfrom harness import Option, options\n"
            "schema = options(Option(name='steps', type='int', default=3))\n"
            "assert harness.options is options and harness.Option is Option\n"
            "assert schema.defaults() == {'steps': 3}, schema\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# ------------------------------------------------------------------ who imports what


def _python_sources() -> list[tuple[str, str]]:
    """(where, code) of every plugin and example module and of the guide's code blocks."""
    files = sorted((ROOT / "plugins").glob("*.py")) + sorted(
        p for p in (ROOT / "examples").rglob("*.py") if ".egg-info" not in str(p))
    found = [(str(p.relative_to(ROOT)), p.read_text()) for p in files]
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.S)
    found += [(f"docs/plugin-authors.md, code block {i + 1}", code)
              for i, code in enumerate(blocks)]
    return found


def private_imports(code: str) -> list[str]:
    """The ``harness.<module>`` imports of ``code`` (``harness`` itself is the one allowed;
    a package's own modules, ``harness_plugins.*`` or ``harness_stripes.*``, are its own)."""
    found = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [f"line {node.lineno}: {name}" for name in names
                  if name.startswith("harness.")]
    return found


def test_the_scan_finds_private_imports():
    assert private_imports("from harness.contracts.specs import AttackSpec\n"
                           "import harness.contracts.data\n"
                           "from harness import AttackSpec\nimport harness_plugins.x\n"
                           "def f():\n    from harness.art.bridge import to_numpy\n") == [
        "line 1: harness.contracts.specs", "line 2: harness.contracts.data",
        "line 6: harness.art.bridge"]


@pytest.mark.parametrize("where,code", [pytest.param(w, c, id=w) for w, c in _python_sources()])
def test_plugins_examples_and_the_guide_use_only_the_front_door(where: str, code: str):
    found = private_imports(code)
    assert not found, (f"{where} imports private modules of harness ({'; '.join(found)}): "
                       "import the names from harness itself (from harness import ...)")


@pytest.mark.parametrize("old", ["harness.specs", "harness.training", "harness.executors.base",
                                 "harness.plan"])
def test_the_module_paths_of_0_1_import_with_a_warning_naming_the_new_one(old: str):
    from harness.util.legacy import MOVED

    code = ("import importlib, sys, warnings\nwarnings.simplefilter('error')\nimport harness\n"
            f"try:\n    importlib.import_module({old!r})\nexcept DeprecationWarning as w:\n"
            "    print(w)\nelse:\n    sys.exit('no warning')\n"
            "warnings.simplefilter('ignore')\n"
            f"assert importlib.import_module({old!r}) is importlib.import_module({MOVED[old]!r})\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    parent = old.rpartition(".")[0]     # a moved package warns first, for itself
    assert f"{old} moved to {MOVED[old]}" in done.stdout \
        or f"{parent} moved to {MOVED[parent]}" in done.stdout
