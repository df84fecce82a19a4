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

The torch module and its fitting live in ``harness_plugins._sklearn_models_impl``, imported
only when a model is built, fitted or wrapped for ART: registering the plugin imports neither
torch nor scikit-learn.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from harness import (
    ModelSpec,
    OptionSchema,
    ResolvedOptions,
    UsageError,
    count,
    hookimpl,
    options,
    positive,
)

if TYPE_CHECKING:
    from torch import nn

    from harness import ModelInput, TrainContext, TrainData, TrainReport

    from ._sklearn_models_impl import SklearnLinear


def _options(solver: str) -> OptionSchema:
    """C, tol and max_iter of one estimator (``solver`` names it in the help)."""
    return options(
        positive("C", 1.0, "inverse regularization strength"),
        positive("tol", 1e-4, f"{solver} stopping tolerance"),
        count("max_iter", 1000, f"largest number of {solver} iterations"),
    )


OPTIONS: dict[str, OptionSchema] = {"svm": _options("liblinear"), "logreg": _options("lbfgs")}


def make_estimator(kind: str, params: ResolvedOptions, seed: int | None = None) -> Any:
    """An unfitted scikit-learn estimator of ``kind`` ("svm" or "logreg") with the resolved
    options ``params``."""
    from ._sklearn_models_impl import make_estimator as make

    return make(kind, params, seed)


def fit(model: nn.Module, data: TrainData, ctx: TrainContext) -> TrainReport:
    """Fit the scikit-learn estimator on ``data`` and copy it into ``model`` (see
    ``harness_plugins._sklearn_models_impl.fit``)."""
    from ._sklearn_models_impl import fit as fit_module

    return fit_module(model, data, ctx)


def _builder(kind: str) -> Callable[[ModelInput, str | None, ResolvedOptions], SklearnLinear]:
    def build(model_input: ModelInput, variant: str | None, resolved: ResolvedOptions
              ) -> SklearnLinear:
        """An unfitted module for ``model_input``; the resolved options C, tol, max_iter."""
        from ._sklearn_models_impl import SklearnLinear

        d = model_input.channels * model_input.height * model_input.width
        return SklearnLinear(kind, d, model_input.num_classes, resolved)

    return build


def art_estimator(model: nn.Module):
    """ART's estimator around ``model.sklearn_estimator()``, clip values (0, 1).

    ``ScikitlearnSVC`` for ``svm``, ``ScikitlearnLogisticRegression`` for ``logreg``. It takes
    flattened images (N, C*H*W) in [0, 1]. Raises :class:`UsageError` for any other model.
    """
    from ._sklearn_models_impl import SklearnLinear

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
def harness_register_models(register: Callable[[ModelSpec], None]) -> None:
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
