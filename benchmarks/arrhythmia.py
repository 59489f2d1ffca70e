"""Arrhythmia beat classifier: training cost, inference speed, DS2 accuracy.

One command::

    python benchmarks/arrhythmia.py [--dataset vitalgru-out/datasets/mitdb] [--config FILE]

Trains the default configuration on MIT-BIH DS1 (validation records inside DS1), then:

- training wall time and peak resident memory (``getrusage``) of this process and of the
  largest worker process (``cfg.workers`` train the networks side by side);
- inference throughput on one core (``torch.set_num_threads(1)``): beats per second for
  the network over whole DS2 records, and for feature extraction (running template, RR);
- streaming latency: one beat in, hidden state carried, p50/p99 over a DS2 record;
- the DS2 AAMI EC57 table beside published inter-patient results, with record-bootstrap
  95 % intervals (the 22 DS2 records resampled; ``vitalgru.metrics.aami_intervals``).

The dataset is the folder ``vitalgru ingest`` writes (build it first). Timings on a shared
machine depend on its load: the 1-minute load average at start and end is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, environment, write_results

from vitalgru.config import ArrhythmiaTrainConfig, load_config
from vitalgru.data.arrhythmia_dataset import load_beat_dataset
from vitalgru.data.beat_features import beat_features
from vitalgru.metrics.aami import aami_report, report_markdown
from vitalgru.metrics.aami_intervals import interval_cell, record_intervals
from vitalgru.training.arrhythmia import train_arrhythmia
from vitalgru.training.arrhythmia_fit import feature_settings, predict_records
from vitalgru.training.loop import TqdmProgress

# Published fully inter-patient results on DS2 (trained on DS1, MIT-BIH, AAMI classes).
# de Chazal et al. 2004, IEEE TBME 51(7):1196-1206, Table VI: S Se 75.9 / +P 38.5,
# V Se 77.7 / +P 81.9 (F1 computed from those). Mondejar-Guerra et al. 2019, Biomed.
# Signal Process. Control 47:41-48: V F1 0.943. Niu et al. 2020, IEEE Access 8: S F1 0.766.
PUBLISHED = [
    {"work": "de Chazal et al. 2004", "s_se": 0.759, "s_ppv": 0.385, "v_se": 0.777,
     "v_ppv": 0.819},
    {"work": "Mondejar-Guerra et al. 2019", "v_f1": 0.943},
    {"work": "Niu et al. 2020", "s_f1": 0.766},
]  # fmt: skip


def _f1(se: float | None, ppv: float | None) -> float | None:
    if se is None or ppv is None or se + ppv == 0:
        return None
    return 2 * se * ppv / (se + ppv)


def _row(work: str, s: dict[str, Any], v: dict[str, Any]) -> dict[str, Any]:
    """A comparison-table row from S and V statistics (``se``, ``ppv``, ``f1``)."""
    return {
        "work": work,
        **{f"{k}_{m}": d[m] for k, d in (("s", s), ("v", v)) for m in ("se", "ppv", "f1")},
    }


def _peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dataset", default=str(ROOT / "vitalgru-out" / "datasets" / "mitdb"))
    ap.add_argument("--config", default=None, help="training config YAML (default: packaged)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                    help="config override, e.g. --set max_epochs=3")  # fmt: skip
    ap.add_argument("--save-model", default=None, help="write the trained state_dict here")
    ap.add_argument("--name", default="arrhythmia", help="results file stem")
    args = ap.parse_args()
    overrides = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
    cfg = load_config(ArrhythmiaTrainConfig, args.config, overrides, "arrhythmia.yaml")
    env = environment()
    env["torch"] = torch.__version__

    ds = load_beat_dataset(args.dataset)
    rss0 = _peak_rss_mb()
    t0 = time.perf_counter()
    res = train_arrhythmia(ds, cfg, callbacks=[TqdmProgress("train")])
    train_s = time.perf_counter() - t0
    if args.save_model:
        torch.save(res.model.state_dict(), args.save_model)
    model = res.model.eval()

    torch.set_num_threads(1)
    settings = feature_settings(cfg)
    ds2 = ds.split_records("DS2")
    t0 = time.perf_counter()
    recs = ds.records(ds2, settings)
    feat_s = time.perf_counter() - t0
    n_beats = sum(len(r) for r in recs)
    t0 = time.perf_counter()
    probs = predict_records(model, recs)
    infer_s = time.perf_counter() - t0

    # Streaming: one new beat per call, hidden state carried (what a bedside scorer does).
    # With an output delay d, each call also holds the d beats still waiting for their
    # label, and the newest d rows are look-ahead context (see ArrhythmiaGRU.forward).
    rec = max(recs, key=len)
    x = torch.from_numpy(rec.x[:2000])[None]
    delay = int(getattr(model, "output_delay", 0))
    lat = []
    h = None
    with torch.inference_mode():
        for k in range(delay, x.shape[1]):
            t = time.perf_counter()
            _, h = model(x[:, k - delay : k + 1], h, context_beats=delay)
            lat.append((time.perf_counter() - t) * 1e3)
    lat_ms = np.array(lat[10:])  # first calls warm caches
    # Feature update per beat in streaming use: template + RR over the recent beats.
    w = np.asarray(ds.windows[:2000], dtype=np.float32)
    idx = ds.beats["sample_idx"].to_numpy()[:2000]
    t0 = time.perf_counter()
    beat_features(w, idx, ds.fs, settings)
    feat_batch_s = time.perf_counter() - t0

    y = np.concatenate([r.labels for r in recs])
    p = np.concatenate([q.argmax(1) for q in probs])
    rid = np.concatenate([np.full(len(r), r.record_id) for r in recs])
    report = aami_report(y, p, rid)
    report["intervals"] = iv = record_intervals(report["records"])
    c, g = report["classes"], report["ec57"]
    ours = [
        _row("vitalgru ArrhythmiaGRU (this run)", c["S"], c["V"]),
        _row("same run, EC57 gross counting (F or Q called V, Q called S: no false positive)",
             g["sveb"], g["veb"]),
    ]  # fmt: skip
    rows = ours + [
        {**r, "s_f1": r.get("s_f1", _f1(r.get("s_se"), r.get("s_ppv"))),
         "v_f1": r.get("v_f1", _f1(r.get("v_se"), r.get("v_ppv")))}
        for r in PUBLISHED
    ]  # fmt: skip
    env["load_avg_1min_at_end"] = os.getloadavg()[0]
    n_params = sum(q.numel() for q in model.parameters())
    payload = {
        "command": "python benchmarks/arrhythmia.py " + " ".join(sys.argv[1:]),
        "environment": env,
        "config": cfg.model_dump(mode="json"),
        "dataset_config_hash": ds.manifest.get("config_hash"),
        "training": {
            "wall_s": train_s,
            "threads": cfg.num_threads,
            "workers": cfg.workers,
            "networks": len(res.fold_fits) or 1,
            "epochs_run": len(res.history),
            "best_epoch": res.fit.best_epoch + 1,
            "stop_reason": res.fit.stop_reason,
            "peak_rss_mb": _peak_rss_mb(),
            "peak_rss_mb_before_training": rss0,
            "peak_rss_mb_largest_worker": _peak_rss_mb(resource.RUSAGE_CHILDREN),
            "n_parameters": n_params,
            "val_metrics": res.val_metrics,
            "cv_fold_records": res.fold_records,
            "cv_fold_best_epochs": [f.best_epoch + 1 for f in res.fold_fits],
            "rhythm_gate": getattr(model, "rhythm_gate", None),
            "quality_gate": getattr(model, "quality_gate", None),
        },
        "inference_one_thread": {
            "ds2_beats": n_beats,
            "network_beats_per_s": n_beats / infer_s,
            "features_beats_per_s": n_beats / feat_s,
            "features_2000_beats_s": feat_batch_s,
            "streaming_latency_ms_p50": float(np.percentile(lat_ms, 50)),
            "streaming_latency_ms_p99": float(np.percentile(lat_ms, 99)),
            "streaming_calls": int(lat_ms.size),
        },
        "ds2": report,
        "comparison": rows,
    }

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f}"

    md = [
        "# Arrhythmia beat classifier (MIT-BIH, trained on DS1, tested on DS2)",
        "",
        f"Command: `{payload['command']}`  ",
        f"Date {env['date_utc']}; {env['cpu_count']} CPUs shared with other jobs: 1-min load "
        f"average {env['load_avg_1min_at_start']:.1f} at start, "
        f"{env['load_avg_1min_at_end']:.1f} at end (timings are under that contention).",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| training wall time: {payload['training']['networks']} networks, {cfg.workers} "
        f"process(es) x {cfg.num_threads} thread(s) | {train_s / 60:.1f} min |",
        f"| epochs run (all networks) / best of the first | {len(res.history)} / "
        f"{res.fit.best_epoch + 1} |",
        f"| peak RSS: main process / largest worker | {payload['training']['peak_rss_mb']:.0f}"
        f" / {payload['training']['peak_rss_mb_largest_worker']:.0f} MB |",
        f"| parameters | {n_params} |",
        f"| network throughput, 1 thread | "
        f"{payload['inference_one_thread']['network_beats_per_s']:.0f} beats/s |",
        f"| feature extraction, 1 thread | "
        f"{payload['inference_one_thread']['features_beats_per_s']:.0f} beats/s |",
        f"| streaming latency per beat p50 / p99 | "
        f"{payload['inference_one_thread']['streaming_latency_ms_p50']:.2f} / "
        f"{payload['inference_one_thread']['streaming_latency_ms_p99']:.2f} ms |",
        "",
        "## DS2 beside published inter-patient results",
        "",
        "| work | S Se % | S +P % | S F1 % | V Se % | V +P % | V F1 % |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        md.append(
            f"| {r['work']} | {pct(r.get('s_se'))} | {pct(r.get('s_ppv'))} | "
            f"{pct(r.get('s_f1'))} | {pct(r.get('v_se'))} | {pct(r.get('v_ppv'))} | "
            f"{pct(r.get('v_f1'))} |"
        )
    ci = iv["classes"]
    md += [
        "",
        f"This run's F1 with its record-bootstrap {100 * iv['level']:g} % interval "
        f"({iv['n_records']} records resampled, {iv['n_resamples']} resamples, percentile): "
        f"S {interval_cell(c['S']['f1'], ci['S']['f1'], ' %')}, "
        f"V {interval_cell(c['V']['f1'], ci['V']['f1'], ' %')}.",
        "",
        report_markdown(report, "DS2 detail (this run)"),
    ]
    js, mdp = write_results(args.name, payload, "\n".join(md))
    print(f"wrote {js} and {mdp}")


if __name__ == "__main__":
    main()
