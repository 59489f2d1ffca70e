"""The registered early-warning model's held-out scores, as one compact file: every hour of
every patient of the cross-validation, scored by the fold that held the patient out, with
that fold's alarm threshold (chosen on its training folds).

A training run logs it so that the champion gate can put a new version's utility gain
beside a paired patient-bootstrap interval (:mod:`vitalgru.tracking.gate_paired`): two
versions cross-validated on the same patients, hours and labels are compared patient by
patient. Columns (:data:`HELDOUT_COLUMNS`): ``patient_id`` (str), ``hour`` (int16),
``sepsis_label`` (int8), ``fold`` (int8), ``score`` (float32: a risk in [0, 1]) and
``threshold`` (float64, constant within a fold); zstd parquet. Set A's 687,218 hours
take about 3.3 MB, nearly all of it the scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vitalgru.claims import replacing
from vitalgru.metrics.early_warning_intervals import bootstrap_early_warning

__all__ = ["HELDOUT_COLUMNS", "HeldOutAlarms", "heldout_scores_frame", "pooled_utility_interval",
           "read_heldout_alarms",
           "write_heldout_scores"]  # fmt: skip

#: The file's columns, in order.
HELDOUT_COLUMNS: tuple[str, ...] = ("patient_id", "hour", "sepsis_label", "fold", "score",
                                    "threshold")  # fmt: skip


def heldout_scores_frame(
    patient_ids: Any,
    offsets: Any,
    hours: Any,
    labels: Any,
    folds: Any,
    scores: Any,
    fold_thresholds: dict[int, float],
) -> pd.DataFrame:
    """The held-out scores of a cross-validation as the file holds them.

    Parameters
    ----------
    patient_ids : array-like of str, shape (n_patients,)
    offsets : array-like of int, shape (n_patients + 1,)
        Where each patient's hours begin, and the end.
    hours : array-like of int, shape (n_hours,)
        ICU hour of each row (the cohort's ``hour`` column).
    labels : array-like of 0/1, shape (n_hours,)
    folds : array-like of int, shape (n_patients,)
        The fold that held each patient out.
    scores : array-like of float, shape (n_hours,)
        Each hour's risk from its patient's fold.
    fold_thresholds : dict of int to float
        Each fold's alarm threshold.

    Raises
    ------
    ValueError
        Arrays that do not fit together, a score that is not finite (a patient never held
        out), or a fold without a threshold.
    """
    off = np.asarray(offsets, dtype=np.int64)
    ids = np.asarray(patient_ids).astype(str)
    f = np.asarray(folds, dtype=np.int64)
    n_hours = int(off[-1]) if off.size else 0
    bad = off.size != ids.size + 1 or f.shape != ids.shape
    if bad or off[0] != 0 or np.any(np.diff(off) < 0):
        raise ValueError(f"{ids.size} patients need {ids.size + 1} increasing offsets from 0 and "
                         f"{ids.size} folds, got {off.size} and {f.size}")  # fmt: skip
    s = np.asarray(scores, dtype=np.float64)
    cols = {"hour": np.asarray(hours), "sepsis_label": np.asarray(labels), "score": s}
    wrong = {k: v.shape for k, v in cols.items() if v.shape != (n_hours,)}
    if wrong:
        raise ValueError(f"{n_hours} hours expected (offsets[-1]), got shapes {wrong}")
    if not np.isfinite(s).all():
        raise ValueError(f"{int((~np.isfinite(s)).sum())} hours have no held-out score")
    unknown = sorted(set(np.unique(f).tolist()) - set(fold_thresholds))
    if unknown:
        raise ValueError(f"folds {unknown} have no threshold")
    n = np.diff(off)
    thr = np.array([float(fold_thresholds[int(k)]) for k in f], dtype=np.float64)
    return pd.DataFrame({
        "patient_id": np.repeat(ids, n),
        "hour": cols["hour"].astype(np.int16),
        "sepsis_label": cols["sepsis_label"].astype(np.int8),
        "fold": np.repeat(f, n).astype(np.int8),
        "score": s.astype(np.float32),
        "threshold": np.repeat(thr, n),
    })  # fmt: skip


def write_heldout_scores(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write :func:`heldout_scores_frame`'s frame, whole or not at all (zstd parquet)."""
    p = Path(path)
    with replacing(p) as tmp:
        frame.loc[:, list(HELDOUT_COLUMNS)].to_parquet(tmp, index=False, compression="zstd")
    return p


@dataclass(frozen=True)
class HeldOutAlarms:
    """A held-out scores file read back, patients in id order and hours in order.

    ``patient_ids`` (n_patients,), ``offsets`` (n_patients + 1,), ``hours``, ``labels``
    (0/1) and ``alarms`` (bool: the score at or above its fold's threshold, both as
    float32), (n_hours,).
    """

    patient_ids: np.ndarray
    offsets: np.ndarray
    hours: np.ndarray
    labels: np.ndarray
    alarms: np.ndarray


def read_heldout_alarms(path: str | Path) -> HeldOutAlarms:
    """Each hour's held-out alarm (``score >= threshold``) from a file of
    :func:`write_heldout_scores`.

    Raises
    ------
    ValueError
        Not such a file: not parquet, a column missing, no rows, missing values, labels
        other than 0/1, or an hour of a patient twice.
    """
    frame = pd.read_parquet(path)
    missing = [c for c in HELDOUT_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{Path(path).name} has no column {missing}")
    if frame.empty or frame[list(HELDOUT_COLUMNS)].isna().any().any():
        raise ValueError(f"{Path(path).name} has no rows or missing values")
    ids = frame["patient_id"].astype(str).to_numpy()
    hours = frame["hour"].to_numpy(dtype=np.int64)
    codes, uniq = pd.factorize(ids, sort=True)
    order = np.lexsort((hours, codes))
    codes, hours = codes[order], hours[order]
    if np.any((np.diff(codes) == 0) & (np.diff(hours) == 0)):
        raise ValueError(f"{Path(path).name} has an hour of a patient twice")
    labels = frame["sepsis_label"].to_numpy(dtype=np.int64)[order]
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"{Path(path).name} has labels other than 0 and 1")
    # compared as the scores are kept, in float32: rounding is monotone, so every hour the
    # cross-validation alarmed (score >= threshold in float64) alarms here too; a float32
    # 0.7 read against a float64 0.7 did not. (On set A no hour of the 687,218 differs.)
    score = frame["score"].to_numpy(dtype=np.float32)[order]
    alarms = score >= frame["threshold"].to_numpy(dtype=np.float64)[order].astype(np.float32)
    offsets = np.r_[0, np.cumsum(np.bincount(codes, minlength=len(uniq)))]
    return HeldOutAlarms(np.asarray(uniq, dtype=str), offsets.astype(np.int64), hours,
                         labels.astype(np.int8), alarms)  # fmt: skip


def pooled_utility_interval(path: str | Path, **bootstrap: Any) -> dict[str, Any]:
    """The held-out patients of a file of :func:`write_heldout_scores` pooled (each alarmed
    at its fold's threshold, as the gate reads them): their utility and its patient-bootstrap
    interval (:func:`vitalgru.metrics.early_warning_intervals.bootstrap_early_warning`, the
    utility alone; ``bootstrap``: its ``n_resamples``, ``seed``, ``level``)."""
    back = read_heldout_alarms(path)
    return bootstrap_early_warning(back.labels, back.alarms.astype(np.float64), back.alarms,
                                   back.offsets, ranking=False, **bootstrap)  # fmt: skip
