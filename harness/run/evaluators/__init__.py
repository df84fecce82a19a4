"""One evaluator per attack category: ``evaluate(cell, trained, data) -> Result``.

Each owns the caches its category needs (the poisoned victims shared by a poisoning attack's
cells); :mod:`harness.contracts.categories` maps a category to its evaluator.
"""

from harness.run.evaluators.base import EvalEnv, Evaluator, failed_result, ok_result

__all__ = ["EvalEnv", "Evaluator", "failed_result", "ok_result"]
