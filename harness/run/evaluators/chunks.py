"""An evasion cell evaluated in independent chunks of test images, each kept on disk as it
finishes, so that a cell of hours (the standard AutoAttack on 10,000 images on a CPU)
survives an interrupted run: the next run of the same command scores the chunks it finds and
attacks only the rest.

Chunk ``[start, stop)`` is attacked by a freshly built attack after the global generators are
seeded from the cell's key and ``start``
(:func:`harness.util.seeds.seed_globals`), so its numbers depend on nothing but the cell and
the chunk: a cell resumed after any number of interruptions, or with its chunks run in another
order, gives the numbers of an uninterrupted run, tensor for tensor. They are not those of the
same cell run without chunks (one attack object and one stream over all images), which is why
``--chunk-images`` is part of the cell's key.

A chunk lives in ``<adversarial store>/chunks/<cell key>/<start>-<stop>.safetensors``
(tensors only, no pickling) with what produced it (harness version and git commit) in its
metadata; the record lists the commits its chunks came from. A chunk that cannot be read or
does not fit the cell is attacked again (one line on stderr says so). The folder is removed
once the cell's examples are stored whole.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from harness.results.metadata import git_commit
from harness.run.evaluators.scoring import AttackResult, combined, scored
from harness.util.files import atomic_write
from harness.util.seeds import seed_globals
from harness.util.version import __version__

#: A chunk's tensors; everything else is in its metadata.
_TENSORS = ("x_adv", "clean_correct", "robust_correct", "sizes")


class ChunkStore:
    """``<root>/<cell key>/<start>-<stop>.safetensors``: the finished chunks of cells."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def folder(self, key: str) -> Path:
        """Where the chunks of cell ``key`` live."""
        return self.root / key

    def path(self, key: str, start: int, stop: int) -> Path:
        """The file of chunk ``[start, stop)`` of cell ``key``."""
        return self.folder(key) / f"{start}-{stop}.safetensors"

    def save(self, key: str, start: int, stop: int, part: AttackResult, commit: str) -> None:
        """Write one finished chunk atomically, with the ``commit`` that made it."""
        assert part.x_adv is not None and part.robust_correct is not None \
            and part.clean_correct is not None and part.sizes is not None
        tensors = {"x_adv": part.x_adv, "clean_correct": part.clean_correct.to(torch.uint8),
                   "robust_correct": part.robust_correct.to(torch.uint8), "sizes": part.sizes}
        meta = {"cell": key, "start": str(start), "stop": str(stop),
                "queries": str(part.queries), "seconds": repr(part.attack_seconds),
                "harness": __version__, "commit": commit}
        with atomic_write(self.path(key, start, stop)) as tmp:
            save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp),
                      metadata=meta)

    def load(self, key: str, start: int, stop: int, x: torch.Tensor
             ) -> tuple[AttackResult, str] | None:
        """Chunk ``[start, stop)`` of cell ``key`` and the commit that made it, if it was
        finished and fits the images ``x`` of that range; None when there is none. A file
        that cannot be read or does not fit is reported on stderr and set aside (None)."""
        path = self.path(key, start, stop)
        if not path.exists():
            return None
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
            tensors = load_file(str(path), device=str(x.device))
            problem = _misfit(meta, tensors, key, start, stop, x)
        except (SafetensorError, OSError, ValueError, KeyError) as exc:
            problem = f"it cannot be read ({exc})"
        if problem is not None:
            print(f"harness: chunk {start}-{stop} of cell {key} is attacked again: {problem}",
                  file=sys.stderr)
            path.unlink(missing_ok=True)
            return None
        part = scored(tensors["clean_correct"].bool(), tensors["robust_correct"].bool(),
                      tensors["sizes"], int(meta["queries"]), float(meta["seconds"]),
                      tensors["x_adv"])
        return part, meta.get("commit", "unknown")

    def remove(self, key: str) -> None:
        """Forget the chunks of cell ``key`` (its examples are stored whole)."""
        shutil.rmtree(self.folder(key), ignore_errors=True)


def _misfit(meta: dict[str, str], tensors: dict[str, torch.Tensor], key: str, start: int,
            stop: int, x: torch.Tensor) -> str | None:
    """Why a stored chunk does not fit the cell and images it is read for (None if it does)."""
    if meta.get("cell") != key or meta.get("start") != str(start) \
            or meta.get("stop") != str(stop):
        return "its metadata names another cell or range"
    if set(tensors) != set(_TENSORS):
        return f"it holds {sorted(tensors)}, not {list(_TENSORS)}"
    n = stop - start
    if tuple(tensors["x_adv"].shape) != tuple(x[start:stop].shape):
        return f"its examples have shape {tuple(tensors['x_adv'].shape)}"
    if any(len(tensors[k]) != n for k in _TENSORS) or tensors["sizes"].shape[1:] != (3,):
        return "its outcomes do not cover its range"
    try:
        int(meta["queries"]), float(meta["seconds"])
    except ValueError:
        return "its queries or seconds are not numbers"
    return None


def evaluate_in_chunks(store: ChunkStore, key: str, seed: int, x: torch.Tensor, chunk: int,
                       attack_range: Callable[[int, int], AttackResult]
                       ) -> tuple[AttackResult, dict[str, Any]]:
    """The result over the test images ``x`` of cell ``key`` from its chunks of ``chunk``
    images: stored ones are read, the others attacked by ``attack_range(start, stop)`` (which builds
    its attack after this seeds the global generators for the chunk) and stored. Returns the
    combined result and what the record says of the chunks (size, count, how many were
    resumed, the commits that made them)."""
    parts: list[AttackResult] = []
    resumed, commits, here = 0, set(), git_commit() or "unknown"
    for start in range(0, len(x), chunk):
        stop = min(start + chunk, len(x))
        found = store.load(key, start, stop, x)
        if found is not None:
            part, commit = found
            resumed += 1
        else:
            seed_globals(seed, "cell", key, f"chunk-{start}")
            part = attack_range(start, stop)
            store.save(key, start, stop, part, here)
            commit = here
        parts.append(part)
        commits.add(commit)
    return combined(parts), {"images": chunk, "count": len(parts), "resumed": resumed,
                             "commits": sorted(commits)}
