"""How far the gate's comparison is from noise: the paired record bootstrap of a new
version's class F1 minus the champion's, from the per-record evaluation both runs logged.

The gate's rule is unchanged (no worse on every gated measure, better on one); this says
whether a gain is more than another set of patients would move it. On MIT-BIH DS2 (22
records, S beats in a few of them) a separate 95 % interval of the shipped model's S F1
ran from about 11 % to 89 %, so a gain of a few tenths of a point is no evidence; both
versions are scored on the same records, so their difference is resampled record by record
(:func:`vitalgru.metrics.paired.paired_f1_difference`), which is far tighter.

What it was measured on is kept on the new version as the ``vitalgru.gate_paired`` tag
(JSON): the champion version it was compared with, the run artifact, the records, the
resamples, seed and level, and for each gate key its difference, interval and the share of
resamples where the new version was better; or, where it could not be measured (a run
without the artifact, records that differ), why.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from vitalgru.metrics.bootstrap import DEFAULT_RESAMPLES, DEFAULT_SEED
from vitalgru.metrics.paired import paired_f1_difference
from vitalgru.types import AAMI_CLASSES

__all__ = ["PAIRED_TAG", "paired_comparison", "paired_from_tags", "paired_text"]

#: Model-version tag holding the gate's paired comparison (JSON; see the module's text).
PAIRED_TAG = "vitalgru.gate_paired"

#: Gate keys that are one class's F1 (``test_s_f1``, ``s_f1``): the class letter.
_CLASS_F1_KEY = re.compile(r"(?:^|_)([a-z])_f1$")

#: What a paired comparison could not be made without, said as the reason it was not.
_UNREADABLE = (MlflowException, requests.RequestException, OSError, ValueError, KeyError,
               TypeError)  # fmt: skip


class _NotPaired(Exception):
    """Why no paired comparison could be made (said in one line; the gate goes on)."""


def _class_index(key: str) -> int | None:
    m = _CLASS_F1_KEY.search(key)
    names = [str(c).lower() for c in AAMI_CLASSES]
    return names.index(m.group(1)) if m and m.group(1) in names else None


def _record_matrices(
    client: MlflowClient, mv: Any, artifact: str, who: str
) -> dict[str, np.ndarray]:
    """Each record's confusion matrix in ``mv``'s run's ``artifact`` (an AAMI report:
    ``records.<rec>.confusion_matrix``, classes in :data:`~vitalgru.types.AAMI_CLASSES`
    order)."""
    if not mv.run_id:
        raise _NotPaired(f"{who} has no run")
    with tempfile.TemporaryDirectory(prefix="vitalgru-paired-") as tmp:
        try:
            local = client.download_artifacts(mv.run_id, artifact, tmp)
            report = json.loads(Path(local).read_text())
        except _UNREADABLE as e:
            why = getattr(e, "message", None) or str(e) or type(e).__name__
            raise _NotPaired(f"{who}'s run {mv.run_id} has no readable {artifact} "
                             f"({why.splitlines()[0][:160]})") from e  # fmt: skip
    k = len(AAMI_CLASSES)
    try:
        out = {str(r): np.asarray(d["confusion_matrix"], dtype=np.float64)
               for r, d in report["records"].items()}  # fmt: skip
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise _NotPaired(f"{who}'s {artifact} has no per-record confusion matrices") from e
    if not out or any(m.shape != (k, k) for m in out.values()):
        raise _NotPaired(f"{who}'s {artifact} has no {k}x{k} per-record confusion matrices")
    return out


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
    return {
        **base,
        "records": len(recs),
        "resamples": int(n_resamples),
        "seed": int(seed),
        "level": float(level),
        "keys": {
            k: {
                "difference": diffs[i].difference,
                "low": diffs[i].low,
                "high": diffs[i].high,
                "share_better": diffs[i].share_better,
            }
            for k, i in keys.items()
        },
    }


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


def _points(v: float) -> str:
    return f"{100.0 * v:+.1f}"


def paired_text(paired: Mapping[str, Any]) -> str:
    """One line saying the paired comparison: ``"against champion v4 on 22 records: S F1
    +0.3 points, paired record bootstrap 95 % interval -4.1 to +4.8 (better in 55 % of
    5000 resamples): within noise; ..."``, or why there is none."""
    against = f"against champion v{paired.get('against', '?')}"
    if "missing" in paired:
        return f"no paired interval {against}: {paired['missing']}"
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
        share = f" (better in {100 * better:.0f} % of {paired.get('resamples')} resamples)"
        parts.append(
            f"{name} {_points(float(d['difference']))} points, paired record bootstrap "
            f"{level} % interval {_points(low)} to {_points(high)}"
            f"{share if better is not None else ''}: {verdict}"
        )
    return f"{against} on {paired.get('records')} records: " + "; ".join(parts)
