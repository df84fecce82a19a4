"""One small frozen dataclass per plugin kind, and the protocols their factories return.

Importing this module imports no heavy library: registration stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from harness.contracts.certification import Certifier
from harness.contracts.corruption import Corruptions
from harness.contracts.metrics import MetricSpec
from harness.contracts.options import OptionSchema, ResolvedOptions

if TYPE_CHECKING:
    from pathlib import Path

    import torch

    from harness.contracts.context import AttackContext, PoisonedSet
    from harness.contracts.data import DataOptions, ImageData, ModelInput
    from harness.contracts.figures import Figure
    from harness.contracts.records import ResultSet
    from harness.contracts.training import TrainContext, TrainData, TrainReport

ThreatModel = Literal["white-box", "black-box"]
Norm = Literal["inf", "2", "1", "0", "wasserstein", "none"]
DefenseStage = Literal["training", "input-transformation", "poisoning-detection"]
AttackCategory = Literal["evasion", "poisoning", "inference", "extraction", "certification",
                         "corruption"]

THREAT_MODELS: tuple[str, ...] = ("white-box", "black-box")
NORMS: tuple[str, ...] = ("inf", "2", "1", "0", "wasserstein", "none")
LP_NORMS: tuple[str, ...] = ("inf", "2", "1", "0")
# The declared categories and stages (harness.contracts.categories holds what each one means).
DEFENSE_STAGES: tuple[str, ...] = ("training", "input-transformation", "poisoning-detection")
ATTACK_CATEGORIES: tuple[str, ...] = ("evasion", "poisoning", "inference", "extraction",
                                      "certification", "corruption")

# What a model can offer an attack or defense (``ModelSpec.offers``); an attack's or defense's
# ``needs`` must be among them, or the pairing is listed as n/a with the missing feature.
MODEL_FEATURES: dict[str, str] = {
    "gradients": "gradients of the loss with respect to the input (a differentiable module)",
    "scores": "class scores (logits)",
    "labels": "predicted labels",
    "training-loop": "training by the shared gradient loop, which training defenses change",
    "activations": "hidden-layer activations (a torch network with a penultimate layer)",
    "sklearn": "a fitted scikit-learn estimator (``model.sklearn_estimator()``)",
    "svm": "a linear support vector machine",
    "logreg": "a logistic regression (what ART's database reconstruction supports)",
    "two-layer-relu": "exactly one hidden ReLU layer between two linear layers",
}
TORCH_MODEL_OFFERS = frozenset({"gradients", "scores", "labels", "training-loop", "activations"})

# Draws of a randomized input transformation that an adaptive attack averages over
# (Expectation over Transformation, :class:`harness.run.evaluators.adaptive.EoT`), unless its spec
# says
# otherwise (``DefenseSpec.eot_samples``).
EOT_SAMPLES = 10

# The schema of a spec that declares no options: every option is passed to ``build``
# unchecked, and the plugin checks them there (the style before options were declared).
UNDECLARED = OptionSchema(passthrough=True)


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


class _Configurable:
    """Option handling shared by the specs that declare options."""

    name: str
    options: OptionSchema
    config: Mapping[str, Any]
    KIND = ""

    def resolve_options(self, given: Mapping[str, Any], *, dataset_eps: float | None = None
                        ) -> ResolvedOptions:
        """``given`` checked against the declared options, over their defaults: what
        ``build`` receives (a read-only dict; a registered spec's ``build`` refuses a plain
        one that lacks a declared option). With ``dataset_eps``, every option declared
        ``dataset_eps`` and left null is set to it, as the harness's planner does with the
        dataset's eps. Raises :class:`harness.util.errors.UsageError`."""
        resolved = self.options.resolve(f"{self.KIND} {self.name}", given)
        if dataset_eps is None:
            return resolved
        return self.options.with_dataset_eps(resolved, dataset_eps)[0]

    def key_config(self) -> dict[str, Any]:
        """The fixed declarations and option defaults: part of every cache key it shapes."""
        return {**dict(self.config), **self.options.defaults()}


@dataclass(frozen=True, kw_only=True)
class DatasetSpec:
    """A dataset of images in [0, 1] with integer labels.

    ``default`` (on every spec kind): part of what ``harness bench`` runs when the command
    line names none of this kind (the main command's selection is declared by plugins, not
    wired into the core).

    ``load(options)`` returns a :class:`harness.contracts.data.ImageData` (float images in [0, 1],
    or
    uint8 ones for a large dataset: the harness converts them batch by batch); it raises
    :class:`harness.util.errors.DatasetNotFoundError` when the files are missing.
    ``mean``/``std`` are the per-channel statistics a model may standardize with (None: the
    paper's grayscale preprocessing, pixels divided by 255 and nothing more).
    """

    name: str
    description: str
    default: bool = False
    load: Callable[[DataOptions], ImageData]
    default_eps: float
    source: str = ""
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    plugin: PluginInfo | None = None


@dataclass(frozen=True, kw_only=True)
class ModelSpec(_Configurable):
    """A classifier architecture; ``build(model_input, variant, options)`` returns an nn.Module.

    The module takes images in [0, 1] and returns logits: normalization lives inside it, so
    eps is always in pixel units. ``takes_variant`` marks families named ``name:variant``
    (``timm:resnet18``); ``list_variants`` (lazy) enumerates them for validation.
    ``train_defaults`` overrides the harness's training settings for this model.
    ``offers`` lists the :data:`MODEL_FEATURES` it has. ``fit(model, data, ctx)``, when set,
    trains the model without defense instead of the shared loop (a scikit-learn model fits
    itself, then copies its weights into the module); such a model does not offer
    "training-loop", so training defenses are n/a for it. ``options`` declares the
    ``--model-opt`` options (their defaults are part of the training cache key, and ``build``
    receives them resolved); ``config`` holds fixed declarations that are part of the key too.
    ``smoke_options`` are the small settings the contract tests build it with.

    ``supplied``: ``build`` returns a classifier trained elsewhere, loaded as it is (a file
    kind: the variant is the file's path, ``torchscript:m.pt``); the harness never trains or
    caches it, and the file's SHA-256 is part of its key (:mod:`harness.planning.supplied`).
    ``fingerprint(variant, options)``, when set, stands for that SHA-256 (a model handed over
    in Python has no file). ``suffixes`` (``(".onnx",)``): the file names a supplied kind
    reads, so :func:`harness.evaluate` can take a bare path.
    """

    name: str
    description: str
    default: bool = False
    build: Callable[[ModelInput, str | None, ResolvedOptions], torch.nn.Module]
    takes_variant: bool = False
    list_variants: Callable[[], Sequence[str]] | None = None
    train_defaults: Mapping[str, Any] = field(default_factory=dict)
    offers: frozenset[str] = TORCH_MODEL_OFFERS
    fit: Callable[[torch.nn.Module, TrainData, TrainContext], TrainReport] | None = None
    options: OptionSchema = UNDECLARED
    smoke_options: Mapping[str, Any] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)
    supplied: bool = False
    fingerprint: Callable[[str | None, Mapping[str, Any]], str] | None = None
    suffixes: tuple[str, ...] = ()
    plugin: PluginInfo | None = None
    KIND = "model"


@dataclass(frozen=True, kw_only=True)
class AttackSpec(_Configurable):
    """An attack; ``build(options)`` returns an :class:`Attack`.

    ``bounded``: eps is a budget in ``norm`` (pixel units), and the runner evaluates one cell
    per eps; an unbounded (minimal-perturbation) attack gets one cell with no eps, and its
    perturbation sizes are the result. ``default_eps`` None means the dataset's default eps.
    ``needs`` says what the attack uses of the model (:data:`MODEL_FEATURES`: "gradients",
    "scores", "labels", "sklearn", ...). ``category`` picks the protocol ``build`` returns:
    evasion -> :class:`Attack`, poisoning -> :class:`PoisoningAttack`, inference and
    extraction -> :class:`ModelAttack`, certification ->
    :class:`~harness.contracts.certification.Certifier`, corruption ->
    :class:`~harness.contracts.corruption.Corruptions`.
    ``budget_images`` caps the test images a slow attack is run on unless ``--n-test`` says
    otherwise. ``survey_table`` names the survey table it comes from. ``roles`` are the
    :data:`harness.contracts.roles.ATTACK_ROLES` it plays (the checks ask for roles, never names).
    ``options`` declares its ``--attack-opt`` options; their defaults and ``config`` (fixed
    declarations such as the wrapped library class) are part of every result's cache key, so
    changing a default re-runs the cells it affects. ``metrics`` declares the numbers it
    reports beyond its category's. ``smoke_options`` are the tiny budgets the contract tests
    run it with (``pytest -m slow`` runs the declared defaults). ``limits`` says, when it is
    known, what the attack cannot do at its threat model (e.g. one universal perturbation
    within a small Linf budget fools few images of any model), so a reader of a W flag
    (too weak to measure robustness) learns why (``harness list attacks --long``).
    """

    name: str
    description: str
    default: bool = False
    build: Callable[[ResolvedOptions], AttackObject]
    threat_model: ThreatModel
    norm: Norm
    default_eps: float | None = None
    category: AttackCategory = "evasion"
    targeted: bool = False
    needs: frozenset[str] = frozenset({"gradients"})
    bounded: bool = True
    budget_images: int | None = None
    survey_table: str = ""
    limits: str = ""
    roles: frozenset[str] = frozenset()
    options: OptionSchema = UNDECLARED
    smoke_options: Mapping[str, Any] = field(default_factory=dict)
    metrics: tuple[MetricSpec, ...] = ()
    config: Mapping[str, Any] = field(default_factory=dict)
    plugin: PluginInfo | None = None
    KIND = "attack"


@dataclass(frozen=True, kw_only=True)
class DefenseSpec(_Configurable):
    """A defense; ``build(options)`` returns the protocol of its ``stage``.

    - "training": a :class:`TrainingDefense`; it trains the model (one training job each).
    - "input-transformation": an :class:`InputTransformation`, put in front of the
      undefended model. Attacks crafted on the undefended model measure transfer
      (non-adaptive); adaptive ones are crafted on
      :func:`harness.run.evaluators.adaptive.adaptive_model`:
      BPDA (forward through the transformation, backward through the identity or the
      transformation's ``approximate``), averaged over ``eot_samples`` draws (EoT) when
      ``randomized``.
    - "poisoning-detection": a :class:`PoisonDetector`, run on the poisoned training set.

    ``baseline`` marks the undefended reference (``none``), which every run trains and shows
    unless ``--no-baseline``; it pairs with every attack category. ``answers`` lists the
    attack categories the defense is meant against (default by stage); ``needs`` the model
    features it uses; ``roles`` the :data:`harness.contracts.roles.DEFENSE_ROLES` it plays.
    ``options``
    declares its ``--defense-opt`` options; their defaults and ``config`` are part of the
    cache keys. ``metrics`` declares numbers it reports; ``smoke_options`` the small settings
    of the contract tests. ``randomized`` (input transformations only) says the
    transformation's output is random, so adaptive attacks average ``eot_samples`` draws
    (default :data:`EOT_SAMPLES`); a deterministic one (the default) gets BPDA alone.
    ``reads_uint8`` (training defenses) says its ``train`` accepts uint8 training images and
    converts them batch by batch (:func:`harness.contracts.data.to_float`); any other defense is
    handed
    float images (a dataset held as uint8 is converted whole for it). ``augments``
    (training defenses) says its training applies ``--augment`` to each minibatch; one that
    trains inside a library's own ``fit`` declares False, and a run that asks it for
    ``--augment`` is refused before any work.
    """

    name: str
    description: str
    default: bool = False
    build: Callable[[ResolvedOptions], DefenseObject]
    stage: DefenseStage
    baseline: bool = False
    answers: frozenset[str] | None = None
    needs: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    options: OptionSchema = UNDECLARED
    smoke_options: Mapping[str, Any] = field(default_factory=dict)
    metrics: tuple[MetricSpec, ...] = ()
    config: Mapping[str, Any] = field(default_factory=dict)
    randomized: bool = False
    eot_samples: int = EOT_SAMPLES
    reads_uint8: bool = False
    augments: bool = True
    plugin: PluginInfo | None = None
    KIND = "defense"


@dataclass(frozen=True, kw_only=True)
class ReportSpec:
    """A report: figures embedded in leaderboard pages, and/or a text of its own.

    ``figures(results, stem)`` plans the figures of a page (a dict from dataset, or None for
    the whole page, to :class:`harness.contracts.figures.Figure` lists; names and captions must
    depend
    only on the results); ``draw(results, figure, path)`` draws one of them.
    ``text(results)`` returns a markdown report of its own (``harness report NAME``), or ''
    when the results hold nothing for it.
    """

    name: str
    description: str
    figures: Callable[[ResultSet, str], dict[str | None, list[Figure]]] | None = None
    draw: Callable[[ResultSet, Figure, Path], None] | None = None
    text: Callable[[ResultSet], str] | None = None
    plugin: PluginInfo | None = None


Spec = DatasetSpec | ModelSpec | AttackSpec | DefenseSpec | ReportSpec


@runtime_checkable
class Attack(Protocol):
    """What an attack spec's factory returns."""

    def perturb(
        self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float | None
    ) -> torch.Tensor:
        """Return adversarial versions of ``x`` (same shape, values in [0, 1]).

        ``model`` is in eval mode and returns logits; ``x`` and ``y`` are on the model's device.
        ``eps`` is the budget for a bounded attack and None for an unbounded one.

        The evaluator calls it once per batch of a cell's test images. An attack may also
        have a ``metrics() -> dict[str, float]`` method: its own numbers over every batch of
        the cell (e.g. the standard AutoAttack's robust accuracy after each of its attacks),
        read once the cell is attacked and stored with the record; declare them in the
        spec's ``metrics`` so the leaderboard shows them.
        """
        ...


@runtime_checkable
class PoisoningAttack(Protocol):
    """What a poisoning attack spec's factory returns."""

    def poison(self, ctx: AttackContext) -> PoisonedSet:
        """The training set as the attacker leaves it, and the inputs the attack aims at.

        ``ctx.data`` holds the clean training and test sets; ``ctx.clean_model()`` is the
        victim architecture trained on the clean set (a proxy for clean-label attacks).
        The runner then trains the victim on the poisoned set and measures the attack.
        """
        ...


@runtime_checkable
class ModelAttack(Protocol):
    """What an inference or extraction attack spec's factory returns."""

    def run(self, model: torch.nn.Module, ctx: AttackContext) -> dict[str, float]:
        """Attack the trained victim ``model`` (eval mode, logits); return its metrics.

        Metric names the leaderboard knows are listed in :data:`harness.report.leaderboard.METRICS`
        (e.g. ``mi_accuracy``, ``mi_auc``, ``thief_acc``, ``agreement``); others are shown
        under their own name.
        """
        ...


@runtime_checkable
class TrainingDefense(Protocol):
    """What a training-stage defense spec's factory returns."""

    def train(self, model: torch.nn.Module, data: TrainData, ctx: TrainContext) -> TrainReport:
        """Train ``model`` in place on ``data`` and report what was done."""
        ...


@runtime_checkable
class InputTransformation(Protocol):
    """What an input-transformation defense spec's factory returns.

    The defended model is ``model(transform(x))``. An adaptive attack is crafted through
    BPDA (:class:`harness.run.evaluators.adaptive.BPDA`; Athalye, Carlini & Wagner 2018): the
    forward pass
    runs ``transform``, the backward pass differentiates an approximation of it, the identity
    unless the object also has an optional method ``approximate(x) -> Tensor``: a
    differentiable function of ``x`` (torch operations only) with the same shape as
    ``transform(x)`` and close to it, whose vector-Jacobian product then stands for
    ``transform``'s. A transformation whose output is random declares
    ``DefenseSpec.randomized``; each ``transform`` call must then draw afresh (from torch's
    global generator or its own), and the adaptive attack averages the logits of
    ``DefenseSpec.eot_samples`` draws (EoT).
    """

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (N,C,H,W in [0, 1]) as the defended model sees it: same shape, in [0, 1]."""
        ...


@runtime_checkable
class PoisonDetector(Protocol):
    """What a poisoning-detection defense spec's factory returns."""

    def detect(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
               ctx: AttackContext) -> torch.Tensor:
        """A boolean mask over the training set ``(x, y)``: True where a sample looks poisoned.

        ``model`` is the victim trained on ``(x, y)``. The runner scores the mask against
        the truth, removes the flagged samples and retrains.
        """
        ...


#: What an attack spec's ``build`` returns: its category's protocol (:class:`Attack`,
#: :class:`PoisoningAttack`, :class:`ModelAttack`,
#: :class:`~harness.contracts.certification.Certifier` or
#: :class:`~harness.contracts.corruption.Corruptions`); the evaluators check which.
AttackObject = Attack | PoisoningAttack | ModelAttack | Certifier | Corruptions

#: What a defense spec's ``build`` returns: its stage's protocol (:class:`TrainingDefense`,
#: :class:`InputTransformation` or :class:`PoisonDetector`); the runner checks which
#: (:func:`harness.contracts.categories.not_built`).
DefenseObject = TrainingDefense | InputTransformation | PoisonDetector
