"""What the GRU-D reads of a sepsis cohort (:class:`~vitalgru.data.early_warning.EarlyWarningCohort`):
normalisation statistics fitted on training patients only (:class:`NormStats`, stored with
the model), and the per-hour input arrays (:func:`gru_d_arrays`): values, missingness
masks, time since each measurement was last observed, last observed values, the static
context, and engineered summaries for a blend's trees (Che et al. 2018, "Recurrent Neural
Networks for Multivariate Time Series with Missing Values").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from vitalgru.baselines.features import engineered_features, needs_signatures
from vitalgru.data.early_warning import EarlyWarningCohort
from vitalgru.dsp.vitals import vitals_last_observed, vitals_time_since_observed
from vitalgru.io.psv import MEASUREMENT_COLUMNS, VITAL_COLUMNS

__all__ = [
    "RANGE_QUANTILES",
    "STATIC_FEATURES",
    "NormStats",
    "SequenceArrays",
    "fit_norm_stats",
    "gru_d_arrays",
]

#: Static inputs of the model, in order (after normalisation; see :func:`gru_d_arrays`).
STATIC_FEATURES: tuple[str, ...] = (
    "age_years",
    "gender_male",
    "unit_micu",
    "unit_sicu",
    "unit_known",
    "hosp_adm_time_h",
    "log_icu_hour",
)


#: Quantiles of the training patients' values of each measurement kept with a sepsis model
#: (``NormStats.extra["population"]``): a value outside them is outside the training population.
RANGE_QUANTILES = (0.001, 0.999)


@dataclass
class NormStats:
    """Normalisation statistics fitted on training patients (stored with the model).

    ``mean``/``std`` per measurement column over observed values; ``age_*`` / ``adm_*``
    for age and hospital admission time. ``engineered`` names the causal summary
    features (:func:`vitalgru.baselines.features.engineered_features`) appended to the
    network's context block, with their training ``engineered_mean`` /
    ``engineered_std``; empty for the plain GRU-D inputs. ``unseen`` names the measurement
    columns never observed in the training patients (EtCO2 in the challenge's set A): the
    network learnt nothing from their values, so :func:`gru_d_arrays` reads them as not
    measured wherever they are charted. ``extra["population"]`` says who the training
    patients were (youngest and oldest age, each vital sign's :data:`RANGE_QUANTILES`), for
    :class:`vitalgru.population.SepsisPopulation`; absent in models stored before it.
    """

    columns: list[str]
    mean: list[float]
    std: list[float]
    age_mean: float
    age_std: float
    adm_mean: float
    adm_std: float
    delta_scale_h: float = 24.0
    extra: dict[str, Any] = field(default_factory=dict)
    engineered: list[str] = field(default_factory=list)
    engineered_mean: list[float] = field(default_factory=list)
    engineered_std: list[float] = field(default_factory=list)
    unseen: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NormStats:
        d = dict(d)
        if "unseen" not in d:  # stored before the field: the never-observed fallback's mark
            d["unseen"] = [
                c for c, m, s in zip(d["columns"], d["mean"], d["std"], strict=True)
                if m == 0.0 and s == 1.0
            ]  # fmt: skip
        return cls(**d)


def _nan_mean_std(vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.nanmean`` and ``np.nanstd`` of each column of ``vals`` (n, k), to the bit, NaN for
    a column of NaN alone, without numpy's warnings. They were silenced with
    ``warnings.catch_warnings``, which swaps the process's filter list and is not
    thread-safe: a thread beside it (a Prefect task runner's, MLflow's) could lose a filter
    it set, or be left with this one. ``np.errstate`` (for a column holding an infinity) is
    per thread and per context."""
    mean = np.full(vals.shape[1], np.nan)
    std = np.full(vals.shape[1], np.nan)
    some = ~np.isnan(vals).all(axis=0)  # an all-NaN column is "Mean of empty slice"
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        mean[some] = np.nanmean(vals[:, some], axis=0)
        std[some] = np.nanstd(vals[:, some], axis=0)
    return mean, std


def fit_norm_stats(cohort: EarlyWarningCohort, engineered: bool = False) -> NormStats:
    """Mean and standard deviation of every measurement over its observed values.

    A column never observed gets mean 0 and std 1 and is named in ``unseen`` (scoring
    reads it as not measured, as it was in training). With
    ``engineered``, the same for every engineered summary feature defined somewhere in
    ``cohort`` (those never defined are left out).
    """
    f = cohort.frame
    vals = f[list(MEASUREMENT_COLUMNS)].to_numpy(np.float64)
    mean, std = _nan_mean_std(vals)  # NaN for an all-NaN column (EtCO2 in set A)
    seen = np.isfinite(vals).any(axis=0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    std = np.where(np.isfinite(std) & (std > 1e-6), std, 1.0)
    first = cohort.offsets[:-1]
    age = f["age_years"].to_numpy(np.float64)[first]
    population = _population(vals, seen, age)
    adm = np.clip(f["hosp_adm_time_h"].to_numpy(np.float64)[first], -2000, 100)
    eng_cols: list[str] = []
    eng_mean: list[float] = []
    eng_std: list[float] = []
    if engineered:
        feats = engineered_features(f, cohort.offsets)
        ev = feats.to_numpy(np.float64)
        ok = np.isfinite(ev).any(axis=0)
        em, es = _nan_mean_std(ev[:, ok])
        eng_cols = [c for c, k in zip(feats.columns, ok, strict=True) if k]
        eng_mean = em.tolist()
        eng_std = np.where(es > 1e-6, es, 1.0).tolist()
    return NormStats(
        extra={"population": population},
        engineered=eng_cols,
        engineered_mean=eng_mean,
        engineered_std=eng_std,
        columns=list(MEASUREMENT_COLUMNS),
        unseen=[c for c, k in zip(MEASUREMENT_COLUMNS, seen, strict=True) if not k],
        mean=mean.tolist(),
        std=std.tolist(),
        age_mean=float(np.nanmean(age)) if np.isfinite(age).any() else 60.0,
        age_std=float(np.nanstd(age) or 1.0) if np.isfinite(age).any() else 15.0,
        adm_mean=float(np.nanmean(adm)) if np.isfinite(adm).any() else 0.0,
        adm_std=float(np.nanstd(adm) or 1.0) if np.isfinite(adm).any() else 100.0,
    )


def _population(vals: np.ndarray, seen: np.ndarray, age: np.ndarray) -> dict[str, Any]:
    """Who the training patients were, for :class:`vitalgru.population.SepsisPopulation`:
    youngest and oldest age (years), and per vital sign observed (the measurements whose
    normal range depends most on age) the 0.1 % and 99.9 % quantiles of its values (:data:`RANGE_QUANTILES`; ``vals``: rows x :data:`MEASUREMENT_COLUMNS`)."""
    ok = np.isfinite(age)
    ranges = {}
    for j, c in enumerate(MEASUREMENT_COLUMNS):
        if seen[j] and c in VITAL_COLUMNS:
            v = vals[np.isfinite(vals[:, j]), j]
            ranges[c] = [float(q) for q in np.quantile(v, RANGE_QUANTILES)]
    return {
        "age_min": float(age[ok].min()) if ok.any() else None,
        "age_max": float(age[ok].max()) if ok.any() else None,
        "ranges": ranges,
    }


@dataclass
class SequenceArrays:
    """GRU-D inputs of a cohort, patients back to back.

    Attributes
    ----------
    x : numpy.ndarray
        ``(n_rows, 4 * n_features + n_static)`` float32: normalised value (0 where
        missing), mask, time since last observation (hours / ``delta_scale_h``), last
        observed normalised value (0 before the first), then the context block:
        :data:`STATIC_FEATURES` and, when the statistics name any, the z-scored
        engineered summaries (0 where undefined).
    y : numpy.ndarray
        ``(n_rows,)`` float32 SepsisLabel.
    offsets : numpy.ndarray
        ``(n_patients + 1,)`` int64.
    n_features, n_static : int
        ``n_static`` is the width of the whole context block.
    n_tree_inputs : int
        Raw engineered features appended after the context block for the trees of a
        :class:`~vitalgru.models.early_warning.SepsisBlend` (NaN where undefined); 0 for
        a network alone.
    """

    x: np.ndarray
    y: np.ndarray
    offsets: np.ndarray
    n_features: int
    n_static: int
    n_tree_inputs: int = 0

    def patient(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        a, b = self.offsets[i], self.offsets[i + 1]
        return self.x[a:b], self.y[a:b]


def gru_d_arrays(
    cohort: EarlyWarningCohort, stats: NormStats, tree_features: Sequence[str] | None = None
) -> SequenceArrays:
    """Build the model inputs of a cohort with given (training) statistics.

    ``tree_features`` (the column names a tree model was fitted on, in its order) appends
    those engineered features unscaled, NaN where undefined, for a blend's trees.

    A column of ``stats.unseen`` (never observed in training) is read as not measured, for
    the network and the engineered features alike: what the model learnt of it is only
    its absence (its input weights never saw a value), so a charted value (EtCO2 from a
    capnograph) would otherwise move the risk arbitrarily.
    """
    f = cohort.frame
    unseen = [c for c in stats.unseen if c in f.columns and f[c].notna().any()]
    if unseen:
        f = f.copy()
        f[unseen] = np.nan
    raw = f[stats.columns].to_numpy(np.float32)
    mean = np.asarray(stats.mean, np.float32)
    std = np.asarray(stats.std, np.float32)
    mask, last, _ = vitals_last_observed(raw, cohort.offsets)
    hours = f["hour"].to_numpy(np.float64)
    delta = vitals_time_since_observed(mask, hours, cohort.offsets) / stats.delta_scale_h
    z = np.nan_to_num((raw - mean) / std, nan=0.0)
    z_last = np.nan_to_num((last - mean) / std, nan=0.0)
    # Clip extreme z-scores: heavy-tailed labs (AST, WBC) would otherwise dominate.
    z = np.clip(z, -10, 10)
    z_last = np.clip(z_last, -10, 10)
    age = (f["age_years"].to_numpy(np.float32) - stats.age_mean) / stats.age_std
    adm = (
        np.clip(f["hosp_adm_time_h"].to_numpy(np.float32), -2000, 100) - stats.adm_mean
    ) / stats.adm_std
    unit1 = f["unit_micu"].to_numpy(np.float32)
    unit2 = f["unit_sicu"].to_numpy(np.float32)
    known = (~np.isnan(unit1)).astype(np.float32)
    static = np.column_stack(
        [
            np.nan_to_num(age),
            np.nan_to_num(f["gender_male"].to_numpy(np.float32)),
            np.nan_to_num(unit1),
            np.nan_to_num(unit2),
            known,
            np.nan_to_num(adm),
            np.log1p(hours.astype(np.float32)) / np.log(337.0),
        ]
    ).astype(np.float32)
    feats = (
        engineered_features(f, cohort.offsets, signatures=needs_signatures(tree_features or ()))
        if stats.engineered or tree_features
        else None
    )
    if stats.engineered and feats is not None:
        missing = [c for c in stats.engineered if c not in feats.columns]
        if missing:
            raise ValueError(f"engineered feature(s) not computable here: {missing[:5]}")
        e = feats[stats.engineered].to_numpy(np.float32)
        e = (e - np.asarray(stats.engineered_mean, np.float32)) / np.asarray(
            stats.engineered_std, np.float32
        )
        e = np.clip(np.nan_to_num(e, nan=0.0, posinf=0.0, neginf=0.0), -10, 10)
        static = np.concatenate([static, e.astype(np.float32)], axis=1)
    blocks = [z, mask, np.minimum(delta, 10.0), z_last, static]
    if tree_features and feats is not None:
        absent = [c for c in tree_features if c not in feats.columns]
        if absent:
            raise ValueError(f"tree feature(s) not computable here: {absent[:5]}")
        t = feats[list(tree_features)].to_numpy(np.float32)
        blocks.append(np.where(np.isfinite(t), t, np.nan).astype(np.float32))
    x = np.concatenate(blocks, axis=1).astype(np.float32)
    return SequenceArrays(
        x=np.ascontiguousarray(x),
        # an unlabelled cohort is scored, never fitted: its targets are unknown (NaN)
        y=cohort.labels.astype(np.float32)
        if cohort.labelled
        else np.full(len(f), np.nan, np.float32),
        offsets=cohort.offsets.copy(),
        n_features=len(stats.columns),
        n_static=static.shape[1],
        n_tree_inputs=len(tree_features or ()),
    )
