"""Threshold-free ranking metrics: AUROC and AUPRC (numpy only)."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def _check(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.shape != y.shape:
        raise ValueError(f"labels and scores must be 1-D of equal length, got {y.shape}, {s.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    return y.astype(bool), s


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with mid-ranks for ties).

    Parameters
    ----------
    labels : numpy.ndarray
        ``(n,)`` 0/1.
    scores : numpy.ndarray
        ``(n,)`` higher = more likely positive.

    Returns
    -------
    float
        NaN when only one class is present.
    """
    y, s = _check(labels, scores)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def auprc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the precision-recall curve as average precision.

    ``AP = sum_k (R_k - R_{k-1}) P_k`` over distinct thresholds (no interpolation; the
    definition scikit-learn's ``average_precision_score`` uses). NaN without positives.
    """
    y, s = _check(labels, scores)
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-s, kind="stable")
    ys = y[order]
    ss = s[order]
    tp = np.cumsum(ys)
    k = np.arange(1, ys.size + 1)
    last = np.flatnonzero(np.r_[ss[1:] != ss[:-1], True])
    tp_t = tp[last]
    precision = tp_t / k[last]
    recall = tp_t / n_pos
    d_recall = np.diff(np.r_[0.0, recall])
    return float((d_recall * precision).sum())
