"""Cross-validation and the final fits of the sepsis early-warning models: the GRU-D network
(fitted by :mod:`vitalgru.training.gru_d`), gradient-boosted trees on engineered features,
their blend and the NEWS2 / qSOFA baselines, all on the same patient folds and scored with
the same utility; the threshold of each is chosen on a validation split of the training
patients, never on the data a result is reported on.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from vitalgru.baselines import GBMParams, engineered_features, fit_gbm, news2, predict_gbm, qsofa
from vitalgru.data.drift import early_warning_reference
from vitalgru.data.early_warning import EarlyWarningCohort
from vitalgru.data.gru_d_inputs import STATIC_FEATURES, NormStats, fit_norm_stats, gru_d_arrays
from vitalgru.metrics.calibration import calibration_metrics, fit_recalibration, recalibrate
from vitalgru.metrics.early_warning import early_warning_metrics
from vitalgru.metrics.ranking import auroc
from vitalgru.metrics.utility import best_threshold
from vitalgru.models.early_warning import GRUDEarlyWarning, SepsisBlend
from vitalgru.models.trees import BoostedTrees
from vitalgru.training.gru_d import FitResult, GRUTrainParams, fit_gru_d, predict_scores

logger = logging.getLogger(__name__)


def split_validation(
    septic: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split of patient indices into (fit, validation); a group of two or more
    keeps one in the fitting share (a lone septic patient of two went to validation, and
    the network was fitted on no positive)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed + 7919)
    s = np.asarray(septic, bool)
    val = []
    for g in (np.flatnonzero(s), np.flatnonzero(~s)):
        k = int(math.ceil(fraction * g.size)) if g.size else 0
        if g.size >= 2:
            k = min(k, g.size - 1)
        val.append(rng.permutation(g)[:k])
    v = np.sort(np.concatenate(val))
    fit = np.setdiff1d(np.arange(s.size), v)
    return fit, v


# --------------------------------------------------------------------------------------
# Cross-validation of the GRU-D network and the baselines on the same patient folds.
# --------------------------------------------------------------------------------------

MODEL_NAMES: tuple[str, ...] = ("gru_d", "gbm", "news2", "qsofa")
#: Reported when both the network and the trees are cross-validated: their weighted mean
#: risk (:attr:`CVSettings.blend_gru_weight` on the network's).
BLEND = "gru_d_gbm_blend"


@dataclass(frozen=True)
class CVSettings:
    """What :func:`cross_validate` runs."""

    models: tuple[str, ...] = MODEL_NAMES
    val_fraction: float = 0.15
    # Feed the network the engineered causal summaries too (see
    # :func:`vitalgru.data.gru_d_inputs.fit_norm_stats`).
    engineered_inputs: bool = False
    # Give the trees :func:`vitalgru.baselines.features.signature_features` too.
    tree_signatures: bool = False
    gru: GRUTrainParams = GRUTrainParams()
    gbm: GBMParams = GBMParams()
    seed: int = 0
    # The network's weight in :data:`BLEND`'s risk; the trees get ``1 - blend_gru_weight``.
    blend_gru_weight: float = 0.25


@dataclass
class CVResult:
    """Per-fold metrics and out-of-fold hourly scores of every model."""

    folds: np.ndarray  # (n_patients,) fold of each patient
    # model -> one metrics dict per fold; the GRU-D's rows and the blend's also say how
    # that fold's GRU-D fit ended (GRU_FIT_KEYS)
    per_fold: dict[str, list[dict[str, float | str]]]
    oof_scores: dict[str, np.ndarray]  # model -> (n_rows,) out-of-fold risk
    fit_seconds: dict[str, list[float]]
    # model -> (n_rows,) out-of-fold risk recalibrated on each fold's validation share
    oof_probabilities: dict[str, np.ndarray] = field(default_factory=dict)
    gru_histories: list[list[dict[str, float]]] = field(default_factory=list)
    # The last fold's fitted network, its statistics and test patients (for benchmarks).
    last_gru: tuple[GRUDEarlyWarning, NormStats, np.ndarray] | None = None
    # The last fold's fitted trees (scikit-learn), for benchmarks of the blend.
    last_gbm: Any = None

    def summary(self) -> dict[str, dict[str, float]]:
        """Mean and standard deviation over folds: ``{model: {key_mean, key_sd}}``."""
        out: dict[str, dict[str, float]] = {}
        for name, rows in self.per_fold.items():
            keys = [k for k in rows[0] if isinstance(rows[0][k], float | int)]
            d: dict[str, float] = {}
            for k in keys:
                v = np.array([r[k] for r in rows], dtype=np.float64)
                d[f"{k}_mean"] = float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
                d[f"{k}_sd"] = (
                    float(np.nanstd(v, ddof=1)) if np.isfinite(v).sum() > 1 else float("nan")
                )
            out[name] = d
        return out


def _rows_of(offsets: np.ndarray, patients: np.ndarray) -> np.ndarray:
    lengths = np.diff(offsets)
    if patients.size == 0:
        return np.zeros(0, np.int64)
    starts = np.repeat(offsets[patients], lengths[patients])
    within = np.arange(starts.size) - np.repeat(
        np.r_[0, np.cumsum(lengths[patients])[:-1]], lengths[patients]
    )
    return starts + within


@dataclass
class FinalFit:
    """The model fitted on a whole cohort, ready to log.

    Attributes
    ----------
    model : torch.nn.Module
        :class:`GRUDEarlyWarning`, or a :class:`SepsisBlend` of it and the trees.
    preprocessing : dict
        :func:`model_preprocessing` of the model (statistics, threshold, tree columns).
    gru : FitResult
        The network's fit (epochs, history).
    threshold, val_utility, val_auroc : float
        The model's alarm threshold and its utility / AUROC on the validation share.
    """

    model: nn.Module
    preprocessing: dict[str, Any]
    gru: FitResult
    threshold: float
    val_utility: float
    val_auroc: float


def fit_final(
    cohort: EarlyWarningCohort,
    settings: CVSettings,
    blend: bool = False,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> FinalFit:
    """Fit the model to register on a whole cohort.

    A stratified validation share is held out for the network's early stopping and for
    the alarm threshold; normalisation statistics (and, with ``blend``, the trees) come
    from the rest. With ``blend`` the trees are exported into a :class:`SepsisBlend`
    (the two risks weighted by ``settings.blend_gru_weight``, as cross-validated under
    :data:`BLEND`) and the threshold is the blend's own, chosen on the validation share
    with the exported model itself.
    """
    fit_idx, val_idx = split_validation(cohort.septic(), settings.val_fraction, settings.seed)
    fit_c = cohort.subset(fit_idx)
    val_c = cohort.subset(val_idx)
    stats = fit_norm_stats(fit_c, engineered=settings.engineered_inputs)
    res = fit_gru_d(gru_d_arrays(fit_c, stats), gru_d_arrays(val_c, stats), settings.gru, on_epoch)
    if not blend:
        scores = predict_scores(res.model, gru_d_arrays(val_c, stats))
        reference = early_warning_reference(cohort, scores, val_c.offsets, res.threshold)
        pre = model_preprocessing(stats, res.threshold, reference=reference,
                                  recalibration=fit_recalibration(val_c.labels, scores))  # fmt: skip
        return FinalFit(
            model=res.model,
            preprocessing=pre,
            gru=res,
            threshold=res.threshold,
            val_utility=res.val_utility,
            val_auroc=res.val_auroc,
        )
    t0 = time.perf_counter()
    feats = engineered_features(fit_c.frame, fit_c.offsets, signatures=settings.tree_signatures)
    clf = fit_gbm(feats, fit_c.labels, settings.gbm)
    names = [str(c) for c in clf.feature_names_in_]
    trees = BoostedTrees.from_sklearn(clf)
    model = SepsisBlend.of(res.model, trees, gru_weight=settings.blend_gru_weight).eval()
    scores = predict_scores(model, gru_d_arrays(val_c, stats, names))
    thr, u = best_threshold(val_c.labels, scores, val_c.offsets)
    logger.info("blend: trees fitted and exported, validation utility %.3f (%.0f s)",
                u, time.perf_counter() - t0)  # fmt: skip
    reference = early_warning_reference(cohort, scores, val_c.offsets, float(thr))
    return FinalFit(
        model=model,
        preprocessing=model_preprocessing(
            stats, thr, names, reference, recalibration=fit_recalibration(val_c.labels, scores)
        ),
        gru=res,
        threshold=float(thr),
        val_utility=float(u),
        val_auroc=float(auroc(val_c.labels, scores)),
    )


#: what a fold's per-fold row says about its GRU-D fit (:func:`gru_fit_record`)
GRU_FIT_KEYS = ("gru_stop_reason", "gru_epochs", "gru_best_epoch")


def gru_fit_record(res: FitResult) -> dict[str, float | str]:
    """How a GRU-D fit ended: ``gru_stop_reason`` (``"max_epochs"``, ``"early_stopping"``
    or ``"time_budget"``: the wall-clock budget stopped it, so its length depended on the
    machine), ``gru_epochs`` run and ``gru_best_epoch`` (the one kept, counted from 1)."""
    return {
        "gru_stop_reason": res.stop_reason,
        "gru_epochs": float(len(res.history)),
        "gru_best_epoch": float(res.best_epoch + 1),
    }


def cross_validate(
    cohort: EarlyWarningCohort,
    folds: np.ndarray,
    settings: CVSettings = CVSettings(),
    on_fold: Callable[[str, int, dict[str, float]], None] | None = None,
) -> CVResult:
    """Patient-level cross-validation of the requested models with the challenge scorer.

    For each test fold, every model sees only the other folds: the bedside scores pick
    their alarm threshold on the training folds; the GRU-D and tree models are fitted on
    a share of the training folds and pick their threshold (and, for the GRU, the epoch)
    on the held-out rest of the training folds. Normalisation statistics come from the
    fitting share only.

    Parameters
    ----------
    cohort : EarlyWarningCohort
    folds : numpy.ndarray
        ``(n_patients,)`` fold index per patient.
    settings : CVSettings
    on_fold : callable, optional
        ``on_fold(model, fold, metrics)`` after each model and fold.

    Returns
    -------
    CVResult
    """
    unknown = set(settings.models) - set(MODEL_NAMES)
    if unknown:
        raise ValueError(f"unknown model(s) {sorted(unknown)}; choose from {MODEL_NAMES}")
    if not 0.0 <= settings.blend_gru_weight <= 1.0:
        raise ValueError(f"blend_gru_weight must be in [0, 1], got {settings.blend_gru_weight}")
    f = np.asarray(folds)
    if f.shape != (cohort.n_patients,):
        raise ValueError(f"folds must be ({cohort.n_patients},), got {f.shape}")
    off = cohort.offsets
    y_all = cohort.labels
    septic = cohort.septic()
    n_rows = y_all.size
    oof = {m: np.full(n_rows, np.nan) for m in settings.models}
    oof_prob: dict[str, np.ndarray] = {}
    per_fold: dict[str, list[dict[str, float | str]]] = {m: [] for m in settings.models}
    secs: dict[str, list[float]] = {m: [] for m in settings.models}
    histories: list[list[dict[str, float]]] = []
    last_gru: tuple[GRUDEarlyWarning, NormStats, np.ndarray] | None = None
    last_gbm: Any = None
    bedside = {"news2": news2, "qsofa": qsofa}
    bed_scores = {
        m: fn(cohort.frame, off).astype(np.float64)
        for m, fn in bedside.items()
        if m in settings.models
    }
    feats = (
        engineered_features(cohort.frame, off, signatures=settings.tree_signatures)
        if "gbm" in settings.models
        else None
    )
    if {"gru_d", "gbm"} <= set(settings.models):
        oof[BLEND] = np.full(n_rows, np.nan)
        per_fold[BLEND] = []
        secs[BLEND] = []

    def _record(
        name: str,
        k: int,
        thr: float,
        test_scores: np.ndarray,
        seconds: float,
        val: tuple[np.ndarray, np.ndarray] | None = None,
        gru_fit: dict[str, float | str] | None = None,
    ) -> None:
        te = _rows_of(off, np.flatnonzero(f == k))
        te_off = np.r_[0, np.cumsum(np.diff(off)[f == k])]
        oof[name][te] = test_scores
        m = early_warning_metrics(y_all[te], test_scores, te_off, thr, risks=name not in bedside)
        if val is not None:  # the risk recalibrated on the validation share, as fit_final does
            recal = fit_recalibration(val[0], val[1])
            probs = recalibrate(test_scores, recal)
            oof_prob.setdefault(name, np.full(n_rows, np.nan))[te] = probs
            m.update({f"recal_{c}": v for c, v in calibration_metrics(y_all[te], probs).items()})
        m["fold"] = float(k)
        m["seconds"] = seconds
        secs[name].append(seconds)
        per_fold[name].append({**m, **(gru_fit or {})})
        logger.info("fold %d %s: utility %.3f auroc %.3f", k, name, m["utility"], m["auroc"])
        if on_fold is not None:
            on_fold(name, int(k), m)

    for k in np.unique(f):
        train_p = np.flatnonzero(f != k)
        test_p = np.flatnonzero(f == k)
        tr_rows = _rows_of(off, train_p)
        te_rows = _rows_of(off, test_p)
        tr_off = np.r_[0, np.cumsum(np.diff(off)[train_p])]
        fit_local, val_local = split_validation(
            septic[train_p], settings.val_fraction, settings.seed + int(k)
        )
        fit_p, val_p = train_p[fit_local], train_p[val_local]
        val_rows = _rows_of(off, val_p)
        val_off = np.r_[0, np.cumsum(np.diff(off)[val_p])]
        held: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # model -> (val, test) scores
        gru_fit: dict[str, float | str] | None = None
        for name in settings.models:
            t0 = time.perf_counter()
            val: tuple[np.ndarray, np.ndarray] | None = None  # points are not recalibrated
            if name in bedside:
                s = bed_scores[name]
                thr, _ = best_threshold(y_all[tr_rows], s[tr_rows], tr_off)
                test_scores = s[te_rows]
            elif name == "gbm":
                if feats is None:
                    raise RuntimeError("features were not built")
                fit_rows = _rows_of(off, fit_p)
                clf = fit_gbm(feats.iloc[fit_rows], y_all[fit_rows], settings.gbm)
                val_scores = predict_gbm(clf, feats.iloc[val_rows])
                thr, _ = best_threshold(y_all[val_rows], val_scores, val_off)
                test_scores = predict_gbm(clf, feats.iloc[te_rows])
                held[name] = (val_scores, test_scores)
                last_gbm = clf
                val = (y_all[val_rows], val_scores)
            else:
                fit_c = cohort.subset(fit_p)
                stats = fit_norm_stats(fit_c, engineered=settings.engineered_inputs)
                val_arrays = gru_d_arrays(cohort.subset(val_p), stats)
                res = fit_gru_d(gru_d_arrays(fit_c, stats), val_arrays, settings.gru)
                histories.append(res.history)
                thr = res.threshold
                test_scores = predict_scores(res.model, gru_d_arrays(cohort.subset(test_p), stats))
                val_scores = predict_scores(res.model, val_arrays)
                held[name] = (val_scores, test_scores)
                last_gru = (res.model, stats, test_p)
                val = (y_all[val_rows], val_scores)
                gru_fit = gru_fit_record(res)
            _record(name, k, thr, test_scores, time.perf_counter() - t0, val,
                    gru_fit if name == "gru_d" else None)  # fmt: skip
        if BLEND in oof:
            # The weighted mean of the two risks, computed as SepsisBlend computes it; its
            # threshold, like theirs, from the validation share.
            t0 = time.perf_counter()
            w = settings.blend_gru_weight
            val_b = w * held["gru_d"][0] + (1.0 - w) * held["gbm"][0]
            test_b = w * held["gru_d"][1] + (1.0 - w) * held["gbm"][1]
            thr, _ = best_threshold(y_all[val_rows], val_b, val_off)
            _record(BLEND, k, thr, test_b, time.perf_counter() - t0, (y_all[val_rows], val_b),
                    gru_fit)  # fmt: skip
    return CVResult(
        folds=f,
        per_fold=per_fold,
        oof_scores=oof,
        oof_probabilities=oof_prob,
        fit_seconds=secs,
        gru_histories=histories,
        last_gru=last_gru,
        last_gbm=last_gbm,
    )


def model_preprocessing(
    stats: NormStats,
    threshold: float,
    tree_features: Sequence[str] | None = None,
    reference: Mapping[str, Any] | None = None,
    recalibration: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """What must be stored with a fitted model to score new patients with it.

    ``tree_features``: the raw engineered columns a blend's trees read, in their order
    (appended to the network's inputs by :func:`gru_d_arrays`). ``reference``: the
    training cohort's and validation risks' profile
    (:func:`vitalgru.data.drift.early_warning_reference`), what a monitor compares new
    data with. ``recalibration``: the logistic map from the risk to a probability of the
    hour's SepsisLabel, fitted on the validation share
    (:func:`vitalgru.metrics.calibration.fit_recalibration`; applied by
    :func:`vitalgru.metrics.calibration.model_probability`).
    """
    layout = ["value", "mask", "delta", "last_value", "static"]
    extra: dict[str, Any] = {"reference": dict(reference)} if reference is not None else {}
    if recalibration is not None:
        extra["recalibration"] = dict(recalibration)
    return {
        "task": "early_warning",
        "norm_stats": stats.to_dict(),
        "threshold": float(threshold),
        "input_layout": layout + (["tree_features"] if tree_features else []),
        "static_features": list(STATIC_FEATURES),
        "engineered_features": list(stats.engineered),
        "measurement_columns": list(stats.columns),
        "tree_features": list(tree_features or ()),
        **extra,
    }


def score_cohort(
    model: nn.Module,
    preprocessing: dict[str, Any],
    cohort: EarlyWarningCohort,
    chunk_patients: int = 2000,
) -> np.ndarray:
    """Hourly risk of every row of ``cohort`` with a stored network and its preprocessing.

    Patients are scored ``chunk_patients`` at a time: every input is a causal function of
    one patient's own rows and the stored statistics, so chunks give the same risks as one
    pass while memory stays bounded by the chunk (scoring all of set A at once held about
    7.6 GB of inputs and features).

    Returns
    -------
    numpy.ndarray
        ``(n_rows,)`` risk in [0, 1]; alarm where ``>= preprocessing["threshold"]``.
    """
    if "norm_stats" not in preprocessing:
        raise ValueError("preprocessing lacks 'norm_stats': not an early-warning model")
    if chunk_patients < 1:
        raise ValueError(f"chunk_patients must be >= 1, got {chunk_patients}")
    if cohort.skipped_hours():
        # summaries over 6, 12 or 24 rows must span as many hours: score on the hourly
        # grid, where a skipped hour is an hour with nothing measured
        grid, rows = cohort.on_hourly_grid()
        return score_cohort(model, preprocessing, grid, chunk_patients)[rows]
    stats = NormStats.from_dict(preprocessing["norm_stats"])
    trees = preprocessing.get("tree_features") or None
    out = np.empty(int(cohort.offsets[-1]), np.float64)
    for start in range(0, cohort.n_patients, chunk_patients):
        idx = np.arange(start, min(start + chunk_patients, cohort.n_patients))
        part = cohort if idx.size == cohort.n_patients else cohort.subset(idx)
        a, b = int(cohort.offsets[idx[0]]), int(cohort.offsets[idx[-1] + 1])
        out[a:b] = predict_scores(model, gru_d_arrays(part, stats, trees))
    return out
