"""The R-peak detector on fast hearts (a child's 100-160 bpm, an SVT or a tachycardia up to
220 bpm): real MIT-BIH beats, each QRS as recorded, laid end to end at a faster rate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import wfdb

from vitalgru.dsp import ecg_rpeaks
from vitalgru.metrics.detection import detection_counts

FS = 360.0


def beats_at(
    x: np.ndarray, peaks: np.ndarray, bpm: float, pre_s: float = 0.09
) -> tuple[np.ndarray, np.ndarray]:
    """``peaks``' beats cut out of ``x`` (each from ``pre_s`` before its R peak, one RR
    interval long, its end-to-end slope taken off so that the pieces join) and laid end to
    end at ``bpm``; and where their R peaks now are."""
    rr, pre = int(round(60.0 / bpm * FS)), int(round(pre_s * FS))
    pieces = []
    for p in peaks:
        s = x[p - pre : p - pre + rr]
        pieces.append(s - np.linspace(s[0], s[-1], s.size))
    return np.concatenate(pieces), pre + rr * np.arange(len(peaks))


@pytest.fixture(scope="module", params=["100", "103"])
def normal_beats(request: pytest.FixtureRequest, mitdb_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """400 consecutive normal beats of a sinus-rhythm record (about 70-75 bpm)."""
    rec = wfdb.rdrecord(str(mitdb_dir / request.param), channels=[0], sampto=int(500 * FS))
    ann = wfdb.rdann(str(mitdb_dir / request.param), "atr", sampto=int(500 * FS))
    peaks = np.array([s for s, y in zip(ann.sample, ann.symbol, strict=True) if y == "N"])
    return rec.p_signal[:, 0].astype(np.float64), peaks[5:405]


@pytest.mark.parametrize("bpm", [120, 160, 200, 220])
def test_every_beat_is_found_up_to_220_bpm(
    normal_beats: tuple[np.ndarray, np.ndarray], bpm: int
) -> None:
    x, peaks = normal_beats
    y, truth = beats_at(x, peaks, bpm)
    found = ecg_rpeaks(y, FS)
    c = detection_counts(truth, found, FS)
    assert c["fn"] == 0 and c["fp"] == 0  # not every other beat: the rate is not halved
    assert 60.0 * FS / np.median(np.diff(found)) == pytest.approx(bpm, rel=0.01)
