"""One evaluator per attack category: ``evaluate(cell, trained, data) -> Measured``;
the worker assembles the record around it (:func:`~harness.run.evaluators.base.cell_record`).

Each owns the caches its category needs (the poisoned victims shared by a poisoning attack's
cells). :data:`EVALUATORS` maps every category of :data:`harness.contracts.categories.CATEGORIES`
to its evaluator class (a test keeps the two tables in step).
"""

from __future__ import annotations

from harness.contracts.categories import Category
from harness.run.evaluators.base import EvalEnv, Evaluator, Measured, cell_record
from harness.run.evaluators.certification import CertificationEvaluator
from harness.run.evaluators.corruption import CorruptionEvaluator
from harness.run.evaluators.evasion import EvasionEvaluator
from harness.run.evaluators.model_attack import ModelAttackEvaluator
from harness.run.evaluators.poisoning import PoisoningEvaluator

#: The evaluator class of each attack category, by name.
EVALUATORS: dict[str, type[Evaluator]] = {
    "evasion": EvasionEvaluator,
    "poisoning": PoisoningEvaluator,
    "inference": ModelAttackEvaluator,
    "extraction": ModelAttackEvaluator,
    "certification": CertificationEvaluator,
    "corruption": CorruptionEvaluator,
}

__all__ = ["EVALUATORS", "EvalEnv", "Evaluator", "Measured", "cell_record", "evaluator_for"]


def evaluator_for(category: Category) -> type[Evaluator]:
    """The evaluator class of ``category``."""
    return EVALUATORS[category.name]
