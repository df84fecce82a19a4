"""Wall time of one CPU-bound grid under each executor, interleaved, cold cache each time;
Ray's own overhead per task; and the driver's throughput on 500 cheap cells.

Run from the repository root: ``.venv/bin/python benchmarks/executors.py [--rounds 2]
[--grid digits|mnist] [--no-cheap]`` (mnist: a 10,000-image subset of ../shared/data).
It prints a markdown table and the raw numbers as JSON. A benchmark, not a test: the
figures depend on the machine and on what else it is doing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GRID = ["--model", "paper-cnn,mlp", "--defense", "none,advtrain", "--attack", "fgsm,pgd,ifgsm",
        "--eps", "0.05,0.1"]
DATASETS = {"digits": ["--dataset", "digits"],
            "mnist": ["--dataset", "mnist", "--data-root", "../shared/data", "--n-train", "10000",
                      "--n-test", "1000", "--epochs", "5"]}
EXECUTORS = {"serial": [], "local": ["--executor", "local", "--workers", "2"],
             "ray": ["--executor", "ray", "--workers", "2"]}
# 250 eps x 2 defenses of an attack that costs almost nothing: the driver's own throughput.
CHEAP = ["--dataset", "digits", "--model", "paper-cnn", "--defense", "none,advtrain",
         "--attack", "random-noise", "--n-test", "10", "--epochs", "1", "--no-checks",
         "--eps", ",".join(f"{0.001 * (i + 1):.3f}" for i in range(250))]


def bench(args: list[str], home: Path, out: Path) -> float:
    """Seconds one ``harness bench`` takes, from a cold cache in ``home``."""
    env = {**os.environ, "HARNESS_HOME": str(home)}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "harness.cli", "bench", "--quiet", "--json", str(out),
                    *args], env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def numbers(path: Path) -> dict[str, tuple]:
    """Each cell's numbers in a results file (NaN as None)."""
    data = json.loads(path.read_text())
    return {r["cell_key"]: (r["status"], *(r["metrics"].get(k) for k in
                                           ("clean_acc", "robust_acc", "n_test")))
            for r in data["records"] if r["status"] != "n/a"}


def ray_task_overhead(n: int = 500) -> dict[str, float]:
    """Milliseconds per no-op Ray task, submitted at once and one after another."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)

    @ray.remote
    def noop(i: int) -> int:
        return i

    ray.get([noop.remote(i) for i in range(50)])          # warm the workers
    t0 = time.perf_counter()
    ray.get([noop.remote(i) for i in range(n)])
    batch = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    for i in range(100):
        ray.get(noop.remote(i))
    serial = (time.perf_counter() - t0) / 100
    ray.shutdown()
    return {"ms_per_task_batched": 1e3 * batch, "ms_per_task_round_trip": 1e3 * serial}


def main() -> int:
    """Run the rounds; print the table and the JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--grid", choices=sorted(DATASETS), default="digits")
    parser.add_argument("--no-cheap", action="store_true", help="skip the 500-cell and Ray runs")
    args = parser.parse_args()
    grid = DATASETS[args.grid] + GRID
    times: dict[str, list[float]] = {k: [] for k in EXECUTORS}
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for name, flags in EXECUTORS.items():
                out = Path(tmp) / f"{name}-{r}.json"
                times[name].append(bench(grid + flags, Path(tmp) / f"home-{name}-{r}", out))
                results[name] = numbers(out)
                print(f"round {r + 1} {name}: {times[name][-1]:.1f} s", file=sys.stderr)
        cheap = {}
        for name in () if args.no_cheap else ("serial", "ray"):
            out = Path(tmp) / f"cheap-{name}.json"
            seconds = bench(CHEAP + EXECUTORS[name], Path(tmp) / f"cheap-{name}", out)
            cheap[name] = {"seconds": seconds, "cells": len(numbers(out)),
                           "cells_per_s": len(numbers(out)) / seconds}
    overhead = {} if args.no_cheap else ray_task_overhead()
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"| executor | wall time (median of {args.rounds}, s) | speed-up over serial | "
          "same numbers as serial |")
    print("|---|---|---|---|")
    for name in EXECUTORS:
        same = results[name] == results["serial"]
        print(f"| {name} | {med[name]:.1f} ({', '.join(f'{t:.1f}' for t in times[name])}) | "
              f"{med['serial'] / med[name]:.2f}x | {'yes' if same else 'no'} |")
    print(json.dumps({"times": times, "cells": len(results["serial"]), "cheap": cheap,
                      "ray_overhead": overhead,
                      "cpus": os.cpu_count(), "load": os.getloadavg()}, indent=2,
                     default=lambda v: None if isinstance(v, float) and math.isnan(v) else v))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
