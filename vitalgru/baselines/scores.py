"""Bedside early-warning scores computed from Challenge-2019 hourly vitals: NEWS2 and qSOFA.

Both use the latest value of each vital sign at or before the hour (last observation
carried forward within the patient) while it is at most :data:`MAX_AGE_H` hours old; a
vital never measured so far, or not for longer, scores 0, as a ward chart with a blank box
would (carried without limit, one FiO2 charted on day one added the oxygen points to every
hour of an eight-day stay).

What the Challenge-2019 tables lack, and how it is handled:

* NEWS2 (Royal College of Physicians, "National Early Warning Score (NEWS) 2", 2017)
  needs the level of consciousness (ACVPU; new confusion, voice, pain or unresponsive
  scores 3): not recorded, scored 0 for everyone. "Supplemental oxygen" (2 points) is not
  recorded either; it is inferred where a FiO2 above room air (> 0.21) has been charted,
  otherwise air is assumed. SpO2 uses scale 1 (no hypercapnic-failure target known).
* qSOFA (Seymour et al., JAMA 315(8):762-774, 2016; Singer et al., Sepsis-3, JAMA
  315(8):801-810, 2016) needs altered mentation (GCS < 15): not recorded, scored 0. The
  score here is therefore 0-2 (respiratory rate >= 22/min, systolic BP <= 100 mmHg).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vitalgru.dsp.vitals import vitals_last_observed

#: Hours a charted value stands for the current one (NEWS2 is charted at least every 12 h
#: on a ward, every hour in intensive care): an older value is no observation of now.
MAX_AGE_H = 24


def _carried(
    frame: pd.DataFrame, offsets: np.ndarray, cols: list[str], max_age_h: float | None
) -> np.ndarray:
    """The latest value of each of ``cols`` at most ``max_age_h`` ICU hours old (by the
    ``hour`` column, or by rows without one; None: however old), else NaN."""
    _, last, at = vitals_last_observed(frame[cols].to_numpy(np.float32), offsets)
    if max_age_h is None:
        return last
    hours = frame["hour"].to_numpy(np.int64) if "hour" in frame else np.arange(len(frame))
    age = hours[:, None] - hours[np.maximum(at, 0)]
    return np.where((at >= 0) & (age <= max_age_h), last, np.nan).astype(np.float32)


def _bands(x: np.ndarray, edges: list[float], points: list[int]) -> np.ndarray:
    """Points of ``x`` for bands ``(-inf, e0], (e0, e1], ...``; NaN scores 0."""
    idx = np.searchsorted(np.asarray(edges), x, side="left")
    pts = np.asarray(points)[np.minimum(idx, len(points) - 1)]
    return np.where(np.isnan(x), 0, pts)


def news2(
    frame: pd.DataFrame, offsets: np.ndarray, max_age_h: float | None = MAX_AGE_H
) -> np.ndarray:
    """NEWS2 aggregate score of every patient-hour (without the consciousness item).

    Parameters
    ----------
    frame : pandas.DataFrame
        Rows grouped by patient (hours ascending) with ``resp_per_min``, ``spo2_pct``,
        ``sbp_mmhg``, ``hr_bpm``, ``temp_c``, ``fio2_frac``.
    offsets : numpy.ndarray
        ``(n_patients + 1,)`` row offsets.
    max_age_h : float or None
        Values older than this many ICU hours score as a blank box; None: every value is
        carried to the end of the stay (how the trees' ``news2`` feature is computed).

    Returns
    -------
    numpy.ndarray
        ``(n_rows,)`` int score, 0-17 here (20 with consciousness in the full score).
    """
    cols = ["resp_per_min", "spo2_pct", "sbp_mmhg", "hr_bpm", "temp_c", "fio2_frac"]
    rr, spo2, sbp, hr, temp, fio2 = _carried(frame, offsets, cols, max_age_h).T
    # RCP 2017 chart, rounded values: each band is (previous edge, edge].
    s = _bands(rr, [8, 11, 20, 24], [3, 1, 0, 2, 3])
    s = s + _bands(spo2, [91, 93, 95], [3, 2, 1, 0])
    s = s + np.where(np.nan_to_num(fio2, nan=0.0) > 0.21, 2, 0)
    s = s + _bands(sbp, [90, 100, 110, 219], [3, 2, 1, 0, 3])
    s = s + _bands(hr, [40, 50, 90, 110, 130], [3, 1, 0, 1, 2, 3])
    s = s + _bands(temp, [35.0, 36.0, 38.0, 39.0], [3, 1, 0, 1, 2])
    return s.astype(np.int16)


def qsofa(
    frame: pd.DataFrame, offsets: np.ndarray, max_age_h: float | None = MAX_AGE_H
) -> np.ndarray:
    """qSOFA of every patient-hour (without the mentation item): 0-2.

    Respiratory rate >= 22/min and systolic BP <= 100 mmHg score one point each
    (Seymour et al. 2016); ``max_age_h`` as for :func:`news2`.
    """
    rr, sbp = _carried(frame, offsets, ["resp_per_min", "sbp_mmhg"], max_age_h).T
    with np.errstate(invalid="ignore"):
        s = (rr >= 22).astype(np.int16) + (sbp <= 100).astype(np.int16)
    return s
