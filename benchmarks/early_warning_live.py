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
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import default_mirror, environment, write_results

from vitalgru import tracking
from vitalgru.data.early_warning import build_cohort
from vitalgru.io.psv import read_psv_folder
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
    res = replay_stays(mon, raw)
    live = np.array([r.risk for pid in cohort.patient_ids for r in res.risks[pid]])
    secs = res.tick_compute_s
    n_rows = int(live.size)
    thr = float(loaded.preprocessing["threshold"])
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
    ]
    js, md = write_results("early_warning_live", payload, "\n".join(lines))
    print(f"wrote {js} and {md}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
