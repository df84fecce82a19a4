"""Shared fixtures: an isolated HARNESS_HOME per test and the path of the real datasets."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Every test gets its own HARNESS_HOME, so no test reads or writes the user's cache."""
    home = tmp_path / "harness-home"
    monkeypatch.setenv("HARNESS_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the repository: real MNIST and Fashion-MNIST."""
    if not (SHARED_DATA / "MNIST" / "raw").is_dir():
        pytest.skip(f"real MNIST is not at {SHARED_DATA} (this checkout has no ../shared/data)")
    return SHARED_DATA
