"""Tests of the built-in dataset plugins: digits, torchvision datasets, ImageNet folders."""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from urllib.error import URLError

import numpy as np
import pytest
import torch

from harness.contracts.data import DataOptions, ImageData
from harness.contracts.specs import DatasetSpec
from harness.util.errors import DatasetNotFoundError
from harness_plugins import digits, imagenet, torchvision_datasets

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_shared_data = pytest.mark.skipif(
    not SHARED_DATA.is_dir(),
    reason=f"the shared MNIST/Fashion-MNIST folder {SHARED_DATA} is absent in this checkout",
)


def specs_of(module: ModuleType) -> dict[str, DatasetSpec]:
    """The specs a plugin module registers, by name, through its own hook function."""
    specs: list[DatasetSpec] = []
    module.harness_register_datasets(register=specs.append)
    return {spec.name: spec for spec in specs}


def load(module: ModuleType, name: str, **options) -> ImageData:
    return specs_of(module)[name].load(DataOptions(**options))


# ---------------------------------------------------------------- registration


def test_registered_specs():
    tv = specs_of(torchvision_datasets)
    assert sorted(tv) == ["cifar10", "fashion-mnist", "mnist"]
    assert tv["mnist"].default_eps == tv["fashion-mnist"].default_eps == 0.1
    assert tv["mnist"].mean is None and tv["fashion-mnist"].std is None
    assert tv["cifar10"].default_eps == 0.03
    assert tv["cifar10"].mean == (0.4914, 0.4822, 0.4465)
    assert tv["cifar10"].std == (0.2470, 0.2435, 0.2616)
    d = specs_of(digits)["digits"]
    assert d.default_eps == 0.1 and d.mean is None and d.std is None
    inet = specs_of(imagenet)["imagenet"]
    assert inet.default_eps == 0.03
    assert inet.mean == (0.485, 0.456, 0.406) and inet.std == (0.229, 0.224, 0.225)
    for spec in [*tv.values(), d, inet]:
        assert spec.description and "\n" not in spec.description
        assert spec.source


def test_registration_imports_nothing_heavy():
    code = (
        "import sys\n"
        "import harness_plugins.digits, harness_plugins.torchvision_datasets, "
        "harness_plugins.imagenet\n"
        "specs = []\n"
        "for m in (harness_plugins.digits, harness_plugins.torchvision_datasets, "
        "harness_plugins.imagenet):\n"
        "    m.harness_register_datasets(register=specs.append)\n"
        "print(sorted(m for m in ('torch', 'torchvision', 'sklearn', 'PIL', 'numpy') "
        "if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------- digits


def test_digits_loads_with_fixed_split():
    data = load(digits, "digits")
    assert data.x_train.shape == (1437, 1, 8, 8)
    assert data.x_test.shape == (360, 1, 8, 8)
    assert data.x_train.dtype == torch.float32
    assert data.y_train.dtype == data.y_test.dtype == torch.int64
    assert data.x_train.min() >= 0 and data.x_train.max() <= 1
    assert data.x_train.max() == 1  # 16/16: the raw range 0..16 is really used
    assert data.num_classes == 10
    assert data.class_names == tuple(str(i) for i in range(10))
    assert set(data.y_train.tolist()) == set(data.y_test.tolist()) == set(range(10))
    # stratified: every class holds about 20% of its images in test
    counts = torch.bincount(data.y_test, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37

    again = load(digits, "digits")
    for name in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(data, name), getattr(again, name))


def test_digits_values_are_sixteenths():
    x = load(digits, "digits").x_test
    assert torch.equal(x * 16, (x * 16).round())


# ---------------------------------------------------------------- MNIST / Fashion-MNIST


@pytest.fixture(scope="module")
def mnist() -> ImageData:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the shared MNIST/Fashion-MNIST folder {SHARED_DATA} is absent")
    return load(torchvision_datasets, "mnist", root=SHARED_DATA)


@needs_shared_data
@pytest.mark.parametrize(("name", "mean_pixel"), [("mnist", 33.32), ("fashion-mnist", 72.94)])
def test_mnist_like_from_shared_data(name, mean_pixel, mnist):
    data = mnist if name == "mnist" else load(torchvision_datasets, name, root=SHARED_DATA)
    assert data.x_train.shape == (60000, 1, 28, 28)
    assert data.x_test.shape == (10000, 1, 28, 28)
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert data.x_train.min() == 0 and data.x_train.max() == 1
    assert sorted(set(data.y_train.tolist())) == list(range(10))
    assert sorted(set(data.y_test.tolist())) == list(range(10))
    assert data.num_classes == 10 and len(data.class_names) == 10
    assert data.x_train.double().mean().item() == pytest.approx(mean_pixel / 255, abs=1e-3)


@needs_shared_data
def test_mnist_class_counts_and_names(mnist):
    counts = torch.bincount(mnist.y_train, minlength=10).tolist()
    assert counts == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert mnist.class_names[0] == "0 - zero"


@needs_shared_data
def test_mnist_image_size_resizes():
    data = load(torchvision_datasets, "fashion-mnist", root=SHARED_DATA, image_size=14)
    assert data.x_train.shape == (60000, 1, 14, 14)
    assert data.x_test.shape == (10000, 1, 14, 14)
    assert data.x_train.min() >= 0 and data.x_train.max() <= 1


def test_mnist_missing_says_where_and_how(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        load(torchvision_datasets, "mnist", root=tmp_path)
    message = str(info.value)
    assert str(tmp_path / "MNIST" / "raw") in message
    assert "--download" in message and "--data-root" in message and "HARNESS_DATA" in message
    assert "../shared/data" in message
    assert "\n" not in message


def test_cifar10_missing_says_where(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        load(torchvision_datasets, "cifar10", root=tmp_path)
    message = str(info.value)
    assert str(tmp_path / "cifar-10-batches-py") in message
    assert "--download" in message
    assert "shared/data" not in message  # only MNIST and Fashion-MNIST are there


def test_failed_download_is_one_clear_error(tmp_path, monkeypatch):
    import torchvision.datasets.mnist

    def offline(url, *args, **kwargs):
        raise URLError("no network here")

    monkeypatch.setattr(torchvision.datasets.mnist, "download_and_extract_archive", offline)
    with pytest.raises(DatasetNotFoundError) as info:
        load(torchvision_datasets, "fashion-mnist", root=tmp_path, download=True)
    message = str(info.value)
    assert "failed" in message and "no network here" in message
    assert str(tmp_path / "FashionMNIST" / "raw") in message
    assert "\n" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


# ---------------------------------------------------------------- CIFAR-10 in its real format


class _Py2Str(bytes):
    """A Python 2 ``str``: what the real CIFAR-10 pickles hold for keys and label names."""


class _Py2Pickler(pickle._Pickler):
    """Writes ``_Py2Str`` as a Python 2 str (BINSTRING), as the real CIFAR-10 files do.

    Loaded with ``encoding="latin1"`` (torchvision) such a string becomes ``str``; with
    ``encoding="bytes"`` it becomes ``bytes`` (the ``b'data'`` keys of the dataset's docs).
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2str(self, obj: _Py2Str) -> None:
        raw = bytes(obj)
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[_Py2Str] = save_py2str


def _write_py2_pickle(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        _Py2Pickler(f, protocol=2).dump(obj)


CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer",
               "dog", "frog", "horse", "ship", "truck"]


def _write_cifar10(root: Path, per_batch: int = 4, n_test: int = 6):
    """Write a tiny CIFAR-10 in the real python-version layout; return rows and labels."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    batches = {}
    for i, name in enumerate([*(f"data_batch_{k}" for k in range(1, 6)), "test_batch"]):
        n = n_test if name == "test_batch" else per_batch
        rows = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=n)]
        if name == "data_batch_2":
            # image 1 of batch 2 (train index per_batch + 1), pixel (row 5, column 7):
            # a row is R plane, G plane, B plane, each 32x32 row-major.
            offset = 5 * 32 + 7
            rows[1, offset], rows[1, 1024 + offset], rows[1, 2048 + offset] = 200, 17, 99
        batches[name] = (rows, labels)
        _write_py2_pickle(folder / name, {
            _Py2Str(b"batch_label"): _Py2Str(f"batch {i + 1} of 6".encode()),
            _Py2Str(b"labels"): labels,
            _Py2Str(b"data"): rows,
            _Py2Str(b"filenames"): [_Py2Str(f"img_{i}_{j}.png".encode()) for j in range(n)],
        })
    _write_py2_pickle(folder / "batches.meta", {
        _Py2Str(b"num_cases_per_batch"): per_batch,
        _Py2Str(b"label_names"): [_Py2Str(n.encode()) for n in CIFAR_NAMES],
        _Py2Str(b"num_vis"): 3072,
    })
    return batches


@pytest.fixture
def cifar_root(tmp_path, monkeypatch):
    import torchvision.datasets.cifar

    batches = _write_cifar10(tmp_path)
    # torchvision pins the md5 of every real CIFAR-10 file (CIFAR10._check_integrity for the
    # batches, and _load_meta for batches.meta, both through cifar.check_integrity); files
    # written by a test cannot match them. Keep the existence check and skip only the md5.
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity",
                        lambda fpath, md5=None: os.path.isfile(fpath))
    return tmp_path, batches


def test_cifar_test_files_are_in_the_real_format(cifar_root):
    root, _ = cifar_root
    with open(root / "cifar-10-batches-py" / "data_batch_1", "rb") as f:
        entry = pickle.load(f, encoding="bytes")
    assert {b"data", b"labels", b"batch_label", b"filenames"} <= set(entry)
    assert entry[b"data"].shape == (4, 3072) and entry[b"data"].dtype == np.uint8
    with open(root / "cifar-10-batches-py" / "batches.meta", "rb") as f:
        meta = pickle.load(f, encoding="bytes")
    assert meta[b"label_names"][0] == b"airplane"


def test_cifar10_round_trips_pixels_labels_and_names(cifar_root):
    root, batches = cifar_root
    data = load(torchvision_datasets, "cifar10", root=root)
    assert data.x_train.shape == (20, 3, 32, 32) and data.x_test.shape == (6, 3, 32, 32)
    assert data.class_names == tuple(CIFAR_NAMES) and data.num_classes == 10

    # the planted pixel, channel order R, G, B
    assert data.x_train[5, :, 5, 7].tolist() == pytest.approx([200 / 255, 17 / 255, 99 / 255],
                                                              abs=1e-7)
    train_rows = np.concatenate([batches[f"data_batch_{k}"][0] for k in range(1, 6)])
    expected = torch.from_numpy(train_rows.reshape(-1, 3, 32, 32)).float() / 255
    assert torch.equal(data.x_train, expected)
    test_rows = batches["test_batch"][0]
    expected = torch.from_numpy(test_rows.reshape(-1, 3, 32, 32)).float() / 255
    assert torch.equal(data.x_test, expected)

    train_labels = [label for k in range(1, 6) for label in batches[f"data_batch_{k}"][1]]
    assert data.y_train.tolist() == train_labels
    assert data.y_test.tolist() == batches["test_batch"][1]
    assert data.y_train.dtype == torch.int64


def test_cifar10_image_size(cifar_root):
    root, _ = cifar_root
    data = load(torchvision_datasets, "cifar10", root=root, image_size=16)
    assert data.x_train.shape == (20, 3, 16, 16) and data.x_test.shape == (6, 3, 16, 16)
    assert data.x_train.min() >= 0 and data.x_train.max() <= 1


# ---------------------------------------------------------------- ImageNet folder layout

# one color per class, so that a loaded image tells which class folder it came from
COLORS = {"n02-bee": (0, 255, 0), "n01-ant": (255, 0, 0), "n03-cat": (0, 0, 255)}


def _write_images(folder: Path, per_class: int, fmt: str = "PNG") -> None:
    from PIL import Image

    sizes = [(40, 30), (30, 50), (64, 64), (33, 21), (50, 40)]
    for cls, color in COLORS.items():
        (folder / cls).mkdir(parents=True)
        for j in range(per_class):
            ext = "JPEG" if fmt == "JPEG" else "png"
            Image.new("RGB", sizes[j % len(sizes)], color).save(folder / cls / f"{j}.{ext}", fmt)
    (folder / "n01-ant" / "notes.txt").write_text("not an image")


def _check_colors(data: ImageData, tol: float) -> None:
    floats = data.floats()
    for x, y in [(floats.x_train, floats.y_train), (floats.x_test, floats.y_test)]:
        for img, label in zip(x, y, strict=True):
            color = torch.tensor(COLORS[data.class_names[label]], dtype=torch.float32) / 255
            assert torch.allclose(img.mean(dim=(1, 2)), color, atol=tol)


def test_imagenet_val_only_is_split_80_20(tmp_path):
    _write_images(tmp_path / "imagenet" / "val", per_class=5)
    data = load(imagenet, "imagenet", root=tmp_path, image_size=16)
    assert data.class_names == ("n01-ant", "n02-bee", "n03-cat")
    assert data.num_classes == 3
    assert data.x_train.shape == (12, 3, 16, 16) and data.x_test.shape == (3, 3, 16, 16)
    assert data.y_test.tolist() == [0, 1, 2]  # one test image per class
    assert torch.bincount(data.y_train).tolist() == [4, 4, 4]
    assert data.x_train.dtype == data.x_test.dtype == torch.uint8   # converted per batch
    _check_colors(data, tol=1e-6)

    again = load(imagenet, "imagenet", root=tmp_path, image_size=16)
    assert torch.equal(data.x_train, again.x_train) and torch.equal(data.y_test, again.y_test)


def test_imagenet_train_and_val_default_size(tmp_path):
    _write_images(tmp_path / "imagenet" / "train", per_class=2, fmt="JPEG")
    _write_images(tmp_path / "imagenet" / "val", per_class=1)
    data = load(imagenet, "imagenet", root=tmp_path)
    assert data.x_train.shape == (6, 3, 224, 224) and data.x_test.shape == (3, 3, 224, 224)
    assert data.y_train.tolist() == [0, 0, 1, 1, 2, 2]
    assert data.y_test.tolist() == [0, 1, 2]
    _check_colors(data, tol=0.02)  # JPEG is lossy


def test_imagenet_root_may_be_the_class_folder_root(tmp_path, monkeypatch):
    _write_images(tmp_path / "my-val", per_class=5)
    data = load(imagenet, "imagenet", root=tmp_path / "my-val", image_size=8)
    assert data.class_names == ("n01-ant", "n02-bee", "n03-cat")
    assert data.x_train.shape == (12, 3, 8, 8) and data.x_test.shape == (3, 3, 8, 8)

    monkeypatch.setenv("HARNESS_DATA", str(tmp_path))  # the env root needs imagenet/ inside
    with pytest.raises(DatasetNotFoundError):
        load(imagenet, "imagenet", image_size=8)


def test_imagenet_missing_says_where_and_how(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        load(imagenet, "imagenet", root=tmp_path)
    message = str(info.value)
    assert str(tmp_path / "imagenet") in message
    assert "cannot be downloaded" in message and "image-net.org" in message
    assert "--download" in message and "--data-root" in message
