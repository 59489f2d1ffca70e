"""R-peak detection on MIT-BIH: vitalgru vs wfdb XQRS vs NeuroKit2, accuracy and speed.

One command::

    python benchmarks/rpeaks.py [--mirror DIR] [--records 100 101 ...] [--shared]

Writes ``benchmarks/results/rpeaks.json`` and ``benchmarks/results/rpeaks.md``.

Input: lead 0 of each record (``wfdb.rdrecord(..., channels=[0]).p_signal``, mV, 360 Hz), the
same float64 array handed to every detector. Reading is not timed.

What is timed (``time.perf_counter`` around one call per record and detector, after one
untimed warm-up call of each detector on 10 s of record 100):

* ``vitalgru``: ``vitalgru.dsp.ecg_rpeaks(x, fs)`` (it band-passes internally).
* ``xqrs``: ``wfdb.processing.xqrs_detect(sig=x, fs=fs, verbose=False)``.
* ``neurokit2``: its default pipeline, ``nk.ecg_clean(x, sampling_rate=fs)`` then
  ``nk.ecg_peaks(cleaned, sampling_rate=fs)`` (method "neurokit"); the peaks are
  ``info["ECG_R_Peaks"]``.

The three detectors run one after the other on each record before the next record is read, so
load from other processes on a shared machine hits them alike.

Scoring (after ANSI/AAMI EC57:2012):

* Reference: beat annotations only, the AAMI beat labels ``N L R B A a J S V r F e j n E / f Q
  ?``; rhythm, noise and other non-beat annotations (including ventricular flutter waves
  ``!``) are ignored.
* Matching: greedy one-to-one by distance within +/- 75 ms (the 150 ms EC57 window).
* Whole records are scored: the 5-minute learning period of EC57 is NOT excluded.
* Two false-positive counts are reported. ``whole`` counts every unmatched detection.
  ``ec57_vf`` follows EC57's exclusion of ventricular flutter/fibrillation episodes
  (between ``[`` and ``]`` annotations, only record 207 has them): detections inside them are
  not false positives, as those episodes have no beat labels to match (their flutter waves are
  annotated ``!``). TP and FN are the same in both.
* Gross Se = sum TP / (sum TP + sum FN), +P = sum TP / (sum TP + sum FP), over all records.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from vitalgru.data.labels import BEAT_SYMBOLS
from vitalgru.metrics.detection import detection_counts, match_pairs, vf_episodes

ROOT = Path(__file__).resolve().parents[1]
DETECTORS = ("vitalgru", "xqrs", "neurokit2")
TIMED = {
    "vitalgru": "vitalgru.dsp.ecg_rpeaks(x, fs)",
    "xqrs": "wfdb.processing.xqrs_detect(sig=x, fs=fs, verbose=False)",
    "neurokit2": "nk.ecg_peaks(nk.ecg_clean(x, sampling_rate=fs), sampling_rate=fs)",
}


def default_mirror() -> Path:
    env = os.environ.get("VITALGRU_PHYSIONET_MIRROR")
    return Path(env) if env else ROOT.parent / "shared" / "data" / "physionet"


def read_record(path: Path) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    import wfdb

    rec = wfdb.rdrecord(str(path), channels=[0])
    ann = wfdb.rdann(str(path), "atr")
    smp = np.asarray(ann.sample, dtype=np.int64)
    beats = smp[np.array([s in BEAT_SYMBOLS for s in ann.symbol], dtype=bool)]
    vf = vf_episodes(ann.symbol, smp, int(rec.sig_len))
    x = np.ascontiguousarray(rec.p_signal[:, 0], dtype=np.float64)
    return x, float(rec.fs), beats, vf


def make_detectors() -> dict:
    import neurokit2 as nk
    import wfdb.processing

    from vitalgru.dsp import ecg_rpeaks

    def run_vitalgru(x: np.ndarray, fs: float) -> np.ndarray:
        return ecg_rpeaks(x, fs)

    def run_xqrs(x: np.ndarray, fs: float) -> np.ndarray:
        return np.asarray(wfdb.processing.xqrs_detect(sig=x, fs=fs, verbose=False))

    def run_nk(x: np.ndarray, fs: float) -> np.ndarray:
        _, info = nk.ecg_peaks(nk.ecg_clean(x, sampling_rate=fs), sampling_rate=fs)
        return np.asarray(info["ECG_R_Peaks"])

    return {"vitalgru": run_vitalgru, "xqrs": run_xqrs, "neurokit2": run_nk}


def versions() -> dict[str, str]:
    import neurokit2
    import scipy
    import wfdb

    import vitalgru

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "wfdb": wfdb.__version__,
        "neurokit2": neurokit2.__version__,
        "vitalgru": getattr(vitalgru, "__version__", "unknown"),
    }


def pct(a: int, b: int) -> float:
    return 100.0 * a / b if b else float("nan")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mirror", type=Path, default=default_mirror())
    ap.add_argument("--records", nargs="*", default=None, help="MIT-BIH records (default all)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument(
        "--shared",
        action="store_true",
        help="state that the machine was shared with other jobs while timing",
    )
    args = ap.parse_args(argv)
    mitdb = args.mirror / "mitdb"
    records = args.records or (mitdb / "RECORDS").read_text().split()
    dets = make_detectors()
    load_start = os.getloadavg()

    x0, fs0, _, _ = read_record(mitdb / "100")
    for fn in dets.values():  # warm-up: imports, caches, first-call overheads
        fn(x0[: int(10 * fs0)], fs0)

    per_record: dict[str, dict] = {}
    errors: dict[str, list[int]] = {d: [] for d in DETECTORS}
    for rec in records:
        x, fs, ref, vf = read_record(mitdb / rec)
        row: dict[str, dict] = {}
        for name in DETECTORS:
            t0 = time.perf_counter()
            det = dets[name](x, fs)
            secs = time.perf_counter() - t0
            det = np.unique(np.asarray(det, dtype=np.int64))
            ri, di = match_pairs(ref, det, fs)
            c = detection_counts(ref, det, fs, exclude=vf)
            tp, fn_, fp_vf = c["tp"], c["fn"], c["fp"]
            fp = fp_vf + c["fp_excluded"]
            errors[name] += (det[di] - ref[ri]).tolist()
            row[name] = {
                "tp": tp,
                "fn": fn_,
                "fp": fp,
                "fp_ec57_vf": fp_vf,
                "se_pct": round(pct(tp, tp + fn_), 3),
                "ppv_pct": round(pct(tp, tp + fp), 3),
                "ppv_ec57_vf_pct": round(pct(tp, tp + fp_vf), 3),
                "seconds": round(secs, 4),
            }
        per_record[rec] = {"n_samples": int(x.size), "fs": fs, "n_ref": int(ref.size), **row}
        print(
            rec,
            "  ".join(
                f"{d}: Se {row[d]['se_pct']:.2f} +P {row[d]['ppv_pct']:.2f} "
                f"{row[d]['seconds']:.3f}s"
                for d in DETECTORS
            ),
            flush=True,
        )

    totals: dict[str, dict] = {}
    for name in DETECTORS:
        tp = sum(r[name]["tp"] for r in per_record.values())
        fn_ = sum(r[name]["fn"] for r in per_record.values())
        fp = sum(r[name]["fp"] for r in per_record.values())
        fp_vf = sum(r[name]["fp_ec57_vf"] for r in per_record.values())
        secs = [r[name]["seconds"] for r in per_record.values()]
        e = np.abs(np.asarray(errors[name], dtype=float))
        totals[name] = {
            "tp": tp,
            "fn": fn_,
            "fp": fp,
            "fp_ec57_vf": fp_vf,
            "gross_se_pct": round(pct(tp, tp + fn_), 3),
            "gross_ppv_pct": round(pct(tp, tp + fp), 3),
            "gross_ppv_ec57_vf_pct": round(pct(tp, tp + fp_vf), 3),
            "total_seconds": round(float(np.sum(secs)), 3),
            "mean_seconds_per_record": round(float(np.mean(secs)), 4),
            "median_abs_error_ms": round(float(np.median(e)) / 360.0 * 1000, 2) if e.size else None,
            "p95_abs_error_ms": round(float(np.percentile(e, 95)) / 360.0 * 1000, 2)
            if e.size
            else None,
            "timed": TIMED[name],
        }
    result = {
        "benchmark": "rpeaks",
        "command": "python benchmarks/rpeaks.py"
        + (" --shared" if args.shared else "")
        + (f" --records {' '.join(args.records)}" if args.records else ""),
        "database": "mitdb (MIT-BIH Arrhythmia Database), lead 0",
        "n_records": len(per_record),
        "scoring": {
            "reference": "AAMI beat labels " + "".join(sorted(BEAT_SYMBOLS)),
            "match_window_ms": 150,
            "matching": "greedy one-to-one by distance within +-75 ms",
            "learning_period_excluded": False,
            "fp_ec57_vf": "detections inside ventricular flutter episodes ([ ... ]) not counted",
        },
        "environment": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "machine": platform.machine(),
            "shared_machine": bool(args.shared),
            "load_avg_start": [round(v, 2) for v in load_start],
            "load_avg_end": [round(v, 2) for v in os.getloadavg()],
            "versions": versions(),
        },
        "totals": totals,
        "per_record": per_record,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rpeaks.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "rpeaks.md").write_text(markdown(result))
    print(markdown(result).split("\n## Per record")[0])
    return result


def markdown(res: dict) -> str:
    env = res["environment"]
    lines = [
        "# R-peak detection on MIT-BIH (lead 0)",
        "",
        f"Command: `{res['command']}`  ",
        f"Records: {res['n_records']}; {res['scoring']['match_window_ms']} ms match window "
        "(+-75 ms; WFDB bxb takes +-150 ms), "
        "greedy one-to-one; reference = AAMI beat labels; whole records (no learning-period "
        "exclusion). `+P (EC57 VF)` does not count detections inside ventricular flutter "
        "episodes (record 207) as false positives.  ",
        f"Machine: {env['cpu_count']} CPUs, {env['platform']}; shared with other jobs: "
        f"{'yes' if env['shared_machine'] else 'no'} (load average at start "
        f"{env['load_avg_start'][0]}, at end {env['load_avg_end'][0]}).  ",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()),
        "",
        "| detector | Se % | +P % | +P % (EC57 VF) | TP | FN | FP | FP (EC57 VF) | total s "
        "| mean s / record | median abs err ms | what is timed |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, t in res["totals"].items():
        lines.append(
            f"| {name} | {t['gross_se_pct']:.2f} | {t['gross_ppv_pct']:.2f} | "
            f"{t['gross_ppv_ec57_vf_pct']:.2f} | {t['tp']} | {t['fn']} | {t['fp']} | "
            f"{t['fp_ec57_vf']} | {t['total_seconds']:.2f} | {t['mean_seconds_per_record']:.3f} "
            f"| {t['median_abs_error_ms']} | `{t['timed']}` |"
        )
    lines += [
        "",
        "## Per record",
        "",
        "| record | beats | " + " | ".join(f"{d} Se / +P / s" for d in DETECTORS) + " |",
        "|---|---|" + "---|" * len(DETECTORS),
    ]
    for rec, r in res["per_record"].items():
        cells = [
            f"{r[d]['se_pct']:.2f} / {r[d]['ppv_pct']:.2f} / {r[d]['seconds']:.3f}"
            for d in DETECTORS
        ]
        lines.append(f"| {rec} | {r['n_ref']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main(sys.argv[1:])
