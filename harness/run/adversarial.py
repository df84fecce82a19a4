"""Adversarial examples kept on disk per cell, re-checked after saving, and a few for pictures.

Every evasion cell saves its adversarial examples (safetensors, no pickling) under
``<home>/adversarial/<cell key>.safetensors``; the runner reloads them and recomputes the
robust accuracy, which the "stored examples" check compares with the reported number. A
handful of examples per cell (8-bit, for display only) travel with the record, so
``harness leaderboard`` can draw the example grid from committed results.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from harness.util.files import atomic_write

N_EXAMPLES = 4


class AdversarialStore:
    """``<root>/<cell key>.safetensors`` with tensors ``x_adv`` and ``y``."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        """Where the adversarial examples of cell ``key`` live."""
        return self.root / f"{key}.safetensors"

    def save(self, key: str, x_adv: torch.Tensor, y: torch.Tensor) -> Path:
        """Write the examples atomically; return the path."""
        with atomic_write(self.path(key)) as tmp:
            save_file({"x_adv": x_adv.detach().cpu().contiguous(),
                       "y": y.detach().cpu().contiguous()}, str(tmp))
        return self.path(key)

    def load(self, key: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The stored ``(x_adv, y)`` of cell ``key`` on ``device``."""
        tensors = load_file(str(self.path(key)), device=str(device))
        return tensors["x_adv"], tensors["y"]


def encode_pixels(x: torch.Tensor) -> str:
    """Images (float in [0, 1], or uint8) as 8-bit pixels in base64, for display only."""
    pixels = x if x.dtype == torch.uint8 else (   # uint8: as held (contracts.data.ImageData)
        (x.detach().clamp(0, 1) * 255).round().to(torch.uint8))
    return base64.b64encode(pixels.cpu().contiguous().numpy().tobytes()).decode("ascii")


def examples(x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor, pred: torch.Tensor,
             pred_adv: torch.Tensor, n: int = N_EXAMPLES,
             class_names: Sequence[str] = ()) -> dict[str, Any]:
    """The first ``n`` images before and after the attack, with labels and predictions (and
    the dataset's ``class_names``, when it has them, for the figures' titles).

    Images are stored as 8-bit pixels (base64) for display; predictions are those of the
    float examples the cell measured.
    """
    n = min(n, len(x))
    out = {"shape": list(x[:n].shape), "x": encode_pixels(x[:n]), "x_adv": encode_pixels(x_adv[:n]),
           "y": y[:n].tolist(), "pred": pred[:n].tolist(), "pred_adv": pred_adv[:n].tolist()}
    if class_names:
        out["class_names"] = list(class_names)
    return out


def decode(examples_record: dict[str, Any], which: str) -> np.ndarray:
    """The float images in [0, 1] (N,C,H,W) of ``which`` ("x" or "x_adv") in a record."""
    raw = np.frombuffer(base64.b64decode(examples_record[which]), dtype=np.uint8)
    return raw.reshape(examples_record["shape"]).astype(np.float32) / 255.0
