"""A gateway restart in the middle of an ECG stay: what carrying each patient's memory
(:class:`vitalgru.scoring.arrhythmia.PatientMemory`) changes, and what it costs.

One command::

    python benchmarks/ecg_restart.py [--model models:/vitalgru-arrhythmia@champion]
                                     [--restart-s 600] [--gap-s 10]

Writes ``benchmarks/results/ecg_restart.json`` and ``.md``. In process, one torch thread,
through :class:`vitalgru.scoring.ward.Ward` as the gateway drives it: the 22 DS2 records
admitted together, 1 s chunks, one tick per second of signal.

1. **Uninterrupted**: every record from start to end.
2. **Restarted**: the ward runs on a state file (:class:`~vitalgru.scoring.ward_journal.WardJournal`)
   for the first ``--restart-s`` seconds and is closed as ``vitalgru serve`` closes it; the
   next ``--gap-s`` seconds of every record are lost (the feed sends while the gateway is
   down); a new ward restores the file and takes the rest. Twice: with the memory the file
   kept (**carried**), and with it deleted from a copy of the file (**afresh**, as before
   memories were kept).

Measured: EC57 S and V scores of the detected beats against the reference annotations in
windows after the restart, how many beats were labelled otherwise than in the
uninterrupted run and by how much the class probabilities moved, the memory's size in the
file and the time to write and restore it.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, environment, write_results
from ds2 import ds2_feeds

from vitalgru import tracking
from vitalgru.scoring import ArrhythmiaMonitor, BeatCall
from vitalgru.scoring.replay import live_report
from vitalgru.scoring.ward import Ward
from vitalgru.scoring.ward_journal import WardJournal

WORK = ROOT / "benchmarks" / "_work"
#: Windows after the first second the restarted ward could label (s); None: to the end.
WINDOWS_S = (60, 300, None)


def _drive(
    ward: Ward, feeds: Mapping[str, tuple[np.ndarray, float]], start_s: float,
    stop_s: float | None, admit: bool,
) -> dict[str, list[BeatCall]]:  # fmt: skip
    """Send every record's [start_s, stop_s) in 1 s chunks, a tick each; the calls made,
    their R peaks counted from the record's start."""
    assert ward.ecg is not None
    calls: dict[str, list[BeatCall]] = {pid: [] for pid in feeds}
    push = ward.ecg.push

    def seen(chunks: Any) -> Any:  # the ward keeps only recent beats: note every call
        tick = push(chunks)
        for c in tick.calls:
            calls[c.patient_id].append(c)
        return tick

    ward.ecg.push = seen  # type: ignore[method-assign]
    if admit:
        for pid, (_, fs) in feeds.items():
            ward.admit_ecg(pid, fs)
    longest = max(x.size / fs for x, fs in feeds.values())
    end = longest if stop_s is None else stop_s
    for k in range(int(np.ceil(end - start_s))):
        for pid, (x, fs) in feeds.items():
            a, b = int((start_s + k) * fs), int(min(start_s + k + 1, end) * fs)
            if a < x.size:
                ward.add_ecg(pid, x[a : min(b, x.size)])
        ward.tick()
    ward.ecg.push = push  # type: ignore[method-assign]
    for pid, (_, fs) in feeds.items():
        off = int(start_s * fs)
        calls[pid] = [replace(c, sample_idx=c.sample_idx + off) for c in calls[pid]]
    return calls


def _in(calls: Mapping[str, list[BeatCall]], fs: Mapping[str, float], lo: float,
        hi: float) -> dict[str, list[BeatCall]]:  # fmt: skip
    return {p: [c for c in cs if lo <= c.sample_idx / fs[p] < hi] for p, cs in calls.items()}


def _compare(
    runs: Mapping[str, Mapping[str, list[BeatCall]]], reference: Mapping[str, Any],
    fs: Mapping[str, float], lo: float, hi: float,
) -> dict[str, Any]:  # fmt: skip
    ref = {}
    for pid, (r, lab, vf, f) in reference.items():
        keep = (r >= lo * f) & (r < hi * f)
        ref[pid] = (r[keep], lab[keep], vf, f)
    base = {(p, c.sample_idx): c for p, cs in _in(runs["uninterrupted"], fs, lo, hi).items()
            for c in cs}  # fmt: skip
    out = {}
    for name, calls in runs.items():
        got = _in(calls, fs, lo, hi)
        rep = live_report(got, ref)
        classes = rep["beats"]["classes"]
        same = [(base[(p, c.sample_idx)], c) for p, cs in got.items() for c in cs
                if (p, c.sample_idx) in base]  # fmt: skip
        moved = np.array([np.abs(np.subtract(a.probs, b.probs)).max() for a, b in same])
        out[name] = {
            "reference_beats": int(sum(r[0].size for r in ref.values())),
            "detected": int(sum(len(cs) for cs in got.values())),
            "accuracy": rep["beats"]["accuracy"],
            **{f"{c}_{k}": classes[c][k] for c in ("S", "V") for k in ("n", "se", "ppv", "f1")},
            "beats_as_uninterrupted": len(same),
            "labelled_otherwise": int(sum(a.label != b.label for a, b in same)),
            "prob_moved_p50": float(np.median(moved)) if moved.size else None,
            "prob_moved_p99": float(np.percentile(moved, 99)) if moved.size else None,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="models:/vitalgru-arrhythmia@champion")
    ap.add_argument("--restart-s", type=float, default=600.0)
    ap.add_argument("--gap-s", type=float, default=10.0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    env = environment()
    loaded = tracking.load_model(args.model)
    feeds, reference = ds2_feeds(ArrhythmiaMonitor(loaded.module, loaded.preprocessing).windows)
    fs = {p: f for p, (_, f) in feeds.items()}
    t_restart, resume = args.restart_s, args.restart_s + args.gap_s

    def monitor() -> ArrhythmiaMonitor:
        return ArrhythmiaMonitor(loaded.module, loaded.preprocessing)

    t0 = time.perf_counter()
    runs = {"uninterrupted": _drive(Ward(monitor()), feeds, 0.0, None, admit=True)}
    wall = {"uninterrupted_s": time.perf_counter() - t0}
    print(f"uninterrupted {wall['uninterrupted_s']:.0f} s", flush=True)

    WORK.mkdir(parents=True, exist_ok=True)
    state, afresh = WORK / "ecg-restart.sqlite", WORK / "ecg-restart-afresh.sqlite"
    for f in WORK.glob("ecg-restart*.sqlite*"):
        f.unlink()
    ward = Ward(monitor(), journal=WardJournal(state), memory_every_s=None)
    before = _drive(ward, feeds, 0.0, t_restart, admit=True)
    t0 = time.perf_counter()
    n_saved = ward.save_memory()
    wall["memory_write_s"] = time.perf_counter() - t0
    ward.close()
    with sqlite3.connect(state) as db:
        sizes = [n for (n,) in db.execute("SELECT length(memory) FROM ecg_memory")]
    shutil.copy(state, afresh)
    with sqlite3.connect(afresh) as db:
        db.execute("DELETE FROM ecg_memory")

    restores = {}
    for name, path in (("carried", state), ("afresh", afresh)):
        t0 = time.perf_counter()
        again = Ward(monitor(), journal=WardJournal(path))
        took = again.restore(again.journal.load())
        restores[name] = {**took, "restore_s": time.perf_counter() - t0}
        after = _drive(again, feeds, resume, None, admit=False)
        again.close()
        runs[name] = {p: before[p] + after[p] for p in feeds}
        print(f"{name}: {took}", flush=True)

    windows = {}
    first = resume + 1.0  # the restarted ward's first beats
    for w in WINDOWS_S:
        hi = first + w if w is not None else np.inf
        key = f"{w}s" if w is not None else "rest"
        windows[key] = _compare(runs, reference, fs, first, hi)
    payload = {
        "environment": env,
        "model": args.model,
        "records": list(feeds),
        "restart_s": t_restart,
        "gap_s": args.gap_s,
        "memory": {
            "patients": n_saved,
            "bytes_per_patient": float(np.mean(sizes)) if sizes else None,
            "write_s": wall["memory_write_s"],
        },
        "restores": restores,
        "uninterrupted_s": wall["uninterrupted_s"],
        "windows": windows,
    }
    write_results("ecg_restart", payload, _table(payload))
    print(_table(payload))
    return 0


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "-"
    return f"{100 * v:.1f}" if pct else f"{v:.4f}" if isinstance(v, float) else str(v)


def _table(p: dict[str, Any]) -> str:
    m = p["memory"]
    lines = [
        "# A gateway restart in the middle of an ECG stay",
        "",
        f"`python benchmarks/ecg_restart.py --model {p['model']} --restart-s {p['restart_s']:g} "
        f"--gap-s {p['gap_s']:g}` ({p['environment']['date_utc']}): the 22 DS2 records "
        f"through a ward, restarted at {p['restart_s']:g} s with the next {p['gap_s']:g} s of "
        "every record lost; scored from the first second after the restart.",
        "",
        f"Memory: {m['patients']} patients, {m['bytes_per_patient'] / 1024:.1f} KiB each in "
        f"the state file, written in {1e3 * m['write_s']:.0f} ms; restored in "
        f"{p['restores']['carried']['restore_s']:.2f} s (afresh: "
        f"{p['restores']['afresh']['restore_s']:.2f} s).",
        "",
        "| after the restart | run | beats | S F1 % | S Se % | S +P % | V F1 % | V Se % | "
        "V +P % | labelled otherwise | prob. moved p50 / p99 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, runs in p["windows"].items():
        for name, r in runs.items():
            other = "" if name == "uninterrupted" else (
                f"{r['labelled_otherwise']} of {r['beats_as_uninterrupted']}")  # fmt: skip
            moved = "" if name == "uninterrupted" else (
                f"{_fmt(r['prob_moved_p50'])} / {_fmt(r['prob_moved_p99'])}")  # fmt: skip
            lines.append(
                f"| {key} | {name} | {r['reference_beats']} | {_fmt(r['S_f1'], True)} | "
                f"{_fmt(r['S_se'], True)} | {_fmt(r['S_ppv'], True)} | {_fmt(r['V_f1'], True)} | "
                f"{_fmt(r['V_se'], True)} | {_fmt(r['V_ppv'], True)} | {other} | {moved} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
