"""Arrhythmia model under noise: the MIT-BIH Noise Stress Test Database, quality gate on/off.

One command::

    python benchmarks/noise_stress.py [--model models:/vitalgru-arrhythmia@champion]
                                      [--records 118e24,118e12,118e00]

Writes ``benchmarks/results/noise_stress.json`` and ``benchmarks/results/noise_stress.md``.

nstdb adds calibrated electrode-motion noise to MIT-BIH records 118 and 119 from minute 5
on, in alternating 2-minute stretches, at a stated signal-to-noise ratio (24 dB down to
-6 dB; the local mirror holds 118 at 24, 12 and 0 dB); the beat annotations are those of the
clean record. Each record is scored by the same code as ``vitalgru evaluate arrhythmia``
(``vitalgru.training.arrhythmia_eval.score_database``: read, filter, live quality verdict,
features, model), once with the model's quality gate as logged and once with it off, beside
the clean record 118 from mitdb.

Record 118 belongs to DS1, the training half of MIT-BIH: the model has seen its clean
beats. So this measures what noise alone does to the calls (and what the gate undoes), not
how the model generalises to new patients; DS2 (``benchmarks/arrhythmia.py``) does that.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import default_mirror, environment, write_results

from vitalgru import tracking
from vitalgru.config import PhysioNetConfig
from vitalgru.io import open_database
from vitalgru.metrics.aami import aami_metrics
from vitalgru.training.arrhythmia_eval import score_database


def _summary(y: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    m = aami_metrics(y, pred)
    v_true, v_pred = y == 2, pred == 2
    return {
        "beats": int(y.size),
        "accuracy": m["accuracy"],
        "v_beats": int(v_true.sum()),
        "v_calls": int(v_pred.sum()),
        "false_v": int((v_pred & ~v_true).sum()),
        "v_se": m["v_se"],
        "v_ppv": m["v_ppv"],
        "s_f1": m["s_f1"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="models:/vitalgru-arrhythmia@champion")
    ap.add_argument("--records", default="118e24,118e12,118e00")
    args = ap.parse_args(argv)
    env = environment()
    loaded = tracking.load_model(args.model)
    model = loaded.module
    logged_gate = getattr(model, "quality_gate", None)
    phys = PhysioNetConfig(mirror=default_mirror())
    sources = [("mitdb", "118")] + [("nstdb", r) for r in args.records.split(",")]
    rows: dict[str, Any] = {}
    t0 = time.perf_counter()
    for db_name, rid in sources:
        db = open_database(db_name, phys)
        model.quality_gate = None
        off = score_database(model, loaded.preprocessing, db, [rid])
        model.quality_gate = 1.0 if logged_gate is None else logged_gate
        on = score_database(model, loaded.preprocessing, db, [rid])
        facts = off.facts[rid]
        rows[rid] = {
            "database": db_name,
            "signal_bad_beats": facts["signal_bad_beats"],
            "quality_flagged_windows": facts["quality_flagged_windows"],
            "quality_windows": facts["quality_windows"],
            "gate_off": _summary(off.y_true, off.y_pred),
            "gate_on": _summary(on.y_true, on.y_pred),
        }
        print(rid, rows[rid], flush=True)
    model.quality_gate = logged_gate
    payload = {
        "command": "python benchmarks/noise_stress.py " + " ".join(argv or sys.argv[1:]),
        "environment": env,
        "model_uri": args.model,
        "model_version": loaded.version,
        "model_quality_gate_as_logged": logged_gate,
        "seconds": time.perf_counter() - t0,
        "records": rows,
    }
    lines = [
        "# Arrhythmia model under noise (nstdb record 118), quality gate off / on",
        "",
        f"Command: `{payload['command'].strip()}`  ",
        f"Model {args.model} (version {loaded.version}; logged with the gate "
        f"{'off' if logged_gate is None else f'on, V kept above {logged_gate}'}; 'on' "
        f"below uses that setting, or 1.0 if off). Date {env['date_utc']}.",
        "",
        "Record 118 is a DS1 (training) record: this shows what noise does to the calls, "
        "not inter-patient accuracy.",
        "",
        "| record | beats | beats with bad live signal | V beats | V calls off / on "
        "| false V off / on | V Se % off / on | V +P % off / on | accuracy % off / on |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def pct(x: float) -> str:
        return "-" if x is None or not np.isfinite(x) else f"{100 * x:.1f}"

    for rid, r in rows.items():
        a, b = r["gate_off"], r["gate_on"]
        lines.append(
            f"| {r['database']}/{rid} | {a['beats']} | {r['signal_bad_beats']} | {a['v_beats']} "
            f"| {a['v_calls']} / {b['v_calls']} | {a['false_v']} / {b['false_v']} "
            f"| {pct(a['v_se'])} / {pct(b['v_se'])} | {pct(a['v_ppv'])} / {pct(b['v_ppv'])} "
            f"| {pct(a['accuracy'])} / {pct(b['accuracy'])} |"
        )
    js, md = write_results("noise_stress", payload, "\n".join(lines))
    print(f"wrote {js} and {md}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
