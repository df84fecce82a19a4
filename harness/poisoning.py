"""The numbers of a poisoning cell: attack success on the aimed-at inputs, detector scores."""

from __future__ import annotations

import torch

from harness.context import PoisonedSet
from harness.evaluation import predict


def attack_success(model: torch.nn.Module, poisoned: PoisonedSet) -> float:
    """Share of ``poisoned.x_eval`` the victim classifies as the attacker wants.

    Targeted: predicted == ``y_eval`` (the attacker's label). Untargeted: predicted !=
    ``y_eval`` (the true label).
    """
    pred = predict(model, poisoned.x_eval)
    hit = pred == poisoned.y_eval.to(pred.device)
    wanted = hit if poisoned.targeted else ~hit
    return int(wanted.sum()) / len(wanted) if len(wanted) else float("nan")


def detection_scores(flagged: torch.Tensor, is_poison: torch.Tensor) -> dict[str, float]:
    """Precision, recall and F1 of ``flagged`` against the truth ``is_poison``.

    Precision is NaN when nothing was flagged; F1 is 0 when nothing poisoned was found.
    """
    flagged = flagged.detach().cpu().bool()
    truth = is_poison.detach().cpu().bool()
    if flagged.shape != truth.shape:
        raise ValueError(f"the detector returned {tuple(flagged.shape)} flags for "
                         f"{len(truth)} training samples")
    tp = int((flagged & truth).sum())
    n_flagged, n_poison = int(flagged.sum()), int(truth.sum())
    precision = tp / n_flagged if n_flagged else float("nan")
    recall = tp / n_poison if n_poison else float("nan")
    f1 = 2 * tp / (n_flagged + n_poison) if n_flagged + n_poison else float("nan")
    return {"precision": precision, "recall": recall, "f1": f1, "flagged": float(n_flagged)}
