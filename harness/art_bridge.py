"""The bridge to IBM's adversarial-robustness-toolbox (ART): all the glue in one place.

One classifier builder (:func:`art_classifier`) turns a harness model (images in [0, 1] ->
logits, normalization inside) into ART's ``PyTorchClassifier`` with clip values (0, 1) on the
run's device, with options for probabilities, temperature, an optimizer, a loss and a feature
tap; helpers turn harness tensors into the arrays ART wants and back, seed the global
generators ART draws from (NumPy's, torch's) for a block, freeze a model's weights, and read
penultimate features. An ART evasion attack becomes a harness plugin through a declaration
(:class:`ArtEvasion`): name, ART class, threat model, options, budget, roles. ART is imported
only when an attack is built.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.errors import HarnessError, UsageError
from harness.options import Option, options, unknown_option_message
from harness.specs import AttackSpec, Norm, ThreatModel


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


FEATURE_LAYER = "features"


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


@dataclass(frozen=True, kw_only=True)
class ArtEvasion:
    """A declaration of one ART evasion attack as a harness plugin.

    ``eps_args(eps)`` maps the harness budget to the ART constructor's arguments (bounded
    attacks only). ``options`` declares the ART constructor arguments the harness sets, with
    its defaults (iterations, queries) and bounds; any other argument of the ART class is
    accepted too and checked against its signature when the attack is built.
    ``own_options`` are options the harness consumes itself (``estimator_args`` reads them;
    they are not ART arguments). ``targeted`` attacks aim every image at class (y + 1) mod K;
    ``per_sample`` attacks are called one image at a time (ART accepts only one for them);
    ``probabilities`` attacks see softmax scores instead of logits.
    ``estimator_args(classifier, eps, own)`` builds arguments that need the wrapped
    classifier (AutoAttack's list of attacks) from the resolved ``own_options``.
    ``smoke_options`` are the tiny budgets of the contract tests; ``roles`` the
    :data:`harness.roles.ATTACK_ROLES` the attack plays.
    """

    name: str
    art_name: str
    description: str
    threat_model: ThreatModel
    norm: Norm
    needs: frozenset[str]
    survey_table: str
    bounded: bool = False
    eps_args: Callable[[float], dict[str, Any]] | None = None
    options: tuple[Option, ...] = ()
    own_options: tuple[Option, ...] = ()
    smoke_options: Mapping[str, Any] = field(default_factory=dict)
    roles: frozenset[str] = frozenset()
    budget_images: int | None = None
    targeted: bool = False
    per_sample: bool = False
    probabilities: bool = False
    estimator_args: Callable[[Any, float | None, Mapping[str, Any]], dict[str, Any]] | None = None

    def spec(self) -> AttackSpec:
        """The :class:`AttackSpec` the plugin registers: its declared options accept other
        ART constructor arguments too (``passthrough``)."""
        return AttackSpec(
            name=self.name, description=self.description, build=self.build,
            threat_model=self.threat_model, norm=self.norm, needs=self.needs,
            bounded=self.bounded, targeted=self.targeted, budget_images=self.budget_images,
            survey_table=self.survey_table, roles=self.roles,
            options=options(*self.options, *self.own_options, passthrough=True),
            smoke_options=self.smoke_options, config={"art_class": self.art_name},
        )

    def build(self, resolved: Mapping[str, Any]) -> ArtEvasionAttack:
        """The attack object for the resolved options: the harness's own options apart, every
        key must be an argument of the ART class's constructor (UsageError otherwise)."""
        cls = art_class(self.art_name)
        own_names = {o.name for o in self.own_options}
        accepted = set(inspect.signature(cls).parameters) - {"estimator", "classifier"}
        for key in resolved:
            if key not in accepted and key not in own_names:
                raise UsageError(unknown_option_message(
                    f"attack {self.name} ({self.art_name})", key,
                    sorted(accepted | own_names)))
        kwargs = {k: v for k, v in resolved.items() if k not in own_names}
        own = {k: v for k, v in resolved.items() if k in own_names}
        if "verbose" in accepted:
            kwargs.setdefault("verbose", False)
        return ArtEvasionAttack(self, cls, kwargs, own)


class ArtEvasionAttack:
    """Runs one declared ART evasion attack on harness tensors."""

    def __init__(self, declaration: ArtEvasion, cls: type, kwargs: dict[str, Any],
                 own: Mapping[str, Any] | None = None):
        self.declaration = declaration
        self.cls = cls
        self.kwargs = kwargs
        self.own = dict(own or {})

    def perturb(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                eps: float | None) -> torch.Tensor:
        """Adversarial examples from ART for ``x`` (true labels ``y``)."""
        d = self.declaration
        with torch.no_grad():
            nb_classes = int(model(x[:1]).shape[1])
        classifier = art_classifier(model, tuple(x.shape[1:]), nb_classes, x.device,
                                    probabilities=d.probabilities)
        kwargs = dict(self.kwargs)
        if d.bounded:
            if eps is None:
                raise UsageError(f"attack {d.name} needs an eps")
            kwargs = {**d.eps_args(eps), **kwargs} if d.eps_args else kwargs
        if d.estimator_args is not None:
            kwargs = {**d.estimator_args(classifier, eps, self.own), **kwargs}
        attack = self.cls(classifier, **kwargs)
        labels = (y + 1) % nb_classes if d.targeted else y
        x_np = to_numpy(x)
        y_np = one_hot(labels, nb_classes)
        if d.per_sample:
            adv = np.concatenate([self._one(attack, x_np[i:i + 1], y_np[i:i + 1])
                                  for i in range(len(x_np))])
        else:
            try:
                adv = attack.generate(x_np, y=y_np)
            except AssertionError:
                # Some ART attacks (Brendel & Bethge) assert that every image of the batch was
                # turned; retry image by image so one failure costs only that image.
                adv = np.concatenate([self._one(attack, x_np[i:i + 1], y_np[i:i + 1])
                                      for i in range(len(x_np))])
        return to_tensor(adv, x)

    @staticmethod
    def _one(attack, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """One image; if ART's own check fails on it, the image is left as it was: the attack
        did not turn it, and it counts as a failure of the attack, not of the cell."""
        try:
            return attack.generate(x, y=y)
        except AssertionError:
            return x
