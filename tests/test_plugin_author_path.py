"""A plugin author's path that survives change: unresolved options are refused with the fix,
undeclared options warned about, a typo in an option's type caught with "Did you mean", an
evasion contract that catches an attack that forgets to clamp or returns float64, and a
third-party plugin that takes a built-in's name named with its distribution wherever its
results are shown."""

from __future__ import annotations

import json
import pickle
import sys
import textwrap
import warnings
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import torch

from harness import (
    DISTRIBUTION,
    AttackSpec,
    ModelInput,
    ModelSpec,
    Option,
    OptionsNotResolvedError,
    PluginError,
    PluginInfo,
    ResolvedOptions,
    Result,
    UndeclaredOptionsWarning,
    UsageError,
    attack_label,
    check_attack_spec,
    hookimpl,
    load_registry,
    options,
    reaching_bounds,
    tiny_image_data,
)
from harness.cli import main
from harness.contracts.provenance import (
    plugin_of,
    provided_name,
    third_party,
    third_party_field,
    third_party_plugins,
)
from harness.contracts.records import ResultSet
from harness.planning.loading import DISABLE_ENV
from harness.planning.registry import Registry
from harness.report.leaderboard import render
from harness.run.evaluators.scoring import evaluate_attack
from harness.testing.records import make_record
from harness.util.errors import InvalidAttackOutput

OWNER = PluginInfo(name="acme", distribution="acme-attacks", version="1.0")


class Echo:
    """The attack object of the specs below: remembers its options."""

    def __init__(self, **resolved):
        self.resolved = resolved

    def perturb(self, model, x, y, eps):
        return x.clone()


def _dropout_model(name: str = "dropout-net") -> ModelSpec:
    def build(model_input, variant, o):
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Dropout(o["dropout"]),
                                   torch.nn.Linear(model_input.channels * 64, 3))

    return ModelSpec(name=name, description="d", build=build,
                     options=options(Option(name="dropout", type="float", default=0.1, min=0)))


def _registered(spec, kind: str = "attack"):
    registry = Registry()
    registry.add(kind, spec, OWNER)
    return registry.get(kind, spec.name)


def _echo_attack(name: str = "echo") -> AttackSpec:
    return AttackSpec(name=name, description="d", build=lambda o: Echo(**o),
                      threat_model="white-box", norm="inf",
                      options=options(Option(name="steps", type="int", default=10, min=1),
                                      Option(name="decay", type="float", default=1.0)))


# ------------------------------------------------------------------ (2) unresolved options


def test_build_with_unresolved_options_says_to_resolve_them():
    spec = _registered(_dropout_model(), "model")
    with pytest.raises(OptionsNotResolvedError, match=r"spec\.resolve_options\(given\)") as info:
        spec.build(ModelInput(1, 8, 8, 3), None, {})
    assert isinstance(info.value, KeyError) and isinstance(info.value, UsageError)
    assert "model 'dropout-net': options not resolved" in str(info.value)
    assert "'dropout'" in str(info.value)
    model = spec.build(ModelInput(1, 8, 8, 3), None, spec.resolve_options({}))
    assert model[1].p == 0.1


def test_a_plain_mapping_with_every_option_is_checked_and_resolved():
    spec = _registered(_echo_attack())
    assert spec.build({"steps": 3, "decay": 1}).resolved == {"steps": 3, "decay": 1.0}
    assert isinstance(spec.build({"steps": 3, "decay": 1}).resolved["decay"], float)
    with pytest.raises(UsageError, match="option 'steps' must be an integer >= 1"):
        spec.build({"steps": 0, "decay": 1.0})
    with pytest.raises(OptionsNotResolvedError, match="without the declared 'decay'"):
        spec.build({"steps": 3})


def test_resolved_options_are_read_only_and_travel():
    resolved = _echo_attack().resolve_options({"steps": 3})
    assert isinstance(resolved, ResolvedOptions) and isinstance(resolved, dict)
    assert resolved == {"steps": 3, "decay": 1.0}
    with pytest.raises(TypeError, match="read-only"):
        resolved["steps"] = 4
    with pytest.raises(TypeError, match="read-only"):
        resolved.update(steps=4)
    copied = pickle.loads(pickle.dumps(resolved))
    assert type(copied) is ResolvedOptions and copied == resolved
    assert {**resolved, "steps": 4}["steps"] == 4


def test_the_registered_build_is_the_plugins_function():
    spec = _echo_attack()
    registered = _registered(spec)
    assert registered.build == spec.build and hash(registered.build) == hash(spec.build)
    again = Registry()
    again.add("attack", registered, OWNER)       # re-registered: wrapped once, not twice
    assert again.attack("echo").build.__wrapped__ is spec.build


def test_every_builtin_refuses_unresolved_options():
    registry = load_registry()
    with pytest.raises(OptionsNotResolvedError, match="attack 'pgd'"):
        registry.attack("pgd").build({})
    with pytest.raises(OptionsNotResolvedError, match="model 'paper-cnn'"):
        registry.model("paper-cnn").build(ModelInput(1, 8, 8, 3), None, {})


# ------------------------------------------------------------------ (3) undeclared options


def test_a_spec_without_declared_options_is_warned_about_once():
    spec = AttackSpec(name="old-style-once", description="d", build=lambda o: Echo(**o),
                      threat_model="white-box", norm="inf")
    with pytest.warns(UndeclaredOptionsWarning, match=r"attack 'old-style-once' declares no "
                      r"options.*harness\.options\(harness\.Option\("):
        Registry().add("attack", spec, OWNER)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Registry().add("attack", spec, OWNER)       # the same spec again: no second warning
    assert _registered(spec).build is spec.build    # undeclared options pass through as given


def test_builtins_declare_their_options():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        registry = load_registry()
    assert not [w for w in caught if issubclass(w.category, UndeclaredOptionsWarning)
                and DISTRIBUTION in str(w.message)]
    for kind in ("model", "attack", "defense"):
        for spec in registry.specs[kind].values():
            if spec.plugin.distribution == DISTRIBUTION:
                assert not spec.options.undeclared, f"{kind} {spec.name}"


# ------------------------------------------------------------------ (4) an option's type


def test_an_options_type_typo_is_refused_with_did_you_mean():
    with pytest.raises(ValueError, match=r"option 'steps': type 'integer' is not one of int, "
                       r"float.*Did you mean: int\?"):
        Option(name="steps", type="integer", default=10)
    with pytest.raises(ValueError, match=r"Did you mean: float\?"):
        Option(name="lr", type="flaot", default=0.1)


class TypoPlugin:
    """A plugin whose registration declares an option of type 'integer'."""

    @hookimpl
    def harness_register_attacks(self, register):
        register(AttackSpec(name="typo-attack", description="d", build=lambda o: Echo(**o),
                            threat_model="white-box", norm="inf",
                            options=options(Option(name="steps", type="integer", default=3))))


def test_a_type_typo_fails_at_registration_naming_the_plugin(harness_plugin):
    with pytest.raises(PluginError, match=r"harness_register_attacks failed: ValueError: option "
                       r"'steps': type 'integer' is not one of .*Did you mean: int\?"):
        harness_plugin(TypoPlugin(), "typo", entry_points=False)


def test_a_type_typo_does_not_break_the_listing(capsys):
    from harness.planning import loading as plugins

    plugins.TEST_PLUGINS.append((PluginInfo("typo", "<in-process>", "0"), TypoPlugin()))
    try:
        assert main(["list", "attacks", "--options"]) == 0   # was: KeyError: 'integer'
    finally:
        plugins.TEST_PLUGINS.pop()
    out, err = capsys.readouterr()
    assert "type 'integer' is not one of" in err and "Did you mean: int?" in err
    assert "typo-attack" not in out and "pgd" in out


# ------------------------------------------------------------------ (5) the evasion contract


def _attack(perturb, name: str = "broken") -> AttackSpec:
    class Attack:
        def perturb(self, model, x, y, eps):
            return perturb(model, x, y, eps)

    return AttackSpec(name=name, description="d", build=lambda o: Attack(),
                      threat_model="white-box", norm="inf", options=options())


def _signed_gradient(model, x, y):
    x = x.clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    return x.grad.sign()


def test_the_contract_images_reach_exactly_0_and_1():
    x = reaching_bounds(tiny_image_data().x_test[:16])
    assert x.dtype == torch.float32
    for image in x:
        assert float(image.min()) == 0.0 and float(image.max()) == 1.0
        assert int((image == 0).sum()) >= 6 and int((image == 1).sum()) >= 6


def test_an_attack_that_forgets_to_clamp_fails_the_contract():
    no_clamp = _attack(lambda m, x, y, eps: x + eps * _signed_gradient(m, x, y), "no-clamp")
    with pytest.raises(AssertionError, match=r"no-clamp \(evasion contract: 16 test images with "
                       r"pixels at exactly 0 and 1, eps 0\.3\): left \[0, 1\]"):
        check_attack_spec(no_clamp)
    clamped = _attack(lambda m, x, y, eps: (x + eps * _signed_gradient(m, x, y)).clamp(0, 1),
                      "clamped")
    assert check_attack_spec(clamped).shape == (16, 1, 8, 8)


def test_float64_output_fails_the_contract_with_what_to_do():
    doubles = _attack(lambda m, x, y, eps: x.double(), "doubles")
    with pytest.raises(AssertionError, match=r"doubles \(evasion contract: 16 test images.*"
                       r"returned torch\.float64 images for torch\.float32 ones; return the "
                       r"input's dtype \(x_adv\.to\(x\.dtype\)\)"):
        check_attack_spec(doubles)


def test_float64_output_fails_the_cell_with_a_clear_message():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    data = tiny_image_data()

    class Doubles:
        def perturb(self, model, x, y, eps):
            return x.double()

    with pytest.raises(InvalidAttackOutput, match=r"attack 'doubles' returned torch\.float64 "
                       r"images for torch\.float32 ones"):
        evaluate_attack(model, Doubles(), data.x_test, data.y_test, 0.1, show_progress=False,
                        keep_adversarial=True, name="doubles")


# ------------------------------------------------------------------ (6) whose plugin it is


def _record(attack_plugin: str, **changes) -> Result:
    training = {"dataset": "digits", "dataset_plugin": f"{DISTRIBUTION} 0.2.0",
                "model": "paper-cnn", "model_plugin": f"{DISTRIBUTION} 0.2.0",
                "defense": "none", "defense_plugin": f"{DISTRIBUTION} 0.2.0"}
    values = dict(cell_key="c", train_key="t", run_id="r", dataset="digits", model="paper-cnn",
                  defense="none", attack="fgsm", eps=0.1, status="ok", clean_acc=0.9,
                  robust_acc=0.5, n_test=10, attack_roles=("single-step",),
                  defense_roles=("baseline",),
                  config={"training": training, "attack_plugin": attack_plugin,
                          "defense_plugin": f"{DISTRIBUTION} 0.2.0"})
    return make_record(**{**values, **changes})


def test_names_of_other_distributions_carry_the_distribution():
    theirs, ours = _record("acme-attacks 1.0"), _record(f"{DISTRIBUTION} 0.2.0")
    assert plugin_of(theirs, "attack") == "acme-attacks 1.0"
    assert third_party(theirs, "attack") == "acme-attacks 1.0"
    assert third_party(theirs, "model") is None and third_party(ours, "attack") is None
    assert attack_label(theirs) == "fgsm (acme-attacks 1.0)"
    assert attack_label(ours) == "fgsm"
    assert provided_name("fgsm", _record("<in-process> 0"), "attack") == "fgsm"
    assert third_party_plugins([theirs, ours]) == {"attack fgsm": "acme-attacks 1.0"}
    assert third_party_field([ours]) == {}
    assert third_party_field([theirs]) == {
        "third_party_plugins": {"attack fgsm": "acme-attacks 1.0"}}


def test_an_older_record_names_no_distribution():
    old = _record("x").replace(config={})
    assert plugin_of(old, "attack") is None and attack_label(old) == "fgsm"
    # the trained model's defense is not the cell's (an input transformation's cell)
    cell = _record(f"{DISTRIBUTION} 0.2.0", defense="jpeg")
    cell = cell.replace(config={**cell.config, "defense_plugin": None})
    assert plugin_of(cell, "defense") is None


def test_the_page_names_the_distribution_in_rows_and_provenance():
    page = render(ResultSet([_record("acme-attacks 1.0")], {"r": {}}))
    assert "| fgsm (acme-attacks 1.0) |" in page
    assert ("- provided by other distributions than robustness-harness: attack fgsm from "
            "acme-attacks 1.0") in page
    ours = render(ResultSet([_record(f"{DISTRIBUTION} 0.2.0")], {"r": {}}))
    assert "acme" not in ours and "provided by other distributions" not in ours


def test_headings_and_not_applicable_rows_name_the_distribution():
    data = _record("acme-attacks 1.0", dataset="stripes")
    data = data.replace(config={**data.config, "training": {
        **data.config["training"], "dataset": "stripes", "dataset_plugin": "acme-data 2.0"}})
    skipped = _record("acme-attacks 1.0", attack="mi", status="n/a", error="needs scores",
                      cell_key="c2")
    page = render(ResultSet([data, skipped], {"r": {}}))
    assert "\n## stripes (acme-data 2.0)\n" in page
    assert "| paper-cnn | none      | mi (acme-attacks 1.0) | needs scores |" in page
    assert "dataset stripes from acme-data 2.0" in page


THIRD_PARTY = """
from harness import REFERENCE, SINGLE_STEP, AttackSpec, Option, hookimpl, options


class SignStep:
    def perturb(self, model, x, y, eps):
        from harness import fgsm_step

        return fgsm_step(model, x, y, eps)


@hookimpl
def harness_register_attacks(register):
    register(AttackSpec(name="fgsm", description="Acme's FGSM", build=lambda o: SignStep(),
                        threat_model="white-box", norm="inf",
                        roles=frozenset({SINGLE_STEP, REFERENCE}),
                        options=options(Option(name="seed", type="int", default=0))))
"""


@pytest.fixture
def acme_fgsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``acme-attacks 1.0`` installed for this process: its entry point ``acme-fgsm``
    registers an attack named ``fgsm``, like the built-in."""
    module = f"acme_fgsm_{tmp_path.name.replace('-', '_')}"
    site = tmp_path / "site"
    site.mkdir()
    (site / f"{module}.py").write_text(textwrap.dedent(THIRD_PARTY))
    info = site / "acme_attacks-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-attacks\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[harness]\nacme-fgsm = {module}\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv(DISABLE_ENV, "robustness-harness:fgsm")
    assert any(e.value == module for e in entry_points(group="harness"))
    yield module
    sys.modules.pop(module, None)


def test_a_third_party_plugin_under_a_builtins_name_is_named_everywhere(acme_fgsm, tmp_path,
                                                                        capsys):
    out, page = tmp_path / "out.json", tmp_path / "page.md"
    assert main(["bench", "--dataset", "digits", "--model", "paper-cnn", "--defense", "none",
                 "--attack", "fgsm", "--epochs", "1", "--n-train", "60", "--n-test", "20",
                 "--no-checks", "--quiet", "--format", "summary", "--json", str(out)]) == 0
    summary = capsys.readouterr().out
    assert "fgsm (acme-attacks 1.0)" in summary
    (record,) = json.loads(out.read_text())["records"]
    assert record["attack"] == "fgsm"
    assert record["config"]["attack_plugin"] == "acme-attacks 1.0"
    assert main(["leaderboard", "--results", str(out), "--out", str(page)]) == 0
    text = page.read_text()
    assert "| fgsm (acme-attacks 1.0) |" in text
    assert "attack fgsm from acme-attacks 1.0" in text
    claims = tmp_path / "claims"
    assert main(["leaderboard", "--results", str(out), "--claims", str(claims)]) == 0
    (claim,) = [json.loads(p.read_text()) for p in claims.rglob("*.json")]
    assert "fgsm (acme-attacks 1.0)" in claim["attacks"]
