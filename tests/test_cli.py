"""Tests of the ``harness`` command line, run in-process through ``harness.cli.main``."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
import sysconfig
import textwrap
import tomllib
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points, version
from pathlib import Path
from typing import Any

import pytest

import harness.planning.loading
from harness.cli import main
from harness.contracts.hookspecs import hookimpl
from harness.contracts.records import RESULTS_FORMAT, ResultSet
from harness.contracts.specs import AttackSpec
from harness.planning.loading import DISABLE_ENV

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"

#: A tiny real bench: 2 defenses (none is added) x 3 attacks on 300/100 digits, 2 epochs.
BENCH = ["bench", "--dataset", "digits", "--attack", "fgsm,pgd,random-noise",
         "--defense", "advtrain", "--epochs", "2", "--n-train", "300", "--n-test", "100",
         "--quiet", "--no-checks"]
#: Smaller still, for commands that must fail before doing anything.
TINY = ["bench", "--quiet", "--epochs", "1", "--n-train", "50", "--n-test", "20"]

RECORD_KEYS = {"dataset", "model", "defense", "attack", "eps", "status", "metrics", "timings",
               "run_id", "attack_roles", "defense_roles"}
#: The numbers every evasion record carries (in "metrics"; the timings in "timings").
METRIC_KEYS = {"clean_acc", "robust_acc", "attack_success_rate", "n_test"}
TIMING_KEYS = {"train_seconds", "train_images_per_s", "attack_seconds", "attack_images_per_s"}
#: The attack roles the built-ins of the bench declare.
ROLES = {"fgsm": ["reference", "single-step"], "pgd": ["iterative", "reference"]}
METADATA_KEYS = {"plugins", "libraries", "git_commit", "device_name", "config", "timestamp"}
CELLS = {(defense, attack) for defense in ("none", "advtrain")
         for attack in ("fgsm", "pgd", "random-noise")}
#: How tables show the example plugin's attack: with its distribution (not the harness's own).
EXAMPLE_ATTACK = f"random-noise (harness-example-plugin {version('harness-example-plugin')})"
#: The cells as the tables label them.
SHOWN_CELLS = {(d, EXAMPLE_ATTACK if a == "random-noise" else a) for d, a in CELLS}


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HARNESS_HOME per test (not created), the cwd in tmp_path, no disabled plugins."""
    home = tmp_path / "harness-home"
    monkeypatch.setenv("HARNESS_HOME", str(home))
    monkeypatch.setenv("HARNESS_DATA", str(tmp_path / "no-data"))
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    return home


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``harness ARGV`` in-process: exit code, stdout, stderr."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def invoke(argv: list[str]) -> tuple[int, str, str]:
    """Like :func:`run`, for module-scoped fixtures (where capsys is not available)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def table_rows(markdown: str) -> list[dict[str, str]]:
    """The rows of the per-cell results table in leaderboard markdown (the first table after
    the summary), by column name."""
    if "### Evasion" in markdown:
        markdown = markdown[markdown.index("### Evasion"):]
    table = markdown.split("\n\n|", 1)
    markdown = "|" + table[1].split("\n\n")[0] if len(table) == 2 else markdown
    lines = [line for line in markdown.splitlines()
             if line.startswith("|") and not line.startswith("|--")]
    assert lines, f"no table in:\n{markdown}"
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in line.strip("|").split("|")), strict=True))
            for line in lines[1:]]


def files_under(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def stored_runs(home: Path) -> int:
    db = home / "results.sqlite"
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]


# ---------------------------------------------------------------- one real bench, reused


@dataclass
class BenchRuns:
    home: Path
    root: Path
    first: tuple[int, str, str]
    first_file: dict[str, Any]
    first_markdown_file: str
    models_after_first: list[str]
    second: tuple[int, str, str]
    second_file: dict[str, Any]
    models_after_second: list[str]

    @property
    def first_records(self) -> list[dict[str, Any]]:
        """The records of the first run's ``--json`` file, as written."""
        return self.first_file["records"]

    @property
    def second_records(self) -> list[dict[str, Any]]:
        """The records of the second run's ``--json`` file, as written."""
        return self.second_file["records"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> BenchRuns:
    """The tiny bench run twice against one HARNESS_HOME (the second reuses everything)."""
    root = tmp_path_factory.mktemp("bench")
    home = root / "home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARNESS_HOME", str(home))
        mp.setenv("HARNESS_DATA", str(root / "no-data"))
        mp.delenv(DISABLE_ENV, raising=False)
        first = invoke([*BENCH, "--json", str(root / "first.json"),
                        "--out", str(root / "first.md")])
        assert first[0] == 0, first
        models_after_first = files_under(home / "models")
        second = invoke([*BENCH, "--json", str(root / "second.json")])
        assert second[0] == 0, second
        models_after_second = files_under(home / "models")
    return BenchRuns(
        home=home, root=root, first=first,
        first_file=json.loads((root / "first.json").read_text()),
        first_markdown_file=(root / "first.md").read_text(),
        models_after_first=models_after_first, second=second,
        second_file=json.loads((root / "second.json").read_text()),
        models_after_second=models_after_second,
    )


def test_bench_prints_the_leaderboard(bench: BenchRuns):
    code, out, err = bench.first
    assert code == 0
    assert "cells failed" not in err
    assert out.startswith("# Adversarial robustness leaderboard\n")
    assert out.count("\n## digits\n") == 1
    rows = table_rows(out)
    assert len(rows) == 6
    assert {(r["defense"], r["attack"]) for r in rows} == SHOWN_CELLS  # baseline 'none' added
    assert [r["rank"] for r in rows] == [str(i) for i in range(1, 7)]
    assert {r["model"] for r in rows} == {"paper-cnn"}
    assert {r["status"] for r in rows} == {"ok"}
    assert {r["n test"] for r in rows} == {"100"} and {r["eps"] for r in rows} == {"0.1"}
    assert "random-noise: harness-example-plugin" in out  # the third-party plugin ran
    assert "attack random-noise from harness-example-plugin" in out  # named in Provenance
    assert bench.first_markdown_file == out  # --out writes what is printed


def test_bench_json_records(bench: BenchRuns):
    assert set(bench.first_file) == {"format", "runs", "records", "worst_case"}
    assert bench.first_file["format"] == RESULTS_FORMAT
    records = bench.first_records
    assert len(records) == 6  # 2 defenses x 3 attacks
    assert {(r["defense"], r["attack"]) for r in records} == CELLS
    for r in records:
        assert RECORD_KEYS <= set(r), RECORD_KEYS - set(r)
        assert r["dataset"] == "digits" and r["model"] == "paper-cnn"
        metrics, timings = r["metrics"], r["timings"]
        assert METRIC_KEYS <= set(metrics) and TIMING_KEYS <= set(timings)
        assert r["status"] == "ok" and r["eps"] == pytest.approx(0.1) and metrics["n_test"] == 100
        for key in ("clean_acc", "robust_acc"):
            value = metrics[key]
            assert isinstance(value, float) and 0.0 <= value <= 1.0, (key, value)
        assert timings["train_images_per_s"] > 0 and timings["attack_images_per_s"] > 0
        assert "metadata" not in r  # kept once per run
        if r["attack"] in ROLES:
            assert r["attack_roles"] == ROLES[r["attack"]]
        assert r["defense_roles"] == (["baseline"] if r["defense"] == "none"
                                      else ["single-step-training"])
    (run_id,) = {r["run_id"] for r in records}
    assert set(bench.first_file["runs"]) == {run_id}
    meta = bench.first_file["runs"][run_id]
    assert METADATA_KEYS <= set(meta), METADATA_KEYS - set(meta)
    assert meta["plugins"]["random-noise"].startswith("harness-example-plugin ")
    assert meta["plugins"]["fgsm"].startswith("robustness-harness ")
    assert meta["config"]["n_train"] == 300 and meta["config"]["n_test"] == 100
    assert meta["config"]["defenses"] == ["advtrain"] and meta["config"]["baseline"] is True
    assert meta["libraries"]["torch"] and meta["device_name"]
    # A model is trained once per defense and shared by its three attack cells.
    by_defense = {d: {r["timings"]["train_images_per_s"] for r in records if r["defense"] == d}
                  for d in ("none", "advtrain")}
    assert all(len(v) == 1 for v in by_defense.values()), by_defense


def test_bench_trains_one_model_per_defense(bench: BenchRuns):
    weights = [n for n in bench.models_after_first if n.endswith(".safetensors")]
    assert len(weights) == 2
    assert not [n for n in bench.models_after_first if n.endswith(".partial.pt")]


def test_rerun_reuses_stored_cells_and_models(bench: BenchRuns):
    code, out, _ = bench.second
    assert code == 0
    assert bench.models_after_second == bench.models_after_first  # nothing retrained
    first_run = {r["run_id"] for r in bench.first_records}
    assert {r["run_id"] for r in bench.second_records} == first_run
    assert bench.second_file["runs"] == bench.first_file["runs"]
    key = ("defense", "attack")
    first = {tuple(r[k] for k in key): r for r in bench.first_records}
    second = {tuple(r[k] for k in key): r for r in bench.second_records}
    assert first.keys() == second.keys() == CELLS
    for cell, record in second.items():
        assert record["cell_key"] == first[cell]["cell_key"]
        for field in ("clean_acc", "robust_acc", "n_test"):
            assert record["metrics"][field] == first[cell]["metrics"][field], (cell, field)
    assert {(r["defense"], r["attack"]) for r in table_rows(out)} == SHOWN_CELLS


def test_no_baseline_leaves_only_the_asked_defense(bench: BenchRuns, capsys, monkeypatch,
                                                   tmp_path: Path):
    monkeypatch.setenv("HARNESS_HOME", str(bench.home))  # advtrain's model is cached there
    models_before = files_under(bench.home / "models")
    code, out, _ = run(capsys, *BENCH, "--no-baseline", "--json", str(tmp_path / "nb.json"))
    assert code == 0
    assert {(r["defense"], r["attack"]) for r in table_rows(out)} == {
        ("advtrain", a) for a in ("fgsm", "pgd", EXAMPLE_ATTACK)}
    records = ResultSet.from_json((tmp_path / "nb.json").read_text()).records
    assert len(records) == 3 and {r.defense for r in records} == {"advtrain"}
    assert files_under(bench.home / "models") == models_before


def test_bench_format_summary_markdown_and_json(bench: BenchRuns, capsys, monkeypatch):
    monkeypatch.setenv("HARNESS_HOME", str(bench.home))  # every cell is stored there
    monkeypatch.setenv("COLUMNS", "250")  # a wide terminal: the summary still keeps to 100
    code, summary, _ = run(capsys, *BENCH, "--format", "summary")
    assert code == 0
    lines = summary.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert lines[0].startswith("Summary (at each dataset's eps")     # the pages' first rows
    assert lines[1].split()[:6] == ["rank", "dataset", "model", "defense", "eps", "clean"]
    cells = summary.split("\n\n")[1].splitlines()      # then one row per cell
    assert cells[0].split()[:4] == ["dataset", "model", "defense", "attack"]
    rows = [line.split() for line in cells[2:]]
    assert {(r[2], r[3]) for r in rows} == CELLS and "| rank" not in summary
    code, markdown, _ = run(capsys, *BENCH, "--format", "markdown")
    assert code == 0 and markdown == bench.first[1]  # the page the first run printed
    code, piped, _ = run(capsys, *BENCH)  # captured, not a terminal: the page
    assert code == 0 and piped == markdown
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    code, shown, _ = run(capsys, *BENCH)  # on a terminal: the summary
    assert code == 0 and shown == summary
    code, text, _ = run(capsys, *BENCH, "--format", "json")
    assert code == 0 and json.loads(text) == bench.second_file


# ---------------------------------------------------------------- leaderboard


def test_leaderboard_is_deterministic(bench: BenchRuns, capsys, monkeypatch, tmp_path: Path):
    monkeypatch.setenv("HARNESS_HOME", str(bench.home))
    code, first, _ = run(capsys, "leaderboard")
    assert code == 0
    # Summary, digits, Provenance
    assert first.count("## digits") == 1 and first.count("\n## ") == 3
    assert {(r["defense"], r["attack"]) for r in table_rows(first)} == SHOWN_CELLS
    code, again, _ = run(capsys, "leaderboard")
    assert code == 0 and again == first
    code, out, _ = run(capsys, "leaderboard", "--out", str(tmp_path / "board.md"),
                       "--no-figures")
    assert code == 0 and out == ""
    assert (tmp_path / "board.md").read_text() == first
    # with figures: the same page plus the embedded pictures, drawn beside it
    code, _, err = run(capsys, "leaderboard", "--out", str(tmp_path / "board.md"))
    page = (tmp_path / "board.md").read_text()
    assert code == 0 and "![" in page and "](board-bars.png)" in page
    assert (tmp_path / "board-bars.png").stat().st_size > 5000 and "drew" in err
    # The stored records render exactly as the bench printed them.
    assert first == bench.first[1]


def test_leaderboard_dataset_filter_and_db(bench: BenchRuns, capsys):
    db = str(bench.home / "results.sqlite")
    code, out, _ = run(capsys, "leaderboard", "--db", db, "--dataset", "digits")
    assert code == 0 and "## digits" in out
    code, out, _ = run(capsys, "leaderboard", "--db", db, "--dataset", "mnist")
    assert code == 0 and "## digits" not in out and "No results yet" in out


def test_leaderboard_without_database(capsys, home: Path):
    code, out, err = run(capsys, "leaderboard")
    assert code == 2 and out == ""
    assert err.startswith(f"harness: error: no results database at {home / 'results.sqlite'}")
    assert "run `harness bench` first" in err
    assert not home.exists()


def test_leaderboard_reads_results_files_old_and_new(bench: BenchRuns, capsys, tmp_path: Path):
    page = bench.first[1]
    code, out, _ = run(capsys, "leaderboard", "--results", str(bench.root / "first.json"))
    assert code == 0 and out == page
    # a file of an older harness: a list of records, each with its run's metadata, no roles
    legacy = [{k: v for k, v in r.items() if k not in ("attack_roles", "defense_roles")}
              | {"metadata": bench.first_file["runs"][r["run_id"]]}
              for r in bench.first_records]
    (tmp_path / "old.json").write_text(json.dumps(legacy))
    code, out, _ = run(capsys, "leaderboard", "--results", str(tmp_path / "old.json"),
                       "--save-results", str(tmp_path / "new.json"))
    assert code == 0 and out == page  # the roles come from the registry
    assert json.loads((tmp_path / "new.json").read_text()) == bench.first_file
    (tmp_path / "bad.json").write_text(json.dumps({"records": []}))
    code, out, err = run(capsys, "leaderboard", "--results", str(tmp_path / "bad.json"))
    assert code == 2 and out == "" and "is not a `harness bench --json` file" in err


# ---------------------------------------------------------------- usage errors


LATE_ERRORS = {  # found once the run is planned (or its data / plugins are loaded)
    "unknown-attack": (["--attack", "fgsn"],
                       "unknown attack 'fgsn'. Did you mean: fgsm, ifgsm, art-fgsm? Available: "),
    "unknown-defense": (["--defense", "advtrian"],
                        "unknown defense 'advtrian'. Did you mean: advtrain, art-advtrain? "
                        "Available: "),
    "unknown-dataset": (["--dataset", "digitz"],
                        "unknown dataset 'digitz'. Did you mean: digits? Available: "),
    "unknown-model": (["--model", "paper-cn"],
                      "unknown model 'paper-cn'. Did you mean: paper-cnn"),
    "unknown-timm-model": (["--model", "timm:resnt18"],
                           "'resnt18' is not a timm architecture. Did you mean: timm:resnet18"),
    "model-needs-variant": (["--model", "timm"], "model 'timm' needs a variant"),
    "eps-too-big": (["--eps", "1.5"], "--eps 1.5 is out of range"),
    "eps-zero": (["--eps", "0"], "--eps 0.0 is out of range"),
    "eps-negative": (["--eps", "0.1,-0.1"], "--eps -0.1 is out of range"),
    "n-test-zero": (["--n-test", "0"], "--n-test must be a positive integer, got 0"),
    "epochs-zero": (["--epochs", "0"], "--epochs must be a positive integer, got 0"),
    "unknown-option": (["--attack", "pgd", "--attack-opt", "pgd.stepz=3"],
                       "attack pgd has no option 'stepz'. Did you mean: steps"),
    "option-not-in-run": (["--attack", "fgsm", "--attack-opt", "pgd.steps=3"],
                          "--attack-opt names 'pgd', which is not in this run (fgsm)"),
    "missing-dataset": (["--dataset", "mnist", "--data-root", "{empty}"],
                        "{empty}/MNIST/raw"),
    "disabled-plugin": (["--disable-plugin", "fgsm", "bench", "--attack", "fgsm"],
                        "unknown attack 'fgsm'. Did you mean: ifgsm, art-fgsm, jsma? "
                        "Available: "),
}
EARLY_ERRORS = {  # found before anything is opened under HARNESS_HOME
    "option-without-value": (["--attack", "pgd", "--attack-opt", "pgd.steps"],
                             "--attack-opt 'pgd.steps': expected NAME.OPTION=VALUE"),
    "out-folder-missing": (["--out", "{empty}/no/such/out.md"],
                           "cannot write {empty}/no/such/out.md: folder {empty}/no/such does "
                           "not exist"),
}


def _usage_error(capsys, tmp_path: Path, argv: list[str]) -> tuple[int, str, str, Path]:
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = [a.replace("{empty}", str(empty)) for a in argv]
    if argv[0] == "--disable-plugin":
        code, out, err = run(capsys, *argv[:3], *TINY[1:], *argv[3:])
    else:
        code, out, err = run(capsys, *TINY, *argv)
    return code, out, err, empty


@pytest.mark.parametrize("case", [*LATE_ERRORS, *EARLY_ERRORS])
def test_bench_usage_errors_exit_2_before_any_work(case: str, capsys, tmp_path: Path,
                                                    home: Path):
    argv, expected = {**LATE_ERRORS, **EARLY_ERRORS}[case]
    code, out, err, empty = _usage_error(capsys, tmp_path, argv)
    assert code == 2, err
    assert out == ""
    assert err.startswith("harness: error: ")
    assert expected.replace("{empty}", str(empty)) in err
    assert files_under(home / "models") == []  # nothing trained
    assert stored_runs(home) == 0  # no run recorded
    assert files_under(empty) == []  # nothing downloaded or written
    if case in EARLY_ERRORS:
        assert not home.exists()


def test_missing_dataset_message(capsys, tmp_path: Path):
    code, _, err, empty = _usage_error(capsys, tmp_path, LATE_ERRORS["missing-dataset"][0])
    assert code == 2
    assert f"dataset 'mnist': MNIST files not found (or incomplete) in {empty}/MNIST/raw" in err
    assert "--download" in err and "--data-root" in err


@pytest.mark.parametrize("case", ["unknown-attack", "eps-zero", "missing-dataset"])
def test_usage_errors_leave_harness_home_untouched(case: str, capsys, tmp_path: Path,
                                                   home: Path):
    code, _, _, _ = _usage_error(capsys, tmp_path, LATE_ERRORS[case][0])
    assert code == 2
    assert not (home / "results.sqlite").exists()
    assert not (home / "models").exists()


@pytest.mark.parametrize(("eps", "message"), [
    ("abc", "argument --eps: 'abc' is not a number"),
    ("4/0", "argument --eps: '4/0' is not a number (nor a fraction such as 8/255)"),
    ("1/2/3", "argument --eps: '1/2/3' is not a number"),
    ("nan", "argument --eps: 'nan' is not a finite number"),
    (",", "argument --eps: give at least one eps"),
])
def test_bench_eps_not_a_number_is_an_argparse_error(eps: str, message: str, capsys,
                                                     home: Path):
    with pytest.raises(SystemExit) as info:
        main([*TINY, "--eps", eps])
    assert info.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and message in err and err.startswith("usage: harness bench")
    assert not home.exists()


def test_bench_eps_may_be_a_fraction_of_the_pixel_range():
    from harness.cli import build_parser

    args = build_parser().parse_args(["bench", "--eps", "4/255,0.03"])
    assert args.eps == (4 / 255, 0.03)


def test_unknown_command_and_kind(capsys):
    for argv in (["frobnicate"], ["list", "widgets"], []):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2, argv
        out, err = capsys.readouterr()
        assert out == "" and "usage: harness" in err


# ---------------------------------------------------------------- plugins


def test_plugins_table(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # wide enough that no row wraps
    code, out, err = run(capsys, "plugins", "--verbose")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["plugin", "distribution", "version", "registered"]
    assert not any(line.startswith(" ") for line in lines)
    by_plugin = {line.split()[0]: line for line in lines[2:]}
    with PYPROJECT.open("rb") as f:
        builtins = tomllib.load(f)["project"]["entry-points"]["harness"]
    for name in builtins:
        assert by_plugin[name].split()[1] == "robustness-harness", by_plugin[name]
    assert by_plugin["fgsm"].endswith("attacks: fgsm")
    assert by_plugin["torchvision-datasets"].endswith("datasets: cifar10, fashion-mnist, mnist")
    assert by_plugin["random-noise"].split()[1] == "harness-example-plugin"
    assert by_plugin["random-noise"].endswith("attacks: random-noise")
    assert list(by_plugin) == sorted(by_plugin)


def test_plugins_json(capsys):
    code, out, _ = run(capsys, "plugins", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["errors"] == []
    rows = {row["plugin"]: row for row in data["plugins"]}
    assert rows["fgsm"]["registered"] == {"attack": ["fgsm"]}
    assert rows["fgsm"]["distribution"] == "robustness-harness"
    assert rows["fgsm"]["entry_point"] == "fgsm = harness_plugins.fgsm"
    assert rows["standard-training"]["registered"] == {"defense": ["none"]}
    example = rows["random-noise"]
    assert example["distribution"] == "harness-example-plugin"
    assert example["entry_point"] == "random-noise = harness_example_plugin"
    assert example["registered"] == {"attack": ["random-noise"]}


def test_disable_plugin_option_and_environment(capsys, monkeypatch):
    code, out, _ = run(capsys, "--disable-plugin", "fgsm", "--disable-plugin", "digits",
                       "plugins", "--json")
    assert code == 0
    names = {row["plugin"] for row in json.loads(out)["plugins"]}
    assert "fgsm" not in names and "digits" not in names and "pgd" in names
    monkeypatch.setenv(DISABLE_ENV,
                       "random-noise,art-evasion,backdoor-poisoning,feature-space-poisoning,"
                       "svm-poisoning,art-inference,art-extraction,autoattack,smoothing,"
                       "corruptions")
    code, out, _ = run(capsys, "list", "attacks", "--json")
    assert code == 0
    assert [row["name"] for row in json.loads(out)] == ["fgsm", "pgd"]


BROKEN_PLUGIN = """
from harness.contracts.hookspecs import hookimpl

@hookimpl
def harness_register_attacks(register):
    raise RuntimeError("this plugin is broken")
"""


def test_a_broken_plugin_is_reported_by_listings_and_stops_bench(
        capsys, monkeypatch, tmp_path: Path, home: Path):
    (tmp_path / "harness_cli_broken_plugin.py").write_text(textwrap.dedent(BROKEN_PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "harness_cli_broken_plugin", raising=False)
    installed = list(entry_points(group="harness"))
    fake = EntryPoint("broken", "harness_cli_broken_plugin", group="harness")
    monkeypatch.setattr(harness.planning.loading, "entry_points",
                        lambda group: [*installed, fake] if group == "harness" else [])
    expected = ("plugin 'unknown unknown' (entry point broken = harness_cli_broken_plugin): "
                "harness_register_attacks failed: RuntimeError: this plugin is broken")
    code, out, err = run(capsys, "plugins")
    assert code == 0 and "; 1 load error\n" in out
    assert err == f"harness: error: {expected}\n"  # once, no Python warning besides
    code, out, _ = run(capsys, "plugins", "--json")
    assert code == 0 and json.loads(out)["errors"] == [expected]
    code, out, err = run(capsys, "list", "attacks", "--json")
    assert code == 0 and {"fgsm", "pgd"} <= {row["name"] for row in json.loads(out)}
    assert err == f"harness: error: {expected}\n"
    code, out, err = run(capsys, *TINY)
    assert code == 2 and out == ""
    assert err == f"harness: error: {expected}\n"
    assert not home.exists()
    code, out, _ = run(capsys, "--disable-plugin", "broken", "plugins", "--json")
    assert code == 0 and json.loads(out)["errors"] == []


# ---------------------------------------------------------------- list


def test_list_datasets(capsys):
    code, out, _ = run(capsys, "list", "datasets", "--long")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["name", "description", "default_eps"]
    names = [line.split()[0] for line in lines[2:]]
    assert {"digits", "mnist", "fashion-mnist", "cifar10", "imagenet"} <= set(names)
    assert names == sorted(names)
    code, out, _ = run(capsys, "list", "datasets", "--json")
    rows = {row["name"]: row for row in json.loads(out)}
    assert rows["digits"]["default_eps"] == 0.1 and rows["cifar10"]["default_eps"] == 0.03
    assert rows["digits"]["plugin"] == "digits" and rows["mnist"]["plugin"] == \
        "torchvision-datasets"


def test_list_attacks(capsys):
    code, out, _ = run(capsys, "list", "attacks", "--long")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["name", "description", "category", "threat_model", "norm",
                                "needs", "survey_table", "roles", "limits"]
    rows = {line.split()[0]: line for line in lines[2:]}
    assert {"fgsm", "pgd", "random-noise", "cw-l2", "square"} <= set(rows)
    start = lines[0].index("category")
    assert rows["fgsm"][start:].split()[:6] == ["evasion", "white-box", "inf", "gradients",
                                                "Table", "1"]
    assert rows["square"][start:].split()[:6] == ["evasion", "black-box", "inf", "scores",
                                                  "Table", "2"]
    code, out, _ = run(capsys, "list", "attacks", "--json")
    data = {row["name"]: row for row in json.loads(out)}
    roles, options = data["fgsm"].pop("roles"), data["fgsm"].pop("options")
    declared = data["fgsm"].pop("options_declared")
    assert data["fgsm"].pop("options_passthrough") is False
    assert roles == ["reference", "single-step"] and options == [] and declared is True
    assert data["fgsm"] == {
        "name": "fgsm", "description": data["fgsm"]["description"], "plugin": "fgsm",
        "threat_model": "white-box", "norm": "inf", "category": "evasion", "default_eps": None,
        "needs": ["gradients"], "bounded": True, "budget_images": None,
        "survey_table": "Table 1", "targeted": False, "limits": ""}
    assert data["cw-l2"]["bounded"] is False and data["cw-l2"]["budget_images"] == 100
    assert data["random-noise"]["plugin"] == "random-noise"
    assert data["random-noise"]["needs"] == []


def test_list_defenses(capsys):
    code, out, _ = run(capsys, "list", "defenses", "--long")
    assert code == 0
    assert out.splitlines()[0].split() == ["name", "description", "stage", "answers", "roles"]
    code, out, _ = run(capsys, "list", "defenses", "--json")
    data = {row["name"]: row for row in json.loads(out)}
    assert data["none"]["baseline"] is True and data["none"]["plugin"] == "standard-training"
    assert data["advtrain"]["baseline"] is False and data["advtrain"]["stage"] == "training"
    assert data["advtrain"]["answers"] == ["evasion"] and data["none"]["answers"] == ["(reference)"]


def test_list_models(capsys):
    code, out, _ = run(capsys, "list", "models")
    assert code == 0
    names = [line.split()[0] for line in out.splitlines()[:-1]]
    assert "paper-cnn" in names and "timm:<name>" in names and "timm" not in names
    code, out, _ = run(capsys, "list", "models", "--json")
    assert {"paper-cnn", "timm:<name>"} <= {row["name"] for row in json.loads(out)}


def test_list_model_variants(capsys):
    code, out, _ = run(capsys, "list", "models", "--variants", "timm")
    assert code == 0
    variants = out.splitlines()
    assert "timm:resnet18" in variants and len(variants) > 100
    assert all(v.startswith("timm:") for v in variants)
    code, out, _ = run(capsys, "list", "models", "--variants", "timm", "--json")
    assert code == 0 and json.loads(out) == variants
    code, out, err = run(capsys, "list", "models", "--variants", "paper-cnn")
    assert code == 2 and out == ""
    assert err == "harness: error: model 'paper-cnn' is not a family with variants\n"
    code, out, err = run(capsys, "list", "models", "--variants", "timmm")
    assert code == 2 and "unknown model 'timmm'. Did you mean: timm?" in err


def test_in_process_plugin_is_seen_by_the_cli(harness_plugin, capsys):
    class Extra:
        @hookimpl
        def harness_register_attacks(self, register):
            register(AttackSpec(name="cli-extra", description="an in-process attack",
                                build=lambda options: None, threat_model="black-box",
                                norm="2"))

    harness_plugin(Extra(), name="cli-extra-plugin")
    code, out, _ = run(capsys, "list", "attacks", "--json")
    assert code == 0
    rows = {row["name"]: row for row in json.loads(out)}
    assert rows["cli-extra"]["plugin"] == "cli-extra-plugin" and rows["cli-extra"]["norm"] == "2"


# ---------------------------------------------------------------- the console script


def test_console_script(tmp_path: Path, home: Path):
    script = Path(sysconfig.get_path("scripts")) / "harness"
    assert script.exists(), f"the console script is not installed in {script.parent}"
    env = {**os.environ, "HARNESS_HOME": str(home)}
    env.pop(DISABLE_ENV, None)
    done = subprocess.run([str(script), "list", "attacks"], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    names = [line.split()[0] for line in done.stdout.splitlines() if line.startswith("  ")]
    assert {"fgsm", "pgd", "random-noise"} <= set(names)
    assert not home.exists()


def test_unknown_disabled_plugin_stops_bench_and_warns_listings(capsys, home: Path):
    code, out, err = run(capsys, "--disable-plugin", "standard-trainin", *TINY)
    assert code == 2 and out == "" and not home.exists()
    assert "unknown plugin 'standard-trainin'. Did you mean: standard-training" in err
    code, out, err = run(capsys, "--disable-plugin", "nope", "list", "defenses")
    assert code == 0 and "advtrain" in out
    assert err.startswith("harness: warning: --disable-plugin: unknown plugin 'nope'")


def test_variants_only_for_models(capsys):
    code, _, err = run(capsys, "list", "attacks", "--variants", "timm")
    assert code == 2 and "harness list models --variants timm" in err
