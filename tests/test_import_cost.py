"""Registration stays cheap: listing the plugins imports no heavy library.

``harness list ...`` and ``harness plugins`` register every built-in plugin; a plugin that
imports torch (or NumPy, ART, ...) at the top of its module makes them cost seconds instead
of a fraction of one. Each command runs in a fresh interpreter, which then reports the heavy
modules it imported. Plugins of other installed distributions are disabled there, so only
this project's built-ins are judged.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from harness.planning.loading import DISABLE_ENV

HEAVY = ("torch", "numpy", "art", "sklearn", "timm", "safetensors", "scipy", "PIL",
         "torchvision", "matplotlib")

# Runs the command's main() with its output discarded, then prints the heavy modules loaded.
PROBE = """
import contextlib, io, json, sys
command, heavy = json.loads(sys.argv[1]), json.loads(sys.argv[2])
sys.argv = ["harness", *command]
from harness.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & set(heavy))))
"""


def _other_distributions_plugins() -> str:
    """``DIST:NAME`` of every harness entry point that another distribution installs."""
    return ",".join(f"{ep.dist.name}:{ep.name}" for ep in entry_points(group="harness")
                    if ep.dist is not None and ep.dist.name != "robustness-harness")


@pytest.mark.parametrize("command", [["list", "attacks"], ["plugins"], ["list", "models"],
                                     ["list", "defenses"], ["list", "datasets"]],
                         ids=" ".join)
def test_listing_imports_no_heavy_library(command: list[str]):
    env = {**os.environ, DISABLE_ENV: _other_distributions_plugins()}
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(command), json.dumps(HEAVY)],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    imported = json.loads(done.stdout.strip().splitlines()[-1])
    assert imported == [], (f"harness {' '.join(command)} imported {imported}: a plugin (or a "
                            "module it imports at registration) imports it at the top; import "
                            "it where the plugin builds or runs something")
