"""Tests of plugin loading (entry points, pluggy), the registry and per-plugin options."""

from __future__ import annotations

import dataclasses
import sys
import textwrap
import tomllib
import uuid
from collections.abc import Callable, Iterator
from importlib.metadata import Distribution, EntryPoint, entry_points, version
from pathlib import Path
from typing import Any

import harness_example_plugin
import pluggy
import pytest

import harness.planning.loading
import harness_plugins.fgsm
from harness.contracts.hookspecs import hookimpl
from harness.contracts.metrics import MetricSpec
from harness.contracts.options import (
    Option,
    options,
    parse_assignments,
    parse_value,
)
from harness.contracts.roles import BASELINE, ITERATIVE, REFERENCE
from harness.contracts.specs import (
    MODEL_FEATURES,
    AttackSpec,
    DatasetSpec,
    DefenseSpec,
    ModelSpec,
    PluginInfo,
    ReportSpec,
    Spec,
)
from harness.planning.loading import DISABLE_ENV, load_registry
from harness.planning.registry import KINDS, Registry
from harness.planning.spec_checks import spec_problems
from harness.testing import check_attack_spec
from harness.util.errors import PluginError, UsageError

pytest_plugins = ["pytester"]

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
PLUGINS_DIR = PYPROJECT.parent / "plugins"


def builtin_entry_points() -> dict[str, str]:
    """The ``[project.entry-points.harness]`` table of pyproject.toml: name -> module."""
    with PYPROJECT.open("rb") as f:
        return tomllib.load(f)["project"]["entry-points"]["harness"]


def installed_entry_points() -> list[EntryPoint]:
    return list(entry_points(group="harness"))


@pytest.fixture(autouse=True)
def _no_disabled_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """A HARNESS_DISABLE_PLUGINS set in the caller's environment must not change the tests."""
    monkeypatch.delenv(DISABLE_ENV, raising=False)


@pytest.fixture(scope="module")
def registry() -> Registry:
    """Every installed plugin, loaded strictly (read-only in the tests that use it)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(DISABLE_ENV, raising=False)
        return load_registry(strict=True)


# ---------------------------------------------------------------- fake plugins


MakePlugin = Callable[..., EntryPoint]


@pytest.fixture
def make_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakePlugin]:
    """Write a plugin module into tmp_path and return an entry point in group ``harness``.

    ``make_plugin(name, source)`` gives an entry point with no distribution (label 'unknown
    unknown'); ``make_plugin(name, source, dist=("fake-dist", "1.2.3"))`` writes a
    ``.dist-info`` folder too, so the entry point belongs to that distribution.
    Module names are unique per call, and removed from ``sys.modules`` afterwards.
    """
    modules_dir = tmp_path / "modules"
    modules_dir.mkdir()
    monkeypatch.syspath_prepend(str(modules_dir))
    modules: list[str] = []

    def make(name: str, source: str, dist: tuple[str, str] | None = None) -> EntryPoint:
        module = f"harness_fake_{name.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
        (modules_dir / f"{module}.py").write_text(textwrap.dedent(source))
        modules.append(module)
        if dist is None:
            return EntryPoint(name, module, group="harness")
        dist_name, dist_version = dist
        # Outside sys.path, so that entry_points() does not find the fake distribution.
        folder = f"{dist_name.replace('-', '_')}-{dist_version}.dist-info"
        info = tmp_path / "dists" / module / folder
        info.mkdir(parents=True)
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: {dist_version}\n")
        (info / "entry_points.txt").write_text(f"[harness]\n{name} = {module}\n")
        (ep,) = Distribution.at(info).entry_points.select(group="harness")
        return ep

    yield make
    for module in modules:
        sys.modules.pop(module, None)


IMPORT_ERROR = """
raise RuntimeError("kaboom at import")
"""

UNKNOWN_HOOK = """
from harness.contracts.hookspecs import hookimpl

@hookimpl
def harness_register_attackz(register):
    pass
"""

WRONG_ARGUMENT = """
from harness.contracts.hookspecs import hookimpl

@hookimpl
def harness_register_attacks(reg):
    pass
"""

RAISING_HOOK = """
from harness.contracts.hookspecs import hookimpl

@hookimpl
def harness_register_attacks(register):
    raise ValueError("broken inside the hook")
"""

WRONG_SPEC_TYPE = """
from harness.contracts.hookspecs import hookimpl
from harness.contracts.specs import DatasetSpec

@hookimpl
def harness_register_attacks(register):
    register(DatasetSpec(name="not-an-attack", description="d", load=None, default_eps=0.1))
"""


INVALID_FIELD = """
from harness.contracts.hookspecs import hookimpl
from harness.contracts.specs import AttackSpec

@hookimpl
def harness_register_attacks(register):
    register(AttackSpec(name="typo-attack", description="d", build=lambda o: None,
                        threat_model="white-box", norm="inf", needs=frozenset({"gradient"})))
"""


def attack_plugin(*names: str) -> str:
    """Source of a plugin module registering attacks called ``names``."""
    return f"""
from harness import AttackSpec, hookimpl, options

@hookimpl
def harness_register_attacks(register):
    for name in {list(names)!r}:
        register(AttackSpec(name=name, description="a test attack", build=lambda o: None,
                            threat_model="white-box", norm="inf", options=options()))
"""


def exception_chain(exc: BaseException | None) -> Iterator[BaseException]:
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


def duplicate_message(claimant: str, owner: str, kind: str, name: str) -> str:
    return (f"{claimant}: {kind} '{name}' is already registered by {owner}; disable one of the "
            "two plugins (--disable-plugin NAME) or rename the spec")


def label(ep: EntryPoint) -> str:
    dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else "unknown unknown"
    return f"plugin '{dist}' (entry point {ep.name} = {ep.value})"


# ---------------------------------------------------------------- installed plugins


def test_every_builtin_entry_point_is_loaded(registry: Registry):
    table = builtin_entry_points()
    assert table, "pyproject.toml declares no harness entry points"
    project_version = version("robustness-harness")
    for name, module in table.items():
        assert name in registry.plugins, f"built-in plugin {name} was not loaded"
        record = registry.plugins[name]
        assert record.info == PluginInfo(name=name, distribution="robustness-harness",
                                         version=project_version,
                                         entry_point=f"{name} = {module}")
        assert record.registered, f"built-in plugin {name} registered nothing"
    shipped = {n for n, r in registry.plugins.items()
               if r.info.distribution == "robustness-harness"}
    assert shipped == set(table)


def test_every_builtin_module_is_an_entry_point_and_back():
    """A module in plugins/ is a built-in only when pyproject declares it (and vice versa);
    a private module (``_NAME_impl.py``, the lazily imported code of plugin NAME) is none."""
    modules = {p.stem for p in PLUGINS_DIR.glob("*.py") if not p.name.startswith("_")}
    declared: dict[str, list[str]] = {}
    for name, value in builtin_entry_points().items():
        module, _, attribute = value.partition(":")
        assert not attribute and module.startswith("harness_plugins."), \
            f"entry point {name} = {value}: a built-in is a whole module of harness_plugins"
        declared.setdefault(module.removeprefix("harness_plugins."), []).append(name)
    undeclared = sorted(modules - set(declared))
    assert not undeclared, (f"plugins/{undeclared[0]}.py is not in pyproject.toml's "
                            "[project.entry-points.harness] table: add "
                            f"'{undeclared[0].replace('_', '-')} = "
                            f"\"harness_plugins.{undeclared[0]}\"'")
    missing = sorted(set(declared) - modules)
    assert not missing, (f"[project.entry-points.harness] names harness_plugins.{missing[0]}, "
                         f"but plugins/{missing[0]}.py does not exist")
    twice = {m: names for m, names in declared.items() if len(names) > 1}
    assert not twice, f"a module declared under two entry-point names: {twice}"


def test_specs_point_back_to_their_plugin(registry: Registry):
    for name, record in registry.plugins.items():
        for kind, spec_names in record.registered.items():
            for spec_name in spec_names:
                assert registry.specs[kind][spec_name].plugin == record.info, (name, spec_name)
    assert registry.attack("fgsm").plugin.name == "fgsm"
    assert registry.defense("none").plugin.name == "standard-training"
    assert registry.plugins["torchvision-datasets"].registered["dataset"] == [
        "mnist", "fashion-mnist", "cifar10"]


def test_example_third_party_plugin_is_loaded(registry: Registry):
    record = registry.plugins["random-noise"]
    assert record.info.distribution == "harness-example-plugin"
    assert record.info.version == version("harness-example-plugin")
    assert record.info.entry_point == "random-noise = harness_example_plugin"
    assert record.registered == {"attack": ["random-noise"]}
    spec = registry.attack("random-noise")
    assert spec.threat_model == "black-box" and spec.needs == frozenset()


def test_no_load_errors_for_installed_plugins():
    registry = load_registry(strict=False)
    assert registry.load_errors == []


# ---------------------------------------------------------------- broken plugins: strict


def test_import_error_names_plugin_and_exception(make_plugin: MakePlugin):
    ep = make_plugin("boom", IMPORT_ERROR, dist=("fake-dist", "1.2.3"))
    with pytest.raises(PluginError) as info:
        load_registry(entry_point_source=lambda: [ep])
    assert str(info.value) == (
        f"plugin 'fake-dist 1.2.3' (entry point boom = {ep.value}): failed to import: "
        "RuntimeError: kaboom at import")


def test_entry_point_without_distribution_is_labelled_unknown(make_plugin: MakePlugin):
    ep = make_plugin("boom", IMPORT_ERROR)
    with pytest.raises(PluginError) as info:
        load_registry(entry_point_source=lambda: [ep])
    assert str(info.value).startswith(f"plugin 'unknown unknown' (entry point boom = {ep.value})"
                                      ": failed to import: RuntimeError: kaboom at import")


def test_entry_point_with_missing_module(make_plugin: MakePlugin):
    ep = EntryPoint("ghost", "harness_no_such_module_anywhere", group="harness")
    with pytest.raises(PluginError, match=r"^plugin 'unknown unknown' \(entry point ghost = "
                       r"harness_no_such_module_anywhere\): failed to import: "
                       r"ModuleNotFoundError: No module named 'harness_no_such_module_anywhere'$"):
        load_registry(entry_point_source=lambda: [ep])


def test_unknown_hook_is_rejected_by_check_pending(make_plugin: MakePlugin):
    ep = make_plugin("typo", UNKNOWN_HOOK, dist=("typo-dist", "0.3"))
    with pytest.raises(PluginError) as info:
        load_registry(entry_point_source=lambda: [ep])
    assert str(info.value).startswith(
        f"plugin 'typo-dist 0.3' (entry point typo = {ep.value}): "
        "unknown hook 'harness_register_attackz' in plugin ")
    assert any(isinstance(e, pluggy.PluginValidationError) for e in exception_chain(info.value))


def test_hook_with_wrong_argument_name(make_plugin: MakePlugin):
    ep = make_plugin("wrong-arg", WRONG_ARGUMENT)
    with pytest.raises(PluginError) as info:
        load_registry(entry_point_source=lambda: [ep])
    message = str(info.value)
    assert message.startswith(label(ep) + ": ")
    assert "harness_register_attacks" in message and "'reg'" in message
    assert any(isinstance(e, pluggy.PluginValidationError) for e in exception_chain(info.value))


def test_exception_inside_registration_hook(make_plugin: MakePlugin):
    ep = make_plugin("raiser", RAISING_HOOK, dist=("raiser-dist", "2.0"))
    with pytest.raises(PluginError) as info:
        load_registry(entry_point_source=lambda: [ep])
    assert str(info.value) == (
        f"plugin 'raiser-dist 2.0' (entry point raiser = {ep.value}): "
        "harness_register_attacks failed: ValueError: broken inside the hook")


def test_wrong_spec_type(make_plugin: MakePlugin):
    ep = make_plugin("wrong-type", WRONG_SPEC_TYPE)
    with pytest.raises(PluginError) as info:
        load_registry(entry_point_source=lambda: [ep])
    assert str(info.value) == (
        f"{label(ep)}: register() for attacks got DatasetSpec, expected AttackSpec")


def test_duplicate_spec_name_names_both_owners(make_plugin: MakePlugin):
    first = make_plugin("dup-a", attack_plugin("twin"), dist=("dist-a", "1.0"))
    second = make_plugin("dup-b", attack_plugin("twin"), dist=("dist-b", "2.0"))
    a = f"plugin 'dist-a 1.0' (entry point dup-a = {first.value})"
    b = f"plugin 'dist-b 2.0' (entry point dup-b = {second.value})"
    with pytest.raises(PluginError) as info:
        load_registry(entry_point_source=lambda: [second, first])
    # The first loaded keeps the name; the second is blamed.
    assert str(info.value) in (duplicate_message(a, b, "attack", "twin"),
                               duplicate_message(b, a, "attack", "twin"))


def test_clash_with_a_builtin_names_the_builtin(make_plugin: MakePlugin):
    ep = make_plugin("my-fgsm", attack_plugin("fgsm"), dist=("zzz-dist", "1.0"))
    with pytest.raises(PluginError) as info:
        load_registry(entry_point_source=lambda: [*installed_entry_points(), ep])
    mine = f"plugin 'zzz-dist 1.0' (entry point my-fgsm = {ep.value})"
    builtin = (f"plugin 'robustness-harness {version('robustness-harness')}' "
               "(entry point fgsm = harness_plugins.fgsm)")
    assert str(info.value) in (duplicate_message(mine, builtin, "attack", "fgsm"),
                               duplicate_message(builtin, mine, "attack", "fgsm"))


def test_two_entry_points_with_the_same_name(make_plugin: MakePlugin):
    first = make_plugin("same", attack_plugin("one"), dist=("dist-a", "1.0"))
    second = make_plugin("same", attack_plugin("two"), dist=("dist-b", "1.0"))
    with pytest.raises(PluginError) as info:
        load_registry(entry_point_source=lambda: [first, second])
    assert str(info.value) == (
        f"plugin 'dist-b 1.0' (entry point same = {second.value}): another installed plugin "
        f"is also named 'same' (plugin 'dist-a 1.0' (entry point same = {first.value})); "
        "to disable only this one: --disable-plugin dist-b:same")


@pytest.mark.parametrize("bad_name", ["", " padded", "a,b"])
def test_invalid_spec_names(bad_name: str):
    owner = PluginInfo("owner", "owner-dist", "1.0")
    spec = AttackSpec(name=bad_name, description="d", build=lambda o: None,
                      threat_model="white-box", norm="inf")
    with pytest.raises(PluginError, match=r"^plugin 'owner-dist 1\.0': invalid attack name "):
        Registry().add("attack", spec, owner)


# ---------------------------------------------------------------- registration checks

OWNER = PluginInfo("owner", "owner-dist", "1.0")
STEPS = options(Option(name="steps", type="int", default=10, min=1))


def _valid(kind: str, **changes: Any) -> Spec:
    """A valid spec of ``kind`` called ``x``, with ``changes`` (invalid ones too)."""
    base: Any = {
        "dataset": DatasetSpec(name="x", description="d", load=lambda o: None,
                               default_eps=0.1),
        "model": ModelSpec(name="x", description="d", build=lambda mi, v, o: None),
        "attack": AttackSpec(name="x", description="d", build=lambda o: None,
                             threat_model="white-box", norm="inf"),
        "defense": DefenseSpec(name="x", description="d", build=lambda o: None,
                               stage="training"),
        "report": ReportSpec(name="x", description="d", text=lambda results: ""),
    }[kind]
    return dataclasses.replace(base, **changes)


INVALID_FIELDS: list[tuple[str, dict, str]] = [
    ("attack", {"norm": "Linf"},
     "norm 'Linf' is not one of inf, 2, 1, 0, wasserstein, none. Did you mean: inf?"),
    ("attack", {"norm": "L2"}, "norm 'L2' is not one of inf, 2, 1, 0, wasserstein, none. "
                               "Did you mean: 2?"),
    ("attack", {"threat_model": "whitebox"},
     "threat_model 'whitebox' is not one of white-box, black-box. Did you mean: white-box"),
    ("attack", {"category": "evasions"},
     "category 'evasions' is not one of evasion, poisoning, inference, extraction, "
     "certification, corruption. "
     "Did you mean: evasion?"),
    ("attack", {"needs": frozenset({"gradient"})},
     "needs has 'gradient', which is not a model feature. Did you mean: gradients? Known: "),
    ("attack", {"needs": "gradients"}, "needs must be a frozenset of strings, e.g. "
                                       "frozenset({'gradients'}); got 'gradients'"),
    ("attack", {"roles": frozenset({"iterativ"})},
     "roles has 'iterativ', which is not an attack role. Did you mean: iterative?"),
    ("attack", {"roles": frozenset({"baseline"})}, "roles has 'baseline', which is not an "
                                                   "attack role"),
    ("attack", {"default_eps": 0}, "default_eps must be in (0, 1]"),
    ("attack", {"default_eps": 8}, "default_eps must be in (0, 1]"),
    ("attack", {"budget_images": 0}, "budget_images must be a positive integer or None"),
    ("attack", {"bounded": "yes"}, "bounded must be True or False"),
    ("attack", {"build": None}, "build must be callable; got None"),
    ("attack", {"description": ""}, "description must be one non-empty line"),
    ("attack", {"description": "two\nlines"}, "description must be one non-empty line"),
    ("attack", {"options": {"steps": 10}}, "options must be an OptionSchema"),
    ("attack", {"options": STEPS, "smoke_options": {"stepz": 1}},
     "smoke_options: attack x has no option 'stepz'. Did you mean: steps? Its options: steps"),
    ("attack", {"options": STEPS, "smoke_options": {"steps": 0}},
     "smoke_options: attack x: option 'steps' must be an integer >= 1; got 0"),
    ("attack", {"smoke_options": [("steps", 1)]}, "smoke_options must be a mapping"),
    ("attack", {"config": ["art_class"]}, "config must be a mapping"),
    ("attack", {"metrics": ("mi_auc",)},
     "metrics must be a tuple of harness.MetricSpec"),
    ("attack", {"metrics": (MetricSpec(name="a", label="A"), MetricSpec(name="a", label="B"))},
     "metrics declares 'a' more than once"),
    ("defense", {"stage": "input-transform"},
     "stage 'input-transform' is not one of training, input-transformation, "
     "poisoning-detection. Did you mean: input-transformation?"),
    ("defense", {"answers": frozenset({"evasions"})},
     "answers has 'evasions', which is not an attack category. Did you mean: evasion?"),
    ("defense", {"needs": frozenset({"activation"})},
     "needs has 'activation', which is not a model feature. Did you mean: activations?"),
    ("defense", {"roles": frozenset({"single-step"})},
     "roles has 'single-step', which is not a defense role. Did you mean: "
     "single-step-training?"),
    ("defense", {"options": STEPS, "smoke_options": {"step": 2}},
     "smoke_options: defense x has no option 'step'. Did you mean: steps?"),
    ("defense", {"metrics": [None]},
     "metrics must be a tuple of harness.MetricSpec"),
    ("defense", {"baseline": 1}, "baseline must be True or False"),
    ("defense", {"randomized": "yes"}, "randomized must be True or False"),
    ("defense", {"eot_samples": 0}, "eot_samples must be a positive integer; got 0"),
    ("model", {"offers": frozenset({"gradient", "scores"})},
     "offers has 'gradient', which is not a model feature. Did you mean: gradients?"),
    ("model", {"train_defaults": {"epoch": 3}},
     "train_defaults has 'epoch', which is not a training setting. Did you mean: epochs?"),
    ("model", {"fit": "sklearn"}, "fit must be callable or None; got 'sklearn'"),
    ("model", {"list_variants": ["a"]}, "list_variants must be callable or None"),
    ("model", {"takes_variant": None}, "takes_variant must be True or False"),
    ("model", {"options": STEPS, "smoke_options": {"hiden": 16}},
     "smoke_options: model x has no option 'hiden'. Its options: steps"),
    ("dataset", {"default_eps": 0}, "default_eps must be in (0, 1] (pixel units of [0, 1]); "
                                    "got 0"),
    ("dataset", {"default_eps": 1.5}, "default_eps must be in (0, 1]"),
    ("dataset", {"default_eps": None}, "default_eps must be in (0, 1]"),
    ("dataset", {"mean": (0.5,)}, "mean and std must be given together (or neither)"),
    ("dataset", {"mean": (0.5,), "std": (0.2, 0.2)},
     "mean and std must have one value per channel, the same number; got 1 and 2"),
    ("dataset", {"mean": (0.5,), "std": (0.0,)}, "std must be positive; got (0.0,)"),
    ("dataset", {"load": None}, "load must be callable; got None"),
    ("dataset", {"description": None}, "description must be one non-empty line"),
    ("report", {"text": "# title"}, "text must be callable or None; got '# title'"),
    ("report", {"figures": lambda results, stem: {}},
     "figures and draw must be given together (or neither)"),
]


@pytest.mark.parametrize(("kind", "changes", "expected"), INVALID_FIELDS,
                         ids=[f"{k}-{'-'.join(c)}" for k, c, _ in INVALID_FIELDS])
def test_registration_checks_every_declared_field(kind: str, changes: dict, expected: str):
    registry = Registry()
    with pytest.raises(PluginError) as info:
        registry.add(kind, _valid(kind, **changes), OWNER)
    assert str(info.value).startswith(f"plugin 'owner-dist 1.0': {kind} 'x': {expected}")
    assert registry.specs[kind] == {} and registry.plugins == {}


def test_registration_error_exact_message():
    with pytest.raises(PluginError) as info:
        Registry().add("attack", _valid("attack", norm="Linf", needs=frozenset({"gradient"})),
                       OWNER)
    features = ", ".join(sorted(MODEL_FEATURES))
    assert str(info.value) == (
        "plugin 'owner-dist 1.0': attack 'x': norm 'Linf' is not one of inf, 2, 1, 0, "
        "wasserstein, none. Did you mean: inf?; needs has 'gradient', which is not a model "
        f"feature. Did you mean: gradients? Known: {features}")


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_registration_accepts_valid_declarations(kind: str):
    full: dict[str, dict] = {
        "dataset": {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25), "default_eps": 1},
        "model": {"offers": frozenset({"gradients", "svm"}), "options": STEPS,
                  "smoke_options": {"steps": 1}, "train_defaults": {"epochs": 3},
                  "takes_variant": True, "list_variants": lambda: ["a"]},
        "attack": {"norm": "2", "needs": frozenset(), "roles": frozenset({ITERATIVE,
                                                                          REFERENCE}),
                   "options": STEPS, "smoke_options": {"steps": 1}, "default_eps": None,
                   "metrics": (MetricSpec(name="m", label="M"),), "budget_images": 20,
                   "config": {"art_class": "X"}},
        "defense": {"stage": "poisoning-detection", "answers": frozenset({"poisoning"}),
                    "roles": frozenset({BASELINE}), "needs": frozenset({"activations"}),
                    "smoke_options": {"anything": 1}},  # undeclared options pass through
        "report": {"figures": lambda results, stem: {}, "draw": lambda results, f, p: None},
    }
    registry = Registry()
    registry.add(kind, _valid(kind, **full[kind]), OWNER)
    assert registry.names(kind) == ["x"]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_all_is_a_reserved_name(kind: str):
    with pytest.raises(PluginError, match=rf"^plugin 'owner-dist 1\.0': invalid {kind} name "
                                          r"'all'"):
        Registry().add(kind, _valid(kind, name="all"), OWNER)


def test_every_builtin_spec_passes_the_registration_checks(registry: Registry):
    for kind, specs in registry.specs.items():
        for name, spec in specs.items():
            assert spec_problems(kind, spec) == [], (kind, name)


# ---------------------------------------------------------------- broken plugins: not strict


BROKEN = {
    "import-error": (IMPORT_ERROR, "failed to import: RuntimeError: kaboom at import"),
    "unknown-hook": (UNKNOWN_HOOK, "unknown hook 'harness_register_attackz'"),
    "wrong-argument": (WRONG_ARGUMENT, "'reg'"),
    "raising-hook": (RAISING_HOOK, "harness_register_attacks failed: ValueError: broken inside"),
    "wrong-spec-type": (WRONG_SPEC_TYPE, "register() for attacks got DatasetSpec"),
    "invalid-field": (INVALID_FIELD, "attack 'typo-attack': needs has 'gradient', which is "
                                     "not a model feature. Did you mean: gradients?"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_not_strict_records_error_and_goes_on(make_plugin: MakePlugin, case: str):
    source, expected = BROKEN[case]
    bad = make_plugin(case, source, dist=("broken-dist", "0.1"))
    good = make_plugin("good", attack_plugin("good-attack"), dist=("zz-good-dist", "1.0"))
    with pytest.warns(UserWarning, match="broken-dist 0.1") as warned:
        registry = load_registry(strict=False,
                                 entry_point_source=lambda: [*installed_entry_points(), bad, good])
    assert len(registry.load_errors) == 1
    error = registry.load_errors[0]
    assert error.startswith(label(bad) + ": ")
    assert expected in error
    assert [str(w.message) for w in warned] == [error]
    # The plugins after (and before) the broken one are all loaded.
    assert "good-attack" in registry.names("attack")
    assert set(builtin_entry_points()) <= set(registry.plugins)
    assert {"fgsm", "pgd", "random-noise"} <= set(registry.names("attack"))
    assert "not-an-attack" not in registry.specs["dataset"]
    if case in ("import-error", "unknown-hook", "wrong-argument"):
        assert case not in registry.plugins  # never registered, or unregistered again


def test_not_strict_duplicate_keeps_one(make_plugin: MakePlugin):
    first = make_plugin("dup-a", attack_plugin("only-a", "twin"), dist=("dist-a", "1.0"))
    second = make_plugin("dup-b", attack_plugin("only-b", "twin"), dist=("dist-b", "1.0"))
    with pytest.warns(UserWarning, match="attack 'twin' is already registered by"):
        registry = load_registry(strict=False, entry_point_source=lambda: [first, second])
    assert len(registry.load_errors) == 1
    assert "dist-a 1.0" in registry.load_errors[0] and "dist-b 1.0" in registry.load_errors[0]
    assert registry.attack("twin").plugin.name in ("dup-a", "dup-b")
    assert registry.names("attack") == ["only-a", "only-b", "twin"]


@pytest.mark.parametrize("dist", ["aaa-dist", "zzz-dist"])
def test_on_a_clash_the_builtin_keeps_the_name(make_plugin: MakePlugin, dist: str):
    ep = make_plugin("my-fgsm", attack_plugin("fgsm"), dist=(dist, "1.0"))
    with pytest.warns(UserWarning, match="already registered"):
        registry = load_registry(strict=False,
                                 entry_point_source=lambda: [ep, *installed_entry_points()])
    assert registry.attack("fgsm").plugin.name == "fgsm"
    assert registry.load_errors[0].startswith(
        f"plugin '{dist} 1.0' (entry point my-fgsm = {ep.value}): attack 'fgsm'")


def test_not_strict_collects_every_error(make_plugin: MakePlugin):
    eps = [make_plugin(case, BROKEN[case][0]) for case in sorted(BROKEN)]
    with pytest.warns(UserWarning):
        registry = load_registry(strict=False, entry_point_source=lambda: eps)
    assert len(registry.load_errors) == len(BROKEN)
    for case, (_, expected) in BROKEN.items():
        (error,) = [e for e in registry.load_errors if f"(entry point {case} = " in e]
        assert expected in error


# ---------------------------------------------------------------- disabling plugins


def test_disable_by_argument(registry: Registry):
    assert "fgsm" in registry.names("attack")
    smaller = load_registry(disabled=["fgsm", "digits"])
    assert "fgsm" not in smaller.names("attack") and "fgsm" not in smaller.plugins
    assert "digits" not in smaller.names("dataset") and "digits" not in smaller.plugins
    assert "pgd" in smaller.names("attack") and "mnist" in smaller.names("dataset")


def test_disable_by_environment(registry: Registry, monkeypatch: pytest.MonkeyPatch):
    attack_plugins = sorted(n for n, r in registry.plugins.items()
                            if "attack" in r.registered and n != "pgd")
    assert {"fgsm", "random-noise"} <= set(attack_plugins)
    monkeypatch.setenv(DISABLE_ENV, " " + " ,".join(attack_plugins) + " ")  # spaces ignored
    smaller = load_registry()
    assert smaller.names("attack") == ["pgd"]
    assert not set(attack_plugins) & set(smaller.plugins)


def test_disabled_plugin_is_not_even_imported(make_plugin: MakePlugin,
                                              monkeypatch: pytest.MonkeyPatch):
    bad = make_plugin("boom", IMPORT_ERROR)
    assert load_registry(disabled=["boom"], entry_point_source=lambda: [bad]).plugins == {}
    monkeypatch.setenv(DISABLE_ENV, "boom")
    assert load_registry(entry_point_source=lambda: [bad]).plugins == {}
    monkeypatch.delenv(DISABLE_ENV)
    with pytest.raises(PluginError, match="kaboom"):
        load_registry(entry_point_source=lambda: [bad])


def test_disable_extra_plugin():
    plugin = InProcessAttacks()
    info = PluginInfo("in-process", "<in-process>", "0")
    with_it = load_registry(use_entry_points=False, extra_plugins=[(info, plugin)])
    assert with_it.names("attack") == ["in-process-noop"]
    without = load_registry(use_entry_points=False, extra_plugins=[(info, plugin)],
                            disabled=["in-process"])
    assert without.names("attack") == [] and without.plugins == {}


# ---------------------------------------------------------------- registry lookups


def _attack(name: str) -> AttackSpec:
    return AttackSpec(name=name, description="d", build=lambda o: None,
                      threat_model="white-box", norm="inf")


def test_unknown_attack_message_exact():
    reg = Registry()
    owner = PluginInfo("p", "p-dist", "1")
    for name in ("pgd", "fgsm"):
        reg.add("attack", _attack(name), owner)
    with pytest.raises(UsageError) as info:
        reg.attack("fgsn")
    assert str(info.value) == "unknown attack 'fgsn'. Did you mean: fgsm? Available: fgsm, pgd"
    with pytest.raises(UsageError) as info:
        reg.attack("carlini")
    assert str(info.value) == "unknown attack 'carlini'. Available: fgsm, pgd"
    with pytest.raises(UsageError) as info:
        Registry().dataset("digits")
    assert str(info.value) == "unknown dataset 'digits'. Available: (none registered)"


def test_unknown_names_in_installed_registry(registry: Registry):
    with pytest.raises(UsageError) as info:
        registry.attack("fgsn")
    message = str(info.value)
    assert message.startswith("unknown attack 'fgsn'. Did you mean: fgsm, ifgsm, art-fgsm? "
                              "Available: ")
    assert message.endswith("Available: " + ", ".join(registry.names("attack")))
    with pytest.raises(UsageError, match=r"^unknown defense 'advtrian'\. Did you mean: "
                       r"advtrain, art-advtrain\? Available: "):
        registry.defense("advtrian")
    with pytest.raises(UsageError, match=r"^unknown dataset 'mnsit'\. Did you mean: mnist"):
        registry.dataset("mnsit")


def test_model_lookups(registry: Registry):
    spec, variant = registry.model_variant("paper-cnn")
    assert spec.name == "paper-cnn" and variant is None
    spec, variant = registry.model_variant("timm:resnet18")
    assert spec.name == "timm" and variant == "resnet18"
    with pytest.raises(UsageError) as info:
        registry.model_variant("timm")
    assert str(info.value) == "model 'timm' needs a variant: 'timm:<name>', e.g. 'timm:resnet18'"
    with pytest.raises(UsageError) as info:
        registry.model_variant("timm:")
    assert str(info.value).startswith("model 'timm' needs a variant")
    with pytest.raises(UsageError) as info:
        registry.model_variant("paper-cnn:x")
    assert str(info.value) == "model 'paper-cnn' takes no variant; use 'paper-cnn'"
    with pytest.raises(UsageError) as info:
        registry.model_variant("timm:resnt18")
    message = str(info.value)
    assert message.startswith("unknown model 'timm:resnt18': 'resnt18' is not a timm "
                              "architecture. Did you mean: timm:resnet18")
    assert message.endswith("are available (harness list models --variants timm)")
    for lookup in (registry.model, registry.model_variant):
        with pytest.raises(UsageError) as info:
            lookup("papercnn")
        assert str(info.value).startswith("unknown model 'papercnn'. Did you mean: paper-cnn")
        assert "timm:<name>" in str(info.value)


def test_model_returns_the_spec_like_the_other_kinds(registry: Registry):
    assert isinstance(registry.model("paper-cnn"), ModelSpec)
    assert registry.model("paper-cnn") is registry.get("model", "paper-cnn")
    # A family that takes variants is a spec on its own; a variant is checked when given.
    assert registry.model("timm") is registry.model("timm:resnet18") is registry.get("model",
                                                                                     "timm")
    with pytest.raises(UsageError, match=r"^unknown model 'timm:resnt18'"):
        registry.model("timm:resnt18")
    with pytest.raises(UsageError, match=r"^model 'paper-cnn' takes no variant"):
        registry.model("paper-cnn:x")


# ---------------------------------------------------------------- the harness_plugin fixture


class InProcessAttacks:
    """An in-process plugin object: a hook implementation as a method."""

    @hookimpl
    def harness_register_attacks(self, register):
        register(_attack("in-process-noop"))


def test_harness_plugin_fixture_registers_for_the_test(harness_plugin):
    registry = harness_plugin(InProcessAttacks(), name="in-process")
    spec = registry.attack("in-process-noop")
    assert spec.plugin == PluginInfo("in-process", "<in-process>", "0")
    assert registry.plugins["in-process"].registered == {"attack": ["in-process-noop"]}
    assert "fgsm" in registry.names("attack")  # beside the installed plugins
    # Every registry built during the test includes it.
    assert "in-process-noop" in load_registry().names("attack")
    assert len(harness.planning.loading.TEST_PLUGINS) == 1


def test_harness_plugin_fixture_without_entry_points(harness_plugin):
    registry = harness_plugin(InProcessAttacks(), name="alone", entry_points=False)
    assert registry.names("attack") == ["in-process-noop"]
    assert list(registry.plugins) == ["alone"]


def test_harness_plugin_fixture_default_name(harness_plugin):
    registry = harness_plugin(InProcessAttacks())
    assert "InProcessAttacks" in registry.plugins


def test_harness_plugin_fixture_with_an_installed_plugin(harness_plugin):
    """The documented pattern, on a pip-installed package: registered once, under its entry
    point, beside the built-ins."""
    registry = harness_plugin(harness_example_plugin)
    spec = registry.attack("random-noise")
    assert spec.plugin.distribution == "harness-example-plugin"
    assert spec.plugin.entry_point == "random-noise = harness_example_plugin"
    assert registry.plugins["random-noise"].registered == {"attack": ["random-noise"]}
    assert "harness_example_plugin" not in registry.plugins
    assert {"fgsm", "pgd"} <= set(registry.names("attack"))
    assert set(builtin_entry_points()) <= set(registry.plugins)
    check_attack_spec(spec)


def test_harness_plugin_fixture_with_a_builtin_module(harness_plugin):
    registry = harness_plugin(harness_plugins.fgsm)
    assert registry.attack("fgsm").plugin.name == "fgsm"
    assert "harness_plugins.fgsm" not in registry.plugins


def test_harness_plugin_fixture_with_an_installed_plugin_alone(harness_plugin):
    registry = harness_plugin(harness_example_plugin, entry_points=False)
    assert registry.names("attack") == ["random-noise"]
    assert registry.attack("random-noise").plugin == PluginInfo(
        "harness_example_plugin", "<in-process>", "0")


def test_harness_plugin_fixture_with_a_module_that_is_not_installed(
        harness_plugin, make_plugin: MakePlugin):
    module = make_plugin("local", attack_plugin("local-attack")).load()
    registry = harness_plugin(module)
    assert registry.attack("local-attack").plugin == PluginInfo(module.__name__,
                                                                "<in-process>", "0")
    assert registry.plugins[module.__name__].registered == {"attack": ["local-attack"]}
    assert {"fgsm", "random-noise"} <= set(registry.names("attack"))
    assert set(builtin_entry_points()) <= set(registry.plugins)


def test_harness_plugin_fixture_rejects_an_invalid_spec(harness_plugin,
                                                        make_plugin: MakePlugin):
    ep = make_plugin("typo", attack_plugin("typo-attack").replace(
        'norm="inf"', 'norm="inf", needs=frozenset({"gradient"})'))
    with pytest.raises(PluginError, match=r"attack 'typo-attack': needs has 'gradient'"):
        harness_plugin(ep.load(), name="typo")


def test_no_test_plugins_without_the_fixture():
    assert harness.planning.loading.TEST_PLUGINS == []
    assert "in-process-noop" not in load_registry().names("attack")


def test_harness_plugin_fixture_is_removed_after_the_test(pytester: pytest.Pytester):
    """Order-independent: an inner session where one test uses the fixture, the next not."""
    pytester.makepyfile(test_inner="""
        import harness.planning.loading
        from harness.contracts.hookspecs import hookimpl
        from harness.planning.loading import load_registry
        from harness.contracts.specs import AttackSpec

        class Plugin:
            @hookimpl
            def harness_register_attacks(self, register):
                register(AttackSpec(name="inner-attack", description="d",
                                    build=lambda options: None, threat_model="white-box",
                                    norm="inf"))

        def test_1_with_fixture(harness_plugin):
            assert "inner-attack" in harness_plugin(Plugin(), name="inner").names("attack")
            assert "inner-attack" in load_registry(use_entry_points=False).names("attack")

        def test_2_after():
            assert harness.planning.loading.TEST_PLUGINS == []
            assert "inner-attack" not in load_registry(use_entry_points=False).names("attack")
    """)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=2)


# ---------------------------------------------------------------- options


@pytest.mark.parametrize(("text", "value"), [
    ("20", 20), ("0.5", 0.5), ("-3", -3), ("1e-3", 0.001),
    ("true", True), ("True", True), ("yes", True), ("on", True),
    ("false", False), ("NO", False), ("off", False),
    ("none", None), ("null", None),
    ("[1,2]", [1, 2]), ('{"a": 1}', {"a": 1}), ('"quoted"', "quoted"),
    ("resnet18", "resnet18"), ("weights/w.safetensors", "weights/w.safetensors"), ("", ""),
])
def test_parse_value(text: str, value: object):
    parsed = parse_value(text)
    assert parsed == value and type(parsed) is type(value)


def test_parse_assignments():
    assert parse_assignments(
        ["pgd.steps=20", "pgd.random_start=false", "fgsm.x=a=b", "timm:resnet18.pretrained=true",
         " timm:vit_tiny_patch16_224.img_size = 64"], "--attack-opt",
    ) == {
        "pgd": {"steps": 20, "random_start": False},
        "fgsm": {"x": "a=b"},
        "timm:resnet18": {"pretrained": True},
        "timm:vit_tiny_patch16_224": {"img_size": 64},
    }
    assert parse_assignments([], "--model-opt") == {}
    assert parse_assignments(["pgd.steps=1", "pgd.steps=2"], "--attack-opt") == {
        "pgd": {"steps": 2}}


@pytest.mark.parametrize("item", ["pgd.steps", "steps=3", ".steps=3", "pgd.=3", "=3"])
def test_parse_assignments_errors(item: str):
    with pytest.raises(UsageError) as info:
        parse_assignments(["pgd.seed=1", item], "--attack-opt")
    assert str(info.value) == (f"--attack-opt '{item}': expected NAME.OPTION=VALUE, "
                               "e.g. --attack-opt pgd.steps=20")


def _pgd_like():
    return options(Option(name="steps", type="int", default=10),
                   Option(name="seed", type="int", default=0),
                   Option(name="step_size", type="float", default=None, nullable=True))


def test_resolve_fills_the_defaults():
    schema = _pgd_like()
    assert schema.resolve("attack pgd", {}) == schema.defaults()
    assert schema.resolve("attack pgd", {"steps": 3}) == {
        "steps": 3, "seed": 0, "step_size": None}


def test_resolve_unknown_key():
    with pytest.raises(UsageError) as info:
        _pgd_like().resolve("attack pgd", {"stepz": 3})
    assert str(info.value) == ("attack pgd has no option 'stepz'. Did you mean: steps, "
                               "step_size? Its options: seed, step_size, steps")
    with pytest.raises(UsageError) as info:
        _pgd_like().resolve("attack pgd", {"xyz": 3})
    assert str(info.value) == "attack pgd has no option 'xyz'. Its options: seed, step_size, steps"
    with pytest.raises(UsageError) as info:
        options().resolve("attack fgsm", {"steps": 3})
    assert str(info.value) == "attack fgsm has no option 'steps'. Its options: (none)"


def test_builtin_options_are_checked_before_build(registry: Registry):
    """The core resolves options against the declared schema before ``build`` runs."""
    with pytest.raises(UsageError, match=r"^attack pgd has no option 'stepz'\. Did you mean: "
                       r"steps"):
        registry.attack("pgd").resolve_options({"stepz": 3})
    with pytest.raises(UsageError, match=r"^attack fgsm has no option 'steps'"):
        registry.attack("fgsm").resolve_options({"steps": 3})
    resolved = registry.attack("pgd").resolve_options({"steps": 3})
    assert resolved["steps"] == 3 and set(resolved) == set(registry.attack("pgd").options.names())
    # An undeclared (passthrough) schema leaves the check to the plugin's build.
    noise = registry.attack("random-noise")
    assert noise.build(noise.resolve_options({"seed": 5})).seed == 5
    with pytest.raises(UsageError, match=r"^attack random-noise has no option 'sead'"):
        noise.build(noise.resolve_options({"sead": 5}))
