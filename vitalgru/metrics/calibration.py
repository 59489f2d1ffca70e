"""Calibration of risks: does a risk of 0.3 come true three times in ten?

A clinician reads a displayed risk as a probability; a ranking measure (AUROC) says nothing
about that. These are the measures clinical prediction-model reporting asks for (TRIPOD,
Collins et al. 2015; Van Calster et al., BMC Med 2019, "Calibration: the Achilles heel of
predictive analytics"):

* the **Brier score**, the mean squared difference between risk and outcome;
* the **reliability table**: risks in bins of equal count, each bin's mean risk beside the
  share of outcomes in it; and its summary, the **expected calibration error** (the
  count-weighted mean absolute gap; Naeini et al., AAAI 2015);
* **calibration in the large** (the intercept of a logistic regression of the outcome on
  the logit of the risk with its slope fixed at 1: negative when risks are too high) and
  the **calibration slope** (the slope when both are fitted: below 1 when risks are too
  extreme, as from an overfitted model).

Plain numpy; risks are clipped to [1e-6, 1 - 1e-6] before taking logits.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "CALIBRATION_KEYS",
    "brier_score",
    "calibration_metrics",
    "calibration_table",
    "expected_calibration_error",
    "fit_recalibration",
    "logistic_calibration",
    "model_probability",
    "recalibrate",
]

_EPS = 1e-6
#: The keys of :func:`calibration_metrics`.
CALIBRATION_KEYS = (
    "brier", "ece", "calibration_in_the_large", "calibration_slope", "mean_risk", "event_rate",
)  # fmt: skip


def _inputs(y: Any, p: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=np.float64).ravel()
    p = np.asarray(p, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"outcomes and risks differ in length: {y.size} and {p.size}")
    if y.size and not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("outcomes must be 0 or 1")
    if y.size and not (np.isfinite(p).all() and p.min() >= 0 and p.max() <= 1):
        raise ValueError("risks must be finite numbers in [0, 1]")
    return y, p


def brier_score(y: Any, p: Any) -> float:
    """Mean of ``(p - y) ** 2`` (0 is perfect; NaN without rows)."""
    y, p = _inputs(y, p)
    return float(np.mean((p - y) ** 2)) if y.size else float("nan")


def calibration_table(y: Any, p: Any, n_bins: int = 10) -> list[dict[str, float]]:
    """Risks in ``n_bins`` bins of (nearly) equal count, in order of risk.

    Returns
    -------
    list of dict
        ``{"n", "risk_min", "risk_max", "mean_risk", "observed"}`` per bin (observed: the
        share of outcomes). Ties are kept in one bin, so there may be fewer bins.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    y, p = _inputs(y, p)
    if not y.size:
        return []
    order = np.argsort(p, kind="stable")
    ps, ys = p[order], y[order]
    # bin edges at equal counts, each moved to the nearer end of the run of equal risks it
    # falls in, so that equal risks never straddle two bins; to the far end where the near
    # one is the first or last row (moved only to the start, a cut in a run that began the
    # table was dropped, and the next, different risks were merged into that run's bin)
    at = (np.arange(1, n_bins) * ps.size) // n_bins
    lo = np.searchsorted(ps, ps[at], side="left")
    hi = np.searchsorted(ps, ps[at], side="right")
    near_lo = ((at - lo) <= (hi - at)) & (lo > 0) | (hi >= ps.size)
    cuts = np.unique(np.where(near_lo, lo, hi))
    bounds = [0, *[int(c) for c in cuts if 0 < c < ps.size], ps.size]
    return [
        {
            "n": int(b - a),
            "risk_min": float(ps[a]),
            "risk_max": float(ps[b - 1]),
            "mean_risk": float(ps[a:b].mean()),
            "observed": float(ys[a:b].mean()),
        }
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
        if b > a
    ]


def expected_calibration_error(y: Any, p: Any, n_bins: int = 10) -> float:
    """Count-weighted mean of ``|mean_risk - observed|`` over :func:`calibration_table`'s
    bins (NaN without rows)."""
    table = calibration_table(y, p, n_bins)
    n = sum(b["n"] for b in table)
    if not n:
        return float("nan")
    return float(sum(b["n"] * abs(b["mean_risk"] - b["observed"]) for b in table) / n)


def _log_likelihood(y: np.ndarray, eta: np.ndarray) -> float:
    # log sigmoid(eta) for y = 1 and log sigmoid(-eta) for y = 0, without overflow
    return float(-(y * np.logaddexp(0.0, -eta) + (1 - y) * np.logaddexp(0.0, eta)).sum())


def _newton(y: np.ndarray, z: np.ndarray, fit_slope: bool, iters: int = 100) -> np.ndarray:
    """Maximum-likelihood ``(a, b)`` of ``P(y) = sigmoid(a + b z)`` (b fixed at 1 unless
    ``fit_slope``), by Newton's method with step halving (each step raises the
    likelihood)."""
    theta = np.array([0.0, 1.0])
    ll = _log_likelihood(y, theta[0] + theta[1] * z)
    for _ in range(iters):
        eta = theta[0] + theta[1] * z
        mu = np.exp(-np.logaddexp(0.0, -eta))  # sigmoid(eta)
        w = mu * (1.0 - mu)
        r = y - mu
        if fit_slope:
            g = np.array([r.sum(), (r * z).sum()])
            h = np.array([[w.sum(), (w * z).sum()], [(w * z).sum(), (w * z * z).sum()]])
            step = np.linalg.solve(h + 1e-9 * np.eye(2), g)
        else:
            step = np.array([r.sum() / max(w.sum(), 1e-12), 0.0])
        for _ in range(40):
            new = theta + step
            new_ll = _log_likelihood(y, new[0] + new[1] * z)
            if new_ll >= ll:
                break
            step = step / 2
        else:
            break  # no step raises the likelihood: at the maximum
        theta, ll = new, new_ll
        if np.abs(step).max() < 1e-9:
            break
    return theta


def _separated(y: np.ndarray, z: np.ndarray) -> bool:
    """Whether the risks ``z`` split the outcomes completely (every outcome above, or below,
    every non-outcome, ties at the border included): the logistic slope then has no
    maximum-likelihood value; it grows for as long as the fit runs."""
    hi, lo = z[y == 1], z[y == 0]
    return bool(lo.max() <= hi.min() or hi.max() <= lo.min())


def logistic_calibration(y: Any, p: Any) -> dict[str, float]:
    """``{"calibration_in_the_large", "calibration_slope"}`` (0 and 1 when calibrated;
    NaN when the rows hold only one outcome; the slope NaN when every risk is the same, or
    the risks split the outcomes completely, where it cannot be estimated: a small group's
    slope was wherever the fit stopped, 41 or 83)."""
    y, p = _inputs(y, p)
    if not y.size or y.min() == y.max():
        return {"calibration_in_the_large": float("nan"), "calibration_slope": float("nan")}
    z = np.log(np.clip(p, _EPS, 1 - _EPS) / (1 - np.clip(p, _EPS, 1 - _EPS)))
    # one risk for all: the ridge alone would pick a slope (2.5 for a risk of 0.3)
    no_slope = z.max() == z.min() or _separated(y, z)
    return {
        "calibration_in_the_large": float(_newton(y, z, fit_slope=False)[0]),
        "calibration_slope": float("nan") if no_slope else float(_newton(y, z, fit_slope=True)[1]),
    }


def fit_recalibration(y: Any, p: Any) -> dict[str, float]:
    """Logistic recalibration ``sigmoid(intercept + slope * logit(p))`` fitted to outcomes
    ``y`` (Platt scaling of the risk's logit; Cox 1958): ``{"intercept", "slope", "n"}``.
    It keeps the order of the risks, so AUROC, the alarms at a threshold mapped with it
    and the utility are unchanged: where the fitted slope is not positive (risks that rank
    the outcomes backwards), only the intercept is fitted, with a warning. ValueError when
    ``y`` holds a single outcome."""
    y, p = _inputs(y, p)
    if not y.size or y.min() == y.max():
        raise ValueError("recalibration needs both outcomes among the rows")
    z = np.log(np.clip(p, _EPS, 1 - _EPS) / (1 - np.clip(p, _EPS, 1 - _EPS)))
    if z.max() == z.min():  # one risk for every row: no slope to fit, nothing backwards
        a, b = _newton(y, z, fit_slope=False)
        return {"intercept": float(a), "slope": float(b), "n": int(y.size)}
    if _separated(y, z):  # no slope to estimate: it grows with the fit (probabilities of 1)
        logger.warning(
            "recalibration: the risks split the %d outcomes from the other rows completely, "
            "so no slope can be estimated; only the intercept is fitted (slope 1)",
            int(y.sum()),
        )
        a, b = _newton(y, z, fit_slope=False)
        return {"intercept": float(a), "slope": float(b), "n": int(y.size)}
    a, b = _newton(y, z, fit_slope=True)
    if not b > 0:  # the risks rank the outcomes backwards (or not at all) on these rows
        logger.warning(
            "recalibration: the fitted slope is %.3f; a map that reversed the order of the "
            "risks would change the alarms, so only the intercept is fitted (slope 1)",
            b,
        )
        a, b = _newton(y, z, fit_slope=False)
    return {"intercept": float(a), "slope": float(b), "n": int(y.size)}


def recalibrate(p: Any, recalibration: dict[str, float]) -> np.ndarray:
    """Risks ``p`` mapped by a :func:`fit_recalibration` result, each in its own place: the
    logit is taken unclipped (0 and 1 map to 0 and 1), so distinct risks stay distinct and
    in order (clipped at 1e-6, the smallest risks all became one probability)."""
    q = np.asarray(p, dtype=np.float64)
    with np.errstate(divide="ignore"):
        z = np.log(q) - np.log1p(-q)
    eta = float(recalibration["intercept"]) + float(recalibration["slope"]) * z
    return np.exp(-np.logaddexp(0.0, -eta))


def model_probability(preprocessing: Mapping[str, Any], risk: Any) -> np.ndarray | None:
    """The probability that an hour is labelled septic (SepsisLabel: from 6 h before
    onset), from a sepsis model's risk through the recalibration stored with it
    (``preprocessing["recalibration"]``); None for a model stored without one. The risk
    ranks hours and decides alarms; the probability is what a clinician may read as one."""
    recal = preprocessing.get("recalibration")
    return None if recal is None else recalibrate(risk, recal)


def calibration_metrics(y: Any, p: Any, n_bins: int = 10) -> dict[str, float]:
    """``brier``, ``ece``, ``calibration_in_the_large``, ``calibration_slope``,
    ``mean_risk`` and ``event_rate`` of risks ``p`` for outcomes ``y``."""
    y, p = _inputs(y, p)
    return {
        "brier": brier_score(y, p),
        "ece": expected_calibration_error(y, p, n_bins),
        **logistic_calibration(y, p),
        "mean_risk": float(p.mean()) if p.size else float("nan"),
        "event_rate": float(y.mean()) if y.size else float("nan"),
    }
