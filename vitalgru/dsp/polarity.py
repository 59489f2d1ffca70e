"""Which way a lead's QRS points, and whether that says the lead is upside down.

Swapped electrodes (the arm electrodes reversed, a Holter cable plugged the wrong way round)
record the same heart upside down, and nothing in the samples says so: every quality check
passes. The arrhythmia network was trained on upright modified lead II (MIT-BIH), and an
inverted lead costs it the fusion beats most (``benchmarks/lead_inverted.py``: DS2 F F1 0.228
upright, 0.077 inverted; S and V hold). So the way the QRS points is measured on the beats
already cut (:func:`qrs_polarity`) and, for a lead whose QRS points one way in nearly everyone
(:data:`EXPECTED_QRS_SIGN`), a QRS pointing the other way is reported
(:func:`polarity_warning`): a *flag* for a person to check, never a reason to turn the lead
over, since a true leftward axis turns lead II's QRS down as well (MIT-BIH 207, whose beats
are mostly left bundle branch block beats, reads -0.94 as recorded).

The polarity of one median beat is ``(up - down) / (up + down)`` in [-1, 1], where ``up`` and
``down`` are the largest excursions above and below the PR segment within 60 ms of the R peak:
+1 an R wave alone, -1 a QS complex, near 0 an RS complex whose two deflections are equal. On
MIT-BIH's 48 records as recorded it reads above +0.3 in 43 and below -0.3 in one (207), so
one upright record is flagged and 43 of the 48 negated; the other five point neither way
enough (``benchmarks/lead_inverted.py``).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "EXPECTED_QRS_SIGN",
    "MIN_BEATS",
    "POLARITY_LIMIT",
    "expected_sign",
    "polarity_warning",
    "qrs_polarity",
]

#: Leads whose QRS points the same way in nearly every heart: +1 mostly up, -1 mostly down.
#: Lead I and II (and their modified forms) point up over the normal axis, -30 to +90 degrees;
#: V5 and V6 look at the left ventricle from its side (a qR); aVR looks at the heart from the
#: right shoulder and sees every wave point away. The others (III, aVL, aVF, V1-V4) point
#: either way in healthy people and are not judged.
EXPECTED_QRS_SIGN: dict[str, int] = {
    "I": 1, "II": 1, "MLI": 1, "MLII": 1, "V5": 1, "V6": 1, "MV5": 1, "AVR": -1,
}  # fmt: skip

#: Beats needed for a polarity: fewer give NaN (a median of a handful is one beat's shape).
MIN_BEATS = 20

#: A polarity this far on the wrong side of 0 is reported; nearer 0 an RS complex (a right
#: bundle branch block in lead II, say) points neither way.
POLARITY_LIMIT = 0.3

# Where the median beat is read, from its R peak: the QRS, and the PR segment before it
# (after the P wave, before the Q wave) as the zero line.
QRS_HALF_S = 0.06
PR_S = (-0.08, -0.05)


def qrs_polarity(
    windows: np.ndarray, fs: float, before_s: float, ok: np.ndarray | None = None
) -> float:
    """Polarity of the median beat of ``windows`` (``(n_beats, n)``, each starting
    ``before_s`` before its R peak, at ``fs``), over the rows where ``ok`` (all when None)
    and finite: ``(up - down) / (up + down)`` in [-1, 1] (module docstring), NaN with fewer
    than :data:`MIN_BEATS` beats or a flat median beat."""
    w = np.asarray(windows, dtype=np.float64)
    if w.ndim != 2:
        raise ValueError(f"windows must be 2-D (beats, samples), got shape {w.shape}")
    keep = np.isfinite(w).all(axis=1)
    if ok is not None:
        keep &= np.asarray(ok, dtype=bool)
    if int(keep.sum()) < MIN_BEATS:
        return math.nan
    beat = np.median(w[keep], axis=0)
    t = (np.arange(beat.size) - round(before_s * fs)) / fs
    pr = beat[(t >= PR_S[0]) & (t < PR_S[1])]
    qrs = beat[np.abs(t) <= QRS_HALF_S]
    if pr.size == 0 or qrs.size == 0:
        raise ValueError(
            f"beat windows starting {before_s} s before the R peak do not hold the PR "
            f"segment and the QRS ({PR_S[0]} to +{QRS_HALF_S} s)"
        )
    zero = float(np.median(pr))
    up = max(float(qrs.max()) - zero, 0.0)
    down = max(zero - float(qrs.min()), 0.0)
    if up + down <= 0.0:
        return math.nan
    return (up - down) / (up + down)


def expected_sign(lead: str | None) -> int:
    """+1 or -1: which way the QRS of ``lead`` (a name, any case) points in nearly everyone;
    0 when it is not judged (:data:`EXPECTED_QRS_SIGN`)."""
    if not lead:
        return 0
    return EXPECTED_QRS_SIGN.get(str(lead).strip().upper().replace(" ", ""), 0)


def polarity_warning(polarity: float, lead: str | None, flagged: bool = False) -> str | None:
    """What to tell a reader when ``lead``'s QRS points against the way it points in nearly
    everyone by more than :data:`POLARITY_LIMIT` (None otherwise, and for a NaN polarity or
    a lead not judged). ``flagged``: the warning stands already (a live feed judged again
    every run of beats), and stays until the polarity is back past half the limit, so that
    a median beat near the limit does not set and clear it by turns."""
    sign = expected_sign(lead)
    limit = POLARITY_LIMIT / 2 if flagged else POLARITY_LIMIT
    if sign == 0 or not math.isfinite(polarity) or polarity * sign >= -limit:
        return None
    way = "down" if sign > 0 else "up"
    axis = (
        "or the heart's axis is leftward (a left bundle branch block, a left anterior "
        "fascicular block)"
        if sign > 0
        else "or the heart lies on the right (dextrocardia)"
    )
    return (
        f"the QRS of lead {lead} points {way} (polarity {polarity:+.2f}), against the way it "
        f"points in nearly everyone: the electrodes may be swapped (the lead inverted), "
        f"{axis}; the beat labels were learned on upright beats, and fusion beats suffer most"
    )
