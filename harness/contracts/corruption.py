"""The corruption category's contract: what a corruption suite returns, how its images are
checked before they are scored, the record's metric names, and the corruption error relative
to the undefended model (mCE, Hendrycks and Dietterich 2019) that the pages derive.

A suite (the built-in ``corruptions``: MNIST-C for grayscale images, the CIFAR-10-C /
ImageNet-C families for colour ones) names the corruptions it applies to images of a shape,
their severities, and corrupts a batch at a severity with randomness drawn from the generator
it is handed; the evaluator seeds that generator per (cell, corruption, severity), so a cell
gives the same corrupted images twice.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from harness.contracts.metrics import MetricSpec
from harness.util.errors import InvalidAttackOutput, quoted

if TYPE_CHECKING:
    import torch

    from harness.contracts.records import Result


def corruption_metric(name: str, severity: int | None = None) -> str:
    """The record's name of the accuracy under corruption ``name`` (mean over its severities)
    or at one ``severity``: ``corruption_acc@fog``, ``corruption_acc@fog/3``."""
    return f"corruption_acc@{name}" if severity is None else f"corruption_acc@{name}/{severity}"


def corruption_label(name: str) -> str:
    """A corruption's column header: ``gaussian_noise`` -> ``gaussian noise``."""
    return name.replace("_", " ")


def describe(metric: str) -> MetricSpec | None:
    """The spec of a record's per-corruption accuracy (``corruption_acc@fog``, averaged over
    severities) that no plugin declared, so that any suite's corruptions get their columns;
    None for other names (per-severity ones included: those stay in the JSON)."""
    prefix = "corruption_acc@"
    if not metric.startswith(prefix) or "/" in metric:
        return None
    return MetricSpec(name=metric, label=corruption_label(metric[len(prefix):]),
                      format="percent", higher_is_better=True)


@runtime_checkable
class Corruptions(Protocol):
    """What a corruption spec's factory returns."""

    def corruptions(self, image_shape: tuple[int, int, int]) -> Sequence[str]:
        """The corruptions it applies to images of ``image_shape`` (channels, height,
        width)."""
        ...

    def severities(self, name: str) -> Sequence[int]:
        """The severities of corruption ``name`` (e.g. 1 to 5)."""
        ...

    def corrupt(self, name: str, x: torch.Tensor, severity: int,
                generator: torch.Generator) -> torch.Tensor:
        """``x`` (N,C,H,W float in [0, 1]) corrupted by ``name`` at ``severity``: a new
        tensor of the same shape and dtype, in [0, 1]; every random draw from
        ``generator``."""
        ...


def check_corrupted(suite: str, name: str, severity: int, x: torch.Tensor,
                    corrupted: object) -> torch.Tensor:
    """``corrupted``, what suite ``suite`` made of the batch ``x``, checked before it is
    scored: a tensor of ``x``'s shape and dtype, finite, in [0, 1] (up to float rounding);
    :class:`InvalidAttackOutput` naming the suite, corruption and severity otherwise."""
    import torch

    who = f"corruption {quoted(name)} at severity {severity} of {quoted(suite)}"
    if not isinstance(corrupted, torch.Tensor):
        raise InvalidAttackOutput(f"{who} returned a {type(corrupted).__name__}, not a tensor")
    if corrupted.shape != x.shape or corrupted.dtype != x.dtype:
        raise InvalidAttackOutput(f"{who} returned {corrupted.dtype} {tuple(corrupted.shape)} "
                                  f"for {x.dtype} {tuple(x.shape)}")
    low, high = (float(v) for v in torch.aminmax(corrupted.detach()))
    if not (math.isfinite(low) and math.isfinite(high)) or low < -1e-6 or high > 1 + 1e-6:
        raise InvalidAttackOutput(f"{who} returned values outside [0, 1] (min {low:.6g}, "
                                  f"max {high:.6g})")
    return corrupted


def _errors(record: Result) -> dict[str, float]:
    """Corruption -> its error summed over its severities, from ``record``'s metrics."""
    out: dict[str, float] = {}
    for key, value in record.metrics.items():
        if key.startswith("corruption_acc@") and "/" in key:
            name = key[len("corruption_acc@"):].split("/")[0]
            out[name] = out.get(name, 0.0) + (1.0 - float(value))
    return out


def with_relative_error(records: Iterable[Result]) -> list[Result]:
    """``records`` with ``mce`` added to each ok corruption record that has an undefended
    counterpart (same dataset, model, corruption suite and options): the mean over
    corruptions of its error summed over severities divided by the counterpart's (Hendrycks
    and Dietterich's mCE, with the undefended model in AlexNet's place: 100% for the
    undefended model itself, below 100% when the defense errs less under corruption)."""
    records = list(records)

    def setting(r: Result) -> tuple[str, str, str, str]:
        return (r.dataset, r.model, r.attack, repr(sorted((r.config.get("attack_options")
                                                           or {}).items())))

    baseline = {setting(r): _errors(r) for r in records
                if r.ok and r.category == "corruption" and r.has_baseline_defense()}
    out = []
    for r in records:
        base = baseline.get(setting(r)) if r.ok and r.category == "corruption" else None
        errors = _errors(r) if base else {}
        ratios = [errors[c] / base[c] for c in errors if base and base.get(c)]
        if ratios and len(ratios) == len(errors):
            r = dataclasses.replace(r, metrics={**r.metrics, "mce": sum(ratios) / len(ratios)})
        out.append(r)
    return out
