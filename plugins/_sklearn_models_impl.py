"""The torch side of plugin ``sklearn-models``: :class:`SklearnLinear` and its fitting.

Imported only by :mod:`harness_plugins.sklearn_models`, and only when a model is built,
fitted or wrapped for ART, so registering the plugin imports neither torch nor
scikit-learn.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

import torch
from torch import nn

from harness import ResolvedOptions, TrainContext, TrainData, TrainReport, UsageError

# The logit bias of a class absent from the training set (the model never predicts it).
ABSENT_CLASS_BIAS = -1e4


def make_estimator(kind: str, params: ResolvedOptions, seed: int | None = None) -> Any:
    """An unfitted scikit-learn estimator of ``kind`` ("svm" or "logreg") with the resolved
    options ``params`` (C, tol, max_iter)."""
    if kind == "svm":
        from sklearn.svm import LinearSVC

        return LinearSVC(C=params.C, tol=params.tol, max_iter=params.max_iter, dual="auto",
                         random_state=seed)
    if kind == "logreg":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=params.C, tol=params.tol, max_iter=params.max_iter,
                                  random_state=seed)
    raise ValueError(f"unknown scikit-learn model kind {kind!r}")


class SklearnLinear(nn.Module):
    """A linear scikit-learn classifier as a torch module: flattened pixels -> ``nn.Linear``.

    ``forward`` returns the estimator's decision function for every class (for two classes,
    whose scikit-learn decision function f is one number, the logits are ``[-f/2, f/2]``:
    the same argmax, and for ``logreg`` the same softmax probabilities).
    """

    fitted: torch.Tensor  # a registered buffer: whether the estimator was fitted

    def __init__(self, kind: str, num_features: int, num_classes: int,
                 params: ResolvedOptions):
        super().__init__()
        self.kind = kind
        self.params = params
        self.num_classes = num_classes
        self.linear = nn.Linear(num_features, num_classes)
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits = the decision function on the flattened images ``x`` (N,C,H,W in [0, 1])."""
        return self.linear(x.flatten(1))

    def sklearn_estimator(self):
        """A fitted scikit-learn estimator rebuilt from this module's weights.

        Its ``decision_function`` and ``predict`` agree with the module (float32 weights);
        ``classes_`` are ``0..K-1``. Raises :class:`UsageError` if the module was never fitted.
        """
        import numpy as np

        if not bool(self.fitted):
            raise UsageError(f"this {self.kind} model has not been fitted: train it with its "
                             "ModelSpec.fit (the runner does) before asking for its estimator")
        w = self.linear.weight.detach().cpu().double().numpy()
        b = self.linear.bias.detach().cpu().double().numpy()
        est = make_estimator(self.kind, self.params)
        if self.num_classes == 2:
            est.coef_, est.intercept_ = (w[1] - w[0])[None, :], np.array([b[1] - b[0]])
        else:
            est.coef_, est.intercept_ = w, b
        est.classes_ = np.arange(self.num_classes)
        est.n_features_in_ = w.shape[1]
        if self.kind == "logreg":
            est.n_iter_ = np.zeros(1, dtype=np.int32)
        return est


def _logit_weights(est, num_classes: int, num_features: int):
    """The (K, d) weight and (K,) bias of the logits that equal ``est``'s decision function."""
    import numpy as np

    w = np.zeros((num_classes, num_features))
    b = np.full(num_classes, ABSENT_CLASS_BIAS)
    classes = np.asarray(est.classes_).astype(int)
    coef, intercept = np.asarray(est.coef_), np.asarray(est.intercept_)
    if len(classes) == 2 and coef.shape[0] == 1:
        w[classes[0]], b[classes[0]] = -coef[0] / 2, -intercept[0] / 2
        w[classes[1]], b[classes[1]] = coef[0] / 2, intercept[0] / 2
    else:
        w[classes], b[classes] = coef, intercept
    return w, b


def fit(model: nn.Module, data: TrainData, ctx: TrainContext) -> TrainReport:
    """Fit the scikit-learn estimator on ``data.x``/``data.y`` and copy it into ``model`` (a
    :class:`SklearnLinear`, as the spec's ``build`` makes).

    Reports one "epoch": the fit's time, and the validation cross-entropy of the logits for
    ``logreg`` (NaN for ``svm``, whose decision values are not log-probabilities); the history
    records train/validation accuracy, solver iterations and whether the solver converged.
    """
    import numpy as np
    from sklearn.exceptions import ConvergenceWarning

    from harness import refuse_augment

    if not isinstance(model, SklearnLinear):
        raise UsageError(f"the scikit-learn fit trains the SklearnLinear its spec builds, not a "
                         f"{type(model).__name__}: build the model with the svm or logreg spec")
    refuse_augment(ctx.settings.augment, f"model {model.kind} (scikit-learn)")
    x = data.x.detach().flatten(1).cpu().numpy()
    y = data.y.detach().cpu().numpy()
    if len(np.unique(y)) < 2:
        raise UsageError(f"{model.kind} needs at least two classes in its training set; "
                         "use a larger --n-train")
    est = make_estimator(model.kind, model.params, seed=ctx.settings.seed)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        est.fit(x, y)
    seconds = time.perf_counter() - t0
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    if not converged:
        warnings.warn(f"{model.kind} did not converge in max_iter={model.params.max_iter} "
                      f"iterations; raise it with --model-opt {model.kind}.max_iter=...",
                      stacklevel=3)  # the caller of harness_plugins.sklearn_models.fit
    w, b = _logit_weights(est, model.num_classes, x.shape[1])
    with torch.no_grad():
        model.linear.weight.copy_(torch.as_tensor(w, dtype=torch.float32))
        model.linear.bias.copy_(torch.as_tensor(b, dtype=torch.float32))
        model.fitted.fill_(True)
    model.eval()
    record: dict[str, Any] = {"epoch": 1, "train_accuracy": float(est.score(x, y)),
                              "n_iter": int(np.max(est.n_iter_)), "converged": converged}
    val_loss = math.nan
    if len(data.x_val):
        with torch.no_grad():
            logits = model(data.x_val)
        record["val_accuracy"] = float((logits.argmax(1) == data.y_val).float().mean())
        if model.kind == "logreg":
            val_loss = float(nn.functional.cross_entropy(logits, data.y_val))
    record["val_loss"] = val_loss
    return TrainReport(epochs_run=1, best_epoch=1, best_val_loss=val_loss, seconds=seconds,
                       images=len(x), history=[record])
