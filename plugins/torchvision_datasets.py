"""Plugin ``torchvision-datasets``: MNIST, Fashion-MNIST and CIFAR-10 through torchvision.

Each dataset is read with torchvision's own dataset class (``MNIST``, ``FashionMNIST``,
``CIFAR10``) from the data root (``--data-root``, else ``$HARNESS_DATA``, else ``./data``), in
the layout torchvision expects there:

* MNIST: ``<root>/MNIST/raw/`` (the four IDX files, decompressed)
* Fashion-MNIST: ``<root>/FashionMNIST/raw/``
* CIFAR-10: ``<root>/cifar-10-batches-py/`` (the python version's pickled batches)

``--download`` lets torchvision fetch missing files. The whole arrays (the dataset object's
``.data`` and ``.targets``) are converted at once, never one sample at a time through a
DataLoader. ``options.image_size``, when set, resizes the images (bilinear, antialiased, then
clamped to [0, 1]); otherwise they keep their native size.

Missing files, or a failed download, raise :class:`harness.errors.DatasetNotFoundError` with one
message that says where the files were looked for and how to get them.

Registration imports nothing heavy: torch and torchvision are imported when data loads.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import DatasetNotFoundError
from harness.hookspecs import hookimpl
from harness.specs import DatasetSpec

if TYPE_CHECKING:
    import torch

    from harness.data import DataOptions, ImageData

# Images resized per chunk, so a resize never holds two full float copies of a big split.
_RESIZE_CHUNK = 4096

_SHARED_DATA_HINT = (
    " In a checkout of this repository that has it, the folder ../shared/data (relative to "
    "the repository root) holds MNIST and Fashion-MNIST: use --data-root ../shared/data."
)


@dataclass(frozen=True)
class _Source:
    """How one dataset is found: its torchvision class and its folder under the root."""

    name: str
    title: str
    class_name: str
    subfolder: tuple[str, ...]
    hint: str = ""

    def folder(self, root: Path) -> Path:
        """The folder torchvision reads the files from, under ``root``."""
        return root.joinpath(*self.subfolder)


_MNIST = _Source("mnist", "MNIST", "MNIST", ("MNIST", "raw"), _SHARED_DATA_HINT)
_FASHION = _Source("fashion-mnist", "Fashion-MNIST", "FashionMNIST", ("FashionMNIST", "raw"),
                   _SHARED_DATA_HINT)
_CIFAR10 = _Source("cifar10", "CIFAR-10", "CIFAR10", ("cifar-10-batches-py",))


def load_mnist(options: DataOptions) -> ImageData:
    """Load MNIST (60000 train / 10000 test, 1x28x28) from ``<root>/MNIST/raw``."""
    return _load(_MNIST, options)


def load_fashion_mnist(options: DataOptions) -> ImageData:
    """Load Fashion-MNIST (60000 train / 10000 test, 1x28x28) from ``<root>/FashionMNIST/raw``."""
    return _load(_FASHION, options)


def load_cifar10(options: DataOptions) -> ImageData:
    """Load CIFAR-10 (50000 train / 10000 test, 3x32x32) from ``<root>/cifar-10-batches-py``."""
    return _load(_CIFAR10, options)


def _load(source: _Source, options: DataOptions) -> ImageData:
    import torch
    import torchvision.datasets

    from harness.data import ImageData, uint8_to_float

    root = options.resolved_root()
    dataset_cls = getattr(torchvision.datasets, source.class_name)
    splits = []
    for train in (True, False):
        try:
            ds = dataset_cls(root=str(root), train=train, download=options.download)
        except (RuntimeError, OSError, EOFError) as exc:
            raise _not_found(source, root, options.download, exc) from None
        x = uint8_to_float(torch.as_tensor(ds.data))
        if options.image_size is not None and tuple(x.shape[-2:]) != (options.image_size,) * 2:
            x = resize_images(x, options.image_size)
        y = torch.as_tensor(ds.targets, dtype=torch.int64)
        splits.append((x, y))
        class_names = tuple(str(c) for c in ds.classes)
    (x_train, y_train), (x_test, y_test) = splits
    return ImageData(x_train, y_train, x_test, y_test,
                     num_classes=len(class_names), class_names=class_names)


def resize_images(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize float NCHW images to ``size`` x ``size`` (bilinear, antialiased), clamped."""
    import torch
    import torch.nn.functional as F

    out = torch.empty((x.shape[0], x.shape[1], size, size), dtype=x.dtype)
    for start in range(0, len(x), _RESIZE_CHUNK):
        chunk = x[start:start + _RESIZE_CHUNK]
        out[start:start + len(chunk)] = F.interpolate(
            chunk, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        ).clamp_(0.0, 1.0)
    return out


def _not_found(source: _Source, root: Path, download: bool,
               exc: BaseException) -> DatasetNotFoundError:
    folder = source.folder(root).absolute()
    get_it = (
        f"To get it: pass --download to fetch it (needs network), or point --data-root DIR "
        f"(or HARNESS_DATA=DIR) at a folder DIR that holds {'/'.join(source.subfolder)}/."
        + source.hint
    )
    if download:
        why = re.sub(r"\s+", " ", str(exc)).strip() or type(exc).__name__
        return DatasetNotFoundError(
            f"dataset '{source.name}': downloading {source.title} into {folder} failed: {why}. "
            f"Without network, point --data-root DIR (or HARNESS_DATA=DIR) at a folder DIR that "
            f"holds {'/'.join(source.subfolder)}/." + source.hint
        )
    detail = ""
    if not isinstance(exc, RuntimeError):  # torchvision's own "not found" is a RuntimeError
        detail = f" (reading them failed: {type(exc).__name__}: {exc})"
    return DatasetNotFoundError(
        f"dataset '{source.name}': {source.title} files not found (or incomplete) in "
        f"{folder}{detail}. " + get_it
    )


@hookimpl
def harness_register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """Register ``mnist``, ``fashion-mnist`` and ``cifar10``."""
    register(DatasetSpec(
        name="mnist",
        description="MNIST handwritten digits, 28x28 grayscale, 10 classes (torchvision)",
        load=load_mnist,
        default_eps=0.1,
        source=("torchvision.datasets.MNIST: files in <data root>/MNIST/raw; --download fetches "
                "them. ../shared/data (relative to the repository root) holds a copy."),
    ))
    register(DatasetSpec(
        name="fashion-mnist",
        description="Fashion-MNIST clothing images, 28x28 grayscale, 10 classes (torchvision)",
        load=load_fashion_mnist,
        default_eps=0.1,
        source=("torchvision.datasets.FashionMNIST: files in <data root>/FashionMNIST/raw; "
                "--download fetches them. ../shared/data (relative to the repository root) "
                "holds a copy."),
    ))
    register(DatasetSpec(
        name="cifar10",
        description="CIFAR-10 natural images, 32x32 RGB, 10 classes (torchvision)",
        load=load_cifar10,
        default_eps=0.03,
        source=("torchvision.datasets.CIFAR10: the python version's batches in "
                "<data root>/cifar-10-batches-py; --download fetches and extracts "
                "cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html"),
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
    ))
