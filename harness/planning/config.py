"""What ``harness bench`` is asked to do (:class:`BenchConfig`), checked before any work, and
the training settings it gives each model."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.contracts.settings import EARLY_STOP_ON, TrainSettings
from harness.contracts.specs import ModelSpec
from harness.util.errors import UsageError, quoted

ALL = "all"


# The largest --image-size: 4096 x 4096 x 3 float32 is 201 MB an image, already more than a
# benchmark can hold for a dataset; beyond it a typo (100000) would only exhaust memory.
MAX_IMAGE_SIZE = 4096


@dataclass(frozen=True)
class BenchConfig:
    """Everything ``harness bench`` was asked to do."""

    # Empty: the specs of that kind that declare ``default=True`` (the main command's).
    datasets: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    attacks: tuple[str, ...] = ()
    defenses: tuple[str, ...] = ()
    eps: tuple[float, ...] | None = None
    baseline: bool = True
    n_train: int | None = None
    n_test: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    patience: int | None = None
    seed: int = 0
    device: str = "auto"
    data_root: Path | None = None
    download: bool = False
    image_size: int | None = None
    attack_batch_size: int = 256
    model_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    attack_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    defense_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    no_cache: bool = False
    checks: bool = True
    # GPU speed options; both change the numbers in their last digits, so both are part of
    # the training and cell keys when set (and absent from them when not).
    amp: str | None = None
    cudnn_benchmark: bool = False
    # Early stopping: None keeps the models' and the harness's defaults (see TrainSettings).
    early_stop_on: str | None = None
    early_stop_eps: float | None = None
    augment: str | None = None
    # Evasion cells scored in independent chunks of this many test images, each kept on disk
    # as it finishes (an interrupted cell resumes); part of those cells' keys when set.
    chunk_images: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready configuration, stored with every result."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["data_root"] = str(self.data_root) if self.data_root is not None else None
        for k in ("datasets", "models", "attacks", "defenses", "eps"):
            out[k] = list(out[k]) if out[k] is not None else None
        return out


def _check_positive(name: str, value: float | None, integer: bool = False) -> None:
    if value is None:
        return
    if integer and (not isinstance(value, int) or value < 1):
        raise UsageError(f"--{name} must be a positive integer, got {value!r}")
    if not integer and not (value > 0 and math.isfinite(value)):
        raise UsageError(f"--{name} must be positive, got {value!r}")


def settings_for(config: BenchConfig, model: ModelSpec) -> TrainSettings:
    """Training settings: the command line over the model's defaults over the harness's."""
    values = {**TrainSettings().as_dict(), **dict(model.train_defaults)}
    for name in ("epochs", "batch_size", "lr", "patience", "early_stop_on", "early_stop_eps",
                 "augment"):
        if getattr(config, name) is not None:
            values[name] = getattr(config, name)
    values["seed"] = config.seed
    return TrainSettings(**values)


def _check_twice(flag: str, values: tuple[Any, ...], shown: Any) -> None:
    """A value listed twice in ``flag`` is a UsageError (it would be one cell, not two)."""
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            raise UsageError(f"{flag} lists {shown(value)} twice")
        seen.add(value)


# What ``--amp`` accepts: bfloat16 autocast needs no loss scaling, so every trainer takes it.
AMP_DTYPES = ("bf16",)


def check_config(config: BenchConfig) -> None:
    """Every number of ``config`` in range, no name or eps listed twice (UsageError
    otherwise). :func:`make_plan` runs it; the command line runs it first, before it opens
    anything under HARNESS_HOME."""
    for name in ("n_train", "n_test", "epochs", "batch_size", "patience", "image_size",
                 "chunk_images"):
        _check_positive(name.replace("_", "-"), getattr(config, name), integer=True)
    _check_positive("lr", config.lr)
    _check_positive("attack-batch-size", config.attack_batch_size, integer=True)
    if not isinstance(config.seed, int) or not 0 <= config.seed < 2**63:
        raise UsageError(f"--seed must be an integer in [0, 2**63), got {_shown(config.seed)}")
    if config.image_size is not None and config.image_size > MAX_IMAGE_SIZE:
        gigabytes = 3 * 4 * config.image_size ** 2 / 1e9
        raise UsageError(
            f"--image-size {config.image_size} is too large: at most {MAX_IMAGE_SIZE} (one "
            f"3-channel float32 image of that side takes {gigabytes:.3g} GB, and every image "
            "of the dataset is held in memory at that size)")
    for e in config.eps or ():
        if not (0 < e <= 1):
            raise UsageError(f"--eps {e} is out of range: eps is in pixel units of [0, 1], "
                             "so it must be in (0, 1] (e.g. 0.1 for MNIST, 0.03 for CIFAR-10)")
    _check_twice("--eps", tuple(config.eps or ()), lambda e: f"{e:g}")
    if config.early_stop_on is not None and config.early_stop_on not in EARLY_STOP_ON:
        raise UsageError(f"--early-stop-on {config.early_stop_on!r}: use one of "
                         f"{', '.join(EARLY_STOP_ON)}")
    if config.early_stop_eps is not None and not 0 < config.early_stop_eps <= 1:
        raise UsageError(f"--early-stop-eps {config.early_stop_eps:g} is out of range: eps is "
                         "in pixel units of [0, 1], so it must be in (0, 1]")
    if config.amp is not None and config.amp not in AMP_DTYPES:
        raise UsageError(f"--amp {config.amp!r} is not offered: use {', '.join(AMP_DTYPES)} "
                         "(fp16 would need a loss scaler inside every trainer, ART's too)")
    for kind in ("dataset", "model", "attack", "defense"):
        _check_twice(f"--{kind}", getattr(config, f"{kind}s"), quoted)


def _shown(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else f"{text[:40]}… ({len(text)} digits)"
