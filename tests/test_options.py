"""Options as typed values: resolved options read as attributes (mapping access kept for
0.1's plugins), one line that names what is declared when a name is not, a round trip
through pickle to the worker processes, the front door's small constructors ``count``,
``positive`` and ``fraction``, and the legacy helpers gone from the front door."""

from __future__ import annotations

import ast
import copy
import multiprocessing
import pickle
from pathlib import Path

import pytest

import harness
from harness import (
    Option,
    OptionSchema,
    ResolvedOptions,
    UsageError,
    count,
    fraction,
    load_registry,
    options,
    positive,
)

ROOT = Path(__file__).resolve().parents[1]


def _pgd_like() -> OptionSchema:
    return options(count("steps", 10, "gradient steps"),
                   positive("step_size", 0.01, "step size"),
                   fraction("rate", 0.5, "share of the batch"),
                   Option(name="random_start", type="bool", default=True))


def _resolved(**given) -> ResolvedOptions:
    return _pgd_like().resolve("attack pgd-like", given)


# ------------------------------------------------------------------ attribute access


def test_a_declared_option_reads_as_an_attribute_and_as_a_key():
    resolved = _resolved(steps=3)
    assert resolved.steps == 3 and resolved["steps"] == 3
    assert resolved.step_size == 0.01 and resolved.random_start is True
    assert resolved.get("rate") == resolved.rate == 0.5
    assert dict(resolved) == {"steps": 3, "step_size": 0.01, "rate": 0.5, "random_start": True}


def test_an_undeclared_name_says_what_is_declared():
    with pytest.raises(AttributeError) as info:
        _resolved().stepz   # noqa: B018
    message = str(info.value)
    assert message.startswith("attack pgd-like has no option 'stepz'. Did you mean: steps, "
                              "step_size?")
    assert "Its options: random_start, rate, step_size, steps" in message
    assert "\n" not in message and "Option(name='stepz'" in message
    assert not hasattr(_resolved(), "stepz")


def test_an_undeclared_name_without_an_owner_is_still_one_clear_line():
    with pytest.raises(AttributeError, match=r"^there is no option 'b'\. The options: a;"):
        ResolvedOptions({"a": 1}).b   # noqa: B018


def test_attributes_are_read_only_too():
    resolved = _resolved()
    with pytest.raises(TypeError, match="read-only"):
        resolved.steps = 4
    with pytest.raises(TypeError, match="read-only"):
        del resolved.steps
    assert resolved.steps == 10


def test_a_name_that_shadows_a_dict_method_reads_as_a_key():
    resolved = options(Option(name="items", type="int", default=2)).resolve("attack x", {})
    assert resolved["items"] == 2 and callable(resolved.items)


def test_spec_resolve_options_names_the_spec():
    with pytest.raises(AttributeError, match=r"^attack pgd has no option 'step'\. Did you "
                                             r"mean: steps"):
        load_registry().attack("pgd").resolve_options({}).step   # noqa: B018


def test_dataset_eps_keeps_the_owner():
    spec = load_registry().attack("pgd")
    schema = options(Option(name="eps", type="float", default=None, nullable=True,
                            dataset_eps=True))
    filled, _ = schema.with_dataset_eps(schema.resolve("attack e", {}), 0.1)
    assert filled.eps == 0.1
    with pytest.raises(AttributeError, match="^attack e has no option"):
        filled.epz   # noqa: B018
    assert spec.resolve_options({}, dataset_eps=0.1).steps == 10


# ------------------------------------------------------------------ to the workers and back


def _read_steps(resolved: ResolvedOptions) -> tuple[int, str]:
    """What a worker process reads of the options it was sent."""
    try:
        resolved.stepz   # noqa: B018
    except AttributeError as exc:
        return resolved.steps, str(exc)
    return resolved.steps, ""


@pytest.mark.parametrize("travel", [lambda r: pickle.loads(pickle.dumps(r)),
                                    copy.deepcopy, copy.copy], ids=["pickle", "deepcopy", "copy"])
def test_resolved_options_travel_with_their_owner(travel):
    resolved = _resolved(steps=3)
    back = travel(resolved)
    assert type(back) is ResolvedOptions and back == resolved and back.steps == 3
    with pytest.raises(AttributeError, match="^attack pgd-like has no option 'stepz'"):
        back.stepz   # noqa: B018
    with pytest.raises(TypeError, match="read-only"):
        back["steps"] = 4


def test_resolved_options_reach_a_spawned_worker():
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        steps, message = pool.apply(_read_steps, (_resolved(steps=7),))
    assert steps == 7 and message.startswith("attack pgd-like has no option 'stepz'")


# ------------------------------------------------------------------ count, positive, fraction


def test_count_is_an_integer_with_inclusive_bounds():
    option = count("steps", 10, "gradient steps")
    assert (option.type, option.min, option.max, option.min_exclusive) == ("int", 1, None, False)
    assert option.describe() == "an integer >= 1"
    assert option.problem(1) is None and option.problem(0) == "is out of range"
    assert option.problem(1.5) == "is not an integer"
    bounded = count("es", 1, "search", 0, 1)
    assert bounded.describe() == "an integer in [0, 1]" and bounded.problem(2)
    assert bounded.problem(0) is None


def test_positive_is_a_number_above_zero():
    option = positive("lr", 0.01, "step size")
    assert (option.type, option.min, option.min_exclusive) == ("float", 0, True)
    assert option.describe() == "a number > 0"
    assert option.problem(0) == "is out of range" and option.problem(1e-9) is None
    capped = positive("rate", 0.1, "share", high=1)
    assert capped.describe() == "a number in (0, 1]"
    assert capped.problem(1) is None and capped.problem(1.01) == "is out of range"


def test_fraction_is_a_number_in_the_unit_interval():
    option = fraction("momentum", 0.9, "Adam's first beta")
    assert (option.type, option.min, option.max, option.min_exclusive) == ("float", 0, 1, False)
    assert option.describe() == "a number in [0, 1]"
    assert option.problem(0) is None and option.problem(1) is None
    assert option.problem(-0.1) == option.problem(1.5) == "is out of range"


def test_the_constructors_refuse_a_default_out_of_their_bounds():
    with pytest.raises(ValueError, match="option 'steps': its default 0 is out of range"):
        count("steps", 0, "gradient steps")
    with pytest.raises(ValueError, match="option 'lr': its default 0 is out of range"):
        positive("lr", 0, "step size")
    with pytest.raises(ValueError, match="option 'rate': its default 2 is out of range"):
        fraction("rate", 2, "share")


def test_the_command_line_checks_them_with_the_usual_message():
    with pytest.raises(UsageError, match=r"option 'rate' must be a number in \[0, 1\]; got 2"):
        _resolved(rate=2)


# ------------------------------------------------------------------ the front door


@pytest.mark.parametrize("name", ["from_defaults", "resolve_options"])
def test_the_legacy_helpers_are_gone_from_the_front_door(name: str):
    assert name not in harness.__all__ and name not in harness._WHERE
    with pytest.raises(AttributeError):
        getattr(harness, name)


def test_the_constructors_are_in_the_front_door():
    assert {"count", "positive", "fraction", "ResolvedOptions"} <= set(harness.__all__)


def _option_subscripts(code: str) -> list[str]:
    """``o["steps"]``-style reads of options (``o``, ``options``, ``resolved``, ``own``,
    ``self.o``, ``self.options``) in ``code``."""
    names = {"o", "options", "resolved", "own", "params"}
    found = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) \
                and isinstance(node.slice.value, str):
            value = node.value
            name = value.attr if isinstance(value, ast.Attribute) else getattr(value, "id", "")
            if name in names:
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr == "get":
            owner = node.func.value
            name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
            if name in names:
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_the_scan_finds_option_subscripts():
    assert sorted(_option_subscripts('x = o["steps"] + self.options["lr"] + o.get("a")\n'
                                     'y = metrics["acc"]\n')) == [
        "line 1: o.get('a')", "line 1: o['steps']", "line 1: self.options['lr']"]


@pytest.mark.parametrize("path", sorted((ROOT / "plugins").glob("*.py")), ids=lambda p: p.name)
def test_builtin_plugins_read_their_options_as_attributes(path: Path):
    found = _option_subscripts(path.read_text())
    assert not found, (f"{path.name} reads options by key ({'; '.join(found)}): read them as "
                       "attributes, o.steps")


class _PerDatasetPlugin:
    """An attack whose ``steps`` default is 3 on digits and 5 on mnist, 1 elsewhere."""

    @harness.hookimpl
    def harness_register_attacks(self, register):
        from harness_plugins.fgsm import FGSM

        register(harness.AttackSpec(
            name="per-dataset-attack", description="per-dataset defaults",
            build=lambda o: FGSM(), threat_model="white-box", norm="inf",
            options=options(Option(name="steps", type="int", default=1, min=1,
                                   per_dataset=(("digits", 3), ("mnist", 5))))))


def test_a_per_dataset_default_is_put_in_before_the_key_and_shown(harness_plugin):
    from harness.planning.plan import BenchConfig, make_plan
    from harness.report.listing import options_listing, spec_row

    registry = harness_plugin(_PerDatasetPlugin(), name="per-dataset")

    def cell(**config):
        plan = make_plan(BenchConfig(attacks=("per-dataset-attack",), defenses=("none",),
                                     checks=False, **config), registry)
        (only,) = plan.cells
        return only

    digits, given, other = cell(), cell(attack_options={"per-dataset-attack": {"steps": 3}}), \
        cell(attack_options={"per-dataset-attack": {"steps": 1}})
    assert digits.attack_params.steps == 3 and given.attack_params.steps == 3
    assert other.attack_params.steps == 1             # given: the dataset's default yields
    assert digits.key != given.key != other.key        # what was asked and what was used
    row = spec_row("attack", registry.attack("per-dataset-attack"))
    assert row["options"][0]["per_dataset"] == {"digits": 3, "mnist": 5}
    assert "1 (digits 3, mnist 5)" in "\n".join(options_listing([row], 120))


def test_a_per_dataset_default_out_of_bounds_is_refused_at_declaration():
    with pytest.raises(ValueError, match="its default on 'mnist', 0, is out of range"):
        Option(name="steps", type="int", default=1, min=1, per_dataset=(("mnist", 0),))
