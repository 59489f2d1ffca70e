"""Alarm rules over a patient's labelled beats, as a bedside monitor raises them.

Each rule raises an :class:`~vitalgru.scoring.alert_types.Alert` once per episode: when its condition starts, not on
every beat while it lasts; it is re-armed once the condition has cleared. The rules and
their default limits are those of ECG arrhythmia monitoring practice (every limit is a
setting of :class:`~vitalgru.scoring.alert_types.AlertRules`, as on a bedside monitor):

* ``ventricular_run``: ``v_run_beats`` (3) or more consecutive V beats; three or more
  ventricular beats in a row is the usual definition of a ventricular run (non-sustained
  ventricular tachycardia when the rate is 100 bpm or more; the alert gives the rate).
* ``supraventricular_run``: ``s_run_beats`` (3) or more consecutive S beats at
  ``s_run_min_bpm`` (100) or faster (a run of supraventricular tachycardia).
* ``frequent_ventricular_ectopy``: ``v_per_window`` (10) or more V beats within the last
  ``window_s`` (60) seconds (the "PVCs per minute" limit of monitors); re-armed once the
  count has fallen below half the limit, so a rate hovering at the limit is one alarm.
* ``pause``: no R peak detected for ``pause_s`` (3) seconds (asystole, or a lead problem);
  open until the next R peak is detected (:attr:`AlertTracker.pause_open`). Over a break in
  the feed (:meth:`AlertTracker.broken`) only the silence received counts, on both sides of
  it. To tell asystole from a lead problem the alarm judges the silence itself with the
  signal-quality check's own checks and limits (the monitor judges its last 2 s before it
  became a pause: the latest quality window ended before the silence began, and there is
  none in a stream's first seconds): when it is non-finite (a device sending null) or lead
  off, the message says a lead problem is the likely cause; flat alone, it says asystole or
  a lead off, the patient first (an asystole is a flat line too, and no electrode impedance
  is seen here); :attr:`Alert.signal_flags` names what was found. A silence that passes, after a quality
  window that rejected the lead, says that instead. The timing is the same either way: an
  asystole pages as fast.
* ``poor_signal`` (a technical alarm): ``poor_signal_windows`` (3) trailing quality windows
  in a row (:mod:`vitalgru.dsp.quality`; 10 s windows every 2 s, so about 14 s of signal)
  are rejected: flat, clipped, lead off, non-finite or noisy. Re-armed once as many windows
  in a row have passed, so a lead that flickers between good and bad is one alarm.

Beats recorded in signal the live quality check rejected neither start nor extend a run or
the ectopy count, since noise mimics ectopic beats. A beat's own verdict (``signal_ok``, the
trailing window that ended with the beat) can miss a burst that starts just after it, so the
run and ectopy rules read each beat only once the quality windows ending up to
``quality_holdoff_s`` (4) seconds after it have been judged, and distrust it if any of those
was rejected. A beat in the first seconds after admission, a break in the feed
(:meth:`AlertTracker.broken`) or a gateway restart comes before the quality check has judged
a full window (the first ends one window, 10 s, after the stream (re)started): its own
verdict judges none of its signal (it is True before any window, and the last one before the
break after a break) and no window ends within the hold-off after it. Such a beat waits for
that first window, which covers it, and is distrusted if that window was rejected (noise on
a lead not yet on the patient is no run). This delays those alarms by a few seconds (to the
end of the first window at the start), and makes them depend on the beats and the quality
windows only, not on when the monitor is pushed. At the stream's end or a break, the beats
still waiting are read with the windows judged by then.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

from vitalgru.scoring.alert_types import Alert, AlertRules

__all__ = ["Alert", "AlertRules", "AlertTracker"]

#: Breaks in a feed kept since its latest R peak, at most: older ones are merged, their
#: seconds kept (a silence broken again and again does not grow without bound).
MAX_BREAKS_KEPT = 256


#: Tolerance on the times a rule compares (s): far below a sample at any rate, so that a
#: pause of exactly ``pause_s`` counted in samples is one wherever it falls in the stream
#: (3.000 s as a difference of two float times can come out 2.9999999999999996).
_EPS_S = 1e-6


class AlertTracker:
    """One patient's alarm state; feed it the patient's labelled beats in time order."""

    def __init__(self, patient_id: str, rules: AlertRules) -> None:
        self.patient_id = patient_id
        self.rules = rules
        self._run_kind: str | None = None  # "V" or "S"
        # the current run: its first and latest beat's time, and its beats (a run that never
        # ends, every beat V, keeps three numbers, not every beat)
        self._run_first = self._run_last = math.nan
        self._run_n = 0
        self._run_raised = False
        self._v_times: deque[float] = deque()
        self._ectopy_raised = False
        self._pause_raised = False
        self._signal_raised = False
        self._bad_windows = 0
        self._good_windows = 0
        # beats waiting for the quality windows after them: (time_s, label, signal_ok)
        self._queue: deque[tuple[float, str, bool]] = deque()
        self._rejected: deque[float] = deque()  # ends of rejected windows not yet passed (s)
        self._judged_until = -math.inf  # end of the latest window judged (s)
        # end of the first window judged since the stream (re)started: the first to cover
        # the beats before it (inf: none yet)
        self._first_end = math.inf
        # breaks in the feed since the latest R peak: (stream time it resumed, seconds lost)
        self._breaks: deque[tuple[float, float]] = deque()
        self._pause_after = -math.inf  # the R peak the open pause alarm came after
        # how far the silence of the open pause alarm had been seen when it was raised: an
        # R peak reported later but inside it (the detector's search-back) does not end it
        self._pause_seen_to = -math.inf

    def beat(self, time_s: float, label: str, signal_ok: bool, now_s: float) -> list[Alert]:
        """Add one labelled beat (in time order); the alerts raised by the beats whose
        quality windows are now judged."""
        self._queue.append((time_s, label, signal_ok))
        return self._drain(now_s, final=False)

    def finish(self, now_s: float) -> list[Alert]:
        """The end of the stream: read the beats still waiting with the windows judged."""
        return self._drain(now_s, final=True)

    def broken(self, resume_s: float, lost_s: float, now_s: float) -> list[Alert]:
        """The stream broke off: ``lost_s`` seconds of samples were lost, and it resumes at
        ``resume_s``. Read the beats still waiting as at the stream's end and end a run (its
        beats on either side of the break were not consecutive); the quality check starts
        afresh after it, so the beats after it wait for its first window. The pause rule
        counts the silence it saw, not the samples no one saw: a pause is ``pause_s`` of
        signal received without an R peak, on either side of the break. A pause raised
        before it stays open until the next R peak."""
        out = self._drain(now_s, final=True)
        self._end_run()
        self._first_end = math.inf  # the quality check starts afresh at resume_s
        self._breaks.append((float(resume_s), float(lost_s)))
        if len(self._breaks) > MAX_BREAKS_KEPT:  # a silence broken again and again: the two
            (_, lost1), (resume2, lost2) = self._breaks.popleft(), self._breaks.popleft()
            self._breaks.appendleft((resume2, lost1 + lost2))  # oldest as one, the sum kept
        return out

    def _unseen(self, after_s: float, until_s: float) -> float:
        """Seconds lost in the breaks between ``after_s`` and ``until_s``."""
        return sum(lost for resume, lost in self._breaks if after_s < resume <= until_s)

    def _drain(self, now_s: float, final: bool) -> list[Alert]:
        out: list[Alert] = []
        hold = self.rules.quality_holdoff_s
        while self._queue and (final or self._queue[0][0] + hold <= self._judged_until):
            t, label, ok = self._queue.popleft()
            while self._rejected and self._rejected[0] < t:
                self._rejected.popleft()  # ended before this beat: no later beat needs it
            # a beat before the first window since the stream (re)started is judged by that
            # window, which covers it (a beat no window covered is read on its own verdict:
            # at the end or a break nothing more will judge it)
            first = self._first_end
            reach = max(t + hold, first) if first < math.inf else t + hold
            burst = bool(self._rejected) and self._rejected[0] <= reach
            out += self._read(t, label, ok and not burst, now_s)
        return out

    def _read(self, time_s: float, label: str, signal_ok: bool, now_s: float) -> list[Alert]:
        """Apply the run and ectopy rules to one beat whose signal has been judged."""
        out: list[Alert] = []
        if not signal_ok:
            self._end_run()
            return out
        if label in ("V", "S"):
            if label != self._run_kind:
                self._end_run()
                self._run_kind = label
            if self._run_n == 0:
                self._run_first = time_s
            self._run_last, self._run_n = time_s, self._run_n + 1
            alert = self._check_run(now_s)
            if alert is not None:
                out.append(alert)
        else:
            self._end_run()
        if label == "V":
            self._v_times.append(time_s)
        while self._v_times and self._v_times[0] <= time_s - self.rules.window_s:
            self._v_times.popleft()
        n_v = len(self._v_times)
        if n_v >= self.rules.v_per_window and not self._ectopy_raised:
            self._ectopy_raised = True
            out.append(
                Alert(
                    self.patient_id,
                    "frequent_ventricular_ectopy",
                    time_s,
                    now_s,
                    f"frequent ventricular ectopy: {n_v} V beats in the last "
                    f"{self.rules.window_s:g} s",
                    n_beats=n_v,
                )
            )
        elif 2 * n_v < self.rules.v_per_window:  # hysteresis: re-armed below half the limit
            self._ectopy_raised = False
        return out

    def detected(
        self, previous_s: float, peak_s: float, now_s: float, silent_flags: str = ""
    ) -> list[Alert]:
        """Update with a newly detected R peak (``previous_s``: the one before it, -inf for
        the first, counted from the stream's start). A gap of ``pause_s`` or more that
        :meth:`silence` has not already reported is reported now, so every pause is one
        alert however often the monitor is pushed. ``silent_flags``: what the quality check
        finds wrong with the silence between the two (as :meth:`silence`'s)."""
        onset = max(previous_s, 0.0) if math.isfinite(previous_s) else 0.0
        unseen = self._unseen(onset, peak_s)
        gap = peak_s - onset - unseen
        out = []
        if gap >= self.rules.pause_s - _EPS_S and not self._pause_raised:
            out.append(Alert(self.patient_id, "pause", onset, now_s,
                             _pause_message(gap, unseen, _lead_note(silent_flags)),
                             signal_flags=silent_flags))  # fmt: skip
        if peak_s >= self._pause_seen_to:
            self._pause_raised = False  # the pause, if any, ended with this beat
        # else a peak found late inside the silence already alarmed: the silence goes on
        # after it, and it is the same pause (it was raised a second time, the first never
        # ended, when such a peak re-armed it)
        while self._breaks and self._breaks[0][0] <= peak_s:
            self._breaks.popleft()  # no later silence spans it
        return out

    def silence(
        self,
        last_beat_s: float,
        known_until_s: float,
        now_s: float,
        signal_ok: bool | None,
        silent_flags: Callable[[], str] | str = "",
    ) -> list[Alert]:
        """Check for a pause.

        Parameters
        ----------
        last_beat_s : float
            Latest R peak detected (s; -inf before the first: counted from the start).
        known_until_s : float
            Time up to which every R peak has been reported (the stream time less the
            detector's latency).
        now_s : float
            Stream time now.
        signal_ok : bool or None
            The latest signal-quality verdict (None: none yet).
        silent_flags : str or callable
            What the signal-quality check finds wrong with the silence since the last beat
            (``"flat"``, ``"nonfinite, lead off"``; ``""``: nothing), or a function giving
            it, called only when a pause is raised.
        """
        onset = max(last_beat_s, 0.0) if math.isfinite(last_beat_s) else 0.0
        unseen = self._unseen(onset, known_until_s)
        since = known_until_s - onset - unseen
        if since < self.rules.pause_s - _EPS_S:
            after = max(self._pause_after, self._pause_seen_to)
            if math.isfinite(last_beat_s) and last_beat_s > after:
                self._pause_raised = False  # beats again: re-armed (a young stream is not)
            return []
        if self._pause_raised:
            return []
        self._pause_raised = True
        self._pause_after = last_beat_s
        self._pause_seen_to = known_until_s
        flags = silent_flags() if callable(silent_flags) else silent_flags
        lead = _lead_note(flags)
        if not flags and signal_ok is False:
            lead = "; the signal quality check rejects the lead: check the electrodes"
        return [
            Alert(
                self.patient_id,
                "pause",
                onset,
                now_s,
                _pause_message(since, unseen, lead),
                signal_flags=flags,
            )
        ]

    @property
    def signal_good(self) -> bool:
        """Whether the latest ``poor_signal_windows`` quality windows judged all passed (the
        condition that re-arms the poor-signal alarm; False before that many were judged)."""
        return self._good_windows >= int(self.rules.poor_signal_windows)

    @property
    def pause_open(self) -> bool:
        """Whether a pause alarm was raised and no R peak has been detected since."""
        return self._pause_raised

    def pause_alarm_open(self) -> None:
        """Take the pause alarm as raised and not yet ended (one raised before a restart
        that is still open): none is raised again, and it ends with the next R peak."""
        self._pause_raised = True

    def signal_alarm_open(self) -> None:
        """Take the poor-signal alarm as raised and not yet re-armed (one raised before a
        restart that is still open): none is raised again until the signal is good for as
        long as re-arms it."""
        self._signal_raised = True
        self._good_windows = 0

    def signal(self, flags: str, window_end_s: float, now_s: float) -> list[Alert]:
        """Update with one trailing quality window's verdict, windows in time order:
        ``flags`` names what it was rejected for ("" when it passed); it ended at
        ``window_end_s``."""
        need = int(self.rules.poor_signal_windows)
        self._judged_until = max(self._judged_until, window_end_s)
        self._first_end = min(self._first_end, window_end_s)
        if flags:
            self._rejected.append(window_end_s)
        while self._rejected and self._rejected[0] < window_end_s - 120.0:
            self._rejected.popleft()  # no beat waits that long for its label
        out = self._drain(now_s, final=False)
        if flags:
            self._bad_windows += 1
            self._good_windows = 0
        else:
            self._good_windows += 1
            self._bad_windows = 0
            if self._good_windows >= need:
                self._signal_raised = False  # good again for as long: re-armed
            return out
        if self._signal_raised or self._bad_windows < need:
            return out
        self._signal_raised = True
        return out + [
            Alert(
                self.patient_id,
                "poor_signal",
                window_end_s,
                now_s,
                f"poor ECG signal ({flags}) in {self._bad_windows} quality windows in a row: "
                "beats cannot be trusted; check the electrodes",
                signal_flags=flags,
            )
        ]

    def _check_run(self, now_s: float) -> Alert | None:
        n = self._run_n
        if self._run_raised:
            return None
        need = self.rules.v_run_beats if self._run_kind == "V" else self.rules.s_run_beats
        if n < need:
            return None
        span = self._run_last - self._run_first
        rate = 60.0 * (n - 1) / span if span > 0 else None
        # at the limit within float rounding: 216 samples at 360 Hz is 100 bpm, whether the
        # division gives 99.99999999999999 or 100.00000000000006 where the run falls
        if self._run_kind == "S" and (rate is None or rate < self.rules.s_run_min_bpm - 1e-6):
            return None
        self._run_raised = True
        kind = "ventricular_run" if self._run_kind == "V" else "supraventricular_run"
        what = "ventricular" if self._run_kind == "V" else "supraventricular"
        at = f" at {rate:.0f} bpm" if rate is not None else ""
        return Alert(
            self.patient_id,
            kind,
            self._run_first,
            now_s,
            f"{what} run: {n} consecutive {self._run_kind} beats{at}",
            rate_bpm=rate,
            n_beats=n,
        )

    def _end_run(self) -> None:
        self._run_kind = None
        self._run_first = self._run_last = math.nan
        self._run_n = 0
        self._run_raised = False


def _lead_note(flags: str) -> str:
    """What a pause message says when its silence is not an ECG (nothing when it is).

    Missing samples or a lead off are a lead problem. A flat silence alone is not: an
    asystole is a flat line too (these checks see no electrode impedance), so the message
    names both and the patient first."""
    if not flags:
        return ""
    if flags == "flat":
        return "; the signal in it is flat: asystole or a lead off, check the patient first"
    return f"; the signal in it is {flags}: likely a lead problem, check the electrodes"


def _pause_message(silent_s: float, unseen_s: float, lead: str) -> str:
    """A pause's message, whichever way it was found (while it lasted, :meth:`AlertTracker.silence`,
    or at the beat that ended it, :meth:`AlertTracker.detected`): the detector found no R
    peak, which is not yet to say the heart did not beat (a low QRS, noise)."""
    return f"pause: no heartbeat detected for {silent_s:.1f} s{_unseen_note(unseen_s)}{lead}"


def _unseen_note(unseen_s: float) -> str:
    """What a pause message says of samples lost in it (nothing when none were)."""
    return f" of signal received ({unseen_s:.1f} s more not received)" if unseen_s > 0 else ""
