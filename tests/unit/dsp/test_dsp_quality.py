"""Signal quality: synthetic faults, the MIT-BIH Noise Stress Test Database, clean MIT-BIH."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from ecg_testkit import read_lead0, synthetic_ecg

from vitalgru.dsp import QualityResult, ecg_quality
from vitalgru.dsp.quality import units_hint
from vitalgru.dsp.quality_stream import QualityStream, ecg_quality_trailing
from vitalgru.dsp.rpeaks import ecg_rpeaks

FS = 360.0


def _minutes(q: QualityResult) -> np.ndarray:
    return (q.start_idx + q.stop_idx) / 2 / q.fs / 60


def _noise_segments(q: QualityResult) -> np.ndarray:
    """nstdb adds noise from minute 5 in alternating 2-minute stretches (noisy, clean, ...),
    per the database's description (nst(1) in the WFDB Applications Guide)."""
    m = _minutes(q)
    return (m > 5) & (((m - 5) // 2) % 2 == 0)


def _regular(bpm: float, seconds: float = 40.0, scale: float = 1.0) -> np.ndarray:
    """A regular ECG-shaped signal at ``bpm`` (QRS and T as Gaussians, white noise)."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * FS)) / FS
    x = 0.02 * rng.standard_normal(t.size)
    for tp in np.arange(0.5, seconds - 0.5, 60.0 / bpm):
        for dt, amp, w in ((-0.02, -0.15, 0.008), (0.0, 1.2, 0.010), (0.025, -0.3, 0.010),
                           (0.12, 0.2, 0.03)):  # fmt: skip
            x += amp * np.exp(-0.5 * ((t - tp - dt) / w) ** 2)
    return scale * x


class TestSyntheticFaults:
    @pytest.mark.parametrize("bpm", [35, 60, 200, 240])
    def test_slow_and_fast_rhythms_are_scored_not_called_noise(self, bpm: float) -> None:
        # 30-250 bpm are heart rates: limits of 40-180 would call a bradycardia or a VT
        # noise, and beats in rejected signal never start a run
        q = ecg_quality(_regular(bpm), FS)
        assert q.usable.all() and not q.noisy.any()

    def test_an_amplitude_past_the_range_is_lead_off(self) -> None:
        q = ecg_quality(_regular(70, scale=15.0), FS)  # a saturating 18 mV QRS
        assert q.lead_off.all() and not q.usable.any()
        assert not ecg_quality(_regular(70, scale=5.0), FS).lead_off.any()

    def test_clean_synthetic_is_usable(self) -> None:
        x, _ = synthetic_ecg(FS, duration_s=60.0)
        q = ecg_quality(x, FS)
        assert q.n_windows == 6
        assert q.usable.all()
        assert np.all(q.score > 0.9)

    def test_flat_clipped_nan_and_step_are_flagged(self) -> None:
        x, _ = synthetic_ecg(FS, duration_s=60.0, seed=1)
        w = int(10 * FS)
        x[0:w] = 0.37  # flat line (lead off, amplifier holding a value)
        x[w : 2 * w] = np.clip(x[w : 2 * w], -5, 0.6)  # QRS tops cut at a rail
        x[2 * w + 100 : 2 * w + 400] = np.nan  # missing samples
        x[3 * w + 1000 :] += 8.0  # a huge step: electrode pulled
        q = ecg_quality(x, FS)
        assert q.flat[0] and not q.usable[0] and q.score[0] == 0
        assert q.clipped[1] and not q.flat[1] and not q.usable[1]
        assert q.nonfinite[2] and q.lead_off[2] and not q.usable[2]
        assert q.lead_off[3] and not q.usable[3]
        assert q.usable[4:].all()
        # a flat line has no beats, but it is flat, not noisy: noise is ECG buried in it
        assert not q.noisy[0]
        # the first four hold no usable ECG at all; noise would not be a hard flag
        assert q.hard_flagged.tolist() == [True] * 4 + [False] * (q.n_windows - 4)

    def test_infinite_samples_are_flagged_without_numpy_warnings(self) -> None:
        x, _ = synthetic_ecg(FS, duration_s=30.0, seed=3)
        x[int(12 * FS) : int(14 * FS)] = np.inf  # an overflowed amplifier reading
        x[int(13 * FS)] = -np.inf
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            q = ecg_quality(x, FS)
        assert q.nonfinite.tolist() == [False, True, False]
        assert q.usable.tolist() == [True, False, True]

    def test_a_few_dropped_samples_are_bridged_a_lost_stretch_is_not(self) -> None:
        # one dropped sample (a network feed's) flagged its whole 10-s window as a lead off,
        # so a feed that lost a sample a second was never judged good
        x, _ = synthetic_ecg(FS, duration_s=60.0, seed=4)
        clean = ecg_quality(x, FS)
        dropped = x.copy()
        dropped[::360] = np.nan  # one sample a second (0.3 %)
        dropped[int(5 * FS) : int(10 * FS) : 30] = np.nan  # and 3.3 % of the first window
        dropped[int(25 * FS) : int(25 * FS) + 36] = np.nan  # and a run of 0.1 s (a frame)
        q = ecg_quality(dropped, FS)
        assert q.usable.all() and not q.nonfinite.any()
        np.testing.assert_allclose(q.score, clean.score, atol=0.02)
        longer = x.copy()
        longer[int(25 * FS) : int(25 * FS) + 37] = np.nan  # a run just over 0.1 s
        scattered = x.copy()
        scattered[int(40 * FS) : int(50 * FS) : 18] = np.nan  # 5.6 % of a window, one by one
        assert ecg_quality(longer, FS).nonfinite.tolist() == [False, False, True] + [False] * 3
        assert ecg_quality(scattered, FS).nonfinite.tolist() == [False] * 4 + [True, False]
        strict = ecg_quality(dropped, FS, max_gap_s=0, max_gap_frac=0)
        assert strict.nonfinite.all() and not strict.usable.any()  # the old rule, on request
        live = QualityStream(FS)  # the same live, where gaps are held at the last value
        peaks = ecg_rpeaks(x, FS)
        got = [live.push(dropped[a : a + 360], peaks[(peaks >= a) & (peaks < a + 360)])
               for a in range(0, dropped.size, 360)]  # fmt: skip
        assert all(g.usable.all() for g in got) and sum(g.n_windows for g in got) > 20
        with pytest.raises(ValueError, match="max_gap_s"):
            ecg_quality(x, FS, max_gap_s=-1)
        # a stretch over 0.1 s across two windows is over 0.1 s in both (each saw its own
        # part before, and neither was flagged)
        across = x.copy()
        across[int(20 * FS) - 34 : int(20 * FS) + 34] = np.nan  # 0.19 s on the boundary
        assert ecg_quality(across, FS).nonfinite.tolist() == [False, True, True] + [False] * 3
        # one lost sample is one lost sample, NaN or an infinity alike (inf - x was a step
        # past step_mv: the window lead-off)
        for lost in (np.nan, np.inf, -np.inf):
            one = x.copy()
            one[int(15 * FS)] = lost
            q = ecg_quality(one, FS)
            assert q.usable.all() and not q.lead_off.any(), lost

    def test_adc_rails(self) -> None:
        x, _ = synthetic_ecg(FS, duration_s=20.0, seed=2)
        assert not ecg_quality(x, FS).clipped.any()
        assert ecg_quality(x, FS, adc_range=(-0.5, 0.5)).clipped.all()

    def test_samples_exactly_at_the_adc_rails_count_as_clipped(self) -> None:
        """A saturated ADC reads exactly its rail: 0.6 % of samples at each rail (1.2 %, the
        clip share 1 %) is clipping, or a saturated lead is scored as good ECG."""
        fs = 250.0
        x = np.random.default_rng(1).normal(0, 0.5, int(10 * fs)).clip(-4.9, 4.9)
        k = int(0.006 * x.size)
        x[100 : 100 + k] = 5.0
        x[1000 : 1000 + k] = -5.0
        q = ecg_quality(x, fs, window_s=10.0, adc_range=(-5.0, 5.0), peaks=np.zeros(0, np.int64))
        assert q.clipped[0]

    def test_two_equal_maxima_in_a_short_window_are_no_clipping(self) -> None:
        """In a 0.5-s window (125 samples, 1 % is 1.25) two samples that happen to share the
        maximum are no clipping: calling it so throws out good short windows."""
        x = np.random.default_rng(0).normal(0, 0.3, 125)
        x[10] = x[20] = x.max() + 0.1
        q = ecg_quality(x, 250.0, window_s=0.5, peaks=np.zeros(0, np.int64))
        assert not q.clipped[0]

    def test_a_clipped_window_scores_zero(self) -> None:
        """A window whose QRS tops are cut off scores 0, like the other hard flags: code that
        weighs windows by their score would trust a clipped strip's beat shapes."""
        fs = 250.0
        x, truth = synthetic_ecg(fs, duration_s=10.0, seed=6)
        q = ecg_quality(np.minimum(x, 0.7), fs, window_s=10.0, peaks=truth)
        assert q.clipped[0]
        assert q.score[0] == 0.0

    def test_beats_that_stop_mid_window_are_not_a_feasible_rhythm(self) -> None:
        """Beats for the first 5 s of a 10-s window and then none (an asystole) fail the
        3-s gap limit: judging only the gaps between beats calls the window usable."""
        fs = 250.0
        x, truth = synthetic_ecg(fs, duration_s=10.0, seed=4)
        cut = int(5 * fs)
        x[cut:] = x[cut] + np.random.default_rng(0).normal(0, 0.01, x.size - cut)
        peaks = truth[truth < cut - int(0.3 * fs)]
        assert peaks.size >= 5
        q = ecg_quality(x, fs, window_s=10.0, peaks=peaks)
        assert q.noisy[0] and not q.usable[0]

    def test_all_nan_and_short_tail(self) -> None:
        q = ecg_quality(np.full(int(24 * FS), np.nan), FS)
        assert q.n_windows == 2  # 10 s + 14 s (a 4 s tail joins the last window)
        assert q.stop_idx[-1] == int(24 * FS)
        assert q.nonfinite.all() and not q.usable.any()
        # a tail of half a window or more is judged on its own
        q = ecg_quality(np.full(int(26 * FS), np.nan), FS)
        assert q.stop_idx.tolist() == [int(10 * FS), int(20 * FS), int(26 * FS)]

    def test_a_long_gap_before_a_window_does_not_flag_its_dropped_sample(self) -> None:
        """A window's missing stretches are those inside it: a 0.2-s gap that ends where
        the next window starts flags its own window, not the next one, whose single dropped
        sample is bridged."""
        x, _ = synthetic_ecg(FS, duration_s=30.0, seed=4)
        w = int(10 * FS)
        x[w - 72 : w] = np.nan  # 0.2 s, the last of the first window
        x[w + 1800] = np.nan  # one sample of the second
        assert ecg_quality(x, FS).nonfinite.tolist() == [True, False, False]

    def test_fewer_than_three_whole_beats_have_no_beat_similarity(self) -> None:
        """Three beats in a 3-s window, the first too near the start for its whole segment:
        two beats are not enough to judge similarity (each is the other's best match), so
        there is no ``beat_corr`` and the window is not scored as good ECG."""
        fs = FS
        t = np.arange(int(3 * fs)) / fs
        peaks = np.array([0.1, 1.1, 2.1])
        x = 0.01 * np.random.default_rng(0).standard_normal(t.size)
        for tp in peaks:
            x += 1.2 * np.exp(-0.5 * ((t - tp) / 0.01) ** 2)
            x += 0.2 * np.exp(-0.5 * ((t - tp - 0.12) / 0.03) ** 2)
        q = ecg_quality(x, fs, window_s=3.0, peaks=np.round(peaks * fs).astype(np.int64))
        assert q.n_beats[0] == 3
        assert np.isnan(q.beat_corr[0]) and q.score[0] == 0.0 and not q.usable[0]

    def test_result_is_json_serialisable(self) -> None:
        x, _ = synthetic_ecg(FS, duration_s=20.0)
        d = ecg_quality(x, FS).to_dict()
        assert set(d) >= {"start_idx", "noisy", "score", "usable"}
        json.dumps(d)

    def test_flat_is_an_amplitude_below_the_limit_not_at_it(self) -> None:
        x = np.tile([0.0, 0.05], 1250)  # robust amplitude exactly flat_mv
        q = ecg_quality(x, 250.0, window_s=10.0, flat_mv=0.05, peaks=np.zeros(0, np.int64))
        assert q.amplitude[0] == 0.05 and not q.flat[0]
        assert ecg_quality(x, 250.0, flat_mv=0.0501, peaks=np.zeros(0, np.int64)).flat[0]

    def test_the_units_hint_goes_by_the_typical_window(self) -> None:
        # one window of a mV lead saturated by an artefact is no sign of µV or ADC counts
        assert units_hint(np.array([1.2, 1.5, 80.0])) == ""
        assert "µV or ADC counts" in units_hint(np.array([240.0, 260.0, 1.0, np.nan]))
        assert units_hint(np.array([np.nan])) == ""

    def test_validation(self) -> None:
        with pytest.raises(ValueError, match="window_s"):
            ecg_quality(np.zeros(1000), FS, window_s=0)
        with pytest.raises(ValueError, match="1-D"):
            ecg_quality(np.zeros((1000, 2)), FS)
        with pytest.raises(ValueError, match="Nyquist"):
            ecg_quality(np.zeros(1000), 60.0)


@pytest.fixture(scope="module")
def nst_quality(nstdb_dir: Path) -> dict[str, QualityResult]:
    out = {}
    for rec in ("118e24", "118e12", "118e00", "bw", "ma"):
        x, fs = read_lead0(nstdb_dir / rec)
        out[rec] = ecg_quality(x, fs)
    return out


class TestNoiseStressDatabase:
    def test_more_noise_more_flags(self, nst_quality: dict[str, QualityResult]) -> None:
        f = {r: nst_quality[r].flagged_fraction for r in ("118e24", "118e12", "118e00")}
        assert f["118e24"] < f["118e12"] < f["118e00"], f
        noisy = {r: (~nst_quality[r].usable)[_noise_segments(nst_quality[r])].mean() for r in f}
        assert noisy["118e24"] < 0.1 < 0.4 < noisy["118e12"] < noisy["118e00"], noisy
        assert noisy["118e00"] >= 0.8, noisy

    def test_clean_first_five_minutes_are_not_flagged(
        self, nst_quality: dict[str, QualityResult]
    ) -> None:
        # Negative control: nstdb leaves the first 5 minutes of record 118 untouched.
        for rec in ("118e24", "118e12", "118e00"):
            q = nst_quality[rec]
            assert (~q.usable)[_minutes(q) < 5].mean() <= 0.1, rec

    def test_noise_only_records_are_flagged(self, nst_quality: dict[str, QualityResult]) -> None:
        # bw (baseline wander) and ma (muscle artefact) were recorded with the ECG not visible.
        for rec in ("bw", "ma"):
            assert nst_quality[rec].flagged_fraction >= 0.9, rec


class TestCleanMitbih:
    @pytest.mark.parametrize("rec,max_flagged", [("100", 0.02), ("119", 0.05), ("221", 0.05)])
    def test_clean_records_are_almost_never_flagged(
        self, mitdb_dir: Path, rec: str, max_flagged: float
    ) -> None:
        # 100: normal rhythm; 119: ventricular bigeminy; 221: atrial fibrillation with PVCs -
        # arrhythmia must not be mistaken for noise.
        x, fs = read_lead0(mitdb_dir / rec)
        assert ecg_quality(x, fs).flagged_fraction <= max_flagged


class TestTrailing:
    """Trailing windows: what a live monitor knows when a beat's window has arrived."""

    def test_windows_end_on_the_hop_grid(self) -> None:
        x, _ = synthetic_ecg(FS, duration_s=31.0, seed=3)
        q = ecg_quality_trailing(x, FS, window_s=10.0, hop_s=2.0)
        np.testing.assert_array_equal(q.stop_idx, np.arange(3600, x.size + 1, 720))
        np.testing.assert_array_equal(q.stop_idx - q.start_idx, 3600)
        assert q.usable.all()

    def test_verdicts_use_only_the_past(self) -> None:
        x, _ = synthetic_ecg(FS, duration_s=60.0, seed=4)
        y = x.copy()
        cut = int(35 * FS)
        y[cut:] = np.random.default_rng(0).normal(0, 1.0, y.size - cut)  # noise from 35 s
        qx = ecg_quality_trailing(x, FS)
        qy = ecg_quality_trailing(y, FS)
        done = qx.stop_idx <= cut
        np.testing.assert_array_equal(qx.usable[done], qy.usable[done])
        assert qx.usable.all() and not qy.usable[qy.start_idx >= cut].any()

    def test_usable_at_takes_the_latest_finished_window(self) -> None:
        x, _ = synthetic_ecg(FS, duration_s=40.0, seed=5)
        x[int(20 * FS) : int(20.5 * FS)] = np.nan  # samples lost at 20-20.5 s
        q = ecg_quality_trailing(x, FS, window_s=4.0, hop_s=2.0)
        t = np.array([1.0, 19.0, 22.5, 25.5, 26.5, 39.0])
        ok = q.usable_at((t * FS).astype(np.int64))
        # nothing judged before 4 s; the windows ending at 22 and 24 s hold the gap, the
        # one ending at 26 s does not
        np.testing.assert_array_equal(ok, [True, True, False, False, True, True])
        # a window has ended at its stop index (exclusive): its verdict holds from there
        np.testing.assert_array_equal(q.usable_at(np.array([int(22 * FS) - 1, int(22 * FS)])),
                                      [True, False])  # fmt: skip
        # a recording shorter than one window: nothing judged (an IndexError stopped the
        # evaluation of every record before)
        short = ecg_quality_trailing(x[: int(3 * FS)], FS, window_s=4.0, hop_s=2.0)
        assert short.n_windows == 0
        np.testing.assert_array_equal(short.usable_at(np.array([10, 500])), [True, True])

    @pytest.mark.parametrize("offset", [-1, 0, 1])
    def test_a_step_on_a_window_boundary_is_lead_off(self, offset: int) -> None:
        # the step x[b-1] -> x[b] on a boundary was in neither window's np.diff: missed
        # offline, and by the trailing window that starts at b
        x, _ = synthetic_ecg(FS, duration_s=40.0, seed=6)
        at = int(20 * FS) + offset  # 20 s: a boundary of 10 s windows and of the 2 s hops
        x[at:] -= 8.0  # the electrode came off: the lead jumps 8 mV and stays there
        off = ecg_quality(x, FS, window_s=10.0)
        # the window holding the jump's second sample sees it (it has the one before it too)
        assert off.lead_off.tolist() == [k == at // int(10 * FS) for k in range(4)]
        # the trailing windows a hop of one window makes are the offline windows
        live = ecg_quality_trailing(x, FS, window_s=10.0, hop_s=10.0)
        np.testing.assert_array_equal(live.lead_off, off.lead_off)
        hops = ecg_quality_trailing(x, FS, window_s=10.0, hop_s=2.0)
        holds = (hops.start_idx <= at) & (hops.stop_idx > at)
        np.testing.assert_array_equal(hops.lead_off, holds)
        stream = QualityStream(FS, window_s=10.0, hop_s=2.0)
        got = [stream.push(x[a : a + 1000]) for a in range(0, x.size, 1000)]
        np.testing.assert_array_equal(np.concatenate([g.lead_off for g in got]), holds)

    def test_bad_arguments(self) -> None:
        x, _ = synthetic_ecg(FS, duration_s=12.0)
        with pytest.raises(ValueError, match="hop_s"):
            ecg_quality_trailing(x, FS, hop_s=0.0)
        with pytest.raises(TypeError, match="unknown_limit"):
            ecg_quality_trailing(x, FS, unknown_limit=1.0)
        assert ecg_quality_trailing(x[:100], FS).n_windows == 0


class TestQualityStream:
    def test_chunks_give_the_offline_trailing_verdicts(self, nstdb_dir: Path) -> None:
        x, fs = read_lead0(nstdb_dir / "118e12")
        x = x[: int(9 * 60 * fs)].copy()  # 5 clean minutes, then noise from minute 5
        x[int(200 * fs) : int(201.5 * fs)] = np.nan  # and a lost stretch
        peaks = ecg_rpeaks(np.nan_to_num(x), fs)
        whole = ecg_quality_trailing(x, fs, peaks=peaks)
        assert 0 < whole.usable.sum() < whole.n_windows  # both verdicts occur
        stream = QualityStream(fs)
        got = []
        rng = np.random.default_rng(0)
        a = 0
        while a < x.size:
            b = min(x.size, a + int(rng.integers(1, 3000)))
            got.append(stream.push(x[a:b], peaks[(peaks >= a) & (peaks < b)]))
            a = b
        assert stream.n_seen == x.size
        for name in ("start_idx", "stop_idx", "usable", "n_beats", "noisy", "nonfinite"):
            np.testing.assert_array_equal(
                np.concatenate([getattr(g, name) for g in got]), getattr(whole, name), name
            )
        np.testing.assert_allclose(
            np.concatenate([g.beat_corr for g in got]), whole.beat_corr, rtol=1e-9
        )
        # It keeps about one window, not the stream.
        assert stream._raw.size <= int(12 * fs)

    def test_a_gap_limit_longer_than_the_kept_margin_is_measured_whole(self) -> None:
        # the stream kept 0.2 s before its next window: a 0.6 s gap that began before it was
        # measured as its last 0.2 s, under a 0.5 s limit live and over it offline
        x, _ = synthetic_ecg(FS, duration_s=40.0, seed=4)
        x[int(9.45 * FS) : int(10.05 * FS)] = np.nan
        peaks = ecg_rpeaks(np.nan_to_num(x), FS)
        whole = ecg_quality_trailing(x, FS, peaks=peaks, max_gap_s=0.5)
        for chunk in (1, 37, 360):
            stream = QualityStream(FS, max_gap_s=0.5)
            got = [stream.push(x[a : a + chunk], peaks[(peaks >= a) & (peaks < a + chunk)])
                   for a in range(0, x.size, chunk)]  # fmt: skip
            nonfinite = np.concatenate([g.nonfinite for g in got])
            np.testing.assert_array_equal(nonfinite, whole.nonfinite, str(chunk))
        assert whole.nonfinite.sum() >= 5  # the windows that hold any of it


class TestMemory:
    """A whole day's lead is judged at once: the checks' copies of it set the ingest's peak."""

    @staticmethod
    def _peak_bytes_per_sample(f) -> float:
        import tracemalloc

        tracemalloc.start()
        try:
            f()
            return tracemalloc.get_traced_memory()[1] / N_LONG
        finally:
            tracemalloc.stop()

    def test_the_checks_copy_a_lead_without_gaps_as_little_as_they_can(self) -> None:
        # the trailing check bridged the lead (a copy it threw away), held it (another
        # copy), and both turned the gap mask into two int64 arrays: 33 bytes a sample
        x = np.tile(_regular(70, seconds=20.0), N_LONG // int(20 * FS) + 1)[:N_LONG]
        peaks = np.arange(180, N_LONG, int(FS * 60 / 70), dtype=np.int64)
        live = self._peak_bytes_per_sample(lambda: ecg_quality_trailing(x, FS, peaks=peaks))
        assert live < 16  # the causal filter's output and the masks
        whole = self._peak_bytes_per_sample(lambda: ecg_quality(x, FS, peaks=peaks))
        assert whole < 28  # the bridged copy, the forward pass and its padded input
        filled = x.copy()
        given = self._peak_bytes_per_sample(lambda: ecg_quality(x, FS, peaks=peaks, filled=filled))
        assert given < 20

    def test_a_bridged_lead_given_gives_the_same_verdicts(self) -> None:
        from vitalgru.dsp import interpolate_nonfinite

        x = _regular(70, seconds=60.0)
        x[int(20 * FS) : int(20 * FS) + 5] = np.nan
        filled, _ = interpolate_nonfinite(x)
        assert ecg_quality(x, FS, filled=filled).to_dict() == ecg_quality(x, FS).to_dict()
        with pytest.raises(ValueError, match="filled must have"):
            ecg_quality(x, FS, filled=filled[:-1])


N_LONG = 1_000_000
