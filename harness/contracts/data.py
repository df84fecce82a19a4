"""In-memory image datasets: what a dataset plugin returns and how runs subset and batch it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

DATA_ENV = "HARNESS_DATA"


@dataclass(frozen=True)
class DataOptions:
    """What a dataset loader is told: where the files are and whether it may download."""

    root: Path | None = None
    download: bool = False
    image_size: int | None = None

    def resolved_root(self) -> Path:
        """``--data-root``, else ``$HARNESS_DATA``, else ``./data``."""
        if self.root is not None:
            return Path(self.root)
        env = os.environ.get(DATA_ENV)
        return Path(env) if env else Path("data")


@dataclass(frozen=True)
class ImageData:
    """Train and test images, NCHW, with int64 labels: float tensors in [0, 1], or uint8
    tensors holding 255 times those values (a quarter of the memory: 1.4 GB instead of 5.7 GB
    for Imagenette's training images at 224 px). uint8 images stay uint8 through subsets and
    on the device; :func:`to_float` converts a batch, :meth:`floats` the whole set. The
    harness converts per batch where it batches (its training epoch for defenses declaring
    ``reads_uint8``, attacks, predictions); every other consumer (plugins handed an
    :class:`AttackContext`, fit functions of models, training-stage defenses without
    ``reads_uint8``) receives float images.

    ``test_index`` gives each test image's position in the dataset's test set as loaded (on
    the CPU; None: the test images are the whole set, in order); subsets keep it, so per-image
    outcomes of cells with different subsets can be matched image by image."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    class_names: tuple[str, ...] = ()
    test_index: torch.Tensor | None = None

    def __post_init__(self) -> None:
        for name in ("x_train", "x_test"):
            x = getattr(self, name)
            if x.ndim != 4 or not (x.is_floating_point() or x.dtype == torch.uint8):
                raise ValueError(f"{name} must be a float or uint8 tensor of shape N,C,H,W; "
                                 f"got {tuple(x.shape)} {x.dtype}")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError("train and test images differ in shape")
        if len(self.x_train) != len(self.y_train) or len(self.x_test) != len(self.y_test):
            raise ValueError("images and labels differ in length")
        if self.test_index is not None and len(self.test_index) != len(self.x_test):
            raise ValueError("test_index and the test images differ in length")

    @property
    def test_positions(self) -> torch.Tensor:
        """Each test image's position in the dataset's test set as loaded (CPU, int64)."""
        if self.test_index is None:
            return torch.arange(len(self.x_test))
        return self.test_index

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(channels, height, width)."""
        c, h, w = self.x_train.shape[1:]
        return int(c), int(h), int(w)

    @property
    def stored_as_uint8(self) -> bool:
        """Whether the images are held as uint8 (see the class docstring)."""
        return self.x_train.dtype == torch.uint8 or self.x_test.dtype == torch.uint8

    def floats(self) -> ImageData:
        """This data with float images in [0, 1] (itself when they are float already)."""
        if not self.stored_as_uint8:
            return self
        return ImageData(to_float(self.x_train), self.y_train, to_float(self.x_test),
                         self.y_test, num_classes=self.num_classes,
                         class_names=self.class_names, test_index=self.test_index)

    def subset(self, n_train: int | None, n_test: int | None, seed: int) -> ImageData:
        """Seeded random subsets of ``n_train`` training and ``n_test`` test images (a smaller
        ``n_test`` with the same seed takes a subset of a larger one's images)."""
        x_train, y_train, _ = _take(self.x_train, self.y_train, n_train, seed)
        x_test, y_test, picked = _take(self.x_test, self.y_test, n_test, seed + 1)
        positions = self.test_positions
        return ImageData(
            x_train, y_train, x_test, y_test,
            num_classes=self.num_classes,
            class_names=self.class_names,
            test_index=positions if picked is None else positions[picked.cpu()],
        )

    def to(self, device: torch.device) -> ImageData:
        """The same data on ``device`` (held there whole, batched by indexing); to a GPU
        through pinned memory, one asynchronous copy per tensor."""

        def move(t: torch.Tensor) -> torch.Tensor:
            if device.type != "cuda" or t.device.type != "cpu":
                return t.to(device)
            return t.pin_memory().to(device, non_blocking=True)

        return ImageData(
            move(self.x_train), move(self.y_train), move(self.x_test), move(self.y_test),
            num_classes=self.num_classes, class_names=self.class_names,
            test_index=self.test_index,
        )


def _take(x: torch.Tensor, y: torch.Tensor, n: int | None,
          seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``n`` seeded random images of ``x`` (in their order) and their positions (None: all)."""
    if n is None or n >= len(x):
        return x, y, None
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(x), generator=g)[:n].sort().values
    return x[idx.to(x.device)], y[idx.to(y.device)], idx


@dataclass(frozen=True)
class ModelInput:
    """What a model factory needs to size itself for a dataset."""

    channels: int
    height: int
    width: int
    num_classes: int
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None


def batches(n: int, batch_size: int, *, generator: torch.Generator | None = None,
            device: torch.device | None = None):
    """Index tensors covering ``range(n)`` in batches, shuffled when a generator is given."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    if device is not None:
        order = order.to(device)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


def to_float(x: torch.Tensor) -> torch.Tensor:
    """Images as float in [0, 1]: uint8 ones divided by 255 (a new tensor), float ones as they
    are. Per batch, this gives exactly the values of converting the whole set at once."""
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    return x


def uint8_to_nchw(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N,H,W or N,H,W,C or N,C,H,W with C first) as contiguous uint8 NCHW."""
    x = images
    if x.ndim == 3:
        x = x.unsqueeze(1)
    elif x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        x = x.permute(0, 3, 1, 2)
    return x.contiguous()


def uint8_to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N,H,W or N,H,W,C or N,C,H,W with C first) to float NCHW in [0, 1]."""
    return to_float(uint8_to_nchw(images))
