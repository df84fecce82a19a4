"""Plugin ``art-poisoning``: the survey's poisoning attacks (Table 3), mostly through ART.

Each attack returns a :class:`~harness.context.PoisonedSet`; the runner retrains a fresh
victim on it and measures clean accuracy and attack success on ``x_eval``.

- ``backdoor`` (Gu et al. 2017, ART ``PoisoningAttackBackdoor``): a share of the training
  images of other classes get a pixel-pattern trigger and the target label.
- ``clean-label-backdoor`` (Turner et al. 2019, ART ``PoisoningAttackCleanLabelBackdoor``):
  target-class images get a PGD perturbation on the clean model, then the trigger; labels stay.
- ``bullseye-polytope`` (Aghakhani et al. 2021): clean-label, one target test image; bases of
  another class are perturbed so the mean of their features is the target's. Native: ART
  1.20.1's ``BullseyePolytopeAttackPyTorch`` never reads its target (it takes the bases' own
  features as the centre; the poisons it returns are the same for any target).
- ``feature-collision`` (Shafahi et al. 2018, "poison frogs", ART ``FeatureCollisionAttack``):
  the same experiment, each base pulled to the target's features on its own.
- ``svm-poisoning`` (Biggio et al. 2012, ART ``PoisoningAttackSVM``): an availability attack
  on a linear SVM victim.

Not provided: see :data:`NOT_PROVIDED`.

The glue shared with :mod:`harness_plugins.poison_detectors` lives here: the penultimate-layer
tap (:class:`FeatureTap`, :func:`feature_classifier`), the trigger (:class:`Trigger`), seeding
of NumPy's global generator that ART draws from (:func:`numpy_seed`), freezing a model while
inputs are optimized through it (:func:`frozen`), and tensor/array conversion. ART and
scikit-learn are imported only when an attack runs.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.context import AttackContext, PoisonedSet
from harness.errors import HarnessError, UsageError
from harness.hookspecs import hookimpl
from harness.options import resolve_options
from harness.specs import AttackSpec

NOT_PROVIDED: dict[str, str] = {
    "adversarial-embedding":
        "ART's PoisoningAttackAdversarialEmbedding supports only Keras classifiers",
}

FEATURE_LAYER = "features"

# --------------------------------------------------------------------------- shared glue


class FeatureTap(nn.Module):
    """``model`` with its penultimate features exposed as the layer named ``features``.

    The penultimate features are the input of the model's last ``nn.Linear`` (its
    classification head), flattened. ART's PyTorchClassifier names this wrapper's layers
    ``['model', 'features']``: the last one, which ART's ActivationDefence and
    SpectralSignatureDefense read (``nb_layers - 1``), and the layer the feature-space
    attacks name, is the features. (On a bare ``nn.Sequential`` ART's last layer would be
    the logits, and on :func:`harness.art_bridge.art_classifier`'s wrapper the whole model.)
    Works for any model with an ``nn.Linear`` head, Sequential or not.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        heads = [m for m in model.modules() if isinstance(m, nn.Linear)]
        if not heads:
            raise UsageError(f"{type(model).__name__} has no nn.Linear layer: the poisoning "
                             "attacks and detectors that read penultimate features need one")
        self.model = model
        self.features = nn.Identity()
        self._head = (heads[-1],)  # a tuple, so that it is not registered as another layer

    def run(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and penultimate features (N, D) of ``x``, with gradients."""
        captured: list[torch.Tensor] = []
        handle = self._head[0].register_forward_pre_hook(
            lambda _module, args: captured.append(args[0]))
        try:
            logits = self.model(x.float())
        finally:
            handle.remove()
        return logits, captured[-1].flatten(1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (N, D) of ``x``, with gradients."""
        return self.run(x)[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits; the features pass through the ``features`` layer, where ART hooks them."""
        logits, feats = self.run(x)
        self.features(feats)
        return logits


def feature_classifier(model: nn.Module, input_shape: tuple[int, ...], nb_classes: int,
                       device: torch.device):
    """ART PyTorchClassifier around :class:`FeatureTap` (``model``): clip values (0, 1),
    logits out, and :data:`FEATURE_LAYER` as its last layer."""
    from art.estimators.classification import PyTorchClassifier

    return PyTorchClassifier(
        model=FeatureTap(model).eval(), loss=nn.CrossEntropyLoss(),
        input_shape=tuple(input_shape), nb_classes=nb_classes, clip_values=(0.0, 1.0),
        device_type="gpu" if device.type == "cuda" else "cpu",
    )


@torch.no_grad()
def penultimate_features(model: nn.Module, x: torch.Tensor, batch_size: int = 512
                         ) -> torch.Tensor:
    """Penultimate features (N, D) of ``x`` under ``model`` (eval mode), batch by batch."""
    tap = FeatureTap(model).eval()
    return torch.cat([tap.embed(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


@torch.no_grad()
def predicted_labels(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Labels ``model`` (eval mode) predicts for ``x``."""
    model.eval()
    return torch.cat([model(x[i:i + batch_size]).argmax(1)
                      for i in range(0, len(x), batch_size)])


def to_numpy(x: torch.Tensor) -> np.ndarray:
    """A float32 NumPy copy of ``x`` (on the CPU), as ART wants it."""
    return x.detach().cpu().numpy().astype(np.float32)


def to_tensor(array: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """``array`` as a float32 tensor on ``like``'s device, clipped to [0, 1]."""
    array = np.clip(np.asarray(array, dtype=np.float32), 0.0, 1.0)
    return torch.from_numpy(np.ascontiguousarray(array)).to(like.device)


def one_hot(labels: torch.Tensor | np.ndarray | list[int], nb_classes: int) -> np.ndarray:
    """Integer labels as a float32 one-hot array."""
    labels = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else labels
    return np.eye(nb_classes, dtype=np.float32)[np.asarray(labels, dtype=np.int64)]


@contextlib.contextmanager
def numpy_seed(seed: int) -> Iterator[None]:
    """Seed NumPy's global generator (ART and scikit-learn's KMeans draw from it) for the
    block, then restore its previous state."""
    state = np.random.get_state()
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        np.random.set_state(state)


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[None]:
    """The model's parameters without gradients for the block (then as they were), for
    optimizing inputs through it."""
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(flag)


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
        from art.attacks.poisoning.perturbations import add_pattern_bd

        s = self.scale or trigger_scale(height, width)
        canvas = np.zeros((1, math.ceil(height / s), math.ceil(width / s)), dtype=np.float32)
        small = add_pattern_bd(canvas, distance=2, pixel_value=1)[0]
        return np.kron(small, np.ones((s, s), dtype=np.float32))[-height:, -width:] > 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """A copy of the batch ``x`` (N,C,H,W) with the trigger."""
        out = np.array(x, dtype=np.float32, copy=True)
        out[:, :, self.mask(*out.shape[2:])] = 1.0
        return out


def art_backdoor(trigger: Trigger):
    """ART's PoisoningAttackBackdoor with ``trigger`` as its perturbation."""
    from art.attacks.poisoning import PoisoningAttackBackdoor

    return PoisoningAttackBackdoor(perturbation=trigger)


def _trigger_option(value: Any, owner: str) -> Trigger:
    if value is not None and not (isinstance(value, int) and value >= 1):
        raise UsageError(f"{owner}.trigger_scale must be a positive integer or none, "
                         f"got {value!r}")
    return Trigger(value)


def _class_option(value: Any, name: str, nb_classes: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < nb_classes:
        raise UsageError(f"{name} must be a class index in 0..{nb_classes - 1}, got {value!r}")
    return value


def _fraction_option(value: Any, name: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value < 1:
        raise UsageError(f"{name} must be a number in (0, 1), got {value!r}")
    return float(value)


def _positive_int(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UsageError(f"{name} must be a positive integer, got {value!r}")
    return value


def _eps_option(value: Any, name: str, ctx: AttackContext) -> float:
    if value is None:
        return float(ctx.dataset_eps)
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value <= 1:
        raise UsageError(f"{name} must be in (0, 1] (pixel units) or none for the dataset's "
                         f"eps, got {value!r}")
    return float(value)


def triggered_test_set(ctx: AttackContext, target: int, trigger: Trigger
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """The cell's test images not of class ``target``, with the trigger, and ``target``."""
    x, y = ctx.test_subset()
    x = x[y != target]
    x_eval = to_tensor(trigger(to_numpy(x)), x)
    return x_eval, torch.full((len(x_eval),), target, dtype=torch.int64, device=x.device)


def _mask(n: int, index: torch.Tensor, device: torch.device) -> torch.Tensor:
    mask = torch.zeros(n, dtype=torch.bool)
    mask[index.cpu()] = True
    return mask.to(device)


# --------------------------------------------------------------------------- backdoors

BACKDOOR_DEFAULTS = {"target": 0, "rate": 0.1, "trigger_scale": None}


class Backdoor:
    """Gu et al.'s BadNets backdoor through ART's ``PoisoningAttackBackdoor``.

    ``rate`` of the training set (rounded), drawn at random (seeded) from the images not of
    class ``target``, get the :class:`Trigger` and the label ``target``, in place.
    ``x_eval``: the cell's test images not of class ``target``, triggered; ``y_eval``: target.
    """

    def __init__(self, options: Mapping[str, Any]):
        o = resolve_options("attack backdoor", options, BACKDOOR_DEFAULTS)
        self.target = o["target"]
        self.rate = _fraction_option(o["rate"], "backdoor.rate")
        self.trigger = _trigger_option(o["trigger_scale"], "backdoor")

    def poison(self, ctx: AttackContext) -> PoisonedSet:
        """The training set with the triggered, relabelled share; the triggered test set."""
        data = ctx.data
        target = _class_option(self.target, "backdoor.target", data.num_classes)
        x, y = data.x_train, data.y_train
        n = int(round(self.rate * len(x)))
        candidates = (y != target).nonzero().flatten().cpu()
        if not 1 <= n <= len(candidates):
            raise UsageError(f"backdoor.rate={self.rate} asks for {n} poisons; this training "
                             f"set has {len(candidates)} images not of class {target}")
        chosen = candidates[torch.randperm(len(candidates), generator=ctx.rng(11))[:n]]
        x_poison, _ = art_backdoor(self.trigger).poison(
            to_numpy(x[chosen]), y=one_hot([target], data.num_classes)[0], broadcast=True)
        x_new, y_new = x.clone(), y.clone()
        x_new[chosen.to(x.device)] = to_tensor(x_poison, x)
        y_new[chosen.to(y.device)] = target
        x_eval, y_eval = triggered_test_set(ctx, target, self.trigger)
        return PoisonedSet(x_new, y_new, _mask(len(x), chosen, x.device), x_eval, y_eval,
                           targeted=True, details={"target_class": float(target)})


CLEAN_LABEL_DEFAULTS = {"target": 0, "pp_poison": 0.5, "eps": None, "eps_step": None,
                        "max_iter": 10, "num_random_init": 0, "trigger_scale": None}


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
    """

    def __init__(self, options: Mapping[str, Any]):
        o = resolve_options("attack clean-label-backdoor", options, CLEAN_LABEL_DEFAULTS)
        self.o = o
        self.pp_poison = _fraction_option(o["pp_poison"], "clean-label-backdoor.pp_poison")
        self.max_iter = _positive_int(o["max_iter"], "clean-label-backdoor.max_iter")
        self.trigger = _trigger_option(o["trigger_scale"], "clean-label-backdoor")

    def poison(self, ctx: AttackContext) -> PoisonedSet:
        """The training set with perturbed, triggered target-class images; triggered tests."""
        from art.attacks.poisoning import PoisoningAttackCleanLabelBackdoor

        data = ctx.data
        k = data.num_classes
        target = _class_option(self.o["target"], "clean-label-backdoor.target", k)
        eps = _eps_option(self.o["eps"], "clean-label-backdoor.eps", ctx)
        step = eps / 4 if self.o["eps_step"] is None else _eps_option(
            self.o["eps_step"], "clean-label-backdoor.eps_step", ctx)
        x, y = data.x_train, data.y_train
        if int((y == target).sum()) * self.pp_poison < 1:
            raise UsageError(f"clean-label-backdoor: pp_poison={self.pp_poison} of the "
                             f"{int((y == target).sum())} training images of class {target} "
                             "is less than one image")
        proxy = feature_classifier(ctx.clean_model(), tuple(x.shape[1:]), k, ctx.device)
        attack = PoisoningAttackCleanLabelBackdoor(
            backdoor=art_backdoor(self.trigger), proxy_classifier=proxy,
            target=one_hot([target], k)[0], pp_poison=self.pp_poison, norm=np.inf, eps=eps,
            eps_step=step, max_iter=self.max_iter, num_random_init=self.o["num_random_init"])
        attack.attack.set_params(verbose=False)
        x_np = to_numpy(x)
        with numpy_seed(ctx.seed * 1_000_003 + 12):
            x_out, y_out = attack.poison(x_np, one_hot(y, k), broadcast=True)
        changed = torch.from_numpy((x_out != x_np).reshape(len(x_np), -1).any(1))
        if not bool((np.argmax(y_out, 1) == y.cpu().numpy()).all()):
            raise HarnessError("ART's clean-label backdoor changed labels; it must keep them")
        x_eval, y_eval = triggered_test_set(ctx, target, self.trigger)
        return PoisonedSet(to_tensor(x_out, x), y.clone(), changed.to(x.device), x_eval,
                           y_eval, targeted=True,
                           details={"target_class": float(target), "eps": eps})


# --------------------------------------------------------------------------- feature space

TARGETED_DEFAULTS = {"target_class": None, "base_class": None, "n_poison": 5, "eps": None}


@dataclass
class TargetChoice:
    """One target test image and the base training images chosen to be poisoned for it."""

    target_index: int
    target_class: int
    base_class: int
    base_index: torch.Tensor


def choose_target(ctx: AttackContext, options: Mapping[str, Any], owner: str) -> TargetChoice:
    """The target and its bases for a feature-space clean-label attack.

    Target class: ``target_class`` (default: drawn with the run's seed); target: a test
    image of that class which the clean model classifies correctly, drawn with the seed.
    Bases: the ``n_poison`` training images of ``base_class`` (default: target class + 1)
    nearest to the target in the clean model's penultimate features, which makes the
    collision reachable within a small budget.
    """
    data = ctx.data
    k = data.num_classes
    clean = ctx.clean_model()
    tc = options["target_class"]
    tc = int(torch.randint(k, (1,), generator=ctx.rng(21))) if tc is None else \
        _class_option(tc, f"{owner}.target_class", k)
    bc = options["base_class"]
    bc = (tc + 1) % k if bc is None else _class_option(bc, f"{owner}.base_class", k)
    if bc == tc:
        raise UsageError(f"{owner}: base_class and target_class must differ (both {tc})")
    n = _positive_int(options["n_poison"], f"{owner}.n_poison")
    pred = predicted_labels(clean, data.x_test)
    candidates = ((data.y_test == tc) & (pred == tc)).nonzero().flatten().cpu()
    if not len(candidates):
        raise HarnessError(f"{owner}: the clean model classifies no test image of class {tc} "
                           "correctly; pick another target_class")
    t = int(candidates[torch.randint(len(candidates), (1,), generator=ctx.rng(22))])
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
    data = ctx.data
    x = data.x_train.clone()
    x[choice.base_index.to(x.device)] = poisons.to(x.device)
    x_eval = data.x_test[choice.target_index:choice.target_index + 1].clone()
    y_eval = torch.tensor([choice.base_class], dtype=torch.int64, device=x_eval.device)
    base = data.x_train[choice.base_index.to(x.device)]
    details = {"target_class": float(choice.target_class),
               "base_class": float(choice.base_class),
               "target_index": float(choice.target_index),
               "max_linf": float((poisons.to(x.device) - base).abs().amax()), **details}
    return PoisonedSet(x, data.y_train.clone(), _mask(len(x), choice.base_index, x.device),
                       x_eval, y_eval, targeted=True, details=details)


def _relative_gap(tap: FeatureTap, poisons: torch.Tensor, target: torch.Tensor,
                  centre: bool) -> float:
    """||mean f(p) - f(t)|| / ||f(t)|| (centre) or the mean of ||f(p_i) - f(t)|| / ||f(t)||."""
    with torch.no_grad():
        feats, t = tap.embed(poisons), tap.embed(target)[0]
        gaps = (feats.mean(0, keepdim=True) if centre else feats) - t
        return float(gaps.norm(dim=1).mean() / t.norm().clamp_min(1e-12))


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


BULLSEYE_DEFAULTS = {**TARGETED_DEFAULTS, "max_iter": 300, "learning_rate": 0.04,
                     "momentum": 0.9, "decay_iter": 0, "decay_coeff": 0.5}


class BullseyePolytope:
    """Targeted clean-label poisoning: one target test image per cell (see
    :func:`choose_target`), ``n_poison`` bases perturbed by :func:`bullseye_polytope` on the
    clean model within Linf ``eps`` (default: the dataset's eps), labels unchanged.

    Success: the victim retrained on the poisoned set classifies the target as the base
    class. Each target needs its own retraining, so a cell measures one target (success is
    0 or 1); poisons for several targets in one set would help each other, so their
    combined rate would not be the rate of single-target attacks.
    """

    def __init__(self, options: Mapping[str, Any]):
        self.o = resolve_options("attack bullseye-polytope", options, BULLSEYE_DEFAULTS)
        self.max_iter = _positive_int(self.o["max_iter"], "bullseye-polytope.max_iter")

    def poison(self, ctx: AttackContext) -> PoisonedSet:
        """The training set with the perturbed bases; the target and the base class."""
        choice = choose_target(ctx, self.o, "bullseye-polytope")
        eps = _eps_option(self.o["eps"], "bullseye-polytope.eps", ctx)
        data = ctx.data
        tap = FeatureTap(ctx.clean_model()).eval()
        target = data.x_test[choice.target_index:choice.target_index + 1]
        bases = data.x_train[choice.base_index.to(data.x_train.device)]
        with frozen(tap):
            poisons = bullseye_polytope(
                tap, target, bases, eps, self.max_iter, float(self.o["learning_rate"]),
                float(self.o["momentum"]), int(self.o["decay_iter"]),
                float(self.o["decay_coeff"]))
        return _targeted_set(ctx, choice, poisons, {
            "eps": eps, "feature_gap_before": _relative_gap(tap, bases, target, True),
            "feature_gap_after": _relative_gap(tap, poisons, target, True)})


FEATURE_COLLISION_DEFAULTS = {**TARGETED_DEFAULTS, "max_iter": 100, "learning_rate": 0.1,
                              "similarity_coeff": 0.25, "decay_coeff": 0.5}


def _bounded_feature_collision(classifier, target: np.ndarray, eps: float, **kwargs):
    """ART's FeatureCollisionAttack whose backward (proximal) step also projects onto the
    Linf ball of radius ``eps`` around the base: for this per-pixel separable problem,
    clipping the proximal point of ``beta ||p - b||^2`` is the proximal point of that term
    plus the ball, so the forward-backward splitting stays exact and the poisons bounded."""
    from art.attacks.poisoning import FeatureCollisionAttack

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
    """

    def __init__(self, options: Mapping[str, Any]):
        self.o = resolve_options("attack feature-collision", options,
                                 FEATURE_COLLISION_DEFAULTS)
        self.max_iter = _positive_int(self.o["max_iter"], "feature-collision.max_iter")

    def poison(self, ctx: AttackContext) -> PoisonedSet:
        """The training set with the perturbed bases; the target and the base class."""
        choice = choose_target(ctx, self.o, "feature-collision")
        eps = _eps_option(self.o["eps"], "feature-collision.eps", ctx)
        data = ctx.data
        clean = ctx.clean_model()
        classifier = feature_classifier(clean, tuple(data.x_train.shape[1:]), data.num_classes,
                                        ctx.device)
        target = data.x_test[choice.target_index:choice.target_index + 1]
        bases = data.x_train[choice.base_index.to(data.x_train.device)]
        attack = _bounded_feature_collision(
            classifier, to_numpy(target), eps, learning_rate=float(self.o["learning_rate"]),
            similarity_coeff=float(self.o["similarity_coeff"]),
            decay_coeff=float(self.o["decay_coeff"]), max_iter=self.max_iter)
        x_poison, _ = attack.poison(to_numpy(bases))
        base_np = to_numpy(bases)
        poisons = to_tensor(np.clip(x_poison, base_np - eps, base_np + eps), bases)
        tap = FeatureTap(clean).eval()
        return _targeted_set(ctx, choice, poisons, {
            "eps": eps, "feature_gap_before": _relative_gap(tap, bases, target, False),
            "feature_gap_after": _relative_gap(tap, poisons, target, False)})


# --------------------------------------------------------------------------- SVM

SVM_DEFAULTS = {"classes": [0, 1], "n_poison": 10, "step": 0.5, "eps": 1.0, "max_iter": 20,
                "n_attacker_train": 200, "n_attacker_val": 100, "C": None}


def _art_linear_svc(c: float):
    """ART's ScikitlearnSVC around ``SVC(kernel='linear', C=c)``.

    ``probability=False`` is passed explicitly: scikit-learn 1.9 turned its default into the
    string 'deprecated', which ART reads as true and then calls ``predict_proba``. The
    kernel is set to ``x1 @ x2.T``, the linear kernel scikit-learn computes, without its
    per-call input validation, which ART's element-by-element Q matrices call thousands of
    times per step (5 ms each).
    """
    from art.estimators.classification.scikitlearn import ScikitlearnSVC
    from sklearn.svm import SVC

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*probability.*", category=FutureWarning)
        svc = SVC(C=c, kernel="linear", probability=False)
    classifier = ScikitlearnSVC(model=svc, clip_values=(0.0, 1.0))
    classifier._kernel = lambda a, b: np.asarray(a) @ np.asarray(b).T
    return classifier


class SvmPoisoning:
    """Biggio et al.'s SVM poisoning through ART's ``PoisoningAttackSVM`` (an availability
    attack; ART's attack is binary).

    Construction: the training images of the two ``classes`` (a, b) are shuffled (seeded);
    ART's objective (the hinge loss on validation points) uses ``n_attacker_val`` of them
    (at most a third), and the attacker's surrogate, a linear SVC (C: the victim's ``C`` when
    its clean model exposes ``sklearn_estimator()``, else 1.0), is fit to at most
    ``n_attacker_train`` of the others (ART refits it at every step). ``n_poison`` attack
    points start at surrogate-training images (alternating classes) with the flipped label;
    ART moves each by gradient ascent on that loss
    (``step`` in L2, up to ``max_iter`` steps, ART's stopping rule with ``eps``). The points
    are appended to the FULL training set with the labels ART returns (the flipped ones),
    on which the runner retrains the victim (all classes). ``x_eval``: the cell's test images
    of the two classes with their true labels; success = misclassified (untargeted).
    """

    def __init__(self, options: Mapping[str, Any]):
        self.o = resolve_options("attack svm-poisoning", options, SVM_DEFAULTS)
        classes = self.o["classes"]
        if not (isinstance(classes, list | tuple) and len(classes) == 2
                and classes[0] != classes[1]):
            raise UsageError(f"svm-poisoning.classes must be two different class indices, "
                             f"e.g. [0,1]; got {classes!r}")
        for key in ("n_poison", "max_iter", "n_attacker_train", "n_attacker_val"):
            _positive_int(self.o[key], f"svm-poisoning.{key}")
        if self.o["max_iter"] < 2:
            raise UsageError("svm-poisoning.max_iter must be at least 2 (ART's requirement)")

    def _c(self, ctx: AttackContext) -> float:
        if self.o["C"] is not None:
            return float(self.o["C"])
        clean = ctx.clean_model()
        estimator = getattr(clean, "sklearn_estimator", None)
        return float(getattr(estimator(), "C", 1.0)) if callable(estimator) else 1.0

    def poison(self, ctx: AttackContext) -> PoisonedSet:
        """The full training set plus the poison points; the two classes' test images."""
        from art.attacks.poisoning import PoisoningAttackSVM

        data = ctx.data
        a, b = (_class_option(c, "svm-poisoning.classes", data.num_classes)
                for c in self.o["classes"])
        x, y = data.x_train, data.y_train
        pair = ((y == a) | (y == b)).nonzero().flatten().cpu()
        pair = pair[torch.randperm(len(pair), generator=ctx.rng(31))]
        n_p = self.o["n_poison"]
        n_val = min(self.o["n_attacker_val"], len(pair) // 3)
        n_tr = min(self.o["n_attacker_train"], len(pair) - n_val)
        if n_val < 1 or n_p > n_tr:
            raise UsageError(f"svm-poisoning: classes {a} and {b} have {len(pair)} training "
                             f"images, too few for a surrogate of {n_tr} images, {n_p} of "
                             "them poison starts, and a validation set")
        train, val = pair[:n_tr].numpy(), pair[n_tr:n_tr + n_val].numpy()
        flat = to_numpy(x.flatten(1))
        binary = (y == b).long().cpu().numpy()
        # start points: surrogate-training images, alternating between the two classes
        pools = [list(train[binary[train] == c]) for c in (0, 1)]
        start: list[int] = []
        while len(start) < n_p:
            for pool in pools:
                if pool and len(start) < n_p:
                    start.append(int(pool.pop(0)))
        surrogate = _art_linear_svc(self._c(ctx))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*probability.*",
                                    category=FutureWarning)
            surrogate.fit(flat[train], one_hot(binary[train], 2))
            attack = PoisoningAttackSVM(
                surrogate, step=float(self.o["step"]), eps=float(self.o["eps"]),
                x_train=flat[train], y_train=one_hot(binary[train], 2), x_val=flat[val],
                y_val=one_hot(binary[val], 2), max_iter=self.o["max_iter"], verbose=False)
            with numpy_seed(ctx.seed * 1_000_003 + 32):
                points, labels = attack.poison(flat[start].copy(),
                                               y=one_hot(1 - binary[start], 2))
        new_y = torch.where(torch.from_numpy(labels.argmax(1)) == 1, b, a).to(y.device)
        x_new = torch.cat([x, to_tensor(points.reshape((-1, *x.shape[1:])), x)])
        y_new = torch.cat([y, new_y])
        is_poison = torch.cat([torch.zeros(len(x), dtype=torch.bool),
                               torch.ones(len(points), dtype=torch.bool)]).to(x.device)
        x_test, y_test = ctx.test_subset()
        keep = (y_test == a) | (y_test == b)
        moved = np.linalg.norm(points - flat[start], axis=1)
        return PoisonedSet(x_new, y_new, is_poison, x_test[keep], y_test[keep],
                           targeted=False,
                           details={"class_a": float(a), "class_b": float(b),
                                    "mean_l2_moved": float(moved.mean())})


# --------------------------------------------------------------------------- registration


def _factory(cls: type) -> Callable[[Mapping[str, Any]], Any]:
    def build(options: Mapping[str, Any]):
        return cls(options)

    build.__doc__ = f"A {cls.__name__} with ``options`` over its defaults."
    return build


@hookimpl
def harness_register_attacks(register):
    """Register the poisoning attacks of the survey's Table 3 that run on PyTorch."""
    common = {"category": "poisoning", "bounded": False, "survey_table": "Table 3"}
    register(AttackSpec(
        name="backdoor", build=_factory(Backdoor), threat_model="black-box", norm="none",
        description="BadNets backdoor (ART): a pixel-pattern trigger and the target label on "
                    "10% of the training set",
        needs=frozenset(), targeted=True,
        config={"art_class": "PoisoningAttackBackdoor", **BACKDOOR_DEFAULTS}, **common))
    register(AttackSpec(
        name="clean-label-backdoor", build=_factory(CleanLabelBackdoor),
        threat_model="white-box", norm="inf", targeted=True,
        description="Clean-label backdoor (ART): PGD on the clean model, then the trigger, on "
                    "target-class images; labels kept",
        needs=frozenset({"gradients"}),
        config={"art_class": "PoisoningAttackCleanLabelBackdoor", **CLEAN_LABEL_DEFAULTS},
        **common))
    register(AttackSpec(
        name="bullseye-polytope", build=_factory(BullseyePolytope),
        threat_model="white-box", norm="inf", targeted=True,
        description="Bullseye Polytope (native; ART's ignores the target): clean-label "
                    "poisons centred on one target's features",
        needs=frozenset({"gradients", "activations"}),
        config={"implementation": "native", **BULLSEYE_DEFAULTS}, **common))
    register(AttackSpec(
        name="feature-collision", build=_factory(FeatureCollision),
        threat_model="white-box", norm="inf", targeted=True,
        description="Poison frogs feature collision (ART), Linf-bounded: clean-label poisons "
                    "near one target's features",
        needs=frozenset({"gradients", "activations"}),
        config={"art_class": "FeatureCollisionAttack", **FEATURE_COLLISION_DEFAULTS},
        **common))
    register(AttackSpec(
        name="svm-poisoning", build=_factory(SvmPoisoning), threat_model="white-box",
        norm="none",
        description="SVM poisoning (ART, Biggio et al.): label-flipped points moved to raise "
                    "a linear SVM's error on two classes",
        needs=frozenset({"svm"}),
        config={"art_class": "PoisoningAttackSVM", **SVM_DEFAULTS}, **common))
