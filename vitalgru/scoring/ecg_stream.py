"""One patient's live ECG in the arrhythmia monitor: the stream's state
(:class:`PatientStream`: samples, R peaks, quality verdicts, features waiting, hidden state)
and what the monitor keeps of a patient across a gateway restart (:class:`PatientMemory`).
:class:`~vitalgru.scoring.arrhythmia.ArrhythmiaMonitor` holds one stream per patient.
"""

from __future__ import annotations

import io
import json
import logging
import math
import zipfile
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from vitalgru.dsp.filters import _as_signal, check_fs
from vitalgru.dsp.quality import BEAT_POST_S, BEAT_PRE_S, units_hint
from vitalgru.dsp.quality_stream import QualityStream, hold_last
from vitalgru.dsp.resample import rate_ratio
from vitalgru.dsp.rpeaks import RpeakStream
from vitalgru.scoring.alerts import AlertTracker

if TYPE_CHECKING:
    from vitalgru.scoring.arrhythmia import ArrhythmiaMonitor

logger = logging.getLogger("vitalgru.scoring.arrhythmia")

__all__ = [
    "MAX_ABS_SAMPLE", "POLARITY_EVERY", "POLARITY_RUNS", "QUALITY_MAX_WAIT_S", "SILENCE_JUDGED_S",
    "PatientMemory", "PatientStream",
]  # fmt: skip

#: Peaks reported more than this late (s) are not waited for by the quality check (the
#: detector reports a peak within 0.36 s, or by search-back within about 4 s).
QUALITY_MAX_WAIT_S = 5.0
#: A pause's silence is judged on the last this many seconds before it became a pause (past
#: the last beat's QRS and T wave): a lead comes off at some moment of the silence, and the
#: samples on either side of that moment are the patient's baseline at another level (tenths
#: of a mV off), which would make the flat line read as signal. At a pause of 3 s they begin
#: 1 s after the last beat.
SILENCE_JUDGED_S = 2.0
#: A sample farther from 0 than this (in the feed's unit) is no ECG in mV, µV or even 24-bit
#: ADC counts: it is taken as a gap, like NaN. One such sample used to blind the stream for
#: good: from about 1e16 on, the filters' state drowned the signal in rounding, and no beat
#: was found again until the patient was admitted afresh.
MAX_ABS_SAMPLE = 1e7
#: The live QRS polarity is measured on the median beat of each run of this many beats ...
POLARITY_EVERY = 32
#: ... and is the median of the latest this many runs' (about 5 minutes at 70 bpm).
POLARITY_RUNS = 10


@dataclass(frozen=True)
class PatientMemory:
    """What the monitor has learnt of one patient, to carry across a gateway restart.

    The network's hidden state is the patient's own normal rhythm and morphology as the
    model learnt them from every beat so far; the templates are the patient's latest beat
    windows, of which the morphology features take the running median; the RR intervals
    are the patient's latest, on which the RR features (prematurity against the patient's
    own averages, irregularity, rhythm) are computed. A restart loses samples, so the
    interval across it is not one the patient had: the remembered beats are spliced in
    one median interval before the first beat found after it, and the RR features go on as
    if the stream had not stopped.

    Attributes
    ----------
    model : str
        :attr:`~vitalgru.scoring.arrhythmia.ArrhythmiaMonitor.fingerprint` of the monitor
        that kept it: another network cannot read this hidden state.
    h : numpy.ndarray
        (layers, hidden) float32.
    templates : numpy.ndarray
        (k, n_samples) float32, oldest first, k at most the template beats.
    beats : int
        Beats labelled with this memory so far.
    rr_s : numpy.ndarray
        (m,) float32 RR intervals in seconds, oldest first (empty: none known yet).
    polarities : numpy.ndarray
        (k,) float32 QRS polarities of the latest runs of beats, oldest first, k at most
        :data:`POLARITY_RUNS` (NaN: a run with too few clean beats; empty: none measured,
        or a memory kept before polarities were), so that a lead flagged upside down stays
        flagged across a restart instead of for the next run of beats.
    """

    model: str
    h: np.ndarray
    templates: np.ndarray
    beats: int
    rr_s: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    polarities: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))

    def to_bytes(self) -> bytes:
        """The memory as an ``.npz`` archive (no pickled objects)."""
        buf = io.BytesIO()
        meta = np.frombuffer(json.dumps({"model": self.model, "beats": self.beats}).encode(),
                             dtype=np.uint8)  # fmt: skip
        np.savez(buf, meta=meta, h=self.h, templates=self.templates, rr_s=self.rr_s,
                 polarities=self.polarities)  # fmt: skip
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> PatientMemory:
        """Read :meth:`to_bytes`; ValueError when ``data`` is not such an archive."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                meta = json.loads(z["meta"].tobytes().decode())
                h, templates, rr = z["h"], z["templates"], z["rr_s"]
                pol = z["polarities"] if "polarities" in z.files else np.zeros(0)
            return cls(str(meta["model"]), h.astype(np.float32), templates.astype(np.float32),
                       int(meta["beats"]), rr.astype(np.float32),
                       pol.astype(np.float32))  # fmt: skip
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as e:
            raise ValueError(f"not a patient memory ({type(e).__name__}: {e})") from None

    def check_fits(self, pid: str, mon: ArrhythmiaMonitor) -> None:
        """ValueError unless ``mon`` can take this memory up for patient ``pid``: kept by the
        same network (its fingerprint), of its shapes, finite, with positive intervals and
        polarities between -1 and 1 (NaN: a run not measured)."""
        if self.model != mon.fingerprint:
            raise ValueError(
                f"patient {pid!r}: the memory was kept by another network ({self.model}, this "
                f"monitor runs {mon.fingerprint}); it cannot be carried over"
            )
        want, n_tpl, n_rr = mon.state_shape, mon.settings.template_beats, mon.history_beats
        h, tpl, rr, pol = self.h, self.templates, self.rr_s, self.polarities
        if (h.shape != want or tpl.ndim != 2 or tpl.shape[1] != mon.n_window
                or tpl.shape[0] > n_tpl or rr.ndim != 1 or rr.size >= n_rr
                or not (np.isfinite(h).all() and np.isfinite(tpl).all())
                or not (np.isfinite(rr).all() and (rr > 0).all())):  # fmt: skip
            raise ValueError(
                f"patient {pid!r}: a memory of hidden state {h.shape}, templates "
                f"{tpl.shape} and {rr.shape} RR intervals does not fit this network ({want}, up "
                f"to {n_tpl} x {mon.n_window}, fewer than {n_rr}), or is not finite and positive"
            )
        if pol.ndim != 1 or pol.size > POLARITY_RUNS or (np.abs(pol) > 1).any():
            raise ValueError(
                f"patient {pid!r}: a memory of {pol.shape} QRS polarities is not up to "
                f"{POLARITY_RUNS} values between -1 and 1"
            )


class PatientStream:
    """One patient's live ECG stream in an :class:`~vitalgru.scoring.arrhythmia.ArrhythmiaMonitor`:
    the samples held, the R peaks detected and waiting to be windowed, the quality check's
    verdicts, the beats' features waiting to be labelled, the network's hidden state and
    the patient's alarms. The monitor windows, labels and alerts; this is the signal side
    and the state."""

    def __init__(self, pid: str, fs: float, mon: ArrhythmiaMonitor) -> None:
        self.pid = pid
        self.fs = check_fs(fs, cutoffs_hz=(40.0,), what=f"patient {pid!r} fs")
        self.up, self.down = rate_ratio(self.fs, mon.fs)
        w = mon.windows
        self.after_src = int(round(w.after_s * self.fs))
        self.margin_src = int(math.ceil(mon.margin_s * self.fs))
        self.max_wait = int(round(QUALITY_MAX_WAIT_S * self.fs))
        self._quality_s = (w.quality_window_s, w.quality_hop_s)
        self.det = RpeakStream(self.fs)
        self.quality = self._new_quality()
        # the detector and the quality check count from the stream's latest (re)start
        self.det_base = self.q_base = 0
        self.n = 0  # samples received, and lost in breaks
        self.last = 0.0  # latest finite sample (held through gaps)
        self.buf = np.empty(0)  # held samples from buf0 on
        self.buf0 = 0
        self.q_raw = np.empty(0)  # samples not yet given to the quality check (from q_fed)
        self.q_fed = 0
        self.q_peaks: list[int] = []  # peaks not yet given to the quality check
        # what silence_flags found when the stream was flushed (None: samples came since)
        self.flushed_silence: str | None = None
        self.verdicts: deque[tuple[int, bool]] = deque()  # (window stop, usable)
        self.verdict_before: bool | None = None  # verdict of the latest window dropped
        self.new_windows: list[tuple[int, str]] = []  # (stop, flags) judged, not yet alerted
        self.pending: deque[int] = deque()  # detected peaks not yet windowed
        # (previous peak, peak, what the quality check finds in the silence between them
        # when it is long enough to be a pause) not yet alerted
        self.new_gaps: list[tuple[int, int, str]] = []
        self.pause_n = int(round(mon.alert_rules.pause_s * self.fs))  # silence that is a pause
        self.beat_pre = int(round(BEAT_PRE_S * self.fs))  # a beat's signal around its R peak
        self.beat_post = int(round(BEAT_POST_S * self.fs))
        self.silence_judged = int(round(SILENCE_JUDGED_S * self.fs))
        self.last_peak = -1
        self.model_fs = mon.fs
        self.t_hist: deque[int] = deque(maxlen=mon.history_beats)  # model-rate R peaks
        self.w_hist: deque[np.ndarray] = deque(maxlen=mon.settings.template_beats)
        self.waiting: tuple[int, bool] | None = None  # (peak, ok) of the last windowed beat
        self.rows: list[tuple[np.ndarray, bool, int]] = []  # features ready, not labelled
        layers, hidden = mon.state_shape
        self.h = torch.zeros(layers, 1, hidden)
        self.n_labelled = 0
        self.beats_before = 0  # beats labelled by earlier monitors whose memory this carries
        self.splice: np.ndarray | None = None  # remembered RR (s) for the first beat found
        self.alerts = AlertTracker(pid, mon.alert_rules)
        # QRS polarity of each of the latest runs of POLARITY_EVERY beats windowed in signal
        # the quality check accepts (their median beat's: vitalgru.dsp.polarity), and the
        # windows of the run under way
        self.polarities: deque[float] = deque(maxlen=POLARITY_RUNS)
        self.polarity_run: list[np.ndarray] = []

    # ------------------------------------------------------------------- memory
    def rr_s(self) -> np.ndarray:
        """The patient's latest RR intervals (s), oldest first."""
        if self.splice is not None:  # no beat found since admission or a break: as remembered
            return self.splice
        return np.diff(np.asarray(self.t_hist, dtype=np.float64)) / self.model_fs

    def remember(self, model: str, n_window: int) -> PatientMemory:
        """What has been learnt of the patient so far, kept by network ``model`` (its
        fingerprint) whose beat windows are ``n_window`` samples long."""
        templates = (np.stack(self.w_hist) if self.w_hist
                     else np.zeros((0, n_window), np.float32))  # fmt: skip
        return PatientMemory(model, self.h[:, 0].numpy().copy(), templates.astype(np.float32),
                             self.beats_before + self.n_labelled,
                             self.rr_s().astype(np.float32),
                             np.asarray(self.polarities, dtype=np.float32))  # fmt: skip

    def take_up(self, memory: PatientMemory) -> None:
        """Go on from ``memory`` (checked by :meth:`PatientMemory.check_fits`)."""
        self.h = torch.from_numpy(memory.h.copy()).unsqueeze(1)
        self.w_hist.extend(np.array(w) for w in memory.templates)
        self.beats_before = memory.beats
        self.splice = memory.rr_s.astype(np.float64) if memory.rr_s.size else None
        self.polarities.extend(float(v) for v in memory.polarities)

    @property
    def qrs_polarity(self) -> float:
        """Which way the patient's QRS points, -1 down to +1 up: the median over the latest
        :data:`POLARITY_RUNS` runs of beats of each run's median beat's polarity (NaN before
        one run of beats has been windowed)."""
        p = np.asarray(self.polarities, dtype=np.float64)
        p = p[np.isfinite(p)]
        return float(np.median(p)) if p.size else math.nan

    # -------------------------------------------------------------- signal side
    def feed(self, chunk: np.ndarray) -> None:
        arr = _as_signal(chunk, name=f"chunk of patient {self.pid!r}", allow_nonfinite=True)
        if arr.ndim != 1:
            raise ValueError(
                f"patient {self.pid!r}: a chunk must be 1-D (n,) samples of one lead, "
                f"got shape {arr.shape}"
            )
        if arr.size == 0:
            return
        wild = np.abs(arr) > MAX_ABS_SAMPLE  # NaN compares False: a gap already
        if wild.any():
            arr = np.where(wild, np.nan, arr)
            logger.warning("patient %s: %d sample(s) beyond +-%g taken as gaps (e.g. %g)",
                           self.pid, int(wild.sum()), MAX_ABS_SAMPLE,
                           float(chunk[np.flatnonzero(wild)[0]]))  # fmt: skip
        held, self.last = hold_last(arr, self.last)
        self.flushed_silence = None
        self.buf = np.concatenate([self.buf, held])
        self.q_raw = np.concatenate([self.q_raw, arr.astype(np.float64)])
        self.n += arr.size
        self._add_peaks(self.det.process(held) + self.det_base)
        self._feed_quality(final=False)

    def flush(self) -> None:
        self._add_peaks(self.det.flush() + self.det_base)
        # the quality check takes every sample held: judge the silence before it does
        self.flushed_silence = self.silence_flags(self.last_peak)
        self._feed_quality(final=True)

    def skip(self, n: int) -> None:
        """Go on ``n`` samples later: they were lost (a break in the feed). The caller has
        flushed the stream and labelled its beats. The detector and the quality check
        start afresh after the break (neither sees a step or a flat line that was never
        there); the samples, beats and verdicts keep their place in the stream's time."""
        fresh = self.n + int(n)
        self.det = RpeakStream(self.fs)
        self.quality = self._new_quality()
        self.det_base = self.q_base = self.q_fed = fresh
        self.q_raw = np.empty(0)
        self.q_peaks = []
        self.flushed_silence = None
        self.n = fresh
        # the held samples start on the resampling grid (see BeatInputs.stretch):
        # the few samples from the grid point to the break's end are the last one held
        self.buf0 = fresh - fresh % self.down
        self.buf = np.full(fresh - self.buf0, self.last)

    def known_until_s(self) -> float:
        """Stream time up to which every R peak has been reported (the detector's, which
        starts afresh after a break)."""
        return self.det_base / self.fs + self.det.known_s

    def _new_quality(self) -> QualityStream:
        window_s, hop_s = self._quality_s
        return QualityStream(self.fs, window_s=window_s, hop_s=hop_s)

    def _add_peaks(self, peaks: np.ndarray) -> None:
        for p in peaks.tolist():
            if p <= self.last_peak:  # the detector reports in order; keep it that way
                logger.debug("patient %s: R peak %d out of order, dropped", self.pid, p)
                continue
            self.pending.append(p)
            self.q_peaks.append(p)
            # the samples of a long silence are still here (not yet given to the quality
            # check, which waits for this peak): judge them now
            long = p - max(self.last_peak, 0) >= self.pause_n - 1  # (a break only shortens it)
            quiet = self.silence_flags(self.last_peak, p - self.beat_pre) if long else ""
            self.new_gaps.append((self.last_peak, p, quiet))
            self.last_peak = p

    def _feed_quality(self, final: bool) -> None:
        # Up to the last reported peak every peak is known (the detector never reports one
        # before a peak it has reported), so each window is judged with all of its peaks.
        settled = self.n if final else max(self.last_peak + 1, self.n - self.max_wait)
        if settled <= self.q_fed:
            return
        k = settled - self.q_fed
        peaks = [p for p in self.q_peaks if p < settled]
        self.q_peaks = [p for p in self.q_peaks if p >= settled]
        res = self.quality.push(self.q_raw[:k], np.asarray(peaks, dtype=np.int64) - self.q_base)
        self.q_raw = self.q_raw[k:]
        self.q_fed = settled
        stops = (res.stop_idx + self.q_base).tolist()
        for stop, ok in zip(stops, res.usable.tolist(), strict=True):
            self.verdicts.append((int(stop), bool(ok)))
        flags = (*res.HARD_FLAGS, "noisy")
        for i, stop in enumerate(stops):  # what each was rejected for
            why = ", ".join(f.replace("_", " ") for f in flags if getattr(res, f)[i])
            if why:
                why += units_hint(res.amplitude[i])
            self.new_windows.append((int(stop), why))

    def _signal_ok(self, peak: int) -> bool:
        """Usable verdict of the latest quality window that had ended by the end of the
        beat's window; True before any window has ended (as ``QualityResult.usable_at``)."""
        at = peak + self.after_src
        self._forget_verdicts(at)  # beats come in time order: no later one asks for them
        if self.verdicts and self.verdicts[0][0] <= at:
            return self.verdicts[0][1]
        return True if self.verdict_before is None else self.verdict_before

    def _forget_verdicts(self, at: int) -> None:
        """Drop every verdict older than the latest one ended by sample ``at``."""
        while len(self.verdicts) > 1 and self.verdicts[1][0] <= at:
            self.verdict_before = self.verdicts.popleft()[1]

    def latest_verdict(self) -> bool | None:
        """The newest quality verdict (None: no window judged yet)."""
        return self.verdicts[-1][1] if self.verdicts else self.verdict_before

    def silence_flags(self, after: int, until: int | None = None) -> str:
        """What the quality check finds wrong with the silence after R peak ``after`` (-1:
        none, the stream's start) up to sample ``until`` (None: the latest), as the
        poor-signal alarm names it ("flat", "nonfinite, lead off"; "" when it passes).

        A pause's silence is judged on its own: the latest quality window ended before it
        began (the check is fed up to the last R peak until :data:`QUALITY_MAX_WAIT_S` have
        passed without one), and there is none in a stream's first seconds. Judged are the
        :data:`SILENCE_JUDGED_S` before it reached the pause rule's ``pause_s``, past the last
        beat's QRS and T wave (``BEAT_POST_S`` after its R peak, the quality check's beat
        segment), so that the verdict does not depend on when the monitor is pushed; after
        a break in the feed, the first of the samples received since (the checks cannot
        look across it). See
        :meth:`~vitalgru.dsp.quality_stream.QualityStream.silence_flags` for the checks.
        """
        if until is None and self.flushed_silence is not None:
            return self.flushed_silence  # judged before the flush gave every sample away
        stop = max(max(after, 0) + self.pause_n, self.q_fed + self.silence_judged)
        stop = min(stop, self.n, self.n if until is None else until)
        start = max(after + self.beat_post if after >= 0 else 0, stop - self.silence_judged)
        seg = self.q_raw[max(start - self.q_fed, 0) : max(stop - self.q_fed, 0)]
        flags = self.quality.silence_flags(seg)
        why = ", ".join(f.replace("_", " ") for f in flags)
        if flags and seg.size:
            finite = seg[np.isfinite(seg)]
            if finite.size > 1:
                lo, hi = np.percentile(finite, [1, 99])
                why += units_hint(hi - lo)
        return why

    def ready_peaks(self, final: bool) -> list[int]:
        """Pending peaks whose stretch of signal and quality verdict are complete."""
        out = []
        while self.pending:
            p = self.pending[0]
            if not final and (
                self.n < p + self.after_src + self.margin_src + 1 or self.q_fed < p + self.after_src
            ):
                break
            out.append(self.pending.popleft())
        return out

    def trim(self) -> None:
        """Forget samples and verdicts no pending or later beat can need."""
        # A beat not yet reported lies after the last peak and, as the quality check assumes
        # (see _feed_quality), after q_fed: the detector reports late, never that late.
        nxt = self.pending[0] if self.pending else max(self.last_peak + 1, self.q_fed)
        self._forget_verdicts(nxt + self.after_src)
        keep = max(0, nxt - self.margin_src - self.down)
        keep -= keep % self.down
        if keep - self.buf0 > 4096:  # amortise the copies
            self.buf = self.buf[keep - self.buf0 :]
            self.buf0 = keep
