"""Beat-centred windows and RR-interval features for beat classification.

RR features follow de Chazal, O'Dwyer & Reilly, IEEE TBME 51(7):1196-1206 (2004), section
II-C: the pre-RR and post-RR intervals, a local average and a record average; their ratios
(Llamedo & Martinez 2011; Mondejar-Guerra et al. 2019) normalise away the patient's own
heart rate, which is what makes them transfer across patients.

Causality: ``rr_prev_s``, ``rr_local_s`` and ``rr_run_avg_s`` use only beats up to the
current one, except at the first beat: it has no previous interval and takes its next one
(so beat 0's values move with beat 1, one beat of look-ahead). ``rr_next_s`` needs the
next beat (one beat of look-ahead) and ``rr_avg_s`` (with ``rr_prev_ratio_avg`` and
``rr_next_ratio_avg``) the whole record (offline only; ``rr_run_avg_s`` is its causal
counterpart).

These columns are stored in an ingest's ``beats.parquet`` (with their mean and standard
deviation in its manifest) to describe the dataset; no model, baseline or live scorer reads
them: the arrhythmia classifier computes causal RR features of its own from the beats'
sample indices (:mod:`vitalgru.data.beat_features`), offline and live alike.
"""

from __future__ import annotations

import numpy as np

#: Column order of :func:`rr_features`.
RR_FEATURES: tuple[str, ...] = (
    "rr_prev_s",
    "rr_next_s",
    "rr_local_s",
    "rr_avg_s",
    "rr_run_avg_s",
    "rr_prev_ratio_local",
    "rr_next_ratio_local",
    "rr_prev_ratio_avg",
    "rr_next_ratio_avg",
)


def _check_fs(fs: float) -> float:
    fs = float(fs)
    if not np.isfinite(fs) or fs <= 0:
        raise ValueError(f"fs must be a positive number of Hz, got {fs}")
    return fs


def beat_windows(
    x: np.ndarray, r_idx: np.ndarray, fs: float, before_s: float = 0.25, after_s: float = 0.45
) -> tuple[np.ndarray, np.ndarray]:
    """Cut a fixed window around each R peak.

    Parameters
    ----------
    x : numpy.ndarray
        ``(n_samples,)`` one lead, any unit.
    r_idx : numpy.ndarray
        ``(n_beats,)`` R-peak sample indices into ``x``.
    fs : float
        Sampling frequency of ``x`` in Hz.
    before_s, after_s : float
        Window extent before and after the R peak, in seconds.

    Returns
    -------
    windows : numpy.ndarray
        ``(n_beats, n_before + n_after)`` float32; the R peak is at column ``n_before``.
        Windows that run past either end of ``x`` are padded with the edge value,
        so no beat is dropped.
    inside : numpy.ndarray
        ``(n_beats,)`` bool, False where padding was needed.
    """
    fs = _check_fs(fs)
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"x must be one lead (n_samples,), got shape {x.shape}")
    if x.size == 0:
        raise ValueError("x is empty")
    r_idx = np.asarray(r_idx, dtype=np.int64)
    n_before = int(round(before_s * fs))
    n_after = int(round(after_s * fs))
    if n_before < 0 or n_after <= 0:
        raise ValueError(f"before_s must be >= 0 and after_s > 0, got {before_s}, {after_s}")
    offsets = np.arange(-n_before, n_after, dtype=np.int64)
    idx = r_idx[:, None] + offsets[None, :]
    inside = (idx[:, 0] >= 0) & (idx[:, -1] < x.size)
    windows = x[np.clip(idx, 0, x.size - 1)]
    return windows.astype(np.float32, copy=False), inside


def rr_features(
    r_idx: np.ndarray, fs: float, local_beats: int = 10, run_avg_s: float = 300.0
) -> np.ndarray:
    """RR-interval features of each beat, in the column order of :data:`RR_FEATURES`.

    Parameters
    ----------
    r_idx : numpy.ndarray
        ``(n_beats,)`` increasing R-peak sample indices (every beat of the record,
        whatever its class, so intervals are true beat-to-beat intervals).
    fs : float
        Sampling frequency of the indices, in Hz.
    local_beats : int
        Number of preceding RR intervals averaged into ``rr_local_s`` (a positive integer).
    run_avg_s : float
        Span in seconds of the causal running average ``rr_run_avg_s`` (de Chazal use
        a 5-minute neighbourhood for their local average; here it looks back only).

    Returns
    -------
    numpy.ndarray
        ``(n_beats, 9)`` float32. The first beat's previous interval and the last beat's
        next interval are unknown; they take the nearest known interval (the first beat's
        causal features therefore use the second beat).

    Raises
    ------
    TypeError
        ``local_beats`` is not an integer (a float was an ``IndexError`` from inside).
    ValueError
        ``fs`` or ``local_beats`` is not positive; fewer than 2 beats; ``r_idx`` not
        strictly increasing.
    """
    fs = _check_fs(fs)
    if isinstance(local_beats, bool) or not isinstance(local_beats, int | np.integer):
        raise TypeError(
            f"local_beats must be a whole number of RR intervals, got {local_beats!r} "
            f"({type(local_beats).__name__})"
        )
    if local_beats < 1:
        raise ValueError(f"local_beats must be >= 1, got {local_beats}")
    r = np.asarray(r_idx, dtype=np.float64)
    n = r.size
    if n < 2:
        raise ValueError(f"need at least 2 beats for RR intervals, got {n}")
    if np.any(np.diff(r) <= 0):
        raise ValueError("r_idx must be strictly increasing")
    rr = np.diff(r) / fs  # (n-1,) interval ending at beat i+1
    prev = np.concatenate([[rr[0]], rr])
    nxt = np.concatenate([rr, [rr[-1]]])
    # causal mean of the last `local_beats` previous intervals (including prev)
    csum = np.concatenate([[0.0], np.cumsum(prev)])
    i = np.arange(n)
    lo = np.maximum(0, i + 1 - local_beats)
    local = (csum[i + 1] - csum[lo]) / (i + 1 - lo)
    avg = np.full(n, rr.mean())
    # causal running mean of previous intervals within the last `run_avg_s` seconds
    t = r / fs
    start = np.searchsorted(t, t - run_avg_s, side="left")
    start = np.minimum(start, i)
    run_avg = (csum[i + 1] - csum[start]) / (i + 1 - start)
    out = np.stack(
        [prev, nxt, local, avg, run_avg, prev / local, nxt / local, prev / avg, nxt / avg],
        axis=1,
    )
    return out.astype(np.float32)
