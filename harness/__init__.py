# The names imported for type checkers below are the exports, listed in __all__.
# ruff: noqa: F401
"""harness: a pluggable benchmark of the adversarial robustness of image classifiers.

This module is the front door: everything a user or a plugin author may touch is importable
from ``harness`` itself (``from harness import AttackSpec, Option, hookimpl``), and what it
exports is what the version number promises (semantic versioning: a name here changes or
goes away only in a new major version, or a new minor one before 1.0, with a line in the
changelog). Every other module of the package (its wings: ``harness.contracts``,
``harness.planning``, ``harness.run``, ...) is private by convention: it can move or change in
any release. 0.1's module paths (``harness.specs``, ...) still import, with a
DeprecationWarning, until 0.3.0.

Importing ``harness`` is cheap: each name is imported from its module the first time it is
used (PEP 562), so ``from harness import hookimpl, AttackSpec`` at the top of a plugin module
imports no torch; ``from harness import input_gradient`` does, so take such names inside the
functions that need them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from harness.util import legacy as _legacy
from harness.util.version import DISTRIBUTION, __version__

_legacy.install()     # 0.1's module paths, with a DeprecationWarning, until 0.3.0

# The public names by the module that defines them (lazily imported). A name that is a module
# of its own (``harness.contracts.roles``) maps to itself; an exported alias is
# ``"public=attribute"``.
_PUBLIC: dict[str, tuple[str, ...]] = {
    "harness.contracts.specs": (
        "DatasetSpec", "ModelSpec", "AttackSpec", "DefenseSpec", "ReportSpec", "PluginInfo",
        "Attack", "PoisoningAttack", "ModelAttack", "TrainingDefense", "InputTransformation",
        "PoisonDetector", "AttackObject", "DefenseObject", "MODEL_FEATURES", "TORCH_MODEL_OFFERS",
        "UNDECLARED", "EOT_SAMPLES", "NORMS", "THREAT_MODELS", "ATTACK_CATEGORIES",
        "DEFENSE_STAGES", "Norm", "ThreatModel", "AttackCategory", "DefenseStage",
    ),
    "harness.contracts.hookspecs": ("hookimpl",),
    "harness.contracts.options": ("Option", "OptionSchema", "ResolvedOptions", "options",
                                  "count", "positive", "fraction"),
    "harness.contracts.metrics": ("MetricSpec", "CERTIFIED_RADII"),
    "harness.contracts.certification": ("Certificates", "Certifier"),
    "harness.contracts.corruption": ("Corruptions", "corruption_metric", "corruption_label"),
    "harness.contracts.roles": (
        "roles", "SINGLE_STEP", "ITERATIVE", "ENSEMBLE", "BLACK_BOX", "REFERENCE", "BASELINE",
        "SINGLE_STEP_TRAINING", "ATTACK_ROLES", "DEFENSE_ROLES",
    ),
    "harness.util.errors": ("HarnessError", "UsageError", "PluginError", "DatasetNotFoundError",
                       "InvalidAttackOutput", "OptionsNotResolvedError",
                       "UndeclaredOptionsWarning"),
    "harness.contracts.data": ("DataOptions", "ImageData", "ModelInput", "to_float",
                               "uint8_to_float",
                     "uint8_to_nchw"),
    "harness.contracts.models": ("Standardize",),
    "harness.contracts.context": ("AttackContext", "PoisonedSet"),
    "harness.contracts.settings": ("TrainSettings",),
    "harness.train.loop": ("TrainContext", "TrainData", "TrainReport", "train_supervised",
                         "fit_epochs", "EpochFn", "refuse_objective_early_stop"),
    "harness.train.augment": ("refuse_augment", "epoch_augmenter"),
    "harness.train.gradients": ("gradients", "input_gradient", "fgsm_step", "pgd_examples"),
    "harness.util.seeds": ("derive_seed",),
    "harness.run.evaluators.scoring": ("predict", "QueryCounter"),
    "harness.art.bridge": (
        "art_classifier", "feature_classifier", "FeatureTap", "FEATURE_LAYER",
        "SoftCrossEntropy", "penultimate_features", "predicted_labels", "to_numpy",
        "to_tensor", "one_hot", "numpy_seed", "seeded", "frozen",
    ),
    "harness.art.declarations": ("ArtEvasion",),
    "harness.contracts.figures": ("Figure",),
    "harness.run.adversarial": ("decode_examples=decode",),
    "harness.contracts.outcomes": ("attack_label",),
    "harness.contracts.records": ("Result", "ResultSet"),
    "harness.planning.registry": ("Registry",),
    "harness.planning.loading": ("load_registry",),
    "harness.testing": (
        "check_dataset_spec", "check_model_spec", "check_attack_spec", "check_defense_spec",
        "tiny_image_data", "tiny_classifier", "trained_tiny_classifier", "tiny_context",
        "corner_backdoor", "reaching_bounds",
    ),
    "harness.cli": ("main",),
    # Your model, as it is: the Python door and supplied models (harness/python_api.py).
    "harness.python_api": ("evaluate", "Evaluation", "EvaluationError", "DEFAULT_STORE"),
    "harness.planning.supplied": ("ModelContractError", "PICKLE_ADVICE", "SUPPLIED_OPTIONS"),
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
    from harness.art.bridge import (
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
    from harness.art.declarations import ArtEvasion
    from harness.cli import main
    from harness.contracts import roles
    from harness.contracts.certification import Certificates, Certifier
    from harness.contracts.context import AttackContext, PoisonedSet
    from harness.contracts.corruption import Corruptions, corruption_label, corruption_metric
    from harness.contracts.data import (
        DataOptions,
        ImageData,
        ModelInput,
        to_float,
        uint8_to_float,
        uint8_to_nchw,
    )
    from harness.contracts.figures import Figure
    from harness.contracts.hookspecs import hookimpl
    from harness.contracts.metrics import CERTIFIED_RADII, MetricSpec
    from harness.contracts.models import Standardize
    from harness.contracts.options import (
        Option,
        OptionSchema,
        ResolvedOptions,
        count,
        fraction,
        options,
        positive,
    )
    from harness.contracts.outcomes import attack_label
    from harness.contracts.records import Result, ResultSet
    from harness.contracts.roles import (
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
    from harness.contracts.settings import TrainSettings
    from harness.contracts.specs import (
        ATTACK_CATEGORIES,
        DEFENSE_STAGES,
        EOT_SAMPLES,
        MODEL_FEATURES,
        NORMS,
        THREAT_MODELS,
        TORCH_MODEL_OFFERS,
        UNDECLARED,
        Attack,
        AttackCategory,
        AttackObject,
        AttackSpec,
        DatasetSpec,
        DefenseObject,
        DefenseSpec,
        DefenseStage,
        InputTransformation,
        ModelAttack,
        ModelSpec,
        Norm,
        PluginInfo,
        PoisonDetector,
        PoisoningAttack,
        ReportSpec,
        ThreatModel,
        TrainingDefense,
    )
    from harness.planning.loading import load_registry
    from harness.planning.registry import Registry
    from harness.planning.supplied import PICKLE_ADVICE, SUPPLIED_OPTIONS, ModelContractError
    from harness.python_api import DEFAULT_STORE, Evaluation, EvaluationError, evaluate
    from harness.run.adversarial import decode as decode_examples
    from harness.run.evaluators.scoring import QueryCounter, predict
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
    from harness.train import gradients
    from harness.train.augment import epoch_augmenter, refuse_augment
    from harness.train.gradients import fgsm_step, input_gradient, pgd_examples
    from harness.train.loop import (
        EpochFn,
        TrainContext,
        TrainData,
        TrainReport,
        fit_epochs,
        refuse_objective_early_stop,
        train_supervised,
    )
    from harness.util.errors import (
        DatasetNotFoundError,
        HarnessError,
        InvalidAttackOutput,
        OptionsNotResolvedError,
        PluginError,
        UndeclaredOptionsWarning,
        UsageError,
    )
    from harness.util.seeds import derive_seed
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
        whole = module.endswith(f".{name}") and not hasattr(loaded, attribute)
        value = loaded if whole else getattr(loaded, attribute)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    """The module's own names and every public name, loaded or not."""
    return sorted(set(globals()) | set(__all__))
