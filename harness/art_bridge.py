"""The bridge to IBM's adversarial-robustness-toolbox (ART).

One adapter turns a harness model (images in [0, 1] -> logits, normalization inside) into
ART's ``PyTorchClassifier`` with clip values (0, 1) on the run's device, and turns harness
tensors into the arrays ART wants, batch by batch. An ART evasion attack then becomes a
harness plugin through a declaration (:class:`ArtEvasion`): name, ART class, threat model,
defaults, budget. ART is imported only when an attack is built.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from harness.errors import HarnessError, UsageError
from harness.specs import AttackSpec


class _ArtInput(torch.nn.Module):
    """Casts what ART sends (some attacks send float64) to float32; optionally softmaxes."""

    def __init__(self, model: torch.nn.Module, probabilities: bool = False):
        super().__init__()
        self.model = model
        self.probabilities = probabilities

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (or probabilities) of the wrapped model for ``x`` as float32."""
        out = self.model(x.float())
        return out.softmax(1) if self.probabilities else out


def art_classifier(model: torch.nn.Module, input_shape: tuple[int, ...], nb_classes: int,
                   device: torch.device, *, probabilities: bool = False):
    """``model`` as ART's PyTorchClassifier: clip values (0, 1), softmax cross-entropy loss.

    ``probabilities`` makes it output softmax scores, for attacks that insist on them (SimBA).
    """
    from art.estimators.classification import PyTorchClassifier

    return PyTorchClassifier(
        model=_ArtInput(model, probabilities).eval(), loss=torch.nn.CrossEntropyLoss(),
        input_shape=tuple(input_shape), nb_classes=nb_classes, clip_values=(0.0, 1.0),
        device_type="gpu" if device.type == "cuda" else "cpu",
    )


def one_hot(labels: torch.Tensor, nb_classes: int) -> np.ndarray:
    """Integer labels as the float32 one-hot array ART takes for ``y``."""
    return np.eye(nb_classes, dtype=np.float32)[labels.detach().cpu().numpy()]


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
    attacks only); ``defaults`` are the harness's default budget (iterations, queries);
    ``targeted`` attacks aim every image at class (y + 1) mod K; ``per_sample`` attacks are
    called one image at a time (ART accepts only one for them); ``probabilities`` attacks see
    softmax scores instead of logits. ``estimator_args(classifier, eps)`` builds arguments
    that need the wrapped classifier (AutoAttack's list of attacks).
    """

    name: str
    art_name: str
    description: str
    threat_model: str
    norm: str
    needs: frozenset[str]
    survey_table: str
    bounded: bool = False
    eps_args: Callable[[float], dict[str, Any]] | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    budget_images: int | None = None
    targeted: bool = False
    per_sample: bool = False
    probabilities: bool = False
    estimator_args: Callable[[Any, float | None], dict[str, Any]] | None = None

    def spec(self) -> AttackSpec:
        """The :class:`AttackSpec` the plugin registers."""
        return AttackSpec(
            name=self.name, description=self.description, build=self.build,
            threat_model=self.threat_model, norm=self.norm, needs=self.needs,
            bounded=self.bounded, targeted=self.targeted, budget_images=self.budget_images,
            survey_table=self.survey_table,
            config={"art_class": self.art_name, **self.defaults},
        )

    def build(self, options: Mapping[str, Any]) -> ArtEvasionAttack:
        """The attack object; ``options`` are ART constructor arguments over the defaults."""
        cls = art_class(self.art_name)
        accepted = set(inspect.signature(cls.__init__).parameters) - {
            "self", "estimator", "classifier"}
        for key in options:
            if key not in accepted:
                raise UsageError(f"attack {self.name} ({self.art_name}) has no option '{key}'. "
                                 f"Its options: {', '.join(sorted(accepted))}")
        kwargs = {**self.defaults, **options}
        if "verbose" in accepted:
            kwargs.setdefault("verbose", False)
        return ArtEvasionAttack(self, cls, kwargs)


class ArtEvasionAttack:
    """Runs one declared ART evasion attack on harness tensors."""

    def __init__(self, declaration: ArtEvasion, cls: type, kwargs: dict[str, Any]):
        self.declaration = declaration
        self.cls = cls
        self.kwargs = kwargs

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
            kwargs = {**d.estimator_args(classifier, eps), **kwargs}
        attack = self.cls(classifier, **kwargs)
        labels = (y + 1) % nb_classes if d.targeted else y
        x_np = x.detach().cpu().numpy().astype(np.float32)
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
        return torch.from_numpy(np.clip(adv, 0.0, 1.0).astype(np.float32)).to(x.device)

    @staticmethod
    def _one(attack, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """One image; if ART's own check fails on it, the image is left as it was: the attack
        did not turn it, and it counts as a failure of the attack, not of the cell."""
        try:
            return attack.generate(x, y=y)
        except AssertionError:
            return x
