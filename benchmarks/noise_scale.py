"""The training noise's SNR scale against the Noise Stress Test's own measure.

One command::

    python benchmarks/noise_scale.py [--mirror DIR] [--snr-db LO HI]

Writes ``benchmarks/results/noise_scale.json`` and ``benchmarks/results/noise_scale.md``.

The recorded-noise augmentation (:mod:`vitalgru.data.noise`) scales each noise channel by
its whole-record standard deviation (mean removed) and the signal by the beat's template
QRS peak-to-peak amplitude ``a`` (signal power ``a**2 / 8``). PhysioNet's ``nst``, which
made nstdb's ``118e24``/``118e12``/``118e00``, measures both with ``sigamp``: the noise as
the root mean square of 1-second windows, each window's own mean removed, averaged over
the first 300 windows after the highest and lowest 5 % are dropped; the signal as the
same trimmed mean of the peak-to-peak amplitude within 50 ms of the first 300 normal
beats. A 1-second window leaves out the slow drift and the rarest bursts that the whole
record's deviation counts, so a noise channel is quieter by ``nst``'s measure, and an SNR
drawn by the augmentation is that many dB higher in ``nst``'s terms. This script measures
the difference for every channel of the configured noise records, and what the configured
SNR range is in ``nst``'s terms. It also checks the QRS side on record 118 (the record
nstdb's test records are made from): the trimmed peak-to-peak amplitude ``sigamp`` takes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import default_mirror, environment, write_results

from vitalgru.config import ArrhythmiaTrainConfig, PhysioNetConfig
from vitalgru.config_files import load_config
from vitalgru.io.sources import open_database

#: sigamp's defaults: measure the first 300 windows (or beats), drop the top and bottom 5 %.
N_MEASURED = 300
TRIM = 0.05


def trimmed_mean(values: np.ndarray) -> float:
    v = np.sort(values)
    k = int(len(v) * TRIM)
    return float(v[k : len(v) - k].mean())


def nst_noise_rms(x: np.ndarray, fs: float) -> float:
    """Noise amplitude as ``sigamp -r`` measures it (root mean square, per-second mean out)."""
    w = int(round(fs))
    n = min(N_MEASURED, x.size // w)
    seg = x[: n * w].reshape(n, w)
    return trimmed_mean(np.sqrt(((seg - seg.mean(axis=1, keepdims=True)) ** 2).mean(axis=1)))


def nst_qrs_ptp(x: np.ndarray, fs: float, beats: np.ndarray) -> float:
    """QRS amplitude as ``sigamp -a atr`` measures it (peak-to-peak within 50 ms)."""
    h = int(round(0.05 * fs))
    beats = beats[(beats >= h) & (beats + h < x.size)][:N_MEASURED]
    return trimmed_mean(np.array([np.ptp(x[b - h : b + h + 1]) for b in beats]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mirror", type=Path, default=default_mirror())
    ap.add_argument("--snr-db", type=float, nargs=2, default=None, metavar=("LO", "HI"))
    args = ap.parse_args(argv)
    cfg = load_config(ArrhythmiaTrainConfig, None, None, "arrhythmia.yaml")
    lo, hi = args.snr_db if args.snr_db else cfg.noise_snr_db
    physionet = PhysioNetConfig(mirror=args.mirror)
    nst = open_database(cfg.noise_database, physionet)
    channels: list[dict[str, Any]] = []
    for rid in cfg.noise_records:
        rec = nst.read_record(rid)
        for c, name in enumerate(rec.channels):
            x = rec.signal[:, c].astype(np.float64)
            x = x[np.isfinite(x)]
            sd, rms = float((x - x.mean()).std()), nst_noise_rms(x, rec.fs)
            offset = 20.0 * np.log10(sd / rms)
            channels.append({
                "channel": f"{rid}:{name}", "std_mv": sd, "nst_rms_mv": rms,
                "offset_db": offset, "nst_snr_db": [lo + offset, hi + offset],
            })  # fmt: skip
    mit = open_database("mitdb", physionet)
    r118, a118 = mit.read_record("118"), mit.read_annotations("118")
    normal = np.isin(np.asarray(a118.symbol), ["N", "L", "R"])
    qrs = nst_qrs_ptp(
        r118.signal[:, 0].astype(np.float64), r118.fs, np.asarray(a118.sample_idx)[normal]
    )
    offsets = [c["offset_db"] for c in channels]
    payload = {
        "environment": environment(),
        "configured_snr_db": [lo, hi],
        "channels": channels,
        "nst_snr_db_range": [lo + min(offsets), hi + max(offsets)],
        "record_118_nst_qrs_ptp_mv": qrs,
        "method": {"windows_or_beats": N_MEASURED, "trim_each_side": TRIM},
    }
    lines = [
        "# Training noise scale against nst's measure",
        "",
        "`python benchmarks/noise_scale.py`: each noise channel's whole-record standard "
        "deviation (the augmentation's scale) against `sigamp -r`'s root mean square "
        "(1-second windows, each window's mean removed, trimmed mean of the first 300), "
        f"and the configured SNR range ({lo:g} to {hi:g} dB) in nst's terms.",
        "",
        "| channel | std (mV) | nst RMS (mV) | quieter by nst (dB) | configured range in nst's terms (dB) |",
        "|---|---|---|---|---|",
    ]
    for c in channels:
        a, b = c["nst_snr_db"]
        lines.append(
            f"| {c['channel']} | {c['std_mv']:.4f} | {c['nst_rms_mv']:.4f} | "
            f"{c['offset_db']:+.1f} | {a:.1f} to {b:.1f} |"
        )
    lines += [
        "",
        f"Record 118 (lead {r118.channels[0]}), normal beats' QRS peak-to-peak as `sigamp -a "
        f"atr` measures it: {qrs:.3f} mV.",
    ]
    js, md = write_results("noise_scale", payload, "\n".join(lines))
    print(md.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
