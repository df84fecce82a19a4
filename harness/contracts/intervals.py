"""95% confidence intervals of accuracies measured on n images (Wilson score intervals).

An accuracy of 87.60% on 1,000 test images is an estimate: its 95% Wilson interval is
[85.4%, 89.5%], so a 0.9-point gap to another model's number is not a difference. Wilson's
interval (Wilson 1927; recommended over the normal approximation by Brown, Cai and DasGupta
2001) stays inside [0, 1] and is not degenerate at 0% or 100%, where robust accuracies often
sit. The pages show half its width (``±2.0`` points); the results file and the claims carry
both ends. Pure Python: pages built from results files stay cheap.
"""

from __future__ import annotations

import math

#: The standard normal quantile of 97.5%: a two-sided 95% interval.
Z_95 = 1.959963984540054


def wilson(accuracy: float, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of ``accuracy`` (a fraction) measured on ``n`` images."""
    if n <= 0 or math.isnan(accuracy):
        return (math.nan, math.nan)
    p = min(max(accuracy, 0.0), 1.0)
    z2 = z * z
    center = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    low = 0.0 if p == 0.0 else max(0.0, center - half)
    high = 1.0 if p == 1.0 else min(1.0, center + half)
    return (low, high)


def half_width(accuracy: float, n: int) -> float:
    """Half the width of the 95% Wilson interval, as a fraction."""
    low, high = wilson(accuracy, n)
    return (high - low) / 2


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether two intervals share a point (then their numbers are not ordered)."""
    return a[0] <= b[1] and b[0] <= a[1]
