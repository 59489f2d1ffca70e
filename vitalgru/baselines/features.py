"""Engineered hourly features for tree models on Challenge-2019 tables.

The 2019 challenge's best entries were gradient-boosted trees on hand-made features
(Morrill et al., "The Signature-based Model for Early Detection of Sepsis from Electronic
Health Records in the Intensive Care Unit", CinC 2019; Reyna et al., Crit Care Med 2020).
This set follows the same recipe without path signatures: for every patient-hour, using
only that hour and earlier ones,

* last observed value of every measurement (NaN before the first; trees split on NaN),
  hours since it was observed, and how many times it has been measured so far;
* for the vital signs: mean, min, max and standard deviation over the last 6 hours and
  the change over 1 and 6 hours of the carried-forward value;
* for vitals and key sepsis labs: the change from the value carried 24 hours earlier, and
  the running max/min since admission;
* derived ratios: shock index (HR / SBP), pulse pressure, BUN / creatinine;
* NEWS2 and qSOFA (see :mod:`vitalgru.baselines.scores`), demographics and ICU hour.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from vitalgru.baselines.scores import news2, qsofa
from vitalgru.dsp.vitals import vitals_last_observed, vitals_time_since_observed
from vitalgru.io.psv import MEASUREMENT_COLUMNS, VITAL_COLUMNS

_ROLL_VITALS: tuple[str, ...] = tuple(c for c in VITAL_COLUMNS if c != "etco2_mmhg")
_TREND_LABS: tuple[str, ...] = (
    "lactate_mmol_l",
    "wbc_10e3_ul",
    "creatinine_mg_dl",
    "platelets_10e3_ul",
    "bilirubin_total_mg_dl",
    "bun_mg_dl",
    "ph",
    "hco3_mmol_l",
)


def _shifted(x: np.ndarray, local_t: np.ndarray, k: int) -> np.ndarray:
    """``x`` shifted down ``k`` rows within each patient (NaN where ``t < k``)."""
    out = np.full_like(x, np.nan)
    if k == 0:
        return x.copy()
    out[k:] = x[:-k]
    out[local_t < k] = np.nan
    return out


def _group_accumulate(x: np.ndarray, offsets: np.ndarray, ufunc: np.ufunc) -> np.ndarray:
    out = np.empty_like(x)
    for a, b in zip(offsets[:-1], offsets[1:], strict=True):
        if b > a:
            seg = x[a:b]
            filled = np.where(np.isnan(seg), -np.inf if ufunc is np.maximum else np.inf, seg)
            acc = ufunc.accumulate(filled, axis=0)
            out[a:b] = np.where(np.isinf(acc), np.nan, acc)
    return out


def engineered_features(frame: pd.DataFrame, offsets: np.ndarray) -> pd.DataFrame:
    """Causal engineered features of every patient-hour.

    Parameters
    ----------
    frame : pandas.DataFrame
        Cleaned hourly rows grouped by patient, hours ascending (the columns of
        :data:`vitalgru.io.psv.PSV_COLUMNS`).
    offsets : numpy.ndarray
        ``(n_patients + 1,)`` row offsets.

    Returns
    -------
    pandas.DataFrame
        ``(n_rows, n_features)`` float32, one column per feature, NaN where undefined.
    """
    off = np.asarray(offsets, np.int64)
    n = len(frame)
    lengths = np.diff(off)
    local_t = np.arange(n) - np.repeat(off[:-1], lengths)
    cols = list(MEASUREMENT_COLUMNS)
    raw = frame[cols].to_numpy(np.float32)
    mask, last, _ = vitals_last_observed(raw, off)
    hours = frame["hour"].to_numpy(np.float64)
    since = vitals_time_since_observed(mask, hours, off)
    since = np.where(mask > 0, 0.0, since).astype(np.float32)  # 0 when measured this hour
    counts = np.empty_like(mask)
    for a, b in zip(off[:-1], off[1:], strict=True):
        counts[a:b] = np.cumsum(mask[a:b], axis=0)
    feats: dict[str, np.ndarray] = {}
    for j, c in enumerate(cols):  # a fixed schema, even for never-measured columns
        feats[f"{c}__last"] = last[:, j]
        feats[f"{c}__hours_since"] = np.where(counts[:, j] > 0, since[:, j], np.nan)
        feats[f"{c}__count"] = counts[:, j]
    vi = [cols.index(c) for c in _ROLL_VITALS]
    v = last[:, vi]
    window = np.stack([_shifted(v, local_t, k) for k in range(6)])  # (6, n, V)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows before first value
        stats = {
            "mean6h": np.nanmean(window, axis=0),
            "min6h": np.nanmin(window, axis=0),
            "max6h": np.nanmax(window, axis=0),
            "std6h": np.nanstd(window, axis=0),
        }
    for name, arr in stats.items():
        for k, c in enumerate(_ROLL_VITALS):
            feats[f"{c}__{name}"] = arr[:, k]
    for k, c in enumerate(_ROLL_VITALS):
        feats[f"{c}__d1h"] = v[:, k] - window[1][:, k]
        feats[f"{c}__d6h"] = v[:, k] - window[5][:, k]
    ti = vi + [cols.index(c) for c in _TREND_LABS]
    trend = last[:, ti]
    lag24 = _shifted(trend, local_t, 24)
    run_max = _group_accumulate(trend, off, np.maximum)
    run_min = _group_accumulate(trend, off, np.minimum)
    for k, c in enumerate([cols[i] for i in ti]):
        feats[f"{c}__d24h"] = trend[:, k] - lag24[:, k]
        feats[f"{c}__max_so_far"] = run_max[:, k]
        feats[f"{c}__min_so_far"] = run_min[:, k]

    def col(name: str) -> np.ndarray:
        return last[:, cols.index(name)]

    with np.errstate(divide="ignore", invalid="ignore"):
        feats["shock_index"] = col("hr_bpm") / col("sbp_mmhg")
        feats["pulse_pressure_mmhg"] = col("sbp_mmhg") - col("dbp_mmhg")
        feats["bun_creatinine_ratio"] = col("bun_mg_dl") / col("creatinine_mg_dl")
    feats["news2"] = news2(frame, off).astype(np.float32)
    feats["qsofa"] = qsofa(frame, off).astype(np.float32)
    feats["n_measured_now"] = mask.sum(axis=1)
    for c in ("age_years", "gender_male", "unit_micu", "unit_sicu", "hosp_adm_time_h"):
        feats[c] = frame[c].to_numpy(np.float32)
    feats["icu_hour"] = hours.astype(np.float32)
    out = pd.DataFrame({k: np.asarray(a, dtype=np.float32) for k, a in feats.items()})
    out.replace([np.inf, -np.inf], np.nan, inplace=True)
    return out
