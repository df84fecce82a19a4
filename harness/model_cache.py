"""Trained weights cached on disk by training key: safetensors plus a JSON sidecar.

Loading never unpickles objects: weights come from safetensors, partial training states
from ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model


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
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.weights_path(key).with_suffix(".tmp")
        save_model(model, str(tmp))
        os.replace(tmp, self.weights_path(key))
        tmp_info = self.info_path(key).with_suffix(".json.tmp")
        tmp_info.write_text(json.dumps(info, indent=2, sort_keys=True, default=str))
        os.replace(tmp_info, self.info_path(key))
        self.partial_path(key).unlink(missing_ok=True)

    def discard(self, key: str) -> None:
        """Forget everything cached for ``key`` (``--no-cache``)."""
        for path in (self.weights_path(key), self.info_path(key), self.partial_path(key)):
            path.unlink(missing_ok=True)
