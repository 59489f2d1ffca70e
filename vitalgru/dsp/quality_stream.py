"""ECG signal quality judged as a live monitor can: on trailing windows, each verdict known
the moment the window's last sample arrives (:func:`ecg_quality_trailing` on a whole
recording, :class:`QualityStream` as samples come). The checks and their limits are
:func:`vitalgru.dsp.quality.ecg_quality`'s.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from vitalgru.dsp.filters import EcgCleaner, _as_signal, check_fs
from vitalgru.dsp.quality import (
    BEAT_PRE_S,
    Thresholds,
    check_window,
    judge_windows,
    prepare_lead,
)
from vitalgru.dsp.quality_result import QualityResult

__all__ = ["QualityStream", "ecg_quality_trailing", "hold_last"]


def ecg_quality_trailing(
    x: np.ndarray,
    fs: float,
    window_s: float = 10.0,
    hop_s: float = 2.0,
    *,
    peaks: np.ndarray | None = None,
    **checks: Any,
) -> QualityResult:
    """Judge one ECG lead on trailing windows, as a live monitor can.

    Window ``k`` covers the ``window_s`` seconds ending at ``window_s + k * hop_s`` (windows
    overlap when ``hop_s < window_s``), so its verdict is known the moment its last sample
    arrives. :func:`ecg_quality` judges consecutive windows with the whole recording at hand
    (a beat gets the verdict of a window that may end seconds later); here every verdict
    uses only samples up to the window's end. The beat-similarity check runs on the signal
    cleaned by the causal :class:`vitalgru.dsp.filters.EcgCleaner` (the same filter a stream
    runs), not the zero-phase one. Use :meth:`QualityResult.usable_at` to give each beat the verdict of
    the latest window that has ended by then.

    Parameters
    ----------
    x, fs, peaks
        As in :func:`ecg_quality`.
    window_s : float
        Length of every window in s.
    hop_s : float
        Time between the ends of consecutive windows in s (how often a verdict is made).
    **checks
        The limits of :func:`ecg_quality` (``flat_mv``, ``clip_frac``, ``adc_range``,
        ``step_mv``, ``range_mv``, ``min_beat_corr``, ``min_bas``, ``max_gap_s``,
        ``max_gap_frac``).

    Returns
    -------
    QualityResult
        One row per full window; none when the signal is shorter than ``window_s``.
    """
    check_window(hop_s, "hop_s")
    th = Thresholds(**checks)
    arr, fs, _, bad, peaks = prepare_lead(x, fs, window_s, peaks, need_filled=False)
    # a lead without gaps is its own held lead (no copy of a whole recording)
    filled = hold_last(arr, 0.0)[0] if bad.any() else arr
    n = arr.shape[0]
    w = max(1, int(round(window_s * fs)))
    hop = max(1, int(round(hop_s * fs)))
    stops = np.arange(w, n + 1, hop, dtype=np.int64)
    starts = stops - w
    clean = EcgCleaner(fs, notch_hz=None).process(filled) if n > 1 else filled
    return judge_windows(arr, filled, bad, clean, peaks, fs, window_s, starts, stops, th, True)


def hold_last(x: np.ndarray, last: float) -> tuple[np.ndarray, float]:
    """``x`` with every non-finite sample replaced by the latest finite one before it
    (``last`` before the first), as a stream must fill a gap; and the new latest value."""
    finite = np.isfinite(x)
    if finite.all():
        return x.astype(np.float64), float(x[-1]) if x.size else last
    idx = np.where(finite, np.arange(x.size), -1)
    np.maximum.accumulate(idx, out=idx)
    out = np.where(idx >= 0, x[np.clip(idx, 0, None)], last).astype(np.float64)
    return out, float(out[-1]) if x.size else last


class QualityStream:
    """The live form of :func:`ecg_quality_trailing`: push samples as they arrive, get
    each trailing window's verdict the moment its last sample is in.

    Fed the same samples and R peaks in chunks of any size, it gives exactly the windows
    and verdicts of :func:`ecg_quality_trailing` on the whole signal. It holds only the
    last window (plus the span before a beat that the similarity check looks at).

    Parameters
    ----------
    fs : float
        Sampling frequency in Hz.
    window_s, hop_s, **checks
        As in :func:`ecg_quality_trailing`.
    """

    def __init__(
        self, fs: float, window_s: float = 10.0, hop_s: float = 2.0, **checks: Any
    ) -> None:
        self.fs = check_fs(fs, cutoffs_hz=(40.0,))
        check_window(window_s)
        check_window(hop_s, "hop_s")
        self.window_s = float(window_s)
        self._th = Thresholds(**checks)
        self._w = max(1, int(round(window_s * self.fs)))
        self._hop = max(1, int(round(hop_s * self.fs)))
        # samples kept before the next window: its first beat's look back, and enough of a
        # missing stretch that began before it to measure it past max_gap_s (a 0.6 s gap
        # cut to its last 0.2 s passed a 0.5 s limit live while it failed offline)
        self._margin = max(int(round(BEAT_PRE_S * self.fs)),
                           int(math.ceil(self._th.max_gap_s * self.fs))) + 1  # fmt: skip
        self._cleaner = EcgCleaner(self.fs, notch_hz=None)
        self._last = 0.0
        self._origin = 0  # absolute index of the buffers' first sample
        self._raw = np.empty(0)
        self._filled = np.empty(0)
        self._clean = np.empty(0)
        self._peaks = np.empty(0, dtype=np.int64)
        self._next_stop = self._w

    @property
    def n_seen(self) -> int:
        """Samples pushed so far."""
        return self._origin + self._raw.shape[0]

    def push(self, chunk: np.ndarray, peaks: np.ndarray | None = None) -> QualityResult:
        """Add the next samples and the R peaks found in them.

        Parameters
        ----------
        chunk : numpy.ndarray
            ``(n,)`` next samples in mV; NaN/inf allowed (flagged; held at the last finite
            value for filtering, as a stream must).
        peaks : numpy.ndarray, optional
            Absolute sample indices of R peaks inside this chunk (e.g. from
            :class:`vitalgru.dsp.rpeaks.RpeakStream`); a window is judged with the peaks
            pushed by the time its last sample arrives.

        Returns
        -------
        QualityResult
            The windows that ended in this chunk (absolute ``start_idx``/``stop_idx``);
            often none.
        """
        arr = _as_signal(chunk, name="chunk", allow_nonfinite=True)
        if arr.ndim != 1:
            raise ValueError(f"chunk must be 1-D (n,) samples, got shape {arr.shape}")
        filled, self._last = hold_last(arr, self._last)
        clean = self._cleaner.process(filled) if arr.size else filled
        self._raw = np.concatenate([self._raw, arr])
        self._filled = np.concatenate([self._filled, filled])
        self._clean = np.concatenate([self._clean, clean])
        if peaks is not None and len(peaks):
            self._peaks = np.union1d(self._peaks, np.asarray(peaks, dtype=np.int64))
        stops = np.arange(self._next_stop, self.n_seen + 1, self._hop, dtype=np.int64)
        o = self._origin
        res = judge_windows(
            self._raw,
            self._filled,
            ~np.isfinite(self._raw),
            self._clean,
            self._peaks - o,
            self.fs,
            self.window_s,
            stops - self._w - o,
            stops - o,
            self._th,
            True,
        )
        if stops.size:
            self._next_stop = int(stops[-1]) + self._hop
        keep_from = max(0, self._next_stop - self._w - self._margin)
        if keep_from > o:  # forget what no later window can look at
            cut = keep_from - o
            self._raw, self._filled, self._clean = (
                self._raw[cut:],
                self._filled[cut:],
                self._clean[cut:],
            )
            self._origin = keep_from
            self._peaks = self._peaks[self._peaks >= keep_from]
        return dataclasses.replace(res, start_idx=res.start_idx + o, stop_idx=res.stop_idx + o)

    def silence_flags(self, x: np.ndarray) -> tuple[str, ...]:
        """What this check finds wrong with ``x``, a stretch without beats (the silence of
        a pause), judged as one window by its own checks and limits.

        Only the checks that need no beat: ``nonfinite`` (missing samples beyond what is
        bridged), ``flat`` (robust amplitude under ``flat_mv``) and ``lead_off`` (a
        non-finite stretch, a step above ``step_mv``, an amplitude above ``range_mv``).
        ``noisy`` needs beats, and ``clipped`` is left out too: without a QRS, the top of a
        quiet baseline in ADC steps is reached by many samples, so an asystole would read
        as clipped (an amplifier at its rail is a flat line, which ``flat`` finds).
        Empty for a stretch that passes, or holds no sample.
        """
        arr = _as_signal(x, name="stretch", allow_nonfinite=True).reshape(-1)
        n = arr.shape[0]
        if n == 0:
            return ()
        filled, _ = hold_last(arr, 0.0)
        none = np.zeros(1, dtype=np.int64)
        res = judge_windows(arr, filled, ~np.isfinite(arr), filled, np.empty(0, np.int64),
                            self.fs, n / self.fs, none, none + n, self._th, True)  # fmt: skip
        return tuple(f for f in ("nonfinite", "flat", "lead_off") if bool(getattr(res, f)[0]))
