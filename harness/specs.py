"""One small frozen dataclass per plugin kind, and the protocols their factories return.

Importing this module imports no heavy library: registration stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    import torch

    from harness.data import DataOptions, ImageData, ModelInput
    from harness.training import TrainContext, TrainData, TrainReport

ThreatModel = Literal["white-box", "black-box"]
Norm = Literal["inf", "2", "1", "0", "wasserstein", "none"]
DefenseStage = Literal["training", "input-transformation", "poisoning-detection"]
AttackCategory = Literal["evasion", "poisoning", "inference", "extraction"]

THREAT_MODELS: tuple[str, ...] = ("white-box", "black-box")
NORMS: tuple[str, ...] = ("inf", "2", "1", "0", "wasserstein", "none")
LP_NORMS: tuple[str, ...] = ("inf", "2", "1", "0")
DEFENSE_STAGES: tuple[str, ...] = ("training", "input-transformation", "poisoning-detection")
ATTACK_CATEGORIES: tuple[str, ...] = ("evasion", "poisoning", "inference", "extraction")


@dataclass(frozen=True)
class PluginInfo:
    """Who registered a spec: the plugin's name and the distribution that ships it."""

    name: str
    distribution: str
    version: str
    entry_point: str = ""

    def label(self) -> str:
        """``'dist 1.2 (entry point x = mod)'``, the form every plugin error uses."""
        where = f" (entry point {self.entry_point})" if self.entry_point else ""
        return f"plugin '{self.distribution} {self.version}'{where}"


@dataclass(frozen=True, kw_only=True)
class DatasetSpec:
    """A dataset of images in [0, 1] with integer labels.

    ``load(options)`` returns a :class:`harness.data.ImageData`; it raises
    :class:`harness.errors.DatasetNotFoundError` when the files are missing.
    ``mean``/``std`` are the per-channel statistics a model may standardize with (None: the
    paper's grayscale preprocessing, pixels divided by 255 and nothing more).
    """

    name: str
    description: str
    load: Callable[[DataOptions], ImageData]
    default_eps: float
    source: str = ""
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    plugin: PluginInfo | None = None


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """A classifier architecture; ``build(model_input, variant, options)`` returns an nn.Module.

    The module takes images in [0, 1] and returns logits: normalization lives inside it, so
    eps is always in pixel units. ``takes_variant`` marks families named ``name:variant``
    (``timm:resnet18``); ``list_variants`` (lazy) enumerates them for validation.
    ``train_defaults`` overrides the harness's training settings for this model.
    """

    name: str
    description: str
    build: Callable[[ModelInput, str | None, Mapping[str, Any]], torch.nn.Module]
    takes_variant: bool = False
    list_variants: Callable[[], Sequence[str]] | None = None
    train_defaults: Mapping[str, Any] = field(default_factory=dict)
    plugin: PluginInfo | None = None


@dataclass(frozen=True, kw_only=True)
class AttackSpec:
    """An attack; ``build(options)`` returns an :class:`Attack`.

    ``bounded``: eps is a budget in ``norm`` (pixel units), and the runner evaluates one cell
    per eps; an unbounded (minimal-perturbation) attack gets one cell with no eps, and its
    perturbation sizes are the result. ``default_eps`` None means the dataset's default eps.
    ``needs`` says what the attack uses of the model: "gradients", "scores" or "labels".
    ``budget_images`` caps the test images a slow attack is run on unless ``--n-test`` says
    otherwise. ``survey_table`` names the survey table it comes from. ``config`` holds the
    attack's default settings; they are part of every result's cache key, so changing a
    default re-runs the cells it affects.
    """

    name: str
    description: str
    build: Callable[[Mapping[str, Any]], Attack]
    threat_model: ThreatModel
    norm: Norm
    default_eps: float | None = None
    category: AttackCategory = "evasion"
    targeted: bool = False
    needs: frozenset[str] = frozenset({"gradients"})
    bounded: bool = True
    budget_images: int | None = None
    survey_table: str = ""
    config: Mapping[str, Any] = field(default_factory=dict)
    plugin: PluginInfo | None = None


@dataclass(frozen=True, kw_only=True)
class DefenseSpec:
    """A defense; ``build(options)`` returns a :class:`TrainingDefense` for stage "training".

    ``baseline`` marks the undefended reference (``none``), which every run trains and shows
    unless ``--no-baseline``.
    """

    name: str
    description: str
    build: Callable[[Mapping[str, Any]], TrainingDefense]
    stage: DefenseStage
    baseline: bool = False
    plugin: PluginInfo | None = None


Spec = DatasetSpec | ModelSpec | AttackSpec | DefenseSpec


class Attack(Protocol):
    """What an attack spec's factory returns."""

    def perturb(
        self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float | None
    ) -> torch.Tensor:
        """Return adversarial versions of ``x`` (same shape, values in [0, 1]).

        ``model`` is in eval mode and returns logits; ``x`` and ``y`` are on the model's device.
        ``eps`` is the budget for a bounded attack and None for an unbounded one.
        """
        ...


class TrainingDefense(Protocol):
    """What a training-stage defense spec's factory returns."""

    def train(self, model: torch.nn.Module, data: TrainData, ctx: TrainContext) -> TrainReport:
        """Train ``model`` in place on ``data`` and report what was done."""
        ...
