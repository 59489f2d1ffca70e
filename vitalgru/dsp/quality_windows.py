"""Per-window pieces of :func:`vitalgru.dsp.quality.judge_windows` computed for many windows
at once.

A record judged on trailing windows (10 s every 2 s) has about 900 windows per half hour;
the amplitude percentiles, the peaks of each window and the basSQI band masks were made
window by window in Python, which took most of the quality check's time. Each function
here gives exactly (bit for bit) what the window-by-window form gave: the same numpy
routine on the same values, only called once for many windows.
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["bas_ratio", "window_peak_bounds", "window_percentiles", "windows_with_gaps"]

#: Windows per call of np.percentile: bounded memory, (64, window samples) floats.
_CHUNK = 64


def windows_with_gaps(
    run_a: np.ndarray, run_b: np.ndarray, starts: np.ndarray, stops: np.ndarray
) -> np.ndarray:
    """``(k,)`` bool: whether samples ``a - 1`` (the one before the window, which its first
    step reads) to ``b - 1`` of window ``a:b`` hold a missing one, from the missing
    stretches ``run_a[j]:run_b[j]`` (sorted, disjoint; no mask of the whole lead is made)."""
    lo = np.maximum(np.asarray(starts, np.int64) - 1, 0)
    first = np.searchsorted(run_b, lo, "right")  # the first stretch ending after lo
    return np.searchsorted(run_a, stops, "left") > first  # ... starts before the end


def window_percentiles(
    arr: np.ndarray,
    starts: np.ndarray,
    stops: np.ndarray,
    whole: np.ndarray,
    q: tuple[float, ...] = (1.0, 99.0),
) -> np.ndarray:
    """``np.percentile(arr[a:b], q)`` of every window ``a:b`` whose ``whole`` is True.

    Parameters
    ----------
    arr : numpy.ndarray
        ``(n,)`` samples.
    starts, stops : numpy.ndarray
        ``(k,)`` window bounds (any lengths; windows of one length are taken together).
    whole : numpy.ndarray
        ``(k,)`` bool: the windows to compute (those without a missing sample: the caller
        computes the others on their finite samples).
    q : tuple of float
        Percentiles, as ``np.percentile`` takes them.

    Returns
    -------
    numpy.ndarray
        ``(k, len(q))`` float64; NaN rows where ``whole`` is False.
    """
    k = starts.shape[0]
    out = np.full((k, len(q)), np.nan)
    lengths = np.asarray(stops, np.int64) - np.asarray(starts, np.int64)
    todo = np.flatnonzero(np.asarray(whole, bool) & (lengths > 0))
    for length in np.unique(lengths[todo]):
        rows = todo[lengths[todo] == length]
        view = sliding_window_view(arr, int(length))
        for s in range(0, rows.size, _CHUNK):
            r = rows[s : s + _CHUNK]
            out[r] = np.percentile(view[starts[r]], q, axis=1).T
    return out


def window_peak_bounds(
    peaks: np.ndarray, starts: np.ndarray, stops: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """``(lo, hi)``: ``peaks[lo[i]:hi[i]]`` are the peaks with ``a <= p < b`` of window ``i``,
    in their order; None when ``peaks`` is not sorted (then no slice holds them)."""
    if peaks.size > 1 and not bool((np.diff(peaks) >= 0).all()):
        return None
    return np.searchsorted(peaks, starts, "left"), np.searchsorted(peaks, stops, "left")


@functools.lru_cache(maxsize=16)
def _bands(n: int, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """The rfft bins of an ``n``-sample window at ``fs`` up to 40 Hz, and of those the ones
    above 1 Hz (made once per window length, not once per window)."""
    f = np.fft.rfftfreq(n, d=1.0 / fs)
    band = f <= 40.0
    above = band & (f > 1.0)
    band.flags.writeable = above.flags.writeable = False
    return band, above


def bas_ratio(seg: np.ndarray, fs: float) -> float:
    """Share of the 0-40 Hz power above 1 Hz (basSQI) of one window.

    The periodogram of the mean-removed window (a plain real FFT: the ratio does not depend
    on the periodogram's scaling, and the one-sided doubling only leaves out the DC bin,
    which is zero after removing the mean); 0 for a window without power in the band.
    """
    pxx = np.abs(np.fft.rfft(seg - seg.mean())) ** 2
    band, above = _bands(seg.shape[0], float(fs))
    tot = pxx[band].sum()
    return float(pxx[above].sum() / tot) if tot > 0 else 0.0
