"""The torch corruptions of ``harness_plugins._corruptions_impl``: every corruption of both
suites at every severity and several sides, seeding, severity order, errors, hand-computed
values, and the torch stand-ins checked against scipy and PIL where those are installed."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness_plugins._corruptions_impl import (
    C_FAMILIES,
    MNIST_C,
    box_resize,
    corrupt,
    gaussian_filter,
    jpeg,
    plasma_fractal,
    sample,
    severities,
)

ALL = [("c", name) for name in C_FAMILIES] + [("mnist-c", name) for name in MNIST_C]
SIDES = (8, 28, 32, 64)
#: Corruptions that draw nothing at random: the seed must not matter.
FIXED = {("c", n) for n in ("defocus_blur", "zoom_blur", "brightness", "contrast", "pixelate",
                            "jpeg_compression")} | \
    {("mnist-c", n) for n in ("scale", "brightness", "stripe", "canny_edges")}
#: Glass blur is left out of the order check: its severities trade blur sigma against swap
#: iterations (CIFAR: 0.4 px and 1 pass at 3, 0.25 px and 2 passes at 4, 0.4 px and 2 at 5),
#: and more blur after the shuffle smooths the swaps back, so the mean change is not monotone
#: in the reference's own parameters.
ORDERED = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "motion_blur",
           "zoom_blur")


def images(n: int, channels: int, side: int, seed: int = 0) -> torch.Tensor:
    """Smooth structure plus texture, in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    smooth = F.interpolate(torch.rand(n, channels, 4, 4, generator=g), size=(side, side),
                           mode="bilinear", align_corners=True)
    return (0.6 * smooth + 0.4 * torch.rand(n, channels, side, side, generator=g)).clamp(0, 1)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_the_names_and_severities():
    assert len(C_FAMILIES) == 14 and "frost" not in C_FAMILIES
    assert C_FAMILIES[:3] == ("gaussian_noise", "shot_noise", "impulse_noise")
    assert C_FAMILIES[-1] == "jpeg_compression"
    assert len(MNIST_C) == 15 and MNIST_C[0] == "shot_noise" and MNIST_C[-1] == "canny_edges"
    assert all(severities("c", n) == (1, 2, 3, 4, 5) for n in C_FAMILIES)
    assert all(severities("mnist-c", n) == (1,) for n in MNIST_C)


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize(("suite", "name"), ALL, ids=[f"{s}:{n}" for s, n in ALL])
def test_every_corruption_keeps_shape_range_and_input(suite: str, name: str, side: int):
    for channels in (1, 3):
        # 8 tiny images, so that 1% impulse noise surely flips some of their 512 values
        x = images(8 if side < 16 else 2, channels, side)
        before = x.clone()
        for severity in severities(suite, name):
            y = corrupt(suite, name, x, severity, gen(severity))
            where = f"{suite}:{name} side {side} C={channels} severity {severity}"
            assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device, where
            assert torch.isfinite(y).all(), where
            assert y.min() >= 0 and y.max() <= 1, where
            assert torch.equal(x, before), f"{where} changed its input"
            assert not torch.equal(y, x), f"{where} left the images as they were"


@pytest.mark.parametrize(("suite", "name"), ALL, ids=[f"{s}:{n}" for s, n in ALL])
def test_the_generator_decides_everything(suite: str, name: str):
    x = images(8, 1, 28, seed=3)
    severity = severities(suite, name)[-1]
    first = corrupt(suite, name, x, severity, gen(11))
    assert torch.equal(first, corrupt(suite, name, x, severity, gen(11)))
    other = corrupt(suite, name, x, severity, gen(12))
    if (suite, name) in FIXED:
        assert torch.equal(first, other)
    else:
        assert not torch.equal(first, other)


def test_no_global_generator_is_touched():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    for suite, name in ALL:
        corrupt(suite, name, images(1, 3, 16), 1, gen(0))
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("side", (8, 32, 64))
@pytest.mark.parametrize("name", ORDERED)
def test_noise_and_blur_grow_with_severity(name: str, side: int):
    for channels in (1, 3):
        x = images(2, channels, side, seed=1)
        change = [(corrupt("c", name, x, s, gen(7)) - x).abs().mean().item()
                  for s in severities("c", name)]
        assert change == sorted(change), (name, side, channels, change)
        assert change[-1] > change[0], (name, side, channels, change)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: severities("imagenet-c", "fog"), "accepted are 'c' and 'mnist-c'"),
    (lambda: severities("c", "frost"), "accepted are gaussian_noise, shot_noise"),
    (lambda: corrupt("c", "shear", images(1, 3, 8), 1, gen(0)), "unknown c corruption 'shear'"),
    (lambda: corrupt("mnist-c", "snow", images(1, 1, 8), 1, gen(0)), "canny_edges"),
    (lambda: corrupt("c", "fog", images(1, 3, 8), 6, gen(0)), "accepted are 1, 2, 3, 4, 5"),
    (lambda: corrupt("c", "fog", images(1, 3, 8), 0, gen(0)), "severity 0"),
    (lambda: corrupt("c", "fog", images(1, 3, 8), 1.0, gen(0)), "severity 1.0"),
    (lambda: corrupt("mnist-c", "fog", images(1, 1, 8), 2, gen(0)), "accepted are 1$"),
    (lambda: corrupt("c", "fog", torch.rand(3, 8, 8), 1, gen(0)), r"\(N, C, H, W\)"),
    (lambda: corrupt("c", "fog", torch.rand(1, 2, 8, 8), 1, gen(0)), "C 1 or 3"),
    (lambda: corrupt("c", "fog", torch.ones(1, 1, 8, 8, dtype=torch.uint8), 1, gen(0)),
     "float"),
])
def test_bad_arguments_are_value_errors(call, message: str):
    with pytest.raises(ValueError, match=message) as caught:
        call()
    assert "\n" not in str(caught.value)


def test_brightness_and_contrast_follow_the_reference_formulas():
    colour = torch.tensor([0.2, 0.4, 0.6])[None, :, None, None].expand(1, 3, 32, 32)
    # skimage HSV: V = 0.6 becomes 0.65 (CIFAR severity 1), hue and saturation kept
    expected = colour * (0.6 + 0.05) / 0.6
    torch.testing.assert_close(corrupt("c", "brightness", colour, 1, gen(0)), expected)
    grey = torch.full((1, 1, 64, 64), 0.95)              # Tiny-ImageNet severity 1: + 0.1
    assert torch.equal(corrupt("c", "brightness", grey, 1, gen(0)), torch.ones_like(grey))
    torch.testing.assert_close(corrupt("mnist-c", "brightness", grey * 0.2, 1, gen(0)),
                               grey * 0.2 + 0.5)
    board = 0.2 + 0.6 * ((torch.arange(32)[:, None] + torch.arange(32)) % 2).float()
    board = board.expand(1, 3, 32, 32)                  # mean 0.5, CIFAR contrast 0.75
    torch.testing.assert_close(corrupt("c", "contrast", board, 1, gen(0)),
                               0.5 + (board - 0.5) * 0.75)


def test_gaussian_noise_and_stripe_by_hand():
    x = images(2, 3, 32)
    noise = torch.randn(x.shape, generator=gen(5))
    torch.testing.assert_close(corrupt("c", "gaussian_noise", x, 1, gen(5)),
                               (x + 0.04 * noise).clamp(0, 1))
    digit = images(1, 1, 28)
    striped = corrupt("mnist-c", "stripe", digit, 1, gen(0))
    torch.testing.assert_close(striped[..., :7], 1 - digit[..., :7])
    torch.testing.assert_close(striped[..., 21:], 1 - digit[..., 21:])
    assert torch.equal(striped[..., 7:21], digit[..., 7:21])


def test_other_dtypes_are_kept():
    x = images(1, 3, 16).double()
    y = corrupt("c", "motion_blur", x, 3, gen(0))
    assert y.dtype == torch.float64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_a_cuda_batch_stays_on_its_device_and_is_reproducible():
    x = images(2, 3, 32).cuda()
    for suite, name in ALL:
        a = corrupt(suite, name, x, 1, torch.Generator(device="cuda").manual_seed(0))
        b = corrupt(suite, name, x, 1, torch.Generator(device="cuda").manual_seed(0))
        assert a.device == x.device and torch.equal(a, b), name
        c = corrupt(suite, name, x, 1, gen(0))           # a CPU generator for CUDA images
        assert c.device == x.device


# ------------------------------------------------------------------ the stand-ins


def test_gaussian_filter_and_sampling_match_scipy():
    ndimage = pytest.importorskip("scipy.ndimage")
    image = torch.rand(17, 21, generator=gen(0), dtype=torch.float64)
    batch = image[None, None]
    for sigma, mode, scipy_mode, truncate in [(0.7, "edge", "nearest", 4.0),
                                              (1.3, "symmetric", "reflect", 3.0),
                                              (25.0, "symmetric", "reflect", 3.0),
                                              (1.0, "constant", "constant", 4.0)]:
        expected = ndimage.gaussian_filter(image.numpy(), sigma, mode=scipy_mode,
                                           truncate=truncate)
        got = gaussian_filter(batch, sigma, mode, truncate)[0, 0]
        torch.testing.assert_close(got, torch.from_numpy(expected))
    rows = torch.arange(17.0, dtype=torch.float64)[:, None] + 3 * torch.randn(17, 21,
                                                                              generator=gen(1))
    cols = torch.arange(21.0, dtype=torch.float64) + 3 * torch.randn(17, 21, generator=gen(2))
    for padding, scipy_mode in [("symmetric", "reflect"), ("reflect101", "mirror"),
                                ("zeros", "grid-constant")]:
        expected = ndimage.map_coordinates(image.numpy(), [rows.numpy(), cols.numpy()],
                                           order=1, mode=scipy_mode)
        got = sample(batch, rows[None], cols[None], padding)[0, 0]
        torch.testing.assert_close(got, torch.from_numpy(expected))


def test_box_resize_and_jpeg_match_pil():
    image_module = pytest.importorskip("PIL.Image")
    pixels = (torch.rand(3, 32, 32, generator=gen(0)) * 255).round().to(torch.uint8)
    array = pixels.permute(1, 2, 0).numpy()
    for size in (30, 27, 9, 45):
        resized = image_module.fromarray(array).resize((size, size), image_module.BOX)
        expected = torch.from_numpy(np.array(resized)).permute(2, 0, 1)
        got = box_resize(pixels[None].double(), size, size)[0]
        assert (got - expected.double()).abs().max() <= 1       # PIL rounds to uint8
    smooth = F.interpolate(pixels[None].float(), scale_factor=0.25, mode="area")
    smooth = F.interpolate(smooth, size=(32, 32), mode="bilinear").round().to(torch.uint8)
    for quality in (80, 25, 7):
        buffer = io.BytesIO()
        image_module.fromarray(smooth[0].permute(1, 2, 0).numpy()).save(
            buffer, "JPEG", quality=quality)
        expected = torch.from_numpy(
            np.array(image_module.open(buffer))).permute(2, 0, 1)
        got = jpeg(smooth.float() / 255, quality)[0] * 255
        assert torch.equal(got.round().to(torch.uint8), expected)


def test_plasma_fractal_is_in_unit_range_and_seeded():
    maps = plasma_fractal(2, 32, 2.0, gen(0))
    assert maps.shape == (2, 32, 32) and maps.amin() == 0 and maps.amax() == 1
    assert torch.equal(maps, plasma_fractal(2, 32, 2.0, gen(0)))


def test_the_plugin_lists_the_corruptions_the_functions_provide():
    from harness_plugins import corruptions

    assert corruptions.C_FAMILIES == C_FAMILIES and corruptions.MNIST_C == MNIST_C
