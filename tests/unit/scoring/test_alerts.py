"""Alarm rules: each raised once per episode, on hand-made beat sequences; and the monitor's
EC57 beat-by-beat score against golden counts."""

from __future__ import annotations

import numpy as np
import pytest

from vitalgru.scoring import AlertRules, AlertTracker, BeatCall, live_report


def _feed(
    tr: AlertTracker, labels: str, rr_s: float = 0.6, ok: str | None = None, t0: float = 0.0
) -> list:
    """Each beat is labelled 2 s after it; a clean quality window ends with every beat."""
    out = []
    for i, lab in enumerate(labels):
        t = t0 + i * rr_s
        good = True if ok is None else ok[i] == "1"
        out += tr.beat(t, lab, good, t + 2.0)
        out += tr.signal("", t, t + 2.0)
    return out + tr.finish(t0 + len(labels) * rr_s + 2.0)


class TestRules:
    def test_three_v_in_a_row_is_one_ventricular_run_alert(self) -> None:
        tr = AlertTracker("p", AlertRules())
        alerts = _feed(tr, "NNVVNNVVVVVVNN")
        assert [a.kind for a in alerts] == ["ventricular_run"]
        a = alerts[0]
        assert a.onset_s == pytest.approx(6 * 0.6) and a.n_beats == 3
        assert a.rate_bpm == pytest.approx(100.0)
        # raised only once the quality windows up to 4 s after its third beat are judged
        assert a.raised_at_s >= 8 * 0.6 + 4.0
        # a second run after the first ended is a new episode
        assert [x.kind for x in _feed(tr, "NVVV", t0=100.0)] == ["ventricular_run"]

    def test_beats_in_rejected_signal_neither_start_nor_extend_a_run(self) -> None:
        tr = AlertTracker("p", AlertRules())
        assert _feed(tr, "NVVVN", ok="11011") == []

    def test_a_beat_in_rejected_signal_ends_the_run_it_falls_in(self) -> None:
        """Two V beats, one in noise, two more: the beats either side of the noise are not
        known to be consecutive, so they are two runs of two, not a ventricular run of
        three (a rejected beat that left the run open paged on a run no one saw)."""
        tr = AlertTracker("p", AlertRules())
        assert _feed(tr, "NVVVVN", ok="110111") == []

    def test_a_run_in_a_noise_burst_the_beats_own_verdicts_missed_is_held_back(self) -> None:
        tr = AlertTracker("p", AlertRules())
        out = []
        for i, lab in enumerate("NNVVVN"):  # beats 0.6 s apart, all with a good own verdict
            out += tr.beat(i * 0.6, lab, True, i * 0.6 + 2.0)
        out += tr.signal("noisy", 3.0, 5.0)  # a window ending 1.2 s after the V beats
        out += tr.signal("", 8.0, 9.0)
        assert out == []  # V beats in noise: no ventricular-run alarm
        # the same beats with clean windows after them do raise it
        tr2 = AlertTracker("p", AlertRules())
        for i, lab in enumerate("NNVVVN"):
            tr2.beat(i * 0.6, lab, True, i * 0.6 + 2.0)
        (a,) = tr2.signal("", 3.0, 5.0) + tr2.signal("", 8.0, 9.0)
        assert a.kind == "ventricular_run" and a.raised_at_s == 9.0

    def test_a_noisy_window_up_to_the_hold_off_after_a_run_holds_it_back(self) -> None:
        # the hold-off is 4 s: a rejected window ending 3.1 s after the last V beat makes
        # the run noise too (only 1.2 s was ever tried)
        tr = AlertTracker("p", AlertRules())
        out = []
        for i, lab in enumerate("NNVVVN"):
            out += tr.beat(i * 0.6, lab, True, i * 0.6 + 2.0)
        out += tr.signal("noisy", 5.5, 6.0) + tr.signal("", 8.0, 9.0)
        assert out == []
        later = AlertTracker("p", AlertRules())  # past the hold-off: the run stands
        for i, lab in enumerate("NNVVVN"):
            later.beat(i * 0.6, lab, True, i * 0.6 + 2.0)
        out = later.signal("", 5.5, 6.5) + later.signal("noisy", 6.5, 7.0)
        assert [a.kind for a in out + later.signal("", 9.0, 10.0)] == ["ventricular_run"]

    def test_beats_before_the_first_quality_window_wait_for_it(self) -> None:
        # a lead not yet on the patient at admission: the detector finds "beats" in the
        # noise; the first 10 s window, which covers them, ends at 10 s and is rejected.
        # Neither their own verdict (none yet) nor a window ending within the 4 s hold-off
        # after them judged them, so they were read as good and raised a run.
        def run(flags: str, resume_s: float | None = None) -> list:
            tr = AlertTracker("p", AlertRules())
            out, t0 = [], 0.0
            if resume_s is not None:  # 20 s of clean signal, then a break, then the noise
                for k in range(1, 11):
                    out += tr.signal("", 2.0 * k, 2.0 * k)
                out += tr.broken(resume_s, resume_s - 20.0, 20.0)
                t0 = resume_s
            for i, lab in enumerate("SSSSN"):  # 0.5 s apart: 120 bpm
                out += tr.beat(t0 + 0.5 + i * 0.5, lab, True, t0 + 3.0 + i * 0.5)
            assert out == []  # waiting for the window that covers them
            out += tr.signal(flags, t0 + 10.0, t0 + 10.0)
            return out + tr.signal(flags, t0 + 12.0, t0 + 12.0) + tr.finish(t0 + 12.0)

        assert [a.kind for a in run("flat")] == []
        (a,) = run("")  # the same beats in signal the window passed do raise it
        assert (a.kind, a.onset_s, a.raised_at_s) == ("supraventricular_run", 0.5, 10.0)
        # the same after a break in the feed: the quality check starts afresh after it
        assert [a.kind for a in run("flat", resume_s=30.0)] == []
        assert [a.kind for a in run("", resume_s=30.0)] == ["supraventricular_run"]

    def test_supraventricular_run_needs_its_rate(self) -> None:
        slow = AlertTracker("p", AlertRules())
        assert _feed(slow, "NSSSSN", rr_s=0.8) == []  # 75 bpm: ectopic atrial rhythm
        fast = AlertTracker("p", AlertRules())
        (a,) = _feed(fast, "NSSSN", rr_s=0.4)
        assert a.kind == "supraventricular_run" and a.rate_bpm == pytest.approx(150.0)

    def test_frequent_ectopy_counts_v_beats_in_the_window(self) -> None:
        rules = AlertRules(v_per_window=4, window_s=10.0)
        tr = AlertTracker("p", rules)
        # bigeminy every 1.2 s: V beats at 0.6, 1.8, 3.0, 4.2 s -> the fourth raises
        alerts = _feed(tr, "NV" * 8)
        assert [a.kind for a in alerts] == ["frequent_ventricular_ectopy"]
        assert alerts[0].onset_s == pytest.approx(4.2) and alerts[0].n_beats == 4
        # at the limit and a little under it: still the same episode; well under: re-armed
        assert _feed(tr, "NNNNNNNNNNNNNV", t0=20.0) == []  # 1 V in the window: re-armed
        assert len(_feed(tr, "NV" * 4, t0=30.0)) == 1

    def test_frequent_ectopy_hovering_at_the_limit_is_one_episode(self) -> None:
        # 4 V beats in 10 s, then one drops out of the window (3) and one more comes (4):
        # under the limit but not under half of it, still the same episode
        tr = AlertTracker("p", AlertRules(v_per_window=4, window_s=10.0))
        out = []
        for t in (0.0, 2.0, 4.0, 6.0, 12.0, 13.0):
            out += tr.beat(t, "V", True, t + 2.0) + tr.beat(t + 0.6, "N", True, t + 2.6)
        out += tr.finish(30.0)
        assert [a.kind for a in out] == ["frequent_ventricular_ectopy"]

    def test_a_v_beat_older_than_the_window_is_not_counted(self) -> None:
        tr = AlertTracker("p", AlertRules(v_per_window=4, window_s=10.0))
        out = []
        for t in (0.0, 3.0, 6.0, 10.5):  # four V beats, the first 10.5 s before the last
            out += tr.beat(t, "V", True, t + 2.0) + tr.beat(t + 0.8, "N", True, t + 2.8)
        assert [a.kind for a in out + tr.finish(20.0)] == []
        within = AlertTracker("p", AlertRules(v_per_window=4, window_s=10.0))
        out = []
        for t in (0.0, 3.0, 6.0, 9.5):
            out += within.beat(t, "V", True, t + 2.0) + within.beat(t + 0.8, "N", True, t + 2.8)
        assert [a.kind for a in out + within.finish(20.0)] == ["frequent_ventricular_ectopy"]

    def test_a_v_beat_exactly_window_s_old_has_left_the_window(self) -> None:
        """The ectopy window is ``(t - window_s, t]``: four V beats spanning exactly 10 s
        are never more than three in it, under the limit of four (counting the oldest
        in raised frequent ectopy on a burden the rule does not call frequent)."""
        tr = AlertTracker("p", AlertRules(v_per_window=4, window_s=10.0))
        out = []
        for t in (0.0, 4.0, 7.0, 10.0):  # the first exactly 10 s before the last
            out += tr.beat(t, "V", True, t + 2.0) + tr.beat(t + 0.8, "N", True, t + 2.8)
        assert [a.kind for a in out + tr.finish(20.0)] == []

    def test_a_pause_is_one_alert_whether_seen_live_or_when_it_ended(self) -> None:
        tr = AlertTracker("p", AlertRules(pause_s=3.0))
        assert tr.detected(-float("inf"), 0.8, 1.0) == []
        assert tr.detected(0.8, 3.5, 4.0) == []  # 2.7 s: no pause
        (a,) = tr.detected(3.5, 7.0, 7.5)  # pushed rarely: found when it ended
        assert (a.kind, a.onset_s) == ("pause", 3.5) and "3.5 s" in a.message
        (b,) = tr.silence(7.0, 10.2, 10.6, True)  # pushed often: found while it lasts
        assert tr.detected(7.0, 11.0, 11.4) == []  # ... and not again when it ends
        assert tr.detected(11.0, 15.0, 15.4)[0].onset_s == 11.0

    def test_a_pause_says_the_same_whether_seen_live_or_when_it_ended(self) -> None:
        # the detector found no R peak: "no heartbeat detected" on both ways of finding it,
        # not a flat "no heartbeat" (a fact) on one of them
        ended = AlertTracker("p", AlertRules(pause_s=3.0))
        (a,) = ended.detected(10.0, 14.2, 15.0)
        live = AlertTracker("p", AlertRules(pause_s=3.0))
        (b,) = live.silence(10.0, 14.2, 15.0, True)
        assert a.message == b.message == "pause: no heartbeat detected for 4.2 s"

    def test_a_peak_found_late_inside_an_alarmed_pause_does_not_raise_it_again(self) -> None:
        # the detector's search-back reported a peak 0.5 s after the last beat only once
        # the pause was alarmed: it re-armed the alarm, the silence after it raised a
        # second pause, and the first was never ended (the ward's beats_resumed names one)
        tr = AlertTracker("p", AlertRules(pause_s=3.0))
        tr.detected(-float("inf"), 13.2, 13.5)
        (a,) = tr.silence(13.2, 16.4, 16.8, False)
        assert a.onset_s == 13.2 and tr.pause_open
        assert tr.detected(13.2, 13.7, 20.0) == []  # found late, inside the silence
        assert tr.pause_open
        # the silence looked at again just after it, and a little later: the same pause
        assert tr.silence(13.7, 16.5, 16.9, False) == []
        assert tr.silence(13.7, 16.8, 17.2, False) == []
        assert tr.silence(13.7, 19.6, 20.0, False) == []  # the same pause: not raised again
        assert tr.silence(13.7, 22.0, 22.4, False) == []
        assert tr.detected(13.7, 22.5, 22.9) == [] and not tr.pause_open  # ended by a beat
        assert [x.kind for x in tr.silence(22.5, 25.6, 26.0, True)] == ["pause"]  # re-armed

    def test_a_rule_at_its_exact_limit_holds_wherever_it_falls_in_the_stream(self) -> None:
        # times are samples / fs: 3.000 s or 100 bpm exactly can come out a rounding under
        fs = 360.0
        for start in (504, 720, 784, 4988, 5000, 22934, 36000):
            tr = AlertTracker("p", AlertRules(pause_s=3.0))
            tr.detected(-float("inf"), start / fs, start / fs + 0.5)
            (a,) = tr.detected(start / fs, (start + 1080) / fs, (start + 1080) / fs + 0.5)
            assert a.kind == "pause", start
            run = AlertTracker("p", AlertRules())
            out = []
            for k, lab in enumerate("NSSSN"):
                t = (start + 216 * k) / fs  # 216 samples: 100 bpm
                out += run.beat(t, lab, True, t + 2.0)
            assert [x.kind for x in out + run.finish(9e9)] == ["supraventricular_run"], start
            slow = AlertTracker("p", AlertRules())  # 217 samples: 99.5 bpm, under it
            for k, lab in enumerate("NSSSN"):
                assert slow.beat((start + 217 * k) / fs, lab, True, 9e9) == []
            assert slow.finish(9e9) == []

    def test_pause_and_poor_signal_are_raised_once_and_re_armed(self) -> None:
        tr = AlertTracker("p", AlertRules(pause_s=3.0))
        assert tr.silence(10.0, 12.9, 13.3, True) == []
        (a,) = tr.silence(10.0, 13.1, 13.5, False)
        assert a.kind == "pause" and a.onset_s == 10.0 and "electrodes" in a.message
        assert tr.silence(10.0, 15.0, 15.4, False) == []
        assert tr.silence(15.0, 15.5, 15.9, True) == []  # beats again
        assert [x.kind for x in tr.silence(15.0, 18.5, 18.9, True)] == ["pause"]
        # three rejected windows in a row raise; a flickering lead stays one alarm
        assert tr.signal("lead off", 20.0, 21.0) == tr.signal("lead off", 22.0, 23.0) == []
        (s,) = tr.signal("lead off, noisy", 24.0, 25.0)
        assert s.kind == "poor_signal" and "lead off, noisy" in s.message and s.onset_s == 24.0
        for k, flags in enumerate(["", "noisy", "", "", "noisy", "noisy", "noisy"]):
            assert tr.signal(flags, 26.0 + 2 * k, 27.0 + 2 * k) == []
        assert not tr.signal_good
        for k in range(3):
            assert tr.signal("", 40.0 + 2 * k, 41.0 + 2 * k) == []  # good for 3: re-armed
            assert tr.signal_good == (k == 2)
        assert tr.signal("flat", 46.0, 47.0) == tr.signal("flat", 48.0, 49.0) == []
        assert len(tr.signal("flat", 50.0, 51.0)) == 1

    def test_a_pause_counts_the_silence_received_and_no_run_goes_on_over_a_break(self) -> None:
        # a feed lost for 10 s (samples no one saw) read as a 10 s pause, and the ectopic
        # beats either side of it as one run
        tr = AlertTracker("p", AlertRules(pause_s=3.0, v_run_beats=3))
        assert tr.detected(-float("inf"), 0.8, 1.0) == tr.detected(0.8, 1.6, 2.0) == []
        assert tr.beat(1.0, "V", True, 2.0) + tr.beat(1.6, "V", True, 2.0) == []
        assert tr.broken(12.0, 10.0, 12.0) == []  # samples lost from 2.0 s to 12.0 s
        assert tr.silence(1.6, 14.5, 14.9, True) == []  # 0.4 + 2.5 s of silence received
        assert tr.detected(1.6, 12.5, 13.0) == []  # the first beat after it is no pause
        assert tr.beat(12.5, "V", True, 13.0) + tr.finish(14.0) == []  # nor a third V in a row
        # the patient silent after the break: a pause, once 3 s of silence were received
        # either side of it, from the last beat
        tr = AlertTracker("p", AlertRules(pause_s=3.0))
        tr.detected(-float("inf"), 0.8, 1.0)
        tr.broken(12.0, 10.0, 12.0)
        assert tr.silence(0.8, 13.7, 14.1, True) == []
        (a,) = tr.silence(0.8, 13.9, 14.3, True)
        assert (a.kind, a.onset_s) == ("pause", 0.8)
        assert "for 3.1 s of signal received (10.0 s more not received)" in a.message
        # ... and found when it ended, the same way
        tr = AlertTracker("p", AlertRules(pause_s=3.0))
        tr.detected(-float("inf"), 0.8, 1.0)
        tr.broken(12.0, 10.0, 12.0)
        assert tr.detected(0.8, 13.7, 14.0) == []
        tr.broken(25.0, 10.0, 25.0)  # lost from 15.0 s: 1.3 + 2.2 s of silence received
        assert "3.5 s of signal received" in tr.detected(13.7, 27.2, 27.5)[0].message
        # a pause raised before the break stays open over it, until a beat
        tr = AlertTracker("p", AlertRules(pause_s=3.0))
        tr.detected(-float("inf"), 0.8, 1.0)
        assert len(tr.silence(0.8, 4.0, 4.4, True)) == 1
        tr.broken(20.0, 15.0, 20.0)
        assert tr.silence(0.8, 21.0, 21.4, True) == [] and tr.pause_open
        assert tr.detected(0.8, 21.5, 22.0) == [] and not tr.pause_open
        # without the break the same beats are a run
        tr = AlertTracker("p", AlertRules(v_run_beats=3))
        got = [a.kind for t in (1.0, 1.6, 12.5) for a in tr.beat(t, "V", True, 13.0)]
        assert got + [a.kind for a in tr.finish(14.0)] == ["ventricular_run"]

    @pytest.mark.parametrize(
        "bad", [{"v_run_beats": 0}, {"pause_s": float("nan")}, {"v_run_beats": 2.5},
                {"pause_s": True}, {"unknown": 1}],
    )  # fmt: skip
    def test_bad_limits_are_clear_errors(self, bad: dict) -> None:
        with pytest.raises(ValueError, match="alert rule"):
            AlertRules.from_dict(bad)


def _call(rid: str, idx: int, label: str) -> BeatCall:
    return BeatCall(rid, 0, idx, idx / 360.0, label, (0.2,) * 5, True, idx / 360.0 + 3)


class TestLiveReport:
    def test_golden_counts(self) -> None:
        # reference: 5 beats N N V N S; flutter episode 3000-3600
        ref_idx = np.array([100, 400, 700, 1000, 1300])
        ref_lab = np.array([0, 0, 2, 0, 1])
        vf = np.array([[3000, 3600]])
        calls = {
            "r": [
                _call("r", 110, "N"),  # 10 samples off: matched, right
                _call("r", 420, "V"),  # matched, wrong (N called V)
                _call("r", 700, "V"),  # matched, right
                # 1000 (N) missed
                _call("r", 1340, "S"),  # 40 samples = 111 ms off: outside +-75 ms
                _call("r", 2000, "N"),  # extra
                _call("r", 3300, "V"),  # in flutter: not counted as extra
            ]
        }
        rep = live_report(calls, {"r": (ref_idx, ref_lab, vf, 360.0)})
        d = rep["detection"]
        assert (d["reference"], d["detected"], d["matched"]) == (5, 5, 3)
        assert d["missed"] == {"N": 1, "S": 1, "V": 0, "F": 0, "Q": 0}
        assert d["extra"] == {"N": 1, "S": 1, "V": 0, "F": 0, "Q": 0}
        assert d["se"] == pytest.approx(3 / 5) and d["ppv"] == pytest.approx(3 / 5)
        cm = np.array(rep["beats"]["confusion_matrix"])
        assert cm[0, 0] == 1 and cm[0, 2] == 1 and cm[2, 2] == 1 and cm.sum() == 3
        assert rep["beats"]["records"]["r"]["n_beats"] == 3


def _sizes(tr: AlertTracker) -> int:
    """The longest list or deque the tracker holds."""
    return max((len(v) for v in vars(tr).values() if isinstance(v, list | tuple) or
                hasattr(v, "popleft")), default=0)  # fmt: skip


def test_a_run_that_never_ends_and_breaks_that_come_and_go_keep_bounded_state() -> None:
    # every beat of a run that never ended was kept (only its first, last and count are
    # read), and every break of a silence until the next R peak
    tr = AlertTracker("p", AlertRules())
    alerts = _feed(tr, "V" * 3000)
    assert [a.kind for a in alerts] == ["ventricular_run", "frequent_ventricular_ectopy"]
    assert tr._run_n == 3000 and _sizes(tr) < 200
    silent = AlertTracker("q", AlertRules())
    silent.detected(-np.inf, 1.0, 1.0)
    for k in range(2000):  # a flat lead, a chunk lost every 2 s
        silent.broken(2.0 + 2.5 * k, 0.5, 2.0 + 2.5 * k)
    assert len(silent._breaks) <= 256
    assert silent._unseen(1.0, 1e9) == pytest.approx(2000 * 0.5)  # every lost second counted
    (pause,) = silent.detected(1.0, 5010.0, 5010.0)
    assert "1000.0 s more not received" in pause.message
