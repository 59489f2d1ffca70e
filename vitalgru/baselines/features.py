"""Engineered hourly features for tree models on Challenge-2019 tables.

The 2019 challenge's best entries were gradient-boosted trees on hand-made features
(Morrill et al., "The Signature-based Model for Early Detection of Sepsis from Electronic
Health Records in the Intensive Care Unit", CinC 2019; Reyna et al., Crit Care Med 2020).
This set follows the same recipe, with a small signature block of its own: for every
patient-hour, using only that hour and earlier ones,

* last observed value of every measurement (NaN before the first; trees split on NaN),
  hours since it was observed, and how many times it has been measured so far;
* for the vital signs: mean, min, max and standard deviation over the last 6 hours and
  the change over 1 hour and across that 6-hour window (``__d6h``: the hour less the
  window's first, 5 hours before; the name is kept for the models stored with it) of the
  carried-forward value;
* for vitals and key sepsis labs: the change from the value carried 24 hours earlier, and
  the running max/min since admission;
* derived ratios: shock index (HR / SBP), pulse pressure, BUN / creatinine;
* NEWS2 and qSOFA (see :mod:`vitalgru.baselines.scores`) of every value charted so far,
  however old (the bedside baselines count a value over a day old as a blank box),
  demographics and ICU hour;
* optionally (``signatures=True``, the trees' default in the packaged configuration), the
  path-signature terms of :func:`signature_features`.
"""

from __future__ import annotations

from collections.abc import Sequence

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
#: Channels of the vital-sign paths whose signatures :func:`signature_features` takes.
SIGNATURE_VITALS: tuple[str, ...] = (
    "hr_bpm",
    "spo2_pct",
    "temp_c",
    "sbp_mmhg",
    "map_mmhg",
    "resp_per_min",
)
#: Look-back windows (hours) of :func:`signature_features`.
SIGNATURE_WINDOWS: tuple[int, ...] = (6, 12)
#: Prefix of every signature column (so a stored model's column list says it needs them).
SIGNATURE_PREFIX = "sig"
_SIGNATURE_CHUNK_ROWS = 65536


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


def signature_features(
    frame: pd.DataFrame,
    offsets: np.ndarray,
    windows: tuple[int, ...] = SIGNATURE_WINDOWS,
    channels: tuple[str, ...] = SIGNATURE_VITALS,
) -> pd.DataFrame:
    """Lévy areas of the recent vital-sign path at every patient-hour (causal).

    For each hour and window ``W``, the path is the carried-forward values of
    ``channels`` over the hours ``t - W .. t`` (held at the stay's first row before
    admission), with the hour itself as one more channel, joined piecewise linearly.
    Its level-2 signature's antisymmetric part, the Lévy area of channels ``i`` and
    ``j``,

        A_ij = 1/2 * sum_k [(x_i(k-1) - x_i(0)) dx_j(k) - (x_j(k-1) - x_j(0)) dx_i(k)],

    says in which order two signs moved (a pressure that fell before the heart rate
    rose has the opposite sign to one that fell after), which no level, change or window
    statistic of a single sign says. The level-1 terms (changes over the window) and the
    symmetric level-2 terms (their products) are left out: :func:`engineered_features`
    has the 1-, 5- (named ``d6h``, across its 6-hour window) and 24-hour changes (not the
    12-hour one). The signature feature set of the 2019 winners (Morrill et al., CinC
    2019) is the model for this block.

    Returns
    -------
    pandas.DataFrame
        ``(n_rows, len(windows) * C * (C - 1) / 2)`` float32 with ``C = len(channels) + 1``,
        columns ``sig{W}_{a}_{b}``; NaN while the window reaches back before a channel's
        first observation (so for up to ``W`` hours after it: the path has no value
        there), which the trees split on as they do on any NaN.
    """
    off = np.asarray(offsets, np.int64)
    if any(int(w) < 1 for w in windows):
        raise ValueError(f"signature windows must be >= 1 hour, got {windows}")
    cols = list(MEASUREMENT_COLUMNS)
    unknown = [c for c in channels if c not in cols]
    if unknown:
        raise ValueError(f"unknown signature channel(s): {unknown}")
    _, last, _ = vitals_last_observed(frame[cols].to_numpy(np.float32), off)
    return _levy_areas(last[:, [cols.index(c) for c in channels]], off, windows, channels)


def _levy_areas(
    values: np.ndarray, off: np.ndarray, windows: tuple[int, ...], channels: tuple[str, ...]
) -> pd.DataFrame:
    """:func:`signature_features` of carried-forward ``values`` ``(n_rows, C)``."""
    v = np.asarray(values, np.float64)
    n = v.shape[0]
    start = np.repeat(off[:-1], np.diff(off))
    names = ("t", *channels)
    iu, ju = np.triu_indices(len(names), k=1)
    feats: dict[str, np.ndarray] = {}
    for w in (int(x) for x in windows):
        out = np.empty((n, iu.size), np.float32)
        lags = np.arange(w, -1, -1)  # oldest point first
        hour = np.arange(w + 1, dtype=np.float64)
        for a in range(0, n, _SIGNATURE_CHUNK_ROWS):
            rows = np.arange(a, min(n, a + _SIGNATURE_CHUNK_ROWS))
            idx = np.maximum(rows[:, None] - lags[None, :], start[rows, None])
            path = np.concatenate(
                [np.broadcast_to(hour[None, :, None], (rows.size, w + 1, 1)), v[idx]], axis=2
            )
            step = np.diff(path, axis=1)
            since0 = path[:, :-1] - path[:, :1]
            s2 = np.einsum("nki,nkj->nij", since0, step)
            out[rows] = (0.5 * (s2 - s2.transpose(0, 2, 1)))[:, iu, ju]
        for k, (i, j) in enumerate(zip(iu, ju, strict=True)):
            feats[f"{SIGNATURE_PREFIX}{w}_{names[i]}_{names[j]}"] = out[:, k]
    return pd.DataFrame(feats)


def needs_signatures(columns: Sequence[str]) -> bool:
    """Whether a stored model's feature columns include :func:`signature_features`'."""
    return any(str(c).startswith(SIGNATURE_PREFIX) for c in columns)


def engineered_features(
    frame: pd.DataFrame, offsets: np.ndarray, signatures: bool = False
) -> pd.DataFrame:
    """Causal engineered features of every patient-hour.

    Parameters
    ----------
    frame : pandas.DataFrame
        Cleaned hourly rows grouped by patient, hours ascending (the columns of
        :data:`vitalgru.io.psv.PSV_COLUMNS`).
    offsets : numpy.ndarray
        ``(n_patients + 1,)`` row offsets.
    signatures : bool
        Append :func:`signature_features` (default windows and channels).

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
    # A window of NaN alone (before a vital's first value) is NaN: numpy would warn of it,
    # and warnings.catch_warnings, which silenced that, is not thread-safe (monitors scoring
    # in threads left "ignore RuntimeWarning" installed for the whole process).
    empty = np.isnan(window).all(axis=0)  # (n, V)
    filled = np.where(empty, 0.0, window)  # the other windows as they are
    stats = {
        name: np.where(empty, np.nan, stat(filled, axis=0))
        for name, stat in (("mean6h", np.nanmean), ("min6h", np.nanmin),
                           ("max6h", np.nanmax), ("std6h", np.nanstd))
    }  # fmt: skip
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
    # as inputs, the scores of every value charted so far, however old (the models were
    # chosen and shipped with them so; limited to a day they scored 0.4315 against 0.430
    # for the trees and 0.427 for the blend in one make run): the bedside baselines use
    # the day's limit (scores.MAX_AGE_H)
    feats["news2"] = news2(frame, off, max_age_h=None).astype(np.float32)
    feats["qsofa"] = qsofa(frame, off, max_age_h=None).astype(np.float32)
    feats["n_measured_now"] = mask.sum(axis=1)
    for c in ("age_years", "gender_male", "unit_micu", "unit_sicu", "hosp_adm_time_h"):
        feats[c] = frame[c].to_numpy(np.float32)
    feats["icu_hour"] = hours.astype(np.float32)
    out = pd.DataFrame({k: np.asarray(a, dtype=np.float32) for k, a in feats.items()})
    out.replace([np.inf, -np.inf], np.nan, inplace=True)
    if signatures:
        si = [cols.index(c) for c in SIGNATURE_VITALS]
        out = pd.concat(
            [out, _levy_areas(last[:, si], off, SIGNATURE_WINDOWS, SIGNATURE_VITALS)], axis=1
        )
    return out
