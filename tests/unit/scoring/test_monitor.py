"""The live monitor: chunk sizes and batching across patients do not change a label, and
what it computes is what offline scoring computes on the same beats."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import wfdb

from vitalgru.config import FilterConfig
from vitalgru.data.beat_features import (
    RR_FEATURES,
    FeatureSettings,
    beat_features,
    latest_morphology,
    morphology_features,
)
from vitalgru.data.ingest import dataset_filter
from vitalgru.dsp.beats import beat_windows
from vitalgru.dsp.resample import resample
from vitalgru.dsp.rpeaks import ecg_rpeaks
from vitalgru.models.arrhythmia import ArrhythmiaEnsemble, ArrhythmiaGRU
from vitalgru.scoring import ArrhythmiaMonitor, BeatCall
from vitalgru.scoring.arrhythmia import PatientMemory

SECONDS = 90
PRE = {
    "fs": 360.0,
    "lead": "MLII",
    "window": {"before_s": 0.25, "after_s": 0.45},
    "filters": {"baseline_hz": 0.5, "lowpass_hz": 40.0, "notch_hz": 60.0, "order": 2},
    "normalisation": {"template_beats": 8, "local_rr_beats": 5, "long_rr_beats": 40,
                      "rhythm_beats": 16},
    "rr_features": list(RR_FEATURES),
}  # fmt: skip


def _lead(mitdb_dir: Path, record: str, seconds: float = SECONDS) -> np.ndarray:
    rec = wfdb.rdrecord(str(mitdb_dir / record), sampto=int(seconds * 360))
    return rec.p_signal[:, rec.sig_name.index("MLII")].astype(np.float64)


@pytest.fixture(scope="module")
def signals(mitdb_dir: Path) -> dict[str, np.ndarray]:
    # 119: frequent V beats in bigeminy; 208: V and F; 100: sinus with an APC
    return {r: _lead(mitdb_dir, r) for r in ("100", "119", "208")}


@pytest.fixture(scope="module")
def model() -> ArrhythmiaEnsemble:
    torch.manual_seed(0)
    nets = [ArrhythmiaGRU(n_rr=len(RR_FEATURES), output_delay=1) for _ in range(2)]
    return ArrhythmiaEnsemble.of(nets, quality_gate=0.9).eval()


def _run(
    mon: ArrhythmiaMonitor,
    x: np.ndarray,
    sizes: list[int],
    pid: str = "p",
    alerts: list | None = None,
    admit: bool = True,
) -> list:
    if admit:
        mon.admit(pid, 360.0)
    calls: list[BeatCall] = []
    s = 0
    ticks = []
    for n in sizes:
        ticks.append(mon.push({pid: x[s : s + n]}))
        s += n
    ticks += [mon.push({pid: x[s:]}), mon.discharge(pid)]
    for t in ticks:
        calls += t.calls
        if alerts is not None:
            alerts += t.alerts
    return calls


def _same(a: list[BeatCall], b: list[BeatCall], atol: float = 1e-5) -> None:
    assert [c.sample_idx for c in a] == [c.sample_idx for c in b]
    assert [c.label for c in a] == [c.label for c in b]
    assert [c.signal_ok for c in a] == [c.signal_ok for c in b]
    np.testing.assert_allclose([c.probs for c in a], [c.probs for c in b], atol=atol)


class TestChunking:
    def test_any_chunk_sizes_give_the_labels_of_one_push(
        self, signals: dict[str, np.ndarray], model: ArrhythmiaEnsemble
    ) -> None:
        x = signals["119"].copy()
        x[20_000:20_400] = np.nan  # a gap, held at the last value
        x[25_000:26_500] = x[25_000]  # 4 s of flat line: a pause and its alarm
        a_whole: list = []
        whole = _run(ArrhythmiaMonitor(model, PRE), x, [], alerts=a_whole)
        assert len(whole) > 80
        assert {c.label for c in whole} >= {"N"}
        assert "pause" in {a.kind for a in a_whole}
        rng = np.random.default_rng(3)
        for _ in range(3):
            sizes = list(rng.integers(1, 2000, size=40))
            a_chunked: list = []
            _same(_run(ArrhythmiaMonitor(model, PRE), x, sizes, alerts=a_chunked), whole)
            # the same alarms for the same episodes (raised at other pushes, of course)
            assert sorted((a.kind, a.onset_s) for a in a_chunked) == sorted(
                (a.kind, a.onset_s) for a in a_whole
            )
        assert [c.beat_idx for c in whole] == list(range(len(whole)))

    def test_patients_batched_together_get_what_each_gets_alone(
        self, signals: dict[str, np.ndarray], model: ArrhythmiaEnsemble
    ) -> None:
        alone = {r: _run(ArrhythmiaMonitor(model, PRE), x, [360] * SECONDS, r)
                 for r, x in signals.items()}  # fmt: skip
        mon = ArrhythmiaMonitor(model, PRE)
        for r in signals:
            mon.admit(r, 360.0)
        got: dict[str, list[BeatCall]] = {r: [] for r in signals}
        for k in range(SECONDS + 1):
            tick = mon.push({r: x[k * 360 : (k + 1) * 360] for r, x in signals.items()})
            for c in tick.calls:
                got[c.patient_id].append(c)
        for r in signals:
            got[r] += mon.discharge(r).calls
            _same(got[r], alone[r])
        assert mon.patients == []

    def test_a_label_waits_for_two_beats_and_the_margin_not_longer(
        self, signals: dict[str, np.ndarray], model: ArrhythmiaEnsemble
    ) -> None:
        calls = _run(ArrhythmiaMonitor(model, PRE, margin_s=1.0), signals["100"], [90] * 1000)
        lat = np.array([c.latency_s for c in calls[:-3]])  # the last ones wait for discharge
        rr = np.diff([c.time_s for c in calls])
        # two beats (RR features' look-ahead + output delay) + window + margin + a chunk
        bound = 2 * rr.max() + 0.45 + 1.0 + 90 / 360 + 2 / 360
        assert lat.min() > 1.0 and lat.max() < bound


class TestMatchesOfflineScoring:
    def test_features_and_probabilities_match_whole_record_filtering(
        self, signals: dict[str, np.ndarray], model: ArrhythmiaEnsemble
    ) -> None:
        x = signals["208"]
        net = ArrhythmiaGRU.from_config(model.members[0].config_dict())
        net.load_state_dict(model.members[0].state_dict())
        net.eval()  # no quality gate: the live and whole-record verdicts differ in detail
        calls = _run(ArrhythmiaMonitor(net, PRE, margin_s=4.0), x, [360] * SECONDS)
        peaks = ecg_rpeaks(x, 360.0)
        assert [c.sample_idx for c in calls] == peaks.tolist()
        clean = dataset_filter(x, 360.0, FilterConfig(**PRE["filters"])).astype(np.float32)
        wins, _ = beat_windows(clean, peaks, 360.0, 0.25, 0.45)
        settings = FeatureSettings(**PRE["normalisation"])
        feats = beat_features(wins, peaks, 360.0, settings)
        with torch.no_grad():
            logits, _ = net(torch.from_numpy(feats)[None])
        offline = torch.softmax(logits[0], -1).numpy()
        live = np.array([c.probs for c in calls])
        inner = slice(12, -12)  # away from the ends, where the stretch is the record
        assert np.abs(live[inner] - offline[inner]).max() < 2e-3
        assert (live.argmax(1) == offline.argmax(1)).mean() > 0.99

    def test_latest_morphology_is_the_last_row_of_the_running_features(self) -> None:
        rng = np.random.default_rng(0)
        w = rng.normal(size=(20, 30)).astype(np.float32)
        s = FeatureSettings(template_beats=7)
        for k in (1, 3, 7, 20):
            np.testing.assert_allclose(
                latest_morphology(w[:k], s), morphology_features(w[:k], s)[-1], rtol=1e-6
            )

    def test_another_input_rate_is_resampled_like_ingest(
        self, signals: dict[str, np.ndarray], model: ArrhythmiaEnsemble
    ) -> None:
        x360 = signals["119"]
        x250 = resample(x360, 360.0, 250.0)
        mon = ArrhythmiaMonitor(model, PRE)
        ref = _run(mon, x360, [360] * SECONDS)
        mon.admit("q", 250.0)
        got = []
        for k in range(SECONDS + 1):
            got += mon.push({"q": x250[k * 250 : (k + 1) * 250]}).calls
        got += mon.discharge("q").calls
        assert abs(len(got) - len(ref)) <= 1
        t_ref = np.array([c.time_s for c in ref])
        t = np.array([c.time_s for c in got])
        near = np.abs(t_ref[:, None] - t[None, :]).min(axis=1) < 0.02
        assert near.mean() > 0.98
        lab = {round(c.time_s, 1): c.label for c in got}
        agree = [lab.get(round(c.time_s, 1)) == c.label for c in ref]
        assert np.mean(agree) > 0.9
        # chunking at the other rate still does not matter (admitted at 250 Hz: _run admits
        # at 360 Hz, so this compared two 360 Hz runs)
        chunked, whole = ArrhythmiaMonitor(model, PRE), ArrhythmiaMonitor(model, PRE)
        for m in (chunked, whole):
            m.admit("r", 250.0)
        _same(_run(chunked, x250[: 250 * 40], [777] * 12, "r", admit=False)[:-1],
              _run(whole, x250[: 250 * 40], [], "r", admit=False)[:-1])  # fmt: skip

    def test_a_stated_rate_a_hair_off_the_models_is_monitored_as_that_rate(
        self, signals: dict[str, np.ndarray], model: ArrhythmiaEnsemble
    ) -> None:
        # a bedside feed stating 359.99 Hz was refused at admission ("round the rates to
        # whole Hz"), as ingest and evaluate refused such a record: now both take the
        # closest ratio (here 1/1) and label the same beats
        x = signals["119"][: 360 * 30]
        ref = _run(ArrhythmiaMonitor(model, PRE), x, [360] * 30)
        mon = ArrhythmiaMonitor(model, PRE)
        mon.admit("q", 359.99)
        got = []
        for k in range(31):
            got += mon.push({"q": x[k * 360 : (k + 1) * 360]}).calls
        got += mon.discharge("q").calls
        assert [(c.sample_idx, c.label) for c in got] == [(c.sample_idx, c.label) for c in ref]


class TestInputs:
    def test_mistakes_are_clear_errors(self, model: ArrhythmiaEnsemble) -> None:
        mon = ArrhythmiaMonitor(model, PRE)
        mon.admit("a", 360.0)
        with pytest.raises(ValueError, match="already being monitored"):
            mon.admit("a", 360.0)
        with pytest.raises(KeyError, match="admit"):
            mon.push({"b": np.zeros(10)})
        with pytest.raises(ValueError, match="1-D"):
            mon.push({"a": np.zeros((10, 2))})
        with pytest.raises(ValueError, match="fs"):
            mon.admit("c", 0.0)
        with pytest.raises(ValueError, match="fs"):
            mon.admit("c", 50.0)  # too slow for the 40 Hz low-pass
        with pytest.raises(ValueError, match="margin_s"):
            ArrhythmiaMonitor(model, PRE, margin_s=float("nan"))
        bad = {**PRE, "window": {"before_s": 0.2, "after_s": 0.45}}
        with pytest.raises(ValueError, match="not logged together"):
            ArrhythmiaMonitor(model, bad)
        with pytest.raises(ValueError, match="lacks 'fs'"):
            ArrhythmiaMonitor(model, {k: v for k, v in PRE.items() if k != "fs"})

    def test_a_flat_lead_gives_no_beats_a_pause_and_a_poor_signal_alert(
        self, model: ArrhythmiaEnsemble
    ) -> None:
        mon = ArrhythmiaMonitor(model, PRE)
        mon.admit("flat", 360.0)
        alerts = []
        for _ in range(20):
            tick = mon.push({"flat": np.zeros(360)})
            assert tick.calls == []
            alerts += tick.alerts
        assert [a.kind for a in alerts] == ["pause", "poor_signal"]  # each raised once
        assert alerts[0].raised_at_s < 4.5
        assert "flat" in alerts[1].message and "check the electrodes" in alerts[1].message
        # hours of it would not grow the patient's state: old samples and verdicts go
        st = mon._patients["flat"]
        assert len(st.verdicts) <= 2 and st.buf.size < 3 * 360 + 4096
        assert mon.discharge("flat").calls == []

    def test_noise_before_the_first_quality_window_raises_no_run(
        self, signals: dict[str, np.ndarray]
    ) -> None:
        # a lead not yet on the patient: the detector finds "beats" in a few µV of noise,
        # which a network calling every beat V makes a ventricular run. The first quality
        # window (10 s) covers them and rejects them: they are distrusted, at admission,
        # after a break and after a gateway restart alike
        torch.manual_seed(0)
        all_v = ArrhythmiaGRU(n_rr=len(RR_FEATURES), output_delay=1)
        with torch.no_grad():
            all_v.head[-1].weight.zero_()
            all_v.head[-1].bias.copy_(torch.tensor([0.0, 0.0, 10.0, 0.0, 0.0]))
        all_v.eval()
        noise = np.random.default_rng(0).normal(0.0, 0.005, 30 * 360)
        ecg = signals["100"][: 20 * 360]

        def alarms(mon: ArrhythmiaMonitor, x: np.ndarray, lost: int = 0) -> list:
            out = []
            for k in range(0, x.size, 360):
                brk = {"p": [(0, lost)]} if lost and k == 20 * 360 else None
                out += mon.push({"p": x[k : k + 360]}, breaks=brk).alerts
            return out

        mon = ArrhythmiaMonitor(all_v, PRE)
        mon.admit("p", 360.0)
        assert [a.kind for a in alarms(mon, noise)] == ["poor_signal"]
        mon = ArrhythmiaMonitor(all_v, PRE)  # the same beats in signal that passes
        mon.admit("p", 360.0)
        runs = [a for a in alarms(mon, ecg) if a.kind == "ventricular_run"]
        assert len(runs) == 1 and runs[0].onset_s < 1.0
        mon = ArrhythmiaMonitor(all_v, PRE)  # a break of 30 s, then the noise
        mon.admit("p", 360.0)
        after = [a.kind for a in alarms(mon, np.concatenate([ecg, noise]), 30 * 360)
                 if a.onset_s >= 50.0]  # fmt: skip
        assert after == ["poor_signal"]
        restarted = ArrhythmiaMonitor(all_v, PRE)
        restarted.admit("p", 360.0, memory=mon.memory("p"))
        assert [a.kind for a in alarms(restarted, noise)] == ["poor_signal"]

    def test_samples_not_in_mv_raise_a_poor_signal_alarm_that_says_so(
        self, model: ArrhythmiaEnsemble, signals: dict[str, np.ndarray]
    ) -> None:
        alerts: list = []
        _run(ArrhythmiaMonitor(model, PRE), signals["100"][: 30 * 360] * 1000.0,
             [360] * 29, alerts=alerts)  # fmt: skip
        (poor,) = [a for a in alerts if a.kind == "poor_signal"]
        assert "lead off" in poor.message and "µV or ADC counts" in poor.message
        # the same signal in mV raises nothing of the kind
        alerts = []
        _run(ArrhythmiaMonitor(model, PRE), signals["100"][: 30 * 360], [360] * 29, alerts=alerts)
        assert not [a for a in alerts if a.kind == "poor_signal"]

    @pytest.mark.parametrize("wild", [1e30, -np.inf])
    def test_one_wild_sample_is_a_gap_not_the_end_of_the_stream(
        self, model: ArrhythmiaEnsemble, signals: dict[str, np.ndarray], wild: float
    ) -> None:
        # a sample of 1e30 (a feed's garbage) put the filters' state so far above the ECG
        # that no beat was found for the rest of the stay; now it is a gap, as NaN is
        x = signals["100"].copy()
        want = _run(ArrhythmiaMonitor(model, PRE), np.where(np.arange(x.size) == 40 * 360,
                    np.nan, x), [360] * 89)  # fmt: skip
        x[40 * 360] = wild
        got = _run(ArrhythmiaMonitor(model, PRE), x, [360] * 89)
        _same(got, want)
        assert sum(c.time_s > 45 for c in got) > 40  # beats on to the end


class TestPatientMemory:
    """What a monitor learnt of a patient, carried to another monitor (a gateway restart)."""

    def _first_part(
        self, model: ArrhythmiaEnsemble, x: np.ndarray, seconds: int = 45
    ) -> ArrhythmiaMonitor:
        mon = ArrhythmiaMonitor(model, PRE)
        mon.admit("p", 360.0)
        for k in range(seconds):
            mon.push({"p": x[k * 360 : (k + 1) * 360]})
        return mon

    def test_a_memory_goes_on_where_it_was_kept(
        self, model: ArrhythmiaEnsemble, signals: dict[str, np.ndarray]
    ) -> None:
        x = signals["119"]
        first = self._first_part(model, x)
        m = first.memory("p")
        assert m.beats > 30 and m.templates.shape == (8, 252) and m.h.shape == (2, 64)
        back = PatientMemory.from_bytes(m.to_bytes())
        assert back.model == first.fingerprint and back.beats == m.beats
        np.testing.assert_array_equal(back.h, m.h)
        np.testing.assert_array_equal(back.templates, m.templates)
        # a new monitor of the same network takes it up exactly
        again = ArrhythmiaMonitor(model, PRE)
        assert again.fingerprint == first.fingerprint
        again.admit("p", 360.0, memory=back)
        now = again.memory("p")
        np.testing.assert_array_equal(now.h, m.h)
        np.testing.assert_array_equal(now.templates, m.templates)
        # and labels the rest of the stream with it: not as a fresh monitor would
        rest = x[46 * 360 :]
        carried = _run(again, rest, [360] * 40, admit=False)
        fresh = _run(ArrhythmiaMonitor(model, PRE), rest, [360] * 40)
        assert [c.sample_idx for c in carried] == [c.sample_idx for c in fresh]
        diff = np.abs(np.array([c.probs for c in carried]) - [c.probs for c in fresh])
        assert diff[:5].max() > 1e-3
        # another patient's memory is another start
        other = self._first_part(model, signals["208"]).memory("p")
        mon = ArrhythmiaMonitor(model, PRE)
        mon.admit("p", 360.0, memory=other)
        elsewhere = _run(mon, rest, [360] * 40, admit=False)
        assert np.abs(np.array([c.probs for c in elsewhere])[:5] -
                      [c.probs for c in carried][:5]).max() > 1e-3  # fmt: skip
        # the beats it has labelled add up over restarts
        mon = ArrhythmiaMonitor(model, PRE)
        mon.admit("p", 360.0, memory=m)
        n = sum(len(mon.push({"p": rest[k * 360 : (k + 1) * 360]}).calls) for k in range(20))
        assert n > 10 and mon.memory("p").beats == m.beats + n

    def test_a_restart_with_memory_labels_as_if_the_stream_had_not_stopped(
        self, model: ArrhythmiaEnsemble, signals: dict[str, np.ndarray]
    ) -> None:
        x = signals["100"][: 80 * 360]  # sinus: the interval spliced in is the patient's own
        whole = {c.sample_idx: c.probs for c in _run(ArrhythmiaMonitor(model, PRE), x, [360] * 80)}
        cut = 40 * 360
        # stopped after 40 s: the beats found but not yet labelled are lost with the samples
        m = self._first_part(model, x, seconds=40).memory("p")
        assert m.rr_s.size > 30 and 0.6 < np.median(m.rr_s) < 1.0
        after = {}
        for name, memory in (("carried", m), ("fresh", None),
                             ("without RR", replace(m, rr_s=np.zeros(0, np.float32)))):  # fmt: skip
            mon = ArrhythmiaMonitor(model, PRE)
            mon.admit("p", 360.0, memory=memory)
            calls = _run(mon, x[cut:], [360] * 40, admit=False)
            after[name] = np.array([np.abs(np.subtract(c.probs, whole[c.sample_idx + cut])).max()
                                    for c in calls])  # fmt: skip
            assert after[name].size == len(calls) > 40  # the same beats found
        # the beats found but not labelled when it stopped are missing from the memory, so not
        # identical; but nearer the stream that never stopped than afresh or without the RR
        first = {k: v[:8].mean() for k, v in after.items()}
        assert first["carried"] < 0.5 * min(first["fresh"], first["without RR"])
        assert after["carried"].max() < 0.015
        for v in after.values():  # once the histories have filled, the same either way
            assert v[45:].max() < 1e-4

    def test_a_memory_that_does_not_fit_is_refused_and_admits_no_one(
        self, model: ArrhythmiaEnsemble, signals: dict[str, np.ndarray]
    ) -> None:
        m = self._first_part(model, signals["100"]).memory("p")
        torch.manual_seed(1)
        nets = [ArrhythmiaGRU(n_rr=len(RR_FEATURES), output_delay=1) for _ in range(2)]
        other = ArrhythmiaMonitor(ArrhythmiaEnsemble.of(nets, quality_gate=0.9).eval(), PRE)
        assert other.fingerprint != ArrhythmiaMonitor(model, PRE).fingerprint
        with pytest.raises(ValueError, match="kept by another network"):
            other.admit("p", 360.0, memory=m)
        assert other.patients == []
        mon = ArrhythmiaMonitor(model, PRE)
        bad = [
            PatientMemory(m.model, m.h[:1], m.templates, 3),
            PatientMemory(m.model, m.h, m.templates[:, :100], 3),
            PatientMemory(m.model, m.h, np.concatenate([m.templates, m.templates]), 3),
            PatientMemory(m.model, np.full_like(m.h, np.nan), m.templates, 3),
            replace(m, rr_s=np.full(60, 0.8, np.float32)),
            replace(m, rr_s=np.array([0.8, 0.0], np.float32)),
        ]
        for b in bad:
            with pytest.raises(ValueError, match="does not fit"):
                mon.admit("p", 360.0, memory=b)
        assert mon.patients == []
        for junk in (b"", b"not an archive", m.to_bytes()[:200]):
            with pytest.raises(ValueError, match="not a patient memory"):
                PatientMemory.from_bytes(junk)
        # a memory of no beats yet is a memory too
        mon.admit("new", 360.0)
        empty = mon.memory("new")
        assert empty.templates.shape == (0, 252) and empty.beats == 0
        ArrhythmiaMonitor(model, PRE).admit("new", 360.0, memory=empty)


class TestBreaks:
    """Samples lost in a break of the feed: the monitor skips them (``skip``)."""

    @staticmethod
    def _run(mon: ArrhythmiaMonitor, x: np.ndarray, fs: int, lost: tuple[int, int] | None,
             skip: bool = True) -> tuple[list[BeatCall], list]:  # fmt: skip
        """``x`` in 1 s chunks, the samples ``lost`` [a, b) left out (and skipped)."""
        mon.admit("p", float(fs))
        a, b = lost if lost is not None else (x.size, x.size)
        ticks = [mon.push({"p": x[s : min(s + fs, a)]}) for s in range(0, a, fs)]
        if skip and lost is not None:
            ticks.append(mon.skip("p", b - a))
        ticks += [mon.push({"p": x[s : s + fs]}) for s in range(b, x.size, fs)]
        ticks.append(mon.discharge("p"))
        return [c for t in ticks for c in t.calls], [a for t in ticks for a in t.alerts]

    @pytest.mark.parametrize("fs", [360, 250])
    def test_the_beats_after_a_break_keep_their_time_and_no_pause_is_counted_over_it(
        self, model: ArrhythmiaEnsemble, signals: dict[str, np.ndarray], fs: int
    ) -> None:
        # the ward took a break as the next samples: every beat after it moved in time
        # by the break's length, and the first one followed an RR interval never there
        x = signals["119"] if fs == 360 else resample(signals["119"], 360.0, 250.0)
        lost = (40 * fs, 50 * fs + 3)  # 10 s, and not on the resampling grid
        clean, none = self._run(ArrhythmiaMonitor(model, PRE), x, fs, None)
        calls, alerts = self._run(ArrhythmiaMonitor(model, PRE), x, fs, lost)
        assert none == alerts == []  # no pause over the 10 s no one saw
        ref = {c.sample_idx: c for c in clean}
        after = [c for c in calls if c.sample_idx >= lost[1]]
        assert len(after) > 30 and all(c.sample_idx in ref for c in after)
        assert [c.time_s for c in after] == [ref[c.sample_idx].time_s for c in after]
        before = [c.sample_idx for c in calls if c.sample_idx < lost[0]]
        assert before == [c.sample_idx for c in clean if c.sample_idx < lost[0]][: len(before)]
        assert len(before) >= sum(c.sample_idx < lost[0] - fs for c in clean)
        # the first beats after it follow the patient's own intervals: near the stream that
        # never broke, and soon the same
        diff = [np.abs(np.subtract(c.probs, ref[c.sample_idx].probs)).max() for c in after]
        assert max(diff[:5]) < 0.02 and max(diff[20:]) < 1e-3
        # closed up instead, the beats after it come 10 s early
        closed, _ = self._run(ArrhythmiaMonitor(model, PRE), x, fs, lost, skip=False)
        assert all(c.sample_idx not in ref for c in closed if c.sample_idx >= lost[1] + fs)

    def test_a_silent_patient_after_a_break_is_one_pause_from_the_last_beat(
        self, model: ArrhythmiaEnsemble, signals: dict[str, np.ndarray]
    ) -> None:
        mon = ArrhythmiaMonitor(model, PRE)
        mon.admit("p", 360.0)
        alerts = mon.push({"p": signals["100"][: 20 * 360]}).alerts
        t = mon.push({"p": signals["100"][20 * 360 :]}, breaks={"p": [(0, 360 * 30)]})
        assert [c.time_s for c in t.calls][-1] > 50.0  # after the break, at its time
        for _ in range(6):  # then a flat lead
            alerts += mon.push({"p": np.zeros(360)}).alerts
        pauses = [a for a in alerts + t.alerts if a.kind == "pause"]
        assert len(pauses) == 1 and pauses[0].onset_s > 100.0  # the last beat, not the break
        with pytest.raises(ValueError, match="whole number of samples"):
            mon.skip("p", 0)
        with pytest.raises(ValueError, match="no chunk in this push"):
            mon.push({}, breaks={"p": [(0, 10)]})
        with pytest.raises(ValueError, match="a break at sample 5 of a chunk of 2"):
            mon.push({"p": np.zeros(2)}, breaks={"p": [(5, 10)]})
