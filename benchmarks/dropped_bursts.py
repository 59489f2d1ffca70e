"""A live ECG feed that loses runs of samples together: what the run limit of the quality
check costs and what it guards (it chose 0.1 s; 0.05 s before).

One command::

    python benchmarks/dropped_bursts.py [--model models:/vitalgru-arrhythmia@champion]
                                        [--minutes 10]

``benchmarks/dropped_samples.py`` chose the gap limits on single samples lost at random.
A wireless transmitter or a device that packs its samples into frames loses them
together instead: a frame of a few to a few dozen samples at once. The first ``--minutes``
of the 22 MIT-BIH DS2 records are replayed in 1 s chunks (:func:`vitalgru.scoring.replay`)
with bursts of 4, 16, 36 and 72 consecutive samples (11, 44, 100 and 200 ms at 360 Hz) set
to NaN at random (seeded) places, 1 burst in 10 s and 1 a second, under run limits
(``max_gap_s``: a longer gap flags its 10 s window ``nonfinite``, a shorter one is bridged,
held at the last value live) of 0.05, 0.1 and 0.2 s (bursts that two together keep under
every limit run once).

Measured per run: the beats the detector found of the reference (detection Se), the share
of beats judged in rejected signal, poor-signal and pause alarms, and DS2 S and V F1 on the
matched beats. What a bridged 100 ms gap does to the beat labels, against flagging the
window, is what the run limit decides.

Writes ``benchmarks/results/dropped_bursts.{json,md}``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, write_results
from dropped_samples import _run
from ds2 import ds2_monitor

from vitalgru.dsp.quality import Thresholds

#: Samples lost together (at 360 Hz: 11, 44, 100 and 200 ms).
BURSTS = (4, 16, 36, 72)
#: Bursts a second.
RATES = (0.1, 1.0)
#: Run limits compared (s).
LIMITS = (0.05, 0.1, 0.2)


def burst_drop(
    x: np.ndarray, fs: float, per_s: float, length: int, rng: np.random.Generator
) -> np.ndarray:
    """``x`` with ``per_s`` runs of ``length`` consecutive samples a second set to NaN, each
    starting at a random place (runs may overlap)."""
    out = x.copy()
    n = int(round(per_s * x.size / fs))
    for a in rng.integers(0, max(1, x.size - length), size=n):
        out[a : a + length] = np.nan
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="models:/vitalgru-arrhythmia@champion")
    ap.add_argument("--minutes", type=float, default=10.0, help="of each record (0: whole)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    env = environment()
    loaded, monitor, signals, reference = ds2_monitor(args.model, args.minutes)
    frac = Thresholds().max_gap_frac
    rows = [{"burst": 0, "per_s": 0.0, "max_gap_s": LIMITS[0], "lost_share": 0.0,
             **_run(monitor, signals, reference, (LIMITS[0], frac))}]  # fmt: skip
    print(rows[-1], flush=True)
    for length in BURSTS:
        for rate in RATES:
            rng = np.random.default_rng(0)  # the same places under both limits
            feeds = {
                p: (burst_drop(x, fs, rate, length, rng), fs) for p, (x, fs) in signals.items()
            }
            lost = sum(int(np.isnan(x).sum()) for x, _ in feeds.values())
            total = sum(x.size for x, _ in feeds.values())
            # bursts that even two together keep under every limit: one run does for all
            short = 2 * length / signals[next(iter(signals))][1] <= min(LIMITS)
            for limit in LIMITS[:1] if short else LIMITS:
                got = _run(monitor, feeds, reference, (limit, frac))
                rows.append({"burst": length, "per_s": rate, "max_gap_s": limit,
                             "lost_share": lost / total, **got})  # fmt: skip
                print(rows[-1], flush=True)
    fs = next(iter(signals.values()))[1]
    md = [
        "# A live feed that loses runs of samples together (DS2, "
        + (f"first {args.minutes:g} min of each record)" if args.minutes > 0 else "whole records)"),
        "",
        f"`python benchmarks/dropped_bursts.py` (model `{args.model}`, version "
        f"{loaded.version}; {env['date_utc'][:10]}). Bursts of consecutive samples set to NaN "
        f"at random (seed 0), replayed in 1 s chunks; a gap longer than the run limit flags its "
        f"10 s window (`nonfinite`), a shorter one is bridged; the share limit is "
        f"{100 * frac:g} % throughout. The first row is the recording's own.",
        "",
        "| burst, samples (ms) | bursts / s | lost % | run limit s | detection Se % "
        "| rejected signal % | poor-signal alarms | pauses | S F1 | V F1 |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ms = 1000 * r["burst"] / fs
        md.append(
            f"| {r['burst']} ({ms:.0f}) | {r['per_s']:g} | {100 * r['lost_share']:.2f} "
            f"| {r['max_gap_s']:g} | {100 * r['detection_se']:.2f} "
            f"| {100 * r['rejected_signal_share']:.1f} | {r['poor_signal_alarms']} "
            f"| {r['pause_alarms']} | {r['s_f1']:.3f} | {r['v_f1']:.3f} |"
        )
    md += ["", f"{env['machine']}, {env['cpu_count']} cores, torch {torch.__version__}, 1 thread."]
    write_results("dropped_bursts", {"model": args.model, "version": loaded.version,
                                     "minutes": args.minutes, "runs": rows, "env": env},
                  "\n".join(md) + "\n")  # fmt: skip
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
