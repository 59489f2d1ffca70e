"""The live sepsis monitor (``vitalgru.scoring.EarlyWarningMonitor``): hour by hour against
whole stays, and its throughput.

One command::

    python benchmarks/early_warning_live.py [--model models:/vitalgru-early-warning@champion]
                                            [--patients 1000]

Writes ``benchmarks/results/early_warning_live.json`` and ``.md``. The first ``--patients``
of training set A are admitted together and fed one ICU hour per tick (a patient leaves
when their file ends), as a bedside feed would send them (``vitalgru.scoring.replay_stays``,
what ``vitalgru replay early-warning`` runs); the risks are compared with
scoring each whole stay at once (``score_cohort``, what ``vitalgru evaluate`` runs). Set A
is the champion's training data: this measures the monitor, not the model.

At every hour an alarm episode begins, the monitor names the three measurements that raised
the risk most (``EarlyWarningMonitor.explain``, as the gateway's alarm events do); the
benchmark counts which measurements come first, how often one alone carries the risk over
the threshold, and what the explanations cost (outside the ticks' times).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import default_mirror, environment, write_results

from vitalgru import tracking
from vitalgru.data.early_warning import build_cohort
from vitalgru.io.psv_folder import read_psv_folder
from vitalgru.scoring import EarlyWarningMonitor, replay_stays
from vitalgru.training.early_warning import score_cohort


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="models:/vitalgru-early-warning@champion")
    ap.add_argument("--patients", type=int, default=1000)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    env = environment()
    loaded = tracking.load_model(args.model)
    folder = default_mirror() / "challenge-2019" / "training_setA"
    cohort = build_cohort(folder, limit=args.patients)
    t0 = time.perf_counter()
    want = score_cohort(loaded.module, loaded.preprocessing, cohort)
    offline_s = time.perf_counter() - t0

    # the files' own rows, before the plausibility limits (the monitor applies them itself)
    raw = read_psv_folder(folder, limit=args.patients).frame
    mon = EarlyWarningMonitor(loaded.module, loaded.preprocessing)
    res = replay_stays(mon, raw, explain=3)
    live = np.array([r.risk for pid in cohort.patient_ids for r in res.risks[pid]])
    secs = res.tick_compute_s
    n_rows = int(live.size)
    thr = float(loaded.preprocessing["threshold"])
    onsets = [d for by_hour in res.drivers.values() for d in by_hour.values()]
    firsts = [d[0] for d in onsets if d]
    explained = {
        "alarm_onsets": len(onsets),
        "explain_s": res.explain_s,
        "explain_ms_mean": 1e3 * res.explain_s / max(len(onsets), 1),
        "onsets_without_a_driver": sum(not d for d in onsets),
        "top_driver_alone_below_threshold": sum(d.risk_if_typical < thr for d in firsts),
        "top_driver_risk_drop_median": float(np.median([d.risk_drop for d in firsts])),
        "top_driver_counts": dict(Counter(d.column for d in firsts).most_common()),
    }
    payload = {
        "command": "python benchmarks/early_warning_live.py " + " ".join(argv or sys.argv[1:]),
        "environment": env,
        "model_uri": args.model,
        "model_version": loaded.version,
        "patients": int(cohort.n_patients),
        "patient_hours": n_rows,
        "max_abs_risk_diff": float(np.abs(live - want).max()),
        "alarm_hours_live": int((live >= thr).sum()),
        "alarm_hours_whole": int((want >= thr).sum()),
        "live_s": float(secs.sum()),
        "live_patient_hours_per_s": n_rows / float(secs.sum()),
        "ticks": int(secs.size),
        "tick_ms_first": float(secs[0] * 1e3),
        "tick_ms_p50": float(np.percentile(secs, 50) * 1e3),
        "tick_ms_max": float(secs.max() * 1e3),
        "whole_stays_s": offline_s,
        "whole_stays_patient_hours_per_s": n_rows / offline_s,
        "explanations": explained,
    }
    print(payload, flush=True)
    p = payload
    lines = [
        "# The live sepsis monitor (vitalgru.scoring.EarlyWarningMonitor)",
        "",
        f"Command: `{p['command'].strip()}`  ",
        f"Model {args.model} (version {loaded.version}); one thread; date {env['date_utc']}.",
        "",
        f"{p['patients']} set-A patients admitted together, one ICU hour per tick "
        f"({p['patient_hours']} patient-hours, {p['ticks']} ticks).",
        "",
        "| | value |",
        "|---|---:|",
        f"| largest risk difference, hour by hour vs whole stays | {p['max_abs_risk_diff']:.2e} |",
        f"| alarm hours, live / whole stays | {p['alarm_hours_live']} / {p['alarm_hours_whole']} |",
        f"| live: patient-hours per second | {p['live_patient_hours_per_s']:.0f} |",
        f"| live: tick with all {p['patients']} patients (first hour) | "
        f"{p['tick_ms_first']:.0f} ms |",
        f"| live: tick p50 / max | {p['tick_ms_p50']:.0f} / {p['tick_ms_max']:.0f} ms |",
        f"| whole stays (evaluate): patient-hours per second | "
        f"{p['whole_stays_patient_hours_per_s']:.0f} |",
        "",
        "## What raised the risk at each alarm onset",
        "",
        f"{explained['alarm_onsets']} alarm episodes began; explaining them took "
        f"{explained['explain_s']:.1f} s ({explained['explain_ms_mean']:.0f} ms per onset, one "
        f"thread). At {explained['onsets_without_a_driver']} onsets no measurement set to its "
        f"training mean lowered the risk. Of the rest, the first-named measurement alone, set "
        f"to typical, took the risk below the threshold at "
        f"{explained['top_driver_alone_below_threshold']} of {len(firsts)}; its median risk "
        f"drop was {explained['top_driver_risk_drop_median']:.3f} (threshold {thr:.3f}).",
        "",
        "| first-named measurement | onsets |",
        "|---|---:|",
        *(f"| {c} | {n} |" for c, n in list(explained["top_driver_counts"].items())[:12]),
        "",
    ]
    js, md = write_results("early_warning_live", payload, "\n".join(lines))
    print(f"wrote {js} and {md}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
