"""Live beat labelling: raw ECG in, labelled heartbeats out, for many patients at once.

:class:`ArrhythmiaMonitor` keeps each patient's state (R-peak detector, trailing signal
quality, beat history, GRU hidden state) and, on every :meth:`~ArrhythmiaMonitor.push`,
advances all patients whose chunks arrived, running the network once per tick over a batch
of patients rather than once per patient. It reads a model exactly as evaluation does: the
preprocessing logged with it (rate, lead, window, filters, feature settings) says how to
turn samples into the network's inputs.

Per patient, samples at the patient's own rate ``fs`` go through:

1. :class:`vitalgru.dsp.RpeakStream` (the detector of ingest, streamed) for the beats;
2. :class:`vitalgru.dsp.QualityStream` (the trailing 10 s check ingest calls ``signal_ok``)
   for each beat's live quality verdict. It is fed only up to the last reported R peak (or
   5 s behind the stream when none comes), so a window is judged with every peak in it,
   whatever the chunk sizes;
3. for each beat, the stretch of signal from ``margin_s`` before the R peak to ``margin_s``
   after its window, resampled to the model's rate and filtered *zero-phase* with the
   dataset's filter, exactly like a training window but on a bounded stretch. Zero-phase is
   what the network was trained on; a causal filter shifts and reshapes the QRS. The price
   is ``margin_s`` of latency, and the edge transients of the stretch, which decay within
   the margin (the benchmark measures the difference from whole-record filtering);
4. the causal beat features of training (:func:`vitalgru.data.beat_features.beat_features`
   on the beats' history: running median template, RR features with one beat of look-ahead);
5. the network, streaming with its hidden state carried (``context_beats`` as in
   :func:`vitalgru.training.arrhythmia_fit.predict_records`).

A beat is labelled once the beats its features and the network's output delay need have
arrived (two beats for the default model) and the post-window margin has passed.

The invariant that keeps it honest: pushing a recording in chunks of any sizes gives the
same beats, labels and probabilities as pushing it whole (tested for random chunkings;
probabilities to float32 rounding, because the network runs over different batches).
Differences from offline evaluation (:func:`vitalgru.training.arrhythmia_eval.score_database`)
are on purpose: the beats are the detector's, not the annotators'; non-finite samples, and
any beyond :data:`~vitalgru.scoring.ecg_stream.MAX_ABS_SAMPLE`, are held at the last
finite value (offline, a gap is interpolated, which needs the future); and each window is
filtered over its stretch rather than the whole record. Each patient's stream is a
:class:`~vitalgru.scoring.ecg_stream.PatientStream`; steps 3 and 4 are
:class:`~vitalgru.scoring.ecg_beats.BeatInputs`, step 5
:func:`~vitalgru.scoring.ecg_labels.label_ready`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from vitalgru.data.arrhythmia_dataset import data_config_from_preprocessing
from vitalgru.data.beat_features import (
    FeatureSettings,
    feature_settings_from_preprocessing,
)
from vitalgru.dsp.polarity import polarity_warning
from vitalgru.errors import ConflictError
from vitalgru.scoring.alert_types import Alert, AlertRules
from vitalgru.scoring.ecg_beats import BeatInputs
from vitalgru.scoring.ecg_labels import BeatCall, label_ready, model_fingerprint, state_shape
from vitalgru.scoring.ecg_stream import PatientMemory, PatientStream

logger = logging.getLogger(__name__)

__all__ = ["ArrhythmiaMonitor", "BeatCall", "PatientMemory", "Tick"]

#: Default signal kept before an R peak and after its window when filtering a beat's stretch
#: (s). Against a 10 s margin, 2 s moved the champion's class probabilities by at most 0.007
#: on 853 beats and changed no label; 1 s moved them by up to 0.28 (``benchmarks/streaming.py``).
DEFAULT_MARGIN_S = 2.0


@dataclass(frozen=True)
class Tick:
    """What one :meth:`ArrhythmiaMonitor.push` (or ``discharge``) produced."""

    calls: list[BeatCall]
    alerts: list[Alert]


class ArrhythmiaMonitor:
    """Label heartbeats of many patients' live ECG with one network.

    Parameters
    ----------
    model : torch.nn.Module
        An :class:`~vitalgru.models.arrhythmia.ArrhythmiaGRU` or
        :class:`~vitalgru.models.arrhythmia.ArrhythmiaEnsemble` (e.g. the ``module`` of
        :func:`vitalgru.tracking.load_model` for ``models:/vitalgru-arrhythmia@champion``).
    preprocessing : mapping
        The preprocessing logged with the model.
    margin_s : float
        Signal kept on each side of a beat's window when filtering it (s); also the
        latency it adds.
    max_batch : int
        Most patients per network call.
    alert_rules : AlertRules, optional
        Limits of the alarm rules (:mod:`vitalgru.scoring.alerts`); default limits if None.

    Examples
    --------
    >>> mon = ArrhythmiaMonitor(loaded.module, loaded.preprocessing)   # doctest: +SKIP
    >>> mon.admit("bed-4", fs=250.0)                                   # doctest: +SKIP
    >>> tick = mon.push({"bed-4": samples_mv})                         # doctest: +SKIP
    >>> tick.calls, tick.alerts                                        # doctest: +SKIP
    """

    def __init__(
        self,
        model: nn.Module,
        preprocessing: Mapping[str, Any],
        *,
        margin_s: float = DEFAULT_MARGIN_S,
        max_batch: int = 256,
        alert_rules: AlertRules | None = None,
    ) -> None:
        if not (isinstance(margin_s, int | float) and math.isfinite(margin_s) and margin_s >= 0):
            raise ValueError(f"margin_s must be a finite number of seconds >= 0, got {margin_s!r}")
        if int(max_batch) < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        cfg = data_config_from_preprocessing(preprocessing)
        self.windows = cfg.windows
        self.filters = cfg.filters
        self.fs = float(cfg.windows.fs)
        self.settings: FeatureSettings = feature_settings_from_preprocessing(preprocessing)
        self.rr_columns = preprocessing.get("rr_features")
        n_window = int(round(self.windows.before_s * self.fs)) + int(
            round(self.windows.after_s * self.fs)
        )
        if int(getattr(model, "n_samples", n_window)) != n_window:
            raise ValueError(
                f"the model reads windows of {model.n_samples} samples but its preprocessing "
                f"gives {n_window}; the two were not logged together"
            )
        self.model = model.eval()
        self.delay = int(getattr(model, "output_delay", 0))
        self.state_shape = state_shape(model)
        self.fingerprint = model_fingerprint(model, preprocessing)
        self.n_window = n_window
        self.margin_s = float(margin_s)
        self.max_batch = int(max_batch)
        self.alert_rules = alert_rules if alert_rules is not None else AlertRules()
        s = self.settings
        # Beats of RR history that make a beat's RR features equal to the whole record's
        # (the longest average, the long irregularity window's differences, the rhythm
        # window), plus the look-ahead beat.
        self.history_beats = max(s.long_rr_beats + 1, 5 * s.local_rr_beats + 2, s.rhythm_beats + 1)
        self.history_beats += 1
        self.inputs = BeatInputs(self.fs, self.windows, self.filters, self.settings,
                                 self.rr_columns)  # fmt: skip
        self._patients: dict[str, PatientStream] = {}

    @property
    def patients(self) -> list[str]:
        """Patients being monitored."""
        return list(self._patients)

    def admit(self, patient_id: str, fs: float, memory: PatientMemory | None = None) -> None:
        """Start monitoring a patient whose samples arrive at ``fs`` Hz (one lead, mV), from
        what an earlier monitor learnt of them when ``memory`` (:meth:`memory`) is given.

        Raises
        ------
        ValueError
            The patient is already monitored, ``fs`` is unusable, or ``memory`` was kept by
            another network or does not fit this one.
        """
        pid = str(patient_id)
        if pid in self._patients:
            raise ConflictError(f"patient {pid!r} is already being monitored")
        st = PatientStream(pid, fs, self)
        if memory is not None:
            memory.check_fits(pid, self)
            st.take_up(memory)
        self._patients[pid] = st

    def signal_good(self, patient_id: str) -> bool:
        """Whether the patient's signal passed the quality check in each of the latest quality
        windows that re-arm the poor-signal alarm (:attr:`AlertTracker.signal_good`)."""
        return self._get(patient_id).alerts.signal_good

    def rename(self, patient_id: str, new_id: str) -> None:
        """Go on with a patient's stream under another identifier (two records of one
        patient merged by the hospital): the detector, the beats waiting, the network's state
        and the alarms carry over; beats and alarms from now on name ``new_id``. KeyError
        for a patient not monitored; ValueError when ``new_id`` is being monitored already."""
        old, new = str(patient_id), str(new_id)
        st = self._get(old)
        if new in self._patients:
            raise ConflictError(f"patient {new!r} is already being monitored")
        del self._patients[old]
        st.pid = st.alerts.patient_id = new
        self._patients[new] = st

    def pause_open(self, patient_id: str) -> bool:
        """Whether the patient's latest pause alarm is still open: no R peak detected since
        (:attr:`AlertTracker.pause_open`)."""
        return self._get(patient_id).alerts.pause_open

    def qrs_polarity(self, patient_id: str, flagged: bool = False) -> tuple[float, str | None]:
        """Which way the patient's QRS points (-1 down to +1 up; NaN before the first
        :data:`~vitalgru.scoring.ecg_stream.POLARITY_EVERY` beats), and what to check when
        it points against the way the model's lead points in nearly everyone
        (:func:`vitalgru.dsp.polarity.polarity_warning`, ``flagged`` when the warning stands
        already; None otherwise)."""
        p = self._get(patient_id).qrs_polarity
        return p, polarity_warning(p, str(self.windows.lead), flagged)

    def pause_alarm_open(self, patient_id: str) -> None:
        """The patient's pause alarm, raised before a restart, is still open: raise none
        again, and end it with the next R peak (:meth:`AlertTracker.pause_alarm_open`)."""
        self._get(patient_id).alerts.pause_alarm_open()

    def signal_alarm_open(self, patient_id: str) -> None:
        """The patient's poor-signal alarm, raised before a restart, is still open: raise
        none again until the signal has re-armed it (:meth:`AlertTracker.signal_alarm_open`)."""
        self._get(patient_id).alerts.signal_alarm_open()

    def memory(self, patient_id: str) -> PatientMemory:
        """What the monitor has learnt of a patient so far (see :class:`PatientMemory`)."""
        return self._get(patient_id).remember(self.fingerprint, self.n_window)

    def push(
        self,
        chunks: Mapping[str, np.ndarray],
        breaks: Mapping[str, Sequence[tuple[int, int]]] | None = None,
    ) -> Tick:
        """Add each patient's next samples; label every beat that became ready.

        Parameters
        ----------
        chunks : mapping of str to numpy.ndarray
            ``{patient_id: (n,) samples}`` in mV, consecutive with that patient's previous
            chunk; any sizes, NaN allowed (a gap). Patients left out just wait.
        breaks : mapping of str to sequence of (int, int), optional
            ``{patient_id: [(at, n), ...]}``: ``n`` samples of the patient's stream were
            lost before sample ``at`` of its chunk (``at`` ascending), a break in the feed
            too long to fill with NaN (see :meth:`skip`).

        Returns
        -------
        Tick
            The beats labelled (each patient's in time order; a patient's beats before a
            break first, then in patient order of ``chunks``) and the alerts raised.
        """
        if breaks:
            return self._push_with_breaks(chunks, breaks)
        pats = [self._get(pid) for pid in chunks]
        for st, chunk in zip(pats, chunks.values(), strict=True):
            st.feed(chunk)
            self.inputs.window(st, st.ready_peaks(final=False))
            st.trim()
        calls = self._label(pats, final=False)
        alerts = self._alerts(calls)
        for st in pats:
            alerts += self._stream_alerts(st, final=False)
        return Tick(calls, alerts)

    def skip(self, patient_id: str, n: int) -> Tick:
        """``n`` samples of the patient's stream were lost (a break in the feed): label the
        beats before it as at the stream's end and go on ``n`` samples later.

        The beats after the break keep their time. No RR interval is made across it (the
        first beat after it follows the patient's latest intervals as after a restart with
        memory, :class:`PatientMemory`), no run of ectopic beats goes on over it, and the
        pause rule counts only the silence received, either side of it
        (:meth:`~vitalgru.scoring.alerts.AlertTracker.broken`).
        The network's hidden state and the morphology templates go on.
        """
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise ValueError(f"a break is a whole number of samples >= 1, got {n!r}")
        st = self._get(patient_id)
        calls, alerts = self._finish(st)
        alerts += self._stream_alerts(st, final=False)
        rr = st.rr_s()
        st.t_hist.clear()
        st.splice = rr if rr.size else None
        broke_off = st.n / st.fs  # where the stream ended: when its waiting alarms are raised
        st.skip(int(n))
        alerts += st.alerts.broken(st.n / st.fs, n / st.fs, broke_off)
        return Tick(calls, alerts)

    def _push_with_breaks(
        self, chunks: Mapping[str, np.ndarray], breaks: Mapping[str, Sequence[tuple[int, int]]]
    ) -> Tick:
        """:meth:`push` with breaks: each such patient's samples up to each break pushed
        alone and the break skipped, then every patient's samples after them together."""
        calls: list[BeatCall] = []
        alerts: list[Alert] = []
        rest = dict(chunks)
        for pid, cuts in breaks.items():
            if pid not in rest:
                raise ValueError(f"a break for patient {pid!r}, who has no chunk in this push")
            x, a = np.asarray(rest[pid]), 0
            for at, n in cuts:
                if not a <= at <= x.shape[0]:
                    raise ValueError(f"patient {pid!r}: a break at sample {at} of a chunk of "
                                     f"{x.shape[0]}, or before the one before it")  # fmt: skip
                ticks = ([self.push({pid: x[a:at]})] if at > a else []) + [self.skip(pid, n)]
                for t in ticks:
                    calls += t.calls
                    alerts += t.alerts
                a = at
            rest[pid] = x[a:]
        t = self.push(rest)
        return Tick(calls + t.calls, alerts + t.alerts)

    def discharge(self, patient_id: str) -> Tick:
        """End a patient's stream: label the beats still waiting and forget the patient."""
        st = self._get(patient_id)
        calls, alerts = self._finish(st)
        alerts += self._stream_alerts(st, final=True)
        del self._patients[st.pid]
        return Tick(calls, alerts)

    def _finish(self, st: PatientStream) -> tuple[list[BeatCall], list[Alert]]:
        """Flush the stream and label every beat it holds, as at its end: the beats
        labelled and the run and ectopy rules' alerts on them."""
        st.flush()
        self.inputs.window(st, st.ready_peaks(final=True))
        if st.waiting is not None:  # the last beat has no successor: features as at record end
            peak, ok = st.waiting
            st.rows.append((self.inputs.features(st, None), ok, peak))
            st.waiting = None
        calls = self._label([st], final=True)
        return calls, self._alerts(calls)

    def _stream_alerts(self, st: PatientStream, final: bool) -> list[Alert]:
        """Pauses, and the quality windows judged since the last call (which release the
        beats waiting for them to the run and ectopy rules)."""
        out: list[Alert] = []
        now = st.n / st.fs
        for prev, p, quiet in st.new_gaps:
            out += st.alerts.detected(prev / st.fs if prev >= 0 else -math.inf, p / st.fs, now,
                                      quiet)  # fmt: skip
        st.new_gaps = []
        last = st.last_peak / st.fs if st.last_peak >= 0 else -math.inf
        # at the end every R peak is known (the detector was flushed): a silence that ends
        # the stream is checked up to its last sample (3.0-3.5 s of it raised nothing)
        known = now if final else st.known_until_s()
        # a pause's silence is judged on its own (the latest quality window ended before it)
        out += st.alerts.silence(last, known, now, st.latest_verdict(),
                                 lambda: st.silence_flags(st.last_peak))  # fmt: skip
        for stop, why in st.new_windows:
            out += st.alerts.signal(why, stop / st.fs, now)
        st.new_windows = []
        if final:
            out += st.alerts.finish(now)
        return out

    def _alerts(self, calls: list[BeatCall]) -> list[Alert]:
        out: list[Alert] = []
        for c in calls:
            tracker = self._patients[c.patient_id].alerts
            out += tracker.beat(c.time_s, c.label, c.signal_ok, c.labelled_at_s)
        return out

    # ---------------------------------------------------------------- internals
    def _get(self, pid: str) -> PatientStream:
        try:
            return self._patients[str(pid)]
        except KeyError:
            raise KeyError(f"patient {pid!r} is not being monitored; admit() them first") from None

    def _label(self, pats: list[PatientStream], final: bool) -> list[BeatCall]:
        return label_ready(self.model, pats, 0 if final else self.delay, self.max_batch)
