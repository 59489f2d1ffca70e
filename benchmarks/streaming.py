"""The live monitor (``vitalgru.scoring``): accuracy as a device, latency, throughput, memory.

One command::

    python benchmarks/streaming.py [--model models:/vitalgru-arrhythmia@champion]

Writes ``benchmarks/results/streaming.json`` and ``benchmarks/results/streaming.md`` (another
stem with ``--name``):

1. **DS2 as a live ward.** The 22 DS2 records replayed together as 22 concurrent patients,
   1 s of ECG per patient per tick (``vitalgru.scoring.replay_database``): the detector
   finds the beats and each is matched to the reference within EC57's 150 ms. Beside it,
   the same model on the annotators' beats (``vitalgru evaluate``'s
   ``score_database``), which is what published inter-patient results report.
2. **Filtering margin.** Each beat's stretch is filtered zero-phase with ``margin_s`` of
   signal on each side; the class probabilities at 0.5, 1, 2 and 3 s against a 10 s margin
   (practically whole-record filtering), on three DS2 records.
3. **Noise.** Record 118 clean (mitdb) and with electrode-motion noise (nstdb 118e24,
   118e12, 118e00): 118's reference has no run of V or S beats, so every run alarm there
   is false. With the alarms' quality hold-off (default) and without it.
4. **Throughput.** 1 to 128 patients (DS2 records cycled), 120 s each, 1 s ticks on one
   thread: patient-seconds of ECG per second of compute, the time per tick, and the
   process's peak resident memory.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import default_mirror, environment, write_results

from vitalgru import tracking
from vitalgru.config import PhysioNetConfig
from vitalgru.data.ingest import select_lead
from vitalgru.data.labels import AAMI_MAP, is_beat
from vitalgru.data.splits import DECHAZAL_DS2
from vitalgru.io import open_database
from vitalgru.io.ingest import iter_records
from vitalgru.scoring import AlertRules, ArrhythmiaMonitor, replay, replay_database
from vitalgru.training.arrhythmia_eval import score_database


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _classes(rep: dict[str, Any]) -> dict[str, Any]:
    return {c: {k: v[k] for k in ("n", "se", "ppv", "f1")} for c, v in rep["classes"].items()}


def _margins(loaded: Any, feeds: dict[str, tuple[np.ndarray, float]]) -> dict[str, Any]:
    def probs(margin: float) -> np.ndarray:
        mon = ArrhythmiaMonitor(loaded.module, loaded.preprocessing, margin_s=margin)
        res = replay(mon, feeds, 1.0)
        return np.array([c.probs for rid in feeds for c in res.calls[rid]])

    ref = probs(10.0)
    out = {}
    for m in (0.5, 1.0, 2.0, 3.0):
        p = probs(m)
        d = np.abs(p - ref).max(axis=1)
        out[str(m)] = {
            "beats": int(d.size),
            "max_abs_prob_diff": float(d.max()),
            "p99_abs_prob_diff": float(np.percentile(d, 99)),
            "label_changes": int((p.argmax(1) != ref.argmax(1)).sum()),
        }
        print("margin", m, out[str(m)], flush=True)
    return out


def _episodes(times: np.ndarray, labels: str, kind: str, need: int, min_bpm: float) -> list:
    """(start_s, end_s) of every run of ``need`` or more ``kind`` beats in ``labels`` (one
    character per beat) at ``min_bpm`` or faster."""
    out = []
    i = 0
    while i < len(labels):
        if labels[i] != kind:
            i += 1
            continue
        j = i
        while j + 1 < len(labels) and labels[j + 1] == kind:
            j += 1
        n = j - i + 1
        if n >= need:
            span = times[j] - times[i]
            if span > 0 and 60.0 * (n - 1) / span >= min_bpm:
                out.append((float(times[i]), float(times[j])))
        i = j + 1
    return out


def _run_alarm_scores(live: dict[str, Any], db: Any, records: list[str]) -> dict[str, Any]:
    """Run alarms against the runs in the reference labels: an episode is found when an
    alarm of its kind has its onset within it (1 s of slack at each end); an alarm is
    right when it lies on a reference run of its kind."""
    rules = AlertRules()
    out: dict[str, Any] = {}
    for kind, code, min_bpm, need in (
        ("ventricular_run", "V", 0.0, rules.v_run_beats),
        ("supraventricular_run", "S", rules.s_run_min_bpm, rules.s_run_beats),
    ):
        n_ref = found = n_alarms = right = 0
        by_record: dict[str, list[int]] = {}
        for rec, ann in iter_records(db, records):
            sym = np.asarray(ann.symbol).astype(str)
            keep = is_beat(sym)
            t = np.asarray(ann.sample_idx)[keep] / rec.fs
            lab = "".join(str(AAMI_MAP[x]) for x in sym[keep])
            eps = _episodes(t, lab, code, need, min_bpm)
            onsets = [a["onset_s"] for a in live["alerts"]["records"].get(rec.record_id, [])
                      if a["kind"] == kind]  # fmt: skip
            f = sum(any(a - 1.0 <= o <= b + 1.0 for o in onsets) for a, b in eps)
            r = sum(any(a - 1.0 <= o <= b + 1.0 for a, b in eps) for o in onsets)
            n_ref, found, n_alarms, right = (
                n_ref + len(eps),
                found + f,
                n_alarms + len(onsets),
                right + r,
            )
            if eps or onsets:
                by_record[rec.record_id] = [len(eps), f, len(onsets), r]
        out[kind] = {
            "reference_episodes": n_ref,
            "episodes_found": found,
            "alarms": n_alarms,
            "alarms_on_a_reference_run": right,
            # record: [reference runs, found, alarms, alarms on a reference run]
            "records": by_record,
        }
    print("run alarms", out, flush=True)
    return out


def _noise(loaded: Any, mirror: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, rules in (("holdoff", AlertRules()),
                        ("no_holdoff", AlertRules(quality_holdoff_s=1e-6))):  # fmt: skip
        rows = {}
        for db_name, rid in (("mitdb", "118"), ("nstdb", "118e24"), ("nstdb", "118e12"),
                             ("nstdb", "118e00")):  # fmt: skip
            db = open_database(db_name, PhysioNetConfig(mirror=mirror))
            mon = ArrhythmiaMonitor(loaded.module, loaded.preprocessing, alert_rules=rules)
            _, rep = replay_database(mon, db, [rid], chunk_s=1.0)
            rows[rid] = dict(Counter(a["kind"] for a in rep["alerts"]["records"][rid]))
        out[name] = rows
        print("noise", name, rows, flush=True)
    return out


def _throughput(loaded: Any, signals: list[tuple[np.ndarray, float]]) -> list[dict[str, Any]]:
    rows = []
    for n in (1, 8, 32, 128):
        feeds = {f"bed{i}": signals[i % len(signals)] for i in range(n)}
        feeds = {k: (x[: int(120 * fs)], fs) for k, (x, fs) in feeds.items()}
        mon = ArrhythmiaMonitor(loaded.module, loaded.preprocessing)
        res = replay(mon, feeds, 1.0)
        s = res.compute_summary()
        row = {
            "patients": n,
            "patient_s_per_s": s["patient_s_per_s"],
            "tick_ms_p50": s["tick_ms_p50"],
            "tick_ms_p99": s["tick_ms_p99"],
            "beats": sum(len(c) for c in res.calls.values()),
            "peak_rss_mb": _rss_mb(),
        }
        rows.append(row)
        print(row, flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="models:/vitalgru-arrhythmia@champion")
    ap.add_argument("--name", default="streaming", help="results file stem")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    env = environment()
    loaded = tracking.load_model(args.model)
    db = open_database("mitdb", PhysioNetConfig(mirror=default_mirror()))
    records = list(DECHAZAL_DS2)

    t0 = time.perf_counter()
    mon = ArrhythmiaMonitor(loaded.module, loaded.preprocessing)
    _, live = replay_database(mon, db, records, chunk_s=1.0)
    live_s = time.perf_counter() - t0
    print("live", live["beats"]["classes"], live["detection"]["se"], flush=True)
    t0 = time.perf_counter()
    offline = score_database(loaded.module, loaded.preprocessing, db, records).report()
    offline_s = time.perf_counter() - t0

    signals = []
    for rec, _ in iter_records(db, records):
        col = select_lead(rec, "MLII", 0)
        signals.append((rec.signal[:, col].astype(np.float64), float(rec.fs)))
    margin_feeds = {r: (x[: int(300 * fs)], fs) for r, (x, fs) in zip(
        records, signals, strict=True) if r in ("208", "213", "232")}  # fmt: skip
    margins = _margins(loaded, margin_feeds)
    noise = _noise(loaded, default_mirror())
    run_scores = _run_alarm_scores(live, db, records)
    throughput = _throughput(loaded, signals)

    d = live["detection"]
    payload = {
        "command": "python benchmarks/streaming.py " + " ".join(argv or sys.argv[1:]),
        "environment": env,
        "model_uri": args.model,
        "model_version": loaded.version,
        "ds2_live": {
            "seconds": live_s,
            "beats": _classes(live["beats"]),
            "accuracy": live["beats"]["accuracy"],
            "ec57": live["beats"]["ec57"],
            "detection": {k: v for k, v in d.items() if k != "records"},
            "alerts": live["alerts"]["counts"],
            "alerts_by_record": {
                rid: dict(Counter(a["kind"] for a in al))
                for rid, al in live["alerts"]["records"].items()
            },
            "latency_s": live["latency_s"],
            "compute": live["compute"],
        },
        "ds2_offline": {
            "seconds": offline_s,
            "beats": _classes(offline),
            "accuracy": offline["accuracy"],
        },
        "margins": margins,
        "noise_alarms": noise,
        "ds2_run_alarms": run_scores,
        "throughput": throughput,
    }

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f}"

    lb, ob = payload["ds2_live"]["beats"], payload["ds2_offline"]["beats"]
    lat = live["latency_s"]
    lines = [
        "# The live monitor (vitalgru.scoring)",
        "",
        f"Command: `{payload['command'].strip()}`  ",
        f"Model {args.model} (version {loaded.version}); one thread; date {env['date_utc']}.",
        "",
        "## DS2 as a live ward (22 patients at once, 1 s ticks)",
        "",
        f"The monitor found {d['matched']} of {d['reference']} reference beats (Se "
        f"{pct(d['se'])} %) with {d['detected']} detections (+P {pct(d['ppv'])} %). "
        f"R peak to label: p50 {lat['p50']:.2f} s, p99 {lat['p99']:.2f} s. "
        f"Replaying the 11 hours took {live_s:.0f} s.",
        "",
        "| class | live: n matched | Se % | +P % | F1 % | offline (reference beats): n "
        "| Se % | +P % | F1 % |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {c} | {lb[c]['n']} | {pct(lb[c]['se'])} | {pct(lb[c]['ppv'])} "
            f"| {pct(lb[c]['f1'])} | {ob[c]['n']} | {pct(ob[c]['se'])} | {pct(ob[c]['ppv'])} "
            f"| {pct(ob[c]['f1'])} |"
            for c in lb
        ),
        "",
        f"Accuracy: live {pct(live['beats']['accuracy'])} %, offline "
        f"{pct(offline['accuracy'])} %. Missed reference beats by class: "
        + ", ".join(f"{k} {v}" for k, v in d["missed"].items())
        + "; extra detections by label: "
        + ", ".join(f"{k} {v}" for k, v in d["extra"].items())
        + ". Alarms raised: "
        + (", ".join(f"{k} {v}" for k, v in live["alerts"]["counts"].items()) or "none")
        + ".",
        "",
        "Poor-signal alarms by record: "
        + ", ".join(
            f"{rid} {n}"
            for rid, n in sorted(
                (
                    (r, c.get("poor_signal", 0))
                    for r, c in payload["ds2_live"]["alerts_by_record"].items()
                ),
                key=lambda x: -x[1],
            )
            if n
        )
        + ".",
        "",
        "## Filtering margin (records 208, 213, 232, first 5 min; against a 10 s margin)",
        "",
        "| margin s | beats | max abs prob diff | p99 | labels changed |",
        "|---:|---:|---:|---:|---:|",
        *(
            f"| {m} | {r['beats']} | {r['max_abs_prob_diff']:.4f} | "
            f"{r['p99_abs_prob_diff']:.5f} | {r['label_changes']} |"
            for m, r in margins.items()
        ),
        "",
        "## DS2 run alarms against the runs in the reference labels",
        "",
        "| alarm | reference runs | found | alarms | alarms on a reference run |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {k} | {v['reference_episodes']} | {v['episodes_found']} | {v['alarms']} "
            f"| {v['alarms_on_a_reference_run']} |"
            for k, v in run_scores.items()
        ),
        "",
        "## Alarms under noise (record 118: no V or S run in its reference)",
        "",
        "| record | hold-off: V runs | S runs | ectopy | poor signal "
        "| no hold-off: V runs | S runs | ectopy | poor signal |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {rid} | "
            + " | ".join(
                str(noise[k][rid].get(kind, 0))
                for k in ("holdoff", "no_holdoff")
                for kind in (
                    "ventricular_run",
                    "supraventricular_run",
                    "frequent_ventricular_ectopy",
                    "poor_signal",
                )
            )
            + " |"
            for rid in noise["holdoff"]
        ),  # fmt: skip
        "",
        "## Throughput (120 s per patient, 1 s ticks, one thread)",
        "",
        "| patients | patient-s of ECG per s | tick p50 ms | tick p99 ms | peak RSS MB |",
        "|---:|---:|---:|---:|---:|",
        *(
            f"| {r['patients']} | {r['patient_s_per_s']:.0f} | {r['tick_ms_p50']:.1f} "
            f"| {r['tick_ms_p99']:.1f} | {r['peak_rss_mb']:.0f} |"
            for r in throughput
        ),
        "",
    ]
    js, md = write_results(args.name, payload, "\n".join(lines))
    print(f"wrote {js} and {md}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
