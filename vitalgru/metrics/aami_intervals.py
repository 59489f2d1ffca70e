"""Record-bootstrap intervals for an AAMI EC57 report: how far its figures could move had
other patients been tested.

Each MIT-BIH record is one patient, and a model that misreads one patient's morphology
misreads hundreds of their beats: per-beat (Wilson) intervals, which treat every beat as an
independent trial, are far too narrow for a claim about new patients. Here whole records are
resampled with replacement (:mod:`vitalgru.metrics.bootstrap`) and every figure is
recomputed from the resampled sum of the records' confusion matrices; the interval is the
percentile interval of those replicates. On DS2 (22 records) S F1 rests on a few records
that carry most of its S beats, and its interval is wide.

Every figure of :func:`~vitalgru.metrics.aami.metrics_from_confusion` reported with an
interval here (Se, +P, F1, Sp per class; accuracy; EC57's VEB and SVEB gross Se, +P, F1 and
VEB FPR) is a ratio of sums of the records' counts, so one matrix product per resample gives
them all. A resample without a beat of the class leaves a measure undefined; it is left out,
and no interval is given where most resamples are (``percentile_interval``'s rule).

Class order is N, S, V, F, Q (``vitalgru.types.AAMI_CLASSES``), rows true, columns called.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from vitalgru.metrics.bootstrap import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    bootstrap_ratio,
    cluster_counts,
    percentile_interval,
)
from vitalgru.types import AAMI_CLASSES

__all__ = [
    "INTERVAL_METHOD",
    "interval_cell",
    "interval_lines",
    "leave_one_record_out",
    "record_intervals",
]

#: The ``method`` a report's ``intervals`` names.
INTERVAL_METHOD = "record bootstrap (whole records resampled with replacement), percentile"

_NAMES: tuple[str, ...] = tuple(str(c) for c in AAMI_CLASSES)
_CLASS_STATS: tuple[str, ...] = ("se", "ppv", "f1", "spec")
_EC57: dict[str, tuple[str, ...]] = {"veb": ("se", "ppv", "f1", "fpr"), "sveb": ("se", "ppv", "f1")}


def _terms(cms: np.ndarray) -> tuple[list[tuple[str, ...]], np.ndarray, np.ndarray]:
    """Every reported ratio's numerator and denominator, per record: ``(keys, num, den)``
    with ``num`` and ``den`` of shape ``(n_records, n_ratios)``; keys ``("accuracy",)``,
    ``("classes", c, stat)`` or ``("ec57", group, stat)``."""
    diag = np.diagonal(cms, axis1=1, axis2=2)  # (r, 5) true positives
    rows, cols = cms.sum(axis=2), cms.sum(axis=1)
    total = cms.sum(axis=(1, 2))[:, None]
    fn, fp = rows - diag, cols - diag
    tn = total - diag - fn - fp
    keys: list[tuple[str, ...]] = [("accuracy",)]
    num, den = [diag.sum(axis=1)], [total[:, 0]]
    per_class = {"se": (diag, rows), "ppv": (diag, cols), "f1": (2 * diag, 2 * diag + fp + fn),
                 "spec": (tn, tn + fp)}  # fmt: skip
    for k, c in enumerate(_NAMES):
        for stat in _CLASS_STATS:
            a, b = per_class[stat]
            keys.append(("classes", c, stat))
            num.append(a[:, k])
            den.append(b[:, k])
    # EC57 gross counting (aami.ec57_gross): F or Q called V, Q called S, no false positive
    n_, s_, v_, f_ = 0, 1, 2, 3
    for group, c, fp_c in (("veb", v_, cms[:, n_, v_] + cms[:, s_, v_]),
                           ("sveb", s_, cms[:, n_, s_] + cms[:, v_, s_] + cms[:, f_, s_])):  # fmt: skip
        tp, fn_c = diag[:, c], fn[:, c]
        gross = {
            "se": (tp, tp + fn_c),
            "ppv": (tp, tp + fp_c),
            "f1": (2 * tp, 2 * tp + fp_c + fn_c),
        }
        if group == "veb":
            not_v = np.delete(np.delete(cms, v_, axis=1), v_, axis=2).sum(axis=(1, 2))
            gross["fpr"] = (fp_c, fp_c + not_v)
        for stat in _EC57[group]:
            keys.append(("ec57", group, stat))
            num.append(gross[stat][0])
            den.append(gross[stat][1])
    return keys, np.stack(num, axis=1), np.stack(den, axis=1)


def _matrices(records: Mapping[str, Mapping[str, Any]]) -> np.ndarray:
    """The records' confusion matrices, ``(n_records, 5, 5)`` int64."""
    k = len(_NAMES)
    cms = np.asarray([r["confusion_matrix"] for r in records.values()], dtype=np.int64).reshape(
        -1, k, k
    )
    if (cms < 0).any():
        raise ValueError("a record's confusion matrix holds a negative count")
    return cms


def _empty() -> dict[str, Any]:
    return {
        "accuracy": None,
        "classes": {c: dict.fromkeys(_CLASS_STATS) for c in _NAMES},
        "ec57": {g: dict.fromkeys(stats) for g, stats in _EC57.items()},
    }


def record_intervals(
    records: Mapping[str, Mapping[str, Any]],
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    level: float = 0.95,
) -> dict[str, Any]:
    """Record-bootstrap percentile intervals of an AAMI report's figures.

    Parameters
    ----------
    records : mapping
        ``{record: {"confusion_matrix": 5x5 counts, ...}}``: what
        :func:`~vitalgru.metrics.aami.aami_report` writes under ``"records"``.
    n_resamples : int
        Bootstrap resamples (each draws ``n_records`` records with replacement).
    seed : int
        The same seed gives the same intervals.
    level : float
        Coverage, in (0, 1).

    Returns
    -------
    dict
        ``{"method", "level", "n_records", "n_resamples", "seed", "accuracy": [low, high],
        "classes": {"N": {"se", "ppv", "f1", "spec"}, ...}, "ec57": {"veb": {"se", "ppv",
        "f1", "fpr"}, "sveb": {"se", "ppv", "f1"}}}``, each interval a ``[low, high]``
        fraction or None (undefined in most resamples). With fewer than two records every
        interval is None and ``note`` says why: resampling one record gives that record
        every time, an interval of width zero that says nothing about other patients.

    Raises
    ------
    ValueError
        A matrix that is not 5x5 or holds a negative count; ``n_resamples`` under 1.
    """
    cms = _matrices(records)
    n = int(cms.shape[0])
    out: dict[str, Any] = {
        "method": INTERVAL_METHOD,
        "level": float(level),
        "n_records": n,
        "n_resamples": int(n_resamples),
        "seed": int(seed),
        **_empty(),
    }
    if n < 2:
        out["note"] = f"{n} record{'' if n == 1 else 's'}; a record bootstrap needs at least two"
        return out
    keys, num, den = _terms(cms)
    replicates = bootstrap_ratio(cluster_counts(n, n_resamples, seed), num, den)
    for j, key in enumerate(keys):
        ci = percentile_interval(replicates[:, j], level)
        value = None if ci is None else [ci[0], ci[1]]
        if key[0] == "accuracy":
            out["accuracy"] = value
        else:
            out[key[0]][key[1]][key[2]] = value
    return out


def leave_one_record_out(
    records: Mapping[str, Mapping[str, Any]], classes: tuple[str, ...] = ("S", "V")
) -> dict[str, dict[str, dict[str, float | int | None]]]:
    """How much of each class's figures each record carries.

    Returns
    -------
    dict
        ``{record: {class: {"n", "tp", "f1", "f1_without"}}}``: the record's reference
        beats of the class, those called right, the record's own F1 and the pooled F1 of
        all the other records (None where undefined).
    """
    cms = _matrices(records)
    keys, num, den = _terms(cms)
    col = {key: j for j, key in enumerate(keys)}
    n_sum, d_sum = num.sum(axis=0), den.sum(axis=0)

    def ratio(a: float, b: float) -> float | None:
        return float(a) / float(b) if b > 0 else None

    out: dict[str, dict[str, dict[str, float | int | None]]] = {}
    for i, rid in enumerate(records):
        out[rid] = {}
        for c in classes:
            k, j = _NAMES.index(c), col[("classes", c, "f1")]
            out[rid][c] = {
                "n": int(cms[i, k].sum()),
                "tp": int(cms[i, k, k]),
                "f1": ratio(num[i, j], den[i, j]),
                "f1_without": ratio(n_sum[j] - num[i, j], d_sum[j] - den[i, j]),
            }
    return out


def interval_cell(value: float | None, interval: Any = None, unit: str = "") -> str:
    """A percentage to one place with its interval, each followed by ``unit``:
    ``66.5 (11.2-89.0)``, or with ``unit=" %"`` ``66.5 % (11.2-89.0 %)``; ``-`` where the
    value is undefined (with ``unit``), the value alone where there is no interval."""
    if value is None or not np.isfinite(value):
        return f"-{unit}"
    text = f"{100 * value:.1f}{unit}"
    if interval is None:
        return text
    return f"{text} ({100 * interval[0]:.1f}-{100 * interval[1]:.1f}{unit})"


def interval_lines(report: Mapping[str, Any]) -> list[str]:
    """Markdown lines (a blank line first) saying how a report's intervals were made, or
    that there are none and why; none for a report without ``intervals``."""
    iv = report.get("intervals")
    if not iv:
        return []
    if iv.get("note"):
        return ["", f"No record-bootstrap interval ({iv['note']})."]
    return [
        "",
        f"In brackets: {100 * iv['level']:g} % intervals from a record bootstrap ("
        f"{iv['n_records']} records resampled with replacement, {iv['n_resamples']} resamples, "
        f"seed {iv['seed']}, percentile method): how far a figure could move on another set "
        "of patients. Beats of one record are not independent, so the interval is that of "
        "the records, not of the beats. A figure without one is undefined in most resamples "
        "(no beat of the class drawn).",
    ]
