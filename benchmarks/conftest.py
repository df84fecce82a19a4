"""Fixtures and hooks of the throughput suite: threads, device, rounds and machine facts.

``HARNESS_BENCH_THREADS`` sets torch's thread count (default 1), ``HARNESS_BENCH_DEVICE`` the
device (default ``auto``: CUDA when present, else the CPU) and ``HARNESS_BENCH_WARMUP`` the
warm-up rounds each benchmark runs before its measured ones (default 1). The measured rounds
are ``--benchmark-min-rounds`` (pytest-benchmark's option, default 5) for a training epoch
and three times that for the shorter calls (floors, attacks, cells). The machine facts and
the command line go into the ``--benchmark-json`` output, which ``throughput_page.py`` reads.
"""

from __future__ import annotations

import os
import platform
import shlex
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import torch

from harness.util.devices import resolve_device, synchronize

THREADS_ENV = "HARNESS_BENCH_THREADS"
DEVICE_ENV = "HARNESS_BENCH_DEVICE"
WARMUP_ENV = "HARNESS_BENCH_WARMUP"
# The environment variables that change what is measured: shown in the recorded command.
RECORDED_ENV = (THREADS_ENV, DEVICE_ENV, WARMUP_ENV, "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                "CUDA_VISIBLE_DEVICES")
# Distributions whose versions the page shows.
DISTRIBUTIONS = ("torch", "torchvision", "timm", "adversarial-robustness-toolbox",
                 "torchattacks", "numpy", "pytest-benchmark")


def bench_threads() -> int:
    """Torch threads of the suite: ``$HARNESS_BENCH_THREADS``, else 1."""
    return int(os.environ.get(THREADS_ENV, "1"))


def warmup_rounds() -> int:
    """Unmeasured rounds before each benchmark's measured ones: ``$HARNESS_BENCH_WARMUP``,
    else 1."""
    return int(os.environ.get(WARMUP_ENV, "1"))


def bench_device() -> torch.device:
    """The device measured on: ``$HARNESS_BENCH_DEVICE`` (``auto`` by default)."""
    return resolve_device(os.environ.get(DEVICE_ENV, "auto"))


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what ``platform`` says)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def versions() -> dict[str, str]:
    """Installed version of each of :data:`DISTRIBUTIONS` ("not installed" when absent)."""
    found = {}
    for name in DISTRIBUTIONS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def portable(arg: str, root: Path) -> str:
    """A command-line argument without this machine's absolute paths: a path under ``root``
    becomes relative to it, any other absolute path keeps only its file name (also in
    ``--option=/path`` form)."""
    if "=" in arg and arg.startswith("-"):
        option, value = arg.split("=", 1)
        return f"{option}={portable(value, root)}"
    if not os.path.isabs(arg):
        return arg
    path = Path(arg)
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return path.name


def command_line(config: pytest.Config) -> str:
    """The command that ran this session, as a shell line without absolute paths."""
    root = Path(config.rootpath)
    env = [f"{k}={shlex.quote(os.environ[k])}" for k in RECORDED_ENV if k in os.environ]
    program = portable(sys.argv[0], root) if sys.argv else "pytest"
    if program.endswith("__main__.py"):
        program = "python -m pytest"
    args = [portable(a, root) for a in config.invocation_params.args]
    return " ".join([*env, program, shlex.join(args)])


def pytest_benchmark_update_machine_info(config: pytest.Config,
                                         machine_info: dict[str, Any]) -> None:
    """Record what the page shows about the machine: versions, threads, device, CPU."""
    device = bench_device()
    machine_info["harness"] = {
        "versions": versions(),
        "threads": bench_threads(),
        "warmup_rounds": warmup_rounds(),
        "device": device.type,
        "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                        else cpu_model()),
        "cpu_model": cpu_model(),
    }


def pytest_benchmark_update_json(config: pytest.Config, benchmarks: list,
                                 output_json: dict[str, Any]) -> None:
    """Record the command line that produced the JSON."""
    output_json["harness"] = {"command": command_line(config)}


@dataclass(frozen=True)
class BenchEnv:
    """The suite's device, threads and rounds."""

    device: torch.device
    threads: int
    rounds: int
    warmup_rounds: int


@pytest.fixture(scope="session")
def bench_env(pytestconfig: pytest.Config) -> Iterator[BenchEnv]:
    """Torch set to the suite's thread count for the session (restored afterwards)."""
    before = torch.get_num_threads()
    threads = bench_threads()
    torch.set_num_threads(threads)
    rounds = int(pytestconfig.getoption("benchmark_min_rounds", 5) or 5)
    yield BenchEnv(bench_device(), threads, rounds, warmup_rounds())
    torch.set_num_threads(before)


Measure = Callable[..., Any]

# Floors, attacks and cells take well under a second a call, so a shared machine's hiccups
# weigh more on them: they run this many times the measured rounds of a training epoch.
SHORT_CALL_ROUNDS = 3


@pytest.fixture
def measure(benchmark: Any, bench_env: BenchEnv) -> Measure:
    """``measure(fn, *, setting, key, label, kind, implementation, images, steps, setup=None,
    setting_label=...)``: time ``fn(*args)`` with pytest-benchmark's ``pedantic`` (warm-up
    rounds first, unmeasured; the device synchronized inside the timed call), record in
    ``extra_info`` what the page needs, and return ``fn``'s last result. ``setup`` (untimed)
    returns the arguments of each call.
    """

    def run(fn: Callable[..., Any], *, setting: str, setting_label: str, key: str, label: str,
            kind: str, implementation: str, images: int, steps: int,
            setup: Callable[[], tuple[tuple, Mapping[str, Any]]] | None = None) -> Any:
        benchmark.group = setting
        benchmark.extra_info.update(
            setting=setting, setting_label=setting_label, key=key, label=label, kind=kind,
            implementation=implementation, images=images, steps=steps,
            device=bench_env.device.type, threads=bench_env.threads)

        def timed(*args: Any, **kwargs: Any) -> Any:
            out = fn(*args, **kwargs)
            synchronize(bench_env.device)
            return out

        rounds = bench_env.rounds * (1 if kind == "epoch" else SHORT_CALL_ROUNDS)
        return benchmark.pedantic(timed, setup=setup, rounds=rounds,
                                  warmup_rounds=bench_env.warmup_rounds, iterations=1)

    return run
