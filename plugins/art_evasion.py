"""Plugin ``art-evasion``: the survey's evasion attacks (Tables 1 and 2) that ART ships.

Each entry is a declaration (:class:`harness.art.declarations.ArtEvasion`, run by
:mod:`harness.art.bridge`): name, ART class, threat model, what it needs of the model, its
declared options (the ART constructor arguments the harness sets, with a default budget of
iterations and queries small enough that ``--attack all`` on digits runs on a 2-core CPU), the
number of test images, its tiny smoke budget and its roles. ``--attack-opt NAME.ARG=VALUE``
also passes any other ART constructor argument; ``--n-test`` overrides the image budget.
Bounded attacks take eps (pixel units) as their budget in their norm; the others look for a
minimal perturbation, and their median perturbation size is the result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness import (
    BLACK_BOX,
    ENSEMBLE,
    ITERATIVE,
    ArtEvasion,
    AttackSpec,
    Option,
    ResolvedOptions,
    UsageError,
    count,
    hookimpl,
    positive,
)


def flag(name: str, default: bool, help: str) -> Option:
    """A true/false option."""
    return Option(name=name, type="bool", default=default, help=help)


def batch(default: int) -> Option:
    """``batch_size``: images per call of the model."""
    return count("batch_size", default, "images per batch of model calls")


def iterations(default: int, help: str = "iterations") -> Option:
    """``max_iter``."""
    return count("max_iter", default, help)


def autoattack_ensemble(classifier: Any, eps: float | None, own: ResolvedOptions
                        ) -> dict[str, Any]:
    """ART's AutoAttack ensemble: APGD-CE, APGD-DLR, Square (``art-autoattack``).

    ``apgd_iter`` APGD iterations each (100) and ``square_iter`` Square queries per image
    (1,000). Not the standard AutoAttack (APGD-CE, APGD-T, FAB-T, Square with 5,000 queries),
    which the ``autoattack`` plugin runs with the reference code: ART has no FAB and no
    targeted APGD in its list.
    """
    from art.attacks.evasion import AutoProjectedGradientDescent, SquareAttack

    if eps is None:
        raise UsageError("art-autoattack needs an eps")
    common = {"norm": "inf", "eps": eps, "eps_step": 2 * eps / 10, "batch_size": 128,
              "verbose": False}
    return {"attacks": [
        AutoProjectedGradientDescent(classifier, loss_type="cross_entropy",
                                     max_iter=own.apgd_iter, nb_random_init=1, **common),
        AutoProjectedGradientDescent(classifier, loss_type="difference_logits_ratio",
                                     max_iter=own.apgd_iter, nb_random_init=1, **common),
        SquareAttack(classifier, norm="inf", eps=eps, max_iter=own.square_iter,
                     nb_restarts=1, batch_size=128, verbose=False),
    ]}


GRADIENTS = frozenset({"gradients"})
SCORES = frozenset({"scores"})
LABELS = frozenset({"labels"})

# C&W L2 and EAD share their optimization options.
_CW_OPTIONS = (
    iterations(30, "optimizer steps per binary-search step"),
    count("binary_search_steps", 5, "binary-search steps over the trade-off constant"),
    positive("learning_rate", 0.05, "the optimizer's learning rate"),
    positive("initial_const", 1.0, "the first trade-off constant"),
    batch(128),
)

DECLARATIONS: tuple[ArtEvasion, ...] = (
    ArtEvasion(
        name="art-fgsm", art_name="FastGradientMethod", survey_table="Table 1",
        description="ART's FastGradientMethod (Linf): the same examples as the native fgsm",
        threat_model="white-box", norm="inf", needs=GRADIENTS, bounded=True,
        eps_args=lambda eps: {"eps": eps, "eps_step": eps}, options=(batch(256),),
    ),
    ArtEvasion(
        name="ifgsm", art_name="BasicIterativeMethod", survey_table="Table 1",
        description="I-FGSM / BIM (Kurakin et al.): 10 FGSM steps of eps/4, projected",
        threat_model="white-box", norm="inf", needs=GRADIENTS, bounded=True,
        eps_args=lambda eps: {"eps": eps, "eps_step": eps / 4},
        options=(iterations(10, "FGSM steps"), batch(256)), roles=frozenset({ITERATIVE}),
    ),
    ArtEvasion(
        name="cw-l2", art_name="CarliniL2Method", survey_table="Table 1",
        description="Carlini & Wagner L2: minimal L2 perturbation by optimization",
        threat_model="white-box", norm="2", needs=GRADIENTS, options=_CW_OPTIONS,
        smoke_options={"max_iter": 3, "binary_search_steps": 1}, budget_images=100,
    ),
    ArtEvasion(
        name="cw-linf", art_name="CarliniLInfMethod", survey_table="Table 1",
        description="Carlini & Wagner Linf: minimal Linf perturbation by optimization",
        threat_model="white-box", norm="inf", needs=GRADIENTS,
        options=(iterations(10, "optimizer steps per trade-off constant"),
                 positive("learning_rate", 0.1, "the optimizer's learning rate"),
                 positive("largest_const", 5.0, "the largest trade-off constant tried"),
                 batch(128)),
        smoke_options={"max_iter": 2, "initial_const": 1.0, "largest_const": 2.0},
        budget_images=50,
    ),
    ArtEvasion(
        name="deepfool", art_name="DeepFool", survey_table="Table 1",
        description="DeepFool: steps to the nearest linearized decision boundary (L2)",
        threat_model="white-box", norm="2", needs=GRADIENTS,
        options=(iterations(50, "linearization steps"), batch(128)), budget_images=200,
    ),
    ArtEvasion(
        name="universal", art_name="UniversalPerturbation", survey_table="Table 1",
        description="Universal adversarial perturbation: one Linf perturbation for the batch",
        threat_model="white-box", norm="inf", needs=GRADIENTS, bounded=True,
        eps_args=lambda eps: {"eps": eps, "attacker_params": {"eps": eps}},
        options=(Option(name="attacker", type="str", default="fgsm",
                        choices=("fgsm", "bim", "pgd"),
                        help="the eps-bounded ART attack each image's step is taken with"),
                 iterations(5, "passes over the images"), batch(128)),
        smoke_options={"max_iter": 1}, budget_images=200,
        limits=("one perturbation for every image: within a small Linf budget it fools few "
                "images of any model (undefended paper-cnn on digits: about 5% at eps 0.1 "
                "with 5, 20 or PGD-20 passes; about half at eps 0.3): a W flag at eps 0.1 is "
                "the threat model's, not a badly tuned budget"),
    ),
    ArtEvasion(
        name="targeted-universal", art_name="TargetedUniversalPerturbation",
        survey_table="Table 1",
        description="Targeted universal perturbation: one Linf perturbation towards y+1",
        threat_model="white-box", norm="inf", needs=GRADIENTS, bounded=True, targeted=True,
        eps_args=lambda eps: {"eps": eps,
                              "attacker_params": {"eps": eps, "targeted": True}},
        options=(Option(name="attacker", type="str", default="fgsm", choices=("fgsm",),
                        help="the ART attack each image's step is taken with"),
                 iterations(5, "passes over the images")),
        smoke_options={"max_iter": 1}, budget_images=200,
        limits=("one perturbation for every image, towards one class each: within a small "
                "Linf budget it moves few images of any model (undefended paper-cnn on "
                "digits: under 3% at eps 0.1)"),
    ),
    ArtEvasion(
        name="jsma", art_name="SaliencyMapMethod", survey_table="Table 1",
        description="JSMA: saliency-guided changes of few pixels towards class y+1 (L0)",
        threat_model="white-box", norm="0", needs=GRADIENTS, targeted=True,
        options=(Option(name="theta", type="float", default=0.1, min=-1, max=1,
                        help="change of each modified pixel per step (negative: darken)"),
                 positive("gamma", 0.3, "the largest share of pixels changed", high=1),
                 batch(128)),
        budget_images=100,
    ),
    ArtEvasion(
        name="newtonfool", art_name="NewtonFool", survey_table="Table 1",
        description="NewtonFool: Newton steps that lower the true class's score (L2)",
        threat_model="white-box", norm="2", needs=GRADIENTS,
        options=(iterations(50, "Newton steps"), batch(128)), budget_images=200,
    ),
    ArtEvasion(
        name="ead", art_name="ElasticNet", survey_table="Table 1",
        description="EAD: elastic-net (L1 + L2) attack, a sparse C&W",
        threat_model="white-box", norm="1", needs=GRADIENTS, options=_CW_OPTIONS,
        smoke_options={"max_iter": 3, "binary_search_steps": 1}, budget_images=100,
    ),
    ArtEvasion(
        name="brendel-bethge", art_name="BrendelBethgeAttack", survey_table="Table 1",
        description="Brendel & Bethge: walks along the boundary to the nearest Linf point",
        threat_model="white-box", norm="inf", needs=GRADIENTS,
        options=(count("steps", 100, "steps along the boundary"),
                 count("binary_search_steps", 5, "binary-search steps to the boundary"),
                 count("init_size", 50, "random draws for an adversarial starting point"),
                 positive("lr", 0.01, "trust-region radius"), batch(64)),
        smoke_options={"steps": 1, "binary_search_steps": 1, "init_size": 5},
        budget_images=50,
    ),
    ArtEvasion(
        name="wasserstein", art_name="Wasserstein", survey_table="Table 1",
        description="Wasserstein attack: moves pixel mass within a Wasserstein ball",
        threat_model="white-box", norm="wasserstein", needs=GRADIENTS,
        options=(positive("regularization", 1000.0, "entropy regularization of Sinkhorn"),
                 positive("eps", 0.3, "the first Wasserstein radius"),
                 iterations(20, "projected steps"),
                 count("eps_iter", 5, "steps between growths of the radius"),
                 count("kernel_size", 3, "side of the local transport window (odd)"),
                 count("conjugate_sinkhorn_max_iter", 50, "conjugate Sinkhorn iterations"),
                 count("projected_sinkhorn_max_iter", 50, "projected Sinkhorn iterations"),
                 batch(64)),
        smoke_options={"max_iter": 1, "conjugate_sinkhorn_max_iter": 5,
                       "projected_sinkhorn_max_iter": 5},
        budget_images=50,
    ),
    ArtEvasion(
        name="shadow", art_name="ShadowAttack", survey_table="Table 1",
        description="Shadow attack: smooth, low-colour-change perturbations",
        threat_model="white-box", norm="none", needs=GRADIENTS, per_sample=True,
        options=(count("nb_steps", 50, "optimization steps"), batch(16)),
        smoke_options={"nb_steps": 2, "batch_size": 2}, budget_images=20,
        limits=("built against certified (randomized-smoothing) classifiers: ART's loss "
                "keeps the perturbation smooth and small in colour change, and on an "
                "undefended paper-cnn on digits it turns no image at 50 or 300 steps"),
    ),
    ArtEvasion(
        name="boundary", art_name="BoundaryAttack", survey_table="Table 2",
        description="Boundary attack: decision-based random walk along the boundary (L2)",
        threat_model="black-box", norm="2", needs=LABELS,
        options=(flag("targeted", False, "ART's targeted mode (the harness runs untargeted)"),
                 iterations(200, "walk steps"),
                 count("num_trial", 10, "trials per step"),
                 count("sample_size", 10, "samples per trial"),
                 count("init_size", 50, "random draws for an adversarial starting point"),
                 batch(64)),
        smoke_options={"max_iter": 5, "num_trial": 2, "sample_size": 2, "init_size": 10},
        budget_images=20,
    ),
    ArtEvasion(
        name="pixel", art_name="PixelAttack", survey_table="Table 2",
        description="One-pixel attack: differential evolution over one pixel (L0)",
        threat_model="black-box", norm="0", needs=SCORES,
        options=(Option(name="th", type="int", default=1, min=1, nullable=True,
                        per_dataset=(("digits", 3),),
                        help="pixels changed (null: ART searches the fewest)"),
                 count("es", 1, "the search: 0 CMA-ES (needs the cma package), 1 "
                               "differential evolution", 0, 1),
                 Option(name="max_iter", type="int", default=10, min=0,
                        per_dataset=(("digits", 20),),
                        help="generations after the first population (0: that population "
                             "only)")),
        smoke_options={"max_iter": 0}, budget_images=20,
        limits=("one pixel of an undefended paper-cnn's input rarely decides its class: on "
                "digits (64 pixels) one pixel turns 7% of 100 images, three pixels with 20 "
                "generations (the digits default) 70%; on MNIST (784 pixels) three pixels "
                "turn 3%"),
    ),
    ArtEvasion(
        name="threshold", art_name="ThresholdAttack", survey_table="Table 2",
        description="Few-pixel threshold attack: differential evolution under a threshold",
        threat_model="black-box", norm="inf", needs=SCORES,
        options=(Option(name="th", type="int", default=26, min=1, nullable=True,
                        per_dataset=(("digits", 64),),
                        help="the largest change of a pixel, in 0-255 units (null: ART "
                             "searches the smallest)"),
                 count("es", 1, "the search: 0 CMA-ES (needs the cma package), 1 "
                               "differential evolution", 0, 1),
                 count("max_iter", 10, "generations after the first population (0: that "
                                       "population only)", low=0)),
        smoke_options={"max_iter": 0}, budget_images=20,
        limits=("a black-box search within th/255 of each pixel: at 26/255 (about eps 0.1) "
                "it turns 5% of an undefended paper-cnn's digits in 10 generations and 11% "
                "in 100; the digits default, 64/255, turns about half, and 8% on MNIST"),
    ),
    ArtEvasion(
        name="zoo", art_name="ZooAttack", survey_table="Table 2",
        description="ZOO: zeroth-order optimization with estimated gradients (L2)",
        threat_model="black-box", norm="2", needs=SCORES,
        options=(iterations(20, "coordinate-descent steps"),
                 count("nb_parallel", 64, "coordinates updated per step"),
                 flag("use_resize", False, "search a smaller image first"),
                 flag("use_importance", False, "sample coordinates by importance"),
                 Option(name="learning_rate", type="float", default=0.1, min=0,
                        min_exclusive=True, per_dataset=(("digits", 0.5),),
                        help="coordinate step size"), batch(1)),
        smoke_options={"max_iter": 2, "nb_parallel": 8}, budget_images=20,
    ),
    ArtEvasion(
        name="spatial", art_name="SpatialTransformation", survey_table="Table 2",
        description="Spatial transformation: the worst of a grid of rotations and shifts",
        threat_model="black-box", norm="none", needs=LABELS,
        options=(Option(name="max_translation", type="float", default=20.0, min=0, max=100,
                        help="largest shift, in percent of the image side"),
                 count("num_translations", 3, "shifts tried per direction"),
                 Option(name="max_rotation", type="float", default=30.0, min=0, max=180,
                        help="largest rotation, in degrees"),
                 count("num_rotations", 5, "rotations tried")),
        budget_images=200, keeps_state=True,
    ),
    ArtEvasion(
        name="simba", art_name="SimBA", survey_table="Table 2",
        description="SimBA: simple black-box attack with DCT directions on the scores",
        threat_model="black-box", norm="2", needs=SCORES, per_sample=True, probabilities=True,
        options=(iterations(200, "directions tried (one query pair each)"),
                 positive("epsilon", 0.2, "step along each direction"),
                 count("freq_dim", 4, "low-frequency DCT block side")),
        smoke_options={"max_iter": 10}, budget_images=20,
    ),
    ArtEvasion(
        name="hopskipjump", art_name="HopSkipJump", survey_table="Table 2",
        description="HopSkipJump: decision-based attack with boundary gradient estimates (L2)",
        threat_model="black-box", norm="2", needs=LABELS,
        options=(iterations(10, "boundary steps"),
                 count("max_eval", 1000, "largest number of queries per gradient estimate"),
                 count("init_eval", 10, "first number of queries per gradient estimate"),
                 count("init_size", 50, "random draws for an adversarial starting point"),
                 batch(64)),
        smoke_options={"max_iter": 2, "max_eval": 50, "init_eval": 5, "init_size": 10},
        budget_images=20,
    ),
    ArtEvasion(
        name="square", art_name="SquareAttack", survey_table="Table 2",
        description="Square attack: random square updates on the scores, Linf-bounded",
        threat_model="black-box", norm="inf", needs=SCORES, bounded=True,
        eps_args=lambda eps: {"eps": eps},
        options=(iterations(200, "queries per image and restart"),
                 count("nb_restarts", 1, "restarts"), batch(128)),
        smoke_options={"max_iter": 20}, roles=frozenset({BLACK_BOX}), budget_images=100,
    ),
    ArtEvasion(
        name="art-autoattack", art_name="AutoAttack", survey_table="beside Tables 1-2",
        description="ART's 3-attack AutoAttack variant (APGD-CE, APGD-DLR, Square with 1,000 "
                    "queries), Linf; not the standard one (autoattack)",
        threat_model="white-box", norm="inf", needs=GRADIENTS, bounded=True,
        eps_args=lambda eps: {"eps": eps, "eps_step": eps / 4},
        estimator_args=autoattack_ensemble, options=(batch(128),),
        own_options=(count("apgd_iter", 100, "iterations of each APGD attack"),
                     count("square_iter", 1000, "Square queries per image")),
        smoke_options={"apgd_iter": 5, "square_iter": 20},
        roles=frozenset({ITERATIVE, ENSEMBLE}), budget_images=100,
    ),
)


@hookimpl
def harness_register_attacks(register: Callable[[AttackSpec], None]) -> None:
    """Register every declared ART evasion attack."""
    for declaration in DECLARATIONS:
        register(declaration.spec())
