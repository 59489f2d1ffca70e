"""QRS candidates of an ECG stream: the front end of the R-peak detector of
:mod:`vitalgru.dsp.rpeaks`, where the method is described.

The input, its non-finite samples held at the last finite value, is band-passed (Butterworth,
QRS energy band), its absolute first difference taken and integrated over a moving window
(MWI). A candidate is a local maximum of the MWI that dominates +/- ``peak_window_s``; with it
come the steepest slope in its integration window (for the T-wave test) and the R wave's
location in the input signal with its deflection from the local baseline. All of it is
causal, with state carried across chunks, so any chunking gives the same candidates.
:mod:`vitalgru.dsp.rpeak_decision` decides which candidates are QRS complexes.
"""

from __future__ import annotations

import numpy as np
from scipy import signal as sps
from scipy.ndimage import maximum_filter1d

from vitalgru.dsp.filters import _as_signal

__all__ = ["Cand", "QrsCandidates"]

# MWI values below this (signal units per sample) are rounding residue of a flat input, not
# waves: a QRS gives about 1e-2 mV/sample, a 1 uV-resolution ADC's step 1e-3 mV/sample.
MWI_FLOOR = 1e-7
FIRST_PEAK_FRAC = 0.5  # first excursion above half the window's largest marks the R wave

# A candidate: (MWI index, MWI height, largest |slope| in its window, R-wave location, its
# deflection from the local baseline in input units), indexes counted from the stream's start.
Cand = tuple[int, float, float, int, float]


def _append(buf: np.ndarray, new: np.ndarray) -> np.ndarray:
    return new if buf.size == 0 else np.concatenate([buf, new])


class QrsCandidates:
    """Feature buffers of one stream and the candidates found in them.

    Parameters
    ----------
    fs : float
        Sampling frequency in Hz (already checked against ``band_hz``).
    band_hz, mwi_s, peak_window_s, refine_s
        As in :class:`vitalgru.dsp.rpeaks.RpeakStream`.
    history_n : int
        Samples of MWI to keep before the last candidate tested, besides those the
        candidate tests need (the decision's relearning reads them).

    Attributes
    ----------
    n : int
        Samples consumed.
    buf0 : int
        Global index of the first sample in the buffers :attr:`mwi` (and the input and slope).
    scan : int
        First global index not yet tested as a candidate.
    latency_n : int
        Longest delay in samples between a candidate's R wave and the sample that makes the
        candidate final.
    """

    def __init__(
        self,
        fs: float,
        *,
        band_hz: tuple[float, float],
        mwi_s: float,
        peak_window_s: float,
        refine_s: float,
        history_n: int,
    ) -> None:
        self.fs = fs
        self._sos = sps.butter(2, band_hz, "bandpass", fs=fs, output="sos")
        # Group delay of the band-pass at the centre of the QRS band, used to map a band-passed
        # maximum back onto the input's time axis before the final refinement.
        f0 = float(np.sqrt(band_hz[0] * band_hz[1]))
        b, a = sps.sos2tf(self._sos)
        _, gd = sps.group_delay((b, a), w=[f0], fs=fs)
        self._gd = int(round(float(gd[0])))
        self._w_mwi = max(1, int(round(mwi_s * fs)))
        self._l_peak = max(1, int(round(peak_window_s * fs)))
        self._refine = max(1, int(round(refine_s * fs)))
        # Samples of left context kept for candidate tests, slope and location searches.
        self._left = self._l_peak + self._w_mwi + self._gd + 2 * self._refine + 2
        # ... and the MWI of the decision's history.
        self._keep = max(self._left, history_n + self._l_peak)
        # A candidate is final once L samples follow it; its peak lies at most
        # group delay + MWI window + refine samples before it.
        self.latency_n = self._l_peak + self._gd + self._w_mwi + self._refine + 1
        self.reset()

    def reset(self) -> None:
        """Start a new stream (forget all state)."""
        self._zi: np.ndarray | None = None
        self._csum_tail = np.zeros(self._w_mwi)  # running sums of the last MWI window
        self._last_bp = 0.0
        self._last_x: float | None = None
        self.n = 0
        # Buffers covering global samples [self.buf0, self.n).
        self.buf0 = 0
        self._x = np.empty(0)
        self.mwi = np.empty(0)
        self._slope = np.empty(0)
        self.scan = 0

    # --------------------------------------------------------------- features
    def feed(self, chunk: np.ndarray) -> int:
        """Append the next samples (non-finite ones held), their |slope| and MWI to the
        buffers; return how many there were."""
        x = self._clean_input(chunk)
        if x.shape[0] == 0:
            return 0
        self._features(x)
        self.n += x.shape[0]
        return x.shape[0]

    def _features(self, x: np.ndarray) -> None:
        """Append the new samples ``x``, their |slope| and MWI to the buffers."""
        if self._zi is None:
            self._zi = sps.sosfilt_zi(self._sos) * x[0]
        bp, self._zi = sps.sosfilt(self._sos, x, zi=self._zi)
        slope = np.empty_like(bp)
        slope[0] = bp[0] - self._last_bp
        np.subtract(bp[1:], bp[:-1], out=slope[1:])
        np.abs(slope, out=slope)
        self._last_bp = float(bp[-1])
        # MWI as a difference of running sums. The sum is carried across chunks and
        # accumulated strictly in sample order, so any chunking gives bit-identical values;
        # its rounding error relative to one window's sum grows with the stream length
        # (about 1e-10 after a day at 360 Hz).
        w = self._w_mwi
        full = np.empty(w + slope.shape[0])
        full[:w] = self._csum_tail
        head = slope.copy()
        head[0] += self._csum_tail[-1]
        np.cumsum(head, out=full[w:])
        mwi = np.subtract(full[w:], full[:-w], out=head)
        mwi /= w
        self._csum_tail = full[-w:].copy()
        self._x = _append(self._x, x)
        self.mwi = _append(self.mwi, mwi)
        self._slope = _append(self._slope, slope)

    def _clean_input(self, chunk: np.ndarray) -> np.ndarray:
        x = _as_signal(chunk, name="chunk", allow_nonfinite=True)
        if x.ndim != 1:
            raise ValueError(f"chunk must be 1-D (n,) samples of one lead, got shape {x.shape}")
        x = np.array(x, dtype=np.float64)
        bad = ~np.isfinite(x)
        if bad.any():
            # Hold the last finite value (causal, so chunking does not change the result).
            idx = np.where(bad, 0, np.arange(x.shape[0]))
            np.maximum.accumulate(idx, out=idx)
            prev = self._last_x if self._last_x is not None else 0.0
            lead = bad & (np.cumsum(~bad) == 0)
            x = x[idx]
            x[lead] = prev
        if x.shape[0]:
            self._last_x = float(x[-1])
        return x

    # ------------------------------------------------------------- candidates
    def candidates(self, final: bool) -> list[Cand]:
        """Candidates in [scan, n - L) (or up to n when flushing), as :data:`Cand` tuples;
        advances :attr:`scan` past them."""
        end = self.n if final else self.n - self._l_peak
        if end <= self.scan:
            return []
        o = self.buf0
        m = self.mwi
        lo = self.scan - o
        hi = end - o
        # Max over +/- L (centred); beyond the buffer's end (flush only) counts as -inf.
        seg_lo = max(0, lo - self._l_peak)
        seg_hi = min(m.shape[0], hi + self._l_peak)
        seg = m[seg_lo:seg_hi]
        mx = maximum_filter1d(seg, size=2 * self._l_peak + 1, mode="nearest")
        if lo - self._l_peak < 0 and o > 0:  # not enough left context (cannot happen)
            raise RuntimeError("internal buffer underflow in RpeakStream")
        core = m[lo:hi]
        # rising into the sample (the first sample of a plateau; index 0 has no left side)
        if lo > 0:
            rising = core > m[lo - 1 : hi - 1]
        else:
            rising = np.empty(core.shape[0], dtype=bool)
            rising[0] = True
            np.greater(core[1:], core[:-1], out=rising[1:])
        ok = rising & (core >= mx[lo - seg_lo : hi - seg_lo]) & (core > MWI_FLOOR)
        cand = np.flatnonzero(ok) + lo
        self.scan = end
        if cand.size == 0:
            return []
        # Max slope within the MWI window ending at the candidate (T-wave test).
        w = self._w_mwi
        offs = np.arange(-w + 1, 1)
        win = np.clip(cand[:, None] + offs[None, :], 0, None)
        slope = self._slope[win].max(axis=1)
        loc, amp = self._locate(cand)
        return [
            (int(c) + o, float(h), float(sl), int(lc) + o, float(a))
            for c, h, sl, lc, a in zip(cand, m[cand], slope, loc, amp, strict=True)
        ]

    def _locate(self, cand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """R-wave location (buffer index) of each candidate (MWI peak, buffer index), and the
        largest deflection from the baseline there (input units).

        The QRS lies in the MWI window ending at the candidate, delayed by the band-pass group
        delay. In the input signal over that window (widened by ``refine_s`` each side) the
        baseline is taken as the line through the medians of its first and last 10 %, and
        the R wave is the first local extremum of the deviation from it that reaches half the
        largest deviation: the first major deflection, which is where MIT-BIH places beat
        labels even in wide (paced, ventricular) complexes whose later deflection is larger.
        """
        n = cand.shape[0]
        rows = np.arange(n)
        r = self._refine
        start = cand - self._gd - self._w_mwi - r
        width = self._w_mwi + 2 * r + 1
        idx = np.clip(start[:, None] + np.arange(width)[None, :], 0, self._x.shape[0] - 1)
        xs = self._x[idx]
        e = max(1, width // 10)
        y0 = np.median(xs[:, :e], axis=1, keepdims=True)
        y1 = np.median(xs[:, -e:], axis=1, keepdims=True)
        ramp = np.linspace(0.0, 1.0, width)[None, :]
        dev = np.abs(xs - (y0 + (y1 - y0) * ramp))
        amp = dev.max(axis=1)
        first = np.argmax(dev >= FIRST_PEAK_FRAC * amp[:, None], axis=1)
        # Climb to the local maximum that follows the first crossing (within 30 ms).
        span = max(1, int(round(0.030 * self.fs)))
        j = np.clip(first[:, None] + np.arange(span)[None, :], 0, width - 1)
        dj = dev[rows[:, None], j]
        # stop at the first sample where the deviation falls again (the local maximum)
        falling = np.diff(dj, axis=1, append=-np.inf) < 0
        k = j[rows, np.argmax(falling, axis=1)]
        return idx[rows, k], amp

    def trim(self) -> None:
        """Drop buffered samples no later candidate test or history read needs."""
        keep_from = self.scan - self._keep
        cut = keep_from - self.buf0
        if cut > 4096:  # amortise the copies
            self._x = self._x[cut:]
            self.mwi = self.mwi[cut:]
            self._slope = self._slope[cut:]
            self.buf0 += cut
