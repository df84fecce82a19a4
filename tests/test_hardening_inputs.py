"""Hardening: nothing invalid is scored, a plugin's SystemExit fails only its cell, bad
command-line input stops before any work with one line, names are printed safely, and a
diverged training is flagged."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from harness.cli import main
from harness.contracts.hookspecs import hookimpl
from harness.contracts.records import Result
from harness.contracts.specs import AttackSpec
from harness.planning.plan import BenchConfig
from harness.report.checks import LEGEND, run_checks
from harness.results.store import ResultStore
from harness.run.evaluators.scoring import Budget, evaluate_attack
from harness.run.model_cache import ModelCache
from harness.run.runner import Runner
from harness.testing.records import make_record
from harness.util.errors import InvalidAttackOutput, quoted

EPS = 0.1
TINY_RUN = dict(datasets=("digits",), models=("paper-cnn",), defenses=("none",),
                n_train=120, n_test=40, epochs=1, device="cpu", checks=False, eps=(EPS,))


class Returns:
    """An attack whose adversarial examples are ``make(x, eps)``."""

    def __init__(self, make):
        self.make = make

    def perturb(self, model, x, y, eps):
        return self.make(x, eps)


def _out_of_range(x, eps):
    x_adv = x.clone()
    x_adv[:, 0, 0, 0] = -0.1
    x_adv[:, 0, 0, 1] = 1.1
    return x_adv


def _one_pixel(x, size):
    """``x`` with its first pixel moved by ``size`` (towards the middle, so no clipping)."""
    x_adv = x.clone()
    first = x_adv[:, 0, 0, 0]
    x_adv[:, 0, 0, 0] = torch.where(first < 0.5, first + size, first - size)
    return x_adv


def _exits(x, eps):
    sys.exit(3)


def _interrupts(x, eps):
    raise KeyboardInterrupt


#: name -> (norm, what the attack returns)
ATTACKS = {
    "out-of-range": ("inf", _out_of_range),
    "linf-5x": ("inf", lambda x, eps: (x + 5 * eps).clamp(0, 1)),
    "l2-over": ("2", lambda x, eps: _one_pixel(x, 3 * eps)),
    "nan": ("inf", lambda x, eps: x * float("nan")),
    "wrong-shape": ("inf", lambda x, eps: x[:, :, :-1]),
    "exits": ("inf", _exits),
    "valid-linf": ("inf", lambda x, eps: (x + eps).clamp(0, 1)),
    "valid-l2": ("2", lambda x, eps: _one_pixel(x, eps / 2)),
    "interrupts": ("inf", _interrupts),
}


class HostileAttacks:
    """Attacks that return invalid examples, exit, or are interrupted; and valid ones."""

    @hookimpl
    def harness_register_attacks(self, register):
        for name, (norm, make) in ATTACKS.items():
            register(AttackSpec(name=name, description=f"test attack: {name}",
                                build=lambda options, make=make: Returns(make),
                                threat_model="white-box", norm=norm))


def _runner(home: Path, registry, attacks: tuple[str, ...]) -> Runner:
    return Runner(BenchConfig(**{**TINY_RUN, "attacks": attacks}), registry,
                  ResultStore(home / "results.sqlite"), ModelCache(home / "models"),
                  show_progress=False, argv=["bench"])


# ---------------------------------------------------------------- class 1: invalid output


def test_invalid_attack_output_fails_its_cell_and_the_run_goes_on(isolated_home,
                                                                   harness_plugin):
    registry = harness_plugin(HostileAttacks(), name="hostile-attacks")
    names = tuple(n for n in ATTACKS if n != "interrupts")
    outcome = _runner(isolated_home, registry, names).run()
    by_attack = {r.attack: r for r in outcome.records}
    assert set(by_attack) == set(names)
    expected = {
        "out-of-range": "attack 'out-of-range' returned values outside [0, 1] "
                        "(min -0.1, max 1.1)",
        "linf-5x": "attack 'linf-5x' exceeded its budget: max Linf 0.5 > eps 0.1",
        "l2-over": "attack 'l2-over' exceeded its budget: max L2 0.3 > eps 0.1",
        "nan": "attack 'nan' returned non-finite values (NaN or inf)",
        "wrong-shape": "attack 'wrong-shape' returned shape (40, 1, 7, 8) for input "
                       "(40, 1, 8, 8)",
        "exits": "SystemExit raised inside attack 'exits'",
    }
    for name, message in expected.items():
        record = by_attack[name]
        assert record.status == "failed", name
        assert record.robust_acc is None, name
        assert message in (record.error or ""), (name, record.error)
    for name in ("valid-linf", "valid-l2"):
        assert by_attack[name].status == "ok", by_attack[name].error
        assert by_attack[name].robust_acc is not None
    assert by_attack["valid-linf"].value("mean_linf") == pytest.approx(EPS, abs=1e-4)
    stored = ResultStore(isolated_home / "results.sqlite").latest_records().records
    assert sorted(r.attack for r in stored if r.status == "ok") == ["valid-l2", "valid-linf"]

    # Ctrl-C inside an attack still stops the run (the model is cached by now)
    with pytest.raises(KeyboardInterrupt):
        _runner(isolated_home, registry, ("interrupts",)).run()


def _identity_model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))


@pytest.mark.parametrize(("norm", "eps", "size", "ok"), [
    ("1", 0.5, 0.4, True), ("1", 0.3, 0.4, False),
    ("0", 1.0, 0.4, True), ("0", 1.0, 0.0, True),
])
def test_l1_and_l0_budgets(norm: str, eps: float, size: float, ok: bool):
    x = torch.full((3, 1, 4, 4), 0.2)
    y = torch.zeros(3, dtype=torch.long)
    attack = Returns(lambda xb, e: _one_pixel(xb, size))
    run = lambda: evaluate_attack(_identity_model(), attack, x, y, eps,  # noqa: E731
                                  show_progress=False, name="a", budget=Budget(norm, eps))
    if ok:
        assert run().n_test == 3
    else:
        with pytest.raises(InvalidAttackOutput, match=r"max L1 0\.4 > eps 0\.3"):
            run()


def test_l0_counts_changed_values_above_tolerance():
    x = torch.full((2, 1, 4, 4), 0.5)
    x_adv = x.clone()
    x_adv[:, 0, 0, :3] = 0.9
    x_adv[:, 0, 1, 0] += 1e-5  # float noise: not a change
    with pytest.raises(InvalidAttackOutput, match=r"max L0 3 > eps 2"):
        evaluate_attack(_identity_model(), Returns(lambda xb, e: x_adv), x,
                        torch.zeros(2, dtype=torch.long), 2, show_progress=False,
                        name="a", budget=Budget("0", 2))


def test_budget_tolerance_and_unchecked_norms():
    assert Budget.of("inf", True, 0.1) == Budget("inf", 0.1)
    assert Budget.of("inf", False, 0.1) is None  # unbounded: no budget
    assert Budget.of("wasserstein", True, 0.1) is None
    assert Budget.of("none", True, 0.1) is None
    assert Budget("inf", 0.1).bound() == pytest.approx(0.1 * (1 + 1e-5) + 1e-6)


# ---------------------------------------------------------------- class 7: command line


TINY = ["bench", "--quiet", "--epochs", "1", "--n-train", "50", "--n-test", "20", "--no-checks"]
LONG_NAME = "x" * 100_000


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HARNESS_HOME that is not created; the datasets where they are."""
    home = tmp_path / "harness-home"
    monkeypatch.setenv("HARNESS_HOME", str(home))
    return home


@pytest.mark.parametrize(("argv", "message"), [
    (["--eps", "0.1,0.1"], "--eps lists 0.1 twice"),
    (["--eps", "0.05,0.1,0.10"], "--eps lists 0.1 twice"),
    (["--attack", "fgsm,fgsm"], "--attack lists 'fgsm' twice"),
    (["--dataset", "digits,digits"], "--dataset lists 'digits' twice"),
    (["--model", "paper-cnn,paper-cnn"], "--model lists 'paper-cnn' twice"),
    (["--defense", "advtrain,advtrain"], "--defense lists 'advtrain' twice"),
    (["--seed", "-1"], "--seed must be an integer in [0, 2**63), got -1"),
    (["--seed", str(2**64)], "--seed must be an integer in [0, 2**63)"),
    (["--seed", str(2**63)], "--seed must be an integer in [0, 2**63)"),
    (["--image-size", "100000"], "--image-size 100000 is too large: at most 4096"),
    (["--attack", "fgsm\nharness: forged"],
     "unknown attack 'fgsm\\nharness: forged'. Available: "),
    (["--attack", "fgsm\x1b[2J"], "unknown attack 'fgsm\\x1b[2J'."),
    (["--attack", "pgd", "--attack-opt", "pgd.seed=abc"],
     "attack pgd: option 'seed' must be an integer >= 0; got 'abc', which is not an integer"),
    (["--attack", "pgd", "--attack-opt", "pg\nd.steps=3"],
     "--attack-opt names 'pg\\nd', which is not in this run (pgd)"),
    (["--attack", "pgd", "--attack-opt", "pgd.steps\nharness: forged"],
     "--attack-opt 'pgd.steps\\nharness: forged': expected NAME.OPTION=VALUE"),
], ids=["eps-twice", "eps-twice-spelled-apart", "attack-twice", "dataset-twice",
        "model-twice", "defense-twice", "seed-negative", "seed-64-bits", "seed-2**63",
        "image-size", "name-with-newline", "name-with-escape", "option-wrong-type",
        "option-owner-newline", "option-newline"])
def test_bad_input_is_one_line_and_exit_2(argv: list[str], message: str, capsys, home: Path):
    code = main([*TINY, *argv])
    out, err = capsys.readouterr()
    assert code == 2, err
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("harness: error: "), err
    assert message in err
    if not any("\n" in a or "\x1b" in a or "pgd" in a for a in argv):
        assert not home.exists()  # found before HARNESS_HOME is opened
    else:  # unknown names and options are found by the plan, once HARNESS_HOME is checked
        assert not (home / "results.sqlite").exists()
        assert not (home / "models").exists() or not any((home / "models").iterdir())


@pytest.mark.parametrize("argv", [["--attack", LONG_NAME], ["--model", LONG_NAME],
                                  ["--attack", "fgsm", "--attack-opt", f"{LONG_NAME}.steps=1"]])
def test_a_huge_name_is_cut(argv: list[str], capsys, home: Path):
    code = main([*TINY, *argv])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert LONG_NAME not in err and len(err) < 2000
    assert "x" * 80 + "…'" in err


def test_quoted():
    assert quoted("fgsm") == "'fgsm'"
    assert quoted("fg\nsm") == "'fg\\nsm'"
    assert quoted("a\u2028b") == "'a\\u2028b'"
    assert quoted("y" * 81) == "'" + "y" * 80 + "…'"


# ---------------------------------------------------------------- training at chance level


def _record(key: str, clean: float | None, classes: float | None, status: str = "ok",
            eps: float | None = 0.1) -> Result:
    metrics = {"num_classes": classes} if classes is not None else {}
    return make_record(cell_key=key, train_key="t", run_id="r", dataset="d", model="m",
                  defense="none", attack="fgsm", eps=eps, status=status, clean_acc=clean,
                  robust_acc=0.0 if status == "ok" else None, n_test=100, metrics=metrics)


def test_chance_level_clean_accuracy_is_flagged_t():
    records = [_record("chance", 0.10, 10), _record("edge", 0.15, 10),
               _record("unbounded", 0.12, 10, eps=None), _record("learned", 0.16, 10),
               _record("two-classes", 0.76, 2), _record("no-classes", 0.05, None),
               _record("failed", None, 10, status="failed")]
    flagged = {f.cell_key: f for f in run_checks(records) if f.code == "T"}
    assert set(flagged) == {"chance", "edge", "unbounded"}
    assert flagged["chance"].message == ("d/m/none fgsm eps 0.1: clean 10.00% with 10 "
                                         "classes (chance 10.00%)")
    assert "training diverged" in LEGEND["T"]


def test_diverged_training_shows_t_and_large_n_test_warns_once(capsys, home: Path):
    code = main(["bench", "--quiet", "--no-checks", "--dataset", "digits", "--attack", "fgsm",
                 "--defense", "advtrain", "--epochs", "2", "--lr", "1e3", "--n-train", "5000",
                 "--n-test", "100000", "--format", "markdown"])
    out, err = capsys.readouterr()
    assert code == 0, err
    warning = ("harness: --n-test 100000 is more than digits's 360 test images; "
               "using all 360\n")
    assert err.count(warning) == 1, err
    assert err.count("harness: --n-train 5000 is more than digits's 1437 training images; "
                     "using all 1437\n") == 1, err
    assert err.count("harness: check T failed: digits/paper-cnn/") == 2, err
    assert f"- **T**: {LEGEND['T']}" in out, out
    rows = [line for line in out.splitlines() if line.startswith("| ") and " fgsm " in line
            and "| ok " in line]                  # the per-cell rows (the summary's have none)
    assert len(rows) == 2 and all("| T " in row for row in rows), rows


EXITING_DEFENSE = """
'''A training defense that calls sys.exit (a test plugin).'''
import sys

from harness.contracts.hookspecs import hookimpl
from harness.contracts.options import options
from harness.contracts.specs import DefenseSpec


class Exits:
    def train(self, model, data, ctx):
        sys.exit(4)


@hookimpl
def harness_register_defenses(register):
    register(DefenseSpec(name="exits-in-training", description="calls sys.exit in train",
                         build=lambda o: Exits(), stage="training", options=options()))
"""


def test_a_systemexit_in_training_fails_that_jobs_cells_and_the_run_goes_on(
        tmp_path, monkeypatch, harness_plugin):
    import textwrap

    from harness.planning.plan import BenchConfig
    from harness.results.store import ResultStore
    from harness.run.model_cache import ModelCache
    from harness.run.runner import Runner

    (tmp_path / "harness_exiting_defense.py").write_text(textwrap.dedent(EXITING_DEFENSE))
    monkeypatch.syspath_prepend(str(tmp_path))
    import harness_exiting_defense

    registry = harness_plugin(harness_exiting_defense)
    config = BenchConfig(datasets=("digits",), models=("paper-cnn",), attacks=("fgsm",),
                         defenses=("none", "exits-in-training"), n_train=200, n_test=40,
                         epochs=1, device="cpu", checks=False)
    records = {r.defense: r for r in Runner(
        config, registry, ResultStore(tmp_path / "r.sqlite"), ModelCache(tmp_path / "models"),
        show_progress=False).run().records}
    assert records["none"].ok
    failed = records["exits-in-training"]
    assert failed.status == "failed" and "training failed: SystemExit: 4" in failed.error
