"""Pause alarms at the bedside gateway: how long each stays open, and that a heartbeat ends it.

One command::

    python benchmarks/pauses.py [--model models:/vitalgru-arrhythmia@champion]

The 22 MIT-BIH DS2 records, whole, through one :class:`vitalgru.scoring.ward.Ward` as the
gateway runs it (1 s chunks, a tick after each second of every record). A pause alarm (no R
peak for 3 s) is raised while the pause goes on; the ward logs ``beats_resumed`` naming it
at the first tick after an R peak is detected. Measured, in stream time (seconds of the
record): for every pause alarm, when it was raised, when the ward ended it, how long it was
open, and the quality check's verdict the alarm carried (a flat or noisy lead, or a clean
one: a real pause); and that no alarm is left open at the end of a record that goes on
beating. The pauses do not depend on the network's labels (only the R-peak detector and
the quality check), so any registered model gives the same ones.

Writes ``benchmarks/results/pauses.{json,md}``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import default_mirror, environment, write_results

from vitalgru import tracking
from vitalgru.config import PhysioNetConfig
from vitalgru.data.ingest import select_lead
from vitalgru.data.splits import DECHAZAL_DS2
from vitalgru.io import open_database
from vitalgru.scoring import ArrhythmiaMonitor
from vitalgru.scoring.ward import Ward


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="models:/vitalgru-arrhythmia@champion")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    env = environment()
    loaded = tracking.load_model(args.model)
    monitor = ArrhythmiaMonitor(loaded.module, loaded.preprocessing)
    db = open_database("mitdb", PhysioNetConfig(mirror=default_mirror()))
    feeds = {}
    for name in DECHAZAL_DS2:
        rec = db.read_record(name)
        col = select_lead(rec, monitor.windows.lead, monitor.windows.fallback_lead)
        feeds[name] = (rec.signal[:, col].astype(np.float64), float(rec.fs))
    ward = Ward(monitor, escalate_after_s=None)
    for pid, (_, fs) in feeds.items():
        ward.admit_ecg(pid, fs)
    pauses: dict[int, dict[str, Any]] = {}
    seen = 0
    t0 = time.perf_counter()
    longest = max(x.size / fs for x, fs in feeds.values())
    for k in range(int(np.ceil(longest))):
        for pid, (x, fs) in feeds.items():
            a, b = int(k * fs), int((k + 1) * fs)
            if a < x.size:
                ward.add_ecg(pid, x[a : min(b, x.size)])
        ward.tick()
        got = ward.events(seen, limit=10_000)
        seen = got["last_seq"]
        for e in got["events"]:
            if e["kind"] == "pause":
                pauses[e["seq"]] = {"record": e["patient_id"], "onset_s": e["onset_s"],
                                    "raised_s": e["raised_at_s"], "message": e["message"],
                                    "ended_s": None}  # fmt: skip
            elif e["kind"] == "beats_resumed":
                pauses[int(e["ends"])]["ended_s"] = float(min(k + 1, longest))
    wall = time.perf_counter() - t0
    still_open = ward.alarms_in_progress()
    rows = sorted(pauses.values(), key=lambda p: (p["record"], p["raised_s"]))
    for p in rows:
        p["open_s"] = None if p["ended_s"] is None else p["ended_s"] - p["raised_s"]
        p["clean_lead"] = "quality check rejects" not in p["message"]
    ended = [p for p in rows if p["open_s"] is not None]
    open_s = np.array([p["open_s"] for p in ended]) if ended else np.zeros(0)
    clean = [p for p in ended if p["clean_lead"]]
    payload = {
        "environment": env,
        "model": args.model,
        "records": list(feeds),
        "stream_s": float(sum(x.size / fs for x, fs in feeds.values())),
        "wall_s": wall,
        "pauses": len(rows),
        "ended_by_a_heartbeat": len(ended),
        "open_at_the_end": [p for p in rows if p["open_s"] is None],
        "alarms_in_progress_at_the_end": still_open,
        "open_s": {q: float(np.percentile(open_s, q)) for q in (50, 90, 100)} if ended else {},
        "raised_after_last_beat_s": {
            q: float(np.percentile([p["raised_s"] - p["onset_s"] for p in rows], q))
            for q in (0, 50, 100)
        }
        if rows
        else {},
        "clean_lead_pauses": len(clean),
        "clean_lead_open_s": [p["open_s"] for p in clean],
        "by_record": {
            r: sum(p["record"] == r for p in rows) for r in sorted({p["record"] for p in rows})
        },
        "rows": rows,
    }
    write_results("pauses", payload, _table(payload))
    print(_table(payload))
    return 0


def _table(p: dict[str, Any]) -> str:
    q, r = p["open_s"], p["raised_after_last_beat_s"]
    raised = f"{r[0]:.1f} / {r[50]:.1f} / {r[100]:.1f}" if r else "-"
    lines = [
        "# Pause alarms at the bedside gateway",
        "",
        f"`python benchmarks/pauses.py --model {p['model']}` ({p['environment']['date_utc']}): the "
        f"{len(p['records'])} DS2 records whole ({p['stream_s'] / 3600:.1f} h of ECG) through "
        f"one ward in 1 s chunks ({p['wall_s']:.0f} s wall).",
        "",
        "| pause alarms | raised, s after the last R peak: min / p50 / max | ended by a "
        "heartbeat (`beats_resumed`) | open at a record's end | open, s: p50 / p90 / max | "
        "with the lead judged clean (real pauses) |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {p['pauses']} | {raised} | {p['ended_by_a_heartbeat']} | "
        f"{len(p['open_at_the_end'])} | "
        + (f"{q[50]:.1f} / {q[90]:.1f} / {q[100]:.1f}" if q else "-")
        + f" | {p['clean_lead_pauses']} |",
        "",
        "Stream time (seconds of the record); the ward ticks once a second, so an alarm open "
        "0 s was raised and ended in the same tick: the R peak that ended the pause was "
        "reported within the second in which the silence check reached its limit.",
        "",
        "Pause alarms by record: " + ", ".join(f"{r} {n}" for r, n in p["by_record"].items()) + ".",
    ]
    if p["open_at_the_end"]:
        lines += ["", "Open at the end (the record stopped before a heartbeat came): "
                  + ", ".join(f"{o['record']} at {o['raised_s']:.1f} s"
                              for o in p["open_at_the_end"]) + "."]  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
