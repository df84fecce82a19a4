"""The training settings of a job (epochs, batch, learning rate, early stopping, seed): plain
data, importable without torch, so planning a run and keying its cache cost nothing."""

from __future__ import annotations

from dataclasses import asdict, dataclass

EARLY_STOP_ON: tuple[str, ...] = ("clean", "robust", "objective")
AUGMENTATIONS: tuple[str, ...] = ("flip-crop",)  # harness.train.augment's (torch-free here)


@dataclass(frozen=True)
class TrainSettings:
    """Everything besides data, model and defense that shapes the trained weights.

    ``early_stop_on`` picks the validation loss that early stopping, the best weights and the
    learning-rate decay watch:

    - ``"clean"`` (default): the clean softmax cross-entropy on the validation split, for
      every defense. Under FGSM training the adversarial validation loss keeps falling while
      the model masks its gradients (catastrophic overfitting), so stopping on it selects
      masked models; the clean loss is neutral, and the same rule for every defense, so
      defenses compared side by side are trained alike.
    - ``"robust"``: the cross-entropy on PGD examples of the validation split (10 steps of
      2.5 * eps / 10 from a random start, the same starts every epoch) at ``early_stop_eps``
      (None: the dataset's eps), for every defense: the rule of Rice et al. (2020) and Wong
      et al. (2020) against robust and catastrophic overfitting, which keeps the weights from
      before a collapse that the clean loss would not see (it keeps falling).
    - ``"objective"``: the defense's own training objective on validation batches (its
      ``augment`` applied, as ``advtrain`` used to). Only defenses trained by the harness's own
      epoch (:func:`train_supervised`) have it; the ART defenses refuse it.

    ``augment`` names a minibatch augmentation of :mod:`harness.train.augment` (None: none).

    ``lr_decay`` applies to every defense. ``early_stop_eps`` and ``augment`` are part of the
    cache key only when set.
    """

    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    patience: int = 3
    lr_decay: float = 0.5
    val_fraction: float = 0.1
    seed: int = 0
    early_stop_on: str = "clean"
    early_stop_eps: float | None = None
    augment: str | None = None

    def __post_init__(self) -> None:
        if self.early_stop_on not in EARLY_STOP_ON:
            raise ValueError(f"early_stop_on must be one of {', '.join(EARLY_STOP_ON)}; got "
                             f"{self.early_stop_on!r}")
        if self.augment is not None and self.augment not in AUGMENTATIONS:
            raise ValueError(f"augment must be one of {', '.join(AUGMENTATIONS)} or None; got "
                             f"{self.augment!r}")

    def as_dict(self) -> dict:
        """Plain dict, for cache keys and stored configuration (``early_stop_eps`` only when
        set, so the keys of models trained before it existed stay the same)."""
        out = asdict(self)
        for optional in ("early_stop_eps", "augment"):
            if out[optional] is None:
                del out[optional]
        return out
