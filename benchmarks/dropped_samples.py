"""A live ECG feed that drops samples: what the monitor makes of it, with gaps bridged or not.

One command::

    python benchmarks/dropped_samples.py [--model models:/vitalgru-arrhythmia@champion]
                                         [--minutes 0] [--sweep-minutes 10]

A bedside feed sent over a network loses a sample now and then (the gateway takes a lost
sample as ``null``: a gap). The 22 MIT-BIH DS2 records (whole, or their first
``--minutes``) are replayed together in 1 s chunks (:func:`vitalgru.scoring.replay`), once
as recorded and once per loss rate, with single samples set to NaN at random (seeded)
places: 1 sample in 10 s, 1 a second, 10 a second. Each rate runs under two quality rules:

- ``bridged`` (the default): a window is ``nonfinite`` only for a gap longer than
  ``Thresholds().max_gap_s`` (0.1 s) or over 5 % of it;
- ``strict`` (the rule before gaps were bridged): any missing sample flags its 10 s window,
  as ``max_gap_s=0, max_gap_frac=0`` does (the two are the same test, ``gaps.any()``).

Measured per run: beats detected and matched against the reference, the share of beats
judged in rejected signal (``signal_ok`` false), poor-signal and pause alarms raised, DS2 S
and V F1 on the matched beats, and the wall time. Then the sweep that chose the 5 %: the
first ``--sweep-minutes`` of each record at 3, 10 and 30 lost samples a second against
limits of 1, 3, 5 and 10 %.

Writes ``benchmarks/results/dropped_samples.{json,md}``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, write_results
from ds2 import ds2_feeds, ds2_monitor

from vitalgru.dsp.quality import Thresholds
from vitalgru.scoring import ArrhythmiaMonitor, replay
from vitalgru.scoring.replay import live_report

#: Lost samples per second of ECG (0: as recorded).
RATES = (0.0, 0.1, 1.0, 10.0)
#: The quality rules compared: their gap limits (max_gap_s, max_gap_frac).
RULES = {"bridged": (Thresholds().max_gap_s, Thresholds().max_gap_frac), "strict": (0.0, 0.0)}
#: The sweep that chose the default share of a window that may be missing: loss rates
#: (samples a second) against limits.
SWEEP_RATES = (3.0, 10.0, 30.0)
SWEEP_FRACS = (0.01, 0.03, 0.05, 0.1)


def _drop(x: np.ndarray, fs: float, per_s: float, rng: np.random.Generator) -> np.ndarray:
    """``x`` with ``per_s`` single samples a second set to NaN at random places."""
    out = x.copy()
    n = int(round(per_s * x.size / fs))
    if n:
        out[rng.choice(x.size, size=n, replace=False)] = np.nan
    return out


def _run(
    monitor: ArrhythmiaMonitor,
    feeds: dict[str, tuple[np.ndarray, float]],
    reference: dict[str, Any],
    gaps: tuple[float, float],
) -> dict[str, Any]:
    real_admit = monitor.admit

    def admit(pid: str, fs: float, memory: Any = None) -> None:  # the rule under test
        real_admit(pid, fs, memory)
        stream = monitor._patients[pid].quality
        stream._th = Thresholds(max_gap_s=gaps[0], max_gap_frac=gaps[1])

    monitor.admit = admit  # type: ignore[method-assign]
    t0 = time.perf_counter()
    try:
        result = replay(monitor, feeds, chunk_s=1.0)
    finally:
        del monitor.admit
    wall = time.perf_counter() - t0
    report = live_report(result.calls, reference)
    calls = [c for cs in result.calls.values() for c in cs]
    kinds = Counter(a.kind for al in result.alerts.values() for a in al)
    classes = report["beats"]["classes"]
    return {
        "beats_called": len(calls),
        "matched": report["detection"]["matched"],
        "detection_se": report["detection"]["se"],
        "rejected_signal_share": float(np.mean([not c.signal_ok for c in calls])),
        "poor_signal_alarms": kinds.get("poor_signal", 0),
        "pause_alarms": kinds.get("pause", 0),
        "s_f1": classes["S"]["f1"],
        "v_f1": classes["V"]["f1"],
        "wall_s": round(wall, 1),
    }


def _dropped(
    signals: dict[str, tuple[np.ndarray, float]], rate: float
) -> dict[str, tuple[np.ndarray, float]]:
    rng = np.random.default_rng(0)  # the same places for every rule
    return {pid: (_drop(x, fs, rate, rng), fs) for pid, (x, fs) in signals.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="models:/vitalgru-arrhythmia@champion")
    ap.add_argument("--minutes", type=float, default=0.0, help="of each record (0: whole)")
    ap.add_argument("--sweep-minutes", type=float, default=10.0,
                    help="of each record for the sweep over the limit (0: no sweep)")  # fmt: skip
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    env = environment()
    loaded, monitor, signals, reference = ds2_monitor(args.model, args.minutes)
    rows = []
    for rate in RATES:
        feeds = _dropped(signals, rate)
        lost = sum(int(np.isnan(x).sum()) for x, _ in feeds.values())
        for rule, gaps in RULES.items():
            if rate == 0 and rule == "strict":
                continue  # nothing to bridge: the same run
            got = _run(monitor, feeds, reference, gaps)
            rows.append({"lost_per_s": rate, "lost_samples": lost, "rule": rule, **got})
            print(rows[-1], flush=True)
    sweep = []
    if args.sweep_minutes > 0:
        short, ref_short = ds2_feeds(monitor.windows, args.sweep_minutes)
        for rate in (0.0, *SWEEP_RATES):
            feeds = _dropped(short, rate)
            for frac in SWEEP_FRACS if rate else SWEEP_FRACS[:1]:
                got = _run(monitor, feeds, ref_short, (RULES["bridged"][0], frac))
                sweep.append({"lost_per_s": rate, "max_gap_frac": frac, **got})
                print(sweep[-1], flush=True)
    md = [
        "# A live feed that drops samples (DS2, "
        + (f"first {args.minutes:g} min of each record)" if args.minutes > 0 else "whole records)"),
        "",
        "`python benchmarks/dropped_samples.py` (model "
        f"`{args.model}`, version {loaded.version}). Single samples set to NaN at random",
        "(seed 0), replayed in 1 s chunks; `strict` flags any window with a missing sample (the",
        "rule before gaps were bridged), `bridged` (the default) only a gap over "
        f"{RULES['bridged'][0]:g} s or {100 * RULES['bridged'][1]:g} % of a window.",
        "Rejected signal: beats whose live quality verdict (`signal_ok`) was bad; the quality",
        "gate keeps a V call there only when the model is all but sure, hence V F1.",
        "",
        "| lost / s | rule | beats called | rejected signal % | poor-signal alarms | pauses "
        "| S F1 | V F1 | wall s |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        md.append(
            f"| {r['lost_per_s']:g} | {r['rule']} | {r['beats_called']} | "
            f"{100 * r['rejected_signal_share']:.1f} | {r['poor_signal_alarms']} | "
            f"{r['pause_alarms']} | {r['s_f1']:.3f} | {r['v_f1']:.3f} | {r['wall_s']:.0f} |"
        )
    if sweep:
        md += [
            "",
            f"## The limit on the share missing (first {args.sweep_minutes:g} min of each record)",
            "",
            f"Gaps up to {RULES['bridged'][0]:g} s bridged; a window flagged when more than the "
            "limit of its",
            "samples is missing. The row with nothing lost is the recording's own.",
            "",
            "| lost / s | limit % | rejected signal % | poor-signal alarms | S F1 | V F1 |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        md += [
            f"| {r['lost_per_s']:g} | {100 * r['max_gap_frac']:g} | "
            f"{100 * r['rejected_signal_share']:.1f} | {r['poor_signal_alarms']} | "
            f"{r['s_f1']:.3f} | {r['v_f1']:.3f} |"
            for r in sweep
        ]
    md += ["", f"{env['machine']}, {env['cpu_count']} cores, torch {torch.__version__}, 1 thread."]
    write_results("dropped_samples", {"model": args.model, "version": loaded.version,
                                      "minutes": args.minutes, "runs": rows,
                                      "sweep_minutes": args.sweep_minutes, "sweep": sweep,
                                      "env": env}, "\n".join(md) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
