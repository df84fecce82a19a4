"""Hardening of the dataset loaders (issue 13, class 6): damaged or hostile files on disk give one
line naming the file (exit 2), never a traceback, a loop or silently wrong data."""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from test_datasets import _write_cifar10, _write_images, load

from harness.util.errors import DatasetNotFoundError
from harness_plugins import imagenet, torchvision_datasets


def _one_line_error(module, name: str, **options) -> str:
    with pytest.raises(DatasetNotFoundError) as info:
        load(module, name, **options)
    message = str(info.value)
    assert "\n" not in message and info.value.exit_code == 2
    assert info.value.__cause__ is None
    return message


# ---------------------------------------------------------------- image folders: links


def test_link_loop_in_a_class_folder_is_refused(tmp_path):
    val = tmp_path / "imagenet" / "val"
    _write_images(val, per_class=1)
    (val / "n01-ant" / "loop").symlink_to(".")
    message = _one_line_error(imagenet, "imagenet", root=tmp_path, image_size=8)
    assert str(val / "n01-ant" / "loop") in message and "loop" in message


def test_link_to_the_parent_is_a_loop(tmp_path):
    root = tmp_path / "classes"  # --data-root straight at a folder of class folders
    _write_images(root, per_class=2)
    (root / "n02-bee" / "up").symlink_to("..")
    message = _one_line_error(imagenet, "imagenet", root=root, image_size=8)
    assert str(root / "n02-bee" / "up") in message


def test_links_leaving_the_split_folder_are_refused(tmp_path):
    outside = tmp_path / "outside"
    _write_images(outside, per_class=1)
    val = tmp_path / "imagenet" / "val"
    _write_images(val, per_class=2)
    (val / "n01-ant" / "stolen.png").symlink_to(outside / "n02-bee" / "0.png")
    message = _one_line_error(imagenet, "imagenet", root=tmp_path, image_size=8)
    assert str(val / "n01-ant" / "stolen.png") in message and "outside" in message

    (val / "n01-ant" / "stolen.png").unlink()
    (val / "n04-dog").symlink_to(outside / "n03-cat", target_is_directory=True)
    message = _one_line_error(imagenet, "imagenet", root=tmp_path, image_size=8)
    assert str(val / "n04-dog") in message and "outside" in message


def test_val_linking_into_train_is_refused(tmp_path):
    base = tmp_path / "imagenet"
    _write_images(base / "train", per_class=2)
    _write_images(base / "val", per_class=1)
    (base / "val" / "n01-ant" / "copy.png").symlink_to(base / "train" / "n01-ant" / "0.png")
    message = _one_line_error(imagenet, "imagenet", root=tmp_path, image_size=8)
    assert str(base / "val" / "n01-ant" / "copy.png") in message


def test_one_file_reached_twice_is_refused(tmp_path):
    val = tmp_path / "imagenet" / "val"
    _write_images(val, per_class=2)
    (val / "n01-ant" / "bees").symlink_to("../n02-bee")  # inside val, not a loop, duplicates
    message = _one_line_error(imagenet, "imagenet", root=tmp_path, image_size=8)
    assert "same file" in message and str(val / "n02-bee") in message


def test_a_linked_split_and_links_inside_it_still_load(tmp_path):
    real_val = tmp_path / "disk" / "val"
    _write_images(real_val, per_class=5)
    (tmp_path / "imagenet").mkdir()
    (tmp_path / "imagenet" / "val").symlink_to(real_val, target_is_directory=True)
    os.replace(real_val / "n01-ant" / "4.png", real_val / "n01-ant" / "4.data")
    (real_val / "n01-ant" / "4.png").symlink_to("4.data")  # a file link inside, reached once
    data = load(imagenet, "imagenet", root=tmp_path, image_size=8)
    assert len(data.y_train) == 12 and len(data.y_test) == 3


# ---------------------------------------------------------------- image folders: empty classes


def test_empty_class_folder_is_an_error(tmp_path):
    val = tmp_path / "imagenet" / "val"
    _write_images(val, per_class=5)
    (val / "n00-empty").mkdir()
    (val / "n00-empty" / "readme.txt").write_text("no images here")
    message = _one_line_error(imagenet, "imagenet", root=tmp_path, image_size=8)
    assert f"class folder {val / 'n00-empty'} has no images; remove it or add images" in message
    assert imagenet.DROP_EMPTY_ENV in message


def test_empty_class_folder_dropped_on_request(tmp_path, monkeypatch):
    val = tmp_path / "imagenet" / "val"
    _write_images(val, per_class=5)
    (val / "n00-empty").mkdir()
    monkeypatch.setenv(imagenet.DROP_EMPTY_ENV, "1")
    data = load(imagenet, "imagenet", root=tmp_path, image_size=8)
    assert data.class_names == ("n01-ant", "n02-bee", "n03-cat") and data.num_classes == 3


# ---------------------------------------------------------------- image folders: bad images


def _png_header(width: int, height: int) -> bytes:
    """A small PNG that declares ``width`` x ``height`` RGB: a header and a few bytes of pixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(bytes(3 * width + 1))) + chunk(b"IEND", b""))


def _bad_image(tmp_path: Path, name: str, content: bytes | None) -> tuple[Path, Path]:
    val = tmp_path / "imagenet" / "val"
    _write_images(val, per_class=2)
    bad = val / "n02-bee" / name
    if content is None:
        bad.symlink_to(val / "n02-bee" / "gone.png")  # dangling: cannot be opened
    else:
        bad.write_bytes(content)
    return tmp_path, bad


def _truncated_png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
        buf, "PNG")
    return buf.getvalue()[: len(buf.getvalue()) // 2]


@pytest.mark.parametrize(("name", "content", "why"), [
    ("zero.png", b"", "cannot read image"),
    ("text.png", b"this is not an image at all", "cannot read image"),
    ("truncated.png", _truncated_png(), "cannot read image"),
    ("dangling.png", None, "cannot read image"),
    ("bomb.png", _png_header(9000, 9000), "over the limit of 67108864"),
    ("pil-bomb.png", _png_header(20000, 20000), "cannot read image"),
])
def test_bad_image_is_one_line_naming_it(tmp_path, name, content, why):
    root, bad = _bad_image(tmp_path, name, content)
    with warnings.catch_warnings(record=True) as seen:  # no DecompressionBombWarning escapes
        warnings.simplefilter("always")
        message = _one_line_error(imagenet, "imagenet", root=root, image_size=8)
    assert str(bad) in message and why in message
    assert [str(w.message) for w in seen] == []


# ---------------------------------------------------------------- MNIST / Fashion-MNIST IDX files


def _write_idx(folder: Path, n: int = 6, labels: list[int] | None = None,
               prefix: str = "train") -> tuple[Path, Path]:
    """Write one split's images and labels IDX files in the real (decompressed) format."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    images = folder / f"{prefix}-images-idx3-ubyte"
    images.write_bytes(struct.pack(">IIII", 0x803, n, 28, 28)
                       + rng.integers(0, 256, (n, 28, 28), dtype=np.uint8).tobytes())
    label_file = folder / f"{prefix}-labels-idx1-ubyte"
    values = labels if labels is not None else [i % 10 for i in range(n)]
    label_file.write_bytes(struct.pack(">II", 0x801, len(values)) + bytes(values))
    return images, label_file


@pytest.fixture(params=[("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def idx_root(request, tmp_path):
    name, sub = request.param
    folder = tmp_path / sub / "raw"
    files = {"train": _write_idx(folder), "t10k": _write_idx(folder, n=4, prefix="t10k")}
    return name, tmp_path, files


def test_idx_files_written_here_load(idx_root):
    name, root, _ = idx_root
    data = load(torchvision_datasets, name, root=root)
    assert data.x_train.shape == (6, 1, 28, 28) and data.x_test.shape == (4, 1, 28, 28)
    assert data.y_train.tolist() == [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize(("split", "which", "damage", "why"), [
    ("train", 0, lambda raw: b"", "shorter than the 16-byte IDX header"),
    ("t10k", 1, lambda raw: b"", "shorter than the 8-byte IDX header"),
    ("train", 0, lambda raw: b"\x1f\x8b" + raw[2:], "magic number 0x1f8b0803"),
    ("train", 1, lambda raw: raw[:4] + b"\x00\x00\x00\x07" + raw[8:], "declares 15"),
    ("t10k", 0, lambda raw: raw[:-5], "bytes, but its header (4, 28, 28)"),
    ("train", 1, lambda raw: struct.pack(">II", 0x801, 5) + raw[8:13], "5 labels for the 6"),
])
def test_damaged_idx_file_is_one_line_naming_it(idx_root, split, which, damage, why):
    name, root, files = idx_root
    path = files[split][which]
    path.write_bytes(damage(path.read_bytes()))
    message = _one_line_error(torchvision_datasets, name, root=root)
    assert why in message
    assert str(path if "labels for" not in why else files[split][1]) in message


def test_label_out_of_range_is_named_at_load(idx_root):
    name, root, files = idx_root
    _write_idx(files["train"][0].parent, labels=[0, 1, 12, 3, 4, 5])
    message = _one_line_error(torchvision_datasets, name, root=root)
    assert str(files["train"][1]) in message and "label 12 at index 2 is outside 0..9" in message


# ---------------------------------------------------------------- CIFAR-10 batches


def test_cifar_batch_not_matching_its_checksum_is_named_and_not_unpickled(tmp_path, monkeypatch):
    import pickle

    _write_cifar10(tmp_path)  # real format, but not the real files: their MD5 differs
    loaded: list[str] = []
    real_load = pickle.load
    monkeypatch.setattr(pickle, "load", lambda f, **kw: loaded.append(f.name) or real_load(f, **kw))
    message = _one_line_error(torchvision_datasets, "cifar10", root=tmp_path)
    assert str(tmp_path / "cifar-10-batches-py" / "data_batch_1") in message
    assert "MD5" in message and loaded == []


@pytest.fixture
def cifar_pinned(tmp_path, monkeypatch):
    """A tiny CIFAR-10 written here, with torchvision's pinned MD5s set to those of these files
    (the real MD5 check stays on: only the pinned sums are the test's)."""
    import hashlib

    import torchvision.datasets.cifar as cifar

    _write_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"

    def md5(name: str) -> str:
        return hashlib.md5((folder / name).read_bytes()).hexdigest()

    cls = cifar.CIFAR10
    monkeypatch.setattr(cls, "train_list", [[n, md5(n)] for n, _ in cls.train_list])
    monkeypatch.setattr(cls, "test_list", [[n, md5(n)] for n, _ in cls.test_list])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5(cls.meta["filename"])})
    return tmp_path


@pytest.mark.parametrize("name", ["data_batch_3", "test_batch", "batches.meta"])
@pytest.mark.parametrize("damage", [b"", b"\x80\x02garbage", b"cos\nsystem\n(S'true'\ntR."])
def test_malformed_cifar_batch_is_named(cifar_pinned, name, damage):
    assert load(torchvision_datasets, "cifar10", root=cifar_pinned).x_train.shape[0] == 20
    path = cifar_pinned / "cifar-10-batches-py" / name
    path.write_bytes(damage)
    message = _one_line_error(torchvision_datasets, "cifar10", root=cifar_pinned)
    assert str(path) in message and "MD5" in message


def test_good_data_still_loads_unchanged(tmp_path):
    _write_images(tmp_path / "imagenet" / "val", per_class=5)
    data = load(imagenet, "imagenet", root=tmp_path, image_size=8)
    assert data.x_train.shape == (12, 3, 8, 8) and torch.bincount(data.y_train).tolist() == [4] * 3
