# The names imported for type checkers below are the exports, listed in __all__.
# ruff: noqa: F401
"""harness: a pluggable benchmark of the adversarial robustness of image classifiers.

This module is the front door: everything a user or a plugin author may touch is importable
from ``harness`` itself (``from harness import AttackSpec, Option, hookimpl``), and what it
exports is what the version number promises (semantic versioning: a name here changes or
goes away only in a new major version, or a new minor one before 1.0, with a line in the
changelog). Every other module of the package (``harness.specs``, ``harness.training``, ...)
is private by convention: it can move or change in any release. The names still resolve
through their old modules, which are the same objects.

Importing ``harness`` is cheap: each name is imported from its module the first time it is
used (PEP 562), so ``from harness import hookimpl, AttackSpec`` at the top of a plugin module
imports no torch; ``from harness import input_gradient`` does, so take such names inside the
functions that need them.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

DISTRIBUTION = "robustness-harness"

try:
    __version__ = version(DISTRIBUTION)
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

# The public names by the module that defines them (lazily imported). A name that is a module
# of its own (``harness.roles``) maps to itself; an exported alias is ``"public=attribute"``.
_PUBLIC: dict[str, tuple[str, ...]] = {
    "harness.specs": (
        "DatasetSpec", "ModelSpec", "AttackSpec", "DefenseSpec", "ReportSpec", "PluginInfo",
        "Attack", "PoisoningAttack", "ModelAttack", "TrainingDefense", "InputTransformation",
        "PoisonDetector", "MODEL_FEATURES", "TORCH_MODEL_OFFERS", "UNDECLARED", "EOT_SAMPLES",
        "NORMS", "THREAT_MODELS", "ATTACK_CATEGORIES", "DEFENSE_STAGES",
    ),
    "harness.hookspecs": ("hookimpl",),
    "harness.options": ("Option", "OptionSchema", "ResolvedOptions", "options",
                        "from_defaults", "resolve_options"),
    "harness.metrics": ("MetricSpec",),
    "harness.roles": (
        "roles", "SINGLE_STEP", "ITERATIVE", "ENSEMBLE", "BLACK_BOX", "REFERENCE", "BASELINE",
        "SINGLE_STEP_TRAINING", "ATTACK_ROLES", "DEFENSE_ROLES",
    ),
    "harness.errors": ("HarnessError", "UsageError", "PluginError", "DatasetNotFoundError",
                       "InvalidAttackOutput", "OptionsNotResolvedError",
                       "UndeclaredOptionsWarning"),
    "harness.data": ("DataOptions", "ImageData", "ModelInput", "to_float", "uint8_to_float",
                     "uint8_to_nchw"),
    "harness.models": ("Standardize",),
    "harness.context": ("AttackContext", "PoisonedSet"),
    "harness.settings": ("TrainSettings",),
    "harness.training": ("TrainContext", "TrainData", "TrainReport", "train_supervised",
                         "fit_epochs", "EpochFn", "refuse_objective_early_stop"),
    "harness.augment": ("refuse_augment", "epoch_augmenter"),
    "harness.gradients": ("input_gradient", "fgsm_step", "pgd_examples"),
    "harness.seeds": ("derive_seed",),
    "harness.evaluation": ("predict", "QueryCounter"),
    "harness.art_bridge": (
        "art_classifier", "feature_classifier", "FeatureTap", "FEATURE_LAYER",
        "SoftCrossEntropy", "penultimate_features", "predicted_labels", "to_numpy",
        "to_tensor", "one_hot", "numpy_seed", "seeded", "frozen",
    ),
    "harness.art_declarations": ("ArtEvasion",),
    "harness.figures": ("Figure",),
    "harness.adversarial": ("decode_examples=decode",),
    "harness.outcomes": ("attack_label",),
    "harness.records": ("Result", "ResultSet"),
    "harness.registry": ("Registry",),
    "harness.plugins": ("load_registry",),
    "harness.testing": (
        "check_dataset_spec", "check_model_spec", "check_attack_spec", "check_defense_spec",
        "tiny_image_data", "tiny_classifier", "trained_tiny_classifier", "tiny_context",
        "corner_backdoor", "reaching_bounds",
    ),
    "harness.cli": ("main",),
    # Your model, as it is: the Python door and supplied models (harness/python_api.py).
    "harness.python_api": ("evaluate", "Evaluation", "EvaluationError", "DEFAULT_STORE"),
    "harness.supplied": ("ModelContractError", "PICKLE_ADVICE", "SUPPLIED_OPTIONS"),
}

# public name -> (module, attribute)
_WHERE: dict[str, tuple[str, str]] = {
    public: (module, attribute or public)
    for module, names in _PUBLIC.items()
    for public, _, attribute in (name.partition("=") for name in names)
}

__all__ = ["DISTRIBUTION", "__version__", *_WHERE]

if TYPE_CHECKING:
    # The same names, for type checkers (the lazy loading below is invisible to them).
    from harness import roles
    from harness.adversarial import decode as decode_examples
    from harness.art_bridge import (
        FEATURE_LAYER,
        FeatureTap,
        SoftCrossEntropy,
        art_classifier,
        feature_classifier,
        frozen,
        numpy_seed,
        one_hot,
        penultimate_features,
        predicted_labels,
        seeded,
        to_numpy,
        to_tensor,
    )
    from harness.art_declarations import ArtEvasion
    from harness.augment import epoch_augmenter, refuse_augment
    from harness.cli import main
    from harness.context import AttackContext, PoisonedSet
    from harness.data import (
        DataOptions,
        ImageData,
        ModelInput,
        to_float,
        uint8_to_float,
        uint8_to_nchw,
    )
    from harness.errors import (
        DatasetNotFoundError,
        HarnessError,
        InvalidAttackOutput,
        OptionsNotResolvedError,
        PluginError,
        UndeclaredOptionsWarning,
        UsageError,
    )
    from harness.evaluation import QueryCounter, predict
    from harness.figures import Figure
    from harness.gradients import fgsm_step, input_gradient, pgd_examples
    from harness.hookspecs import hookimpl
    from harness.metrics import MetricSpec
    from harness.models import Standardize
    from harness.options import (
        Option,
        OptionSchema,
        ResolvedOptions,
        from_defaults,
        options,
        resolve_options,
    )
    from harness.outcomes import attack_label
    from harness.plugins import load_registry
    from harness.python_api import DEFAULT_STORE, Evaluation, EvaluationError, evaluate
    from harness.records import Result, ResultSet
    from harness.registry import Registry
    from harness.roles import (
        ATTACK_ROLES,
        BASELINE,
        BLACK_BOX,
        DEFENSE_ROLES,
        ENSEMBLE,
        ITERATIVE,
        REFERENCE,
        SINGLE_STEP,
        SINGLE_STEP_TRAINING,
    )
    from harness.seeds import derive_seed
    from harness.settings import TrainSettings
    from harness.specs import (
        ATTACK_CATEGORIES,
        DEFENSE_STAGES,
        EOT_SAMPLES,
        MODEL_FEATURES,
        NORMS,
        THREAT_MODELS,
        TORCH_MODEL_OFFERS,
        UNDECLARED,
        Attack,
        AttackSpec,
        DatasetSpec,
        DefenseSpec,
        InputTransformation,
        ModelAttack,
        ModelSpec,
        PluginInfo,
        PoisonDetector,
        PoisoningAttack,
        ReportSpec,
        TrainingDefense,
    )
    from harness.supplied import PICKLE_ADVICE, SUPPLIED_OPTIONS, ModelContractError
    from harness.testing import (
        check_attack_spec,
        check_dataset_spec,
        check_defense_spec,
        check_model_spec,
        corner_backdoor,
        reaching_bounds,
        tiny_classifier,
        tiny_context,
        tiny_image_data,
        trained_tiny_classifier,
    )
    from harness.training import (
        EpochFn,
        TrainContext,
        TrainData,
        TrainReport,
        fit_epochs,
        refuse_objective_early_stop,
        train_supervised,
    )
else:
    def __getattr__(name: str) -> Any:
        """The public ``name``, imported from its module on first use (PEP 562)."""
        try:
            module, attribute = _WHERE[name]
        except KeyError:
            raise AttributeError(f"module 'harness' has no attribute {name!r}") from None
        try:
            loaded = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:   # the module is there; something it imports is not
                raise
            raise AttributeError(f"harness.{name} comes from {module}, which this "
                                 f"installation of harness does not have") from exc
        value = loaded if module == f"harness.{name}" else getattr(loaded, attribute)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    """The module's own names and every public name, loaded or not."""
    return sorted(set(globals()) | set(__all__))
