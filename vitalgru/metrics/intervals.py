"""Confidence intervals for the proportions the reports give (sensitivity, positive
predictivity), so a figure measured on 7 beats is not read like one measured on 7,000."""

from __future__ import annotations

import math

__all__ = ["Z_95", "wilson_interval"]

#: The standard normal quantile of a two-sided 95 % interval.
Z_95 = 1.959963984540054


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float] | None:
    """Wilson score interval of a binomial proportion (Wilson, "Probable inference, the law
    of succession, and statistical inference", JASA 1927), which Brown, Cai and DasGupta
    (Statistical Science 2001) recommend over the normal ("Wald") interval: it stays inside
    [0, 1] and keeps its coverage near 0 and 1 and for small ``trials``.

    Parameters
    ----------
    successes, trials : int
        ``0 <= successes <= trials``.
    z : float
        Normal quantile (:data:`Z_95` for 95 %).

    Returns
    -------
    (low, high) or None
        None when ``trials`` is 0 (no proportion to bound).

    Raises
    ------
    ValueError
        Negative counts, ``successes > trials``, or ``z <= 0``.
    """
    k, n = int(successes), int(trials)
    if k < 0 or n < 0 or k > n:
        raise ValueError(f"need 0 <= successes <= trials, got {successes} of {trials}")
    if not z > 0:
        raise ValueError(f"z must be positive, got {z}")
    if n == 0:
        return None
    p = k / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    # exact ends where the count is 0 or all (the formula leaves rounding noise there)
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return low, high
