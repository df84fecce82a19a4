"""Plugin ``art-defenses``: the survey's defenses that ART ships, as harness defenses.

Training stage (each trains the model it is given in place, from its fresh random weights):
``art-advtrain`` (ART's AdversarialTrainer with FGSM), ``madry-pgd`` (PGD adversarial
training), ``fbf`` (fast FGSM with random start), ``trades`` (TRADES) and ``distillation``
(defensive distillation). They all run in one epoch loop (:func:`fit_by_epochs`) that keeps
the harness's training contract: ``ctx.settings`` (epochs, batch size, Adam's learning rate,
seed, patience), early stopping on the validation loss with the best weights kept, resuming
from ``ctx.resume_path``, and an honest :class:`~harness.training.TrainReport`. ART does the
work of each epoch; the model is wrapped as ART's ``PyTorchClassifier`` with an Adam optimizer.

Input-transformation stage: ``feature-squeezing``, ``spatial-smoothing`` and ``jpeg``, ART's
preprocessors declared once each (:class:`ArtPreprocessor`). The runner puts them in front of
the undefended model and crafts the attacks on the undefended model: a non-adaptive evaluation.

ART is imported only when a defense is built or run.
"""

from __future__ import annotations

import importlib
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.errors import HarnessError, UsageError
from harness.hookspecs import hookimpl
from harness.options import resolve_options
from harness.specs import DefenseSpec
from harness.training import TrainContext, TrainData, TrainReport

# ---------------------------------------------------------------------------------------------
# Options: one check per option name, shared by every declaration below.


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "eps": (lambda v: v is None or (_number(v) and 0 < v <= 1),
            "null (the dataset's eps) or a number in (0, 1]"),
    "eps_step": (lambda v: v is None or (_number(v) and v > 0),
                 "null (eps / 4) or a positive number"),
    "max_iter": (lambda v: _integer(v) and v >= 1, "a positive integer"),
    "ratio": (lambda v: _number(v) and 0 < v <= 1, "a number in (0, 1]"),
    "beta": (lambda v: _number(v) and v > 0, "a positive number"),
    "temperature": (lambda v: _number(v) and v >= 1, "a number >= 1"),
    "lr_max": (lambda v: v is None or (_number(v) and v > 0),
               "null (the training learning rate) or a positive number"),
    "lr_factor": (lambda v: _number(v) and v > 0, "a positive number"),
    "bit_depth": (lambda v: _integer(v) and 1 <= v <= 8, "an integer from 1 to 8"),
    "window_size": (lambda v: _integer(v) and 2 <= v <= 9, "an integer from 2 to 9"),
    "quality": (lambda v: _integer(v) and 1 <= v <= 95, "an integer from 1 to 95"),
}


def checked_options(owner: str, given: Mapping[str, Any], defaults: Mapping[str, Any]
                    ) -> dict[str, Any]:
    """``defaults`` updated with ``given``; unknown keys and bad values raise UsageError."""
    options = resolve_options(owner, given, defaults)
    for key, value in options.items():
        valid, what = _CHECKS[key]
        if not valid(value):
            raise UsageError(f"{owner}: option '{key}' must be {what}, got {value!r}")
    return options


# ---------------------------------------------------------------------------------------------
# The shared training loop.


class _Net(nn.Module):
    """The harness model as ART sees it: float32 input, logits divided by ``temperature``,
    optionally turned into probabilities (ART's distillation insists on them).

    Not an ``nn.Sequential``, so ART's wrapper returns only the final output, as its trainers
    expect."""

    def __init__(self, model: nn.Module, temperature: float = 1.0, probabilities: bool = False):
        super().__init__()
        self.model = model
        self.temperature = float(temperature)
        self.probabilities = probabilities

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scaled logits (or probabilities) of the wrapped model."""
        out = self.model(x.float())
        if self.temperature != 1.0:
            out = out / self.temperature
        return out.softmax(1) if self.probabilities else out


class _SoftCrossEntropy(nn.Module):
    """Cross-entropy of predicted probabilities against soft (or one-hot) target labels."""

    def forward(self, probabilities: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean over the batch of ``-sum(target * log(probabilities))``."""
        return -(target * probabilities.clamp_min(1e-12).log()).sum(1).mean()


def _classifier(net: nn.Module, data: TrainData, ctx: TrainContext, *, train: bool = True,
                loss: nn.Module | None = None, lr_factor: float = 1.0):
    """ART's PyTorchClassifier on ``net``: clip values (0, 1), Adam at ``settings.lr`` (times
    ``lr_factor``) when ``train`` (ART's trainers step ``classifier.optimizer``), softmax
    cross-entropy loss unless ``loss`` is given."""
    from art.estimators.classification import PyTorchClassifier

    optimizer = (torch.optim.Adam(net.parameters(), lr=ctx.settings.lr * lr_factor)
                 if train else None)
    return PyTorchClassifier(
        model=net, loss=loss if loss is not None else nn.CrossEntropyLoss(), optimizer=optimizer,
        input_shape=tuple(data.x.shape[1:]), nb_classes=data.num_classes, clip_values=(0.0, 1.0),
        device_type="gpu" if ctx.device.type == "cuda" else "cpu",
    )


@dataclass
class _Arrays:
    """The training set as ART takes it: float32 images and one-hot labels, on the host."""

    x: np.ndarray
    y: np.ndarray

    @classmethod
    def of(cls, data: TrainData) -> _Arrays:
        """Host copies of ``data.x`` and one-hot ``data.y``."""
        x = data.x.detach().cpu().numpy().astype(np.float32)
        y = np.eye(data.num_classes, dtype=np.float32)[data.y.detach().cpu().numpy()]
        return cls(x, y)


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


def _seed(seed: int, epoch: int) -> None:
    """Seed torch and NumPy's global generator (ART shuffles and draws with it) per epoch."""
    value = (seed * 100_003 + epoch) % 2**32
    torch.manual_seed(value)
    np.random.seed(value)


def _mean_ce(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    """Mean softmax cross-entropy of ``net``'s outputs (logits) on ``(x, y)``, in eval mode."""
    net.eval()
    total = torch.zeros((), device=x.device)
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            total += F.cross_entropy(net(x[start:start + batch_size]),
                                     y[start:start + batch_size], reduction="sum")
    return float(total) / max(len(x), 1)


class _Resume:
    """One entry (``key``) of the resume file ``path``: a training phase's state per epoch.

    The file maps phase names to states, so a two-phase defense (distillation) resumes in
    whichever phase it stopped, with the finished phase's result kept."""

    def __init__(self, path: Path | None, key: str):
        self.path, self.key = path, key
        self.whole: dict = {}

    def load(self, device: torch.device) -> dict | None:
        """The saved state of this phase, or None."""
        if self.path is None or not self.path.exists():
            return None
        self.whole = torch.load(self.path, map_location=device, weights_only=True)
        return self.whole.get(self.key)

    def save(self, state: dict) -> None:
        """Store this phase's ``state`` beside the others' (written atomically)."""
        if self.path is None:
            return
        whole = self.whole
        whole[self.key] = state
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        torch.save(whole, tmp)
        os.replace(tmp, self.path)


def fit_by_epochs(net: nn.Module, optimizer: torch.optim.Optimizer, data: TrainData,
                  ctx: TrainContext, run_epoch: Callable[[int], None], *,
                  phase: str = "train") -> TrainReport:
    """Run ``run_epoch(epoch)`` (one epoch of an ART trainer) up to ``settings.epochs`` times.

    After each epoch the validation loss (softmax cross-entropy of ``net``'s outputs on
    ``data.x_val``; the training set when there is none) is measured; the best weights are
    kept and training stops after ``settings.patience`` epochs without improvement. ``net``
    ends with the best weights, in eval mode. The state is saved to ``ctx.resume_path`` under
    ``phase`` after each epoch and resumed from there.
    """
    from harness.devices import synchronize
    from harness.progress import progress_bar

    s = ctx.settings
    x_val, y_val = (data.x_val, data.y_val) if len(data.x_val) else (data.x, data.y)
    resume = _Resume(ctx.resume_path, phase)
    epoch, best_val, best_epoch, bad, seconds = 0, math.inf, -1, 0, 0.0
    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    history: list[dict] = []
    state = resume.load(ctx.device)
    if state is not None:
        net.load_state_dict(state["net"])
        optimizer.load_state_dict(state["optimizer"])
        best_state, epoch, best_val = state["best_state"], state["epoch"], state["best_val"]
        best_epoch, bad, seconds = state["best_epoch"], state["bad_epochs"], state["seconds"]
        history = state["history"]
    label = ctx.label if phase == "train" else f"{ctx.label} ({phase})"
    bar = progress_bar(total=s.epochs, initial=epoch, desc=label, unit="epoch",
                       enabled=ctx.show_progress)
    try:
        with _quiet_art():
            while epoch < s.epochs and bad < s.patience:
                synchronize(ctx.device)
                t0 = time.perf_counter()
                _seed(s.seed, epoch)
                run_epoch(epoch)
                val = _mean_ce(net, x_val, y_val, 2 * s.batch_size)
                synchronize(ctx.device)
                seconds += time.perf_counter() - t0
                epoch += 1
                history.append({"epoch": epoch, "val_loss": val}
                               | ({} if phase == "train" else {"phase": phase}))
                if val < best_val:
                    best_val, best_epoch, bad = val, epoch, 0
                    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                else:
                    bad += 1
                bar.update(1)
                bar.set_postfix(val_loss=f"{val:.4f}", best=best_epoch)
                resume.save({"net": net.state_dict(), "optimizer": optimizer.state_dict(),
                             "best_state": best_state, "epoch": epoch, "best_val": best_val,
                             "best_epoch": best_epoch, "bad_epochs": bad, "seconds": seconds,
                             "history": history})
    finally:
        bar.close()
    net.load_state_dict(best_state)
    net.eval()
    return TrainReport(epochs_run=epoch, best_epoch=best_epoch, best_val_loss=best_val,
                       seconds=seconds, images=len(data.x) * epoch, history=history)


# ---------------------------------------------------------------------------------------------
# One function per ART trainer: build ART's objects, hand one epoch of them to the loop.


def _eps(options: Mapping[str, Any], ctx: TrainContext) -> float:
    return float(options["eps"]) if options["eps"] is not None else float(ctx.dataset_eps)


def _eps_step(options: Mapping[str, Any], eps: float) -> float:
    return float(options["eps_step"]) if options["eps_step"] is not None else eps / 4


EpochMaker = Callable[[Any, _Arrays, TrainContext, dict[str, Any]], Callable[[int], None]]


def single_phase(make_epoch: EpochMaker
                 ) -> Callable[[nn.Module, TrainData, TrainContext, dict[str, Any]], TrainReport]:
    """A defense's ``run`` from ``make_epoch(classifier, arrays, ctx, options)``, which builds
    the ART trainer on the wrapped model and returns its one-epoch function."""

    def run(model: nn.Module, data: TrainData, ctx: TrainContext,
            options: dict[str, Any]) -> TrainReport:
        net = _Net(model)
        classifier = _classifier(net, data, ctx)
        run_epoch = make_epoch(classifier, _Arrays.of(data), ctx, options)
        return fit_by_epochs(net, classifier.optimizer, data, ctx, run_epoch)

    return run


def _fit_epoch(trainer, arrays: _Arrays, ctx: TrainContext) -> Callable[[int], None]:
    """One epoch of an ART trainer's own ``fit``."""
    return lambda _: trainer.fit(arrays.x, arrays.y, batch_size=ctx.settings.batch_size,
                                 nb_epochs=1)


def _adversarial_trainer(classifier, arrays, ctx, options):
    """ART's AdversarialTrainer: a ``ratio`` of each minibatch replaced by FGSM examples."""
    from art.attacks.evasion import FastGradientMethod
    from art.defences.trainer import AdversarialTrainer

    eps = _eps(options, ctx)
    fgsm = FastGradientMethod(classifier, norm=np.inf, eps=eps, eps_step=eps,
                              batch_size=ctx.settings.batch_size)
    return _fit_epoch(AdversarialTrainer(classifier, fgsm, ratio=options["ratio"]), arrays, ctx)


def _madry_pgd(classifier, arrays, ctx, options):
    """ART's AdversarialTrainerMadryPGD: every minibatch replaced by its PGD examples."""
    from art.defences.trainer import AdversarialTrainerMadryPGD

    eps, bs = _eps(options, ctx), ctx.settings.batch_size
    trainer = AdversarialTrainerMadryPGD(classifier, nb_epochs=1, batch_size=bs, eps=eps,
                                         eps_step=_eps_step(options, eps),
                                         max_iter=options["max_iter"], num_random_init=1)
    trainer.attack.set_params(batch_size=bs)
    return _fit_epoch(trainer, arrays, ctx)


def _trades(classifier, arrays, ctx, options):
    """ART's AdversarialTrainerTRADESPyTorch: clean loss + beta * KL(clean || PGD), with ART's
    Linf PGD (random start, ``max_iter`` steps of ``eps_step``) on the cross-entropy."""
    from art.attacks.evasion import ProjectedGradientDescent
    from art.defences.trainer import AdversarialTrainerTRADESPyTorch

    eps = _eps(options, ctx)
    pgd = ProjectedGradientDescent(classifier, norm=np.inf, eps=eps,
                                   eps_step=_eps_step(options, eps),
                                   max_iter=options["max_iter"], num_random_init=1,
                                   batch_size=ctx.settings.batch_size, verbose=False)
    return _fit_epoch(AdversarialTrainerTRADESPyTorch(classifier, pgd, beta=options["beta"]),
                      arrays, ctx)


def _fbf(classifier, arrays, ctx, options):
    """ART's AdversarialTrainerFBFPyTorch minibatch step under a cyclic Adam learning rate.

    ART's own ``fit`` hard-codes a cycle peaking at 0.21 (an SGD rate for CIFAR-10) over the
    epochs of one call; here the cycle (0 -> ``lr_max`` at 2/5 of ``settings.epochs`` -> 0,
    per minibatch, as in Wong et al.) spans the whole training and peaks at ``lr_max``.
    """
    from art.defences.trainer import AdversarialTrainerFBFPyTorch

    trainer = AdversarialTrainerFBFPyTorch(classifier, eps=_eps(options, ctx))
    step = getattr(trainer, "_batch_process", None)
    if step is None:
        import art

        raise HarnessError(f"ART {art.__version__}'s AdversarialTrainerFBFPyTorch has no "
                           "_batch_process step; fbf was written for ART 1.20")
    lr_max = options["lr_max"] if options["lr_max"] is not None else ctx.settings.lr
    epochs, bs = ctx.settings.epochs, ctx.settings.batch_size
    n, nb = len(arrays.x), math.ceil(len(arrays.x) / bs)

    def run_epoch(epoch: int) -> None:
        order = np.random.permutation(n)
        for b in range(nb):
            idx = order[b * bs:(b + 1) * bs]
            lr = float(np.interp(epoch + (b + 1) / nb, [0, epochs * 2 // 5, epochs],
                                 [0, lr_max, 0]))
            step(arrays.x[idx], arrays.y[idx], lr)

    return run_epoch


def _distillation(model, data, ctx, options) -> TrainReport:
    """ART's DefensiveDistillation: a teacher trained at temperature T on the labels, then
    ``model`` (the student) trained at T on the teacher's soft labels; both phases run the
    shared loop. ``model`` is then evaluated at temperature 1 (its own logits).

    The teacher is a copy of ``model`` at its fresh weights. Both phases use Adam at
    ``lr_factor`` times ``settings.lr``: at temperature T the logits must grow T-fold, and at
    the harness's rate (1e-3) they do not in 30 epochs of digits (T=100: 81% clean accuracy
    instead of 97%). The report counts the student's epochs; its time and images include the
    teacher's.
    """
    import copy

    from art.defences.transformer.evasion import DefensiveDistillation

    t, arrays, bs = options["temperature"], _Arrays.of(data), ctx.settings.batch_size
    factor = options["lr_factor"]
    teacher = _Net(copy.deepcopy(model), t)
    teacher_classifier = _classifier(teacher, data, ctx, lr_factor=factor)
    first = fit_by_epochs(teacher, teacher_classifier.optimizer, data, ctx,
                          lambda _: teacher_classifier.fit(arrays.x, arrays.y, batch_size=bs,
                                                           nb_epochs=1), phase="teacher")
    soft_teacher = _classifier(_Net(teacher.model, t, probabilities=True), data, ctx,
                               train=False)
    student = _Net(model, t)
    student_classifier = _classifier(_Net(model, t, probabilities=True), data, ctx,
                                     loss=_SoftCrossEntropy(), lr_factor=factor)
    distill = DefensiveDistillation(soft_teacher, batch_size=bs, nb_epochs=1)
    second = fit_by_epochs(student, student_classifier.optimizer, data, ctx,
                           lambda _: distill(arrays.x, student_classifier), phase="student")
    return TrainReport(epochs_run=second.epochs_run, best_epoch=second.best_epoch,
                       best_val_loss=second.best_val_loss,
                       seconds=first.seconds + second.seconds,
                       images=first.images + second.images,
                       history=first.history + second.history)


@dataclass(frozen=True, kw_only=True)
class ArtTraining:
    """A declaration of one ART training defense: name, ART class, defaults, and ``run``
    (model, data, ctx, options) -> TrainReport."""

    name: str
    art_name: str
    description: str
    defaults: Mapping[str, Any]
    run: Callable[[nn.Module, TrainData, TrainContext, dict[str, Any]], TrainReport]
    needs: frozenset[str] = frozenset({"gradients"})

    def spec(self) -> DefenseSpec:
        """The :class:`DefenseSpec` the plugin registers."""
        return DefenseSpec(name=self.name, description=self.description, build=self.build,
                           stage="training", needs=self.needs,
                           config={"art_class": self.art_name, **self.defaults})

    def build(self, options: Mapping[str, Any]) -> ArtTrainingDefense:
        """The defense with ``options`` over the defaults (checked now, before any training)."""
        return ArtTrainingDefense(self, checked_options(f"defense {self.name}", options,
                                                        self.defaults))


class ArtTrainingDefense:
    """One declared ART training defense with its options: a :class:`TrainingDefense`."""

    def __init__(self, declaration: ArtTraining, options: dict[str, Any]):
        self.declaration = declaration
        self.options = options

    def train(self, model: nn.Module, data: TrainData, ctx: TrainContext) -> TrainReport:
        """Train ``model`` in place with the ART defense; it ends with its best weights."""
        torch.manual_seed(ctx.settings.seed)
        # ART puts its classifier on the *current* CUDA device: make that the run's device.
        on_device = torch.cuda.device(ctx.device) if ctx.device.type == "cuda" else nullcontext()
        with on_device:
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
        defaults={"eps": None, "eps_step": None, "max_iter": 7},
    ),
    ArtTraining(
        name="fbf", art_name="AdversarialTrainerFBFPyTorch", run=single_phase(_fbf),
        description="Fast is better than free (ART): FGSM from a random start, step 1.25*eps, "
                    "dataset eps, cyclic learning rate peaking at the training rate",
        defaults={"eps": None, "lr_max": None},
    ),
    ArtTraining(
        name="trades", art_name="AdversarialTrainerTRADESPyTorch", run=single_phase(_trades),
        description="TRADES (ART): clean loss + 6 * KL(clean || PGD), PGD Linf at dataset eps, "
                    "7 steps of eps/4",
        defaults={"eps": None, "eps_step": None, "max_iter": 7, "beta": 6.0},
    ),
    ArtTraining(
        name="distillation", art_name="DefensiveDistillation", run=_distillation,
        description="Defensive distillation (ART, Papernot et al.): student trained at T=100 on "
                    "a T=100 teacher's soft labels, Adam at 10x the rate; evaluated at T=1",
        defaults={"temperature": 100, "lr_factor": 10},
        needs=frozenset(),
    ),
)


# ---------------------------------------------------------------------------------------------
# Input transformations.


@dataclass(frozen=True, kw_only=True)
class ArtPreprocessor:
    """A declaration of one ART preprocessor as an input-transformation defense.

    ``defaults`` are the options users may change; ``fixed`` the constructor arguments the
    harness's image format dictates (clip values (0, 1), channels first).
    """

    name: str
    art_name: str
    description: str
    defaults: Mapping[str, Any]
    fixed: Mapping[str, Any] = field(default_factory=dict)

    def spec(self) -> DefenseSpec:
        """The :class:`DefenseSpec` the plugin registers."""
        return DefenseSpec(name=self.name, description=self.description, build=self.build,
                           stage="input-transformation",
                           config={"art_class": self.art_name, **self.defaults})

    def build(self, options: Mapping[str, Any]) -> ArtTransformation:
        """The transformation with ``options`` over the defaults."""
        import art.defences.preprocessor as preprocessor

        kwargs = checked_options(f"defense {self.name}", options, self.defaults)
        return ArtTransformation(getattr(preprocessor, self.art_name)(**self.fixed, **kwargs))


class ArtTransformation:
    """Runs one ART preprocessor on harness tensors: an :class:`InputTransformation`."""

    def __init__(self, preprocessor):
        self.preprocessor = preprocessor

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (N,C,H,W in [0, 1]) after the preprocessor; same shape, dtype and device."""
        x_np = x.detach().cpu().numpy().astype(np.float32)  # a copy: ``x`` stays as it was
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
        description="Feature squeezing (Xu et al., ART): pixels reduced to 2 bits; evaluated "
                    "against non-adaptive attacks",
        defaults={"bit_depth": 2}, fixed=_IMAGES,
    ),
    ArtPreprocessor(
        name="spatial-smoothing", art_name="SpatialSmoothing",
        description="Spatial smoothing (Xu et al., ART): 3x3 median filter; evaluated against "
                    "non-adaptive attacks",
        defaults={"window_size": 3}, fixed=_IMAGES | _CHANNELS_FIRST,
    ),
    ArtPreprocessor(
        name="jpeg", art_name="JpegCompression",
        description="JPEG compression (ART) at quality 50; evaluated against non-adaptive "
                    "attacks",
        defaults={"quality": 50}, fixed=_IMAGES | _CHANNELS_FIRST,
    ),
)


@hookimpl
def harness_register_defenses(register):
    """Register the ART training defenses and input transformations."""
    for declaration in (*TRAINING, *TRANSFORMATIONS):
        register(declaration.spec())
