"""How far the gate's comparison is from noise: the paired bootstrap of a new version's
figure minus the champion's, from what both runs logged about each record or patient.

The gate's rule is unchanged (no worse on every gated measure, better on one); this says
whether a gain is more than another set of patients would move it. On MIT-BIH DS2 (22
records, S beats in a few of them) a separate 95 % interval of the shipped model's S F1
ran from about 11 % to 89 %, so a gain of a few tenths of a point is no evidence; both
versions are scored on the same records, so their difference is resampled record by record
(:func:`vitalgru.metrics.paired.paired_f1_difference`), which is far tighter. The
early-warning model's cross-validated utility is compared the same way, patient by patient
(:func:`paired_utility_comparison`): on set A the blend's pooled utility interval is about
0.04 wide, its paired difference from the trees about 0.012 wide.

What it was measured on is kept on the new version as the ``vitalgru.gate_paired`` tag
(JSON): the champion version it was compared with, the run artifact, the records (or
patients), the resamples, seed and level, and for each gate key its difference, interval
and the share of resamples where the new version was better; or, where it could not be
measured (a run without the artifact, records or patients that differ), why.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from vitalgru.data.heldout_scores import HeldOutAlarms, read_heldout_alarms
from vitalgru.metrics.bootstrap import DEFAULT_RESAMPLES, DEFAULT_SEED
from vitalgru.metrics.paired import PairedDifference, paired_f1_difference
from vitalgru.metrics.paired_utility import paired_utility_difference
from vitalgru.types import AAMI_CLASSES

__all__ = ["PAIRED_TAG", "UTILITY_KEY", "paired_brief", "paired_comparison", "paired_from_tags", "paired_text",
           "paired_utility_comparison"]  # fmt: skip

#: Model-version tag holding the gate's paired comparison (JSON; see the module's text).
PAIRED_TAG = "vitalgru.gate_paired"

#: Gate keys that are one class's F1 (``test_s_f1``, ``s_f1``): the class letter.
_CLASS_F1_KEY = re.compile(r"(?:^|_)([a-z])_f1$")

#: The early-warning gate key compared patient by patient (the challenge's normalized utility).
UTILITY_KEY = "utility"

#: What a paired comparison could not be made without, said as the reason it was not.
_UNREADABLE = (MlflowException, requests.RequestException, OSError, ValueError, KeyError,
               TypeError)  # fmt: skip


class _NotPaired(Exception):
    """Why no paired comparison could be made (said in one line; the gate goes on)."""


def _class_index(key: str) -> int | None:
    m = _CLASS_F1_KEY.search(key)
    names = [str(c).lower() for c in AAMI_CLASSES]
    return names.index(m.group(1)) if m and m.group(1) in names else None


_T = TypeVar("_T")


def _read_artifact(
    client: MlflowClient, mv: Any, artifact: str, who: str, read: Callable[[Path], _T]
) -> _T:
    """``read`` of ``artifact`` downloaded from ``mv``'s run; :class:`_NotPaired` saying
    why where there is no run, no such artifact or one that ``read`` cannot read."""
    if not mv.run_id:
        raise _NotPaired(f"{who} has no run")
    with tempfile.TemporaryDirectory(prefix="vitalgru-paired-") as tmp:
        try:
            return read(Path(client.download_artifacts(mv.run_id, artifact, tmp)))
        except _UNREADABLE as e:
            why = getattr(e, "message", None) or str(e) or type(e).__name__
            raise _NotPaired(f"{who}'s run {mv.run_id} has no readable {artifact} "
                             f"({why.splitlines()[0][:160]})") from e  # fmt: skip


def _record_matrices(
    client: MlflowClient, mv: Any, artifact: str, who: str
) -> dict[str, np.ndarray]:
    """Each record's confusion matrix in ``mv``'s run's ``artifact`` (an AAMI report:
    ``records.<rec>.confusion_matrix``, classes in :data:`~vitalgru.types.AAMI_CLASSES`
    order)."""
    report = _read_artifact(client, mv, artifact, who, lambda p: json.loads(p.read_text()))
    k = len(AAMI_CLASSES)
    try:
        out = {str(r): np.asarray(d["confusion_matrix"], dtype=np.float64)
               for r, d in report["records"].items()}  # fmt: skip
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise _NotPaired(f"{who}'s {artifact} has no per-record confusion matrices") from e
    if not out or any(m.shape != (k, k) for m in out.values()):
        raise _NotPaired(f"{who}'s {artifact} has no {k}x{k} per-record confusion matrices")
    return out


def _measured(
    base: dict[str, Any], unit: str, n: int, diffs: Mapping[str, PairedDifference],
    n_resamples: int, seed: int, level: float,
) -> dict[str, Any]:  # fmt: skip
    """The tag's dict of a comparison made on ``n`` ``unit`` ("records", "patients")."""
    return {
        **base,
        unit: int(n),
        "resamples": int(n_resamples),
        "seed": int(seed),
        "level": float(level),
        "keys": {
            k: {
                "difference": d.difference,
                "low": d.low,
                "high": d.high,
                "share_better": d.share_better,
            }
            for k, d in diffs.items()
        },
    }


def paired_comparison(
    client: MlflowClient,
    new_mv: Any,
    champ_mv: Any,
    gate_keys: Sequence[str],
    artifact: str,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    level: float = 0.95,
) -> dict[str, Any] | None:
    """The paired record bootstrap of ``new_mv`` minus ``champ_mv`` on each class-F1 gate
    key, from the per-record confusion matrices both runs logged as ``artifact``.

    Returns
    -------
    dict or None
        ``{"against", "artifact", "records", "resamples", "seed", "level", "keys": {key:
        {"difference", "low", "high", "share_better"}}}`` (differences in F1, 0-1), or
        ``{"against", "artifact", "missing": why}`` where either run lacks a readable
        artifact or they were scored on other records or beats; None where no gate key is
        a class's F1. Never raises for a store that fails to answer: that is a ``missing``.
    """
    keys = {k: i for k in gate_keys if (i := _class_index(k)) is not None}
    if not keys:
        return None
    base: dict[str, Any] = {"against": str(champ_mv.version), "artifact": artifact}
    try:
        new = _record_matrices(client, new_mv, artifact, f"version {new_mv.version}")
        old = _record_matrices(client, champ_mv, artifact, f"champion version {champ_mv.version}")
        if set(new) != set(old):
            raise _NotPaired(
                f"the two versions were scored on other records ({len(new)} and {len(old)}, "
                f"{len(set(new) ^ set(old))} not in both)"
            )
        recs = sorted(new)
        # the same beats of each class in each record (rows: the reference), else the
        # difference is not one of two models on the same patients
        if any(not np.array_equal(new[r].sum(axis=1), old[r].sum(axis=1)) for r in recs):
            raise _NotPaired("the two versions were scored on other beats of the same records")
        try:
            diffs = paired_f1_difference([new[r] for r in recs], [old[r] for r in recs],
                                         n_resamples=n_resamples, seed=seed, level=level)  # fmt: skip
        except ValueError as e:  # matrices that are not counts
            raise _NotPaired(f"the logged confusion matrices cannot be compared ({e})") from e
    except _NotPaired as e:
        return {**base, "missing": str(e)}
    return _measured(base, "records", len(recs), {k: diffs[i] for k, i in keys.items()},
                     n_resamples, seed, level)  # fmt: skip


def paired_utility_comparison(
    client: MlflowClient,
    new_mv: Any,
    champ_mv: Any,
    gate_keys: Sequence[str],
    artifact: str,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    level: float = 0.95,
) -> dict[str, Any] | None:
    """The paired patient bootstrap of ``new_mv``'s cross-validated utility minus
    ``champ_mv``'s (:func:`~vitalgru.metrics.paired_utility.paired_utility_difference`),
    from the held-out scores both runs logged as ``artifact``
    (:mod:`vitalgru.data.heldout_scores`: each hour alarmed at its fold's threshold).

    Returns
    -------
    dict or None
        As :func:`paired_comparison`, with ``patients`` for ``records`` and the one key
        :data:`UTILITY_KEY`; a ``missing`` where either run lacks a readable artifact or
        the two were cross-validated on other patients, hours or labels; None where
        ``utility`` is not a gate key. Never raises for a store that fails to answer.
    """
    if UTILITY_KEY not in gate_keys:
        return None
    base: dict[str, Any] = {"against": str(champ_mv.version), "artifact": artifact}
    try:
        new = _read_artifact(client, new_mv, artifact, f"version {new_mv.version}",
                             read_heldout_alarms)  # fmt: skip
        old = _read_artifact(client, champ_mv, artifact,
                             f"champion version {champ_mv.version}", read_heldout_alarms)  # fmt: skip
        _same_patients(new, old)
        try:
            d = paired_utility_difference(new.labels, new.alarms, old.alarms, new.offsets,
                                          n_resamples=n_resamples, seed=seed, level=level)  # fmt: skip
        except ValueError as e:  # a file read back that the utility cannot take
            raise _NotPaired(f"the logged held-out scores cannot be compared ({e})") from e
    except _NotPaired as e:
        return {**base, "missing": str(e)}
    return _measured(base, "patients", new.patient_ids.size, {UTILITY_KEY: d}, n_resamples,
                     seed, level)  # fmt: skip


def _same_patients(new: HeldOutAlarms, old: HeldOutAlarms) -> None:
    """:class:`_NotPaired` unless both were scored on the same patients, hours and labels:
    else the difference is not one of two models on the same patients."""
    a, b = set(new.patient_ids.tolist()), set(old.patient_ids.tolist())
    if a != b:
        raise _NotPaired(f"the two versions were cross-validated on other patients "
                         f"({len(a)} and {len(b)}, {len(a ^ b)} not in both)")  # fmt: skip
    if not np.array_equal(new.hours, old.hours):
        raise _NotPaired("the two versions were cross-validated on other hours of the same "
                         "patients")  # fmt: skip
    if not np.array_equal(new.labels, old.labels):
        raise _NotPaired(f"the two versions' patients have other labels "
                         f"({int((new.labels != old.labels).sum())} hours differ)")  # fmt: skip


def paired_from_tags(tags: Mapping[str, str]) -> dict[str, Any] | None:
    """The paired comparison a version's tags keep (:data:`PAIRED_TAG`); None without one
    or with one that is not JSON."""
    text = tags.get(PAIRED_TAG)
    if not text:
        return None
    try:
        found = json.loads(text)
    except json.JSONDecodeError:
        return None
    return found if isinstance(found, dict) else None


def _key_name(key: str) -> str:
    i = _class_index(key)
    return f"{AAMI_CLASSES[i].value} F1" if i is not None else key


def _signed(key: str, v: float) -> str:
    """A difference as the line says it: F1 in points (+0.3), utility as it is (+0.004)."""
    return f"{100.0 * v:+.1f}" if _class_index(key) is not None else f"{v:+.3f}"


def paired_text(paired: Mapping[str, Any]) -> str:
    """One line saying the paired comparison: ``"against champion v4 on 22 records: S F1
    +0.3 points, paired record bootstrap 95 % interval -4.1 to +4.8 (better in 55 % of
    5000 resamples): within noise; ..."`` (``"on 17652 patients: utility +0.004, paired
    patient bootstrap 95 % interval -0.002 to +0.010 ..."``), or why there is none."""
    against = f"against champion v{paired.get('against', '?')}"
    if "missing" in paired:
        return f"no paired interval {against}: {paired['missing']}"
    unit = "patient" if "patients" in paired else "record"
    parts = []
    level = round(100 * float(paired.get("level", 0.95)))
    for key, d in paired.get("keys", {}).items():
        name = _key_name(key)
        if d.get("low") is None or d.get("high") is None or d.get("difference") is None:
            parts.append(f"{name}: no interval (undefined on most resamples)")
            continue
        low, high = float(d["low"]), float(d["high"])
        verdict = ("within noise" if low <= 0.0 <= high else
                   "better beyond noise" if low > 0.0 else "worse beyond noise")  # fmt: skip
        better = d.get("share_better")
        points = " points" if _class_index(key) is not None else ""
        share = f" (better in {100 * better:.0f} % of {paired.get('resamples')} resamples)"
        parts.append(
            f"{name} {_signed(key, float(d['difference']))}{points}, paired {unit} "
            f"bootstrap {level} % interval {_signed(key, low)} to {_signed(key, high)}"
            f"{share if better is not None else ''}: {verdict}"
        )
    return f"{against} on {paired.get(unit + 's')} {unit}s: " + "; ".join(parts)


def paired_brief(paired: Mapping[str, Any]) -> str:
    """The paired comparison as the champion history keeps it, short enough that the
    history tag (5,000 characters, oldest entries dropped) keeps as many holders as before:
    ``"S F1 +0.3 [-4.1, +4.8] within noise; V F1 +0.5 [+0.2, +1.1] better beyond noise
    (paired, 22 records)"``. The version's own tag keeps the whole comparison
    (:func:`paired_text`)."""
    unit = "patient" if "patients" in paired else "record"
    parts = []
    for key, d in paired.get("keys", {}).items():
        name = _key_name(key)
        if d.get("low") is None or d.get("high") is None or d.get("difference") is None:
            parts.append(f"{name} no interval")
            continue
        low, high = float(d["low"]), float(d["high"])
        verdict = ("within noise" if low <= 0.0 <= high else
                   "better beyond noise" if low > 0.0 else "worse beyond noise")  # fmt: skip
        parts.append(f"{name} {_signed(key, float(d['difference']))} "
                     f"[{_signed(key, low)}, {_signed(key, high)}] {verdict}")  # fmt: skip
    return "; ".join(parts) + f" (paired, {paired.get(unit + 's')} {unit}s)"
