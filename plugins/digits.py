"""Plugin ``digits``: scikit-learn's bundled 8x8 handwritten digits.

The 1797 images ship inside scikit-learn (``sklearn.datasets.load_digits``), so this dataset
needs no files and never touches the network. Pixel values 0..16 are divided by 16 to lie in
[0, 1]; images are ``N,1,8,8`` float32 with int64 labels 0..9. The train/test split is fixed:
``train_test_split(test_size=0.2, random_state=0, stratify=y)``, which gives 1437 training and
360 test images, the same on every load.

``options.image_size``, when set, resizes the images (bilinear, antialiased, clamped to [0, 1]);
otherwise they keep their native 8x8 size.

Registration imports nothing heavy: scikit-learn and torch are imported when the data loads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from harness import DatasetSpec, hookimpl

if TYPE_CHECKING:
    from harness import DataOptions, ImageData

TEST_SIZE = 0.2
SPLIT_SEED = 0


def load_digits(options: DataOptions) -> ImageData:
    """Load the 8x8 digits with the fixed seeded, stratified 80/20 train/test split."""
    import torch
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    from harness import ImageData

    bunch = sk_load_digits()
    images = torch.from_numpy(bunch.images).to(torch.float32).div_(16.0).unsqueeze(1)
    labels = torch.from_numpy(bunch.target).to(torch.int64)
    index = list(range(len(labels)))
    train_idx, test_idx = train_test_split(
        index, test_size=TEST_SIZE, random_state=SPLIT_SEED, stratify=bunch.target
    )
    train_idx = torch.as_tensor(train_idx, dtype=torch.int64)
    test_idx = torch.as_tensor(test_idx, dtype=torch.int64)
    x_train, x_test = images[train_idx], images[test_idx]
    if options.image_size is not None and options.image_size != images.shape[-1]:
        x_train = _resize(x_train, options.image_size)
        x_test = _resize(x_test, options.image_size)
    return ImageData(
        x_train, labels[train_idx], x_test, labels[test_idx],
        num_classes=10,
        class_names=tuple(str(int(name)) for name in bunch.target_names),
    )


def _resize(x, size: int):
    import torch.nn.functional as F

    out = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                        align_corners=False)
    return out.clamp_(0.0, 1.0)


@hookimpl
def harness_register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """Register the ``digits`` dataset."""
    register(DatasetSpec(
        name="digits",
        default=True,
        description="scikit-learn's 8x8 handwritten digits (1797 images, 10 classes), bundled",
        load=load_digits,
        default_eps=0.1,
        source=("bundled with scikit-learn (sklearn.datasets.load_digits, the UCI optical "
                "recognition of handwritten digits test set); nothing to download. Split: "
                "train_test_split(test_size=0.2, random_state=0, stratify=y)"),
    ))
