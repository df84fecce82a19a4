"""Trained weights cached on disk by training key: safetensors plus a JSON sidecar.

Loading never unpickles objects: weights come from safetensors, partial training states
from ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model

from harness.files import atomic_write


class ModelCache:
    """``<root>/<key>.safetensors`` (weights), ``<key>.json`` (report), ``<key>.partial.pt``."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def weights_path(self, key: str) -> Path:
        """Where the finished weights of ``key`` live."""
        return self.root / f"{key}.safetensors"

    def info_path(self, key: str) -> Path:
        """Where the training report of ``key`` lives."""
        return self.root / f"{key}.json"

    def partial_path(self, key: str) -> Path:
        """Where an unfinished training of ``key`` keeps its state between epochs."""
        return self.root / f"{key}.partial.pt"

    def has(self, key: str) -> bool:
        """Whether finished weights and report exist for ``key``."""
        return self.weights_path(key).exists() and self.info_path(key).exists()

    def load(self, key: str, model: torch.nn.Module, device: torch.device) -> dict[str, Any]:
        """Load cached weights into ``model``; return the stored training report."""
        load_model(model, self.weights_path(key), device=str(device))
        return json.loads(self.info_path(key).read_text())

    def save(self, key: str, model: torch.nn.Module, info: dict[str, Any]) -> None:
        """Store ``model``'s weights and ``info`` atomically; drop the partial state."""
        with atomic_write(self.weights_path(key)) as tmp:
            save_model(model, str(tmp))
        self._write_info(key, info)
        self.partial_path(key).unlink(missing_ok=True)

    def _write_info(self, key: str, info: dict[str, Any]) -> None:
        with atomic_write(self.info_path(key)) as tmp:
            tmp.write_text(json.dumps(info, indent=2, sort_keys=True, default=str))

    def lock_path(self, key: str) -> Path:
        """The lock held while ``key`` is trained (one process trains a model at a time)."""
        return self.root / f"{key}.lock"

    def export(self, key: str) -> tuple[bytes, dict[str, Any]]:
        """The finished weights (safetensors bytes) and report of ``key``, to ship to a
        machine that does not share this folder."""
        return self.weights_path(key).read_bytes(), json.loads(self.info_path(key).read_text())

    def put(self, key: str, weights: bytes, info: dict[str, Any]) -> None:
        """Store weights and report shipped from another machine (see :meth:`export`)."""
        with atomic_write(self.weights_path(key)) as tmp:
            tmp.write_bytes(weights)
        self._write_info(key, info)

    def discard(self, key: str) -> None:
        """Forget everything cached for ``key`` (``--no-cache``)."""
        for path in (self.weights_path(key), self.info_path(key), self.partial_path(key)):
            path.unlink(missing_ok=True)
