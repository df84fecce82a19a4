"""The ``imagenette`` dataset: its one folder, class names, default size, statistics and errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_datasets import SHARED_DATA, load, specs_of

from harness.util.errors import DatasetNotFoundError
from harness_plugins import imagenet

WNIDS = {"n01440764": (200, 30, 30), "n03028079": (30, 200, 30), "n03888257": (30, 30, 200)}


def _write_imagenette(root: Path, train: int = 3, val: int = 2, gray: bool = False) -> None:
    from PIL import Image

    for split, count in (("train", train), ("val", val)):
        for wnid, color in WNIDS.items():
            folder = root / "imagenette" / split / wnid
            folder.mkdir(parents=True)
            for j in range(count):
                image = Image.new("RGB", (224, 224), color)
                if gray and j == 0:
                    image = image.convert("L")  # Imagenette holds 242 grayscale images
                image.save(folder / f"{wnid}_{j}.JPEG", "JPEG")


def test_registered_as_its_own_dataset():
    spec = specs_of(imagenet)["imagenette"]
    assert spec.default_eps == 0.03
    assert spec.mean == imagenet.IMAGENETTE_MEAN and spec.std == imagenet.IMAGENETTE_STD
    assert "Imagenette" in spec.description and "imagenette" in spec.source


def test_loads_rgb_at_64_px_with_class_names(tmp_path):
    _write_imagenette(tmp_path, gray=True)
    stored = load(imagenet, "imagenette", root=tmp_path)
    # held as uint8 (a quarter of float32's memory), converted exactly on demand
    assert stored.x_train.dtype == stored.x_test.dtype == torch.uint8
    data = stored.floats()
    assert torch.equal(data.x_test, stored.x_test.float() / 255)
    assert data.class_names == ("tench", "church", "parachute")
    assert data.x_train.shape == (9, 3, 64, 64) and data.x_test.shape == (6, 3, 64, 64)
    assert data.y_train.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert data.y_test.tolist() == [0, 0, 1, 1, 2, 2]
    # every image, the grayscale ones included, has three channels of the right colour
    for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test)):
        for img, label in zip(x, y, strict=True):
            color = torch.tensor(list(WNIDS.values())[int(label)], dtype=torch.float32) / 255
            if torch.equal(img[0], img[1]):  # grayscale: its luminance in all three channels
                color = (color @ torch.tensor([0.299, 0.587, 0.114])).repeat(3)
            assert torch.allclose(img.mean(dim=(1, 2)), color, atol=0.03)
    gray = data.x_train[0]
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])


def test_image_size_option(tmp_path):
    _write_imagenette(tmp_path, train=1, val=1)
    data = load(imagenet, "imagenette", root=tmp_path, image_size=32)
    assert data.x_train.shape == (3, 3, 32, 32)


def test_missing_says_where_what_and_how(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        load(imagenet, "imagenette", root=tmp_path)
    message = str(info.value)
    assert "\n" not in message and info.value.exit_code == 2
    assert str((tmp_path / "imagenette").absolute()) in message
    assert "10-class subset of ImageNet" in message
    assert "github.com/fastai/imagenette" in message and "--data-root" in message


def test_val_alone_is_refused_not_split(tmp_path):
    _write_imagenette(tmp_path)
    import shutil

    shutil.rmtree(tmp_path / "imagenette" / "train")
    with pytest.raises(DatasetNotFoundError, match="must hold train/ and val/"):
        load(imagenet, "imagenette", root=tmp_path)


def test_damaged_image_is_named(tmp_path):
    _write_imagenette(tmp_path, train=1, val=1)
    bad = tmp_path / "imagenette" / "val" / "n03028079" / "n03028079_0.JPEG"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(DatasetNotFoundError) as info:
        load(imagenet, "imagenette", root=tmp_path)
    assert str(info.value).startswith("dataset 'imagenette': cannot read image")
    assert str(bad) in str(info.value)


def test_imagenet_does_not_pass_imagenette_off_as_imagenet(tmp_path):
    _write_imagenette(tmp_path)
    with pytest.raises(DatasetNotFoundError) as info:
        load(imagenet, "imagenet", root=tmp_path)
    assert "--dataset imagenette" in str(info.value)


@pytest.mark.skipif(not (SHARED_DATA / "imagenette").is_dir(),
                    reason="../shared/data/imagenette is absent in this checkout")
def test_the_shared_copy_has_the_official_split():
    classes, train, test = imagenet._samples(SHARED_DATA / "imagenette")
    assert classes == sorted(imagenet.IMAGENETTE_CLASSES)
    assert (len(train), len(test)) == (9469, 3925)
    assert torch.bincount(torch.tensor([y for _, y in test])).tolist() == [
        387, 395, 357, 386, 409, 394, 389, 419, 399, 390]
