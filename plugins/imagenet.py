"""Plugin ``imagenet``: ImageNet (or any image folder) and Imagenette in ImageFolder layout.

Two datasets share one loader:

* ``imagenet``: ImageNet (ILSVRC2012), or any folder of class folders, 224 px by default;
* ``imagenette``: Imagenette (fast.ai), the 10-class subset of ImageNet's photographs, read from
  ``<root>/imagenette/{train,val}/<wnid>/`` (only there: it is never looked for elsewhere, so
  no other folder is passed off as Imagenette), 64 px by default (small enough to train on a
  CPU; ``--image-size 224`` on a GPU), with the class names (``tench``, ``church``, ...)
  instead of the WordNet ids, Imagenette's own per-channel mean and std, and eps 0.03 like the
  paper's ImageNet. Its pages call it "ImageNet (Imagenette: 10 classes, N px)", never
  ImageNet.

What follows describes ``imagenet``; ``imagenette`` reads its one folder the same way.

Where the images are looked for, in this order:

1. ``<root>/imagenet``, where ``<root>`` is the data root (``--data-root``, else
   ``$HARNESS_DATA``, else ``./data``);
2. ``--data-root`` itself, when it is given: it may point straight at the ImageNet folder (the
   one holding ``train/`` and ``val/``) or at a folder of class folders.

The first of these that exists and holds images is used. Inside it, the expected layout is::

    <root>/imagenet/train/<class>/*.JPEG    (optional)
    <root>/imagenet/val/<class>/*.JPEG

with one folder per class (for ImageNet, the synset id, e.g. ``n01440764``). Class names are
the class folder names, sorted, and labels are their indices (as ImageFolder does); the class
list is the union over ``train/`` and ``val/``. Image files are those with an image extension
(``.jpg``, ``.jpeg``, ``.png``, ...; any case), searched recursively in each class folder.

What is refused, each with one line naming the file or folder (exit 2,
:class:`harness.util.errors.DatasetNotFoundError`):

* a symbolic link (to a file or a folder) whose real path lies outside the split folder it is in
  (``train/``, ``val/``, or the folder of class folders; each of these may itself be a link),
  and a folder link that leads back to a folder above it (a loop);
* the same real file reached twice (through links), which would put copies of one image in
  several places, possibly in both train and test;
* a class folder without images: it would become a class that no image has. Setting the
  environment variable ``HARNESS_IMAGENET_DROP_EMPTY=1`` drops such folders instead (a class
  then exists only if it has images in ``train/`` or ``val/``);
* an image PIL cannot decode (empty, truncated or not an image) or cannot open, and one of more
  than ``MAX_IMAGE_PIXELS`` (64 Mi) pixels, checked from its header before decoding.

Splits: with both ``train/`` and ``val/``, train is ``train/`` and test is ``val/``. With only
one of them, or with a folder that holds class folders directly, the images are split 80/20 with
a fixed seed (0), per class: 20% of each class's images (at least one where a class has two or
more) go to test, the rest to train. The split is the same on every load.

Each image is decoded with PIL (a JPEG at the smallest of 1/1, 1/2, 1/4, 1/8 scale that keeps
both sides at least the target size: libjpeg's DCT scaling), converted to RGB, resized so that
its shorter side is ``options.image_size`` (224 when unset; antialiased bilinear) and
center-cropped to a square of that size, giving ``N,3,H,W`` uint8 images (kept uint8 in memory
and converted to [0, 1] per batch: see :class:`harness.contracts.data.ImageData`). Decoding runs
in a
thread pool.

ImageNet cannot be downloaded automatically: get ILSVRC2012 from https://image-net.org and lay it
out as above. A missing folder raises :class:`harness.util.errors.DatasetNotFoundError` saying where
it looked.

Registration imports nothing heavy: torch, torchvision and PIL are imported when data loads.
"""

from __future__ import annotations

import os
import random
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from harness import DatasetNotFoundError, DatasetSpec, hookimpl

if TYPE_CHECKING:
    import torch

    from harness import DataOptions, ImageData

DEFAULT_IMAGE_SIZE = 224
SPLIT_SEED = 0
TEST_FRACTION = 0.2
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}
)

MAX_IMAGE_PIXELS = 64 * 1024 * 1024

IMAGENETTE_IMAGE_SIZE = 64
IMAGENETTE_CLASSES = {
    "n01440764": "tench", "n02102040": "English springer", "n02979186": "cassette player",
    "n03000684": "chain saw", "n03028079": "church", "n03394916": "French horn",
    "n03417042": "garbage truck", "n03425413": "gas pump", "n03445777": "golf ball",
    "n03888257": "parachute",
}
# Per-channel mean and std of the 9,469 Imagenette training images at 64 px, in [0, 1].
IMAGENETTE_MEAN = (0.4625, 0.4579, 0.4300)
IMAGENETTE_STD = (0.2682, 0.2650, 0.2886)
DROP_EMPTY_ENV = "HARNESS_IMAGENET_DROP_EMPTY"

Sample = tuple[Path, int]


def load_imagenet(options: DataOptions) -> ImageData:
    """Load the ImageFolder-layout images found under the data root (see the module docstring)."""
    base, looked = find_root(options)
    if base is None:
        raise _not_found(looked, options)
    return _read("imagenet", base, options.image_size or DEFAULT_IMAGE_SIZE,
                 lambda: _not_found(looked, options), both_splits=False)


def load_imagenette(options: DataOptions) -> ImageData:
    """Load Imagenette from ``<root>/imagenette/{train,val}`` (see the module docstring)."""
    base = options.resolved_root() / "imagenette"
    if not all(d.is_dir() for d in (base / "train", base / "val")):
        raise _imagenette_not_found(base)
    return _read("imagenette", base, options.image_size or IMAGENETTE_IMAGE_SIZE,
                 lambda: _imagenette_not_found(base), both_splits=True,
                 names=IMAGENETTE_CLASSES)


def _read(name: str, base: Path, size: int, not_found: Callable[[], DatasetNotFoundError], *,
          both_splits: bool, names: Mapping[str, str] | None = None) -> ImageData:
    """Dataset ``name`` from the folder ``base``, decoded at ``size`` x ``size``: a refused
    file or folder is one :class:`DatasetNotFoundError` naming the dataset; no images (in
    either split, with ``both_splits``) raises ``not_found()``. Class folder names are
    replaced by ``names`` when every one of them has a name there."""
    import torch

    from harness import ImageData, uint8_to_nchw

    try:
        classes, train, test = _samples(base)
        if (not (train and test)) if both_splits else (not train and not test):
            raise not_found()
        if names is not None and set(classes) <= set(names):
            classes = [names[folder] for folder in classes]
        x_train = uint8_to_nchw(_decode_all([p for p, _ in train], size))
        x_test = uint8_to_nchw(_decode_all([p for p, _ in test], size))
    except _Refused as exc:
        raise DatasetNotFoundError(f"dataset '{name}': {exc}") from None
    y_train = torch.tensor([label for _, label in train], dtype=torch.int64)
    y_test = torch.tensor([label for _, label in test], dtype=torch.int64)
    return ImageData(x_train, y_train, x_test, y_test,
                     num_classes=len(classes), class_names=tuple(classes))


def find_root(options: DataOptions) -> tuple[Path | None, list[Path]]:
    """The folder to read (None when no candidate holds images) and every folder looked at.

    ``--data-root`` itself is a candidate only when it is not a dataset root holding an
    ``imagenette/`` folder (whose class folders would otherwise pass for ImageNet's).
    """
    candidates = [options.resolved_root() / "imagenet"]
    if options.root is not None and not (Path(options.root) / "imagenette").is_dir():
        candidates.append(Path(options.root))
    for candidate in candidates:
        if candidate.is_dir() and (_split_dirs(candidate) or _has_class_dirs(candidate)):
            return candidate, candidates
    return None, candidates


def _split_dirs(base: Path) -> dict[str, Path]:
    return {name: base / name for name in ("train", "val") if (base / name).is_dir()}


def _has_class_dirs(folder: Path) -> bool:
    """Whether some subfolder of ``folder`` holds an image file (stops at the first found)."""
    for sub in folder.iterdir():
        if not sub.is_dir():
            continue
        for _, _, filenames in os.walk(sub):
            if any(Path(f).suffix.lower() in IMAGE_EXTENSIONS for f in filenames):
                return True
    return False


class _Refused(Exception):
    """A file or folder the loader refuses; :func:`_read` names the dataset."""


def _refuse(what: str) -> _Refused:
    return _Refused(what)


def _inside(path: Path, pool: Path) -> Path:
    """The real path of ``path``, refused when it lies outside the real path of ``pool``."""
    real = path.resolve()
    if not real.is_relative_to(pool.resolve()):
        raise _refuse(f"{path} is a link to {real}, outside the folder {pool}; links must stay "
                      "inside it (copy the files, or link the whole folder instead)")
    return real


def _images_in(folder: Path, pool: Path) -> list[Path]:
    """The image files under ``folder`` (a class folder of ``pool``), in a fixed order.

    Folder links are followed only when they lead inside ``pool`` and not back up to a folder
    that contains them; file links only when they lead inside ``pool``.
    """
    files: list[Path] = []
    start = _inside(folder, pool)
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        here = Path(dirpath)
        dirnames.sort()
        for name in dirnames:
            sub = here / name
            if sub.is_symlink():
                real = _inside(sub, pool)
                if here.resolve().is_relative_to(real) or start.is_relative_to(real):
                    raise _refuse(f"{sub} is a link to {real}, a folder that contains it (a "
                                  "loop); remove the link")
        for name in sorted(filenames):
            path = here / name
            if Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                if path.is_symlink():
                    _inside(path, pool)
                files.append(path)
    return files


def _samples(base: Path) -> tuple[list[str], list[Sample], list[Sample]]:
    """Class names, train samples and test samples for the folder ``base``."""
    splits = _split_dirs(base)
    pools = list(splits.values()) if splits else [base]
    listings: dict[Path, dict[str, list[Path]]] = {}
    drop_empty = os.environ.get(DROP_EMPTY_ENV, "") not in ("", "0")
    for pool in pools:
        listing: dict[str, list[Path]] = {}
        for folder in sorted(pool.iterdir()):
            if not folder.is_dir():
                continue
            files = _images_in(folder, pool)
            if files:
                listing[folder.name] = files
            elif not drop_empty:
                raise _refuse(f"class folder {folder} has no images; remove it or add images "
                              f"(or set {DROP_EMPTY_ENV}=1 to drop empty class folders)")
        listings[pool] = listing
    _check_distinct(listings)
    classes = sorted({name for listing in listings.values() for name in listing})
    index = {name: i for i, name in enumerate(classes)}

    if len(pools) == 2:
        train = [(p, index[c]) for c, files in listings[splits["train"]].items() for p in files]
        test = [(p, index[c]) for c, files in listings[splits["val"]].items() for p in files]
        return classes, train, test
    rng = random.Random(SPLIT_SEED)
    train, test = [], []
    for c, files in listings[pools[0]].items():
        files = list(files)
        rng.shuffle(files)
        n_test = max(1, round(TEST_FRACTION * len(files))) if len(files) >= 2 else 0
        test.extend((p, index[c]) for p in sorted(files[:n_test]))
        train.extend((p, index[c]) for p in sorted(files[n_test:]))
    return classes, train, test


def _check_distinct(listings: dict[Path, dict[str, list[Path]]]) -> None:
    """Refuse a real file reached by two paths (through links)."""
    seen: dict[Path, Path] = {}
    folders: dict[Path, Path] = {}  # resolved once per folder, not once per image
    for listing in listings.values():
        for files in listing.values():
            for path in files:
                if path.is_symlink():
                    real = path.resolve()
                else:
                    if path.parent not in folders:
                        folders[path.parent] = path.parent.resolve()
                    real = folders[path.parent] / path.name
                if real in seen:
                    raise _refuse(f"{path} and {seen[real]} are the same file {real} (through a "
                                  "link); an image must appear once; remove the link")
                seen[real] = path


def _decode_all(paths: Sequence[Path], size: int) -> torch.Tensor:
    """Decode, resize and center-crop ``paths`` in a thread pool into a uint8 N,3,size,size."""
    import torch

    out = torch.empty((len(paths), 3, size, size), dtype=torch.uint8)

    def work(i: int) -> None:
        out[i] = _decode(paths[i], size)

    from PIL import Image

    # Images over PIL's own warning threshold are refused by _decode (MAX_IMAGE_PIXELS is lower).
    with warnings.catch_warnings(), ThreadPoolExecutor() as pool:
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        list(pool.map(work, range(len(paths))))  # list() re-raises a worker's exception
    return out


def _decode(path: Path, size: int) -> torch.Tensor:
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms.v2 import functional as TF

    try:
        with Image.open(path) as img:
            pixels = img.width * img.height
            if pixels > MAX_IMAGE_PIXELS:
                raise _refuse(f"image {path} is {img.width}x{img.height} ({pixels} pixels), over "
                              f"the limit of {MAX_IMAGE_PIXELS}; shrink or remove it")
            if img.format == "JPEG":
                # decode at the smallest of 1/1, 1/2, 1/4, 1/8 scale that keeps both sides at
                # least ``size`` (libjpeg's DCT scaling): the same picture, decoded faster
                img.draft("RGB", (size, size))
            rgb = img.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        why = " ".join(str(exc).split()) or type(exc).__name__
        raise _refuse(f"cannot read image {path}: {why}; replace or remove it") from None
    rgb = TF.resize(rgb, [size], interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
    rgb = TF.center_crop(rgb, [size, size])
    return TF.pil_to_tensor(rgb)


def _not_found(looked: list[Path], options: DataOptions) -> DatasetNotFoundError:
    where = " and ".join(str(p.absolute()) for p in looked)
    nette = options.resolved_root() / "imagenette"
    hint = (f" ({nette.absolute()} holds Imagenette, the 10-class subset: use --dataset "
            "imagenette for it.)" if nette.is_dir() else "")
    return DatasetNotFoundError(
        f"dataset 'imagenet': no images found; looked in {where}.{hint} ImageNet cannot be "
        "downloaded automatically (--download cannot fetch it): get ILSVRC2012 from "
        "https://image-net.org, sort the images into one folder per class (synset id, e.g. "
        "n01440764) and put them in <root>/imagenet/val/<class>/*.JPEG (and optionally "
        "<root>/imagenet/train/<class>/; without train/, val/ is split 80/20), then pass "
        "--data-root <root> or set HARNESS_DATA=<root>. --data-root may also point straight "
        "at a folder of class folders."
    )


def _imagenette_not_found(base: Path) -> DatasetNotFoundError:
    return DatasetNotFoundError(
        f"dataset 'imagenette': Imagenette not found: {base.absolute()} must hold train/ and "
        "val/ with one folder of images per class (<wnid>/*.JPEG). Imagenette is fast.ai's "
        "10-class subset of ImageNet (tench, English springer, cassette player, chain saw, "
        "church, French horn, garbage truck, gas pump, golf ball, parachute); get imagenette2 "
        "(any size) from https://github.com/fastai/imagenette, extract it so that "
        "<root>/imagenette/train and <root>/imagenette/val exist, and pass --data-root <root> "
        "(or set HARNESS_DATA=<root>). In a checkout of this repository that has it, "
        "../shared/data (relative to the repository root) holds a copy: --data-root "
        "../shared/data."
    )


@hookimpl
def harness_register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """Register the ``imagenet`` and ``imagenette`` datasets."""
    register(DatasetSpec(
        name="imagenet",
        description="ImageNet (ILSVRC2012) from a local ImageFolder-layout folder, RGB 224x224",
        load=load_imagenet,
        default_eps=0.03,
        source=("local only, cannot be downloaded: get ILSVRC2012 from https://image-net.org "
                "and lay it out as <data root>/imagenet/val/<class>/*.JPEG (optionally also "
                "<data root>/imagenet/train/<class>/; without train/, val/ is split 80/20 with "
                "seed 0); --data-root may also point straight at the imagenet folder or at a "
                "folder of class folders"),
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
    ))
    register(DatasetSpec(
        name="imagenette",
        description="Imagenette: 10 ImageNet classes, real photographs, RGB, 64x64 unless "
                    "--image-size (224 on a GPU)",
        load=load_imagenette,
        default_eps=0.03,
        source=("local: fast.ai's imagenette2 (https://github.com/fastai/imagenette) as "
                "<data root>/imagenette/{train,val}/<wnid>/*.JPEG (9,469 train / 3,925 val "
                "images); ../shared/data (relative to the repository root) holds a copy"),
        mean=IMAGENETTE_MEAN,
        std=IMAGENETTE_STD,
    ))
