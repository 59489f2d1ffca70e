"""R-peak (QRS) detection, offline and streaming, with one implementation for both.

Method ``"hamilton1986"``: the Pan-Tompkins / Hamilton-Tompkins family.

* Pan J, Tompkins WJ. A real-time QRS detection algorithm. IEEE Trans Biomed Eng
  1985;32(3):230-236.
* Hamilton PS, Tompkins WJ. Quantitative investigation of QRS detection rules using the
  MIT/BIH arrhythmia database. IEEE Trans Biomed Eng 1986;33(12):1157-1165.

Pipeline (all causal, state carried across chunks): Butterworth band-pass (QRS energy band)
-> absolute first difference -> moving-window integration (MWI); the absolute value
(as in Hamilton's open-source detector) rather than Pan-Tompkins' square keeps the dynamic
range between small normal and large ectopic beats manageable for one threshold. Candidates
are local maxima of the MWI that dominate +/- ``peak_window_s``. A decision loop over candidates keeps
adaptive signal/noise levels and applies the 200 ms refractory period, T-wave discrimination by
slope within 360 ms, and search-back at 1.66 x the mean RR interval with half the threshold.
After ``RELEARN_S`` (8 s) without a QRS the levels are learnt again from the candidates of
those seconds, as in the learning phase, if the largest deflects at least ``RELEARN_MIN_MV``
(0.2 mV) from its baseline: one large artefact, or beats shrunk to a fifth by a moved lead,
would otherwise hold the threshold above every later beat (for the rest of a record, on
MIT-BIH). The price is in an asystole with noise of over about 0.1 mV rms: that noise is
taken for beats sooner (``benchmarks/results/rpeak_relearn.md``).
Accepted candidates are located in the input signal: over the integration window (shifted
back by the band-pass group delay) the baseline is the line through the window's end medians,
and the peak is the first local extremum of the deviation from it that reaches half the largest
one: the first major deflection of the QRS, which is where MIT-BIH places its beat labels (also
in wide paced and ventricular complexes whose later deflection is larger).

:func:`ecg_rpeaks` is :class:`RpeakStream` fed the whole signal and flushed, so the offline and
streaming answers are the same by construction (and are tested to be, for random chunkings).
A peak is reported once its candidate is final, at most ``RpeakStream.latency_s`` after the
peak (0.36 s with the defaults), except that peaks of the 2 s learning phase at the start of a
stream are reported when it ends; a peak found by search-back is reported when the first
candidate more than 1.66 x the mean RR interval (capped at 2 s) after the previous QRS has been
decided.

The constants marked "on MIT-BIH" (threshold coefficient, integration window, band, search-back
slope ratio) were chosen by scoring the MIT-BIH Arrhythmia Database, which is also the database
the benchmark reports: those figures are development-set figures, not a held-out estimate.

Non-finite input samples are held at the last finite value (a causal rule, so offline and
streaming agree); flag such stretches with :func:`vitalgru.dsp.quality.ecg_quality`.
"""

from __future__ import annotations

import logging
from collections import deque

import numpy as np
from scipy import signal as sps
from scipy.ndimage import maximum_filter1d

from vitalgru.dsp.filters import _as_signal, check_fs

logger = logging.getLogger(__name__)

__all__ = ["METHODS", "RpeakStream", "ecg_rpeaks"]

METHODS: tuple[str, ...] = ("hamilton1986",)

# Constants of the decision rules (Pan & Tompkins 1985; Hamilton & Tompkins 1986).
REFRACTORY_S = 0.200  # no second QRS within 200 ms (physiological refractory period)
TWAVE_S = 0.360  # candidates within 360 ms of a QRS get the T-wave slope test
TWAVE_SLOPE_RATIO = 0.5  # T wave if its max slope < half the previous QRS's (Pan-Tompkins)
SEARCHBACK_RR = 1.66  # search back when no QRS for 1.66 x mean RR (Pan-Tompkins)
# THR = NL + c (SL - NL); Hamilton & Tompkins 1986 found c in 0.3125-0.4 best; 0.34 on MIT-BIH.
THRESHOLD_COEF = 0.34
# Search-back ignores waves far less steep than the last QRS (P waves in long pauses); 0.3
# on MIT-BIH (record 232's pauses).
SEARCHBACK_SLOPE_RATIO = 0.3
SEARCHBACK_COEF = 0.5  # search-back accepts peaks above half the threshold
FIRST_PEAK_FRAC = 0.5  # first excursion above half the window's largest marks the R wave
N_AVG = 8  # levels and RR mean over the last 8 values (both papers)
INIT_S = 2.0  # learning phase: signal level from the first 2 s (Pan-Tompkins "learning 1")
RR_INIT_S = 1.0  # assumed mean RR until beats are found (60 bpm)
# MWI values below this (signal units per sample) are rounding residue of a flat input, not
# waves: a QRS gives about 1e-2 mV/sample, a 1 uV-resolution ADC's step 1e-3 mV/sample.
MWI_FLOOR = 1e-7
RR_MAX_S = 2.0  # cap of the mean RR used for search-back (long pauses must not stop it)
# Relearning: no QRS for this long -> the levels are learnt again from the last RELEARN_S of
# the stream, as in the learning phase (Hamilton's detector re-initialises after 8 s without a
# beat). Without it one large artefact or a QRS shrunk to a fifth (a lead moved) leaves the
# threshold above every later beat for the rest of the stream.
RELEARN_S = 8.0
# ... but only from a wave that deflects at least this far (mV) from its baseline, so that a
# true asystole's baseline noise does not become the new signal level. Monitors must count QRS
# complexes from 0.5 mV (IEC 60601-2-27); muscle noise of 0.05 mV rms (nstdb "ma") deflects up
# to 0.18 mV, record 100's beats 1.3 mV (a fifth of them 0.26).
RELEARN_MIN_MV = 0.2


# A candidate: (MWI index, MWI height, largest |slope| in its window, R-wave location, its
# deflection from the local baseline in input units), indexes counted from the stream's start.
Cand = tuple[int, float, float, int, float]


def _append(buf: np.ndarray, new: np.ndarray) -> np.ndarray:
    return new if buf.size == 0 else np.concatenate([buf, new])


def _median(values: deque[float]) -> float:
    """Median of a few floats (pure Python: far cheaper than numpy for 8 values)."""
    s = sorted(values)
    m = len(s) // 2
    return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2.0


class RpeakStream:
    """Streaming R-peak detector: ``process(chunk)`` returns the newly final peaks.

    Parameters
    ----------
    fs : float
        Sampling frequency in Hz; above twice the band's upper edge (50 Hz by default).
    method : str
        Detector; only ``"hamilton1986"`` (see module docstring).
    band_hz : tuple of float
        Band-pass corner frequencies in Hz; 5-25 Hz keeps the QRS energy and rejects most
        P/T-wave energy and baseline (Pan-Tompkins use 5-15 Hz at 200 Hz; 5-25 Hz scored
        better on MIT-BIH).
    mwi_s : float
        Moving-window integration length in s: about the width of a QRS (Pan & Tompkins 1985
        use 150 ms, Hamilton & Tompkins 1986 80 ms; 120 ms scored best on MIT-BIH).
    peak_window_s : float
        A candidate is an MWI maximum over +/- this many seconds.
    refine_s : float
        Margin in s added on each side of the integration window when locating the R wave
        in the input signal.

    Attributes
    ----------
    latency_s : float
        Longest delay in s between a peak and the ``process`` call that reports it (peaks
        found by search-back excepted; see the module docstring).
    """

    def __init__(
        self,
        fs: float,
        *,
        method: str = "hamilton1986",
        band_hz: tuple[float, float] = (5.0, 25.0),
        mwi_s: float = 0.120,
        peak_window_s: float = 0.200,
        refine_s: float = 0.020,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown R-peak method {method!r}; choose one of {METHODS}")
        self.fs = check_fs(fs, cutoffs_hz=band_hz)
        self.method = method
        fs = self.fs
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
        self._refr = int(round(REFRACTORY_S * fs))
        self._twave = int(round(TWAVE_S * fs))
        self._init_n = int(round(INIT_S * fs))
        self._rr_max = RR_MAX_S * fs
        self._relearn_n = int(round(RELEARN_S * fs))
        # Samples of left context kept for candidate tests, slope and location searches.
        self._left = self._l_peak + self._w_mwi + self._gd + 2 * self._refine + 2
        # ... and the MWI of the last RELEARN_S, for the noise level of a relearning.
        self._keep = max(self._left, self._relearn_n + self._l_peak)
        # A candidate is final once L samples follow it; its peak lies at most
        # group delay + MWI window + refine samples before it.
        self.latency_s = (self._l_peak + self._gd + self._w_mwi + self._refine + 1) / fs
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Start a new stream (forget all state)."""
        self._zi: np.ndarray | None = None
        self._csum_tail = np.zeros(self._w_mwi)  # running sums of the last MWI window
        self._last_bp = 0.0
        self._last_x: float | None = None
        self._n = 0  # samples consumed
        # Buffers covering global samples [self._buf0, self._n).
        self._buf0 = 0
        self._x = np.empty(0)
        self._mwi = np.empty(0)
        self._slope = np.empty(0)
        self._scan = 0  # first global index not yet tested as a candidate
        # Decision state.
        self._pending: list[Cand] = []  # learning-phase candidates
        self._initialised = False
        self._spk = 0.0
        self._npk = 0.0
        self._qrs_levels: deque[float] = deque(maxlen=N_AVG)
        self._noise_levels: deque[float] = deque(maxlen=N_AVG)
        self._rr: deque[float] = deque(maxlen=N_AVG)
        self._last_qrs = -(10**12)
        self._last_slope = 0.0
        # Search-back and relearning count from the later of the last QRS and the last
        # (re)learning.
        self._ref = 0
        self._since: list[Cand] = []  # noise cands since last QRS
        self._flushed = False

    # --------------------------------------------------------------- features
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
        self._mwi = _append(self._mwi, mwi)
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
    def _candidates(self, final: bool) -> list[Cand]:
        """Candidates in [scan, n - L) (or up to n when flushing), as tuples
        ``(global_idx, mwi_height, max_slope, location)``."""
        end = self._n if final else self._n - self._l_peak
        if end <= self._scan:
            return []
        o = self._buf0
        m = self._mwi
        lo = self._scan - o
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
        self._scan = end
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

    # ---------------------------------------------------------------- decision
    def _threshold(self) -> float:
        return self._npk + THRESHOLD_COEF * (self._spk - self._npk)

    def _accept(self, c: Cand, out: list[int], searchback: bool) -> None:
        t, h, sl, loc, _ = c
        if self._last_qrs > -(10**11):
            self._rr.append(float(t - self._last_qrs))
        self._last_qrs = t
        self._last_slope = sl
        self._qrs_levels.append(h)
        self._spk = _median(self._qrs_levels)
        self._ref = t
        self._since = []
        out.append(loc)

    def _noise(self, c: Cand) -> None:
        self._noise_levels.append(c[1])
        self._npk = _median(self._noise_levels)
        self._since.append(c)

    def _relearn(self, t: int) -> None:
        """No QRS for ``RELEARN_S``: learn the levels again from the candidates of the last
        ``RELEARN_S`` (all taken for noise), as the learning phase does from the first 2 s:
        signal level from the largest, noise level from half the mean MWI. Nothing changes
        if the largest deflects less than ``RELEARN_MIN_MV`` (mV) from its baseline: a true
        asystole's noise.
        The candidates before it are not decided again (their beats are not reported)."""
        self._ref = t
        lo = t - self._relearn_n
        window = [s for s in self._since if s[0] >= lo]
        self._since = []
        best = max(window, key=lambda s: s[1], default=None)
        if best is None or best[4] < RELEARN_MIN_MV:
            return
        a = max(0, lo - self._buf0)
        b = max(a + 1, t - self._buf0)
        self._spk = best[1]
        self._npk = 0.5 * float(self._mwi[a:b].mean())
        self._qrs_levels.clear()
        self._qrs_levels.append(self._spk)
        self._noise_levels.clear()
        self._noise_levels.append(self._npk)
        self._last_slope = best[2]
        logger.debug("R-peak levels relearnt at sample %d (no QRS for %.0f s)", t, RELEARN_S)

    def _decide(self, c: Cand, out: list[int]) -> None:
        t, h, sl, _, _ = c
        if t - self._ref > self._relearn_n:
            self._relearn(t)
        # Search-back (Pan-Tompkins): no QRS for 1.66 x mean RR -> take the largest noise
        # candidate since the last QRS (or relearning) if it clears half the threshold.
        rr = min(sum(self._rr) / len(self._rr) if self._rr else RR_INIT_S * self.fs, self._rr_max)
        if self._since and t - self._ref > SEARCHBACK_RR * rr:
            best = max(
                (
                    s
                    for s in self._since
                    if s[0] - self._last_qrs > self._refr
                    and s[2] >= SEARCHBACK_SLOPE_RATIO * self._last_slope
                ),
                key=lambda s: s[1],
                default=None,
            )
            if best is not None and best[1] > SEARCHBACK_COEF * self._threshold():
                keep = [s for s in self._since if s[0] > best[0]]
                self._accept(best, out, searchback=True)
                self._since = keep
        dt = t - self._last_qrs
        if dt < self._refr:
            return  # refractory: cannot be a QRS and is not a useful noise level either
        if h > self._threshold():
            if dt < self._twave and sl < TWAVE_SLOPE_RATIO * self._last_slope:
                self._noise(c)  # T wave
            else:
                self._accept(c, out, searchback=False)
        else:
            self._noise(c)

    def _run(self, cands: list[Cand], out: list[int], final: bool) -> None:
        if not self._initialised:
            self._pending.extend(cands)
            if self._scan < self._init_n and not final:
                return
            # Learning phase (Pan & Tompkins 1985, "learning phase 1"): signal level from the
            # largest MWI peak of the first 2 s, noise level from half the mean MWI there.
            first = [p[1] for p in self._pending if p[0] < self._init_n]
            self._spk = float(max(first)) if first else 0.0
            n0 = min(self._init_n, self._mwi.shape[0])
            self._npk = 0.5 * float(self._mwi[:n0].mean()) if n0 else 0.0
            if first:
                self._qrs_levels.append(self._spk)
            self._noise_levels.append(self._npk)
            self._initialised = True
            self._ref = self._init_n
            cands, self._pending = self._pending, []
        for c in cands:
            self._decide(c, out)

    # ------------------------------------------------------------------ public
    @property
    def known_s(self) -> float:
        """Time (s from the stream's start) up to which every R peak has been reported,
        search-back aside: none during the learning phase, whose peaks are reported when it
        ends; after it, the samples fed less :attr:`latency_s`."""
        if not (self._initialised or self._flushed):
            return 0.0
        return max(0.0, self._n / self.fs - self.latency_s)

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Feed the next samples and return the peaks that became final.

        Parameters
        ----------
        chunk : numpy.ndarray
            ``(n,)`` samples of one lead (mV), consecutive with the previous chunk.

        Returns
        -------
        numpy.ndarray
            int64 global sample indices (counted from the stream's first sample), increasing.
        """
        if self._flushed:
            raise RuntimeError("RpeakStream was flushed; call reset() to start a new stream")
        x = self._clean_input(chunk)
        if x.shape[0] == 0:
            return np.empty(0, dtype=np.int64)
        self._features(x)
        self._n += x.shape[0]
        out: list[int] = []
        self._run(self._candidates(final=False), out, final=False)
        self._trim()
        return np.asarray(sorted(out), dtype=np.int64)

    def flush(self) -> np.ndarray:
        """End the stream: decide the last candidates and return the remaining peaks."""
        out: list[int] = []
        if not self._flushed and self._n > 0:
            self._run(self._candidates(final=True), out, final=True)
        self._flushed = True
        return np.asarray(sorted(out), dtype=np.int64)

    def _trim(self) -> None:
        if not self._initialised:
            return  # the learning phase reads the MWI from the stream's start
        keep_from = self._scan - self._keep
        cut = keep_from - self._buf0
        if cut > 4096:  # amortise the copies
            self._x = self._x[cut:]
            self._mwi = self._mwi[cut:]
            self._slope = self._slope[cut:]
            self._buf0 += cut


def ecg_rpeaks(x: np.ndarray, fs: float, method: str = "hamilton1986") -> np.ndarray:
    """Detect R peaks in one ECG lead.

    Parameters
    ----------
    x : numpy.ndarray
        ``(n,)`` samples of one lead in physical units (mV); raw or cleaned (the detector
        band-passes internally). Non-finite samples are held at the last finite value.
    fs : float
        Sampling frequency in Hz.
    method : str
        ``"hamilton1986"`` (see module docstring).

    Returns
    -------
    numpy.ndarray
        ``(n_peaks,)`` int64 sample indices of R peaks, increasing.
    """
    arr = _as_signal(x, allow_nonfinite=True)
    if arr.ndim != 1:
        raise ValueError(f"x must be 1-D (n,) samples of one lead, got shape {arr.shape}")
    det = RpeakStream(fs, method=method)
    peaks = np.concatenate([det.process(arr), det.flush()])
    return np.unique(peaks)
