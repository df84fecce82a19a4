"""Plugin ``feature-space-poisoning``: the survey's clean-label feature-space attacks (Table 3).

Both aim at one target test image per cell: bases of another class are perturbed within Linf
``eps``, labels unchanged, so that their penultimate features (on the clean model) meet the
target's; the runner retrains a fresh victim on the poisoned set, and the attack succeeds when
it classifies the target as the base class.

- ``bullseye-polytope`` (Aghakhani et al. 2021): the mean of the bases' features is pulled to
  the target's. Native: ART 1.20.1's ``BullseyePolytopeAttackPyTorch`` never reads its target
  (it takes the bases' own features as the centre; the poisons it returns are the same for any
  target).
- ``feature-collision`` (Shafahi et al. 2018, "poison frogs", ART ``FeatureCollisionAttack``):
  each base pulled to the target's features on its own.

torch, NumPy and ART are imported only when an attack runs, so registering the plugin stays
cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness import (
    AttackObject,
    AttackSpec,
    HarnessError,
    Option,
    OptionSchema,
    ResolvedOptions,
    UsageError,
    count,
    derive_seed,
    fraction,
    hookimpl,
    options,
    positive,
)

if TYPE_CHECKING:
    import numpy as np
    import torch

    from harness import AttackContext, FeatureTap, PoisonedSet

# The seed stream of the target choice: one name for both attacks, so that under one run seed
# they aim at the same target with the same bases (the same experiment, two attacks).
TARGET_SEED_NAME = "feature-space-poisoning"


@dataclass
class TargetChoice:
    """One target test image and the base training images chosen to be poisoned for it."""

    target_index: int
    target_class: int
    base_class: int
    base_index: torch.Tensor


def _class_index(value: int, name: str, nb_classes: int) -> int:
    """``value`` (declared >= 0) checked against the dataset's number of classes."""
    if value >= nb_classes:
        raise UsageError(f"{name} must be a class index in 0..{nb_classes - 1}, got {value}")
    return value


def _generator(ctx: AttackContext, purpose: str) -> torch.Generator:
    """A CPU generator for ``purpose`` of the target choice, seeded from the run's seed."""
    import torch

    return torch.Generator().manual_seed(derive_seed(ctx.seed, TARGET_SEED_NAME, purpose))


def choose_target(ctx: AttackContext, options: ResolvedOptions, owner: str) -> TargetChoice:
    """The target and its bases for a feature-space clean-label attack.

    Target class: ``target_class`` (default: drawn with the run's seed); target: a test
    image of that class which the clean model classifies correctly, drawn with the seed.
    Bases: the ``n_poison`` training images of ``base_class`` (default: target class + 1)
    nearest to the target in the clean model's penultimate features, which makes the
    collision reachable within a small budget.
    """
    import torch

    from harness import penultimate_features, predicted_labels

    data = ctx.data
    k = data.num_classes
    clean = ctx.clean_model()
    tc = options.target_class
    tc = int(torch.randint(k, (1,), generator=_generator(ctx, "target class"))) \
        if tc is None else _class_index(tc, f"{owner}.target_class", k)
    bc = options.base_class
    bc = (tc + 1) % k if bc is None else _class_index(bc, f"{owner}.base_class", k)
    if bc == tc:
        raise UsageError(f"{owner}: base_class and target_class must differ (both {tc})")
    n = options.n_poison
    pred = predicted_labels(clean, data.x_test)
    candidates = ((data.y_test == tc) & (pred == tc)).nonzero().flatten().cpu()
    if not len(candidates):
        raise HarnessError(f"{owner}: the clean model classifies no test image of class {tc} "
                           "correctly; pick another target_class")
    pick = torch.randint(len(candidates), (1,), generator=_generator(ctx, "target image"))
    t = int(candidates[pick])
    bases = (data.y_train == bc).nonzero().flatten()
    if n > len(bases):
        raise UsageError(f"{owner}.n_poison={n}: the training set has only {len(bases)} "
                         f"images of class {bc}")
    feats = penultimate_features(clean, data.x_train[bases])
    target_feat = penultimate_features(clean, data.x_test[t:t + 1])
    nearest = (feats - target_feat).norm(dim=1).argsort()[:n]
    return TargetChoice(t, tc, bc, bases[nearest].cpu())


def _targeted_set(ctx: AttackContext, choice: TargetChoice, poisons: torch.Tensor,
                  details: dict[str, float]) -> PoisonedSet:
    """The training set with the bases replaced by ``poisons``; the target, labelled with the
    base class (what the attacker wants the victim to say)."""
    import torch

    from harness import PoisonedSet

    data = ctx.data
    x = data.x_train.clone()
    index = choice.base_index.to(x.device)
    x[index] = poisons.to(x.device)
    is_poison = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    is_poison[index] = True
    x_eval = data.x_test[choice.target_index:choice.target_index + 1].clone()
    y_eval = torch.tensor([choice.base_class], dtype=torch.int64, device=x_eval.device)
    details = {"target_class": float(choice.target_class),
               "base_class": float(choice.base_class),
               "target_index": float(choice.target_index),
               "max_linf": float((x[index] - data.x_train[index]).abs().amax()), **details}
    return PoisonedSet(x, data.y_train.clone(), is_poison, x_eval, y_eval, targeted=True,
                       details=details)


def _relative_gap(tap: FeatureTap, poisons: torch.Tensor, target: torch.Tensor,
                  centre: bool) -> float:
    """||mean f(p) - f(t)|| / ||f(t)|| (centre) or the mean of ||f(p_i) - f(t)|| / ||f(t)||."""
    import torch

    with torch.no_grad():
        feats, t = tap.embed(poisons), tap.embed(target)[0]
        gaps = (feats.mean(0, keepdim=True) if centre else feats) - t
        return float(gaps.norm(dim=1).mean() / t.norm().clamp_min(1e-12))


def _eps(ctx: AttackContext, options: ResolvedOptions) -> float:
    """The ``eps`` option: a number (the harness puts the dataset's eps in for null)."""
    return float(options.eps)


# --------------------------------------------------------------------------- options

_TARGETED = (
    Option(name="target_class", type="int", default=None, nullable=True, min=0,
           help="class of the target test image; null: drawn with the run's seed"),
    Option(name="base_class", type="int", default=None, nullable=True, min=0,
           help="class of the poisoned bases; null: target class + 1 (mod classes)"),
    count("n_poison", 5, "bases poisoned: the base-class training images nearest to the target"),
    Option(name="eps", type="float", default=None, nullable=True, min=0, min_exclusive=True,
           max=1, dataset_eps=True,
           help="Linf budget around each base in pixel units; null: the dataset's eps"),
)

BULLSEYE_OPTIONS = options(
    *_TARGETED,
    count("max_iter", 300, "Adam steps"),
    positive("learning_rate", 0.04, "Adam's learning rate"),
    fraction("momentum", 0.9, "Adam's first beta"),
    count("decay_iter", 0, "multiply the learning rate by decay_coeff every this many steps "
          "(0: never)", low=0),
    positive("decay_coeff", 0.5, "learning-rate decay factor", high=1),
)

FEATURE_COLLISION_OPTIONS = options(
    *_TARGETED,
    count("max_iter", 100, "forward-backward splitting steps"),
    positive("learning_rate", 0.1, "step of the forward (feature) step"),
    positive("similarity_coeff", 0.25, "ART's similarity coefficient (beta0 of the paper)"),
    positive("decay_coeff", 0.5, "ART's learning-rate decay when the objective rises", high=1),
)


# --------------------------------------------------------------------------- Bullseye Polytope


def bullseye_polytope(tap: FeatureTap, target: torch.Tensor, bases: torch.Tensor, eps: float,
                      max_iter: int, learning_rate: float, momentum: float = 0.9,
                      decay_iter: int = 0, decay_coeff: float = 0.5) -> torch.Tensor:
    """Bullseye Polytope poisons (Aghakhani et al. 2021; reference code ucsb-seclab/BullseyePoison).

    Adam (betas ``(momentum, 0.999)``) on the poisons to minimize
    ``||mean_i f(p_i) - f(t)|| / ||f(t)||`` (f: penultimate features of the proxy, in eval
    mode; the target sits at the poisons' centroid, the "bullseye"), each step projected onto
    the Linf ball of radius ``eps`` around the bases and onto [0, 1]; the learning rate is
    multiplied by ``decay_coeff`` every ``decay_iter`` steps (0: never). This is what ART's
    ``BullseyePolytopeAttackPyTorch`` (same parameters) sets out to do, with the target's
    features as the centre (ART 1.20.1 uses the bases' own).
    """
    import torch

    with torch.no_grad():
        centre = tap.embed(target)[0]
    poison = bases.clone().requires_grad_(True)
    opt = torch.optim.Adam([poison], lr=learning_rate, betas=(momentum, 0.999))
    for step in range(max_iter):
        if decay_iter and step and step % decay_iter == 0:
            for group in opt.param_groups:
                group["lr"] *= decay_coeff
        loss = (tap.embed(poison).mean(0) - centre).norm() / centre.norm().clamp_min(1e-12)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            poison.copy_(torch.minimum(torch.maximum(poison, bases - eps), bases + eps)
                         .clamp(0.0, 1.0))
    return poison.detach()


class BullseyePolytope:
    """Targeted clean-label poisoning: one target test image per cell (see
    :func:`choose_target`), ``n_poison`` bases perturbed by :func:`bullseye_polytope` on the
    clean model within Linf ``eps`` (default: the dataset's eps), labels unchanged.

    Success: the victim retrained on the poisoned set classifies the target as the base
    class. Each target needs its own retraining, so a cell measures one target (success is
    0 or 1); poisons for several targets in one set would help each other, so their
    combined rate would not be the rate of single-target attacks. ``options`` are resolved
    (every key of :data:`BULLSEYE_OPTIONS`).
    """

    def __init__(self, options: ResolvedOptions):
        self.o = options

    def poison(self, ctx: AttackContext) -> PoisonedSet:
        """The training set with the perturbed bases; the target and the base class."""
        from harness import FeatureTap, frozen

        o = self.o
        choice = choose_target(ctx, o, "bullseye-polytope")
        eps = _eps(ctx, o)
        data = ctx.data
        tap = FeatureTap(ctx.clean_model()).eval()
        target = data.x_test[choice.target_index:choice.target_index + 1]
        bases = data.x_train[choice.base_index.to(data.x_train.device)]
        with frozen(tap):
            poisons = bullseye_polytope(tap, target, bases, eps, o.max_iter, o.learning_rate,
                                        o.momentum, o.decay_iter, o.decay_coeff)
        return _targeted_set(ctx, choice, poisons, {
            "eps": eps, "feature_gap_before": _relative_gap(tap, bases, target, True),
            "feature_gap_after": _relative_gap(tap, poisons, target, True)})


# --------------------------------------------------------------------------- feature collision


def _bounded_feature_collision(classifier: Any, target: np.ndarray, eps: float,
                               **kwargs: Any) -> Any:
    """ART's FeatureCollisionAttack whose backward (proximal) step also projects onto the
    Linf ball of radius ``eps`` around the base: for this per-pixel separable problem,
    clipping the proximal point of ``beta ||p - b||^2`` is the proximal point of that term
    plus the ball, so the forward-backward splitting stays exact and the poisons bounded."""
    import numpy as np
    from art.attacks.poisoning import FeatureCollisionAttack

    from harness import FEATURE_LAYER

    class BoundedFeatureCollision(FeatureCollisionAttack):
        """FeatureCollisionAttack with an Linf budget around each base."""

        def backward_step(self, base: np.ndarray, feature_rep: np.ndarray,
                          poison: np.ndarray) -> np.ndarray:
            """ART's proximal step towards the base, then into base +- eps."""
            poison = super().backward_step(base, feature_rep, poison)
            return np.clip(poison, base - eps, base + eps)

    return BoundedFeatureCollision(classifier, target, FEATURE_LAYER, verbose=False, **kwargs)


class FeatureCollision:
    """Poison frogs (Shafahi et al. 2018) through ART's ``FeatureCollisionAttack``: the same
    experiment as :class:`BullseyePolytope`, each base pulled on its own towards the target's
    penultimate features by forward-backward splitting, bounded in Linf by ``eps``.

    ``similarity_coeff`` is ART's; its beta is ``similarity_coeff * (D / pixels)^2``, so the
    paper's beta0 = 0.25 (with its 2048 features) is ``similarity_coeff`` 0.25 (ART's default
    256 keeps the poisons at the base). ``learning_rate`` 0.1 suits pixels in [0, 1] (ART's
    default 500*255 is for 0-255 images). No watermarking (it would leave the eps ball).
    ``options`` are resolved (every key of :data:`FEATURE_COLLISION_OPTIONS`).
    """

    def __init__(self, options: ResolvedOptions):
        self.o = options

    def poison(self, ctx: AttackContext) -> PoisonedSet:
        """The training set with the perturbed bases; the target and the base class."""
        import numpy as np

        from harness import FeatureTap, feature_classifier, to_numpy, to_tensor

        o = self.o
        choice = choose_target(ctx, o, "feature-collision")
        eps = _eps(ctx, o)
        data = ctx.data
        clean = ctx.clean_model()
        classifier = feature_classifier(clean, tuple(data.x_train.shape[1:]), data.num_classes,
                                        ctx.device)
        target = data.x_test[choice.target_index:choice.target_index + 1]
        bases = data.x_train[choice.base_index.to(data.x_train.device)]
        attack = _bounded_feature_collision(
            classifier, to_numpy(target), eps, learning_rate=o.learning_rate,
            similarity_coeff=o.similarity_coeff, decay_coeff=o.decay_coeff,
            max_iter=o.max_iter)
        x_poison, _ = attack.poison(to_numpy(bases))
        base_np = to_numpy(bases)
        poisons = to_tensor(np.clip(x_poison, base_np - eps, base_np + eps), bases)
        tap = FeatureTap(clean).eval()
        return _targeted_set(ctx, choice, poisons, {
            "eps": eps, "feature_gap_before": _relative_gap(tap, bases, target, False),
            "feature_gap_after": _relative_gap(tap, poisons, target, False)})


# --------------------------------------------------------------------------- registration


def _feature_space_spec(name: str, description: str,
                        build: Callable[[ResolvedOptions], AttackObject], schema: OptionSchema,
                        smoke_options: Mapping[str, Any], config: Mapping[str, Any]
                        ) -> AttackSpec:
    """The spec of one feature-space clean-label attack: white-box, Linf, targeted,
    unbounded, of the survey's Table 3, reading gradients and activations."""
    return AttackSpec(
        name=name, description=description, build=build, options=schema,
        smoke_options=smoke_options, config=config, category="poisoning", bounded=False,
        survey_table="Table 3", threat_model="white-box", norm="inf", targeted=True,
        needs=frozenset({"gradients", "activations"}))


@hookimpl
def harness_register_attacks(register: Callable[[AttackSpec], None]) -> None:
    """Register the feature-space clean-label poisoning attacks of the survey's Table 3."""
    register(_feature_space_spec(
        "bullseye-polytope", "Bullseye Polytope (native; ART's ignores the target): "
                             "clean-label poisons centred on one target's features",
        BullseyePolytope, BULLSEYE_OPTIONS, {"max_iter": 10, "n_poison": 2},
        {"implementation": "native"}))
    register(_feature_space_spec(
        "feature-collision", "Poison frogs feature collision (ART), Linf-bounded: clean-label "
                             "poisons near one target's features",
        FeatureCollision, FEATURE_COLLISION_OPTIONS, {"max_iter": 5, "n_poison": 2},
        {"art_class": "FeatureCollisionAttack"}))
