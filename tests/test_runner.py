"""The runner: train once and reuse, record failures and go on, resume after an interrupt."""

from __future__ import annotations

import pickle
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import pytest

from harness.contracts.hookspecs import hookimpl
from harness.contracts.specs import AttackSpec
from harness.planning.loading import load_registry
from harness.planning.plan import BenchConfig, make_plan
from harness.results.store import ResultStore
from harness.run.model_cache import ModelCache
from harness.run.runner import Runner
from harness.run.work import WorkSetup, evaluate_cell, train_job
from harness.util.errors import UsageError

SMALL = dict(datasets=("digits",), models=("paper-cnn",), n_train=200, n_test=60, epochs=2,
             device="cpu", checks=False)


class Broken:
    def perturb(self, model, x, y, eps):
        raise RuntimeError("this attack always fails")


class BrokenAttackPlugin:
    @hookimpl
    def harness_register_attacks(self, register):
        register(AttackSpec(name="broken", description="always raises",
                            build=lambda options: Broken(), threat_model="white-box",
                            norm="inf"))


def _runner(home, registry=None, **overrides):
    config = BenchConfig(**{**SMALL, **overrides})
    return Runner(config, registry or load_registry(), ResultStore(home / "results.sqlite"),
                  ModelCache(home / "models"), show_progress=False, argv=["bench"])


def test_plan_trains_each_model_once_for_all_attacks_and_eps():
    config = BenchConfig(**{**SMALL, "attacks": ("fgsm", "pgd"), "eps": (0.05, 0.1, 0.2)})
    plan = make_plan(config, load_registry())
    assert [j.defense.name for j in plan.jobs] == ["none", "advtrain"]
    assert len(plan.cells) == 2 * 2 * 3
    assert len({c.key for c in plan.cells}) == 12
    assert all(len(plan.cells_of(j)) == 6 for j in plan.jobs)


def test_cache_key_covers_what_shapes_the_weights():
    registry = load_registry()
    base = make_plan(BenchConfig(**SMALL), registry).jobs[0].key
    for change in ({"epochs": 3}, {"seed": 1}, {"n_train": 201}, {"lr": 0.01}):
        assert make_plan(BenchConfig(**{**SMALL, **change}), registry).jobs[0].key != base
    same = make_plan(BenchConfig(**{**SMALL, "attacks": ("pgd",), "n_test": 10}), registry)
    assert same.jobs[0].key == base


def test_failed_cell_is_recorded_and_the_rest_goes_on(isolated_home, harness_plugin):
    registry = harness_plugin(BrokenAttackPlugin(), name="broken-attack")
    outcome = _runner(isolated_home, registry, attacks=("broken", "fgsm")).run()
    status = {(r.defense, r.attack): r.status for r in outcome.records}
    assert status == {("none", "broken"): "failed", ("none", "fgsm"): "ok",
                      ("advtrain", "broken"): "failed", ("advtrain", "fgsm"): "ok"}
    assert outcome.failed == [r for r in outcome.records if r.status == "failed"]
    assert all("this attack always fails" in r.error for r in outcome.failed)
    stored = ResultStore(isolated_home / "results.sqlite").latest_records()
    assert sorted(r.status for r in stored.records) == ["failed", "failed", "ok", "ok"]


def test_rerun_reuses_models_and_results(isolated_home):
    first = _runner(isolated_home).run()
    weights = sorted((isolated_home / "models").glob("*.safetensors"))
    assert len(weights) == 2
    mtimes = [w.stat().st_mtime_ns for w in weights]
    second = _runner(isolated_home).run()
    assert [r.run_id for r in second.records] == [first.run_id] * 2
    assert second.records == first.records and set(second.results.runs) == {first.run_id}
    assert [w.stat().st_mtime_ns for w in weights] == mtimes
    third = _runner(isolated_home, attacks=("pgd",)).run()  # new attack, same models
    assert {r.run_id for r in third.records} == {third.run_id}
    assert [w.stat().st_mtime_ns for w in weights] == mtimes


def test_interrupted_run_keeps_what_was_done_and_resumes(isolated_home, monkeypatch):
    from harness.run.evaluators import evasion

    calls = {"n": 0}
    real = evasion.evaluate_attack

    def interrupt_second(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(evasion, "evaluate_attack", interrupt_second)
    with pytest.raises(KeyboardInterrupt):
        _runner(isolated_home).run()
    assert calls["n"] == 2
    monkeypatch.setattr(evasion, "evaluate_attack", real)
    done = ResultStore(isolated_home / "results.sqlite").latest_records().records
    assert [(r.defense, r.status) for r in done] == [("none", "ok")]
    resumed = _runner(isolated_home).run()
    assert [r.defense for r in resumed.records] == ["none", "advtrain"]
    assert resumed.records[0] == done[0]  # reused, not recomputed
    assert resumed.records[1].run_id == resumed.run_id


def test_work_units_run_in_another_process_from_plain_inputs(isolated_home, tmp_path):
    config = BenchConfig(**{**SMALL, "attacks": ("fgsm", "pgd")})
    serial = _runner(isolated_home, attacks=("fgsm", "pgd")).run()
    plan = make_plan(config, load_registry())
    setup = WorkSetup(config, tmp_path / "worker-home")  # trains its own models
    assert pickle.loads(pickle.dumps(setup)) == setup
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        reports = [pool.submit(train_job, setup, job.key).result() for job in plan.jobs]
        records = {c.key: pool.submit(evaluate_cell, setup, c.key).result()
                   for c in plan.cells}
    assert [r.info["key_fields"] for r in reports] == [j.key_fields for j in plan.jobs]
    assert all(r.error is None and r.weights is None for r in reports)
    assert len(list((tmp_path / "worker-home" / "models").glob("*.safetensors"))) == 2
    assert len(serial.records) == len(records) == 4
    for record in serial.records:
        worked = records[record.cell_key]
        assert worked.status == "ok" and worked.run_id == ""  # the runner stamps the run
        assert (worked.dataset, worked.defense, worked.attack, worked.eps) == (
            record.dataset, record.defense, record.attack, record.eps)
        for name in ("clean_acc", "robust_acc", "n_test"):
            assert getattr(worked, name) == getattr(record, name), (record.cell_key, name)


def test_no_cache_forces_work(isolated_home):
    first = _runner(isolated_home, defenses=("none",)).run()
    again = _runner(isolated_home, defenses=("none",), no_cache=True).run()
    assert again.records[0].run_id == again.run_id != first.run_id


def test_bad_plugin_options_fail_before_any_training(isolated_home):
    with pytest.raises(UsageError, match="steps"):
        _runner(isolated_home, attacks=("pgd",), attack_options={"pgd": {"stepz": 3}}).run()
    assert not list((isolated_home / "models").glob("*"))


def test_checkpoints_are_safetensors_and_load_without_pickle(isolated_home, monkeypatch):
    import torch

    _runner(isolated_home, defenses=("none",), no_cache=False).run()
    files = list((isolated_home / "models").glob("*.safetensors"))
    assert len(files) == 1
    assert not list((isolated_home / "models").glob("*.partial.pt"))

    def no_pickle(*args, **kwargs):
        raise AssertionError("torch.load must not be used for finished checkpoints")

    monkeypatch.setattr(torch, "load", no_pickle)
    again = _runner(isolated_home, defenses=("none",), attacks=("pgd",)).run()
    assert again.records[0].status == "ok"


def test_cli_shows_failed_cells_and_exits_1(harness_plugin, capsys):
    from harness.cli import main

    harness_plugin(BrokenAttackPlugin(), name="broken-attack")
    code = main(["bench", "--no-checks", "--attack", "broken,fgsm", "--defense", "none",
                 "--n-train", "200",
                 "--n-test", "60", "--epochs", "1", "--quiet"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "FAILED: RuntimeError: this attack always fails" in out
    assert "| fgsm " in out and "1 of 2 cells failed" in err
