"""Helpers of the DSP tests: a synthetic ECG with known R peaks, MIT-BIH readers, matching."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vitalgru.data.labels import BEAT_SYMBOLS
from vitalgru.metrics.detection import vf_episodes


def synthetic_ecg(
    fs: float, duration_s: float = 30.0, seed: int = 0, noise_mv: float = 0.02
) -> tuple[np.ndarray, np.ndarray]:
    """A crude but ECG-shaped signal (P, QRS, T as Gaussians) with irregular RR intervals,
    baseline drift and white noise; returns ``(x_mV, r_peak_idx)``."""
    rng = np.random.default_rng(seed)
    n = int(duration_s * fs)
    t = np.arange(n) / fs
    x = 0.1 * np.sin(2 * np.pi * 0.15 * t + rng.uniform(0, 6.28))  # respiratory wander
    peaks = []
    tr = 0.5
    while tr < duration_s - 0.6:
        peaks.append(tr)
        tr += rng.uniform(0.55, 1.2)
    peaks_a = np.array(peaks)
    for tp in peaks_a:
        for dt, amp, w in (
            (-0.16, 0.15, 0.025),
            (-0.02, -0.15, 0.008),
            (0.0, 1.2, 0.010),
            (0.025, -0.3, 0.010),
            (0.28, 0.35, 0.045),
        ):
            x += amp * np.exp(-0.5 * ((t - tp - dt) / w) ** 2)
    x += rng.normal(0, noise_mv, n)
    return x, np.round(peaks_a * fs).astype(np.int64)


def read_lead0(path: Path) -> tuple[np.ndarray, float]:
    import wfdb

    rec = wfdb.rdrecord(str(path), channels=[0])
    return rec.p_signal[:, 0].astype(np.float64), float(rec.fs)


def read_beats(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Reference beat sample indices and ventricular flutter episodes ``[`` ... ``]``."""
    import wfdb

    ann = wfdb.rdann(str(path), "atr")
    smp = np.asarray(ann.sample, dtype=np.int64)
    beats = smp[np.array([s in BEAT_SYMBOLS for s in ann.symbol], dtype=bool)]
    return beats, vf_episodes(ann.symbol, smp, int(smp[-1]) + 1)
