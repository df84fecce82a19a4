"""The harness plugin ``stripes``: registers one dataset, one model, two attacks and one
defense. Registration imports nothing heavy: each factory imports its module when called."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from harness import (
    ITERATIVE,
    AttackSpec,
    DatasetSpec,
    DefenseSpec,
    MetricSpec,
    ModelSpec,
    Option,
    ResolvedOptions,
    count,
    hookimpl,
    options,
    positive,
)

if TYPE_CHECKING:
    from torch import nn

    from harness import DataOptions, ImageData, ModelInput
    from harness_stripes.attacks import LossThreshold, MomentumIterativeFGSM
    from harness_stripes.defenses import NoiseTraining


def load_stripes(data_options: DataOptions) -> ImageData:
    """The ``stripes`` images (see :mod:`harness_stripes.data`)."""
    from harness_stripes.data import make_stripes

    return make_stripes(data_options)


@hookimpl
def harness_register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """Register ``stripes``."""
    register(DatasetSpec(
        name="stripes",
        description="Noisy stripes in four orientations, 16x16 grayscale, generated",
        load=load_stripes,
        default_eps=0.1,
        mean=(0.55,),
        std=(0.25,),
        source="generated from seed 0 by harness_stripes.data; nothing to download",
    ))


def build_cnn(model_input: ModelInput, variant: str | None,
              resolved: ResolvedOptions) -> nn.Module:
    """``stripes-cnn`` sized for ``model_input`` (``resolved.width`` channels)."""
    from harness_stripes.models import stripes_cnn

    return stripes_cnn(model_input, resolved.width)


@hookimpl
def harness_register_models(register: Callable[[ModelSpec], None]) -> None:
    """Register ``stripes-cnn``."""
    register(ModelSpec(
        name="stripes-cnn",
        description="One 3x3 convolution, average-pooled to 4x4, and a linear head",
        build=build_cnn,
        options=options(
            count("width", 16, "channels of the convolution"),
        ),
        smoke_options={"width": 4},
        train_defaults={"epochs": 10},
    ))


def build_mi_fgsm(resolved: ResolvedOptions) -> MomentumIterativeFGSM:
    """The attack with its resolved options (steps, decay)."""
    from harness_stripes.attacks import MomentumIterativeFGSM

    return MomentumIterativeFGSM(steps=resolved.steps, decay=resolved.decay)


def build_loss_threshold(resolved: ResolvedOptions) -> LossThreshold:
    """The attack with its resolved options (n)."""
    from harness_stripes.attacks import LossThreshold

    return LossThreshold(n=resolved.n)


@hookimpl
def harness_register_attacks(register: Callable[[AttackSpec], None]) -> None:
    """Register ``mi-fgsm`` and ``loss-threshold``."""
    register(AttackSpec(
        name="mi-fgsm",
        description="Momentum iterative FGSM: steps along an accumulated gradient, Linf",
        build=build_mi_fgsm,
        threat_model="white-box",
        norm="inf",
        roles=frozenset({ITERATIVE}),
        options=options(
            count("steps", 10, "gradient steps"),
            Option(name="decay", type="float", default=1.0, min=0,
                   help="momentum decay (0: I-FGSM)"),
        ),
        smoke_options={"steps": 2},
    ))
    register(AttackSpec(
        name="loss-threshold",
        description="Membership inference: a sample is a member when its loss is low",
        build=build_loss_threshold,
        threat_model="black-box",
        norm="none",
        category="inference",
        needs=frozenset({"scores"}),
        options=options(
            count("n", 500, "members and non-members scored (each)"),
        ),
        smoke_options={"n": 16},
        metrics=(
            MetricSpec(name="loss_mi_accuracy", label="loss MI acc", format="percent",
                       higher_is_better=False,
                       description="membership accuracy; 50% is chance, lower is more private"),
            MetricSpec(name="loss_gap", label="loss gap", digits=3,
                       description="mean test loss minus mean training loss"),
        ),
    ))


def build_noise_training(resolved: ResolvedOptions) -> NoiseTraining:
    """The defense with its resolved options (sigma)."""
    from harness_stripes.defenses import NoiseTraining

    return NoiseTraining(sigma=resolved.sigma)


@hookimpl
def harness_register_defenses(register: Callable[[DefenseSpec], None]) -> None:
    """Register ``noise-training``."""
    register(DefenseSpec(
        name="noise-training",
        description="Training on each minibatch and a Gaussian-noise copy of it",
        build=build_noise_training,
        stage="training",
        options=options(
            positive("sigma", 0.1, "standard deviation of the noise, in pixel units"),
        ),
    ))
