"""Tests of what the terminal shows: the bench summary, ``harness list`` and ``harness plugins``
stay within the terminal's width, group what they list, and keep the details one flag away."""

from __future__ import annotations

import json
import random

import pytest

from harness.cli import main
from harness.contracts.hookspecs import hookimpl
from harness.contracts.options import Option, options
from harness.contracts.records import Result, ResultSet
from harness.contracts.roles import BASELINE
from harness.contracts.specs import AttackSpec, DefenseSpec
from harness.planning.loading import DISABLE_ENV
from harness.report.summary import summary
from harness.testing.records import make_record

META = {"harness": "0.1.0", "git_commit": "0123456789abcdef0123+dirty",
        "device_name": "NVIDIA H200", "device": "cuda:0", "seed": 0}
LONG = "an-extraordinarily-long-plugin-name-that-no-terminal-column-could-ever-hold-whole"


def record(key: str, **fields) -> Result:
    """An ok evasion record of digits/paper-cnn, ``fields`` overriding."""
    values = dict(cell_key=key, train_key=f"train-{fields.get('defense', 'none')}",
                  run_id="run-1", dataset="digits", model="paper-cnn", defense="none",
                  attack="fgsm", eps=0.1, status="ok", clean_acc=0.98, robust_acc=0.5,
                  n_test=100, attack_seconds=1.0, train_seconds=10.0)
    values.update(fields)
    return make_record(**values)


def results(*records: Result) -> ResultSet:
    return ResultSet(list(records), {"run-1": META})


def rows_of(text: str) -> list[list[str]]:
    """The whitespace-split rows of the first block (under its header and rule)."""
    first = text.split("\n\n")[0].splitlines()
    return [line.split() for line in first[2:]]


def large_set() -> ResultSet:
    """Hundreds of cells with long names, flags, n/a pairings and failures."""
    records = []
    for dataset in ("digits", f"dataset-{LONG}"):
        for model in ("paper-cnn", f"timm:{LONG}"):
            for defense, roles in (("none", (BASELINE,)), ("advtrain", ()), (LONG, ())):
                for attack in ("fgsm", "pgd", LONG):
                    for eps in (0.05, 0.1, None):
                        records.append(record(
                            f"{dataset}|{model}|{defense}|{attack}|{eps}", dataset=dataset,
                            model=model, defense=defense, defense_roles=roles, attack=attack,
                            eps=eps, robust_acc=0.3 if roles else 0.6,
                            train_key=f"{dataset}|{model}|{defense}"))
                records.append(record(f"{dataset}|{model}|check", dataset=dataset, model=model,
                                      attack="pgd", eps=0.5, defense_roles=(BASELINE,),
                                      config={"check": True}))
                records.append(record(f"{dataset}|{model}|inv", dataset=dataset, model=model,
                                      attack=LONG, eps=None, category="inference",
                                      metrics={f"metric-{LONG}": 0.123456, "auc": 0.5}))
    records += [record(f"na{i}", attack=f"a{i}", status="n/a", error="no gradients")
                for i in range(206)]
    records += [record(f"bad{i}", attack=f"{LONG}{i}", status="failed",
                       error=f"RuntimeError: {LONG} " * 3) for i in range(5)]
    flags = {r.cell_key: "PMLECBS" for r in records[::7]}
    return ResultSet(records, {"run-1": META}), flags


# ---------------------------------------------------------------- the bench summary


@pytest.mark.parametrize("width", [100, 80, 60])
def test_summary_never_wider_than_the_terminal(width: int):
    data, flags = large_set()
    text = summary(data, flags, width=width)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width
    assert len(lines) > 100 and any("…" in line for line in lines)


def test_summary_is_deterministic():
    data, flags = large_set()
    shuffled = list(data.records)
    random.Random(0).shuffle(shuffled)
    assert summary(ResultSet(shuffled, data.runs), flags) == summary(data, flags)


def test_delta_is_against_the_baseline_role_of_the_same_cell():
    text = summary(results(
        record("base", defense="standard", defense_roles=(BASELINE,), robust_acc=0.10),
        record("adv", defense="advtrain", robust_acc=0.75),
        record("named-none", defense="none", robust_acc=0.20),
        record("other-eps", defense="advtrain", eps=0.3, robust_acc=0.40),
        record("other-attack", defense="advtrain", attack="pgd", robust_acc=0.05),
        record("base-pgd", defense="standard", defense_roles=(BASELINE,), attack="pgd",
               robust_acc=0.01),
    ), {"adv": "M"})
    rows = {(r[2], r[3], r[4]): r for r in rows_of(text)}
    assert rows[("standard", "fgsm", "0.1")][-1] == "10.00%"  # no Δ for the baseline itself
    assert rows[("advtrain", "fgsm", "0.1")][-2:] == ["+65.00", "M"]
    assert rows[("none", "fgsm", "0.1")][-1] == "+10.00"  # 'none' is not the baseline here
    assert rows[("advtrain", "fgsm", "0.3")][-1] == "40.00%"  # no baseline at eps 0.3
    assert rows[("advtrain", "pgd", "0.1")][-1] == "+4.00"
    assert rows_of(text)[0][2] == "standard"  # the baseline first
    assert text.splitlines()[0].split() == ["dataset", "model", "defense", "attack", "eps",
                                            "clean", "robust", "Δ", "base", "flags"]


def test_check_cells_have_their_own_block():
    text = summary(results(
        record("asked", attack="pgd", eps=0.1, robust_acc=0.4),
        record("check", attack="pgd", eps=0.5, robust_acc=0.02, config={"check": True}),
    ), {"check": "C"})
    blocks = text.split("\n\n")
    assert [r[4] for r in rows_of(text)] == ["0.1"]
    assert blocks[1].splitlines()[0].startswith("Checks")
    assert blocks[1].splitlines()[3].split() == ["digits", "paper-cnn", "none", "pgd", "0.5",
                                                 "2.00%", "C"]


def test_poisoning_inference_and_extraction_show_their_main_numbers():
    text = summary(results(
        record("ev"),
        record("poison", attack="backdoor", eps=None, category="poisoning", clean_acc=0.97,
               attack_success_rate=0.9),
        record("inf", attack="membership-inference", eps=None, category="inference",
               metrics={"attack_accuracy": 0.61, "auc": 0.655, "third": 1.0}),
    ), {})
    block = text.split("\n\n")[1]
    assert "poisoning  clean 97.00%, success 90.00%" in block
    assert "inference  attack_accuracy 0.61, auc 0.655" in block and "third" not in block


def test_not_applicable_and_failed_are_counted():
    na = [record(f"na{i}", attack=f"a{i}", status="n/a", error="why") for i in range(206)]
    one = record("bad", defense="fbf", attack="pgd", status="failed", error="x" * 100)
    text = summary(results(record("ok"), *na, one), {}, width=120)
    assert "206 pairings n/a (see the markdown page's 'Not applicable')" in text
    assert f"1 failed: digits/paper-cnn/fbf/pgd eps 0.1: {'x' * 59}…\n" in text  # 60 chars
    narrow = summary(results(record("ok"), *na, one), {}, width=80)
    assert f"\n1 failed: digits/paper-cnn/fbf/pgd eps 0.1: {'x' * 35}…\n" in narrow
    many = [record(f"bad{i}", attack=f"pgd{i}", status="failed", error="boom")
            for i in range(5)]
    text = summary(results(record("ok"), *many), {})
    assert "5 failed:\n  digits/paper-cnn/none/pgd0 eps 0.1: boom\n" in text
    assert "pgd2 eps 0.1: boom\n  and 2 more" in text and "pgd3" not in text
    assert "n/a" not in text


def test_summary_footer():
    text = summary(results(
        record("a", n_test=100, attack_seconds=0.5, train_key="t1", train_seconds=30.0),
        record("b", attack="pgd", n_test=300, attack_seconds=1.5, train_key="t1",
               train_seconds=30.0),
        record("c", defense="advtrain", n_test=100, attack_seconds=2.0, train_key="t2",
               train_seconds=15.0),
        record("p", attack="backdoor", category="poisoning", attack_seconds=100.0,
               train_key="t1", train_seconds=30.0),
        record("n/a", attack="zoo", status="n/a", train_key="t3", train_seconds=99.0),
    ), {})
    footer = text.split("\n\n")[-1].splitlines()
    assert footer == [
        "attacks 125 images/s (500 images in 4.0 s); training 45.0 s (2 models)",
        "device NVIDIA H200; harness 0.1.0 (git 0123456+dirty)",
        "full table: --format markdown; JSON: --json FILE",
    ]


# ---------------------------------------------------------------- harness list / plugins


@pytest.fixture(autouse=True)
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 100-column terminal and no disabled plugins."""
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.delenv(DISABLE_ENV, raising=False)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def groups(out: str) -> dict[str, list[str]]:
    """Group header -> the names listed under it (rows are indented, headers are not)."""
    found: dict[str, list[str]] = {}
    current = ""
    for line in out.splitlines()[:-1]:
        if line.startswith("  "):
            found[current].append(line.split()[0])
        else:
            current = line.split(" (")[0]
            found[current] = []
    return found


@pytest.mark.parametrize("columns", ["100", "60"])
def test_list_attacks_fits_the_terminal_and_groups_by_category(capsys, monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", columns)
    code, out, _ = run(capsys, "list", "attacks")
    assert code == 0
    assert max(len(line) for line in out.splitlines()) <= int(columns)
    found = groups(out)
    assert list(found) == ["evasion", "poisoning", "inference", "extraction", "certification",
                           "corruption"]
    assert {"fgsm", "pgd", "square", "random-noise"} <= set(found["evasion"])
    assert "backdoor" in found["poisoning"] and "copycat" in found["extraction"]
    assert all(names == sorted(names) for names in found.values())
    assert out.splitlines()[0] == f"evasion ({len(found['evasion'])})"
    fgsm = next(line for line in out.splitlines() if line.split()[0] == "fgsm")
    assert "Fast Gradient Sign Method" in fgsm
    assert out.splitlines()[-1].startswith("more: --long")


def test_list_defenses_groups_by_stage(capsys):
    code, out, _ = run(capsys, "list", "defenses")
    assert code == 0 and max(len(line) for line in out.splitlines()) <= 100
    found = groups(out)
    assert list(found) == ["training", "input-transformation", "poisoning-detection"]
    assert {"none", "advtrain"} <= set(found["training"])
    assert "jpeg" in found["input-transformation"] and "strip" in found["poisoning-detection"]
    assert any(line.endswith("…") for line in out.splitlines())  # long descriptions cut


def test_list_long_is_the_wide_table(capsys):
    code, out, _ = run(capsys, "list", "attacks", "--long")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["name", "description", "category", "threat_model", "norm",
                                "needs", "survey_table", "roles", "limits"]
    fgsm = next(line for line in lines if line.split()[0] == "fgsm")
    assert "Fast Gradient Sign Method, eq. (1): one signed-gradient step of size eps" in fgsm
    assert max(len(line) for line in lines) > 100


class Declared:
    """Two attacks and a defense registered in-process: declared, undeclared, and none."""

    @hookimpl
    def harness_register_attacks(self, register):
        register(AttackSpec(
            name="terminal-declared", description="an attack that declares its options",
            build=lambda o: None, threat_model="white-box", norm="inf", roles=frozenset(
                {"iterative"}),
            options=options(
                Option(name="steps", type="int", default=10, min=1, help="iterations"),
                Option(name="step_size", type="float", default=None, nullable=True, min=0,
                       min_exclusive=True, help="the step; null: 2.5 * eps / steps " * 5))))
        register(AttackSpec(name="terminal-undeclared", description="old style",
                            build=lambda o: None, threat_model="black-box", norm="2"))

    @hookimpl
    def harness_register_defenses(self, register):
        register(DefenseSpec(name="terminal-none", description="declares no option",
                             build=lambda o: None, stage="training", options=options()))


def test_list_options_and_json(harness_plugin, capsys):
    harness_plugin(Declared(), name="terminal-plugin")
    code, out, _ = run(capsys, "list", "attacks", "--options")
    assert code == 0 and max(len(line) for line in out.splitlines()) <= 100
    lines = out.splitlines()
    at = lines.index("terminal-declared  (plugin terminal-plugin)")
    assert lines[at + 1].split() == ["option", "value", "default", "help"]
    assert lines[at + 2].split() == ["steps", "an", "integer", ">=", "1", "10", "iterations"]
    assert lines[at + 3].split()[:7] == ["step_size", "a", "number", ">", "0", "(or", "null)"]
    assert lines[at + 3].endswith("…")
    at = lines.index("terminal-undeclared  (plugin terminal-plugin)")
    assert lines[at + 1] == "  (options not declared; checked by the plugin)"
    code, out, _ = run(capsys, "list", "defenses", "--options")
    lines = out.splitlines()
    assert lines[lines.index("terminal-none  (plugin terminal-plugin)") + 1] == "  (no options)"

    code, out, _ = run(capsys, "list", "attacks", "--json")
    rows = {row["name"]: row for row in json.loads(out)}
    declared = rows["terminal-declared"]
    assert declared["roles"] == ["iterative"] and declared["options_declared"] is True
    assert declared["options"][0] == {"name": "steps", "type": "int", "default": 10,
                                      "per_dataset": {}, "help": "iterations",
                                      "describe": "an integer >= 1"}
    assert declared["options"][1]["describe"] == "a number > 0 (or null)"
    assert rows["terminal-undeclared"]["options"] == []
    assert rows["terminal-undeclared"]["options_declared"] is False
    code, out, _ = run(capsys, "list", "datasets", "--json")
    assert "options" not in json.loads(out)[0]


def test_list_options_of_datasets_is_a_usage_error(capsys):
    code, out, err = run(capsys, "list", "datasets", "--options")
    assert code == 2 and out == "" and "datasets declare no options" in err


def test_plugins_counts(capsys):
    code, out, err = run(capsys, "plugins")
    assert code == 0 and err == ""
    code, raw, _ = run(capsys, "plugins", "--json")
    data = json.loads(raw)
    lines = out.splitlines()
    counts = {line.split(":")[0]: line for line in lines[:-2]}
    assert list(counts)[:4] == ["datasets", "models", "attacks", "defenses"]
    for kind in ("dataset", "model", "attack", "defense"):
        owners = [p for p in data["plugins"] if p["registered"].get(kind)]
        count = sum(len(p["registered"].get(kind, [])) for p in data["plugins"])
        assert counts[f"{kind}s"] == f"{kind}s: {count} ({len(owners)} plugins)"
    dists = {p["distribution"] for p in data["plugins"]}
    assert lines[-2] == f"{len(data['plugins'])} plugins from {len(dists)} distributions; " \
                        "0 load errors"
    assert lines[-1].startswith("more: --verbose")
    assert max(len(line) for line in lines) <= 100


@pytest.mark.parametrize("columns", ["100", "80", "60"])
def test_plugins_verbose_wraps_within_the_width(capsys, monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", columns)
    code, out, _ = run(capsys, "plugins", "--verbose")
    assert code == 0
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= int(columns)
    if columns == "60":  # too narrow for the names: they give way, the list still wraps
        assert "robustness-…" in out and "wasserstein, zoo" in out
        return
    assert lines[0].split() == ["plugin", "distribution", "version", "registered"]
    registered: dict[str, str] = {}
    name = ""
    start = lines[0].index("registered")
    for line in lines[2:]:
        if not line.startswith(" "):
            name = line.split()[0]
        registered[name] = (registered.get(name, "") + " " + line[start:]).strip()
    assert registered["fgsm"] == "attacks: fgsm"
    assert registered["torchvision-datasets"] == "datasets: cifar10, fashion-mnist, mnist"
    assert "attacks: art-autoattack, art-fgsm," in registered["art-evasion"]
    assert registered["art-evasion"].endswith("wasserstein, zoo")
    assert list(registered) == sorted(registered)
