"""Plugin ``backdoor-poisoning``: the survey's trigger-based poisoning attacks (Table 3), by ART.

Each attack returns a :class:`~harness.contracts.context.PoisonedSet`; the runner retrains a fresh
victim on it and measures clean accuracy and attack success on ``x_eval`` (the cell's test
images not of the target class, with the trigger).

- ``backdoor`` (Gu et al. 2017, ART ``PoisoningAttackBackdoor``): a share of the training
  images of other classes get a pixel-pattern trigger and the target label.
- ``clean-label-backdoor`` (Turner et al. 2019, ART ``PoisoningAttackCleanLabelBackdoor``):
  target-class images get a PGD perturbation on the clean model, then the trigger; labels stay.

Not provided: see :data:`NOT_PROVIDED`. torch, NumPy and ART are imported only when an attack
runs, so registering the plugin stays cheap.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness import (
    AttackObject,
    AttackSpec,
    HarnessError,
    Norm,
    Option,
    OptionSchema,
    ResolvedOptions,
    ThreatModel,
    UsageError,
    count,
    derive_seed,
    hookimpl,
    options,
    positive,
)

if TYPE_CHECKING:
    import numpy as np
    import torch

    from harness import AttackContext, PoisonedSet

NOT_PROVIDED: dict[str, str] = {
    "adversarial-embedding":
        "ART's PoisoningAttackAdversarialEmbedding supports only Keras classifiers",
}


def trigger_scale(height: int, width: int) -> int:
    """Side of one trigger pixel: 1 up to 55-pixel images, then one per 28 pixels."""
    return max(1, min(height, width) // 28)


@dataclass(frozen=True)
class Trigger:
    """ART's pixel-pattern backdoor (``add_pattern_bd``: four white pixels in a 3x3 checker
    two pixels from the bottom-right corner), each pixel a ``scale`` x ``scale`` block.

    Called on a NumPy batch N,C,H,W it returns a triggered copy (every channel set to 1).
    Scale None picks :func:`trigger_scale` (1 for digits, MNIST, CIFAR-10; 8 for 224 pixels).
    """

    scale: int | None = None

    def mask(self, height: int, width: int) -> np.ndarray:
        """Boolean H x W mask of the trigger's pixels."""
        import numpy as np
        from art.attacks.poisoning.perturbations import add_pattern_bd

        s = self.scale or trigger_scale(height, width)
        canvas = np.zeros((1, math.ceil(height / s), math.ceil(width / s)), dtype=np.float32)
        small = add_pattern_bd(canvas, distance=2, pixel_value=1)[0]
        return np.kron(small, np.ones((s, s), dtype=np.float32))[-height:, -width:] > 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """A copy of the batch ``x`` (N,C,H,W) with the trigger."""
        import numpy as np

        out = np.array(x, dtype=np.float32, copy=True)
        out[:, :, self.mask(*out.shape[2:])] = 1.0
        return out


def art_backdoor(trigger: Trigger):
    """ART's PoisoningAttackBackdoor with ``trigger`` as its perturbation."""
    from art.attacks.poisoning import PoisoningAttackBackdoor

    return PoisoningAttackBackdoor(perturbation=trigger)


def _target_class(value: int, owner: str, nb_classes: int) -> int:
    """``value`` (declared >= 0) checked against the dataset's number of classes."""
    if value >= nb_classes:
        raise UsageError(f"{owner}.target must be a class index in 0..{nb_classes - 1}, "
                         f"got {value}")
    return value


def triggered_test_set(ctx: AttackContext, target: int, trigger: Trigger
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """The cell's test images not of class ``target``, with the trigger, and ``target``."""
    import torch

    from harness import to_numpy, to_tensor

    x, y = ctx.test_subset()
    x = x[y != target]
    x_eval = to_tensor(trigger(to_numpy(x)), x)
    return x_eval, torch.full((len(x_eval),), target, dtype=torch.int64, device=x.device)


# --------------------------------------------------------------------------- options

_TARGET = count("target", 0, "the class the trigger is to produce (a class index)", low=0)
_TRIGGER_SCALE = Option(name="trigger_scale", type="int", default=None, nullable=True, min=1,
                        help="side in pixels of one trigger pixel; null: 1 up to 55-pixel "
                             "images, then one per 28 pixels")

BACKDOOR_OPTIONS = options(
    _TARGET,
    positive("rate", 0.1, "share of the training set poisoned (drawn from the images not of "
             "the target class)", high=1),
    _TRIGGER_SCALE,
)

CLEAN_LABEL_OPTIONS = options(
    _TARGET,
    positive("pp_poison", 0.5, "poisons as a share of the target class's training images, "
             "below 1 (ART draws them with replacement)", high=1),
    Option(name="eps", type="float", default=None, nullable=True, min=0, min_exclusive=True,
           dataset_eps=True,
           max=1,
           help="Linf budget of the PGD perturbation in pixel units; null: the dataset's eps"),
    Option(name="eps_step", type="float", default=None, nullable=True, min=0,
           min_exclusive=True, max=1, help="PGD step in pixel units; null: eps / 4"),
    count("max_iter", 10, "PGD steps"),
    count("num_random_init", 0, "PGD random restarts (0: start at the image)", low=0),
    _TRIGGER_SCALE,
)


# --------------------------------------------------------------------------- attacks


class Backdoor:
    """Gu et al.'s BadNets backdoor through ART's ``PoisoningAttackBackdoor``.

    ``rate`` of the training set (rounded), drawn at random (seeded) from the images not of
    class ``target``, get the :class:`Trigger` and the label ``target``, in place.
    ``x_eval``: the cell's test images not of class ``target``, triggered; ``y_eval``: target.
    ``options`` are resolved (every key of :data:`BACKDOOR_OPTIONS`).
    """

    def __init__(self, options: ResolvedOptions):
        self.target = options.target
        self.rate = options.rate
        self.trigger = Trigger(options.trigger_scale)

    def poison(self, ctx: AttackContext) -> PoisonedSet:
        """The training set with the triggered, relabelled share; the triggered test set."""
        import torch

        from harness import PoisonedSet, one_hot, to_numpy, to_tensor

        data = ctx.data
        target = _target_class(self.target, "backdoor", data.num_classes)
        x, y = data.x_train, data.y_train
        n = int(round(self.rate * len(x)))
        candidates = (y != target).nonzero().flatten().cpu()
        if not 1 <= n <= len(candidates):
            raise UsageError(f"backdoor.rate={self.rate} asks for {n} poisons; this training "
                             f"set has {len(candidates)} images not of class {target}")
        g = torch.Generator().manual_seed(derive_seed(ctx.seed, "backdoor", "poisoned images"))
        chosen = candidates[torch.randperm(len(candidates), generator=g)[:n]]
        x_poison, _ = art_backdoor(self.trigger).poison(
            to_numpy(x[chosen]), y=one_hot([target], data.num_classes)[0], broadcast=True)
        x_new, y_new = x.clone(), y.clone()
        x_new[chosen.to(x.device)] = to_tensor(x_poison, x)
        y_new[chosen.to(y.device)] = target
        is_poison = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        is_poison[chosen.to(x.device)] = True
        x_eval, y_eval = triggered_test_set(ctx, target, self.trigger)
        return PoisonedSet(x_new, y_new, is_poison, x_eval, y_eval,
                           targeted=True, details={"target_class": float(target)})


class CleanLabelBackdoor:
    """Turner et al.'s clean-label backdoor through ART's ``PoisoningAttackCleanLabelBackdoor``.

    ART draws ``pp_poison`` x (number of class-``target`` training images) indices of that
    class *with replacement* (NumPy's generator, seeded here), runs untargeted Linf PGD on
    them against the proxy (``ctx.clean_model()``, the victim architecture trained on clean
    data), so they are hard to classify from their content, then adds the :class:`Trigger`;
    labels are unchanged. ``is_poison`` marks the images that changed.

    eps defaults to the dataset's eps (0.1 on digits and MNIST, 0.03 ~ 8/255 on CIFAR-10):
    the budget under which the harness deems a change imperceptible, which a clean-label
    attack needs (the images must still look correctly labelled). Turner et al. used 8, 16
    and 32/255 on CIFAR-10, more succeeding with larger budgets: raise ``eps`` to follow
    them. PGD: ``max_iter`` 10 steps of ``eps_step`` (default eps/4), as ART's PGD runs it.
    ``options`` are resolved (every key of :data:`CLEAN_LABEL_OPTIONS`).
    """

    def __init__(self, options: ResolvedOptions):
        self.o = options
        if self.o.pp_poison >= 1:
            raise UsageError(f"clean-label-backdoor.pp_poison must be below 1 (ART's "
                             f"requirement), got {self.o.pp_poison}")
        self.trigger = Trigger(self.o.trigger_scale)

    def poison(self, ctx: AttackContext) -> PoisonedSet:
        """The training set with perturbed, triggered target-class images; triggered tests."""
        import numpy as np
        import torch
        from art.attacks.poisoning import PoisoningAttackCleanLabelBackdoor

        from harness import (
            PoisonedSet,
            feature_classifier,
            numpy_seed,
            one_hot,
            to_numpy,
            to_tensor,
        )

        data = ctx.data
        k = data.num_classes
        o = self.o
        target = _target_class(o.target, "clean-label-backdoor", k)
        eps = float(o.eps)     # the harness puts the dataset's eps in for null
        step = eps / 4 if o.eps_step is None else o.eps_step
        x, y = data.x_train, data.y_train
        if int((y == target).sum()) * o.pp_poison < 1:
            raise UsageError(f"clean-label-backdoor: pp_poison={o.pp_poison} of the "
                             f"{int((y == target).sum())} training images of class {target} "
                             "is less than one image")
        proxy = feature_classifier(ctx.clean_model(), tuple(x.shape[1:]), k, ctx.device)
        attack = PoisoningAttackCleanLabelBackdoor(
            backdoor=art_backdoor(self.trigger), proxy_classifier=proxy,
            target=one_hot([target], k)[0], pp_poison=o.pp_poison, norm=np.inf, eps=eps,
            eps_step=step, max_iter=o.max_iter, num_random_init=o.num_random_init)
        attack.attack.set_params(verbose=False)
        x_np = to_numpy(x)
        with numpy_seed(derive_seed(ctx.seed, "clean-label-backdoor", "ART poisoning")):
            x_out, y_out = attack.poison(x_np, one_hot(y, k), broadcast=True)
        changed = torch.from_numpy((x_out != x_np).reshape(len(x_np), -1).any(1))
        if not bool((np.argmax(y_out, 1) == y.cpu().numpy()).all()):
            raise HarnessError("ART's clean-label backdoor changed labels; it must keep them")
        x_eval, y_eval = triggered_test_set(ctx, target, self.trigger)
        return PoisonedSet(to_tensor(x_out, x), y.clone(), changed.to(x.device), x_eval,
                           y_eval, targeted=True,
                           details={"target_class": float(target), "eps": eps})


# --------------------------------------------------------------------------- registration


def _backdoor_spec(name: str, description: str,
                   build: Callable[[ResolvedOptions], AttackObject], threat_model: ThreatModel,
                   norm: Norm, needs: frozenset[str], art_class: str, schema: OptionSchema,
                   smoke_options: Mapping[str, Any] | None = None) -> AttackSpec:
    """The spec of one trigger-based poisoning attack: targeted, unbounded, of the survey's
    Table 3."""
    return AttackSpec(
        name=name, description=description, build=build, threat_model=threat_model,
        norm=norm, needs=needs, options=schema, smoke_options=dict(smoke_options or {}),
        config={"art_class": art_class}, category="poisoning", bounded=False,
        survey_table="Table 3", targeted=True)


@hookimpl
def harness_register_attacks(register: Callable[[AttackSpec], None]) -> None:
    """Register the trigger-based poisoning attacks of the survey's Table 3."""
    register(_backdoor_spec(
        "backdoor", "BadNets backdoor (ART): a pixel-pattern trigger and the target label on "
                    "10% of the training set",
        Backdoor, "black-box", "none", frozenset(), "PoisoningAttackBackdoor",
        BACKDOOR_OPTIONS))
    register(_backdoor_spec(
        "clean-label-backdoor", "Clean-label backdoor (ART): PGD on the clean model, then the "
                                "trigger, on target-class images; labels kept",
        CleanLabelBackdoor, "white-box", "inf", frozenset({"gradients"}),
        "PoisoningAttackCleanLabelBackdoor", CLEAN_LABEL_OPTIONS, {"max_iter": 2}))
