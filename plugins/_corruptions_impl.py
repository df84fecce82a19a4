"""The torch side of the ``corruptions`` plugin: common image corruptions, the CIFAR-10-C /
ImageNet-C families and MNIST-C, and the torch stand-ins for the image routines the
reference code calls.

Two suites, kept apart because they share names with different parameters:

* ``"c"`` (:data:`C_FAMILIES`, severities 1 to 5): Hendrycks & Dietterich 2019. Algorithms and
  per-severity parameters from hendrycks/robustness: ``ImageNet-C/create_c/make_cifar_c.py``
  (32 px table), ``ImageNet-C/create_c/make_tinyimagenet_c.py`` (64 px) and
  ``ImageNet-C/imagenet_c/imagenet_c/corruptions.py`` (224 px). The table follows the image
  side (the smaller of H and W): up to 48 px the CIFAR table, up to 128 px the Tiny-ImageNet
  table, beyond it the ImageNet one. Spatial parameters (blur radii and sigmas, motion-blur
  radius and sigma, glass-blur shifts, rounded and at least 1 px, elastic displacement,
  smoothing and affine jitter, the extent of the fog fractal) are scaled by side / table side,
  so any side works. Zoom factors, pixelate fractions, noise levels and JPEG qualities are not
  in pixels and are kept.
  ``frost`` is left out: it blends Hendrycks' frost photographs, which are not available
  offline, and nothing is put in their place.
* ``"mnist-c"`` (:data:`MNIST_C`, severity 1 only): Mu & Gilmer 2019, google-research/mnist-c
  ``corruptions.py``. MNIST-C has one setting per corruption, each function's default severity
  there (the dataset calls them with their defaults); its 28 px parameters are scaled by
  side / 28. The drawn strokes (dotted_line, zigzag, stripe) are the reference's 28 x 28
  patterns evaluated at the pixel centres of the actual image.

What stands in for what (the helpers come first in this module):
ImageMagick's motion blur (Wand) -> per-image gathers of the same taps and Gaussian weights;
``skimage.filters.gaussian`` / scipy ``gaussian_filter`` -> separable ``conv2d`` with the same
radius rule and border modes; OpenCV ``filter2D`` / ``GaussianBlur`` (defocus disk) ->
``conv2d``; scipy ``zoom`` (``clipped_zoom``) -> a continuous bilinear zoom about the centre
by ``grid_sample``; OpenCV ``warpAffine``, scipy ``map_coordinates`` and skimage ``warp`` ->
``grid_sample`` with matching borders; the numpy diamond-square ``plasma_fractal`` -> the same
algorithm in torch; skimage HSV brightness -> its closed form (channels scaled by V'/V);
skimage ``random_noise`` s&p and numpy Poisson -> ``torch.rand`` / ``torch.poisson``; PIL
BOX resize -> PIL's coefficients as matrices; PIL JPEG -> ``torchvision.io`` libjpeg;
skimage ``canny`` -> a torch Canny (hysteresis by repeated dilation until stable).

Deviations: everything stays in float (the references round to uint8 between steps, e.g. glass
blur's shuffle and snow's PNG round trip; JPEG alone goes through uint8). ``clipped_zoom``
crops ceil(h / z) pixels at an integer offset, which anchors its zoom near the top-left
corner, makes the true factor (ch - 1) / (out - 1) and turns factors under 1 + 1 / side into
no-ops; an exact zoom about the centre replaces it. The defocus disk is redrawn at radius r k
(anti-alias sigma too) on images larger than the table's side; on smaller ones the table-side
kernel's taps are moved to k times their offsets and split bilinearly, since a hard disk
narrower than a pixel would vanish (disks wider than 8 px use an integer half-width). On
colour images MNIST-C's strokes and grey mud go on every channel and its Canny runs per
channel; on grey images snow's grey level is the image itself. The glass-blur swap loop is
sequential by nature and runs in Python over an index list: the slow one on large images.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.io import decode_jpeg, encode_jpeg

F64 = torch.float64

# ------------------------------------------------------------------ randomness


def uniform(shape: tuple[int, ...], low: float, high: float, gen: torch.Generator,
            like: Tensor) -> Tensor:
    """U[low, high) drawn on the generator's device, moved to ``like``'s device and dtype."""
    u = torch.rand(shape, generator=gen, device=gen.device, dtype=F64)
    return (low + (high - low) * u).to(like.device, like.dtype)


def normal(shape: tuple[int, ...], gen: torch.Generator, like: Tensor) -> Tensor:
    """N(0, 1) drawn on the generator's device, moved to ``like``'s device and dtype."""
    return torch.randn(shape, generator=gen, device=gen.device).to(like.device, like.dtype)


def signs(shape: tuple[int, ...], gen: torch.Generator, like: Tensor) -> Tensor:
    """Random -1 or +1 (``np.random.choice([-1, 1])``)."""
    bits = torch.randint(0, 2, shape, generator=gen, device=gen.device)
    return (2 * bits - 1).to(like.device, like.dtype)


def poisson(rate: Tensor, gen: torch.Generator) -> Tensor:
    """Poisson counts of mean ``rate`` (``np.random.poisson``)."""
    return torch.poisson(rate.to(gen.device), generator=gen).to(rate.device)


def salt_and_pepper(x: Tensor, amount: float, gen: torch.Generator) -> Tensor:
    """``skimage.util.random_noise(mode='s&p')``: each value flips with probability ``amount``,
    to 1 or 0 with even odds."""
    flipped = uniform(tuple(x.shape), 0, 1, gen, x) < amount
    salted = uniform(tuple(x.shape), 0, 1, gen, x) < 0.5
    return torch.where(flipped, salted.to(x.dtype), x)


# ------------------------------------------------------------------ borders and filters


def _border_index(n: int, pad: int, mode: str, device: torch.device) -> Tensor:
    """Indices into a length-n axis padded by ``pad`` on both sides, any pad length."""
    i = torch.arange(-pad, n + pad, device=device)
    if mode == "edge":            # scipy 'nearest', ImageMagick's default edge pixels
        return i.clamp(0, n - 1)
    if mode == "symmetric":       # scipy 'reflect': d c b a | a b c d | d c b a
        i = i.remainder(2 * n)
        return torch.where(i >= n, 2 * n - 1 - i, i)
    if n == 1:                    # 'reflect101', OpenCV's default: d c b | a b c d | c b a
        return torch.zeros_like(i)
    i = i.remainder(2 * n - 2)
    return torch.where(i >= n, 2 * n - 2 - i, i)


def pad(x: Tensor, ph: int, pw: int, mode: str) -> Tensor:
    """Pad the last two axes by ``ph`` rows and ``pw`` columns on each side; ``mode`` is
    'constant' (zeros), 'edge', 'symmetric' or 'reflect101'."""
    if mode == "constant":
        return F.pad(x, (pw, pw, ph, ph))
    rows = _border_index(x.shape[-2], ph, mode, x.device)
    cols = _border_index(x.shape[-1], pw, mode, x.device)
    return x.index_select(-2, rows).index_select(-1, cols)


def separable_filter(x: Tensor, k_rows: Tensor, k_cols: Tensor, mode: str) -> Tensor:
    """Correlate every channel with the outer product of two odd 1D kernels (rows, columns)."""
    n, c, h, w = x.shape
    y = pad(x.reshape(n * c, 1, h, w), k_rows.numel() // 2, k_cols.numel() // 2, mode)
    y = F.conv2d(y, k_cols.to(x).view(1, 1, 1, -1))
    y = F.conv2d(y, k_rows.to(x).view(1, 1, -1, 1))
    return y.reshape(n, c, h, w)


def gaussian_filter(x: Tensor, sigma: float, mode: str = "edge", truncate: float = 4.0) -> Tensor:
    """``skimage.filters.gaussian`` / ``scipy.ndimage.gaussian_filter`` on each channel alone:
    radius int(truncate * sigma + 0.5), no filtering at all when that radius is 0."""
    radius = int(truncate * sigma + 0.5)
    if sigma <= 1e-15 or radius == 0:
        return x
    t = torch.arange(-radius, radius + 1, dtype=F64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    return separable_filter(x, k, k, mode)


def disk_kernel(radius: float, alias_blur: float) -> Tensor:
    """The references' ``disk``: an aliased disk, normalised, then ``cv2.GaussianBlur`` (3x3, or
    5x5 past radius 8, sigma ``alias_blur``), cropped to its non-zero support."""
    half, ksize = (8, 3) if radius <= 8 else (math.ceil(radius), 5)
    t = torch.arange(-half, half + 1, dtype=F64)
    disk = ((t[:, None] ** 2 + t[None, :] ** 2) <= radius ** 2).to(F64)
    disk = disk / disk.sum()
    g = torch.exp(-((torch.arange(ksize, dtype=F64) - ksize // 2) ** 2) / (2 * alias_blur ** 2))
    kernel = separable_filter(disk[None, None], g / g.sum(), g / g.sum(), "reflect101")[0, 0]
    reach = int((kernel.nonzero() - half).abs().max())
    return kernel[half - reach:half + reach + 1, half - reach:half + reach + 1]


def defocus_kernel(radius: float, alias_blur: float, k: float) -> Tensor:
    """The disk kernel for an image k times the table's side. k >= 1: drawn at radius r k with
    anti-alias sigma scaled alike. k < 1: the table-side kernel with its taps moved to k times
    their offsets and split bilinearly between pixels (a hard disk narrower than a pixel would
    otherwise vanish), so sub-pixel blurs still mix neighbours and the weights still sum to 1."""
    if k >= 1:
        return disk_kernel(radius * k, alias_blur * k)
    ref = disk_kernel(radius, alias_blur)
    half = ref.shape[0] // 2
    reach = math.ceil(half * k)
    moved = torch.arange(-half, half + 1, dtype=F64) * k
    grid = torch.arange(-reach, reach + 1, dtype=F64)
    splat = (1 - (grid[:, None] - moved[None, :]).abs()).clamp(min=0)   # (2 reach + 1, taps)
    return splat @ ref @ splat.T


def filter2d(x: Tensor, kernel: Tensor, mode: str = "reflect101") -> Tensor:
    """``cv2.filter2D``: correlate every channel with one odd-sized 2D kernel."""
    n, c, h, w = x.shape
    y = pad(x.reshape(n * c, 1, h, w), kernel.shape[0] // 2, kernel.shape[1] // 2, mode)
    return F.conv2d(y, kernel.to(x)[None, None]).reshape(n, c, h, w)


def motion_blur(x: Tensor, radius: float, sigma: float, angles: Tensor) -> Tensor:
    """ImageMagick's ``MotionBlurImage`` (what Wand's motion_blur calls), one angle (degrees)
    per image: 2 ceil(radius) + 1 taps at offsets round(i cos a), round(i sin a), weighted
    exp(-i^2 / 2 sigma^2) and normalised, edge pixels outside the image."""
    n, c, h, w = x.shape
    i = torch.arange(2 * math.ceil(radius) + 1, dtype=F64)
    taps = torch.exp(-(i ** 2) / (2 * max(sigma, 1e-6) ** 2))
    weights: list[float] = (taps / taps.sum()).tolist()
    a = torch.deg2rad(angles.detach().to("cpu", F64))[:, None]
    dx = torch.ceil(i * torch.cos(a) - 0.5).long()          # (N, taps), as ImageMagick rounds
    dy = torch.ceil(i * torch.sin(a) - 0.5).long()
    rows = (torch.arange(h)[None, None] + dy[..., None]).clamp(0, h - 1).to(x.device)
    cols = (torch.arange(w)[None, None] + dx[..., None]).clamp(0, w - 1).to(x.device)
    out = torch.zeros_like(x)
    for tap, weight in enumerate(weights):
        if weight < 1e-12:
            continue
        shifted = x.gather(2, rows[:, tap, None, :, None].expand(n, c, h, w))
        shifted = shifted.gather(3, cols[:, tap, None, None, :].expand(n, c, h, w))
        out = out + weight * shifted
    return out


# ------------------------------------------------------------------ resampling


def sample(x: Tensor, rows: Tensor, cols: Tensor, padding: str) -> Tensor:
    """Bilinear value of x at pixel coordinates (rows, cols), each (N, H', W'). ``padding``:
    'zeros' (skimage warp's cval 0), 'edge', 'reflect101' (cv2.warpAffine's BORDER_REFLECT_101)
    or 'symmetric' (scipy map_coordinates' mode 'reflect'). Stands in for scipy/skimage/OpenCV
    order-1 interpolation via ``grid_sample``."""
    h, w = x.shape[-2:]
    if padding == "symmetric":    # reflect about the pixel edges: align_corners=False
        gx, gy, corners, mode = (2 * cols + 1) / w - 1, (2 * rows + 1) / h - 1, False, "reflection"
    else:                         # about the edge pixels' centres
        gx, gy = 2 * cols / max(w - 1, 1) - 1, 2 * rows / max(h - 1, 1) - 1
        corners = True
        mode = {"zeros": "zeros", "edge": "border", "reflect101": "reflection"}[padding]
    grid = torch.stack((gx, gy), dim=-1).to(x.device, x.dtype)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=mode, align_corners=corners)


def pixel_grid(h: int, w: int, like: Tensor) -> tuple[Tensor, Tensor]:
    """Row and column coordinates (H, W) of every pixel."""
    r = torch.arange(h, device=like.device, dtype=like.dtype)
    c = torch.arange(w, device=like.device, dtype=like.dtype)
    rows, cols = torch.meshgrid(r, c, indexing="ij")
    return rows, cols


def affine_sample(x: Tensor, matrix: Tensor, padding: str) -> Tensor:
    """Output pixel (col, row) takes x at matrix @ (col, row, 1), matrix (N, 2, 3): skimage's
    ``warp(x, inverse_map=AffineTransform)`` or ``cv2.warpAffine`` with the inverse matrix."""
    rows, cols = pixel_grid(x.shape[-2], x.shape[-1], x)
    m = matrix.to(x)[:, :, :, None, None]
    src_cols = m[:, 0, 0] * cols + m[:, 0, 1] * rows + m[:, 0, 2]
    src_rows = m[:, 1, 0] * cols + m[:, 1, 1] * rows + m[:, 1, 2]
    return sample(x, src_rows, src_cols, padding)


def about_centre(a: Tensor, h: int, w: int) -> Tensor:
    """(N, 2, 3) affine maps with linear part ``a`` (N, 2, 2) that keep the image centre fixed
    (the translation MNIST-C computes as 13.5 (1 - a1 - a2) for 28 px)."""
    centre = torch.tensor([(w - 1) / 2, (h - 1) / 2], dtype=a.dtype, device=a.device)
    shift = centre - a @ centre
    return torch.cat((a, shift[:, :, None]), dim=2)


def centred_zoom(x: Tensor, factor: float) -> Tensor:
    """The references' ``clipped_zoom`` (central crop, ``scipy.ndimage.zoom`` order 1, trim) as
    one continuous bilinear zoom about the image centre."""
    if factor == 1:
        return x
    n, _, h, w = x.shape
    a = torch.eye(2, dtype=F64).repeat(n, 1, 1) / factor
    return affine_sample(x, about_centre(a, h, w), "edge")


def _box_weights(n_in: int, n_out: int) -> Tensor:
    """PIL's BOX resampling coefficients (``precompute_coeffs``) as an (n_out, n_in) matrix."""
    scale = n_in / n_out
    fscale = max(scale, 1.0)
    centre = (torch.arange(n_out, dtype=F64)[:, None] + 0.5) * scale
    j = torch.arange(n_in, dtype=F64)[None, :]
    lo = (centre - 0.5 * fscale + 0.5).floor().clamp(min=0)
    hi = (centre + 0.5 * fscale + 0.5).floor().clamp(max=n_in)
    arg = (j - centre + 0.5) / fscale
    weights = ((arg > -0.5) & (arg <= 0.5) & (j >= lo) & (j < hi)).to(F64)
    return weights / weights.sum(1, keepdim=True).clamp(min=1e-12)


def box_resize(x: Tensor, h: int, w: int) -> Tensor:
    """``PIL.Image.resize(..., PIL.Image.BOX)`` without PIL's rounding to uint8."""
    rows = _box_weights(x.shape[-2], h).to(x)
    cols = _box_weights(x.shape[-1], w).to(x)
    return rows @ x @ cols.T


def jpeg(x: Tensor, quality: int) -> Tensor:
    """PIL's JPEG save and reload at ``quality``: torchvision's libjpeg encoder and decoder,
    image by image on the CPU, through uint8 as the reference's PIL images are."""
    images = (x * 255).round().clamp(0, 255).to(torch.uint8).cpu()
    with warnings.catch_warnings():
        # torchvision 0.29 deprecates its image codecs in favour of TorchCodec, once per call
        warnings.filterwarnings("ignore", "The image decoding and encoding", DeprecationWarning)
        decoded = [decode_jpeg(encode_jpeg(image, quality=quality)) for image in images]
    return torch.stack(decoded).to(x.device, x.dtype) / 255


# ------------------------------------------------------------------ fractals and shuffles


def plasma_fractal(n: int, mapsize: int, wibbledecay: float, gen: torch.Generator) -> Tensor:
    """The references' ``plasma_fractal`` (diamond-square, after FLHerne/mapgen), n maps of
    mapsize x mapsize (a power of two) scaled to [0, 1], float64 on the generator's device."""
    maps = torch.zeros(n, mapsize, mapsize, dtype=F64, device=gen.device)
    step, wibble = mapsize, 100.0

    def wibbled_mean(total: Tensor) -> Tensor:
        noise = torch.rand(total.shape, generator=gen, device=gen.device, dtype=F64)
        return total / 4 + wibble * (2 * wibble * noise - wibble)

    while step >= 2:
        half = step // 2
        corners = maps[:, 0::step, 0::step]
        square = corners + corners.roll(-1, 1)
        maps[:, half::step, half::step] = wibbled_mean(square + square.roll(-1, 2))
        centres = maps[:, half::step, half::step]
        left = centres + centres.roll(1, 1) + corners + corners.roll(-1, 2)
        maps[:, 0::step, half::step] = wibbled_mean(left)
        top = centres + centres.roll(1, 2) + corners + corners.roll(-1, 1)
        maps[:, half::step, 0::step] = wibbled_mean(top)
        step, wibble = half, wibble / wibbledecay
    maps = maps - maps.amin(dim=(1, 2), keepdim=True)
    return maps / maps.amax(dim=(1, 2), keepdim=True)


def _swap_permutation(h: int, w: int, delta: int, shifts: list[list[list[int]]],
                      swaps: list[list[int]] | None) -> list[int]:
    """Where each pixel of one image ends up after the glass-blur loop of swaps."""
    perm = list(range(h * w))
    for it, shift in enumerate(shifts):
        k = 0
        for r in range(h - delta, delta, -1):
            for c in range(w - delta, delta, -1):
                dx, dy = shift[k]
                if swaps is None or swaps[it][k]:
                    a, b = r * w + c, (r + dy) * w + c + dx
                    perm[a], perm[b] = perm[b], perm[a]
                k += 1
    return perm


def glass_blur(x: Tensor, sigma: float, delta: int, iterations: int, gen: torch.Generator,
               swap_half: bool = False) -> Tensor:
    """Glass blur: Gaussian blur, the reference's loop of local pixel swaps (offsets drawn as
    ``np.random.randint(-delta, delta)``; MNIST-C swaps only half the time, ``swap_half``),
    Gaussian blur again. The sequential loop runs on a Python index list, then one gather."""
    n, c, h, w = x.shape
    x = gaussian_filter(x, sigma)
    steps = len(range(h - delta, delta, -1)) * len(range(w - delta, delta, -1))
    if steps:
        size = (n, iterations, steps)
        shifts = torch.randint(-delta, delta, (*size, 2), generator=gen, device=gen.device)
        swaps = torch.randint(0, 2, size, generator=gen, device=gen.device).tolist() \
            if swap_half else None
        perms = [_swap_permutation(h, w, delta, s, None if swaps is None else swaps[i])
                 for i, s in enumerate(shifts.tolist())]
        index = torch.tensor(perms, device=x.device)[:, None, :].expand(n, c, h * w)
        x = x.reshape(n, c, h * w).gather(2, index).reshape(n, c, h, w)
    return gaussian_filter(x, sigma)


# ------------------------------------------------------------------ edges and strokes


def canny(x: Tensor, sigma: float, low: float = 0.1, high: float = 0.2) -> Tensor:
    """``skimage.feature.canny`` on every channel: Gaussian smoothing with bleed-over
    correction, Sobel, non-maximum suppression interpolated along the gradient (as skimage),
    the double threshold on the magnitude, and hysteresis by repeated 3x3 dilation of the
    strong edges inside the weak ones until nothing changes (= skimage's 8-connected labels)."""
    n, c, h, w = x.shape
    img = x.reshape(n * c, 1, h, w)
    smooth = gaussian_filter(img, sigma, "constant") / \
        gaussian_filter(torch.ones_like(img), sigma, "constant")
    deriv, avg = torch.tensor([-1.0, 0.0, 1.0]), torch.tensor([1.0, 2.0, 1.0])
    g_rows = separable_filter(smooth, deriv, avg, "symmetric")[:, 0]   # scipy.ndimage.sobel
    g_cols = separable_filter(smooth, avg, deriv, "symmetric")[:, 0]
    mag = torch.hypot(g_rows, g_cols)
    dominant = torch.maximum(g_rows.abs(), g_cols.abs()).clamp(min=1e-12)
    rows, cols = pixel_grid(h, w, img)
    step_r, step_c = g_rows / dominant, g_cols / dominant
    ahead = sample(mag[:, None], rows + step_r, cols + step_c, "zeros")[:, 0]
    behind = sample(mag[:, None], rows - step_r, cols - step_c, "zeros")[:, 0]
    interior = torch.zeros_like(mag, dtype=torch.bool)
    interior[:, 1:-1, 1:-1] = True                     # skimage's eroded mask
    peak = interior & (mag >= ahead) & (mag >= behind) & (mag > 0)
    weak, edges = peak & (mag >= low), peak & (mag >= high)
    for _ in range(h * w):
        grown = F.max_pool2d(edges[:, None].to(x.dtype), 3, 1, 1)[:, 0].bool() & weak
        if torch.equal(grown, edges):
            break
        edges = grown
    return edges.to(x.dtype).reshape(n, c, h, w)


def reference_grid(h: int, w: int, side: float, like: Tensor) -> tuple[Tensor, Tensor]:
    """Pixel centres of an h x w image in the pixel units of a side x side reference image:
    rows (H, 1) and columns (1, W); the identity when h = w = side."""
    r = (torch.arange(h, dtype=F64, device=like.device) + 0.5) * side / h - 0.5
    c = (torch.arange(w, dtype=F64, device=like.device) + 0.5) * side / w - 0.5
    return r[:, None], c[None, :]


def line_from_points(c0: float, r0: float, c1: float, r1: float, rows: Tensor,
                     cols: Tensor) -> Tensor:
    """MNIST-C's ``line_from_points`` on the grid (rows, cols): intensity log(1 - d / 2.3) + 1
    of the vertical distance d to the line, clipped to [0, 1], columns floor(c0) to ceil(c1)."""
    if c1 == c0:
        return torch.zeros(rows.shape[0], cols.shape[1], dtype=F64, device=rows.device)
    slope = (r1 - r0) / (c1 - c0)
    dist = (rows - (slope * (cols - c0) + r0)).abs().clamp(0, 2.3 - 1e-10)
    line = (torch.log(1 - dist / 2.3) + 1).clamp(0, 1)
    return line * ((cols >= math.floor(c0)) & (cols < math.ceil(c1)))


def zigzag_points(r0: int, dr: int) -> list[tuple[float, float]]:
    """MNIST-C's zigzag vertices (column, row): teeth of length 2 and width 2 along the line
    from (2, r0) to (25, r0 + dr), its odd last vertex included."""
    a = b = 2.0
    c0, c1 = 2, 25
    theta = math.atan(dr / (c1 - c0))
    d = (c1 - c0) / math.cos(theta)
    points = [(0.0, 0.0)]
    r_i = 0.0
    for i in range(int((d - a) // (2 * a)) + 1):
        r_i = (-1) ** i * b
        points.append(((2 * i + 1) * a, r_i))
    max_c = (2 * a) * (d // (2 * a))
    if d != max_c:
        points.append((d, r_i / (2 * (d - max_c))))
    cos, sin = math.cos(theta), math.sin(theta)
    return [(cos * c - sin * r + c0, sin * c + cos * r + r0) for c, r in points]


# ------------------------------------------------------------------ the corruptions

C_FAMILIES: tuple[str, ...] = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
    "motion_blur", "zoom_blur", "snow", "fog", "brightness", "contrast", "elastic_transform",
    "pixelate", "jpeg_compression",
)
MNIST_C: tuple[str, ...] = (
    "shot_noise", "impulse_noise", "glass_blur", "motion_blur", "shear", "scale", "rotate",
    "brightness", "translate", "stripe", "fog", "spatter", "dotted_line", "zigzag",
    "canny_edges",
)
SUITES = ("c", "mnist-c")

# ------------------------------------------------------------------ -C parameter tables
# Keys: "cifar" = make_cifar_c.py (32 px), "tiny" = make_tinyimagenet_c.py (64 px),
# "imagenet" = imagenet_c/corruptions.py (224 px); five severities each, in the files' units.
TABLE_SIDE = {"cifar": 32, "tiny": 64, "imagenet": 224}
GAUSSIAN_NOISE = {"cifar": (0.04, 0.06, 0.08, 0.09, 0.10), "tiny": (0.04, 0.08, 0.12, 0.15, 0.18),
                  "imagenet": (0.08, 0.12, 0.18, 0.26, 0.38)}
SHOT_NOISE = {"cifar": (500.0, 250.0, 100.0, 75.0, 50.0), "tiny": (250.0, 100.0, 50.0, 30.0, 15.0),
              "imagenet": (60.0, 25.0, 12.0, 5.0, 3.0)}
IMPULSE_NOISE = {"cifar": (0.01, 0.02, 0.03, 0.05, 0.07), "tiny": (0.01, 0.02, 0.05, 0.08, 0.14),
                 "imagenet": (0.03, 0.06, 0.09, 0.17, 0.27)}
# (disk radius px, anti-alias sigma)
DEFOCUS_BLUR = {"cifar": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1.0, 0.2), (1.5, 0.1)),
                "tiny": ((0.5, 0.6), (1.0, 0.1), (1.5, 0.1), (2.5, 0.01), (3.0, 0.1)),
                "imagenet": ((3.0, 0.1), (4.0, 0.5), (6.0, 0.5), (8.0, 0.5), (10.0, 0.5))}
# (sigma px, max shift px, iterations)
GLASS_BLUR = {"cifar": ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),
              "tiny": ((0.1, 1, 1), (0.5, 1, 1), (0.6, 1, 2), (0.7, 2, 1), (0.9, 2, 2)),
              "imagenet": ((0.7, 1, 2), (0.9, 2, 1), (1.0, 2, 3), (1.1, 3, 2), (1.5, 4, 2))}
# (ImageMagick radius px, sigma px); angle ~ U(-45, 45) degrees
MOTION_BLUR = {"cifar": ((6.0, 1.0), (6.0, 1.5), (6.0, 2.0), (8.0, 2.0), (9.0, 2.5)),
               "tiny": ((10.0, 1.0), (10.0, 1.5), (10.0, 2.0), (10.0, 2.5), (12.0, 3.0)),
               "imagenet": ((10.0, 3.0), (15.0, 5.0), (15.0, 8.0), (15.0, 12.0), (20.0, 15.0))}
# zoom factors np.arange(start, stop, step)
_SMALL_ZOOMS = ((1, 1.06, 0.01), (1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.01),
                (1, 1.26, 0.01))
ZOOM_BLUR = {"cifar": _SMALL_ZOOMS, "tiny": _SMALL_ZOOMS,
             "imagenet": ((1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.02), (1, 1.26, 0.02),
                          (1, 1.31, 0.03))}
# (mean, std, zoom, threshold, motion radius px, motion sigma px, blend); angle U(-135, -45)
SNOW = {"cifar": ((0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
                  (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9), (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
                  (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)),
        "tiny": ((0.1, 0.2, 1, 0.6, 8, 3, 0.8), (0.1, 0.2, 1, 0.5, 10, 4, 0.8),
                 (0.15, 0.3, 1.75, 0.55, 10, 4, 0.7), (0.25, 0.3, 2.25, 0.6, 12, 6, 0.65),
                 (0.3, 0.3, 1.25, 0.65, 14, 12, 0.6)),
        "imagenet": ((0.1, 0.3, 3, 0.5, 10, 4, 0.8), (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
                     (0.55, 0.3, 4, 0.9, 12, 8, 0.7), (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
                     (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55))}
# (strength, wibble decay); the plasma map (FOG_MAPSIZE) is cropped to the table side
FOG = {"cifar": ((0.2, 3.0), (0.5, 3.0), (0.75, 2.5), (1.0, 2.0), (1.5, 1.75)),
       "tiny": ((0.4, 3.0), (0.7, 3.0), (1.0, 2.5), (1.5, 2.0), (2.0, 1.75)),
       "imagenet": ((1.5, 2.0), (2.0, 2.0), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4))}
FOG_MAPSIZE = {"cifar": 32, "tiny": 64, "imagenet": 256}
BRIGHTNESS = {"cifar": (0.05, 0.1, 0.15, 0.2, 0.3), "tiny": (0.1, 0.2, 0.3, 0.4, 0.5),
              "imagenet": (0.1, 0.2, 0.3, 0.4, 0.5)}
CONTRAST = {"cifar": (0.75, 0.5, 0.4, 0.3, 0.15), "tiny": (0.4, 0.3, 0.2, 0.1, 0.05),
            "imagenet": (0.4, 0.3, 0.2, 0.1, 0.05)}
# (alpha, sigma, affine jitter) as fractions of ELASTIC_BASE (the files' IMSIZE; 244 in the
# ImageNet file, "should have been 224, but ultimately nothing is incorrect")
ELASTIC = {"cifar": ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05),
                     (0.1, 0.03, 0.03)),
           "tiny": ((0, 0, 0.08), (0.05, 0.3, 0.06), (0.1, 0.08, 0.06), (0.1, 0.03, 0.03),
                    (0.16, 0.03, 0.02)),
           "imagenet": ((2, 0.7, 0.1), (2, 0.08, 0.2), (0.05, 0.01, 0.02), (0.07, 0.01, 0.02),
                        (0.12, 0.01, 0.02))}
ELASTIC_BASE = {"cifar": 32, "tiny": 64, "imagenet": 244}
PIXELATE = {"cifar": (0.95, 0.9, 0.85, 0.75, 0.65), "tiny": (0.9, 0.8, 0.7, 0.6, 0.5),
            "imagenet": (0.6, 0.5, 0.4, 0.3, 0.25)}
JPEG_QUALITY = {"cifar": (80, 65, 58, 50, 40), "tiny": (65, 58, 50, 40, 25),
                "imagenet": (25, 18, 15, 10, 7)}

# ------------------------------------------------------------------ MNIST-C parameters
# google-research/mnist-c corruptions.py, 28 px; each at its function's default severity.
MNIST_SIDE = 28
MNIST_SHOT_NOISE = 3.0                  # shot_noise, severity 5 of (60, 25, 12, 5, 3)
MNIST_IMPULSE_NOISE = 0.17              # impulse_noise, severity 4
MNIST_GLASS_BLUR = (0.7, 1, 2)          # glass_blur, severity 1: sigma, max shift, iterations
MNIST_MOTION_BLUR = (10.0, 3.0)         # motion_blur, severity 1: radius, sigma
MNIST_SHEAR = 0.4                       # shear, severity 2, random sign
MNIST_SCALE = 1 / 0.7                   # scale, severity 3 (inverse map scale)
MNIST_ROTATE = 0.4                      # rotate, severity 2, radians, random sign
MNIST_BRIGHTNESS = 0.5                  # brightness, severity 5
MNIST_TRANSLATE = 3.0                   # translate, severity 3, px, random sign per axis
MNIST_STRIPE = (7, 21)                  # stripe: columns [:7] and [21:] inverted
MNIST_FOG = (3.0, 1.4)                  # fog, severity 5: strength, wibble decay
MNIST_FOG_MAPSIZE = 256                 # its plasma map, cropped to 28
MNIST_SPATTER = (0.65, 0.3, 1.0, 0.65, 1.5)   # spatter, severity 4 (mud): mean, std,
MNIST_MUD = 63 / 255                          # sigma, threshold, mask sigma; mud grey
MNIST_CANNY_SIGMA = 1.0                 # skimage.feature.canny defaults (thresholds 0.1, 0.2)

CFunction = Callable[[Tensor, int, torch.Generator], Tensor]
MnistFunction = Callable[[Tensor, torch.Generator], Tensor]


def _table(x: Tensor) -> tuple[str, float]:
    """The -C table for x's side and the factor side / table side for spatial parameters."""
    side = min(x.shape[-2:])
    name = "cifar" if side <= 48 else "tiny" if side <= 128 else "imagenet"
    return name, side / TABLE_SIDE[name]


def _np_arange(start: float, stop: float, step: float) -> list[float]:
    """``np.arange`` for floats, end point quirks included (1 to 1.06 by 0.01 has 7 values)."""
    return [start + i * step for i in range(math.ceil((stop - start) / step))]


def _gray(x: Tensor) -> Tensor:
    """OpenCV's RGB2GRAY luma, or the image itself when it has one channel."""
    if x.shape[1] == 1:
        return x
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device)
    return (x * weights[:, None, None]).sum(1, keepdim=True)


def _add_value(x: Tensor, c: float) -> Tensor:
    """skimage rgb2hsv, V + c clipped to 1, hsv2rgb: hue and saturation stay, so every channel
    scales by V'/V, and a black pixel becomes grey V'. On one channel: min(x + c, 1)."""
    value = x.amax(dim=1, keepdim=True)
    new = (value + c).clamp(max=1)
    return torch.where(value > 0, x * new / value.clamp(min=1e-12), new.expand_as(x))


def _fog_layer(x: Tensor, mapsize: int, crop: int, decay: float, gen: torch.Generator) -> Tensor:
    """Plasma fractals cropped to ``crop`` as the reference does, resized to x's side."""
    n, _, h, w = x.shape
    maps = plasma_fractal(n, mapsize, decay, gen)[:, None, :crop, :crop].to(x.device, x.dtype)
    if (h, w) != (crop, crop):
        maps = F.interpolate(maps, size=(h, w), mode="bilinear", align_corners=False,
                             antialias=True)
    return maps


def _add_fog(x: Tensor, strength: float, layer: Tensor) -> Tensor:
    """The references' fog: x + strength * fractal, rescaled by max / (max + strength)."""
    peak = x.amax(dim=(1, 2, 3), keepdim=True)
    return (x + strength * layer) * peak / (peak + strength)


# ------------------------------------------------------------------ the -C corruptions


def _gaussian_noise(x: Tensor, severity: int, gen: torch.Generator) -> Tensor:
    """x + N(0, c^2), every pixel and channel."""
    c = GAUSSIAN_NOISE[_table(x)[0]][severity - 1]
    return x + c * normal(tuple(x.shape), gen, x)


def _shot_noise(x: Tensor, severity: int, gen: torch.Generator) -> Tensor:
    """Poisson(x c) / c."""
    c = SHOT_NOISE[_table(x)[0]][severity - 1]
    return poisson(x * c, gen) / c


def _impulse_noise(x: Tensor, severity: int, gen: torch.Generator) -> Tensor:
    """Salt and pepper on a fraction c of the values."""
    return salt_and_pepper(x, IMPULSE_NOISE[_table(x)[0]][severity - 1], gen)


def _defocus_blur(x: Tensor, severity: int, gen: torch.Generator) -> Tensor:
    """Convolution with an anti-aliased disk (OpenCV filter2D, BORDER_REFLECT_101)."""
    table, k = _table(x)
    radius, alias_blur = DEFOCUS_BLUR[table][severity - 1]
    return filter2d(x, defocus_kernel(radius, alias_blur, k))


def _glass_blur(x: Tensor, severity: int, gen: torch.Generator) -> Tensor:
    """Blur, local pixel swaps, blur."""
    table, k = _table(x)
    sigma, delta, iterations = GLASS_BLUR[table][severity - 1]
    return glass_blur(x, sigma * k, max(1, round(delta * k)), iterations, gen)


def _motion_blur(x: Tensor, severity: int, gen: torch.Generator) -> Tensor:
    """ImageMagick motion blur at an angle drawn per image from U(-45, 45) degrees."""
    table, k = _table(x)
    radius, sigma = MOTION_BLUR[table][severity - 1]
    return motion_blur(x, radius * k, sigma * k, uniform((x.shape[0],), -45, 45, gen, x))


def _zoom_blur(x: Tensor, severity: int, gen: torch.Generator) -> Tensor:
    """Mean of x and its centred zooms by every factor of the severity's range."""
    factors = _np_arange(*ZOOM_BLUR[_table(x)[0]][severity - 1])
    out = x
    for factor in factors:
        out = out + centred_zoom(x, factor)
    return out / (len(factors) + 1)


def _snow(x: Tensor, severity: int, gen: torch.Generator) -> Tensor:
    """Zoomed, thresholded, motion-blurred noise (and its 180 degree turn) over a brightened
    image; with one channel the image is its own grey level."""
    table, k = _table(x)
    loc, scale, zoom, cut, radius, sigma, keep = SNOW[table][severity - 1]
    n, _, h, w = x.shape
    layer = centred_zoom(loc + scale * normal((n, 1, h, w), gen, x), zoom)
    layer = (layer * (layer >= cut)).clamp(0, 1)
    angles = uniform((n,), -135, -45, gen, x)
    layer = motion_blur(layer, radius * k, sigma * k, angles)
    x = keep * x + (1 - keep) * torch.maximum(x, _gray(x) * 1.5 + 0.5)
    return x + layer + layer.flip(-2, -1)


def _fog(x: Tensor, severity: int, gen: torch.Generator) -> Tensor:
    """A plasma fractal added and the image rescaled; the fractal is the reference's crop of
    its map, resized to the image."""
    table, _ = _table(x)
    strength, decay = FOG[table][severity - 1]
    layer = _fog_layer(x, FOG_MAPSIZE[table], TABLE_SIDE[table], decay, gen)
    return _add_fog(x, strength, layer)


def _brightness(x: Tensor, severity: int, gen: torch.Generator) -> Tensor:
    """HSV value + c."""
    return _add_value(x, BRIGHTNESS[_table(x)[0]][severity - 1])


def _contrast(x: Tensor, severity: int, gen: torch.Generator) -> Tensor:
    """(x - mean) c + mean, the mean per image and channel."""
    c = CONTRAST[_table(x)[0]][severity - 1]
    means = x.mean(dim=(2, 3), keepdim=True)
    return (x - means) * c + means


def _elastic_transform(x: Tensor, severity: int, gen: torch.Generator) -> Tensor:
    """A random affine warp of three points (cv2.getAffineTransform + warpAffine, reflect-101
    borders), then a smoothed random displacement field (map_coordinates, reflect borders)."""
    table, k = _table(x)
    alpha, sigma, jitter = (f * ELASTIC_BASE[table] * k for f in ELASTIC[table][severity - 1])
    n, _, h, w = x.shape
    cx, cy, s = w // 2, h // 2, min(h, w) // 3
    pts1 = torch.tensor([[cx + s, cy + s], [cx + s, cy - s], [cx - s, cy - s]],
                        dtype=torch.float64)
    pts2 = pts1 + uniform((n, 3, 2), -jitter, jitter, gen, pts1)
    # the map from output to input points: solve [pts2 1] @ m = pts1
    m = torch.linalg.solve(torch.cat((pts2, torch.ones(n, 3, 1, dtype=torch.float64)), 2),
                           pts1.expand(n, 3, 2))
    x = affine_sample(x, m.transpose(1, 2), "reflect101")
    dx = gaussian_filter(uniform((n, 1, h, w), -1, 1, gen, x), sigma, "symmetric", 3.0)
    dy = gaussian_filter(uniform((n, 1, h, w), -1, 1, gen, x), sigma, "symmetric", 3.0)
    rows, cols = pixel_grid(h, w, x)
    return sample(x, rows + alpha * dy[:, 0], cols + alpha * dx[:, 0], "symmetric")


def _pixelate(x: Tensor, severity: int, gen: torch.Generator) -> Tensor:
    """PIL BOX resize to a fraction c of the side and back."""
    c = PIXELATE[_table(x)[0]][severity - 1]
    h, w = x.shape[-2:]
    return box_resize(box_resize(x, max(1, int(h * c)), max(1, int(w * c))), h, w)


def _jpeg_compression(x: Tensor, severity: int, gen: torch.Generator) -> Tensor:
    """JPEG at quality c."""
    return jpeg(x, JPEG_QUALITY[_table(x)[0]][severity - 1])


C_FUNCTIONS: dict[str, CFunction] = {
    "gaussian_noise": _gaussian_noise, "shot_noise": _shot_noise,
    "impulse_noise": _impulse_noise, "defocus_blur": _defocus_blur, "glass_blur": _glass_blur,
    "motion_blur": _motion_blur, "zoom_blur": _zoom_blur, "snow": _snow, "fog": _fog,
    "brightness": _brightness, "contrast": _contrast, "elastic_transform": _elastic_transform,
    "pixelate": _pixelate, "jpeg_compression": _jpeg_compression,
}

# ------------------------------------------------------------------ the MNIST-C corruptions


def _mnist_scale(x: Tensor) -> float:
    """The factor side / 28 for MNIST-C's spatial parameters."""
    return min(x.shape[-2:]) / MNIST_SIDE


def _linear_maps(a00: Tensor, a01: Tensor, a10: Tensor, a11: Tensor) -> Tensor:
    """(N, 2, 2) matrices from their four (N,) entries."""
    return torch.stack((torch.stack((a00, a01), 1), torch.stack((a10, a11), 1)), 1)


def _warp_about_centre(x: Tensor, a: Tensor) -> Tensor:
    """skimage ``warp(x, inverse_map=AffineTransform)`` with MNIST-C's centring translation,
    bilinear, zeros outside."""
    return affine_sample(x, about_centre(a, x.shape[-2], x.shape[-1]), "zeros")


def _m_shot_noise(x: Tensor, gen: torch.Generator) -> Tensor:
    """Poisson(3 x) / 3."""
    return poisson(x * MNIST_SHOT_NOISE, gen) / MNIST_SHOT_NOISE


def _m_impulse_noise(x: Tensor, gen: torch.Generator) -> Tensor:
    """Salt and pepper on 17% of the values."""
    return salt_and_pepper(x, MNIST_IMPULSE_NOISE, gen)


def _m_glass_blur(x: Tensor, gen: torch.Generator) -> Tensor:
    """Blur, local swaps (each made with probability 1/2), blur."""
    sigma, delta, iterations = MNIST_GLASS_BLUR
    k = _mnist_scale(x)
    return glass_blur(x, sigma * k, max(1, round(delta * k)), iterations, gen, swap_half=True)


def _m_motion_blur(x: Tensor, gen: torch.Generator) -> Tensor:
    """ImageMagick motion blur, angle U(-45, 45) degrees per image."""
    radius, sigma = MNIST_MOTION_BLUR
    k = _mnist_scale(x)
    return motion_blur(x, radius * k, sigma * k, uniform((x.shape[0],), -45, 45, gen, x))


def _m_shear(x: Tensor, gen: torch.Generator) -> Tensor:
    """skimage AffineTransform(shear=+-0.4): [[1, -sin c], [0, cos c]] about the centre."""
    c = MNIST_SHEAR * signs((x.shape[0],), gen, torch.zeros((), dtype=torch.float64))
    return _warp_about_centre(x, _linear_maps(torch.ones_like(c), -c.sin(),
                                              torch.zeros_like(c), c.cos()))


def _m_scale(x: Tensor, gen: torch.Generator) -> Tensor:
    """Inverse map scaled by 1 / 0.7 about the centre: the digit shrinks."""
    a = torch.eye(2, dtype=torch.float64).repeat(x.shape[0], 1, 1) * MNIST_SCALE
    return _warp_about_centre(x, a)


def _m_rotate(x: Tensor, gen: torch.Generator) -> Tensor:
    """Rotation by +-0.4 rad about the centre."""
    c = MNIST_ROTATE * signs((x.shape[0],), gen, torch.zeros((), dtype=torch.float64))
    return _warp_about_centre(x, _linear_maps(c.cos(), -c.sin(), c.sin(), c.cos()))


def _m_translate(x: Tensor, gen: torch.Generator) -> Tensor:
    """Shift by 3 px (scaled) along each axis, each sign drawn."""
    n = x.shape[0]
    shift = MNIST_TRANSLATE * _mnist_scale(x) * signs(
        (n, 2), gen, torch.zeros((), dtype=torch.float64))
    eye = torch.eye(2, dtype=torch.float64).repeat(n, 1, 1)
    return affine_sample(x, torch.cat((eye, shift[:, :, None]), 2), "zeros")


def _m_brightness(x: Tensor, gen: torch.Generator) -> Tensor:
    """HSV value + 0.5 (skimage via RGB, back to grey for MNIST)."""
    return _add_value(x, MNIST_BRIGHTNESS)


def _m_stripe(x: Tensor, gen: torch.Generator) -> Tensor:
    """The first and last quarter of the columns (7 of 28 each) inverted."""
    w = x.shape[-1]
    where = (torch.arange(w, device=x.device) + 0.5) / w
    lo, hi = (edge / MNIST_SIDE for edge in MNIST_STRIPE)
    return torch.where((where < lo) | (where > hi), 1 - x, x)


def _m_fog(x: Tensor, gen: torch.Generator) -> Tensor:
    """The -C fog at ImageNet's strongest setting, on a 256 px map cropped to 28."""
    strength, decay = MNIST_FOG
    return _add_fog(x, strength, _fog_layer(x, MNIST_FOG_MAPSIZE, MNIST_SIDE, decay, gen))


def _m_spatter(x: Tensor, gen: torch.Generator) -> Tensor:
    """Mud: smoothed Gaussian noise thresholded into blobs, the blobs' blurred mask cut at 0.8,
    grey 63/255 painted through it."""
    loc, scale, sigma, cut, mask_sigma = MNIST_SPATTER
    k = _mnist_scale(x)
    n, _, h, w = x.shape
    liquid = gaussian_filter(loc + scale * normal((n, 1, h, w), gen, x), sigma * k)
    liquid = liquid * (liquid >= cut)
    mask = gaussian_filter((liquid > cut).to(x.dtype), mask_sigma * k)
    mask = mask * (mask >= 0.8)
    return x * (1 - mask) + MNIST_MUD * mask


def _m_dotted_line(x: Tensor, gen: torch.Generator) -> Tensor:
    """A dashed line (2 px on, 2 px off) from (0, r0) to (27, r1), added."""
    n, _, h, w = x.shape
    rows, cols = reference_grid(h, w, MNIST_SIDE, x)
    ends = torch.randint(0, 27, (n, 2), generator=gen, device=gen.device).tolist()
    dashes = cols.floor().remainder(4) >= 2
    layers = [line_from_points(0, r0, 27, r1, rows, cols) * dashes for r0, r1 in ends]
    return x + torch.stack(layers)[:, None].to(x.dtype)


def _m_zigzag(x: Tensor, gen: torch.Generator) -> Tensor:
    """A zigzag from column 2 to 25 at a random height and slope, added."""
    n, _, h, w = x.shape
    rows, cols = reference_grid(h, w, MNIST_SIDE, x)
    starts = torch.randint(0, 27, (n,), generator=gen, device=gen.device).tolist()
    slopes = torch.randint(-5, 5, (n,), generator=gen, device=gen.device).tolist()
    layers = []
    for r0, dr in zip(starts, slopes, strict=True):
        points = zigzag_points(r0, dr)
        layer = torch.zeros(h, w, dtype=torch.float64, device=x.device)
        for (ca, ra), (cb, rb) in zip(points, points[1:], strict=False):
            layer = layer + line_from_points(ca, ra, cb, rb, rows, cols)
        layers.append(layer)
    return x + torch.stack(layers)[:, None].to(x.dtype)


def _m_canny_edges(x: Tensor, gen: torch.Generator) -> Tensor:
    """Canny edges (sigma 1, thresholds 0.1 and 0.2) in place of the image."""
    return canny(x, MNIST_CANNY_SIGMA * _mnist_scale(x))


MNIST_C_FUNCTIONS: dict[str, MnistFunction] = {
    "shot_noise": _m_shot_noise, "impulse_noise": _m_impulse_noise,
    "glass_blur": _m_glass_blur, "motion_blur": _m_motion_blur, "shear": _m_shear,
    "scale": _m_scale, "rotate": _m_rotate, "brightness": _m_brightness,
    "translate": _m_translate, "stripe": _m_stripe, "fog": _m_fog, "spatter": _m_spatter,
    "dotted_line": _m_dotted_line, "zigzag": _m_zigzag, "canny_edges": _m_canny_edges,
}

# ------------------------------------------------------------------ the API


def severities(suite: str, name: str) -> tuple[int, ...]:
    """The severities of corruption ``name`` of ``suite``: (1, ..., 5) for "c", (1,) for
    "mnist-c". Raises ValueError for an unknown suite or name."""
    if suite not in SUITES:
        raise ValueError(f"unknown corruption suite {suite!r}: accepted are 'c' and 'mnist-c'")
    names = C_FAMILIES if suite == "c" else MNIST_C
    if name not in names:
        raise ValueError(f"unknown {suite} corruption {name!r}: accepted are {', '.join(names)}")
    return (1, 2, 3, 4, 5) if suite == "c" else (1,)


def corrupt(suite: str, name: str, x: Tensor, severity: int,
            generator: torch.Generator) -> Tensor:
    """Corruption ``name`` of ``suite`` ("c" or "mnist-c") at ``severity`` applied to ``x``, a
    float (N, C, H, W) batch in [0, 1] with C 1 or 3. Returns a new tensor of x's shape, dtype
    and device in [0, 1]; all randomness comes from ``generator``, so generators seeded alike
    give identical results. Raises ValueError for an unknown suite, name or severity."""
    accepted = severities(suite, name)
    if not isinstance(severity, int) or severity not in accepted:
        raise ValueError(f"severity {severity!r} is not one of {suite} {name}'s: accepted are "
                         f"{', '.join(map(str, accepted))}")
    if x.dim() != 4 or x.shape[1] not in (1, 3) or not x.is_floating_point():
        raise ValueError(f"x must be a float (N, C, H, W) batch with C 1 or 3, not a "
                         f"{x.dtype} tensor of shape {tuple(x.shape)}")
    if x.numel() == 0:
        return x.clone()
    work = x.detach().to(torch.float64 if x.dtype == torch.float64 else torch.float32)
    with torch.no_grad():
        if suite == "c":
            out = C_FUNCTIONS[name](work, severity, generator)
        else:
            out = MNIST_C_FUNCTIONS[name](work, generator)
    return out.clamp(0, 1).to(x.dtype)
