"""The cross-validation's held-out patients pooled, with patient-bootstrap intervals.

Each patient of set A is held out by exactly one fold, and scored there by the models of
that fold at that fold's threshold (chosen on its training folds). Pooling the held-out
patients gives one normalized utility over all of set A, a ratio of sums over patients;
resampling whole patients (:func:`vitalgru.metrics.early_warning_intervals.bootstrap_early_warning`)
gives its interval, next to the fold mean ± SD. AUROC and AUPRC pooled this way rank
hours scored by each fold's own fit together, so they are given for reference.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from vitalgru.metrics.early_warning_intervals import bootstrap_early_warning
from vitalgru.training.early_warning import CVResult


def pooled_alarms(
    offsets: np.ndarray, folds: np.ndarray, scores: np.ndarray, per_fold: list[dict[str, Any]]
) -> tuple[np.ndarray, np.ndarray]:
    """Every hour's held-out alarm (``score >= its fold's threshold``) and that threshold."""
    thr_of_fold = {int(r["fold"]): float(r["threshold"]) for r in per_fold}
    patient_thr = np.array([thr_of_fold[int(k)] for k in folds], dtype=np.float64)
    thr = np.repeat(patient_thr, np.diff(offsets))
    return np.asarray(scores, dtype=np.float64) >= thr, thr


def pooled_intervals(
    cohort: Any, res: CVResult, n_resamples: int, seed: int, ranking: bool = True
) -> dict[str, dict[str, Any]]:
    """Per model: the pooled held-out utility (and AUROC, AUPRC) with its patient-bootstrap
    interval (:func:`~vitalgru.metrics.early_warning_intervals.bootstrap_early_warning`),
    the folds' thresholds, and the seconds it took."""
    out: dict[str, dict[str, Any]] = {}
    for model, rows in res.per_fold.items():
        scores = res.oof_scores[model]
        if np.isnan(scores).any():
            raise ValueError(f"{model}: some patient was never held out")
        pred, _ = pooled_alarms(cohort.offsets, res.folds, scores, rows)
        t0 = time.perf_counter()
        iv = bootstrap_early_warning(
            cohort.labels, scores, pred, cohort.offsets, n_resamples=n_resamples, seed=seed,
            ranking=ranking,
        )  # fmt: skip
        iv["seconds"] = time.perf_counter() - t0
        iv["n_folds"] = len(rows)
        iv["fold_thresholds"] = [float(r["threshold"]) for r in rows]
        iv["threshold_note"] = (
            "each fold's threshold, chosen on its training folds, held fixed: the interval "
            "is conditional on those thresholds (and on the fitted models)"
        )
        out[model] = iv
    return out


def _ends(iv: dict[str, Any], digits: int = 3) -> str:
    if iv.get("estimate") is None:
        return "n/a"
    text = f"{iv['estimate']:.{digits}f}"
    if iv.get("low") is None:
        return text + " (no interval)"
    return f"{text} [{iv['low']:.{digits}f}, {iv['high']:.{digits}f}]"


def pooled_lines(
    pooled: dict[str, dict[str, Any]], summary: dict[str, dict[str, float]]
) -> list[str]:
    """The markdown section: fold mean ± SD next to the pooled value and its interval."""
    if not pooled:
        return []
    first = next(iter(pooled.values()))
    k = first.get("n_folds")
    share = f" (1/{k} of the patients each)" if k else ""
    lines = [
        "",
        "## Pooled held-out patients, patient-bootstrap 95 % intervals",
        "",
        f"Each patient is held out by one fold and scored at that fold's threshold; the "
        f"{first['n_patients']} held-out patients pooled give one utility (a ratio of sums "
        f"over patients), and {first['n_resamples']} resamples of whole patients (seed "
        f"{first['seed']}) its 95 % percentile interval: how far it could move on another "
        "set of patients from the same hospital, the models and thresholds held fixed. The "
        f"fold SD measures the spread between folds{share}, a different quantity. Pooled "
        f"AUROC/AUPRC rank hours scored by the {k or ''} folds' fits together (for reference).",
        "",
        "| model | utility, fold mean ± sd | utility, pooled (95 % interval) | AUROC, pooled | AUPRC, pooled |",
        "|---|---|---|---|---|",
    ]  # fmt: skip
    for model, iv in pooled.items():
        s = summary.get(model, {})
        mean, sd = s.get("utility_mean", float("nan")), s.get("utility_sd", float("nan"))
        fold = f"{mean:.3f} ± {sd:.3f}" if np.isfinite(mean) and np.isfinite(sd) else "n/a"
        lines.append(
            f"| {model} | {fold} | {_ends(iv['utility'])} | {_ends(iv.get('auroc') or {})} | "
            f"{_ends(iv.get('auprc') or {})} |"
        )
    return lines
