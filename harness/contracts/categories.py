"""Attack categories and defense stages as declarations, dispatched through one table each.

A category declares the protocol its attacks implement, the evaluator that scores its cells,
whether it gets one cell per eps, whether its cells train on the undefended model, the
columns and note of its leaderboard table, and its contract check. A stage declares its
protocol, whether its cells sit on the undefended model, and which pairings it refuses and
why. A new category or stage touches this module and its evaluator, nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.contracts.certification import Certifier
from harness.contracts.corruption import Corruptions, describe, with_relative_error
from harness.contracts.metrics import (
    CERTIFICATION_METRICS,
    CORRUPTION_METRICS,
    EVASION_METRICS,
    MetricSpec,
)
from harness.contracts.specs import (
    Attack,
    AttackSpec,
    DefenseSpec,
    InputTransformation,
    ModelAttack,
    PoisonDetector,
    PoisoningAttack,
    TrainingDefense,
)
from harness.util.errors import PluginError

if TYPE_CHECKING:
    from harness.contracts.records import Result


@dataclass(frozen=True)
class HeadlineNumber:
    """A number of a non-evasion category that the summary rows show beside the attacks: the
    record's ``metric``, under ``label``, and written to the claims as ``claim``."""

    metric: str
    label: str
    claim: str


@dataclass(frozen=True, kw_only=True)
class Category:
    """One attack category.

    ``protocol`` is the protocol its attack objects implement (:class:`Attack`,
    :class:`PoisoningAttack`, :class:`ModelAttack`); what a spec's ``build`` returns is
    checked against it (:func:`not_built`). The evaluator of each category is
    :data:`harness.run.evaluators.EVALUATORS`'s, its contract check
    :data:`harness.testing.contracts.CONTRACTS`'s. ``per_eps``: one cell per eps (bounded
    attacks). ``own_victims``: the attack trains its own victims, so its cells sit on the
    undefended model whatever the defense. ``robust_accuracy``: its cells report clean and
    robust accuracy (the checks and the terminal's main table read those). ``columns`` are
    the metric names of its leaderboard table, in order (each rendered by its
    :class:`~harness.contracts.metrics.MetricSpec`; a column no record has is left out unless
    it is in ``always``), ``note`` the paragraph above it; ``summary`` the numbers the
    terminal summary shows (empty: the record's first two metrics). ``chunked``: its
    evaluator can score a cell in independent chunks of test images kept as they finish
    (``--chunk-images``; :mod:`harness.run.evaluators.chunks`). ``details``: its table
    lists the metrics it has no column for in a details column (not for a category whose
    records hold many per-setting numbers). ``derive`` adds the metrics the pages compute
    across its records (the corruption error relative to the undefended model);
    ``describe`` gives the spec of a metric name of its records that no plugin declared (a
    suite's per-corruption accuracies), or None. ``headline``: the number the summary row of
    the same trained model shows for this category (and the claims carry).
    """

    name: str
    title: str
    protocol: type
    per_eps: bool = False
    robust_accuracy: bool = False
    own_victims: bool = False
    columns: tuple[str, ...] = ()
    always: tuple[str, ...] = ()
    summary: tuple[str, ...] = ()
    note: str = ""
    chunked: bool = False
    details: bool = True
    derive: Callable[[list[Result]], list[Result]] | None = None
    describe: Callable[[str], MetricSpec | None] | None = None
    headline: HeadlineNumber | None = None


@dataclass(frozen=True, kw_only=True)
class Stage:
    """One defense stage.

    ``protocol`` is the protocol its defense objects implement (checked: :func:`not_built`);
    its contract check is :data:`harness.testing.contracts.STAGE_CONTRACTS`'s. ``detects``: its
    defenses flag training samples (scored, then removed before retraining).
    ``on_baseline``: its cells evaluate the undefended model (through the defense) instead
    of training a model of their own; ``answers`` the categories it is evaluated against by
    default; ``refusal(defense, category)`` says why that pairing is n/a (None: it is
    evaluated); ``needs`` model features every defense of the stage needs. ``adaptive``:
    each evasion cell of the stage is also run adaptively, the attack crafted on the whole
    pipeline (BPDA through the defense, EoT when it is randomized; see
    :mod:`harness.run.evaluators.adaptive`) beside the attack crafted on the undefended
    model.
    """

    name: str
    protocol: type
    on_baseline: bool
    answers: frozenset[str]
    refusal: Callable[[DefenseSpec, str], str | None]
    needs: frozenset[str] = frozenset()
    marker: str = ""
    adaptive: bool = False
    detects: bool = False


CATEGORIES: dict[str, Category] = {
    "evasion": Category(
        name="evasion", title="Evasion", protocol=Attack, per_eps=True, robust_accuracy=True,
        columns=(*(m.name for m in EVASION_METRICS), "train_images_per_s",
                 "attack_images_per_s"),
        always=("clean_acc", "robust_acc", "n_test"), chunked=True),
    "poisoning": Category(
        name="poisoning", title="Poisoning", protocol=PoisoningAttack, own_victims=True,
        summary=("clean_acc", "attack_success_rate"),
        columns=("poison_rate", "n_poison", "clean_model_acc", "clean_acc",
                 "attack_success_rate", "flagged", "precision", "recall", "f1",
                 "clean_acc_after", "attack_success_after", "n_test", "attack_seconds"),
        note=("The victim is trained on the poisoned training set. Clean acc is its accuracy "
              "on the clean test set (unpoisoned: the same model trained on clean data); "
              "attack success is the share of the attack's inputs (triggered test images or "
              "chosen targets; n test of them) classified as the attacker wants. A detector's "
              "flags are scored against the true poisons; the victim is then retrained "
              "without the flagged samples.")),
    "inference": Category(
        name="inference", title="Inference", protocol=ModelAttack,
        columns=("clean_acc",),
        note=("Inference attacks against the trained victim (clean acc is the victim's). "
              "Membership: attack accuracy on a balanced held-out set of members and "
              "non-members (50% is chance). Inversion: the victim's confidence in the "
              "reconstructed class and the L2 distance to the class mean, beside the same "
              "distance from the overall mean.")),
    "extraction": Category(
        name="extraction", title="Extraction", protocol=ModelAttack,
        columns=("clean_acc",),
        note=("The attacker queries the victim on unlabelled images and trains a copy of its "
              "architecture; stolen model acc and agreement with the victim are measured on "
              "test images the attacker never queried.")),
    "certification": Category(
        name="certification", title="Certification", protocol=Certifier,
        columns=(*(m.name for m in CERTIFICATION_METRICS), "seconds_per_image",
                 "empirical_seconds"),
        always=("clean_acc", "smoothed_acc", "n_test"),
        summary=("smoothed_acc", "certified_acc@0.5"),
        headline=HeadlineNumber("certified_acc@0.5", "certified r=0.5", "certified_acc_r0.5"),
        note=("The smoothed classifier of the trained model is certified on n test images: "
              "certified acc at r is the share it classifies correctly with a certified L2 "
              "radius of at least r (abstentions count as wrong); radii above the radius cap "
              "cannot be certified with the certifier's sample size and are left empty. "
              "Beside each certified accuracy, the smoothed classifier's accuracy under "
              "attack at eps = r: L2 PGD (20 steps) crafted through its noise (the mean "
              "softmax over 16 draws per step), judged by its PREDICT, on the first "
              "empirical n images (abstentions wrong); the certified accuracy is the lower "
              "one, up to PREDICT's abstentions near the radius. Every cell also "
              "attacks some certified images within their own radius: a certificate broken "
              "by any of these attacks is flagged V, and the cell's numbers are not shown. "
              "s/img: seconds per certified image; attack s: the attacks' seconds.")),
    "corruption": Category(
        name="corruption", title="Common corruptions", protocol=Corruptions,
        columns=(*(m.name for m in CORRUPTION_METRICS if m.name != "n_test"),
                 "seconds_per_image"),
        always=("clean_acc",),
        summary=("clean_acc", "mean_corruption_acc"), details=False,
        derive=with_relative_error, describe=describe,
        headline=HeadlineNumber("mean_corruption_acc", "corruption acc", "corruptions_acc"),
        note=("The trained model classifies corrupted copies of its n test images, generated "
              "on the fly from a seeded generator: every corruption of the suite at every "
              "severity. The corruption columns are the accuracy averaged over severities "
              "(each severity's is in the results JSON); mean corruption acc averages them "
              "all; the corruption error vs undefended is Hendrycks and Dietterich's mCE "
              "with the undefended model of the same dataset and model in AlexNet's place "
              "(100% for the undefended model; lower is better). s/img: seconds per test "
              "image for the whole sweep.")),
}


def _detector_refusal(defense: DefenseSpec, category: str) -> str | None:
    if category == "poisoning":
        return None
    return (f"{defense.name} is a poisoning detector: it inspects the training set, which "
            f"{category} attacks do not touch")


def _transformation_refusal(defense: DefenseSpec, category: str) -> str | None:
    if category in answered_categories(defense):
        return None
    return (f"{defense.name} is an input transformation against evasion; {category} attacks "
            "are not evaluated through it")


def _training_refusal(defense: DefenseSpec, category: str) -> str | None:
    # A trained model can be attacked by anything; only poisoning, which trains its own
    # victims, is measured on the undefended model instead (unless the defense answers it).
    if category != "poisoning" or category in answered_categories(defense):
        return None
    return (f"{defense.name} is a training defense against evasion; poisoning is measured "
            "on the undefended model and against the poisoning detectors")


STAGES: dict[str, Stage] = {
    "training": Stage(name="training", protocol=TrainingDefense, on_baseline=False,
                      answers=frozenset({"evasion"}), refusal=_training_refusal,
                      needs=frozenset({"training-loop"})),
    "input-transformation": Stage(name="input-transformation", protocol=InputTransformation,
                                  on_baseline=True, answers=frozenset({"evasion"}),
                                  refusal=_transformation_refusal, marker="†",
                                  adaptive=True),
    "poisoning-detection": Stage(name="poisoning-detection", protocol=PoisonDetector, detects=True,
                                 on_baseline=True, answers=frozenset({"poisoning"}),
                                 refusal=_detector_refusal),
}


def reports_robust_accuracy(category: str) -> bool:
    """Whether records of ``category`` (a name, as records store it) carry robust accuracy."""
    declared = CATEGORIES.get(category)
    return declared is not None and declared.robust_accuracy


def category_of(attack: AttackSpec) -> Category:
    """The declaration of ``attack``'s category."""
    return CATEGORIES[attack.category]


def stage_of(defense: DefenseSpec) -> Stage:
    """The declaration of ``defense``'s stage."""
    return STAGES[defense.stage]


def answered_categories(defense: DefenseSpec) -> frozenset[str]:
    """The categories ``defense`` is evaluated against: all for the baseline, else its own
    ``answers`` or its stage's."""
    if defense.baseline:
        return frozenset(CATEGORIES)
    return defense.answers if defense.answers is not None else stage_of(defense).answers


def defense_needs(defense: DefenseSpec) -> frozenset[str]:
    """The model features ``defense`` needs: its own and its stage's (not the baseline's)."""
    return defense.needs | (frozenset() if defense.baseline else stage_of(defense).needs)


def refusal(defense: DefenseSpec, attack: AttackSpec) -> str | None:
    """Why ``defense`` is not evaluated against ``attack``'s category, or None."""
    if defense.baseline:
        return None
    return stage_of(defense).refusal(defense, attack.category)


def trains_on_baseline(defense: DefenseSpec, attack: AttackSpec) -> bool:
    """Whether the cell evaluates the undefended model (its own victims, or a defense that
    sits on top of the undefended model) rather than training ``defense``'s own."""
    return category_of(attack).own_victims or stage_of(defense).on_baseline


def not_built(obj: object, protocol: type, owner: str) -> PluginError:
    """The error for ``obj``, what ``owner``'s ``build`` returned, when it does not implement
    ``protocol`` (the protocol of the spec's category or stage): it names the plugin's spec and
    the methods it lacks. Callers check ``isinstance(obj, protocol)`` themselves, which also
    tells the type checker what the object is."""
    methods = sorted(n for n in vars(protocol) if not n.startswith("_"))
    return PluginError(f"{owner}: build returned {type(obj).__name__}, which does not "
                       f"implement {protocol.__name__} (it needs {', '.join(methods)}): the "
                       "object a spec's build returns implements the protocol of its category "
                       "or stage")
