"""Per-beat model inputs of the arrhythmia classifier, computed causally.

The same functions build a training dataset record by record
(:mod:`vitalgru.data.arrhythmia_dataset`) and a live monitor's inputs beat by beat
(:mod:`vitalgru.scoring.arrhythmia`), so a model sees the same numbers in both.

Per-beat inputs
---------------
One feature vector per beat, ``(2 * n_samples + N_RR_FEATURES,)`` float32: the flattened
morphology channels followed by the RR features (the layout ``ArrhythmiaGRU`` splits).

morphology : ``(2, n_samples)`` float32
    Channel 0 is the beat window divided by the record's running amplitude scale;
    channel 1 is the window minus the record's running median beat (the template),
    divided by the same scale. Running statistics use the current beat and the
    ``template_beats - 1`` beats before it only (causal). Subtracting a patient's own
    template is what lets a model trained on other patients see "this beat differs from
    this patient's usual beat" (de Chazal et al. 2004 and later inter-patient work
    stress patient-relative features; cf. Mondéjar-Guerra et al. 2019).
rr : ``(N_RR_FEATURES,)`` float32
    Logarithms of RR intervals and of their ratios to the patient's running averages
    (Llamedo & Martínez 2011; Mar et al. 2011 use RR relative to the local average).
    ``rr_next`` needs the next beat, so the feature set has a look-ahead of one beat.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

#: Names of the RR features, in column order.
RR_FEATURES: tuple[str, ...] = (
    "log_rr_prev",
    "log_rr_next",
    "log_rr_prev_over_local",
    "log_rr_next_over_local",
    "log_rr_prev_over_long",
    "log_rr_next_over_long",
    "log_rr_next_over_prev",
    "log_rr_local_over_long",
    "rr_irregularity_local",
    "rr_irregularity_long",
    "rhythm_rr_entropy",
    "rhythm_rr_nrmssd",
)
N_RR_FEATURES = len(RR_FEATURES)
#: Beats of look-ahead the features need (``rr_next``).
LOOKAHEAD_BEATS = 1

#: RR intervals outside 0.15-3 s (400-20 bpm) are detection gaps or artefacts; clip
#: them so one missed beat does not dominate a log ratio.
RR_MIN_S, RR_MAX_S = 0.15, 3.0
# Smallest amplitude scale (mV) used for normalisation: below this the template is
# noise (flat line or lead-off) and dividing by it would blow the beat up.
_MIN_SCALE_MV = 0.05


@dataclass(frozen=True)
class FeatureSettings:
    """Settings of :func:`beat_features` (logged with the model as preprocessing).

    Attributes
    ----------
    template_beats : int
        Beats in the running median template (current beat included).
    local_rr_beats : int
        Beats in the local RR average (current interval included).
    long_rr_beats : int
        Beats in the long RR average (the patient's own rhythm).
    rhythm_beats : int
        RR intervals in the window of the rhythm features (``rhythm_rr_entropy``,
        ``rhythm_rr_nrmssd``) that tell atrial fibrillation from ectopy.
    """

    template_beats: int = 32
    local_rr_beats: int = 10
    long_rr_beats: int = 300
    rhythm_beats: int = 64

    def __post_init__(self) -> None:
        for name in ("template_beats", "local_rr_beats", "long_rr_beats", "rhythm_beats"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def as_dict(self) -> dict[str, int]:
        return {
            "template_beats": self.template_beats,
            "local_rr_beats": self.local_rr_beats,
            "long_rr_beats": self.long_rr_beats,
            "rhythm_beats": self.rhythm_beats,
        }


def feature_settings_from_preprocessing(preprocessing: Mapping[str, Any]) -> FeatureSettings:
    """The feature settings logged with a model (its preprocessing ``normalisation``)."""
    norm = preprocessing.get("normalisation") or {}
    keys = ("template_beats", "local_rr_beats", "long_rr_beats", "rhythm_beats")
    return FeatureSettings(**{k: int(norm[k]) for k in keys if k in norm})


def causal_mean(x: np.ndarray, n: int) -> np.ndarray:
    """Mean of ``x[max(0, k-n+1) : k+1]`` for every k; ``x`` is ``(m,)``."""
    c = np.concatenate([[0.0], np.cumsum(x, dtype=np.float64)])
    k = np.arange(1, x.shape[0] + 1)
    lo = np.maximum(0, k - n)
    return (c[k] - c[lo]) / (k - lo)


def _check_finite(windows: np.ndarray) -> None:
    """Refuse windows holding NaN or inf: a median over them has no consistent answer (NaN
    for ``np.median``, ignored by ``np.nanmedian``), and the filtered signal that beat
    windows are cut from is finite (the filters refuse non-finite samples)."""
    bad = ~np.isfinite(windows)
    if bad.any():
        beat, sample = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"windows hold {int(bad.sum())} non-finite samples (the first in window {beat}, "
            f"sample {sample}); cut beat windows from the filtered lead, with its gaps "
            "filled first (vitalgru.dsp.interpolate_nonfinite)"
        )


def running_median_template(windows: np.ndarray, n_beats: int) -> np.ndarray:
    """Causal running median beat.

    Parameters
    ----------
    windows : numpy.ndarray
        ``(n, n_samples)`` finite beat windows of one record, in time order.
    n_beats : int
        Beats in the median (the current one and the ``n_beats - 1`` before it; fewer at
        the start of the record).

    Returns
    -------
    numpy.ndarray
        ``(n, n_samples)`` float32 templates; row k depends on rows ``<= k`` only, and
        equals ``np.median`` of them (what :func:`latest_morphology` takes live).

    Raises
    ------
    ValueError
        ``windows`` is not 2-D or holds NaN or inf (a NaN sample was ignored in the
        first 512 beats and spread to ``n_beats`` templates after them).
    """
    if windows.ndim != 2:
        raise ValueError(f"windows must be (n_beats, n_samples), got shape {windows.shape}")
    _check_finite(windows)
    n, length = windows.shape
    if n == 0:
        return np.zeros((0, length), np.float32)
    w = windows.astype(np.float32)
    out = np.empty((n, length), np.float32)
    head = min(n, n_beats - 1)
    for k in range(head):  # the first beats: the median of the k + 1 beats so far
        out[k] = np.median(w[: k + 1], axis=0)
    # np.median's arithmetic (the float32 mean of the middle values) on a contiguous sorted
    # copy: several times faster than np.median's partition of the strided window view
    mid = slice((n_beats - 1) // 2, n_beats // 2 + 1)
    step = 512  # bounded memory: (step, length, n_beats) floats per chunk
    for s in range(head, n, step):
        e = min(n, s + step)
        block = sliding_window_view(w[s - head : e], n_beats, axis=0).copy(order="C")
        block.sort(axis=-1)
        out[s:e] = np.mean(block[..., mid], axis=-1)
    return out


#: Fewest intervals a rhythm window needs before its features are defined (0 before).
_RHYTHM_MIN_BEATS = 8
_RHYTHM_BINS = 16


def rhythm_features(
    rr_prev: np.ndarray, n_beats: int, last: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Causal RR-rhythm descriptors that separate atrial fibrillation from ectopy.

    Over the last ``n_beats`` intervals (the current one included):

    * **entropy**: Shannon entropy of the intervals' histogram (16 equal bins between the
      window's extremes, the single shortest and longest interval dropped), divided by
      ``log 16``. AF spreads intervals evenly (about 0.85 on MIT-BIH); ectopy clusters
      them in two or three groups (record 232's bradycardia with frequent APCs: 0.3).
    * **nrmssd**: root mean square of successive differences over the mean interval.
      High for both AF and frequent ectopy, near 0.03-0.1 for sinus rhythm.

    AF needs both high (Dash et al., Ann Biomed Eng 37:1701, 2009, combine the same
    two with a turning-point test). In AF there is no organised atrial activity, so
    MIT-BIH's annotators call its beats N, never S; these features let a model (and
    :func:`vitalgru.models.arrhythmia.apply_rhythm_gate`) stop calling irregular AF beats
    premature.

    ``last``: only the last ``last`` rows (None: all), as the whole computation gives them
    (a row reads its own window): a live monitor needs its newest beat's.

    Returns
    -------
    entropy, nrmssd : numpy.ndarray
        ``(n,)`` (with ``last``: ``(min(last, n),)``) float64 each; 0 while fewer than 8
        intervals are available.
    """
    rr = np.asarray(rr_prev, np.float64)
    n_all = rr.shape[0]
    n = n_all if last is None else min(max(int(last), 0), n_all)  # rows computed
    ent = np.zeros(n)
    nrm = np.zeros(n)
    if n_all < _RHYTHM_MIN_BEATS or n == 0:
        return ent, nrm
    w = int(max(n_beats, _RHYTHM_MIN_BEATS))
    pad = np.full(w - 1, np.nan)
    # (n, w): row k ends at interval n_all - n + k
    view = sliding_window_view(np.concatenate([pad, rr]), w)[n_all - n :]
    with np.errstate(invalid="ignore", divide="ignore"):  # the first rows are mostly padding
        d = np.diff(view, axis=1)
        nrm = np.sqrt(_nanmean_rows(d**2)) / _nanmean_rows(view)
        srt = np.sort(view, axis=1)  # NaN (padding) sorts last
        count = np.sum(np.isfinite(view), axis=1)
        # Drop the shortest and the longest interval of each window.
        col = np.arange(w)[None, :]
        keep = (col >= 1) & (col < (count - 1)[:, None])
        lo = srt[:, 1]
        hi = np.take_along_axis(srt, np.maximum(count - 2, 1)[:, None], axis=1)[:, 0]
        span = np.where(hi > lo, hi - lo, 1.0)
        rel = np.nan_to_num((srt - lo[:, None]) / span[:, None])
        b = np.clip(np.floor(rel * _RHYTHM_BINS), 0, _RHYTHM_BINS - 1).astype(np.int64)
        hist = np.zeros((n, _RHYTHM_BINS))
        np.add.at(hist, (np.repeat(np.arange(n), w)[keep.ravel()], b.ravel()[keep.ravel()]), 1.0)
        prob = hist / np.maximum(hist.sum(axis=1, keepdims=True), 1.0)
        ent = -np.sum(np.where(prob > 0, prob * np.log(np.where(prob > 0, prob, 1.0)), 0.0), axis=1)
        ent = ent / np.log(_RHYTHM_BINS)
    short = count < _RHYTHM_MIN_BEATS
    ent[short] = 0.0
    nrm[short] = 0.0
    return np.nan_to_num(ent), np.nan_to_num(nrm)


def _nanmean_rows(a: np.ndarray) -> np.ndarray:
    """``np.nanmean(a, axis=1)`` to the bit (NaN for a row of NaN too) without its
    RuntimeWarning, under the caller's ``np.errstate``. The warning was silenced with
    ``warnings.catch_warnings``, which swaps the process's filter list and is not
    thread-safe: monitors scoring in threads left "ignore RuntimeWarning" installed for
    the whole process."""
    return np.nansum(a, axis=1) / np.sum(~np.isnan(a), axis=1)


def rr_features(
    sample_idx: np.ndarray, fs: float, settings: FeatureSettings, last: int | None = None
) -> np.ndarray:
    """RR features of one record's beats.

    Parameters
    ----------
    sample_idx : numpy.ndarray
        ``(n,)`` increasing R-peak sample indices at ``fs``.
    fs : float
        Sampling rate of ``sample_idx`` in Hz.
    settings : FeatureSettings
        Averaging lengths.
    last : int, optional
        Only the last ``last`` rows (None: all), as the whole result's last rows.

    Returns
    -------
    numpy.ndarray
        ``(n, N_RR_FEATURES)`` (with ``last``: ``(min(last, n), N_RR_FEATURES)``) float32,
        columns named by :data:`RR_FEATURES`. Row k uses beats ``<= k + 1`` (one beat of
        look-ahead for ``rr_next``).
    """
    if not fs > 0:
        raise ValueError(f"fs must be > 0 Hz, got {fs}")
    t = np.asarray(sample_idx, dtype=np.float64) / fs
    n = t.shape[0]
    if n == 0:
        return np.zeros((0, N_RR_FEATURES), np.float32)
    if n == 1:
        rr = np.array([1.0])
    else:
        if np.any(np.diff(t) <= 0):
            raise ValueError("sample_idx must be strictly increasing")
        rr = np.diff(t)
    rr = np.clip(rr, RR_MIN_S, RR_MAX_S)
    # rr_prev[k] = t[k] - t[k-1]; the first beat borrows its successor's interval.
    rr_prev = np.concatenate([rr[:1], rr]) if n > 1 else rr
    rr_next = np.concatenate([rr, rr[-1:]]) if n > 1 else rr
    local = causal_mean(rr_prev, settings.local_rr_beats)
    long = causal_mean(rr_prev, settings.long_rr_beats)
    # Irregularity: spread of log successive-RR changes. In atrial fibrillation every
    # interval is "premature" relative to the mean, so prematurity alone would call
    # ordinary AF beats S; irregularity tells the two apart (cf. RR-variability
    # features of Llamedo & Martinez 2011).
    d = np.abs(np.diff(np.log(rr_prev), prepend=np.log(rr_prev[0])))
    irr_local = causal_mean(d, settings.local_rr_beats)
    irr_long = causal_mean(d, 5 * settings.local_rr_beats)
    rhythm_ent, rhythm_nrm = rhythm_features(rr_prev, settings.rhythm_beats, last)
    k = n - rhythm_ent.shape[0]  # rows left out (last); the means read every beat first
    rr_prev, rr_next, local, long = rr_prev[k:], rr_next[k:], local[k:], long[k:]
    irr_local, irr_long = irr_local[k:], irr_long[k:]
    feats = np.stack(
        [
            np.log(rr_prev),
            np.log(rr_next),
            np.log(rr_prev / local),
            np.log(rr_next / local),
            np.log(rr_prev / long),
            np.log(rr_next / long),
            np.log(rr_next / rr_prev),
            np.log(local / long),
            irr_local,
            irr_long,
            rhythm_ent,
            rhythm_nrm,
        ],
        axis=1,
    )
    return feats.astype(np.float32)


def morphology_features(windows: np.ndarray, settings: FeatureSettings) -> np.ndarray:
    """Template-relative, amplitude-normalised beat windows (see module docstring).

    Parameters
    ----------
    windows : numpy.ndarray
        ``(n, n_samples)`` filtered beat windows (mV) of one record, in time order; finite
        (NaN or inf is a ``ValueError``, as in :func:`running_median_template`).

    Returns
    -------
    numpy.ndarray
        ``(n, 2, n_samples)`` float32: [window / scale, (window - template) / scale].
    """
    w = np.asarray(windows, dtype=np.float32)
    template = running_median_template(w, settings.template_beats)
    scale = np.maximum(np.abs(template).max(axis=1), _MIN_SCALE_MV)[:, None]
    return np.stack([w / scale, (w - template) / scale], axis=1).astype(np.float32)


def latest_morphology(windows: np.ndarray, settings: FeatureSettings) -> np.ndarray:
    """Row ``-1`` of :func:`morphology_features` of ``windows``, computed for that beat alone.

    Parameters
    ----------
    windows : numpy.ndarray
        ``(m, n_samples)`` filtered beat windows ending with the beat to describe; only the
        last ``settings.template_beats`` are used (the beat's running template), and they
        must be finite (NaN or inf is a ``ValueError``, as offline).

    Returns
    -------
    numpy.ndarray
        ``(2, n_samples)`` float32.
    """
    w = np.asarray(windows, dtype=np.float32)[-settings.template_beats :]
    if w.ndim != 2 or w.shape[0] == 0:
        raise ValueError(f"windows must be (n_beats >= 1, n_samples), got shape {w.shape}")
    _check_finite(w)  # as offline: a NaN is refused, not spread to the next templates
    template = np.median(w, axis=0)
    scale = max(float(np.abs(template).max()), _MIN_SCALE_MV)
    return np.stack([w[-1] / scale, (w[-1] - template) / scale]).astype(np.float32)


def beat_features(
    windows: np.ndarray,
    sample_idx: np.ndarray,
    fs: float,
    settings: FeatureSettings,
    rr_columns: Sequence[str] | None = None,
) -> np.ndarray:
    """Model inputs of one record's beats, in time order.

    Parameters
    ----------
    windows : numpy.ndarray
        ``(n, L)`` finite filtered beat windows (mV) centred on the R peaks.
    sample_idx : numpy.ndarray
        ``(n,)`` R-peak sample indices at ``fs``.
    fs : float
        Sampling rate in Hz.
    settings : FeatureSettings
    rr_columns : sequence of str, optional
        The RR features to keep, by name and in this order (what a stored model was
        trained with, from its preprocessing ``rr_features``); default all of
        :data:`RR_FEATURES`.

    Returns
    -------
    numpy.ndarray
        ``(n, 2 * L + n_rr)`` float32: morphology channels 0 and 1 flattened,
        then the RR features. Row k depends on beats ``<= k + LOOKAHEAD_BEATS``.
    """
    w = np.asarray(windows)
    if w.ndim != 2:
        raise ValueError(f"windows must be (n_beats, n_samples), got shape {w.shape}")
    if w.shape[0] != np.asarray(sample_idx).shape[0]:
        raise ValueError(
            f"{w.shape[0]} windows but {np.asarray(sample_idx).shape[0]} beat positions"
        )
    morph = morphology_features(w, settings).reshape(w.shape[0], -1)
    rr = select_rr_columns(rr_features(sample_idx, fs, settings), rr_columns)
    return np.concatenate([morph, rr], axis=1)


def select_rr_columns(rr: np.ndarray, rr_columns: Sequence[str] | None) -> np.ndarray:
    """The columns ``rr_columns`` (names of :data:`RR_FEATURES`, in that order) of
    :func:`rr_features` output ``(n, N_RR_FEATURES)``; all of them for None."""
    if rr_columns is None or list(rr_columns) == list(RR_FEATURES):
        return rr
    unknown = [c for c in rr_columns if c not in RR_FEATURES]
    if unknown:
        raise ValueError(f"unknown RR feature(s) {unknown}; this vitalgru has {RR_FEATURES}")
    return rr[:, [RR_FEATURES.index(c) for c in rr_columns]]
