"""The verdict of a monitoring check (:mod:`pipelines.monitor_checks`): its status and
the reasons for it.

The status is ``ok``, ``watch`` (moderate drift), ``drift`` (major drift) or ``degraded``
(performance below the tolerance); drift that could not be judged at all (too few patients
or values) is a reason of its own, ``drift not judged``. Performance is judged against the
values the model version was gated on (its registry tags), with a tolerated drop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vitalgru import tracking
from vitalgru.metrics.drift import MIN_EXPECTED_MEASURED, MIN_VALUES_FOR_PSI

#: Status levels, mildest first (``--fail-on`` compares against this order).
STATUSES = ("ok", "watch", "drift", "degraded")


def polarity_note(facts: Mapping[str, Mapping[str, Any]]) -> str | None:
    """A note naming the records whose QRS pointed against the lead's usual way
    (``polarity_warning`` in their facts; :mod:`vitalgru.dsp.polarity`), None when none did:
    a hospital's feeds with swapped electrodes show here, and the model was trained on
    upright beats."""
    flagged = sorted(r for r, f in facts.items() if f.get("polarity_warning"))
    if not flagged:
        return None
    names = ", ".join(flagged[:10]) + (", ..." if len(flagged) > 10 else "")
    return (
        f"{len(flagged)} of {len(facts)} records have a QRS pointing against the lead's usual "
        f"way ({names}): swapped electrodes (an inverted lead, on which the model loses its "
        "fusion beats), or a leftward axis; check their leads"
    )


def performance_against_gate(
    loaded: tracking.LoadedModel,
    now: Mapping[str, float | None],
    max_drop: Mapping[str, float],
    why_not: str | None,
    intervals: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Measures now against the values the version was gated on.

    Parameters
    ----------
    loaded
        The checked model; its registry name and version find the gated values.
    now
        Each measure on the new data (None where undefined).
    max_drop
        Each measure's tolerated drop below its gated value.
    why_not
        Why performance cannot be judged on this data (no labels, no positive case), or None.
    intervals
        Each measure's 95 % interval on the new data (``[low, high]``: records or patients
        resampled), or None where it has none.

    Returns
    -------
    dict
        ``{"checked": False, "why": ..., "now": ...}`` when it was not judged, else
        ``{"checked": True, "measures": ...}`` with each measure's reference, value now,
        drop, tolerated drop and whether it is ``degraded``.
    """
    if why_not is None and not (loaded.name and loaded.version):
        why_not = "the model was not loaded from the registry: no gated values to compare"
    if why_not is not None:
        return {"checked": False, "why": why_not, "now": dict(now)}
    ref = tracking.version_gate_values(loaded.name, loaded.version, list(max_drop))
    rows = {}
    for k, limit in max_drop.items():
        r, n = ref.get(k), now.get(k)
        drop = None if r is None or n is None else float(r) - float(n)
        ends = (intervals or {}).get(k)
        rows[k] = {
            "reference": r,
            "now": n,
            "drop": drop,
            "max_drop": limit,
            "degraded": drop is not None and drop > limit,
            "now_interval": None if n is None or not ends or None in ends else
                            [float(ends[0]), float(ends[1])],
        }  # fmt: skip
    return {"checked": True, "measures": rows}


def _unjudged(drift: Mapping[str, Any]) -> str | None:
    """Why no input nor the output could be judged (every level ``unknown``), None when
    some could."""
    output = drift.get("risk") or drift.get("predicted")
    if any(r["level"] != "unknown" for r in [*drift["inputs"], *([output] if output else [])]):
        return None
    return drift.get("unjudged_why") or (
        f"too few values on every input and output (a PSI needs {MIN_VALUES_FOR_PSI} a side, "
        f"a change of the share measured {MIN_EXPECTED_MEASURED} expected)"
    )


def _chance(row: Mapping[str, Any]) -> str:
    """What the measure's interval on these patients says of a drop ('' without one): a
    small check's figure moves a long way by chance, and the drop is read against that."""
    ends = row.get("now_interval")
    if not ends:
        return ""
    low, high = ends
    said = f"; its 95 % interval on these patients is {low:.3f}-{high:.3f}"
    if low <= row["reference"] <= high:
        return said + ", which holds the gated value: a drop this size may be chance"
    return said + ", all of it below the gated value"


def verdict(drift: dict[str, Any] | None, perf: dict[str, Any]) -> tuple[str, list[str]]:
    """The status (one of :data:`STATUSES`) and its reasons. Drift that could not be judged
    at all leaves the status as it is but is a reason of its own, so that it does not read
    as no drift."""
    reasons: list[str] = []
    status = "ok"
    if perf.get("checked"):
        for k, r in perf["measures"].items():
            if r["degraded"]:
                reasons.append(
                    f"{k} {r['now']:.3f} is {r['drop']:.3f} below the gated "
                    f"{r['reference']:.3f} (tolerated drop {r['max_drop']})" + _chance(r)
                )
                status = "degraded"
    if drift is not None:
        if (why := _unjudged(drift)) is not None:
            reasons.append(f"drift not judged: {why}")
        if drift["major"]:
            reasons.append(f"major drift: {', '.join(drift['major'])}")
            status = status if status == "degraded" else "drift"
        if drift["moderate"]:
            reasons.append(f"moderate drift: {', '.join(drift['moderate'])}")
            status = status if status != "ok" else "watch"
    return status, reasons
