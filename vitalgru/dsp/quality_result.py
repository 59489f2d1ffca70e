"""What the ECG quality checks found, window by window, and how to read it.

:class:`QualityResult` holds one lead's per-window flags, beat similarity, spectral ratio,
amplitude and score, as :func:`vitalgru.dsp.quality.ecg_quality` (consecutive windows) and
:func:`vitalgru.dsp.quality_stream.ecg_quality_trailing` (trailing windows, as a live monitor
judges) make them; the checks themselves are described in :mod:`vitalgru.dsp.quality`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["QualityResult"]


@dataclass(frozen=True, slots=True)
class QualityResult:
    """Per-window quality of one ECG lead.

    All arrays have shape ``(n_windows,)``; window ``k`` covers samples
    ``start_idx[k]:stop_idx[k]`` of the input.

    Attributes
    ----------
    fs : float
        Sampling frequency in Hz.
    window_s : float
        Nominal window length in s (the last window may be shorter, at least half of it).
    start_idx, stop_idx : numpy.ndarray
        int64 sample bounds of each window.
    nonfinite, flat, clipped, lead_off, noisy : numpy.ndarray
        bool flags (see :mod:`vitalgru.dsp.quality`).
    n_beats : numpy.ndarray
        int64 R peaks found in the window.
    beat_corr : numpy.ndarray
        float64 mean over beats of the best correlation with another beat of the window (NaN
        if fewer than 3 beats).
    bas_ratio : numpy.ndarray
        float64 share of the 0-40 Hz power above 1 Hz (NaN for non-finite windows).
    amplitude : numpy.ndarray
        float64 robust amplitude (1st to 99th percentile) of the finite samples, in the
        signal's units (NaN when fewer than two are finite).
    score : numpy.ndarray
        float64 in [0, 1]; higher is better.
    """

    fs: float
    window_s: float
    start_idx: np.ndarray
    stop_idx: np.ndarray
    nonfinite: np.ndarray
    flat: np.ndarray
    clipped: np.ndarray
    lead_off: np.ndarray
    noisy: np.ndarray
    n_beats: np.ndarray
    beat_corr: np.ndarray
    bas_ratio: np.ndarray
    amplitude: np.ndarray
    score: np.ndarray

    #: Flags that mean no ECG was recorded at all, as against ECG buried in noise.
    HARD_FLAGS = ("nonfinite", "flat", "clipped", "lead_off")

    @property
    def hard_flagged(self) -> np.ndarray:
        """``(n_windows,)`` bool: a hard flag (:attr:`HARD_FLAGS`) set."""
        return np.logical_or.reduce([getattr(self, k) for k in self.HARD_FLAGS])

    @property
    def usable(self) -> np.ndarray:
        """``(n_windows,)`` bool: no flag set."""
        return ~(self.hard_flagged | self.noisy)

    @property
    def n_windows(self) -> int:
        return int(self.start_idx.shape[0])

    def usable_at(self, idx: np.ndarray) -> np.ndarray:
        """``(m,)`` bool: for each sample index, the ``usable`` verdict of the latest window
        that has ended by then (``stop_idx <= idx``); True before any window has ended
        (nothing has been judged bad yet). With :func:`ecg_quality_trailing` windows this
        is what a live monitor knows at that sample."""
        at = np.asarray(idx, dtype=np.int64)
        if not self.n_windows:  # a recording shorter than one window: nothing judged yet
            return np.ones(at.shape, dtype=bool)
        order = np.argsort(self.stop_idx, kind="stable")
        stops, ok = self.stop_idx[order], self.usable[order]
        i = np.searchsorted(stops, at, side="right") - 1
        return np.where(i >= 0, ok[np.clip(i, 0, None)], True)

    @property
    def flagged_fraction(self) -> float:
        """Share of windows with at least one flag (0.0 for no windows)."""
        return float((~self.usable).mean()) if self.n_windows else 0.0

    def to_dict(self) -> dict[str, list]:
        """Column-wise plain-Python view (JSON-serialisable), one entry per window."""
        cols = (
            "start_idx",
            "stop_idx",
            "nonfinite",
            "flat",
            "clipped",
            "lead_off",
            "noisy",
            "n_beats",
            "beat_corr",
            "bas_ratio",
            "amplitude",
            "score",
        )
        out: dict[str, list] = {c: getattr(self, c).tolist() for c in cols}
        out["usable"] = self.usable.tolist()
        return out
