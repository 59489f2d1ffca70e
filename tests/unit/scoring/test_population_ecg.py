"""A heart faster than the beat model was trained at (a child's, a tachycardia): the live
ward and the replay pages say its labels are extrapolations, and whom the model covers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import wfdb
from monitor_kit import untrained_monitor

from vitalgru.population import ECG_SCOPE, ECG_TRAINED_MAX_BPM, ecg_rate_warning
from vitalgru.reports.monitoring import monitoring_report_html, patient_summary
from vitalgru.reports.ward import ecg_patient_page_html, ward_page_html
from vitalgru.scoring.ward import Ward

FS = 360.0


def beats_at(x: np.ndarray, peaks: np.ndarray, bpm: float, pre_s: float = 0.09) -> np.ndarray:
    """Real beats cut out of a record (each from ``pre_s`` before its R peak, one RR
    interval long) and laid end to end at ``bpm``, each shifted to start where the last one
    ended: the morphology of every QRS kept, the rate changed."""
    rr, pre = int(round(60.0 / bpm * FS)), int(round(pre_s * FS))
    out, last = [], None
    for p in peaks:
        s = x[p - pre : p - pre + rr].copy()
        if last is not None:
            s += last - s[0]
        last = s[-1] + (s[-1] - s[-2])
        out.append(s)
    return np.concatenate(out)


@pytest.fixture(scope="module")
def record_100(mitdb_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """MIT-BIH 100's MLII (sinus rhythm, about 75 bpm) over 5 minutes, and its N beats."""
    rec = wfdb.rdrecord(str(mitdb_dir / "100"), sampto=int(300 * FS))
    ann = wfdb.rdann(str(mitdb_dir / "100"), "atr", sampto=int(300 * FS))
    x = rec.p_signal[:, rec.sig_name.index("MLII")].astype(np.float64)
    peaks = np.array([s for s, y in zip(ann.sample, ann.symbol, strict=True) if y == "N"])
    return x, peaks[2:-2]


def _feed(ward: Ward, pid: str, x: np.ndarray, chunk_s: float = 10.0) -> None:
    step = int(chunk_s * FS)
    for a in range(0, x.size, step):
        ward.add_ecg(pid, x[a : a + step].tolist())
        ward.tick()


class TestFastHeartOnTheWard:
    def test_a_rate_above_the_trained_ones_is_flagged_a_usual_one_not(
        self, record_100: tuple[np.ndarray, np.ndarray]
    ) -> None:
        x, peaks = record_100
        ward = Ward(untrained_monitor())
        ward.admit_ecg("cot-1", FS)
        ward.admit_ecg("bed-2", FS)
        _feed(ward, "cot-1", beats_at(x, peaks[:150], 180.0))  # 50 s at 180 bpm
        _feed(ward, "bed-2", x[: int(50 * FS)])
        fast, usual = ward.ecg_summary("cot-1"), ward.ecg_summary("bed-2")
        assert fast["hr_bpm"] == pytest.approx(180.0, abs=2.0)  # every beat found
        assert fast["population_warning"].startswith("heart rate 180 bpm: above the 150 bpm")
        assert usual["hr_bpm"] < 90.0 and usual["population_warning"] is None
        page = ecg_patient_page_html(fast, [])
        assert "Outside the model's training population: heart rate 180 bpm" in page
        assert ECG_SCOPE in page
        assert "Outside the model" not in ecg_patient_page_html(usual, [])
        overview = ward_page_html([fast, usual], [])
        assert overview.count("above the 150 bpm the beat model was trained at") == 1
        assert "without paced rhythms" in overview


class TestFastHeartOnTheReplayPage:
    def test_the_minutes_faster_than_the_trained_rates_are_counted(self) -> None:
        t = np.concatenate([np.arange(0, 120, 60 / 75), 120 + np.arange(0, 180, 60 / 200)])
        n = t.size
        p = patient_summary("p", 300.0, t, ["N"] * n, [True] * n, [])
        assert p["minutes_above_trained_rate"] == 3
        assert p["population_warning"].startswith("heart rate 200 bpm")
        page = monitoring_report_html([p])
        assert "Outside the model's training population in 3 minute(s)" in page
        assert "without paced rhythms" in page
        slow = patient_summary("q", 120.0, t[t < 120], ["N"] * int((t < 120).sum()),
                               [True] * int((t < 120).sum()), [])  # fmt: skip
        assert slow["minutes_above_trained_rate"] == 0 and slow["population_warning"] is None

    def test_the_edge_is_the_trained_rate(self) -> None:
        assert ecg_rate_warning(ECG_TRAINED_MAX_BPM) is None
        assert ecg_rate_warning(None) is None
        assert ecg_rate_warning(ECG_TRAINED_MAX_BPM + 1) is not None
