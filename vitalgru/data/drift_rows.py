"""One input column of new data judged against a model's reference profile: the row a drift
report gives it (:mod:`vitalgru.data.drift`), and the rows of many columns, the most shifted
first.

A row holds the population stability index of the whole histogram (missing and refused
buckets included) and of the values present only, the change of the share measured
(:mod:`vitalgru.metrics.drift`), and the worst level of the three; a side with too few
independent values (:data:`~vitalgru.metrics.drift.MIN_VALUES_FOR_PSI`) is not judged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from vitalgru.metrics.drift import (
    MIN_VALUES_FOR_PSI,
    drift_level,
    histogram_on,
    measured_ratio,
    measured_ratio_level,
    psi,
    psi_present,
    worst_level,
)

__all__ = ["compare_columns", "drift_row"]


def _finite_or_none(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


#: The levels of a row, in the order :func:`compare_columns` sorts by (the most shifted last).
_SEVERITY = ("unknown", "stable", "moderate", "major")


def drift_row(
    name: str,
    ref: Mapping[str, Any],
    now: Mapping[str, Any],
    independent: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """One column's comparison: the PSI of the whole histogram, of the values present, the
    change of the share measured, and the worst level of the three. ``independent``: how
    many independent values each side's rows hold, when fewer than its rows (a patient's
    age repeats in every hour of the stay: 30 patients are 30 ages, not 1,100)."""
    whole, values = psi(ref, now), psi_present(ref, now)
    ratio = measured_ratio(ref, now)
    n_ref, n_now = independent or (int(ref["n"]), int(now["n"]))
    share_ref = float(ref["measured"]) + float(ref["refused"])
    share_now = float(now["measured"]) + float(now["refused"])
    present = min(share_ref * n_ref, share_now * n_now)
    judged = (
        drift_level(whole) if min(n_ref, n_now) >= MIN_VALUES_FOR_PSI else "unknown",
        drift_level(values) if present >= MIN_VALUES_FOR_PSI else "unknown",
    )
    share = measured_ratio_level(ratio, share_ref * n_now, share_now * n_now)
    # a steady share measured says nothing of the values: with neither PSI judged (too few
    # values) the column is unknown, not stable (400 risks moved wholesale read "stable")
    level = "unknown" if judged == ("unknown", "unknown") and share == "stable" else (
        worst_level(*judged, share)
    )  # fmt: skip
    return {
        "column": name,
        "level": level,
        "psi": _finite_or_none(whole),
        "psi_values": _finite_or_none(values),
        "measured_ratio": _finite_or_none(ratio),
        "measured_ref": ref["measured"],
        "measured_now": now["measured"],
        "refused_ref": ref["refused"],
        "refused_now": now["refused"],
        "median_ref": ref["median"],
        "median_now": now["median"],
    }


def _severity(row: Mapping[str, Any]) -> tuple[int, float]:
    return _SEVERITY.index(row["level"]), max(row["psi"] or 0.0, row["psi_values"] or 0.0)


def compare_columns(
    ref_cols: Mapping[str, Mapping[str, Any]],
    current: Mapping[str, tuple[np.ndarray, int]],
    independent: Mapping[str, tuple[int, int]] | None = None,
) -> list[dict[str, Any]]:
    """:func:`drift_row` of every column both sides have, the most shifted first
    (``independent``: :func:`drift_row`'s, by column, where the rows are not)."""
    rows = [
        drift_row(
            c, ref_cols[c], histogram_on(ref_cols[c]["edges"], v, r), (independent or {}).get(c)
        )  # fmt: skip
        for c, (v, r) in current.items()
        if c in ref_cols
    ]
    rows.sort(key=_severity, reverse=True)
    return rows
