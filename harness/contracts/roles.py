"""The roles attacks and defenses declare, so the core asks for a role, never for a name.

The checks, the automatic large-eps cell and the reports ask for "the single-step attack" or
"the iterative white-box attack" of a run; any plugin that declares the role takes part, on
the same terms as the built-ins.
"""

from __future__ import annotations

SINGLE_STEP = "single-step"
ITERATIVE = "iterative"
ENSEMBLE = "ensemble"
BLACK_BOX = "black-box"
REFERENCE = "reference"

ATTACK_ROLES: dict[str, str] = {
    SINGLE_STEP: "a one-step gradient attack (FGSM-like): the number an iterative attack of "
                 "the same norm must not exceed",
    ITERATIVE: "an iterative white-box attack (PGD-like) that should reach about chance at a "
               "very large eps; compared with the single-step attack at the same eps",
    ENSEMBLE: "an ensemble of attacks (AutoAttack-like); counts as iterative white-box for the "
              "checks but not as the single-step attack's iterative counterpart",
    BLACK_BOX: "a score-based black-box attack strong enough to be a gradient-masking control: "
               "it must not beat every white-box attack",
    REFERENCE: "the harness's reference attack of its other roles: when several attacks share "
               "a role, the automatic cells use the reference one",
}

BASELINE = "baseline"
SINGLE_STEP_TRAINING = "single-step-training"

DEFENSE_ROLES: dict[str, str] = {
    BASELINE: "the undefended reference every run trains and shows (also DefenseSpec.baseline)",
    SINGLE_STEP_TRAINING: "adversarial training on single-step (FGSM) examples, as the paper's "
                          "Algorithm 2",
}
