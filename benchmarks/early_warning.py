"""Sepsis early-warning benchmark on PhysioNet/CinC Challenge 2019 training set A.

Patient-level stratified 5-fold cross-validation of the GRU-D network, gradient-boosted
trees on engineered features, NEWS2 and qSOFA, all scored with the challenge's normalized
utility (thresholds chosen on training folds only), hourly AUROC/AUPRC, alarms per
patient-day and median lead time; the held-out patients pooled, with the patient-bootstrap
interval of each model's pooled utility (:mod:`early_warning_pooled`); plus reading speed,
training time, peak memory and single-core scoring throughput. Writes
``benchmarks/results/early_warning.{json,md}``.

    python benchmarks/early_warning.py [--mirror DIR] [--limit N] [--folds 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibration_tables import calibration_by_model, calibration_lines
from common import strict_json
from early_warning_pooled import pooled_intervals, pooled_lines

from pipelines.early_warning import cv_settings
from vitalgru.config import EarlyWarningConfig
from vitalgru.data.early_warning import build_cohort, patient_folds
from vitalgru.data.gru_d_inputs import gru_d_arrays
from vitalgru.io.psv_folder import read_psv_folder
from vitalgru.metrics.bootstrap import DEFAULT_RESAMPLES, DEFAULT_SEED
from vitalgru.models.early_warning import SepsisBlend
from vitalgru.models.trees import BoostedTrees
from vitalgru.training.early_warning import BLEND, MODEL_NAMES, CVResult, cross_validate
from vitalgru.training.gru_d import predict_scores

ROOT = Path(__file__).resolve().parents[1]

KEYS = (
    "utility",
    "auroc",
    "auprc",
    "alarms_per_patient_day",
    "median_lead_time_h",
    "septic_detected_fraction",
    "threshold",
)

#: Published reference points (not re-run here).
CITED = [
    "Reyna MA et al. Early Prediction of Sepsis From Clinical Data: the PhysioNet/Computing "
    "in Cardiology Challenge 2019. Crit Care Med 48(2):210-217, 2020. Winning entry: normalized "
    "utility 0.360 on the full hidden test set (hospitals A, B, C); 0.433 on hidden hospital A "
    "(the hospital of training set A).",
    "Morrill J et al. The Signature-based Model for Early Detection of Sepsis from Electronic "
    "Health Records in the Intensive Care Unit. CinC 2019 (winning entry: signature features + "
    "gradient-boosted trees).",
    "Those are hidden-test-set numbers; the ones here are cross-validated on set A, which "
    "the challenge distributed for training: comparable in kind, not identical in test data.",
]


def _mirror(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    env = os.environ.get("VITALGRU_PHYSIONET_MIRROR")
    return Path(env) if env else ROOT.parent / "shared" / "data" / "physionet"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _fmt(mean: float, sd: float, digits: int = 3) -> str:
    if not np.isfinite(mean):
        return "n/a"
    return f"{mean:.{digits}f} ± {sd:.{digits}f}" if np.isfinite(sd) else f"{mean:.{digits}f}"


def minutes_or_none(text: str) -> float | None:
    """``--max-minutes-per-fit``: minutes (> 0), or ``none`` (or 0) for no cap, as
    ``max_minutes_per_fit: null`` in the config."""
    if text.strip().lower() in ("none", "null"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"minutes or none, got {text!r}") from None
    if not np.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"minutes >= 0 or none, got {text!r}")
    return value or None


def settings_record(args: argparse.Namespace, settings: Any) -> dict[str, Any]:
    """The settings a cross-validation ran with, as the results' JSON gives them."""
    return {
        "folds": args.folds,
        "gru": asdict(settings.gru),
        "gbm": asdict(settings.gbm),
        "val_fraction": settings.val_fraction,
        "engineered_inputs": settings.engineered_inputs,
        "blend_gru_weight": settings.blend_gru_weight,
    }


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mirror", default=None, help="PhysioNet mirror root")
    ap.add_argument("--limit", type=int, default=None, help="first N patients only")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--models", default=",".join(MODEL_NAMES))
    d = EarlyWarningConfig()  # defaults: the packaged configuration's
    ap.add_argument("--max-minutes-per-fit", type=minutes_or_none, default=d.max_minutes_per_fit,
                    help="wall-clock minutes per GRU-D fit; none (or 0): no cap")  # fmt: skip
    ap.add_argument("--max-epochs", type=int, default=d.max_epochs)
    ap.add_argument("--threads", type=int, default=1, help="torch threads for training")
    ap.add_argument("--engineered-inputs", action=argparse.BooleanOptionalAction,
                    default=d.engineered_inputs, help="GRU sees tree features")  # fmt: skip
    ap.add_argument("--hidden-size", type=int, default=d.hidden_size)
    ap.add_argument("--dropout", type=float, default=d.dropout)
    ap.add_argument("--lr", type=float, default=d.lr)
    ap.add_argument("--weight-decay", type=float, default=d.weight_decay)
    ap.add_argument("--batch-size", type=int, default=d.batch_size)
    ap.add_argument("--patience", type=int, default=d.patience)
    ap.add_argument("--gbm-max-iter", type=int, default=d.gbm_max_iter)
    ap.add_argument("--gbm-learning-rate", type=float, default=d.gbm_learning_rate)
    ap.add_argument("--gbm-max-leaf-nodes", type=int, default=d.gbm_max_leaf_nodes)
    ap.add_argument("--gbm-min-samples-leaf", type=int, default=d.gbm_min_samples_leaf)
    ap.add_argument("--gbm-l2", type=float, default=d.gbm_l2_regularization)
    ap.add_argument("--gbm-negative-subsample", type=float, default=d.gbm_negative_subsample)
    ap.add_argument("--gbm-max-features", type=float, default=d.gbm_max_features)
    ap.add_argument("--gbm-signatures", action=argparse.BooleanOptionalAction,
                    default=d.gbm_signatures, help="trees see path signatures")  # fmt: skip
    ap.add_argument("--blend-gru-weight", type=float, default=d.blend_gru_weight)
    ap.add_argument("--cache-dir", default=str(ROOT / "benchmarks" / "_work" / "cache"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--name", default="early_warning")
    ap.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES,
                    help="patient-bootstrap resamples of the pooled held-out patients")  # fmt: skip
    ap.add_argument("--bootstrap-seed", type=int, default=DEFAULT_SEED)
    return ap


@dataclass
class CVRun:
    """The cohort read, its folds, the settings and result of the cross-validation."""

    psv: Any
    cohort: Any
    folds: np.ndarray
    settings: Any
    res: CVResult
    read_s: float
    build_s: float
    cv_s: float
    load0: float


def run_cross_validation(args: argparse.Namespace) -> CVRun:
    """Read set A and cross-validate as ``args`` (:func:`build_parser`'s) ask."""
    d = EarlyWarningConfig()

    folder = _mirror(args.mirror) / "challenge-2019" / "training_setA"
    torch.set_flush_denormal(True)
    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    psv = read_psv_folder(folder, limit=args.limit)  # uncached: the real reading cost
    read_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    cohort = build_cohort(folder, cache_dir=args.cache_dir, limit=args.limit)
    build_s = time.perf_counter() - t0
    print(f"read {cohort.n_patients} patients in {read_s:.1f} s (uncached)", flush=True)
    folds = patient_folds(cohort.septic(), args.folds, seed=0)
    # The flow's own translation of a config into training settings, so the benchmark
    # measures exactly what `vitalgru train early-warning` runs.
    cfg = d.model_copy(
        update={
            "models": tuple(args.models.split(",")),
            "engineered_inputs": args.engineered_inputs,
            "max_minutes_per_fit": args.max_minutes_per_fit,
            "max_epochs": args.max_epochs,
            "hidden_size": args.hidden_size,
            "dropout": args.dropout,
            "lr": args.lr,
            "weight_decay": args.weight_decay,
            "batch_size": args.batch_size,
            "patience": args.patience,
            "gbm_max_iter": args.gbm_max_iter,
            "gbm_learning_rate": args.gbm_learning_rate,
            "gbm_max_leaf_nodes": args.gbm_max_leaf_nodes,
            "gbm_min_samples_leaf": args.gbm_min_samples_leaf,
            "gbm_l2_regularization": args.gbm_l2,
            "gbm_negative_subsample": args.gbm_negative_subsample,
            "gbm_max_features": args.gbm_max_features,
            "gbm_signatures": args.gbm_signatures,
            "blend_gru_weight": args.blend_gru_weight,
        }
    )
    settings = cv_settings(EarlyWarningConfig.model_validate(cfg.model_dump()))

    def progress(model: str, fold: int, m: dict[str, float]) -> None:
        print(
            f"fold {fold} {model:6s} utility {m['utility']:.3f} auroc {m['auroc']:.3f} "
            f"auprc {m['auprc']:.3f} ({m['seconds']:.0f} s)",
            flush=True,
        )

    t0 = time.perf_counter()
    res = cross_validate(cohort, folds, settings, on_fold=progress)
    cv_s = time.perf_counter() - t0
    return CVRun(psv, cohort, folds, settings, res, read_s, build_s, cv_s, load0)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run = run_cross_validation(args)
    psv, cohort, settings, res = run.psv, run.cohort, run.settings, run.res
    read_s, build_s, cv_s, load0 = run.read_s, run.build_s, run.cv_s, run.load0
    summary = res.summary()
    # each patient is held out once: the pooled held-out patients, resampled whole
    pooled = pooled_intervals(cohort, res, args.resamples, args.bootstrap_seed)

    throughput: dict[str, float] = {}
    if res.last_gru is not None:
        model, stats, test_p = res.last_gru
        sub = cohort.subset(test_p)
        t0 = time.perf_counter()
        arrays = gru_d_arrays(sub, stats)
        build_inputs_s = time.perf_counter() - t0
        torch.set_num_threads(1)
        t0 = time.perf_counter()
        predict_scores(model, arrays, batch_size=256)
        dt = time.perf_counter() - t0
        throughput = {
            "patient_hours": float(arrays.x.shape[0]),
            "seconds": dt,
            "patient_hours_per_s": arrays.x.shape[0] / dt,
            "input_building_s": build_inputs_s,
            "with_inputs_patient_hours_per_s": arrays.x.shape[0] / (dt + build_inputs_s),
            "threads": 1.0,
            "batch_patients": 256.0,
        }
        # Live use: one hour at a time for 256 patients at once, carrying the state.
        n_live = min(256, sub.n_patients)
        x = torch.from_numpy(arrays.x[: arrays.offsets[n_live]])
        lengths = np.diff(arrays.offsets)[:n_live]
        t_h = int(min(lengths.min(), 24))
        batch = torch.stack([x[arrays.offsets[i] : arrays.offsets[i] + t_h] for i in range(n_live)])
        h = None
        t0 = time.perf_counter()
        with torch.no_grad():
            for t in range(t_h):
                _, h = model(batch[:, t : t + 1], h)
        dt = time.perf_counter() - t0
        throughput["streaming_patient_hours_per_s"] = n_live * t_h / dt
        throughput["streaming_tick_ms_256_patients"] = dt / t_h * 1000.0
        if res.last_gbm is not None:
            # The registered model: the GRU-D and the trees (exported to tensors) blended.
            trees = BoostedTrees.from_sklearn(res.last_gbm)
            blend = SepsisBlend.of(model, trees, settings.blend_gru_weight).eval()
            names = [str(c) for c in res.last_gbm.feature_names_in_]
            t0 = time.perf_counter()
            b_arrays = gru_d_arrays(sub, stats, names)
            b_inputs_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            predict_scores(blend, b_arrays, batch_size=256)
            dt = time.perf_counter() - t0
            throughput["blend_patient_hours_per_s"] = b_arrays.x.shape[0] / dt
            throughput["blend_with_inputs_patient_hours_per_s"] = b_arrays.x.shape[0] / (
                dt + b_inputs_s
            )
            throughput["blend_trees"] = float(trees.n_trees)
            bx = torch.from_numpy(b_arrays.x[: b_arrays.offsets[n_live]])
            batch = torch.stack(
                [bx[b_arrays.offsets[i] : b_arrays.offsets[i] + t_h] for i in range(n_live)]
            )
            h = None
            t0 = time.perf_counter()
            with torch.no_grad():
                for t in range(t_h):
                    _, h = blend(batch[:, t : t + 1], h)
            dt = time.perf_counter() - t0
            throughput["blend_streaming_tick_ms_256_patients"] = dt / t_h * 1000.0

    gru_train_s = float(sum(res.fit_seconds.get("gru_d", [])))
    gbm_train_s = float(sum(res.fit_seconds.get("gbm", [])))
    out = {
        "command": "python benchmarks/early_warning.py " + " ".join(argv or sys.argv[1:]),
        "data": {
            "folder": "challenge-2019/training_setA",
            "n_patients": cohort.n_patients,
            "n_patient_hours": int(len(cohort.frame)),
            "n_septic_patients": int(cohort.septic().sum()),
            "excluded_files": len(psv.attrition),
            "implausible_values": {k: v for k, v in cohort.implausible_counts.items() if v},
        },
        "timing": {
            "read_all_files_s": read_s,
            "build_cohort_cached_s": build_s,
            "cross_validation_s": cv_s,
            "gru_d_fit_s_total": gru_train_s,
            "gbm_fit_s_total": gbm_train_s,
            "peak_rss_mb": _peak_rss_mb(),
            "load_average_1min_end": os.getloadavg()[0],
            "note": f"2-core machine; 1-minute load average {load0:.1f} at the start and "
            f"{os.getloadavg()[0]:.1f} at the end (above 2 means other jobs competed)",
        },
        "throughput": throughput,
        "settings": settings_record(args, settings),
        "per_fold": res.per_fold,
        "summary": summary,
        "pooled": pooled,
        "calibration": calibration_by_model(cohort.labels, res.oof_scores, res.oof_probabilities),
        "gru_histories": res.gru_histories,
        "platform": {"python": platform.python_version(), "torch": torch.__version__},
        "cited": CITED,
    }
    od = Path(args.out)
    od.mkdir(parents=True, exist_ok=True)
    (od / f"{args.name}.json").write_text(strict_json(out, indent=2))
    (od / f"{args.name}.md").write_text(_markdown(out, tuple(res.per_fold)))
    print((od / f"{args.name}.md").read_text())
    return 0


def _markdown(out: dict, models: tuple[str, ...]) -> str:
    lines = [
        "# Sepsis early warning: PhysioNet/CinC Challenge 2019, training set A",
        "",
        f"Command: `{out['command']}`",
        "",
        f"{out['data']['n_patients']} patients, {out['data']['n_patient_hours']} patient-hours, "
        f"{out['data']['n_septic_patients']} septic. Patient-level stratified "
        f"{out['settings']['folds']}-fold cross-validation; every threshold, early-stopping "
        "epoch and normalisation statistic comes from the training folds only.",
        "",
        "## Cross-validation (mean ± sd over folds)",
        "",
        "| model | utility | AUROC | AUPRC | alarms / patient-day | median lead (h) | septic detected |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in models:
        s = out["summary"][m]
        lines.append(
            f"| {m} | {_fmt(s['utility_mean'], s['utility_sd'])} | "
            f"{_fmt(s['auroc_mean'], s['auroc_sd'])} | {_fmt(s['auprc_mean'], s['auprc_sd'])} | "
            f"{_fmt(s['alarms_per_patient_day_mean'], s['alarms_per_patient_day_sd'], 2)} | "
            f"{_fmt(s['median_lead_time_h_mean'], s['median_lead_time_h_sd'], 1)} | "
            f"{_fmt(s['septic_detected_fraction_mean'], s['septic_detected_fraction_sd'], 2)} |"
        )
    lines += pooled_lines(out.get("pooled") or {}, out["summary"])
    lines += ["", "## Per fold", "", "| model | fold | " + " | ".join(KEYS) + " |"]
    lines.append("|---|---|" + "---|" * len(KEYS))
    for m in models:
        for r in out["per_fold"][m]:
            vals = " | ".join(f"{r[k]:.3f}" if np.isfinite(r[k]) else "n/a" for k in KEYS)
            lines.append(f"| {m} | {int(r['fold'])} | {vals} |")
    lines += calibration_lines(out.get("calibration") or {}, BLEND)
    t = out["timing"]
    lines += [
        "",
        "## Cost",
        "",
        f"- Reading all files (uncached): {t['read_all_files_s']:.1f} s",
        f"- Cross-validation wall clock: {t['cross_validation_s'] / 60:.1f} min "
        f"(GRU-D fits {t['gru_d_fit_s_total'] / 60:.1f} min, trees {t['gbm_fit_s_total'] / 60:.1f} min)",
        f"- Peak resident memory: {t['peak_rss_mb']:.0f} MB",
        f"- {t['note']}",
    ]
    if out["throughput"]:
        th = out["throughput"]
        lines += [
            f"- GRU-D scoring, 1 thread, batches of 256 patients: "
            f"{th['patient_hours_per_s']:.0f} patient-hours/s "
            f"({th['with_inputs_patient_hours_per_s']:.0f} including building the inputs "
            "from the cleaned tables)",
            f"- GRU-D live scoring, 1 thread, 256 patients one hour per tick: "
            f"{th['streaming_patient_hours_per_s']:.0f} patient-hours/s "
            f"({th['streaming_tick_ms_256_patients']:.1f} ms per tick)",
        ]
        if "blend_patient_hours_per_s" in th:
            lines += [
                f"- GRU-D + trees blend (the registered model; {th['blend_trees']:.0f} trees "
                f"as tensors), 1 thread: {th['blend_patient_hours_per_s']:.0f} patient-hours/s "
                f"({th['blend_with_inputs_patient_hours_per_s']:.0f} including the inputs); "
                f"live, 256 patients per tick: {th['blend_streaming_tick_ms_256_patients']:.1f} "
                "ms per tick",
            ]
    lines += ["", "## Published references", ""] + [f"- {c}" for c in out["cited"]]
    lines += [
        "",
        "NEWS2 here lacks the consciousness item (ACVPU) and infers supplemental oxygen from a "
        "charted FiO2 > 0.21; qSOFA lacks altered mentation (GCS), so it ranges 0-2.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
