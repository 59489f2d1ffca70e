"""Which QRS candidates are beats: the decision rules of the R-peak detector of
:mod:`vitalgru.dsp.rpeaks`, where the method is described.

Pan & Tompkins 1985 and Hamilton & Tompkins 1986: a learning phase sets the signal and noise
levels from the first 2 s; then each candidate of :mod:`vitalgru.dsp.rpeak_candidates`, in
order, is a QRS if it clears the adaptive threshold outside the 200 ms refractory period and
is not a T wave (a shallow slope within 360 ms of a QRS), else noise. Search-back takes the
largest noise candidate at half the threshold when no QRS came for 1.66 x the mean RR
interval, and after ``RELEARN_S`` without a QRS the levels are learnt again.
"""

from __future__ import annotations

import logging
from collections import deque

import numpy as np

from vitalgru.dsp.rpeak_candidates import Cand

logger = logging.getLogger(__name__)

__all__ = ["INIT_S", "RELEARN_MIN_MV", "RELEARN_S", "QrsDecision"]

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
N_AVG = 8  # levels and RR mean over the last 8 values (both papers)
INIT_S = 2.0  # learning phase: signal level from the first 2 s (Pan-Tompkins "learning 1")
RR_INIT_S = 1.0  # assumed mean RR until beats are found (60 bpm)
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


def _median(values: deque[float]) -> float:
    """Median of a few floats (pure Python: far cheaper than numpy for 8 values)."""
    s = sorted(values)
    m = len(s) // 2
    return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2.0


class QrsDecision:
    """Decision state of one stream: levels, RR intervals, the last QRS, the noise since.

    Parameters
    ----------
    fs : float
        Sampling frequency in Hz.

    Attributes
    ----------
    relearn_n : int
        ``RELEARN_S`` in samples: how much MWI history :meth:`run` may read before a candidate.
    """

    def __init__(self, fs: float) -> None:
        self.fs = fs
        self._refr = int(round(REFRACTORY_S * fs))
        self._twave = int(round(TWAVE_S * fs))
        self._init_n = int(round(INIT_S * fs))
        self._rr_max = RR_MAX_S * fs
        self.relearn_n = int(round(RELEARN_S * fs))
        self.reset()

    def reset(self) -> None:
        """Start a new stream (forget all state)."""
        self._pending: list[Cand] = []  # learning-phase candidates
        self.initialised = False
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

    def _relearn(self, t: int, mwi: np.ndarray, mwi0: int) -> None:
        """No QRS for ``RELEARN_S``: learn the levels again from the candidates of the last
        ``RELEARN_S`` (all taken for noise), as the learning phase does from the first 2 s:
        signal level from the largest, noise level from half the mean MWI. Nothing changes
        if the largest deflects less than ``RELEARN_MIN_MV`` (mV) from its baseline: a true
        asystole's noise.
        The candidates before it are not decided again (their beats are not reported)."""
        self._ref = t
        lo = t - self.relearn_n
        window = [s for s in self._since if s[0] >= lo]
        self._since = []
        best = max(window, key=lambda s: s[1], default=None)
        if best is None or best[4] < RELEARN_MIN_MV:
            return
        a = max(0, lo - mwi0)
        b = max(a + 1, t - mwi0)
        self._spk = best[1]
        self._npk = 0.5 * float(mwi[a:b].mean())
        self._qrs_levels.clear()
        self._qrs_levels.append(self._spk)
        self._noise_levels.clear()
        self._noise_levels.append(self._npk)
        self._last_slope = best[2]
        logger.debug("R-peak levels relearnt at sample %d (no QRS for %.0f s)", t, RELEARN_S)

    def _decide(self, c: Cand, out: list[int], mwi: np.ndarray, mwi0: int) -> None:
        t, h, sl, _, _ = c
        if t - self._ref > self.relearn_n:
            self._relearn(t, mwi, mwi0)
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

    def run(
        self,
        cands: list[Cand],
        out: list[int],
        *,
        scanned: int,
        final: bool,
        mwi: np.ndarray,
        mwi0: int,
    ) -> None:
        """Decide ``cands`` in order, appending the R-wave locations of the QRS to ``out``.

        Parameters
        ----------
        cands : list of Cand
            The next candidates of the stream, in order.
        out : list of int
            Where accepted R-wave locations (global sample indices) are appended.
        scanned : int
            Global index up to which the stream has been searched for candidates; until it
            passes the learning phase the candidates are only kept.
        final : bool
            The stream has ended (a learning phase ends with it).
        mwi : numpy.ndarray
            The MWI buffer, covering global samples from ``mwi0`` and at least
            :attr:`relearn_n` before each candidate (from 0 during the learning phase).
        mwi0 : int
            Global index of ``mwi[0]``.
        """
        if not self.initialised:
            self._pending.extend(cands)
            if scanned < self._init_n and not final:
                return
            # Learning phase (Pan & Tompkins 1985, "learning phase 1"): signal level from the
            # largest MWI peak of the first 2 s, noise level from half the mean MWI there.
            first = [p[1] for p in self._pending if p[0] < self._init_n]
            self._spk = float(max(first)) if first else 0.0
            n0 = min(self._init_n, mwi.shape[0])
            self._npk = 0.5 * float(mwi[:n0].mean()) if n0 else 0.0
            if first:
                self._qrs_levels.append(self._spk)
            self._noise_levels.append(self._npk)
            self.initialised = True
            self._ref = self._init_n
            cands, self._pending = self._pending, []
        for c in cands:
            self._decide(c, out, mwi, mwi0)
