"""Declared metrics: what a number is called, how it is shown, and which way is better.

The evaluators declare the metrics they compute (:data:`EVASION_METRICS`, :data:`CORE_METRICS`,
the timings in :data:`TIMING_METRICS`; all of them in :data:`HARNESS_METRICS`, through which
every renderer formats the harness's numbers); an attack or defense
declares its own in its spec (``metrics=(MetricSpec(...), ...)``), so any plugin's metric
renders in the leaderboard and the terminal without a core edit (lm-evaluation-harness's
``MetricSpec`` is the model). A metric nobody declared is shown under its own name.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from harness.contracts.intervals import half_width, wilson

MetricFormat = Literal["percent", "number", "count", "rate"]


@dataclass(frozen=True, kw_only=True)
class MetricSpec:
    """One metric: ``name`` in the records, ``label`` as a column header, ``format``
    (percent: a fraction shown as 12.34%; number: ``digits`` decimals; count: an integer;
    rate: per-second throughput), and whether higher is better (None: neither)."""

    name: str
    label: str
    format: MetricFormat = "number"
    digits: int = 4
    higher_is_better: bool | None = None
    description: str = ""

    def render(self, value: object, n: int | None = None) -> str:
        """The value as the leaderboard shows it ('' when missing or NaN); a percent measured
        on ``n`` images with half its 95% interval (``87.60% ±2.0``, see
        :mod:`harness.contracts.intervals`)."""
        if value is None or isinstance(value, bool) or not isinstance(value, int | float):
            return "" if value is None else str(value)
        if math.isnan(value):
            return ""
        if self.format == "percent":
            shown = percent_text(value)
            return shown if not n else f"{shown} ±{100 * half_width(value, n):.1f}"
        if self.format == "count":
            return str(int(value))
        if self.format == "rate":
            return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"
        return f"{value:.{self.digits}f}"

    def short(self, value: float | None, n: int | None = None) -> str:
        """The value for a narrow terminal column: a percent in points with one decimal and
        half its 95% interval on ``n`` images, ``87.6±2.0``; anything else as
        :meth:`render` shows it."""
        if self.format != "percent" or value is None or math.isnan(value):
            return self.render(value)
        shown = f"{100 * value:.1f}"
        return shown if not n else f"{shown}±{100 * half_width(value, n):.1f}"

    def plain(self, value: float | None) -> str | None:
        """The value as a data file writes it (None when missing or NaN): a percent as its
        digits without the sign, RobustBench's ``"98.50"``; anything else as :meth:`render`
        shows it."""
        if self.format == "percent":
            return percent_digits(value)
        shown = self.render(value)
        return shown or None

    def interval(self, value: float | None, n: int | None) -> list[str] | None:
        """A percent's 95% Wilson interval on ``n`` images as :meth:`plain` writes its ends,
        ``["85.41", "89.50"]`` (None when the value or n is missing, or not a percent)."""
        if self.format != "percent" or value is None or math.isnan(value) or not n:
            return None
        low, high = wilson(value, n)
        return [percent_digits(low) or "", percent_digits(high) or ""]


def percent_digits(value: float | None) -> str | None:
    """A fraction as a percentage with two decimals, ``0.985`` -> ``'98.50'`` (None when
    missing or NaN): the one place every percentage the harness shows is formatted (pages,
    terminal summary, checks, claims, which write RobustBench's strings without the sign)."""
    if value is None or math.isnan(value):
        return None
    return f"{100 * value:.2f}"


def percent_text(value: float | None) -> str:
    """``0.985`` -> ``'98.50%'`` ('' when missing or NaN)."""
    digits = percent_digits(value)
    return "" if digits is None else f"{digits}%"


def _m(name: str, label: str, fmt: MetricFormat = "number", digits: int = 4,
       better: bool | None = None) -> MetricSpec:
    return MetricSpec(name=name, label=label, format=fmt, digits=digits, higher_is_better=better)


def _d(name: str, label: str, fmt: MetricFormat = "number", digits: int = 4,
       better: bool | None = None, description: str = "") -> MetricSpec:
    return MetricSpec(name=name, label=label, format=fmt, digits=digits,
                      higher_is_better=better, description=description)


# What the evasion evaluator measures on every cell, in the order of its table's columns.
EVASION_METRICS: tuple[MetricSpec, ...] = (
    _m("clean_acc", "clean acc", "percent", better=True),
    _m("robust_acc", "robust acc", "percent", better=True),
    _m("attack_success_rate", "attack success", "percent", better=False),
    _m("mean_linf", "mean Linf"),
    _m("mean_l2", "mean L2"),
    _m("median_l0", "median L0 (successful)", digits=1),
    _m("median_l2", "median L2 (successful)"),
    _m("median_linf", "median Linf (successful)"),
    _m("queries_per_image", "queries/img", digits=1),
    _m("n_test", "n test", "count"),
)
# What the other evaluators compute; plugin metrics follow these in the tables.
CORE_METRICS: tuple[MetricSpec, ...] = (
    _m("poison_rate", "poison rate", "percent"),
    _m("n_poison", "poisons", digits=0),
    _m("clean_model_acc", "clean acc, unpoisoned", "percent", better=True),
    _m("clean_acc", "clean acc", "percent", better=True),
    _m("attack_success_rate", "attack success", "percent", better=False),
    _m("precision", "detection precision", "percent", better=True),
    _m("recall", "detection recall", "percent", better=True),
    _m("f1", "detection F1", digits=3, better=True),
    _m("flagged", "flagged", digits=0),
    _m("clean_acc_after", "clean acc after removal", "percent", better=True),
    _m("attack_success_after", "attack success after removal", "percent", better=False),
)
#: The L2 radii at which every certification cell reports certified accuracy, up to the
#: largest radius its sample size can certify (:meth:`Certifier.max_radius`): Cohen et al.'s
#: radii for MNIST-sized data (0.25-2.0), CIFAR-10 (0.25-1.0) and ImageNet (0.5-3.0).
CERTIFIED_RADII: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0)


def certified_metric(radius: float) -> str:
    """The record's name of the certified accuracy at ``radius``: ``certified_acc@0.5``."""
    return f"certified_acc@{radius:g}"


def empirical_metric(radius: float) -> str:
    """The record's name of the smoothed classifier's accuracy under an L2 attack of size
    ``radius``: ``empirical_acc@0.5``."""
    return f"empirical_acc@{radius:g}"


#: What the certification evaluator measures on every cell, in its table's order.
CERTIFICATION_METRICS: tuple[MetricSpec, ...] = (
    _d("clean_acc", "clean acc", "percent", better=True,
       description="the base model's accuracy on the same images, without noise"),
    _d("smoothed_acc", "smoothed acc", "percent", better=True,
       description="images the smoothed classifier certifies with the true class, at any "
                   "radius (its clean accuracy; abstentions count as wrong)"),
    *(spec for r in CERTIFIED_RADII for spec in (
        _d(certified_metric(r), f"certified acc r={r:g}", "percent", better=True),
        _d(empirical_metric(r), f"under attack eps={r:g}", "percent", better=True,
           description="the smoothed classifier's accuracy (PREDICT) on L2 PGD examples of "
                       "size r crafted through its noise, on the first empirical n images"))),
    _d("abstain_rate", "abstain", "percent"),
    _d("radius_cap", "radius cap", digits=2,
       description="the largest radius the certifier's sample size and alpha can certify "
                   "(all its noise draws agreeing)"),
    _d("median_radius", "median radius (certified)", digits=3),
    _d("empirical_n", "empirical n", "count"),
    _d("certificates_checked", "certificates attacked", "count"),
    _d("certificates_broken", "broken", "count", better=False),
    _d("n_test", "n test", "count"),
)
#: What the corruption evaluator measures on every cell (the suites declare one metric per
#: corruption, its accuracy averaged over severities); ``mce`` is derived on the pages.
CORRUPTION_METRICS: tuple[MetricSpec, ...] = (
    _d("clean_acc", "clean acc", "percent", better=True),
    _d("mean_corruption_acc", "mean corruption acc", "percent", better=True,
       description="accuracy averaged over every corruption and severity"),
    _d("mce", "corruption error vs undefended", "percent", better=False,
       description="mCE with the undefended model of the same dataset and model as the "
                   "reference: below 100% when the defense errs less under corruption"),
    _d("n_test", "n test", "count"),
)
# A record's timings (``Result.timings``): incidental, of the run that made it.
TIMING_METRICS: tuple[MetricSpec, ...] = (
    _m("train_seconds", "train s", digits=1),
    _m("train_images_per_s", "train img/s", "rate"),
    _m("attack_seconds", "seconds", digits=1),
    _m("attack_images_per_s", "attack img/s", "rate"),
    _m("seconds_per_image", "s/img", digits=3),
    _m("empirical_seconds", "attack s", digits=1),
)
# Shown last in every non-evasion table.
TRAILING_METRICS: tuple[MetricSpec, ...] = (
    _m("n_test", "n test", "count"),
    _m("attack_seconds", "seconds", digits=1),
)


def metric_table(*groups: Iterable[MetricSpec]) -> dict[str, MetricSpec]:
    """Name -> spec over ``groups`` in order; the first declaration of a name wins."""
    out: dict[str, MetricSpec] = {}
    for group in groups:
        for spec in group:
            out.setdefault(spec.name, spec)
    return out


#: Every metric the harness itself computes, by name: the renderers format through these.
HARNESS_METRICS: dict[str, MetricSpec] = metric_table(EVASION_METRICS, CORE_METRICS,
                                                      CERTIFICATION_METRICS,
                                                      CORRUPTION_METRICS, TIMING_METRICS)


def render_metric(name: str, value: object, n: int | None = None) -> str:
    """``value`` as the harness's metric ``name`` shows it (:data:`HARNESS_METRICS`); a
    percent measured on ``n`` images with half its 95% interval."""
    return HARNESS_METRICS[name].render(value, n)


def plugin_metrics(owner: str, values: Mapping[str, object]) -> dict[str, float]:
    """``values``, a plugin's own metrics, as floats (NaN stands for "not defined here" and
    is shown empty); a :class:`TypeError` naming ``owner`` (e.g. "attack pgd") and the
    offending entries when a name is not a string or a value not a number."""
    bad = {k: v for k, v in values.items()
           if not isinstance(k, str) or isinstance(v, bool) or not isinstance(v, int | float)}
    if bad:
        raise TypeError(f"{owner} returned non-numeric metrics {bad}")
    return {k: float(v) for k, v in values.items()}  # type: ignore[arg-type]
