"""Built-in models ``svm`` and ``logreg``: scikit-learn linear classifiers on the pixels.

``svm`` is scikit-learn's ``LinearSVC`` (one-vs-rest, squared hinge loss, L2 penalty) and
``logreg`` its multinomial ``LogisticRegression`` (lbfgs), both on the flattened pixels in
[0, 1] with no other preprocessing. Each is a torch module, :class:`SklearnLinear`, holding an
``nn.Linear(d, K)`` whose logits are exactly the estimator's ``decision_function``, so every
evasion attack (gradients, scores, labels) works on it unchanged. The spec's ``fit`` fits the
scikit-learn estimator on the training images and copies ``coef_``/``intercept_`` into that
layer; the shared gradient loop never touches it, so training defenses are n/a for these
models (they do not offer "training-loop"), nor do they offer hidden "activations".

``model.sklearn_estimator()`` rebuilds a fitted scikit-learn estimator from the module's
weights alone, so a model loaded from the safetensors weight cache (which never unpickles
anything) gives the same estimator as the freshly fitted one. :func:`art_estimator` wraps it
as ART's ``ScikitlearnSVC`` / ``ScikitlearnLogisticRegression`` for attacks that need a
scikit-learn estimator (inputs are then flattened images, ``x.reshape(len(x), -1)``).

Defaults (C=1, tol=1e-4, max_iter=1000) converge on digits in well under a second and on
MNIST (54,000 x 784 after the validation split) in 20-50 s on one core: LinearSVC solves the
primal (scikit-learn's ``dual="auto"`` picks it when there are more images than pixels),
lbfgs needs about 260 iterations. Test accuracy: digits 0.967 (svm) and 0.969 (logreg),
MNIST 0.917 (svm) and 0.926 (logreg). For two classes, or a class missing from the training
set, see :class:`SklearnLinear` and ``ABSENT_CLASS_BIAS``.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from harness.errors import UsageError
from harness.hookspecs import hookimpl
from harness.options import Option, OptionSchema, options
from harness.specs import ModelSpec


def _options(solver: str) -> OptionSchema:
    """C, tol and max_iter of one estimator (``solver`` names it in the help)."""
    return options(
        Option(name="C", type="float", default=1.0, min=0, min_exclusive=True,
               help="inverse regularization strength"),
        Option(name="tol", type="float", default=1e-4, min=0, min_exclusive=True,
               help=f"{solver} stopping tolerance"),
        Option(name="max_iter", type="int", default=1000, min=1,
               help=f"largest number of {solver} iterations"),
    )


OPTIONS: dict[str, OptionSchema] = {"svm": _options("liblinear"), "logreg": _options("lbfgs")}
# The logit bias of a class absent from the training set (the model never predicts it).
ABSENT_CLASS_BIAS = -1e4


def make_estimator(kind: str, params: Mapping[str, Any], seed: int | None = None):
    """An unfitted scikit-learn estimator of ``kind`` ("svm" or "logreg") with ``params``."""
    if kind == "svm":
        from sklearn.svm import LinearSVC

        return LinearSVC(C=params["C"], tol=params["tol"], max_iter=params["max_iter"],
                         dual="auto", random_state=seed)
    if kind == "logreg":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=params["C"], tol=params["tol"], max_iter=params["max_iter"],
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
                 params: Mapping[str, Any]):
        super().__init__()
        self.kind = kind
        self.params = dict(params)
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


def fit(model: SklearnLinear, data, ctx):
    """Fit the scikit-learn estimator on ``data.x``/``data.y`` and copy it into ``model``.

    Reports one "epoch": the fit's time, and the validation cross-entropy of the logits for
    ``logreg`` (NaN for ``svm``, whose decision values are not log-probabilities); the history
    records train/validation accuracy, solver iterations and whether the solver converged.
    """
    import numpy as np
    from sklearn.exceptions import ConvergenceWarning

    from harness.training import TrainReport

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
        warnings.warn(f"{model.kind} did not converge in max_iter={model.params['max_iter']} "
                      f"iterations; raise it with --model-opt {model.kind}.max_iter=...",
                      stacklevel=2)
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


def _builder(kind: str):
    def build(model_input, variant: str | None, resolved: Mapping[str, Any]) -> SklearnLinear:
        """An unfitted module for ``model_input``; the resolved options C, tol, max_iter."""
        d = model_input.channels * model_input.height * model_input.width
        return SklearnLinear(kind, d, model_input.num_classes, resolved)

    return build


def art_estimator(model: nn.Module):
    """ART's estimator around ``model.sklearn_estimator()``, clip values (0, 1).

    ``ScikitlearnSVC`` for ``svm``, ``ScikitlearnLogisticRegression`` for ``logreg``. It takes
    flattened images (N, C*H*W) in [0, 1]. Raises :class:`UsageError` for any other model.
    """
    if not isinstance(model, SklearnLinear):
        raise UsageError(f"an ART scikit-learn estimator needs a scikit-learn model (svm or "
                         f"logreg), not {type(model).__name__}")
    from art.estimators.classification.scikitlearn import (
        ScikitlearnLogisticRegression,
        ScikitlearnSVC,
    )

    cls = ScikitlearnSVC if model.kind == "svm" else ScikitlearnLogisticRegression
    return cls(model=model.sklearn_estimator(), clip_values=(0.0, 1.0))


@hookimpl
def harness_register_models(register):
    """Register ``svm`` and ``logreg``."""
    register(ModelSpec(
        name="svm",
        description="scikit-learn LinearSVC (one-vs-rest, squared hinge) on the pixels",
        build=_builder("svm"),
        fit=fit,
        offers=frozenset({"gradients", "scores", "labels", "sklearn", "svm"}),
        options=OPTIONS["svm"],
    ))
    register(ModelSpec(
        name="logreg",
        description="scikit-learn multinomial LogisticRegression (lbfgs) on the pixels",
        build=_builder("logreg"),
        fit=fit,
        offers=frozenset({"gradients", "scores", "labels", "sklearn", "logreg"}),
        options=OPTIONS["logreg"],
    ))
