"""The Challenge 2019's own scorer run on vitalgru's out-of-fold predictions.

vitalgru computes the challenge's normalized utility, AUROC and AUPRC with its own code
(:mod:`vitalgru.metrics`). This script checks that code against the scorer that ranked the
Challenge: for every model and cross-validation fold of an early-warning training run
(``vitalgru train early-warning`` or ``vitalgru run``: its ``cv/oof_scores.parquet``,
``cv/per_fold.csv`` and ``dataset/folds.csv``), it writes the fold's patients'
out-of-fold risks as the Challenge wanted predictions (:mod:`vitalgru.io.psv_writer`, the
same writer as ``vitalgru evaluate early-warning --write-predictions``), alarms at that
fold's threshold, links the fold's input files as the labels, runs the official
``evaluate_sepsis_score`` on them and compares its figures with the ones the run reported.

The scorer is not part of vitalgru: give the path of ``evaluate_sepsis_score.py`` from the
Challenge's evaluation repository (github.com/physionetchallenges/evaluation-2019).

    python benchmarks/challenge_scorer.py --scorer PATH/evaluate_sepsis_score.py \\
        [--run vitalgru-out/early_warning] [--mirror DIR]

Writes ``benchmarks/results/challenge_scorer.{json,md}``.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import default_mirror, environment, write_results

from vitalgru.io.psv_writer import write_challenge_predictions

COMPARED = ("utility", "auroc", "auprc")


def load_scorer(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("evaluate_sepsis_score", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "evaluate_sepsis_score"):
        raise SystemExit(f"{path} has no evaluate_sepsis_score: not the Challenge's scorer")
    return module


def as_probability(score: np.ndarray, zero_free: bool = True) -> np.ndarray:
    """Scores in [0, 1] as they are; the point scores (NEWS2 0-20, qSOFA 0-3) through
    ``(s + 1) / (s + 2)``, which keeps their order (AUROC and AUPRC depend on nothing
    else) and never gives 0, or with ``zero_free`` False through ``s / (1 + s)``, which
    gives 0 for a score of 0 (the scorer drops a lowest threshold of exactly 0)."""
    s = np.asarray(score, dtype=np.float64)
    if s.min() >= 0 and s.max() <= 1:
        return s
    return (s + 1.0) / (s + 2.0) if zero_free else s / (1.0 + s)


def official(
    scorer: Any,
    oof: pd.DataFrame,
    column: str,
    patients: list[str],
    thr: float,
    src: Path,
    zero_free: bool = True,
) -> tuple[dict[str, float], float]:
    """The official scorer's figures for one model on one fold's patients, and seconds."""
    rows = oof[oof["patient_id"].isin(set(patients))]
    ids = rows["patient_id"].drop_duplicates().tolist()  # the order of the rows
    counts = rows.groupby("patient_id", sort=False).size().loc[ids].to_numpy()
    offsets = np.r_[0, np.cumsum(counts)]
    score = rows[column].to_numpy(np.float64)
    with tempfile.TemporaryDirectory(prefix="challenge-") as tmp:
        labels, preds = Path(tmp) / "labels", Path(tmp) / "predictions"
        labels.mkdir()
        for pid in ids:
            (labels / f"{pid}.psv").symlink_to(src / f"{pid}.psv")
        write_challenge_predictions(preds, ids, offsets, as_probability(score, zero_free),
                                    (score >= thr).astype(np.int8))  # fmt: skip
        t0 = time.perf_counter()
        with warnings.catch_warnings():  # rounding to 6 decimals can tie a few risks
            warnings.simplefilter("ignore")
            auroc, auprc, _, _, utility = scorer.evaluate_sepsis_score(str(labels), str(preds))
        return {"utility": utility, "auroc": auroc, "auprc": auprc}, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scorer", type=Path, required=True,
                    help="the Challenge's evaluate_sepsis_score.py")  # fmt: skip
    ap.add_argument("--run", type=Path, default=Path("vitalgru-out/early_warning"),
                    help="an early-warning training run's output folder")  # fmt: skip
    ap.add_argument("--mirror", type=Path, default=None)
    args = ap.parse_args()
    env = environment()  # the load and date at the start, not after the work
    scorer = load_scorer(args.scorer)
    src = (args.mirror or default_mirror()) / "challenge-2019" / "training_setA"
    oof = pd.read_parquet(args.run / "cv" / "oof_scores.parquet")
    per_fold = pd.read_csv(args.run / "cv" / "per_fold.csv")
    folds = pd.read_csv(args.run / "dataset" / "folds.csv", dtype={"patient_id": str})
    rows = []
    for _, r in per_fold.iterrows():
        model, fold = str(r["model"]), int(r["fold"])
        patients = folds.loc[folds["fold"] == fold, "patient_id"].tolist()
        got, seconds = official(scorer, oof, f"score_{model}", patients, float(r["threshold"]),
                                src)  # fmt: skip
        rows.append({"model": model, "fold": fold, "patients": len(patients),
                     "threshold": float(r["threshold"]), "seconds": round(seconds, 1),
                     **{f"vitalgru_{k}": float(r[k]) for k in COMPARED},
                     **{f"official_{k}": float(got[k]) for k in COMPARED}})  # fmt: skip
        if oof[f"score_{model}"].max() > 1:  # a point score: the same with zeros written
            zeros, _ = official(scorer, oof, f"score_{model}", patients, float(r["threshold"]),
                                src, zero_free=False)  # fmt: skip
            rows[-1] |= {f"official_with_zeros_{k}": float(zeros[k]) for k in COMPARED}
        print(f"{model} fold {fold}: utility {r['utility']:.6f} / {got['utility']:.6f}",
              flush=True)  # fmt: skip
    table = pd.DataFrame(rows)
    diff = {k: float((table[f"vitalgru_{k}"] - table[f"official_{k}"]).abs().max())
            for k in COMPARED}  # fmt: skip
    means = table.groupby("model", sort=False)[
        [f"{w}_{k}" for k in COMPARED for w in ("vitalgru", "official")]].mean()  # fmt: skip
    payload = {
        "command": "python benchmarks/challenge_scorer.py --scorer PATH/evaluate_sepsis_score.py"
        f" --run {args.run}",
        "environment": env,
        "run": str(args.run),
        "largest_difference": diff,
        "per_fold": rows,
        "fold_means": {m: {c: float(v) for c, v in row.items()} for m, row in means.iterrows()},
    }
    lines = [
        "# The Challenge 2019's scorer on vitalgru's out-of-fold predictions",
        "",
        f"Command: `{payload['command']}`  ",
        f"Date {payload['environment']['date_utc']}; the scorer is the Challenge's "
        "`evaluate_sepsis_score.py` (physionetchallenges/evaluation-2019), not vitalgru's "
        "code. Predictions written as vitalgru.io.psv_writer writes them; "
        "NEWS2 and qSOFA points through (s + 1) / (s + 2), which keeps their order and "
        "never gives 0.",
        "",
        "Largest difference over every model and fold: "
        + ", ".join(f"{k} {v:.2g}" for k, v in diff.items()),
        "",
        "| model | fold | patients | utility (vitalgru) | utility (official) | AUROC (vitalgru)"
        " | AUROC (official) | AUPRC (vitalgru) | AUPRC (official) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['fold']} | {r['patients']} | {r['vitalgru_utility']:.6f} | "
            f"{r['official_utility']:.6f} | {r['vitalgru_auroc']:.6f} | "
            f"{r['official_auroc']:.6f} | {r['vitalgru_auprc']:.6f} | {r['official_auprc']:.6f} |"
        )
    lines += ["", "Means over the folds:", "",
              "| model | utility (vitalgru) | utility (official) | AUROC (vitalgru) | AUROC (official) |",
              "|---|---:|---:|---:|---:|"]  # fmt: skip
    for m, row in means.iterrows():
        lines.append(f"| {m} | {row['vitalgru_utility']:.4f} | {row['official_utility']:.4f} | "
                     f"{row['vitalgru_auroc']:.4f} | {row['official_auroc']:.4f} |")  # fmt: skip
    points = [r for r in rows if "official_with_zeros_auroc" in r]
    if points:
        lines += ["", "The point scores written through s / (1 + s) instead, so that a score "
                  "of 0 is a probability of exactly 0: the scorer drops its lowest threshold "
                  "when it is 0, so the last stretch of its ROC and PR curves is left out "
                  "(utility, from the labels, is unchanged):", "",
                  "| model | fold | share of hours at 0 | AUROC (vitalgru) | AUROC (official, "
                  "zeros written) | AUPRC (vitalgru) | AUPRC (official, zeros written) |",
                  "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
        for r in points:
            pats = folds.loc[folds["fold"] == r["fold"], "patient_id"]
            col = oof.loc[oof["patient_id"].isin(set(pats)), f"score_{r['model']}"]
            lines.append(f"| {r['model']} | {r['fold']} | {(col == 0).mean():.3f} | "
                         f"{r['vitalgru_auroc']:.6f} | {r['official_with_zeros_auroc']:.6f} | "
                         f"{r['vitalgru_auprc']:.6f} | {r['official_with_zeros_auprc']:.6f} |")  # fmt: skip
    js, md = write_results("challenge_scorer", payload, "\n".join(lines))
    print(f"wrote {js} and {md}")


if __name__ == "__main__":
    main()
