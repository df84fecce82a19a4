"""Plugin ``art-defenses``: the survey's defenses that ART ships, as harness defenses.

Training stage (each trains the model it is given in place, from its fresh random weights):
``art-advtrain`` (ART's AdversarialTrainer with FGSM), ``madry-pgd`` (PGD adversarial
training), ``fbf`` (fast FGSM with random start), ``trades`` (TRADES) and ``distillation``
(defensive distillation). ART does the work of each epoch, on the model wrapped by
:func:`harness.art.bridge.art_classifier` with an Adam optimizer; the harness's one training
loop (:func:`harness.train.loop.fit_epochs`) runs the epochs, so these defenses are trained
under the same rules as ``none`` and ``advtrain``: ``ctx.settings`` (epochs, batch size,
Adam's learning rate and its decay, seed, patience), early stopping on the clean validation
loss with the best weights kept, resuming from ``ctx.resume_path``, an honest
:class:`~harness.train.loop.TrainReport`. ART's trainers do not expose their objective on
validation batches, so they refuse ``early_stop_on="objective"``.

Input-transformation stage: ``feature-squeezing``, ``spatial-smoothing`` and ``jpeg``, ART's
preprocessors declared once each (:class:`ArtPreprocessor`). The runner puts them in front of
the undefended model and runs every attack twice: crafted on the undefended model (a
non-adaptive evaluation) and on the whole pipeline (adaptive). All three are deterministic and
declare no differentiable approximation, so an adaptive attack on them
(:mod:`harness.run.evaluators.adaptive`) is BPDA with the identity in the backward pass.

torch, NumPy, ART and the harness modules that import them are imported only when a defense
is built or run, so registering the plugin stays cheap.
"""

from __future__ import annotations

import copy
import importlib
import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from harness import (
    DefenseSpec,
    HarnessError,
    Option,
    OptionSchema,
    ResolvedOptions,
    hookimpl,
    options,
)

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

    from harness import EpochFn, TrainContext, TrainData, TrainReport

    EpochMaker = Callable[[Any, np.ndarray, np.ndarray, TrainContext, ResolvedOptions],
                          EpochFn]

# ---------------------------------------------------------------------------------------------
# Options: each option name is declared once, with its bounds, and shared by the declarations.

_BOUNDS: dict[str, dict[str, Any]] = {
    "eps": {"type": "float", "nullable": True, "min": 0.0, "max": 1.0, "min_exclusive": True,
            "dataset_eps": True,
            "help": "Linf budget of the training attack; null: the dataset's eps"},
    "eps_step": {"type": "float", "nullable": True, "min": 0.0, "min_exclusive": True,
                 "help": "step size of the training attack; null: eps / 4"},
    "max_iter": {"type": "int", "min": 1, "help": "steps of the training attack"},
    "ratio": {"type": "float", "min": 0.0, "max": 1.0, "min_exclusive": True,
              "help": "share of each minibatch replaced by adversarial examples"},
    "beta": {"type": "float", "min": 0.0, "min_exclusive": True,
             "help": "weight of the KL (robustness) term of the loss"},
    "temperature": {"type": "float", "min": 1.0,
                    "help": "softmax temperature of teacher and student during training"},
    "lr_max": {"type": "float", "nullable": True, "min": 0.0, "min_exclusive": True,
               "help": "peak of the cyclic learning rate; null: the training learning rate"},
    "lr_factor": {"type": "float", "min": 0.0, "min_exclusive": True,
                  "help": "Adam's learning rate as a multiple of the training learning rate"},
    "bit_depth": {"type": "int", "min": 1, "max": 8, "help": "bits kept per pixel"},
    "window_size": {"type": "int", "min": 2, "max": 9, "help": "side of the median filter"},
    "quality": {"type": "int", "min": 1, "max": 95, "help": "JPEG quality"},
}


def declared(defaults: Mapping[str, Any]) -> OptionSchema:
    """The option schema of a declaration with ``defaults`` (bounds from :data:`_BOUNDS`)."""
    return options(*(Option(name=name, default=value, **_BOUNDS[name])
                     for name, value in defaults.items()))


# ---------------------------------------------------------------------------------------------
# ART's objects around the harness model.


def _wrap(model: nn.Module, data: TrainData, ctx: TrainContext, **kwargs: Any):
    """:func:`~harness.art.bridge.art_classifier` on ``model`` for ``data``'s images on the
    run's device."""
    from harness import art_classifier

    return art_classifier(model, tuple(data.x.shape[1:]), data.num_classes, ctx.device,
                          **kwargs)


def _arrays(data: TrainData) -> tuple[np.ndarray, np.ndarray]:
    """The training part as ART takes it: float32 images and one-hot labels, on the host."""
    from harness import one_hot, to_numpy

    return to_numpy(data.x), one_hot(data.y, data.num_classes)


# ART trainers draw a tqdm bar per call; the harness loop has its own, so they are silenced.
_ART_MODULES_WITH_BARS = (
    "art.defences.trainer.adversarial_trainer",
    "art.defences.trainer.adversarial_trainer_fbf_pytorch",
    "art.defences.trainer.adversarial_trainer_trades_pytorch",
)


@contextmanager
def _quiet_art() -> Iterator[None]:
    """ART's trainer progress bars disabled for the duration (restored afterwards)."""
    saved = []
    for name in _ART_MODULES_WITH_BARS:
        module = importlib.import_module(name)
        for attr in ("tqdm", "trange"):
            if hasattr(module, attr):
                saved.append((module, attr, getattr(module, attr)))
                setattr(module, attr, partial(getattr(module, attr), disable=True))
    try:
        yield
    finally:
        for module, attr, original in saved:
            setattr(module, attr, original)


# ---------------------------------------------------------------------------------------------
# One function per ART trainer: build ART's objects, hand one epoch of them to the loop.


def _eps(options: ResolvedOptions, ctx: TrainContext) -> float:
    """The ``eps`` option: a number (the harness puts the dataset's eps in for null)."""
    return float(options.eps)


def _eps_step(options: ResolvedOptions, eps: float) -> float:
    return float(options.eps_step) if options.eps_step is not None else eps / 4


def single_phase(make_epoch: EpochMaker
                 ) -> Callable[[nn.Module, TrainData, TrainContext, ResolvedOptions], TrainReport]:
    """A defense's ``run`` from ``make_epoch(classifier, x, y, ctx, options)``, which builds
    the ART trainer on the wrapped model (Adam at ``settings.lr``) and returns its one-epoch
    function for :func:`~harness.train.loop.fit_epochs`."""

    def run(model: nn.Module, data: TrainData, ctx: TrainContext,
            options: ResolvedOptions) -> TrainReport:
        import torch

        from harness import fit_epochs

        optimizer = torch.optim.Adam(model.parameters(), lr=ctx.settings.lr)
        classifier = _wrap(model, data, ctx, optimizer=optimizer)
        run_epoch = make_epoch(classifier, *_arrays(data), ctx, options)
        return fit_epochs(model, data, ctx, run_epoch, optimizer=optimizer)

    return run


def _fit_epoch(trainer: Any, x: np.ndarray, y: np.ndarray, ctx: TrainContext) -> EpochFn:
    """One epoch of an ART trainer's own ``fit`` (it reports no training loss)."""

    def run_epoch(_epoch: int) -> None:
        trainer.fit(x, y, batch_size=ctx.settings.batch_size, nb_epochs=1)

    return run_epoch


def _adversarial_trainer(classifier: Any, x: np.ndarray, y: np.ndarray, ctx: TrainContext,
                         options: ResolvedOptions) -> EpochFn:
    """ART's AdversarialTrainer: a ``ratio`` of each minibatch replaced by FGSM examples."""
    import numpy as np
    from art.attacks.evasion import FastGradientMethod
    from art.defences.trainer import AdversarialTrainer

    eps = _eps(options, ctx)
    fgsm = FastGradientMethod(classifier, norm=np.inf, eps=eps, eps_step=eps,
                              batch_size=ctx.settings.batch_size)
    return _fit_epoch(AdversarialTrainer(classifier, fgsm, ratio=options.ratio), x, y, ctx)


def _madry_pgd(classifier: Any, x: np.ndarray, y: np.ndarray, ctx: TrainContext,
               options: ResolvedOptions) -> EpochFn:
    """ART's AdversarialTrainerMadryPGD: every minibatch replaced by its PGD examples."""
    from art.defences.trainer import AdversarialTrainerMadryPGD

    eps, bs = _eps(options, ctx), ctx.settings.batch_size
    trainer = AdversarialTrainerMadryPGD(classifier, nb_epochs=1, batch_size=bs, eps=eps,
                                         eps_step=_eps_step(options, eps),
                                         max_iter=options.max_iter, num_random_init=1)
    trainer.attack.set_params(batch_size=bs)
    return _fit_epoch(trainer, x, y, ctx)


def _trades(classifier: Any, x: np.ndarray, y: np.ndarray, ctx: TrainContext,
            options: ResolvedOptions) -> EpochFn:
    """ART's AdversarialTrainerTRADESPyTorch: clean loss + beta * KL(clean || PGD), with ART's
    Linf PGD (random start, ``max_iter`` steps of ``eps_step``) on the cross-entropy."""
    import numpy as np
    from art.attacks.evasion import ProjectedGradientDescent
    from art.defences.trainer import AdversarialTrainerTRADESPyTorch

    eps = _eps(options, ctx)
    pgd = ProjectedGradientDescent(classifier, norm=np.inf, eps=eps,
                                   eps_step=_eps_step(options, eps),
                                   max_iter=options.max_iter, num_random_init=1,
                                   batch_size=ctx.settings.batch_size, verbose=False)
    return _fit_epoch(AdversarialTrainerTRADESPyTorch(classifier, pgd, beta=options.beta),
                      x, y, ctx)


def _fbf(classifier: Any, x: np.ndarray, y: np.ndarray, ctx: TrainContext,
         options: ResolvedOptions) -> EpochFn:
    """ART's AdversarialTrainerFBFPyTorch minibatch step under a cyclic Adam learning rate.

    ART's own ``fit`` hard-codes a cycle peaking at 0.21 (an SGD rate for CIFAR-10) over the
    epochs of one call; here the cycle (0 -> peak at 2/5 of ``settings.epochs`` -> 0, per
    minibatch, as in Wong et al.) spans the whole training. Between epochs the optimizer's
    learning rate holds the peak, ``lr_max`` at first: the loop's ``lr_decay`` lowers it, and
    with it the rest of the cycle. The epoch reports ART's mean training loss. Each minibatch
    is augmented by ``settings.augment`` when set, as the harness's own epoch does. ART's step
    takes the FGSM gradient at ``x + delta`` before clipping it into the valid range (Wong et
    al.'s code clips first); that is ART's behaviour and is kept.
    """
    import numpy as np
    from art.defences.trainer import AdversarialTrainerFBFPyTorch

    trainer = AdversarialTrainerFBFPyTorch(classifier, eps=_eps(options, ctx))
    step = getattr(trainer, "_batch_process", None)
    if step is None:
        import art

        raise HarnessError(f"ART {art.__version__}'s AdversarialTrainerFBFPyTorch has no "
                           "_batch_process step; fbf was written for ART 1.20")
    optimizer = classifier.optimizer
    for group in optimizer.param_groups:
        group["lr"] = options.lr_max if options.lr_max is not None else ctx.settings.lr
    epochs, bs = ctx.settings.epochs, ctx.settings.batch_size
    n, nb = len(x), math.ceil(len(x) / bs)

    def run_epoch(epoch: int) -> float:
        import torch

        from harness import epoch_augmenter

        peak = optimizer.param_groups[0]["lr"]
        order = np.random.permutation(n)
        augmented = epoch_augmenter(ctx.settings, epoch)
        total, seen = 0.0, 0
        for b in range(nb):
            idx = order[b * bs:(b + 1) * bs]
            share = float(np.interp(epoch + (b + 1) / nb, [0, epochs * 2 // 5, epochs],
                                    [0, 1, 0]))
            xb = x[idx]
            if augmented is not None:
                xb = augmented(torch.from_numpy(xb)).numpy()
            loss, _, count = step(xb, y[idx], peak * share)
            total, seen = total + loss, seen + count
        for group in optimizer.param_groups:
            group["lr"] = peak
        return total / max(seen, 1)

    return run_epoch


def _distillation(model: nn.Module, data: TrainData, ctx: TrainContext,
                  options: ResolvedOptions) -> TrainReport:
    """ART's DefensiveDistillation: a teacher trained at temperature T on the labels, then
    ``model`` (the student) trained at T on the teacher's soft labels; each phase runs the
    shared loop (validated at T). ``model`` is then evaluated at temperature 1 (its own
    logits).

    The teacher is a copy of ``model`` at its fresh weights. Both phases use Adam at
    ``lr_factor`` times ``settings.lr``: at temperature T the logits must grow T-fold, and at
    the harness's rate (1e-3) they do not in 30 epochs of digits (T=100: 81% clean accuracy
    instead of 97%). The report counts the student's epochs; its time and images include the
    teacher's.
    """
    import torch
    from art.defences.transformer.evasion import DefensiveDistillation

    from harness import SoftCrossEntropy, TrainReport, fit_epochs

    t, bs = options.temperature, ctx.settings.batch_size
    lr = ctx.settings.lr * options.lr_factor
    x, y = _arrays(data)
    teacher = copy.deepcopy(model)
    teacher_optimizer = torch.optim.Adam(teacher.parameters(), lr=lr)
    teacher_classifier = _wrap(teacher, data, ctx, temperature=t, optimizer=teacher_optimizer)

    def teacher_epoch(_epoch: int) -> None:
        teacher_classifier.fit(x, y, batch_size=bs, nb_epochs=1)

    first = fit_epochs(teacher, data, ctx, teacher_epoch, optimizer=teacher_optimizer,
                       phase="teacher", temperature=t)
    soft_teacher = _wrap(teacher, data, ctx, temperature=t, probabilities=True)
    student_optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    student_classifier = _wrap(model, data, ctx, temperature=t, probabilities=True,
                               optimizer=student_optimizer, loss=SoftCrossEntropy())
    distill = DefensiveDistillation(soft_teacher, batch_size=bs, nb_epochs=1)

    def student_epoch(_epoch: int) -> None:
        distill(x, student_classifier)

    second = fit_epochs(model, data, ctx, student_epoch, optimizer=student_optimizer,
                        phase="student", temperature=t)
    return TrainReport(epochs_run=second.epochs_run, best_epoch=second.best_epoch,
                       best_val_loss=second.best_val_loss,
                       seconds=first.seconds + second.seconds,
                       images=first.images + second.images,
                       history=first.history + second.history)


@dataclass(frozen=True, kw_only=True)
class ArtTraining:
    """A declaration of one ART training defense: name, ART class, option defaults, the small
    options of the contract tests, and ``run`` (model, data, ctx, options) -> TrainReport."""

    name: str
    art_name: str
    description: str
    defaults: Mapping[str, Any]
    run: Callable[[nn.Module, TrainData, TrainContext, ResolvedOptions], TrainReport]
    needs: frozenset[str] = frozenset({"gradients"})
    smoke_options: Mapping[str, Any] = field(default_factory=dict)
    augments: bool = False  # whether ``run`` applies settings.augment to each minibatch

    def spec(self) -> DefenseSpec:
        """The :class:`DefenseSpec` the plugin registers."""
        return DefenseSpec(name=self.name, description=self.description, build=self.build,
                           stage="training", needs=self.needs,
                           config={"art_class": self.art_name},
                           options=declared(self.defaults),
                           smoke_options=self.smoke_options, augments=self.augments)

    def build(self, options: ResolvedOptions) -> ArtTrainingDefense:
        """The defense with its resolved options."""
        return ArtTrainingDefense(self, options)


class ArtTrainingDefense:
    """One declared ART training defense with its options: a :class:`TrainingDefense`."""

    def __init__(self, declaration: ArtTraining, options: ResolvedOptions):
        self.declaration = declaration
        self.options = options

    def train(self, model: nn.Module, data: TrainData, ctx: TrainContext) -> TrainReport:
        """Train ``model`` in place with the ART defense; it ends with its best weights."""
        import torch

        from harness import refuse_objective_early_stop

        refuse_objective_early_stop(ctx.settings, f"defense {self.declaration.name}")
        if not self.declaration.augments:
            from harness import refuse_augment

            refuse_augment(ctx.settings.augment, f"defense {self.declaration.name} (ART's "
                           f"{self.declaration.art_name})")
        # ART puts its classifier on the *current* CUDA device: make that the run's device.
        on_device = torch.cuda.device(ctx.device) if ctx.device.type == "cuda" else nullcontext()
        with on_device, _quiet_art():
            report = self.declaration.run(model, data, ctx, self.options)
        model.eval()
        return report


TRAINING: tuple[ArtTraining, ...] = (
    ArtTraining(
        name="art-advtrain", art_name="AdversarialTrainer", run=single_phase(_adversarial_trainer),
        description="ART AdversarialTrainer with FGSM (Linf, dataset eps): half of each "
                    "minibatch replaced by FGSM examples",
        defaults={"eps": None, "ratio": 0.5},
    ),
    ArtTraining(
        name="madry-pgd", art_name="AdversarialTrainerMadryPGD", run=single_phase(_madry_pgd),
        description="Madry et al. PGD adversarial training (ART): minibatches replaced by "
                    "Linf PGD examples, dataset eps, 7 steps of eps/4, random start",
        defaults={"eps": None, "eps_step": None, "max_iter": 7}, smoke_options={"max_iter": 2},
    ),
    ArtTraining(
        name="fbf", art_name="AdversarialTrainerFBFPyTorch", run=single_phase(_fbf),
        description="Fast is better than free (ART): FGSM from a random start, step 1.25*eps, "
                    "dataset eps, cyclic learning rate peaking at the training rate",
        defaults={"eps": None, "lr_max": None}, augments=True,
    ),
    ArtTraining(
        name="trades", art_name="AdversarialTrainerTRADESPyTorch", run=single_phase(_trades),
        description="TRADES (ART): clean loss + 6 * KL(clean || PGD), PGD Linf at dataset eps, "
                    "7 steps of eps/4",
        defaults={"eps": None, "eps_step": None, "max_iter": 7, "beta": 6.0},
        smoke_options={"max_iter": 2},
    ),
    ArtTraining(
        name="distillation", art_name="DefensiveDistillation", run=_distillation,
        description="Defensive distillation (ART, Papernot et al.): student trained at T=100 on "
                    "a T=100 teacher's soft labels, Adam at 10x the rate; evaluated at T=1",
        defaults={"temperature": 100.0, "lr_factor": 10.0},
        needs=frozenset(),
    ),
)


# ---------------------------------------------------------------------------------------------
# Input transformations.


@dataclass(frozen=True, kw_only=True)
class ArtPreprocessor:
    """A declaration of one ART preprocessor as an input-transformation defense.

    ``defaults`` are the options users may change (declared with :func:`declared`); ``fixed``
    the constructor arguments the harness's image format dictates (clip values (0, 1),
    channels first).

    For adaptive attacks (BPDA, Athalye, Carlini & Wagner 2018;
    :mod:`harness.run.evaluators.adaptive`) the
    declared preprocessors are deterministic (``DefenseSpec.randomized`` stays False: no EoT)
    and :class:`ArtTransformation` offers no ``approximate``, so the backward pass is the
    identity: the standard BPDA for each of them, since bit-depth reduction, a median filter
    and JPEG compression all return an image close to their input (Athalye et al. use
    ``g(x) = x`` for bit-depth reduction and JPEG). A smooth staircase or a differentiable
    JPEG would follow the transformation more closely; the identity keeps the adaptive
    numbers comparable with the literature's.
    """

    name: str
    art_name: str
    description: str
    defaults: Mapping[str, Any]
    fixed: Mapping[str, Any] = field(default_factory=dict)

    def spec(self) -> DefenseSpec:
        """The :class:`DefenseSpec` the plugin registers."""
        return DefenseSpec(name=self.name, description=self.description, build=self.build,
                           stage="input-transformation", config={"art_class": self.art_name},
                           options=declared(self.defaults))

    def build(self, options: ResolvedOptions) -> ArtTransformation:
        """The transformation with its resolved options."""
        import art.defences.preprocessor as preprocessor

        return ArtTransformation(getattr(preprocessor, self.art_name)(**self.fixed, **options))


class ArtTransformation:
    """Runs one ART preprocessor on harness tensors: an :class:`InputTransformation`."""

    def __init__(self, preprocessor: Any):
        self.preprocessor = preprocessor

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (N,C,H,W in [0, 1]) after the preprocessor; same shape, dtype and device.
        Values outside [0, 1] (an attack's intermediate step through the pipeline: ART's
        universal perturbations add theirs unclipped) are clipped first, as any image is
        before it reaches a real pipeline; ART's JPEG refuses them otherwise."""
        import numpy as np
        import torch

        # a copy: ``x`` stays as it was
        x_np = np.clip(x.detach().cpu().numpy().astype(np.float32), 0.0, 1.0)
        out, _ = self.preprocessor(x_np)
        return torch.from_numpy(np.clip(out, 0.0, 1.0).astype(np.float32)).to(
            device=x.device, dtype=x.dtype)


_IMAGES = {"clip_values": (0.0, 1.0)}
_CHANNELS_FIRST = {"channels_first": True}

# Defaults chosen for the harness's grayscale datasets (FGSM at eps 0.1 crafted on the
# undefended paper-cnn, then squeezed): Xu et al. squeeze MNIST to 1 bit, but digits' 8x8
# images carry real gray levels, which 1 bit loses (clean 93.6% vs 97.2%); 2 bits keep them
# (96.1%) and resist FGSM as well (80.8% vs 66.1% undefended; MNIST 92.4%, 1 bit 93.9%).
# 4 bits is worse than no defense at eps 0.1 (rounding amplifies the perturbation). Colour
# images want more bits (Xu et al.: 5 for CIFAR-10): --defense-opt feature-squeezing.bit_depth=5.
# A 3x3 median (ART's default) beats Xu et al.'s 2x2 on digits and MNIST in clean and FGSM
# accuracy: an even window shifts the image by half a pixel.

TRANSFORMATIONS: tuple[ArtPreprocessor, ...] = (
    ArtPreprocessor(
        name="feature-squeezing", art_name="FeatureSqueezing",
        description="Feature squeezing (Xu et al., ART): pixels reduced to 2 bits; attacked "
                    "non-adaptively and through BPDA",
        defaults={"bit_depth": 2}, fixed=_IMAGES,
    ),
    ArtPreprocessor(
        name="spatial-smoothing", art_name="SpatialSmoothing",
        description="Spatial smoothing (Xu et al., ART): 3x3 median filter; attacked "
                    "non-adaptively and through BPDA",
        defaults={"window_size": 3}, fixed=_IMAGES | _CHANNELS_FIRST,
    ),
    ArtPreprocessor(
        name="jpeg", art_name="JpegCompression",
        description="JPEG compression (ART) at quality 50; attacked non-adaptively and "
                    "through BPDA",
        defaults={"quality": 50}, fixed=_IMAGES | _CHANNELS_FIRST,
    ),
)


@hookimpl
def harness_register_defenses(register: Callable[[DefenseSpec], None]) -> None:
    """Register the ART training defenses and input transformations."""
    for training in TRAINING:
        register(training.spec())
    for transformation in TRANSFORMATIONS:
        register(transformation.spec())
