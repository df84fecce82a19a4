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

Missing files, or a failed download, raise :class:`harness.util.errors.DatasetNotFoundError` with
one
message that says where the files were looked for and how to get them.

Damaged files are refused at load with one line naming the file (also
:class:`~harness.util.errors.DatasetNotFoundError`, exit 2), never a traceback or a failed cell
later:

* MNIST / Fashion-MNIST: each IDX file is checked before torchvision reads it: its magic number
  (``0x00000803`` for images, ``0x00000801`` for labels), its length (header plus the sizes it
  declares), and that the image and label files hold the same count; after loading, every label
  must lie in ``0 .. 9``.
* CIFAR-10: every batch must match the MD5 checksum torchvision pins for the real file; only
  then does torchvision unpickle it, so no other pickle (which could hold arbitrary objects) is
  ever loaded. A batch that still fails to load (it can only be the real file read wrongly) is
  named too.

Registration imports nothing heavy: torch and torchvision are imported when data loads.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness import DatasetNotFoundError, DatasetSpec, hookimpl

if TYPE_CHECKING:
    import torch

    from harness import DataOptions, ImageData

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

    from harness import ImageData, uint8_to_float

    root = options.resolved_root()
    dataset_cls = getattr(torchvision.datasets, source.class_name)
    splits = []
    for train in (True, False):
        if source is _CIFAR10:
            _check_cifar_batches(source.folder(root))
        else:
            _check_idx_pair(source, source.folder(root), train)
        try:
            ds = dataset_cls(root=str(root), train=train, download=options.download)
        except (RuntimeError, OSError, EOFError) as exc:
            raise _not_found(source, root, options.download, exc) from None
        except (ValueError, KeyError, IndexError, TypeError, AssertionError) as exc:
            raise _damaged(source, source.folder(root), f"{type(exc).__name__}: {exc}") from None
        if source is not _CIFAR10:
            _check_idx_pair(source, source.folder(root), train)  # also what --download fetched
        _check_labels(source, root, train, ds.targets, len(ds.classes))
        x = uint8_to_float(torch.as_tensor(ds.data))
        if options.image_size is not None and tuple(x.shape[-2:]) != (options.image_size,) * 2:
            x = resize_images(x, options.image_size)
        y = torch.as_tensor(ds.targets, dtype=torch.int64)
        splits.append((x, y))
        class_names = tuple(str(c) for c in ds.classes)
    (x_train, y_train), (x_test, y_test) = splits
    return ImageData(x_train, y_train, x_test, y_test,
                     num_classes=len(class_names), class_names=class_names)


_IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
_IDX_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension


def _idx_names(train: bool) -> tuple[str, str]:
    prefix = "train" if train else "t10k"
    return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


def _idx_count(source: _Source, path: Path, magic: int, dims: int) -> int:
    """The item count of the IDX file ``path``, refused when its header or length is wrong."""
    size = path.stat().st_size
    header = 4 + 4 * dims
    with open(path, "rb") as f:
        head = f.read(header)
    if len(head) < header:
        raise _damaged(source, path, f"{size} bytes, shorter than the {header}-byte IDX header")
    found, *shape = struct.unpack(f">{1 + dims}I", head)
    if found != magic:
        raise _damaged(source, path, f"magic number 0x{found:08x}, expected 0x{magic:08x} (is it "
                       "still compressed, or not an IDX file?)")
    body = 1
    for n in shape:
        body *= n
    if size != header + body:
        raise _damaged(source, path, f"{size} bytes, but its header {tuple(shape)} declares "
                       f"{header + body}")
    return shape[0]


def _check_idx_pair(source: _Source, folder: Path, train: bool) -> None:
    """Check the images and labels IDX files of one split, where both exist."""
    images, labels = (folder / name for name in _idx_names(train))
    if not (images.is_file() and labels.is_file()):
        return  # missing: torchvision downloads them or reports them missing
    n_images = _idx_count(source, images, _IDX_IMAGES_MAGIC, 3)
    n_labels = _idx_count(source, labels, _IDX_LABELS_MAGIC, 1)
    if n_images != n_labels:
        raise _damaged(source, labels, f"{n_labels} labels for the {n_images} images of {images}")


def _check_labels(source: _Source, root: Path, train: bool, targets: object,
                  num_classes: int) -> None:
    """Refuse a label outside ``0 .. num_classes - 1``, naming the file it came from."""
    import torch

    y = torch.as_tensor(targets, dtype=torch.int64)
    bad = ((y < 0) | (y >= num_classes)).nonzero()
    if len(bad):
        i = int(bad[0])
        if source is _CIFAR10:
            where = source.folder(root) / ("data_batch_*" if train else "test_batch")
        else:
            where = source.folder(root) / _idx_names(train)[1]
        raise _damaged(source, where, f"label {int(y[i])} at index {i} is outside "
                       f"0..{num_classes - 1} ({len(bad)} such labels)")


def _check_cifar_batches(folder: Path) -> None:
    """Refuse a CIFAR-10 batch that exists but is not the real file (MD5 mismatch)."""
    import torchvision.datasets.cifar as cifar

    cls = cifar.CIFAR10
    for name, md5 in [*cls.train_list, *cls.test_list, (cls.meta["filename"], cls.meta["md5"])]:
        path = folder / name
        if path.is_file() and not cifar.check_integrity(str(path), md5):
            raise _damaged(_CIFAR10, path, f"its MD5 is not the {md5} of the real CIFAR-10 file "
                           "(damaged, or not CIFAR-10); it is not loaded")


def _damaged(source: _Source, path: Path, why: str) -> DatasetNotFoundError:
    """The one-line error for a damaged file of ``source``."""
    why = re.sub(r"\s+", " ", why).strip()
    return DatasetNotFoundError(
        f"dataset '{source.name}': {path.absolute()} is damaged: {why}. Delete it and pass "
        f"--download to fetch it again, or replace it with the original file."
    )


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
