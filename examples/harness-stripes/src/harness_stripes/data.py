"""The ``stripes`` images: four stripe orientations, generated from a fixed seed."""

from __future__ import annotations

import torch

from harness import DataOptions, ImageData

CLASSES = ("horizontal", "vertical", "diagonal", "anti-diagonal")
SIZE, N_TRAIN, N_TEST = 16, 2000, 500


def _images(n: int, size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    y = torch.randint(0, len(CLASSES), (n,), generator=generator)
    rows = torch.arange(size).view(1, size, 1)
    cols = torch.arange(size).view(1, 1, size)
    phase = torch.randint(0, 4, (n, 1, 1), generator=generator)
    coordinate = torch.stack([rows.expand(n, size, size), cols.expand(n, size, size),
                              (rows + cols).expand(n, size, size),
                              (rows - cols).expand(n, size, size)], dim=1)
    chosen = coordinate[torch.arange(n), y]
    stripes = ((chosen + phase) % 4 < 2).float()
    noise = torch.rand(n, size, size, generator=generator)
    x = (0.1 + 0.4 * stripes + 0.5 * noise).unsqueeze(1)  # stripes under strong noise
    return x, y


def make_stripes(options: DataOptions) -> ImageData:
    """The same 2000 training and 500 test images on every call (``options.image_size``
    sets their size; default 16x16)."""
    size = options.image_size or SIZE
    generator = torch.Generator().manual_seed(0)
    x_train, y_train = _images(N_TRAIN, size, generator)
    x_test, y_test = _images(N_TEST, size, generator)
    return ImageData(x_train, y_train, x_test, y_test, num_classes=len(CLASSES),
                     class_names=CLASSES)
