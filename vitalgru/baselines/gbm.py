"""Gradient-boosted trees (scikit-learn ``HistGradientBoostingClassifier``) on engineered
hourly features: the baseline the 2019 challenge's winners set (Morrill et al. 2019)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GBMParams:
    """Tree settings (fixed number of iterations: no row-level early stopping, which
    would put hours of the same patient on both sides of a validation split)."""

    # Smaller, more regularised trees and more of them (chosen on the validation share of
    # CV folds 0 and 1: benchmarks/results/early_warning_experiments.md).
    max_iter: int = 500
    learning_rate: float = 0.03
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 300
    l2_regularization: float = 10.0
    pos_weight: float = 4.0
    # Share of label-0 hours kept for fitting (re-weighted by its inverse): the trees see
    # every septic hour and a random share of the 98 % negative ones, for speed.
    negative_subsample: float = 0.15
    # Share of the features each split may choose from (drawn anew at every node): one more
    # regulariser, and it decorrelates the trees. 0.15 was ahead of 1.0, 0.5 and 0.3 on the
    # validation shares for each of three tree seeds, 0.1 was not ahead of 0.15
    # (benchmarks/results/early_warning_experiments.md).
    max_features: float = 0.15
    # OpenMP threads of the tree code; on a shared machine busy-waiting OpenMP threads
    # slow everything down, one thread per fit is the safe default.
    n_threads: int = 1
    seed: int = 0


def fit_gbm(
    features: pd.DataFrame, labels: np.ndarray, params: GBMParams = GBMParams()
) -> HistGradientBoostingClassifier:
    """Fit the tree model on hourly rows.

    Parameters
    ----------
    features : pandas.DataFrame
        ``(n_rows, n_features)`` from :func:`vitalgru.baselines.features.engineered_features`.
    labels : numpy.ndarray
        ``(n_rows,)`` SepsisLabel 0/1.
    params : GBMParams
    """
    y = np.asarray(labels).astype(np.int8)
    if y.shape != (len(features),):
        raise ValueError(f"labels must have shape ({len(features)},), got {y.shape}")
    if np.unique(y).size < 2:
        raise ValueError("training labels contain one class only")
    clf = HistGradientBoostingClassifier(
        max_iter=params.max_iter,
        learning_rate=params.learning_rate,
        max_leaf_nodes=params.max_leaf_nodes,
        min_samples_leaf=params.min_samples_leaf,
        l2_regularization=params.l2_regularization,
        max_features=params.max_features,
        early_stopping=False,
        random_state=params.seed,
    )
    if not 0.0 < params.max_features <= 1.0:
        raise ValueError(f"max_features must be in (0, 1], got {params.max_features}")
    if not 0.0 < params.negative_subsample <= 1.0:
        raise ValueError(f"negative_subsample must be in (0, 1], got {params.negative_subsample}")
    keep = np.ones(y.size, dtype=bool)
    if params.negative_subsample < 1.0:
        rng = np.random.default_rng(params.seed)
        keep = (y == 1) | (rng.random(y.size) < params.negative_subsample)
    w = np.where(y == 1, params.pos_weight, 1.0 / params.negative_subsample)[keep]
    # Columns never observed in the rows fitted on carry nothing (and break the binner): a
    # column seen only in negative rows the subsample dropped is one of them.
    kept = features.loc[keep]
    used = [c for c in kept.columns if kept[c].notna().any()]
    t0 = time.perf_counter()
    with threadpool_limits(limits=params.n_threads, user_api="openmp"):
        clf.fit(kept[used].astype(np.float32), y[keep], sample_weight=w)
    logger.info("fitted %d trees in %.1f s", clf.n_iter_, time.perf_counter() - t0)
    return clf


def predict_gbm(
    clf: HistGradientBoostingClassifier, features: pd.DataFrame, n_threads: int = 1
) -> np.ndarray:
    """``(n_rows,)`` float64 risk of every hour."""
    cols = list(clf.feature_names_in_)
    missing = [c for c in cols if c not in features.columns]
    if missing:
        raise ValueError(f"features lack column(s) the model was fitted on: {missing[:5]}")
    with threadpool_limits(limits=n_threads, user_api="openmp"):
        p = clf.predict_proba(features[cols].astype(np.float32))[:, 1]
    return p.astype(np.float64)
