"""The executors: local worker processes and Ray give exactly the serial numbers, survive a
worker killed mid-cell, refuse bad input before any work, and two drivers on one home train
each model once."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from harness.cli import main
from harness.contracts.records import ResultSet
from harness.planning.loading import load_registry
from harness.planning.plan import BenchConfig
from harness.results.store import ResultStore
from harness.run.executors import ExecutorOptions, make_executor
from harness.run.model_cache import ModelCache
from harness.run.runner import Runner

# Square draws from NumPy's global generator (as many ART attacks do): the per-cell seeding
# makes it give the same numbers in every executor.
GRID = BenchConfig(datasets=("digits",), models=("paper-cnn", "mlp"),
                   attacks=("fgsm", "pgd", "square"), defenses=("none", "advtrain"), n_train=300,
                   n_test=60, epochs=2, device="cpu", checks=False,
                   attack_options={"square": {"max_iter": 20}})
NUMBERS = ("status", "clean_acc", "robust_acc", "attack_success_rate", "mean_linf", "mean_l2",
           "n_test", "median_l2")


def _run(home: Path, executor: str, config: BenchConfig = GRID, registry=None, workers=2):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)    # the workers run one thread each: the same arithmetic
    try:
        runner = Runner(config, registry or load_registry(), ResultStore(home / "r.sqlite"),
                        ModelCache(home / "models"), show_progress=False,
                        executor=make_executor(ExecutorOptions(
                            executor, workers if executor != "serial" else None)))
        return {r.cell_key: r for r in runner.run().records}
    finally:
        torch.set_num_threads(threads)


def _numbers(records) -> dict:
    """The numbers of each cell (NaN as None, so that equal records compare equal)."""
    def plain(v):
        return None if isinstance(v, float) and math.isnan(v) else v

    return {k: (r.status, *(plain(r.value(n)) for n in NUMBERS[1:]))
            + (r.metrics.get("stored_robust_acc"),) for k, r in records.items()}


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("serial"), "serial")


def test_local_workers_give_the_serial_numbers_cell_by_cell(serial, tmp_path):
    local = _run(tmp_path, "local")
    assert len(serial) == 12 and all(r.ok for r in serial.values())
    assert _numbers(local) == _numbers(serial)
    workers = {r.config["worker"] for r in local.values()}
    assert len(workers) >= 1 and all(str(os.getpid()) not in w for w in workers)


def test_ray_tasks_give_the_serial_numbers_cell_by_cell(serial, tmp_path):
    pytest.importorskip("ray")
    ray_records = _run(tmp_path, "ray")
    assert _numbers(ray_records) == _numbers(serial)
    assert all(str(os.getpid()) not in r.config["worker"] for r in ray_records.values())


KILLER = """
'''An attack that kills its own worker process the first time it runs (a test plugin).'''
import os
import signal
from pathlib import Path

from harness.contracts.hookspecs import hookimpl
from harness.contracts.options import options
from harness.contracts.specs import AttackSpec

MARK = Path({mark!r})


class Killer:
    def perturb(self, model, x, y, eps):
        if not MARK.exists():
            MARK.write_text("killed once")
            os.kill(os.getpid(), signal.SIGKILL)
        return (x + eps).clamp(0, 1)


@hookimpl
def harness_register_attacks(register):
    register(AttackSpec(name="killer", description="kills its worker once",
                        build=lambda o: Killer(), threat_model="white-box", norm="inf",
                        options=options()))
"""


def test_a_worker_killed_mid_cell_is_replaced_and_the_table_is_unchanged(
        tmp_path, monkeypatch, harness_plugin):
    mark = tmp_path / "mark"
    (tmp_path / "harness_killer_plugin.py").write_text(textwrap.dedent(KILLER.format(
        mark=str(mark))))
    monkeypatch.syspath_prepend(str(tmp_path))
    import harness_killer_plugin

    registry = harness_plugin(harness_killer_plugin)
    config = BenchConfig(datasets=("digits",), models=("paper-cnn",),
                         attacks=("fgsm", "killer"), defenses=("none",), n_train=200,
                         n_test=40, epochs=1, device="cpu", checks=False)
    disturbed = _run(tmp_path / "a", "local", config, registry)
    assert mark.exists()                      # a worker did die in the middle of a cell
    undisturbed = _run(tmp_path / "b", "serial", config, registry)
    assert _numbers(disturbed) == _numbers(undisturbed)
    assert all(r.ok for r in disturbed.values())


@pytest.mark.parametrize(("argv", "message"), [
    (["--executor", "local", "--workers", "0"], "--workers must be at least 1"),
    (["--executor", "local", "--gpus-per-task", "0.5"], "this run has no GPU"),
    (["--executor", "ray", "--gpus-per-task", "1.5"], "--gpus-per-task must be in (0, 1]"),
    (["--workers", "2"], "--workers needs a parallel executor"),
    (["--executor", "ray", "--ray-address", "127.0.0.1:9"], "nothing answers at 127.0.0.1:9"),
])
def test_bad_executor_input_is_one_line_before_any_work(argv, message, capsys, tmp_path,
                                                        monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("HARNESS_HOME", str(home))
    assert main(["bench", "--quiet", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not home.exists()


def test_ray_missing_is_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    monkeypatch.setitem(sys.modules, "ray", None)     # `import ray` raises ImportError
    assert main(["bench", "--quiet", "--executor", "ray"]) == 2
    assert "pip install 'robustness-harness[ray]'" in capsys.readouterr().err
    assert not (tmp_path / "home").exists()


def test_two_drivers_on_one_home_train_each_model_once(tmp_path):
    env = {**os.environ, "HARNESS_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "harness.cli", "bench", "--quiet", "--no-checks",
            "--n-train", "300", "--n-test", "50", "--epochs", "3", "--attack", "fgsm"]
    runs = [subprocess.Popen([*argv, "--json", str(tmp_path / f"{i}.json")], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for i in range(2)]
    for run in runs:
        _, err = run.communicate(timeout=600)
        assert run.returncode == 0, err
    results = [ResultSet.from_json((tmp_path / f"{i}.json").read_text()) for i in range(2)]
    trained = [{r.train_key: r.train_seconds for r in rs.records} for rs in results]
    # the second driver waited for the first one's model and loaded it: the same report
    assert trained[0] == trained[1] and len(trained[0]) == 2
    numbers = [{r.cell_key: (r.clean_acc, r.robust_acc) for r in rs.records} for rs in results]
    assert numbers[0] == numbers[1]
    assert not list((tmp_path / "home" / "models").glob("*.tmp"))
    assert json.loads((tmp_path / "0.json").read_text())["format"] == "harness-results/3"


FLAKY = """
'''Attacks for the fault tests: one raises, one runs out of GPU memory above 16 images.'''
import torch

from harness.contracts.hookspecs import hookimpl
from harness.contracts.options import options
from harness.contracts.specs import AttackSpec


class Raises:
    def perturb(self, model, x, y, eps):
        raise RuntimeError("this attack is broken")


class Greedy:
    def perturb(self, model, x, y, eps):
        if len(x) > 16:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return (x + eps).clamp(0, 1)


@hookimpl
def harness_register_attacks(register):
    for name, cls in (("raises", Raises), ("greedy", Greedy)):
        register(AttackSpec(name=name, description="a fault test", build=lambda o, c=cls: c(),
                            threat_model="white-box", norm="inf", options=options()))
"""


@pytest.fixture
def flaky(tmp_path, monkeypatch, harness_plugin):
    (tmp_path / "harness_flaky_plugin.py").write_text(textwrap.dedent(FLAKY))
    monkeypatch.syspath_prepend(str(tmp_path))
    import harness_flaky_plugin

    return harness_plugin(harness_flaky_plugin)


def test_a_failing_cell_is_recorded_and_announced_with_its_worker(flaky, tmp_path, capsys):
    config = BenchConfig(datasets=("digits",), models=("paper-cnn",), attacks=("fgsm", "raises"),
                         defenses=("none",), n_train=200, n_test=40, epochs=1, device="cpu",
                         checks=False)
    runner = Runner(config, flaky, ResultStore(tmp_path / "r.sqlite"),
                    ModelCache(tmp_path / "models"), show_progress=False,
                    executor=make_executor(ExecutorOptions("local", 2)))
    records = {r.attack: r for r in runner.run().records}
    assert records["fgsm"].ok and records["raises"].status == "failed"
    assert "this attack is broken" in records["raises"].error
    worker = records["raises"].config["worker"]
    err = capsys.readouterr().err
    assert f"digits/paper-cnn/none/raises eps 0.1 failed on {worker}" in err


def test_out_of_gpu_memory_is_retried_once_at_half_the_batch(flaky, tmp_path):
    config = BenchConfig(datasets=("digits",), models=("paper-cnn",), attacks=("greedy",),
                         defenses=("none",), n_train=200, n_test=40, epochs=1, device="cpu",
                         checks=False, attack_batch_size=32)
    runner = Runner(config, flaky, ResultStore(tmp_path / "r.sqlite"),
                    ModelCache(tmp_path / "models"), show_progress=False)
    (record,) = runner.run().records
    assert record.ok and record.n_test == 40
    assert record.config["oom_retry"] == {"attack_batch_size": 16, "was": 32}
