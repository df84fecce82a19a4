"""Hardening (issue 13, classes 2 and 8): several ``harness bench`` sharing one store never
store a cell twice; a third-party plugin named like a built-in can be disabled on its own."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from importlib.metadata import Distribution, EntryPoint, entry_points
from pathlib import Path

import pytest

from harness.cli import main
from harness.contracts.records import Result
from harness.planning.loading import DISABLE_ENV, load_registry, unknown_disabled
from harness.results.store import ResultStore
from harness.testing.records import make_record
from harness.util.errors import PluginError

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--dataset", "digits", "--model", "paper-cnn", "--defense", "none",
        "--n-train", "300", "--n-test", "50", "--epochs", "2", "--device", "cpu", "--quiet",
        "--format", "markdown"]
DUPLICATES = ("SELECT cell_key, COUNT(*) FROM results WHERE status = 'ok' "
              "GROUP BY cell_key HAVING COUNT(*) > 1")


@pytest.fixture(autouse=True)
def _no_disabled_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """A HARNESS_DISABLE_PLUGINS set in the caller's environment must not change the tests."""
    monkeypatch.delenv(DISABLE_ENV, raising=False)


# ---------------------------------------------------------------- class 2: one cell, one record


def _record(cell_key: str, run_id: str, status: str = "ok", robust_acc: float = 0.5) -> Result:
    return make_record(cell_key=cell_key, train_key="t1", run_id=run_id, dataset="digits",
                  model="paper-cnn", defense="none", attack="fgsm", eps=0.1, status=status,
                  robust_acc=robust_acc, created_at="2026-01-01T00:00:00+00:00", config={})


def _store_with_runs(path: Path, *run_ids: str) -> ResultStore:
    store = ResultStore(path)
    with store.conn:
        for run_id in run_ids:
            store.conn.execute("INSERT INTO runs(run_id, started_at, metadata) VALUES (?, ?, ?)",
                               (run_id, "t", json.dumps({"run": run_id})))
    return store


def test_a_second_ok_record_of_a_cell_is_not_stored_and_the_stored_one_comes_back(tmp_path):
    store = _store_with_runs(tmp_path / "r.sqlite", "first", "second")
    assert store.add_result(_record("c1", "first", robust_acc=0.25)) is None
    stored = store.add_result(_record("c1", "second", robust_acc=0.75))
    assert stored is not None
    assert stored.record.run_id == "first" and stored.record.robust_acc == 0.25
    assert stored.metadata == {"run": "first"}
    assert store.conn.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 1
    assert not store.conn.in_transaction     # nothing left open for the next writer


def test_failed_records_may_repeat_and_an_ok_one_follows_them(tmp_path):
    store = _store_with_runs(tmp_path / "r.sqlite", "first", "second", "third")
    assert store.add_result(_record("c1", "first", status="failed")) is None
    assert store.add_result(_record("c1", "second", status="failed")) is None
    assert store.add_result(_record("c1", "third")) is None
    rows = store.conn.execute("SELECT status, run_id FROM results ORDER BY id").fetchall()
    assert [tuple(r) for r in rows] == [("failed", "first"), ("failed", "second"),
                                        ("ok", "third")]


def test_replace_result_keeps_one_ok_record_the_new_one(tmp_path):
    store = _store_with_runs(tmp_path / "r.sqlite", "first", "second")
    store.add_result(_record("c1", "first", robust_acc=0.25))
    store.replace_result(_record("c1", "second", robust_acc=0.75))
    rows = store.conn.execute(
        "SELECT run_id, json_extract(metrics, '$.robust_acc') FROM results").fetchall()
    assert [tuple(r) for r in rows] == [("second", 0.75)]


def test_no_cache_rerun_replaces_the_stored_cell(isolated_home, tmp_path, capsys):
    args = ["bench", *TINY, "--attack", "fgsm", "--no-checks"]
    assert main([*args, "--json", str(tmp_path / "a.json")]) == 0
    assert main([*args, "--no-cache", "--json", str(tmp_path / "b.json")]) == 0
    capsys.readouterr()
    first, again = (json.loads((tmp_path / f"{n}.json").read_text())["records"] for n in "ab")
    assert first[0]["run_id"] != again[0]["run_id"]
    conn = sqlite3.connect(isolated_home / "results.sqlite")
    rows = conn.execute("SELECT run_id FROM results WHERE status = 'ok'").fetchall()
    assert rows == [(again[0]["run_id"],)]


def _bench_concurrently(home: Path, attacks: list[str]) -> list[dict]:
    """Start one ``harness bench`` per entry of ``attacks`` at once on one HARNESS_HOME;
    return each one's ``--json``."""
    home.mkdir()
    env = {**os.environ, "HARNESS_HOME": str(home), "OMP_NUM_THREADS": "1"}
    env.pop(DISABLE_ENV, None)
    procs = [subprocess.Popen([sys.executable, "-m", "harness.cli", "bench", *TINY,
                               "--attack", attack, "--json", str(home / f"out-{i}.json")],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
             for i, attack in enumerate(attacks)]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    return [json.loads((home / f"out-{i}.json").read_text()) for i in range(len(attacks))]


@pytest.mark.parametrize("attacks", [["fgsm", "fgsm,pgd"],
                                     ["fgsm", "fgsm", "fgsm,pgd", "fgsm,pgd"]],
                         ids=["2-processes", "4-processes"])
def test_concurrent_benches_store_each_cell_once_and_report_the_stored_one(tmp_path, attacks):
    home = tmp_path / "home"
    outputs = _bench_concurrently(home, attacks)
    conn = sqlite3.connect(home / "results.sqlite")
    assert conn.execute(DUPLICATES).fetchall() == []
    stored = {row[0]: row[1] for row in conn.execute(
        "SELECT cell_key, run_id FROM results WHERE status = 'ok'")}
    runs = {row[0]: json.loads(row[1]) for row in conn.execute("SELECT run_id, metadata FROM runs")}
    by_cell: dict[str, list[dict]] = {}
    trained: dict[str, set[float]] = {}
    for output in outputs:
        for record in output["records"]:
            assert record["status"] == "ok"
            by_cell.setdefault(record["cell_key"], []).append(record)
            trained.setdefault(record["train_key"], set()).add(record["timings"]["train_seconds"])
            # The record is the stored one, with the metadata of the run that stored it.
            assert record["run_id"] == stored[record["cell_key"]]
            assert output["runs"][record["run_id"]] == runs[record["run_id"]]
    assert set(by_cell) == set(stored)
    # fgsm at eps 0.1 plus the automatic check cell (pgd at 0.5) are in every plan; the
    # 'fgsm,pgd' runs add pgd at 0.1.
    assert len(stored) == 3 and sum(len(v) > 1 for v in by_cell.values()) >= 2
    for records in by_cell.values():
        assert all(r == records[0] for r in records), records[0]["cell_key"]
    # One model, trained once: the same train_seconds in every output.
    assert len(trained) == 1 and all(len(seconds) == 1 for seconds in trained.values())


# ---------------------------------------------------------------- class 8: DIST:NAME


THIRD_PARTY_FGSM = """
from harness.contracts.hookspecs import hookimpl
from harness.contracts.specs import AttackSpec

@hookimpl
def harness_register_attacks(register):
    register(AttackSpec(name="foo-fgsm", description="a third-party attack",
                        build=lambda options: None, threat_model="white-box", norm="inf"))
"""


def _third_party_fgsm(modules: Path, dists: Path, module: str) -> EntryPoint:
    """Write ``module`` into ``modules`` and the ``.dist-info`` of distribution
    ``harness-foo 1.0`` into ``dists``: its entry point in group ``harness`` is named
    ``fgsm`` like the built-in."""
    modules.mkdir(parents=True, exist_ok=True)
    (modules / f"{module}.py").write_text(textwrap.dedent(THIRD_PARTY_FGSM))
    info = dists / "harness_foo-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: harness-foo\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[harness]\nfgsm = {module}\n")
    (ep,) = Distribution.at(info).entry_points.select(group="harness")
    return ep


@pytest.fixture
def third_party(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The entry point ``fgsm`` of ``harness-foo`` (its module importable, its distribution
    outside sys.path so that only ``entry_point_source`` lists it), removed after."""
    module = f"harness_foo_fgsm_{tmp_path.name.replace('-', '_')}"
    monkeypatch.syspath_prepend(str(tmp_path / "modules"))
    yield _third_party_fgsm(tmp_path / "modules", tmp_path / "dists", module)
    sys.modules.pop(module, None)


def _with(ep: EntryPoint):
    return lambda: [*entry_points(group="harness"), ep]


def test_a_name_shared_with_a_builtin_is_an_error_that_names_the_qualified_form(third_party):
    with pytest.raises(PluginError, match="another installed plugin is also named 'fgsm'") as info:
        load_registry(entry_point_source=_with(third_party))
    assert str(info.value).endswith("to disable only this one: --disable-plugin harness-foo:fgsm")


@pytest.mark.parametrize("qualified", ["harness-foo:fgsm", "Harness_Foo:fgsm"])
def test_disabling_dist_name_keeps_the_builtin(third_party, qualified):
    registry = load_registry(disabled=[qualified], entry_point_source=_with(third_party))
    assert registry.attack("fgsm").plugin.distribution == "robustness-harness"
    assert "foo-fgsm" not in registry.names("attack")
    assert third_party.module not in sys.modules     # never even imported


def test_disabling_the_builtin_by_dist_name_keeps_the_third_party_one(third_party):
    registry = load_registry(disabled=["robustness-harness:fgsm"],
                             entry_point_source=_with(third_party))
    assert "fgsm" not in registry.names("attack")
    assert registry.attack("foo-fgsm").plugin.distribution == "harness-foo"
    assert "pgd" in registry.names("attack")


def test_a_bare_name_still_disables_every_plugin_of_that_name(third_party):
    registry = load_registry(disabled=["fgsm"], entry_point_source=_with(third_party))
    assert not {"fgsm", "foo-fgsm"} & set(registry.names("attack"))
    assert "pgd" in registry.names("attack")


def test_unknown_disabled_accepts_the_qualified_form_and_suggests_for_a_wrong_one(third_party):
    source = _with(third_party)
    assert unknown_disabled(["harness-foo:fgsm", "robustness-harness:fgsm", "fgsm",
                             "harness_foo:fgsm"], source) == []
    (typo,) = unknown_disabled(["harness-fo:fgsm"], source)
    assert typo.startswith("unknown plugin 'harness-fo:fgsm'. Did you mean: harness-foo:fgsm")
    (other,) = unknown_disabled(["harness-foo:pgd"], source)  # pgd is not harness-foo's
    assert other.startswith("unknown plugin 'harness-foo:pgd'.")
    assert "robustness-harness:pgd" in other
    (bare,) = unknown_disabled(["fgsn"], source)
    assert "Did you mean: fgsm" in bare


@pytest.fixture
def installed_third_party(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``harness-foo`` installed for this process: its folder on sys.path, so that
    ``importlib.metadata.entry_points`` (what the CLI reads) lists its ``fgsm``."""
    module = f"harness_foo_fgsm_{tmp_path.name.replace('-', '_')}"
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    ep = _third_party_fgsm(tmp_path / "site", tmp_path / "site", module)
    assert any(e.value == module for e in entry_points(group="harness", name="fgsm"))
    yield ep
    sys.modules.pop(module, None)


def test_cli_runs_with_the_builtin_once_the_third_party_one_is_disabled(
        installed_third_party, tmp_path, monkeypatch, capsys):
    args = ["bench", *TINY, "--attack", "fgsm", "--no-checks", "--json", str(tmp_path / "out.json")]
    assert main(args) != 0
    err = capsys.readouterr().err
    assert "another installed plugin is also named 'fgsm'" in err
    assert "--disable-plugin harness-foo:fgsm" in err
    assert main(["--disable-plugin", "harness-fo:fgsm", *args]) == 2
    assert "Did you mean: harness-foo:fgsm" in capsys.readouterr().err
    monkeypatch.setenv(DISABLE_ENV, "harness-foo:fgsm")
    assert main(args) == 0
    capsys.readouterr()
    (record,) = json.loads((tmp_path / "out.json").read_text())["records"]
    assert record["attack"] == "fgsm" and record["status"] == "ok"
    assert installed_third_party.module not in sys.modules
