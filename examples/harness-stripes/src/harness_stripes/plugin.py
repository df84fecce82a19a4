"""The harness plugin ``stripes``: registers one dataset, one model, two attacks and one
defense. Registration imports nothing heavy: each factory imports its module when called."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from harness import (
    ITERATIVE,
    AttackSpec,
    DatasetSpec,
    DefenseSpec,
    MetricSpec,
    ModelSpec,
    Option,
    hookimpl,
    options,
)

if TYPE_CHECKING:
    from torch import nn

    from harness import DataOptions, ImageData, ModelInput


def load_stripes(data_options: DataOptions) -> ImageData:
    """The ``stripes`` images (see :mod:`harness_stripes.data`)."""
    from harness_stripes.data import make_stripes

    return make_stripes(data_options)


@hookimpl
def harness_register_datasets(register):
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
              resolved: Mapping[str, Any]) -> nn.Module:
    """``stripes-cnn`` sized for ``model_input`` (``resolved['width']`` channels)."""
    from harness_stripes.models import stripes_cnn

    return stripes_cnn(model_input, resolved["width"])


@hookimpl
def harness_register_models(register):
    """Register ``stripes-cnn``."""
    register(ModelSpec(
        name="stripes-cnn",
        description="One 3x3 convolution, average-pooled to 4x4, and a linear head",
        build=build_cnn,
        options=options(
            Option(name="width", type="int", default=16, min=1,
                   help="channels of the convolution"),
        ),
        smoke_options={"width": 4},
        train_defaults={"epochs": 10},
    ))


def build_mi_fgsm(resolved: Mapping[str, Any]):
    """The attack with its resolved options (steps, decay)."""
    from harness_stripes.attacks import MomentumIterativeFGSM

    return MomentumIterativeFGSM(**resolved)


def build_loss_threshold(resolved: Mapping[str, Any]):
    """The attack with its resolved options (n)."""
    from harness_stripes.attacks import LossThreshold

    return LossThreshold(**resolved)


@hookimpl
def harness_register_attacks(register):
    """Register ``mi-fgsm`` and ``loss-threshold``."""
    register(AttackSpec(
        name="mi-fgsm",
        description="Momentum iterative FGSM: steps along an accumulated gradient, Linf",
        build=build_mi_fgsm,
        threat_model="white-box",
        norm="inf",
        roles=frozenset({ITERATIVE}),
        options=options(
            Option(name="steps", type="int", default=10, min=1, help="gradient steps"),
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
            Option(name="n", type="int", default=500, min=1,
                   help="members and non-members scored (each)"),
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


def build_noise_training(resolved: Mapping[str, Any]):
    """The defense with its resolved options (sigma)."""
    from harness_stripes.defenses import NoiseTraining

    return NoiseTraining(**resolved)


@hookimpl
def harness_register_defenses(register):
    """Register ``noise-training``."""
    register(DefenseSpec(
        name="noise-training",
        description="Training on each minibatch and a Gaussian-noise copy of it",
        build=build_noise_training,
        stage="training",
        options=options(
            Option(name="sigma", type="float", default=0.1, min=0, min_exclusive=True,
                   help="standard deviation of the noise, in pixel units"),
        ),
    ))
