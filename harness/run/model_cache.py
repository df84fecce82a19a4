"""Trained weights cached on disk by training key: safetensors plus a JSON sidecar that
carries the weights' SHA-256, checked at every load.

Loading never unpickles objects: weights come from safetensors, partial training states
from ``torch.load(weights_only=True)``. A damaged entry (unreadable weights, wrong shapes for
the model, a corrupt sidecar, a checksum mismatch) is named and moved to ``<root>/damaged/``
so the model is retrained, or, with ``refuse_damaged``, refused with an error.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.util.errors import HarnessError
from harness.util.files import atomic_write, set_aside, sha256_of

if TYPE_CHECKING:   # torch and safetensors are imported when weights are read or written
    import torch

DAMAGED = "damaged"


class DamagedEntry(Exception):
    """A cache file that cannot be used: which key, which file, and why."""

    def __init__(self, key: str, path: Path, why: str):
        super().__init__(f"cached model {key} ({path}) is damaged: {why}")
        self.key, self.path, self.why = key, path, why


class DamagedCacheError(HarnessError):
    """A damaged cache file met with ``refuse_damaged``: the cells of its job fail."""


class ModelCache:
    """``<root>/<key>.safetensors`` (weights), ``<key>.json`` (report and ``sha256``),
    ``<key>.partial.pt`` (an unfinished training); damaged files go to ``<root>/damaged/``.

    ``refuse_damaged``: a damaged entry is an error instead of being moved aside and retrained.
    """

    def __init__(self, root: Path, refuse_damaged: bool = False):
        self.root = Path(root)
        self.refuse_damaged = refuse_damaged

    def weights_path(self, key: str) -> Path:
        """Where the finished weights of ``key`` live."""
        return self.root / f"{key}.safetensors"

    def info_path(self, key: str) -> Path:
        """Where the training report of ``key`` lives."""
        return self.root / f"{key}.json"

    def partial_path(self, key: str) -> Path:
        """Where an unfinished training of ``key`` keeps its state between epochs."""
        return self.root / f"{key}.partial.pt"

    @property
    def damaged_root(self) -> Path:
        """Where damaged files are moved to."""
        return self.root / DAMAGED

    def has(self, key: str) -> bool:
        """Whether finished weights and report exist for ``key``."""
        return self.weights_path(key).exists() and self.info_path(key).exists()

    def load(self, key: str, model: torch.nn.Module, device: torch.device) -> dict[str, Any]:
        """Load cached weights into ``model``; return the stored training report.

        Raises :class:`DamagedEntry` when the sidecar is not a JSON object, the weights do not
        match its ``sha256``, or they cannot be loaded into ``model`` (``model`` may then hold
        some of them: build a fresh one). A sidecar without ``sha256`` (written before
        checksums) is accepted, with a note on stderr.
        """
        info_path, weights = self.info_path(key), self.weights_path(key)
        try:
            info = json.loads(info_path.read_text())
        except (ValueError, OSError) as exc:
            raise DamagedEntry(key, info_path, f"unreadable report: {exc}") from None
        if not isinstance(info, dict):
            raise DamagedEntry(key, info_path, "the report is not a JSON object")
        expected = info.get("sha256")
        if expected is None:
            print(f"harness: note: cached model {key} ({weights}) has no checksum (cached "
                  "before checksums); loaded unchecked", file=sys.stderr)
        elif sha256_of(weights) != expected:
            raise DamagedEntry(key, weights, "its SHA-256 does not match the one recorded at "
                                             "save")
        try:
            from safetensors.torch import load_model

            load_model(model, weights, device=str(device))
        except Exception as exc:  # safetensors' own error, or a shape/key mismatch
            why = " ".join(str(exc).split())[:300]
            raise DamagedEntry(key, weights, f"{type(exc).__name__}: {why}") from None
        return info

    def handle_damage(self, damage: DamagedEntry) -> None:
        """Refuse ``damage`` (:class:`DamagedCacheError`) under ``refuse_damaged``; else move
        the entry's files to ``damaged/`` and say so in one line on stderr. Call it holding
        the key's lock."""
        if self.refuse_damaged:
            raise DamagedCacheError(f"{damage}; refused (--refuse-damaged): move the file "
                                    "away, or run without --refuse-damaged to retrain")
        for path in (self.weights_path(damage.key), self.info_path(damage.key)):
            if path.exists():
                set_aside(path, self.damaged_root)
        print(f"harness: {damage}; moved to {self.damaged_root}/, retraining", file=sys.stderr)

    def check_partial(self, key: str) -> None:
        """Under ``refuse_damaged``: raise :class:`DamagedCacheError` when ``key``'s partial
        training state cannot be read (without the flag the training loop itself moves a
        damaged state aside and starts over)."""
        path = self.partial_path(key)
        if not self.refuse_damaged or not path.exists():
            return
        try:
            import torch

            states = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            why = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        else:
            if isinstance(states, dict):
                return
            why = "not a dict of training states"
        raise DamagedCacheError(f"training state {path} is damaged: {why}; refused "
                                "(--refuse-damaged): move the file away, or run without "
                                "--refuse-damaged to restart its training")

    def save(self, key: str, model: torch.nn.Module, info: dict[str, Any]) -> None:
        """Store ``model``'s weights and ``info`` (plus the weights' ``sha256``) atomically;
        drop the partial state."""
        with atomic_write(self.weights_path(key)) as tmp:
            from safetensors.torch import save_model

            save_model(model, str(tmp))
            checksum = sha256_of(tmp)
        self._write_info(key, {**info, "sha256": checksum})
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
        """Store weights and report shipped from another machine (see :meth:`export`). The
        sender's checksum is kept, so bytes damaged on the way are found at load; a report
        without one gets the checksum of the bytes received."""
        with atomic_write(self.weights_path(key)) as tmp:
            tmp.write_bytes(weights)
        self._write_info(key, {"sha256": hashlib.sha256(weights).hexdigest(), **info})

    def discard(self, key: str) -> None:
        """Forget everything cached for ``key`` (``--no-cache``)."""
        for path in (self.weights_path(key), self.info_path(key), self.partial_path(key)):
            path.unlink(missing_ok=True)
