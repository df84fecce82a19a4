"""The bridge to IBM's adversarial-robustness-toolbox (ART): all the torch-side glue in one place.

One classifier builder (:func:`art_classifier`) turns a harness model (images in [0, 1] ->
logits, normalization inside) into ART's ``PyTorchClassifier`` with clip values (0, 1) on the
run's device, with options for probabilities, temperature, an optimizer, a loss and a feature
tap; helpers turn harness tensors into the arrays ART wants and back, seed the global
generators ART draws from (NumPy's, torch's) for a block, freeze a model's weights, and read
penultimate features; :class:`SoftCrossEntropy` is the loss of a classifier trained on soft
labels. An ART evasion attack is declared in :mod:`harness.art.declarations` (which imports
neither torch nor ART, so registering it stays cheap) and run here by
:class:`ArtEvasionAttack`. This module imports torch and NumPy; ART only when a classifier or
an attack is built. Plugins import it only when they build or run something.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from harness.contracts.options import ResolvedOptions
from harness.util.errors import HarnessError, UsageError


class DeclaredEvasion(Protocol):
    """What :class:`ArtEvasionAttack` reads of its declaration
    (:class:`harness.art.declarations.ArtEvasion`, which imports this module, not the reverse):
    read-only fields, as a frozen dataclass has them."""

    # the fields are ArtEvasion's, documented there
    @property
    def name(self) -> str: ...  # noqa: D102

    @property
    def bounded(self) -> bool: ...  # noqa: D102

    @property
    def targeted(self) -> bool: ...  # noqa: D102

    @property
    def per_sample(self) -> bool: ...  # noqa: D102

    @property
    def probabilities(self) -> bool: ...  # noqa: D102

    @property
    def keeps_state(self) -> bool: ...  # noqa: D102

    @property
    def eps_args(self) -> Callable[[float], dict[str, Any]] | None: ...  # noqa: D102

    @property
    def estimator_args(self) -> EstimatorArgs | None: ...  # noqa: D102


EstimatorArgs = Callable[[Any, float | None, ResolvedOptions], dict[str, Any]]


class _ArtInput(nn.Module):
    """The harness model as ART sees it: float32 input (some attacks send float64), logits
    divided by ``temperature``, optionally turned into softmax probabilities.

    Not an ``nn.Sequential``, so ART's wrapper returns only the final output, as its trainers
    and attacks expect."""

    def __init__(self, model: nn.Module, probabilities: bool = False, temperature: float = 1.0):
        super().__init__()
        self.model = model
        self.probabilities = probabilities
        self.temperature = float(temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scaled logits (or probabilities) of the wrapped model for ``x`` as float32."""
        out = self.model(x.float())
        if self.temperature != 1.0:
            out = out / self.temperature
        return out.softmax(1) if self.probabilities else out


def art_classifier(model: nn.Module, input_shape: tuple[int, ...], nb_classes: int,
                   device: torch.device, *, probabilities: bool = False,
                   temperature: float = 1.0, optimizer: torch.optim.Optimizer | None = None,
                   loss: nn.Module | None = None, feature_tap: bool = False):
    """``model`` as ART's PyTorchClassifier with clip values (0, 1) on ``device``.

    ``probabilities`` makes it output softmax scores, for attacks and trainers that insist on
    them (SimBA, defensive distillation); ``temperature`` divides the logits first. ``loss``
    defaults to softmax cross-entropy; ``optimizer`` is what ART's trainers step (a classifier
    without one is for attacking and is put in eval mode). ``feature_tap`` wraps the model in
    :class:`FeatureTap` instead, so its last layer is :data:`FEATURE_LAYER` (for the
    detectors and attacks that read penultimate features; logits out, no scaling).
    """
    from art.estimators.classification import PyTorchClassifier

    if feature_tap and (probabilities or temperature != 1.0):
        raise ValueError("art_classifier: feature_tap outputs plain logits; it takes neither "
                         "probabilities nor a temperature")
    wrapped = (FeatureTap(model) if feature_tap
               else _ArtInput(model, probabilities=probabilities, temperature=temperature))
    if optimizer is None:
        wrapped.eval()
    return PyTorchClassifier(
        model=wrapped, loss=loss if loss is not None else nn.CrossEntropyLoss(),
        optimizer=optimizer, input_shape=tuple(input_shape), nb_classes=nb_classes,
        clip_values=(0.0, 1.0), device_type="gpu" if device.type == "cuda" else "cpu",
    )


class SoftCrossEntropy(nn.Module):
    """Cross-entropy of predicted probabilities against soft (or one-hot) target labels: the
    loss of a classifier built with ``probabilities=True`` that learns from soft labels."""

    def forward(self, probabilities: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean over the batch of ``-sum(target * log(probabilities))``."""
        return -(target * probabilities.clamp_min(1e-12).log()).sum(1).mean()


FEATURE_LAYER = "features"


class FeatureTap(nn.Module):
    """``model`` with its penultimate features exposed as the layer named ``features``.

    The penultimate features are the input of the model's last ``nn.Linear`` (its
    classification head), flattened. ART's PyTorchClassifier names this wrapper's layers
    ``['model', 'features']``: the last one, which ART's ActivationDefence and
    SpectralSignatureDefense read (``nb_layers - 1``), and the layer the feature-space
    attacks name, is the features. (On a bare ``nn.Sequential`` ART's last layer would be
    the logits, and on :func:`harness.art.bridge.art_classifier`'s wrapper the whole model.)
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
    """``art_classifier(..., feature_tap=True)``: logits out, :data:`FEATURE_LAYER` last."""
    return art_classifier(model, input_shape, nb_classes, device, feature_tap=True)


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


class _DrawnRandomState(np.random.RandomState):
    """A ``RandomState`` that, created without a seed, takes one from NumPy's global generator
    instead of the operating system's entropy (a subclass: ``isinstance`` checks still hold)."""

    def __init__(self, seed: Any = None):
        super().__init__(np.random.randint(0, 2**32, dtype=np.uint64) if seed is None
                         else seed)


@contextlib.contextmanager
def reproducible_random_states() -> Iterator[None]:
    """For the block, an unseeded ``np.random.RandomState()`` draws its seed from NumPy's
    global generator. ART's Boundary, HopSkipJump and Brendel & Bethge attacks create one per
    image (``nprd = np.random.RandomState()``), so without this two runs of the same cell
    differ; the worker seeds the global generator per cell
    (:func:`harness.util.seeds.seed_globals`), so with it they give the same numbers."""
    original = np.random.RandomState
    np.random.RandomState = _DrawnRandomState  # type: ignore[misc]
    try:
        yield
    finally:
        np.random.RandomState = original  # type: ignore[misc]


@contextlib.contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's (CPU and ``device``) and NumPy's global generators (ART draws from both)
    for the block, then restore them."""
    devices = ([device.index if device.index is not None else torch.cuda.current_device()]
               if device.type == "cuda" else [])
    with torch.random.fork_rng(devices=devices), numpy_seed(seed):
        torch.manual_seed(seed)
        yield


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


def art_class(name: str) -> type:
    """The ART evasion attack class called ``name``; a clear error if this ART lacks it."""
    import art.attacks.evasion as evasion

    cls = getattr(evasion, name, None)
    if cls is None:
        hint = " (it needs numba: pip install numba)" if name == "BrendelBethgeAttack" else ""
        raise HarnessError(f"ART {_art_version()} has no evasion attack {name}{hint}")
    return cls


def _art_version() -> str:
    import art

    return art.__version__


@dataclass
class _CellObjects:
    """What one cell's batches share: the model they were built for, the eps, the input
    shape and device, the number of classes, ART's classifier and ART's attack object."""

    model: nn.Module
    eps: float | None
    input_shape: tuple[int, ...]
    device: torch.device
    nb_classes: int
    classifier: Any
    attack: Any

    def serves(self, model: nn.Module, x: torch.Tensor, eps: float | None) -> bool:
        """Whether these objects were built for ``model`` (the same object), ``eps`` and
        ``x``'s image shape and device."""
        return (self.model is model and self.eps == eps
                and self.input_shape == tuple(x.shape[1:]) and self.device == x.device)


class ArtEvasionAttack:
    """Runs one declared ART evasion attack (:class:`harness.art.declarations.ArtEvasion`)
    on harness tensors.

    ART's classifier and attack object are built once per cell: for the first batch, then
    kept while the model (the same object), eps, image shape and device stay the same, so a
    batch costs ART's attack alone (an attack declared ``keeps_state`` gets a new attack
    object per batch on the kept classifier). The model's parameters are frozen while ART
    runs: ART's ``loss_gradient`` calls ``backward`` on the loss, which would otherwise also
    compute the weight gradients it throws away. The examples are the same as with a fresh
    classifier per batch: neither the classifier nor ART's attack objects draw random numbers
    when they are built, and input gradients do not depend on whether the weights require
    gradients.
    """

    def __init__(self, declaration: DeclaredEvasion, cls: type, kwargs: dict[str, Any],
                 own: ResolvedOptions | None = None):
        self.declaration = declaration
        self.cls = cls
        self.kwargs = kwargs
        self.own = own if own is not None else ResolvedOptions()
        self._cell: _CellObjects | None = None

    def perturb(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                eps: float | None) -> torch.Tensor:
        """Adversarial examples from ART for ``x`` (true labels ``y``)."""
        d = self.declaration
        if d.bounded and eps is None:
            raise UsageError(f"attack {d.name} needs an eps")
        cell = self._cell_objects(model, x, eps)
        attack = self._art_attack(cell.classifier, eps) if d.keeps_state else cell.attack
        labels = (y + 1) % cell.nb_classes if d.targeted else y
        x_np = to_numpy(x)
        y_np = one_hot(labels, cell.nb_classes)
        with frozen(model), reproducible_random_states():
            if d.per_sample:
                adv = self._one_by_one(attack, x_np, y_np)
            else:
                try:
                    adv = attack.generate(x_np, y=y_np)
                except AssertionError:
                    # Some ART attacks (Brendel & Bethge) assert that every image of the batch
                    # was turned; retry image by image so one failure costs only that image.
                    adv = self._one_by_one(attack, x_np, y_np)
        return to_tensor(adv, x)

    def _cell_objects(self, model: nn.Module, x: torch.Tensor,
                      eps: float | None) -> _CellObjects:
        """ART's classifier and attack for ``model`` and ``eps``: kept from an earlier batch,
        or built (the number of classes read from one image's logits)."""
        if self._cell is not None and self._cell.serves(model, x, eps):
            return self._cell
        with torch.no_grad():
            nb_classes = int(model(x[:1]).shape[1])
        classifier = art_classifier(model, tuple(x.shape[1:]), nb_classes, x.device,
                                    probabilities=self.declaration.probabilities)
        self._cell = _CellObjects(model, eps, tuple(x.shape[1:]), x.device, nb_classes,
                                  classifier, self._art_attack(classifier, eps))
        return self._cell

    def _art_attack(self, classifier: Any, eps: float | None) -> Any:
        """ART's attack object on ``classifier`` for ``eps``."""
        d = self.declaration
        kwargs = dict(self.kwargs)
        if d.bounded and d.eps_args is not None:
            assert eps is not None, "perturb checks that a bounded attack has an eps"
            kwargs = {**d.eps_args(eps), **kwargs}
        if d.estimator_args is not None:
            kwargs = {**d.estimator_args(classifier, eps, self.own), **kwargs}
        return self.cls(classifier, **kwargs)

    def _one_by_one(self, attack: Any, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The batch image by image (:meth:`_one`)."""
        return np.concatenate([self._one(attack, x[i:i + 1], y[i:i + 1])
                               for i in range(len(x))])

    @staticmethod
    def _one(attack, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """One image; if ART's own check fails on it, the image is left as it was: the attack
        did not turn it, and it counts as a failure of the attack, not of the cell."""
        try:
            return attack.generate(x, y=y)
        except AssertionError:
            return x
