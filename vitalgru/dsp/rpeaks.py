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

The front end (filters, MWI, candidates and their location) is in
:mod:`vitalgru.dsp.rpeak_candidates`, the decision rules and their constants in
:mod:`vitalgru.dsp.rpeak_decision`; this module joins them into the detector.
"""

from __future__ import annotations

import numpy as np

from vitalgru.dsp.filters import _as_signal, check_fs
from vitalgru.dsp.rpeak_candidates import QrsCandidates
from vitalgru.dsp.rpeak_decision import QrsDecision

__all__ = ["METHODS", "RpeakStream", "ecg_rpeaks"]

METHODS: tuple[str, ...] = ("hamilton1986",)

#: Samples :func:`ecg_rpeaks` hands the streaming detector at a time. The detector's
#: intermediate signals (band-passed, derivative, integrated) are float64 copies of what it
#: is given: a 24-hour Holter lead handed over whole held five of them (over 1 GB at
#: 360 Hz, 3.5 GB at 1000 Hz). The peaks do not depend on the blocks (the stream's
#: invariant), so this only bounds the memory.
RPEAK_BLOCK_SAMPLES = 1 << 16


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
        self._decision = QrsDecision(self.fs)
        self._cands = QrsCandidates(
            self.fs,
            band_hz=band_hz,
            mwi_s=mwi_s,
            peak_window_s=peak_window_s,
            refine_s=refine_s,
            history_n=self._decision.relearn_n,
        )
        self.latency_s = self._cands.latency_n / self.fs
        self.reset()

    def reset(self) -> None:
        """Start a new stream (forget all state)."""
        self._cands.reset()
        self._decision.reset()
        self._flushed = False

    @property
    def known_s(self) -> float:
        """Time (s from the stream's start) up to which every R peak has been reported,
        search-back aside: none during the learning phase, whose peaks are reported when it
        ends; after it, the samples fed less :attr:`latency_s`."""
        if not (self._decision.initialised or self._flushed):
            return 0.0
        return max(0.0, self._cands.n / self.fs - self.latency_s)

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
        if self._cands.feed(chunk) == 0:
            return np.empty(0, dtype=np.int64)
        out: list[int] = []
        self._decide(final=False, out=out)
        if self._decision.initialised:  # the learning phase reads the MWI from the start
            self._cands.trim()
        return np.asarray(sorted(out), dtype=np.int64)

    def flush(self) -> np.ndarray:
        """End the stream: decide the last candidates and return the remaining peaks."""
        out: list[int] = []
        if not self._flushed and self._cands.n > 0:
            self._decide(final=True, out=out)
        self._flushed = True
        return np.asarray(sorted(out), dtype=np.int64)

    def _decide(self, *, final: bool, out: list[int]) -> None:
        cands = self._cands.candidates(final)
        self._decision.run(
            cands,
            out,
            scanned=self._cands.scan,
            final=final,
            mwi=self._cands.mwi,
            mwi0=self._cands.buf0,
        )


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
    blocks = range(0, arr.shape[0], RPEAK_BLOCK_SAMPLES)
    peaks = [det.process(arr[i : i + RPEAK_BLOCK_SAMPLES]) for i in blocks]
    return np.unique(np.concatenate([*peaks, det.flush()]))
