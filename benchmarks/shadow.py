"""A challenger in the shadow of the champion (``vitalgru serve --shadow-...-model``): what it
costs the ward and what the comparison says.

One command::

    python benchmarks/shadow.py --arrhythmia-challenger URI --early-warning-challenger URI
                                [--arrhythmia-model models:/vitalgru-arrhythmia@champion]
                                [--early-warning-model models:/vitalgru-early-warning@champion]
                                [--seconds 300] [--stays 200]

Writes ``benchmarks/results/shadow.json`` and ``.md``. In process, one torch thread, through
:class:`vitalgru.scoring.ward.Ward` exactly as the gateway drives it (no HTTP):

1. **ECG**: the 22 DS2 records, the first ``--seconds`` of each, admitted together and sent
   in 1 s chunks, one tick per second of signal; once without and once with the shadow.
2. **Sepsis**: the first ``--stays`` stays of set A, every patient's next hour each round;
   once without and once with the shadow.

Measured: the wall time of each run (the shadow's cost), and the shadow report.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import wfdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import default_mirror, environment, write_results

from vitalgru import tracking
from vitalgru.data.early_warning import patient_offsets
from vitalgru.data.splits import DECHAZAL_DS2
from vitalgru.io.psv import PSV_COLUMNS
from vitalgru.io.psv_folder import read_psv_folder
from vitalgru.scoring import ArrhythmiaMonitor, EarlyWarningMonitor
from vitalgru.scoring.ward import Ward

CHALLENGE = {v: k for k, v in PSV_COLUMNS.items()}


def _ecg_run(champion: Any, challenger: Any | None, feeds: dict[str, np.ndarray]) -> tuple:
    ward = Ward(
        ArrhythmiaMonitor(champion.module, champion.preprocessing),
        shadow_ecg=(
            None
            if challenger is None
            else ArrhythmiaMonitor(challenger.module, challenger.preprocessing)
        ),
    )
    t0 = time.perf_counter()
    for pid in feeds:
        ward.admit_ecg(pid, 360.0)
    n = max(x.size for x in feeds.values())
    for k in range(0, n, 360):
        for pid, x in feeds.items():
            if k < x.size:
                ward.add_ecg(pid, x[k : k + 360].tolist())
        ward.tick()
    finals = {pid: ward.discharge_ecg(pid) for pid in feeds}
    wall = time.perf_counter() - t0
    return wall, finals, (ward.shadow_report() if challenger is not None else None)


def _sepsis_run(champion: Any, challenger: Any | None, stays: dict[str, list[dict]]) -> tuple:
    ward = Ward(
        sepsis=EarlyWarningMonitor(champion.module, champion.preprocessing),
        shadow_sepsis=(
            None
            if challenger is None
            else EarlyWarningMonitor(challenger.module, challenger.preprocessing)
        ),
    )
    t0 = time.perf_counter()
    for pid in stays:
        ward.admit_sepsis(pid)
    for k in range(max(len(v) for v in stays.values())):
        for pid, rows in stays.items():
            if k < len(rows):
                ward.add_hour(pid, rows[k])
    events = ward.events(0, limit=10_000)["events"]
    wall = time.perf_counter() - t0
    return wall, events, (ward.shadow_report() if challenger is not None else None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arrhythmia-model", default="models:/vitalgru-arrhythmia@champion")
    ap.add_argument("--early-warning-model", default="models:/vitalgru-early-warning@champion")
    ap.add_argument("--arrhythmia-challenger", required=True)
    ap.add_argument("--early-warning-challenger", required=True)
    ap.add_argument("--seconds", type=float, default=300.0)
    ap.add_argument("--stays", type=int, default=200)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    env = environment()

    ecg_champion = tracking.load_model(args.arrhythmia_model)
    ecg_challenger = tracking.load_model(args.arrhythmia_challenger)
    feeds = {}
    for r in DECHAZAL_DS2:
        rec = wfdb.rdrecord(
            str(default_mirror() / "mitdb" / str(r)), sampto=int(args.seconds * 360)
        )
        feeds[str(r)] = rec.p_signal[:, rec.sig_name.index("MLII")].astype(np.float64)
    ecg_alone_s, alone, _ = _ecg_run(ecg_champion, None, feeds)
    ecg_shadow_s, shadowed, ecg_report = _ecg_run(ecg_champion, ecg_challenger, feeds)
    same_champion = all(alone[p]["counts"] == shadowed[p]["counts"] for p in feeds)
    print(f"ecg: {ecg_alone_s:.1f} s alone, {ecg_shadow_s:.1f} s with the shadow", flush=True)

    ew_champion = tracking.load_model(args.early_warning_model)
    ew_challenger = tracking.load_model(args.early_warning_challenger)
    frame = read_psv_folder(
        default_mirror() / "challenge-2019" / "training_setA", limit=args.stays
    ).frame
    offsets, ids = patient_offsets(frame)
    cols = [c for c in frame.columns if c in CHALLENGE and c != "sepsis_label"]
    values = frame[cols].to_numpy(np.float64)
    stays = {
        str(pid): [
            {CHALLENGE[c]: (None if math.isnan(v) else float(v)) for c, v in
             zip(cols, values[i], strict=True)}
            for i in range(int(offsets[k]), int(offsets[k + 1]))
        ]
        for k, pid in enumerate(ids)
    }  # fmt: skip
    ew_alone_s, ev_alone, _ = _sepsis_run(ew_champion, None, stays)
    ew_shadow_s, ev_shadow, ew_report = _sepsis_run(ew_champion, ew_challenger, stays)
    same_events = [e["hour"] for e in ev_alone] == [e["hour"] for e in ev_shadow]
    print(f"sepsis: {ew_alone_s:.1f} s alone, {ew_shadow_s:.1f} s with the shadow", flush=True)

    hours = sum(len(v) for v in stays.values())
    payload = {
        "command": "python benchmarks/shadow.py " + " ".join(argv or sys.argv[1:]),
        "environment": env,
        "models": {
            "arrhythmia": [args.arrhythmia_model, ecg_champion.version],
            "arrhythmia_challenger": [args.arrhythmia_challenger, ecg_challenger.version],
            "early_warning": [args.early_warning_model, ew_champion.version],
            "early_warning_challenger": [args.early_warning_challenger, ew_challenger.version],
        },
        "ecg": {
            "patients": len(feeds),
            "signal_s": float(sum(x.size for x in feeds.values()) / 360),
            "wall_s_alone": ecg_alone_s,
            "wall_s_with_shadow": ecg_shadow_s,
            "champion_output_unchanged": same_champion,
            "report": ecg_report,
        },
        "sepsis": {
            "patients": len(stays),
            "hours": hours,
            "wall_s_alone": ew_alone_s,
            "wall_s_with_shadow": ew_shadow_s,
            "champion_alarms_unchanged": same_events,
            "report": ew_report,
        },
    }
    e, s = payload["ecg"], payload["sepsis"]
    er, sr = e["report"]["arrhythmia"], s["report"]["early_warning"]
    md = [
        "# A challenger in the shadow of the champion",
        "",
        f"Command: `{payload['command'].strip()}`  ",
        f"Date {env['date_utc']}; in process through `Ward`, one torch thread, "
        f"{env['cpu_count']} CPUs.",
        "",
        *(
            f"- {task}: champion `{payload['models'][key][0]}` (version "
            f"{payload['models'][key][1]}), challenger `{payload['models'][key + '_challenger'][0]}` "
            f"(version {payload['models'][key + '_challenger'][1]})"
            for task, key in (("ECG", "arrhythmia"), ("sepsis", "early_warning"))
        ),
        "",
        "| feed | data | wall s, champion alone | wall s, with the shadow | champion's output |",
        "|---|---|---:|---:|---|",
        f"| ECG, 1 s chunks | {e['patients']} DS2 records, {e['signal_s']:.0f} s | "
        f"{e['wall_s_alone']:.1f} | {e['wall_s_with_shadow']:.1f} | "
        f"{'unchanged' if same_champion else 'CHANGED'} |",
        f"| sepsis, hour by hour | {s['patients']} set-A stays, {hours} hours | "
        f"{s['wall_s_alone']:.1f} | {s['wall_s_with_shadow']:.1f} | "
        f"{'unchanged' if same_events else 'CHANGED'} |",
        "",
        f"ECG: {er['beats_matched']} beats matched, {100 * er['agreement']:.2f} % given the same "
        f"label; beats by class, champion {er['beats']['champion']}, challenger "
        f"{er['beats']['shadow']}; alarms, champion {er['alarms']['champion']}, challenger "
        f"{er['alarms']['shadow']}.",
        "",
        f"Sepsis: {sr['hours']} hours; risks differ by {sr['risk_mean_abs_diff']:.4f} on average "
        f"(at most {sr['risk_max_abs_diff']:.3f}), correlation {sr['risk_correlation']:.3f}; "
        f"hours in alarm, champion {sr['alarm_hours']['champion']}, challenger "
        f"{sr['alarm_hours']['shadow']}, both {sr['alarm_hours']['both']}; alarm episodes "
        f"begun, champion {sr['alarm_onsets']['champion']}, challenger "
        f"{sr['alarm_onsets']['shadow']}.",
    ]
    js, mdp = write_results("shadow", payload, "\n".join(md))
    print(f"wrote {js} and {mdp}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
