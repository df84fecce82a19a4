"""The plugin-author tutorial is tested: its code is the example package
examples/harness-stripes, whose own test suite passes (uninstalled, as a new author's
checkout would), and every longer code block of docs/plugin-authors.md is verbatim from it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "harness-stripes"
DOC = ROOT / "docs" / "plugin-authors.md"


def test_the_tutorial_package_passes_its_own_tests(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(EXAMPLE / "src"), "HARNESS_HOME": str(tmp_path),
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(EXAMPLE / "tests")], env=env, capture_output=True, text=True,
                          timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert " passed" in done.stdout


def test_the_tutorial_shows_the_tested_code():
    sources = "\n".join(p.read_text() for p in sorted(EXAMPLE.rglob("*"))
                        if p.suffix in (".py", ".toml"))
    blocks = re.findall(r"```(python|toml)\n(.*?)```", DOC.read_text(), re.S)
    long_blocks = [code for _, code in blocks if code.count("\n") >= 10]
    assert len(long_blocks) >= 8
    for code in long_blocks:
        assert code.strip() in sources, f"not in examples/harness-stripes:\n{code[:300]}"
