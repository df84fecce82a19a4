"""``--augment flip-crop``: what it does to a minibatch, where it applies, who refuses it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from harness.planning.plan import digest
from harness.testing import tiny_classifier, tiny_image_data
from harness.train.augment import AUGMENTERS, epoch_augmenter, flip_crop
from harness.train.loop import TrainContext, TrainData, TrainSettings, train_supervised
from harness.util.errors import UsageError
from harness_plugins import art_defenses


def _ctx(**kw) -> TrainContext:
    settings = TrainSettings(**{"epochs": 2, "batch_size": 32, "lr": 1e-2, "seed": 0, **kw})
    return TrainContext(settings=settings, device=torch.device("cpu"), dataset_eps=0.1,
                        show_progress=False)


def _candidates(image: torch.Tensor, pad: int) -> list[torch.Tensor]:
    """Every flip and shift of ``image`` that flip-crop may return."""
    h, w = image.shape[-2:]
    out = []
    for flipped in (image, image.flip(-1)):
        padded = F.pad(flipped[None], (pad,) * 4, mode="reflect")[0]
        out += [padded[:, dy:dy + h, dx:dx + w] for dy in range(2 * pad + 1)
                for dx in range(2 * pad + 1)]
    return out


def test_each_image_is_a_flip_and_shift_of_itself():
    x = torch.rand(64, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    out = flip_crop(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert 0 <= out.min() and out.max() <= 1
    kinds = set()
    for image, augmented in zip(x, out, strict=True):
        matches = [i for i, c in enumerate(_candidates(image, pad=2)) if torch.equal(c, augmented)]
        assert matches, "an output image is not a flip/shift of its input"
        kinds.add(matches[0])
    assert len(kinds) > 10  # the flips and shifts vary from image to image


def test_seeded_and_not_the_identity():
    x = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    settings = TrainSettings(augment="flip-crop")
    a, b = epoch_augmenter(settings, 0)(x), epoch_augmenter(settings, 0)(x)
    c = epoch_augmenter(settings, 1)(x)
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, x)
    assert epoch_augmenter(TrainSettings(), 0) is None


def test_every_declared_augmentation_has_its_function():
    from harness.contracts.settings import AUGMENTATIONS

    assert set(AUGMENTERS) == set(AUGMENTATIONS)


def test_settings_check_it_and_key_it_only_when_set():
    with pytest.raises(ValueError, match="flip-crop"):
        TrainSettings(augment="mixup")
    assert "augment" not in TrainSettings().as_dict()  # keys of earlier models unchanged
    assert TrainSettings(augment="flip-crop").as_dict()["augment"] == "flip-crop"
    assert digest(TrainSettings().as_dict()) != digest(TrainSettings(augment="flip-crop").as_dict())


def _train(augment: str | None, defense=None) -> torch.Tensor:
    data = TrainData.split(tiny_image_data(), 0.1, 0)
    model = tiny_classifier(num_classes=data.num_classes)
    ctx = _ctx(augment=augment)
    if defense is None:
        train_supervised(model, data, ctx)
    else:
        defense.train(model, data, ctx)
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_the_harness_epoch_augments_reproducibly():
    plain, augmented, again = _train(None), _train("flip-crop"), _train("flip-crop")
    assert torch.equal(augmented, again)
    assert not torch.allclose(plain, augmented)


def _art(name: str):
    spec = next(d for d in art_defenses.TRAINING if d.name == name).spec()
    return spec.build(spec.resolve_options({}, dataset_eps=0.1))


def test_fbf_augments_and_library_fits_refuse():
    assert not torch.allclose(_train(None, _art("fbf")), _train("flip-crop", _art("fbf")))
    with pytest.raises(UsageError, match="cannot augment each minibatch"):
        _train("flip-crop", _art("madry-pgd"))


def test_cli_refuses_an_unknown_augmentation(capsys):
    from harness.cli import main

    with pytest.raises(SystemExit) as info:
        main(["bench", "--augment", "cutout"])
    assert info.value.code == 2
    assert "flip-crop" in capsys.readouterr().err


def test_a_defense_that_cannot_augment_is_refused_before_any_work(isolated_home, capsys):
    from harness.cli import main

    specs = {d.name: d.spec() for d in art_defenses.TRAINING}
    assert specs["fbf"].augments and not specs["madry-pgd"].augments
    assert main(["bench", "--dataset", "digits", "--defense", "madry-pgd,trades", "--augment",
                 "flip-crop", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "defenses madry-pgd, trades train inside a library's own fit" in err
    assert not list(isolated_home.rglob("*.safetensors"))      # nothing was trained
