"""Training-data augmentation of a minibatch (``--augment``), the same for every defense.

``flip-crop`` is the standard augmentation of natural-image training (He et al. 2016; the
CIFAR-10 and ImageNet recipes of the adversarial-training papers): each image is mirrored left
to right with probability 1/2 and translated by up to 1/8 of its side in each direction,
filling the border by reflection (a random crop of the reflect-padded image). It draws from its
own seeded generator, so a run's trained weights are reproducible, and it never leaves [0, 1].

It is applied to each training minibatch before the defense sees it (Algorithm 2 then crafts
its FGSM examples on the augmented images); validation and test images are never augmented.
Defenses that hand the whole training set to a library's own ``fit`` cannot take it and refuse
it (:func:`refuse_augment`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from harness.contracts.settings import TrainSettings
from harness.util.errors import UsageError
from harness.util.seeds import derive_seed


def epoch_augmenter(settings: TrainSettings,
                    epoch: int) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The minibatch augmentation of ``settings.augment`` for epoch ``epoch`` (None: none),
    drawing from its own generator seeded from ``(settings.seed, "augment", epoch)``."""
    if settings.augment is None:
        return None
    augment = AUGMENTERS[settings.augment]
    generator = torch.Generator().manual_seed(
        derive_seed(settings.seed, "augment", f"epoch-{epoch}"))
    return lambda x: augment(x, generator)


def flip_crop(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image flipped left-right with probability 1/2 and shifted by up to ``side // 8``
    pixels in each direction (reflect padding), drawn per image from ``generator``."""
    n, _, h, w = x.shape
    flip = torch.rand(n, generator=generator) < 0.5
    pad = max(h, w) // 8
    shift_y = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    shift_x = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    out = torch.where(flip.to(x.device)[:, None, None, None], x.flip(3), x)
    if pad == 0:
        return out
    padded = F.pad(out, (pad, pad, pad, pad), mode="reflect")
    rows = (torch.arange(h)[None, :] + shift_y[:, None]).to(x.device)
    cols = (torch.arange(w)[None, :] + shift_x[:, None]).to(x.device)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


# Every name of harness.contracts.settings.AUGMENTATIONS, with its function (x, generator) -> x.
AUGMENTERS: dict[str, Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = {
    "flip-crop": flip_crop,
}


def refuse_augment(augment: str | None, owner: str) -> None:
    """Raise :class:`UsageError` when ``augment`` is set for ``owner``, a defense or model
    whose training runs inside a library's own ``fit`` and cannot augment each minibatch."""
    if augment is not None:
        raise UsageError(
            f"{owner} trains inside a library's own fit and cannot augment each minibatch; "
            f"drop --augment {augment} for it (the defenses trained by the harness's own epoch, "
            "and every torch model, take it)")
