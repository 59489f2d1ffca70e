"""Patient-bootstrap intervals of the pooled cross-validated utility on set A, without
re-writing the main early-warning benchmark's results.

Runs the cross-validation of ``benchmarks/early_warning.py`` (same options, same folds,
same settings: it is deterministic), pools each fold's held-out patients, and writes the
patient-bootstrap 95 % interval of each model's pooled normalized utility (and pooled
AUROC, AUPRC) next to the fold mean ± SD, to ``benchmarks/results/early_warning_intervals.
{json,md}`` only. It checks that its per-fold utilities equal those of the saved
benchmark (``--reference``) and reports every difference.

    python benchmarks/early_warning_intervals.py --max-minutes-per-fit 15 [--oof FILE.npz]
    python benchmarks/early_warning_intervals.py --from-oof FILE.npz   # intervals only
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import strict_json
from early_warning import build_parser, run_cross_validation, settings_record
from early_warning_pooled import pooled_intervals, pooled_lines

from vitalgru.training.early_warning import CVResult

ROOT = Path(__file__).resolve().parents[1]


def fold_check(per_fold: dict[str, list[dict[str, Any]]], reference: dict[str, Any]) -> dict:
    """Per model and fold, this run's utility and threshold against the saved benchmark's:
    ``{"equal": bool, "rows": [...]}`` (exact equality; differences listed)."""
    rows, equal = [], True
    saved = reference.get("per_fold") or {}
    for model, runs in per_fold.items():
        for r in runs:
            k = int(r["fold"])
            ref = next((x for x in saved.get(model, []) if int(x["fold"]) == k), None)
            row = {"model": model, "fold": k, "utility": r["utility"],
                   "threshold": r["threshold"]}  # fmt: skip
            if ref is None:
                row["saved_utility"] = None
                equal = False
            else:
                row["saved_utility"] = ref["utility"]
                row["saved_threshold"] = ref["threshold"]
                row["utility_difference"] = float(r["utility"]) - float(ref["utility"])
                row["threshold_difference"] = float(r["threshold"]) - float(ref["threshold"])
                equal &= row["utility_difference"] == 0.0 and row["threshold_difference"] == 0.0
            rows.append(row)
    return {"equal": bool(equal), "rows": rows}


def save_oof(path: Path, cohort: Any, res: CVResult) -> None:
    """What the intervals need, so they can be made again without the 30-minute CV."""
    arrays = {f"oof__{m}": v for m, v in res.oof_scores.items()}
    np.savez_compressed(
        path, labels=cohort.labels, offsets=cohort.offsets, folds=res.folds,
        per_fold=np.array(strict_json(res.per_fold)), **arrays,
    )  # fmt: skip


class _Saved:
    """A cohort and CV result read back from :func:`save_oof`'s file."""

    def __init__(self, path: Path) -> None:
        z = np.load(path)
        self.labels, self.offsets = z["labels"], z["offsets"]
        self.n_patients = self.offsets.size - 1
        per_fold = json.loads(str(z["per_fold"]))
        oof = {k[len("oof__") :]: z[k] for k in z.files if k.startswith("oof__")}
        self.res = CVResult(folds=z["folds"], per_fold=per_fold, oof_scores=oof, fit_seconds={})


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    ap.description = __doc__.splitlines()[0]
    ap.set_defaults(name="early_warning_intervals")
    ap.add_argument("--reference", default=str(ROOT / "benchmarks/results/early_warning.json"),
                    help="the saved benchmark whose per-fold utilities must be met")  # fmt: skip
    ap.add_argument("--oof", default=None, help="also save the held-out scores here (.npz)")
    ap.add_argument("--from-oof", default=None, help="skip the CV: read --oof's file")
    args = ap.parse_args(argv)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    if args.from_oof:
        cohort: Any = _Saved(Path(args.from_oof))
        res, settings = cohort.res, None
    else:
        run = run_cross_validation(args)
        cohort, res, settings = run.cohort, run.res, run.settings
        if args.oof:
            save_oof(Path(args.oof), cohort, res)
    cv_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pooled = pooled_intervals(cohort, res, args.resamples, args.bootstrap_seed)
    boot_s = time.perf_counter() - t0
    summary = res.summary()
    reference = json.loads(Path(args.reference).read_text())
    check = fold_check(res.per_fold, reference)
    out = {
        "command": "python benchmarks/early_warning_intervals.py " + " ".join(argv or sys.argv[1:]),
        "data": {
            "folder": "challenge-2019/training_setA",
            "n_patients": int(cohort.n_patients),
            "n_patient_hours": int(cohort.labels.size),
        },
        "settings": None if settings is None else settings_record(args, settings),
        "pooled": pooled,
        "fold_summary": {
            m: {k: s[k] for k in ("utility_mean", "utility_sd", "auroc_mean", "auprc_mean")}
            for m, s in summary.items()
        },
        "per_fold_check": check,
        "timing": {
            "cross_validation_s": None if args.from_oof else cv_s,
            "bootstrap_s": boot_s,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "load_average_1min_start": load0,
            "load_average_1min_end": os.getloadavg()[0],
        },
    }
    od = Path(args.out)
    od.mkdir(parents=True, exist_ok=True)
    (od / f"{args.name}.json").write_text(strict_json(out, indent=2) + "\n")
    (od / f"{args.name}.md").write_text(_markdown(out, summary))
    print((od / f"{args.name}.md").read_text())
    return 0


def _markdown(out: dict[str, Any], summary: dict[str, dict[str, float]]) -> str:
    d, t, check = out["data"], out["timing"], out["per_fold_check"]
    lines = [
        "# Sepsis early warning: patient-bootstrap intervals, training set A",
        "",
        f"Command: `{out['command']}`",
        "",
        f"{d['n_patients']} patients, {d['n_patient_hours']} patient-hours; the 5-fold "
        "cross-validation of `benchmarks/early_warning.py` (results in `early_warning.md`).",
    ]
    lines += pooled_lines(out["pooled"], summary)
    lines += [
        "",
        "## Same cross-validation as the saved benchmark?",
        "",
        "Per-fold utilities and thresholds equal to those of `early_warning.json`: "
        + ("**yes, all exactly**." if check["equal"] else "**no**; the differences:"),
        "",
        "| model | fold | utility | saved | difference | threshold difference |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in check["rows"]:
        saved = r.get("saved_utility")
        lines.append(
            f"| {r['model']} | {r['fold']} | {r['utility']:.6f} | "
            + ("n/a | n/a | n/a |" if saved is None else
               f"{saved:.6f} | {r['utility_difference']:.2e} | {r['threshold_difference']:.2e} |")
        )  # fmt: skip
    cv = t["cross_validation_s"]
    lines += [
        "",
        "## Cost",
        "",
        f"- Cross-validation: {cv / 60:.1f} min"
        if cv is not None
        else "- Cross-validation: read back from a saved file",
        f"- Bootstrap, all models: {t['bootstrap_s']:.1f} s "
        + ", ".join(f"({m} {iv['seconds']:.1f} s)" for m, iv in out["pooled"].items()),
        f"- Peak resident memory: {t['peak_rss_mb']:.0f} MB",
        f"- 1-minute load average {t['load_average_1min_start']:.1f} at the start and "
        f"{t['load_average_1min_end']:.1f} at the end (2-core machine)",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
