"""What produced a result: versions of harness, every plugin and library, hardware, commit."""

from __future__ import annotations

import datetime as dt
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.planning.registry import Registry
from harness.util.version import __version__

if TYPE_CHECKING:
    import torch

LIBRARIES = ("torch", "torchvision", "timm", "adversarial-robustness-toolbox", "pyautoattack",
             "numpy", "scikit-learn", "pluggy")


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries results depend on."""
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_commit() -> str | None:
    """The commit of the harness source tree (``+dirty`` when it has changes), if it is a repo."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty.strip() else "")


def now() -> str:
    """UTC timestamp, ISO 8601, to the second."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def run_metadata(registry: Registry, device: torch.device | None, config: dict[str, Any],
                 argv: list[str] | None = None) -> dict[str, Any]:
    """Everything needed to say what produced a run's results. ``device`` None: the run
    computed nothing (every cell was stored), so no device was set up (nor torch imported)."""
    return {
        "harness": __version__,
        "plugins": {name: f"{r.info.distribution} {r.info.version}"
                    for name, r in sorted(registry.plugins.items())},
        "libraries": library_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        **_device_fields(device),
        "seed": config.get("seed"),
        "git_commit": git_commit(),
        "config": config,
        "command": " ".join(["harness", *(argv if argv is not None else sys.argv[1:])]),
        "timestamp": now(),
    }


def peak_memory() -> dict[str, Any]:
    """This process's peak memory so far, in MiB: ``host`` (the largest resident set of this
    process and of the processes it waited for; None where the platform cannot say) and
    ``gpu`` (the most tensor memory torch held on any CUDA device; only when CUDA was
    used)."""
    out: dict[str, Any] = {"host": None}
    try:
        import resource
    except ImportError:     # not POSIX
        return out
    kib = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
              resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    scale = 1024 if sys.platform == "darwin" else 1   # bytes on macOS, KiB on Linux
    out["host"] = round(kib / 1024 / scale, 1)
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        out["gpu"] = round(max(torch.cuda.max_memory_allocated(i)
                               for i in range(torch.cuda.device_count())) / 2 ** 20, 1)
    return out


def _device_fields(device: torch.device | None) -> dict[str, Any]:
    """The run's device, its hardware name and CUDA version (None each without a device)."""
    if device is None:
        return {"device": None, "device_name": None, "cuda": None}
    import torch

    from harness.util.devices import device_name

    return {"device": str(device), "device_name": device_name(device),
            "cuda": torch.version.cuda if device.type == "cuda" else None}
