"""A re-run whose cells are all stored does no work: it loads no data, builds no model or
attack and does not even import torch; it prints the same table."""

from __future__ import annotations

import os
import subprocess
import sys

COMMAND = ["bench", "--dataset", "digits", "--model", "paper-cnn", "--defense", "none",
           "--attack", "fgsm", "--n-train", "120", "--n-test", "20", "--epochs", "1",
           "--quiet", "--format", "markdown"]

# Runs the command like the `harness` script does, then names the heavy modules it imported.
PROBE = """
import sys
from harness.cli import main
code = main(sys.argv[1:])
heavy = sorted(m for m in ("torch", "numpy", "safetensors", "art", "sklearn", "timm")
               if m in sys.modules)
print("IMPORTED:" + ",".join(heavy), file=sys.stderr)
sys.exit(code)
"""


def _run(home, probe: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "HARNESS_HOME": str(home), "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-c", PROBE, *COMMAND] if probe else \
        [sys.executable, "-m", "harness.cli", *COMMAND]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)


def _table(stdout: str) -> str:
    """The page without its provenance (the runs' timestamps differ)."""
    return stdout.split("## Provenance")[0]


def test_a_fully_stored_rerun_imports_no_torch_and_prints_the_same_table(tmp_path):
    cold = _run(tmp_path)
    assert cold.returncode == 0, cold.stderr
    again = _run(tmp_path, probe=True)
    assert again.returncode == 0, again.stderr
    assert "IMPORTED:\n" in again.stderr, again.stderr      # none of the heavy modules
    assert _table(again.stdout) == _table(cold.stdout)
