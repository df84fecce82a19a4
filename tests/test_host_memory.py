"""The host allocator setting: applied once per process on glibc, skippable, harmless."""

from __future__ import annotations

import subprocess
import sys

import pytest

CODE = ("import harness.util.host_memory as h; first = h.keep_large_blocks(); "
        "print(first, h.keep_large_blocks() == first)")


def _run(env_value: str | None) -> str:
    import os

    env = {k: v for k, v in os.environ.items() if k != "HARNESS_MALLOC"}
    if env_value is not None:
        env["HARNESS_MALLOC"] = env_value
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                         check=True, env=env)
    return out.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_raised_on_linux_once_and_kept_default_on_request():
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    assert _run(None) == "True True"
    assert _run("default") == "False True"
