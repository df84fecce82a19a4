"""Plugin ``art-evasion``: the survey's evasion attacks (Tables 1 and 2) that ART ships.

Each entry is a declaration on top of :mod:`harness.art_bridge`: name, ART class, threat
model, what it needs of the model, and a default budget (iterations, queries, number of
test images) small enough that ``--attack all`` on digits runs on a 2-core CPU.
``--attack-opt NAME.ARG=VALUE`` passes any ART constructor argument; ``--n-test`` overrides
the image budget. Bounded attacks take eps (pixel units) as their budget in their norm;
the others look for a minimal perturbation, and their median perturbation size is the result.
"""

from __future__ import annotations

from harness.art_bridge import ArtEvasion
from harness.hookspecs import hookimpl


def autoattack_ensemble(classifier, eps: float | None) -> dict:
    """The standard AutoAttack ensemble as ART builds it: APGD-CE, APGD-DLR, Square.

    100 APGD iterations each and 1,000 Square queries per image (the reference uses 5,000:
    raise it with --attack-opt if the budget allows). FAB is not in ART.
    """
    from art.attacks.evasion import AutoProjectedGradientDescent, SquareAttack

    common = {"norm": "inf", "eps": eps, "eps_step": 2 * eps / 10, "batch_size": 128,
              "verbose": False}
    return {"attacks": [
        AutoProjectedGradientDescent(classifier, loss_type="cross_entropy", max_iter=100,
                                     nb_random_init=1, **common),
        AutoProjectedGradientDescent(classifier, loss_type="difference_logits_ratio",
                                     max_iter=100, nb_random_init=1, **common),
        SquareAttack(classifier, norm="inf", eps=eps, max_iter=1000, nb_restarts=1,
                     batch_size=128, verbose=False),
    ]}


GRADIENTS = frozenset({"gradients"})
SCORES = frozenset({"scores"})
LABELS = frozenset({"labels"})

DECLARATIONS: tuple[ArtEvasion, ...] = (
    ArtEvasion(
        name="art-fgsm", art_name="FastGradientMethod", survey_table="Table 1",
        description="ART's FastGradientMethod (Linf): the same examples as the native fgsm",
        threat_model="white-box", norm="inf", needs=GRADIENTS, bounded=True,
        eps_args=lambda eps: {"eps": eps, "eps_step": eps}, defaults={"batch_size": 256},
    ),
    ArtEvasion(
        name="ifgsm", art_name="BasicIterativeMethod", survey_table="Table 1",
        description="I-FGSM / BIM (Kurakin et al.): 10 FGSM steps of eps/4, projected",
        threat_model="white-box", norm="inf", needs=GRADIENTS, bounded=True,
        eps_args=lambda eps: {"eps": eps, "eps_step": eps / 4},
        defaults={"max_iter": 10, "batch_size": 256},
    ),
    ArtEvasion(
        name="cw-l2", art_name="CarliniL2Method", survey_table="Table 1",
        description="Carlini & Wagner L2: minimal L2 perturbation by optimization",
        threat_model="white-box", norm="2", needs=GRADIENTS,
        defaults={"max_iter": 30, "binary_search_steps": 5, "learning_rate": 0.05,
                  "initial_const": 1.0, "batch_size": 128}, budget_images=100,
    ),
    ArtEvasion(
        name="cw-linf", art_name="CarliniLInfMethod", survey_table="Table 1",
        description="Carlini & Wagner Linf: minimal Linf perturbation by optimization",
        threat_model="white-box", norm="inf", needs=GRADIENTS,
        defaults={"max_iter": 10, "learning_rate": 0.1, "largest_const": 5.0,
                  "batch_size": 128}, budget_images=50,
    ),
    ArtEvasion(
        name="deepfool", art_name="DeepFool", survey_table="Table 1",
        description="DeepFool: steps to the nearest linearized decision boundary (L2)",
        threat_model="white-box", norm="2", needs=GRADIENTS,
        defaults={"max_iter": 50, "batch_size": 128}, budget_images=200,
    ),
    ArtEvasion(
        name="universal", art_name="UniversalPerturbation", survey_table="Table 1",
        description="Universal adversarial perturbation: one Linf perturbation for the batch",
        threat_model="white-box", norm="inf", needs=GRADIENTS, bounded=True,
        eps_args=lambda eps: {"eps": eps, "attacker_params": {"eps": eps}},
        defaults={"attacker": "fgsm", "max_iter": 5, "batch_size": 128}, budget_images=200,
    ),
    ArtEvasion(
        name="targeted-universal", art_name="TargetedUniversalPerturbation",
        survey_table="Table 1",
        description="Targeted universal perturbation: one Linf perturbation towards y+1",
        threat_model="white-box", norm="inf", needs=GRADIENTS, bounded=True, targeted=True,
        eps_args=lambda eps: {"eps": eps,
                              "attacker_params": {"eps": eps, "targeted": True}},
        defaults={"attacker": "fgsm", "max_iter": 5}, budget_images=200,
    ),
    ArtEvasion(
        name="jsma", art_name="SaliencyMapMethod", survey_table="Table 1",
        description="JSMA: saliency-guided changes of few pixels towards class y+1 (L0)",
        threat_model="white-box", norm="0", needs=GRADIENTS, targeted=True,
        defaults={"theta": 0.1, "gamma": 0.3, "batch_size": 128}, budget_images=100,
    ),
    ArtEvasion(
        name="newtonfool", art_name="NewtonFool", survey_table="Table 1",
        description="NewtonFool: Newton steps that lower the true class's score (L2)",
        threat_model="white-box", norm="2", needs=GRADIENTS,
        defaults={"max_iter": 50, "batch_size": 128}, budget_images=200,
    ),
    ArtEvasion(
        name="ead", art_name="ElasticNet", survey_table="Table 1",
        description="EAD: elastic-net (L1 + L2) attack, a sparse C&W",
        threat_model="white-box", norm="1", needs=GRADIENTS,
        defaults={"max_iter": 30, "binary_search_steps": 5, "learning_rate": 0.05,
                  "initial_const": 1.0, "batch_size": 128}, budget_images=100,
    ),
    ArtEvasion(
        name="brendel-bethge", art_name="BrendelBethgeAttack", survey_table="Table 1",
        description="Brendel & Bethge: walks along the boundary to the nearest Linf point",
        threat_model="white-box", norm="inf", needs=GRADIENTS,
        defaults={"steps": 100, "binary_search_steps": 5, "init_size": 50, "lr": 0.01,
                  "batch_size": 64}, budget_images=50,
    ),
    ArtEvasion(
        name="wasserstein", art_name="Wasserstein", survey_table="Table 1",
        description="Wasserstein attack: moves pixel mass within a Wasserstein ball",
        threat_model="white-box", norm="wasserstein", needs=GRADIENTS,
        defaults={"regularization": 1000.0, "eps": 0.3, "max_iter": 20, "eps_iter": 5,
                  "kernel_size": 3,
                  "conjugate_sinkhorn_max_iter": 50, "projected_sinkhorn_max_iter": 50,
                  "batch_size": 64}, budget_images=50,
    ),
    ArtEvasion(
        name="shadow", art_name="ShadowAttack", survey_table="Table 1",
        description="Shadow attack: smooth, low-colour-change perturbations",
        threat_model="white-box", norm="none", needs=GRADIENTS, per_sample=True,
        defaults={"nb_steps": 50, "batch_size": 16}, budget_images=20,
    ),
    ArtEvasion(
        name="boundary", art_name="BoundaryAttack", survey_table="Table 2",
        description="Boundary attack: decision-based random walk along the boundary (L2)",
        threat_model="black-box", norm="2", needs=LABELS,
        defaults={"targeted": False, "max_iter": 200, "num_trial": 10, "sample_size": 10,
                  "init_size": 50, "batch_size": 64}, budget_images=20,
    ),
    ArtEvasion(
        name="pixel", art_name="PixelAttack", survey_table="Table 2",
        description="One-pixel attack: differential evolution over one pixel (L0)",
        threat_model="black-box", norm="0", needs=SCORES,
        defaults={"th": 1, "es": 1, "max_iter": 10}, budget_images=20,
    ),
    ArtEvasion(
        name="threshold", art_name="ThresholdAttack", survey_table="Table 2",
        description="Few-pixel threshold attack: differential evolution under a threshold",
        threat_model="black-box", norm="inf", needs=SCORES,
        defaults={"th": 26, "es": 1, "max_iter": 10}, budget_images=20,
    ),
    ArtEvasion(
        name="zoo", art_name="ZooAttack", survey_table="Table 2",
        description="ZOO: zeroth-order optimization with estimated gradients (L2)",
        threat_model="black-box", norm="2", needs=SCORES,
        defaults={"max_iter": 20, "nb_parallel": 64, "use_resize": False,
                  "use_importance": False, "learning_rate": 0.1, "batch_size": 1},
        budget_images=20,
    ),
    ArtEvasion(
        name="spatial", art_name="SpatialTransformation", survey_table="Table 2",
        description="Spatial transformation: the worst of a grid of rotations and shifts",
        threat_model="black-box", norm="none", needs=LABELS,
        defaults={"max_translation": 20.0, "num_translations": 3, "max_rotation": 30.0,
                  "num_rotations": 5}, budget_images=200,
    ),
    ArtEvasion(
        name="simba", art_name="SimBA", survey_table="Table 2",
        description="SimBA: simple black-box attack with DCT directions on the scores",
        threat_model="black-box", norm="2", needs=SCORES, per_sample=True, probabilities=True,
        defaults={"max_iter": 200, "epsilon": 0.2, "freq_dim": 4}, budget_images=20,
    ),
    ArtEvasion(
        name="hopskipjump", art_name="HopSkipJump", survey_table="Table 2",
        description="HopSkipJump: decision-based attack with boundary gradient estimates (L2)",
        threat_model="black-box", norm="2", needs=LABELS,
        defaults={"max_iter": 10, "max_eval": 1000, "init_eval": 10, "init_size": 50,
                  "batch_size": 64}, budget_images=20,
    ),
    ArtEvasion(
        name="square", art_name="SquareAttack", survey_table="Table 2",
        description="Square attack: random square updates on the scores, Linf-bounded",
        threat_model="black-box", norm="inf", needs=SCORES, bounded=True,
        eps_args=lambda eps: {"eps": eps},
        defaults={"max_iter": 200, "nb_restarts": 1, "batch_size": 128}, budget_images=100,
    ),
    ArtEvasion(
        name="autoattack", art_name="AutoAttack", survey_table="beside Tables 1-2",
        description="AutoAttack ensemble (APGD-CE, APGD-DLR, Square) through ART, Linf",
        threat_model="white-box", norm="inf", needs=GRADIENTS, bounded=True,
        eps_args=lambda eps: {"eps": eps, "eps_step": eps / 4},
        estimator_args=autoattack_ensemble, defaults={"batch_size": 128}, budget_images=100,
    ),
)


@hookimpl
def harness_register_attacks(register):
    """Register every declared ART evasion attack."""
    for declaration in DECLARATIONS:
        register(declaration.spec())
