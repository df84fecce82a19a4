"""Built-in corruption suite ``corruptions``: common corruptions generated on the fly, seeded,
in torch on the run's device (:mod:`harness_plugins._corruptions_impl`).

Grayscale images get the 15 corruptions of MNIST-C (Mu and Gilmer 2019), each at its one
published setting; colour images the CIFAR-10-C / ImageNet-C families (Hendrycks and
Dietterich 2019) at 5 severities, with the parameters of the reference table nearest the
image size, spatial ones scaled to it. ``suite`` forces one or the other. The corruption
names are listed here as well as in the functions module (so that registering the plugin
imports no torch); a test keeps the two lists equal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from harness import (
    AttackSpec,
    Figure,
    MetricSpec,
    Option,
    ReportSpec,
    ResolvedOptions,
    corruption_label,
    corruption_metric,
    hookimpl,
    options,
)

if TYPE_CHECKING:
    import torch

    from harness import Result, ResultSet

#: The CIFAR-10-C / ImageNet-C families provided (frost needs Hendrycks' frost photographs,
#: which cannot be fetched here, so it is left out).
C_FAMILIES = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
              "motion_blur", "zoom_blur", "snow", "fog", "brightness", "contrast",
              "elastic_transform", "pixelate", "jpeg_compression")
#: MNIST-C's 15 corruptions.
MNIST_C = ("shot_noise", "impulse_noise", "glass_blur", "motion_blur", "shear", "scale",
           "rotate", "brightness", "translate", "stripe", "fog", "spatter", "dotted_line",
           "zigzag", "canny_edges")

OPTIONS = options(
    Option(name="suite", type="str", default="auto", choices=("auto", "mnist-c", "c"),
           help="auto: MNIST-C for grayscale images, the -C families for colour ones"),
)


class CorruptionSuite:
    """MNIST-C or the -C families, chosen by the images' channels unless ``suite`` says."""

    def __init__(self, suite: str):
        self.suite = suite
        self._chosen = suite

    def corruptions(self, image_shape: tuple[int, int, int]) -> Sequence[str]:
        """The corruptions for images of ``image_shape``."""
        self._chosen = self.suite if self.suite != "auto" else (
            "mnist-c" if image_shape[0] == 1 else "c")
        return MNIST_C if self._chosen == "mnist-c" else C_FAMILIES

    def severities(self, name: str) -> Sequence[int]:
        """1 to 5 for the -C families, 1 for MNIST-C's single setting."""
        from ._corruptions_impl import severities

        return severities(self._suite(), name)

    def corrupt(self, name: str, x: torch.Tensor, severity: int,
                generator: torch.Generator) -> torch.Tensor:
        """``x`` corrupted by ``name`` at ``severity``."""
        from ._corruptions_impl import corrupt

        return corrupt(self._suite(), name, x, severity, generator)

    def _suite(self) -> str:
        if self._chosen == "auto":
            raise RuntimeError("corruptions: call corruptions(image_shape) first, which picks "
                               "the suite for the images")
        return self._chosen


def build(options: ResolvedOptions) -> CorruptionSuite:
    """The suite with its resolved options."""
    return CorruptionSuite(options.suite)


METRICS = tuple(MetricSpec(name=corruption_metric(n), label=corruption_label(n),
                           format="percent", higher_is_better=True)
                for n in dict.fromkeys(MNIST_C + C_FAMILIES))


@hookimpl
def harness_register_attacks(register: Callable[[AttackSpec], None]) -> None:
    """Register ``corruptions``."""
    register(AttackSpec(
        name="corruptions",
        description="common corruptions: MNIST-C on grayscale images, the CIFAR-10-C / "
                    "ImageNet-C families at 5 severities on colour ones, seeded",
        build=build,
        category="corruption",
        threat_model="black-box",
        norm="none",
        bounded=False,
        needs=frozenset({"labels"}),
        options=OPTIONS,
        metrics=METRICS,
    ))


def _shown(results: ResultSet) -> dict[str, Result]:
    """Per dataset, the corruption record whose images the grid shows: the undefended
    model's when there is one."""
    out: dict[str, Result] = {}
    for r in sorted(results.records, key=lambda r: (not r.has_baseline_defense(), r.model,
                                                    r.cell_key)):
        if r.ok and r.category == "corruption" and r.examples and "images" in r.examples:
            out.setdefault(r.dataset, r)
    return out


def plan_figures(results: ResultSet, stem: str) -> dict[str | None, list[Figure]]:
    """One grid per dataset with corruption cells."""
    return {dataset: [Figure(
        f"{stem}-{dataset}-corruptions.png",
        f"{dataset}: the first test image, clean and under every corruption of the suite "
        "(rows) at each severity (columns)", "corruptions", dataset, r.model,
        category="corruption")]
        for dataset, r in _shown(results).items()}


def draw(results: ResultSet, figure: Figure, path: Path) -> None:
    """The grid: one row per corruption, the clean image then each severity."""
    import matplotlib.pyplot as plt
    import numpy as np

    from harness import decode_examples

    r = _shown(results)[str(figure.dataset)]
    examples = dict(r.examples or {})
    shape, images = examples["shape"], dict(examples["images"])
    names = list(dict.fromkeys(key.split("/")[0] for key in images))
    columns = max(int(key.split("/")[1]) for key in images)
    fig, axes = plt.subplots(len(names), columns + 1, squeeze=False,
                             figsize=(1.1 * (columns + 1), 1.1 * len(names)),
                             layout="constrained")
    clean = decode_examples({"shape": shape, "x": examples["x"]}, "x")[0]
    for i, name in enumerate(names):
        for j in range(columns + 1):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            key = f"{name}/{j}"
            if j and key not in images:
                ax.axis("off")
                continue
            image = clean if j == 0 else decode_examples({"shape": shape, "x": images[key]},
                                                         "x")[0]
            image = np.clip(image, 0, 1)
            if image.shape[0] == 1:
                ax.imshow(image[0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            else:
                ax.imshow(np.transpose(image, (1, 2, 0)), interpolation="nearest")
            if i == 0:
                ax.set_title("clean" if j == 0 else f"severity {j}", fontsize=7)
        axes[i, 0].set_ylabel(corruption_label(name), fontsize=7, rotation=0, ha="right",
                              va="center")
    fig.savefig(path, dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


@hookimpl
def harness_register_reports(register: Callable[[ReportSpec], None]) -> None:
    """Register ``corruption-grid``."""
    register(ReportSpec(
        name="corruption-grid",
        description="A grid of the corruptions at each severity on one test image per dataset",
        figures=plan_figures, draw=draw,
    ))
