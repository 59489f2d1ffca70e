"""A folder-level check of the units of the laboratory columns of Challenge-2019 tables,
where the plausibility limits cannot tell: a glucose in mmol/L of 12 is a plausible 12
mg/dL, a PaCO2 in kPa of 5.3 a plausible 5.3 mmHg, a lactate in mg/dL of 16 a plausible 16
mmol/L. One value cannot give such a column away, but its median over a folder can: it lies
far outside the Challenge's own range, and the factor of the unit it looks like brings it
back to the middle of that range. numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vitalgru.dsp.vitals import PLAUSIBILITY_LIMITS

__all__ = ["CHALLENGE_QUANTILES", "MIN_VALUES", "SUSPECT_UNITS", "unit_mixup_warnings"]

#: Column -> (5th, 25th, 75th, 95th) percentile of its values in the Challenge's training
#: set A (the PhysioNet mirror's ``training_setA``, 17,652 files, 687,218 rows, every
#: measured value as read, before the plausibility limits: ``numpy.percentile`` over each
#: column of :func:`vitalgru.io.psv_folder.read_psv_folder`'s frame, computed once and kept
#: here). Medians of 10-patient slices of set A with 50 values or more stayed inside
#: each column's 5th-95th percentile range.
CHALLENGE_QUANTILES: dict[str, tuple[float, float, float, float]] = {
    "glucose_mg_dl": (79.0, 104.0, 150.0, 218.0),
    "paco2_mmhg": (29.0, 36.0, 45.0, 56.0),
    "lactate_mmol_l": (0.8, 1.2, 2.8, 6.4),
    "hgb_g_dl": (8.0, 9.4, 11.6, 13.7),
    "bun_mg_dl": (7.0, 12.0, 29.0, 66.0),
    "magnesium_mg_dl": (1.5, 1.8, 2.2, 2.7),
    "calcium_mg_dl": (7.1, 7.8, 8.8, 9.5),
    "phosphate_mg_dl": (1.8, 2.7, 4.2, 6.2),
}

#: Column -> (factor from the unit a column may be exported in to the Challenge's unit,
#: what to say): the factors of :data:`vitalgru.io.observation_codes.UNITS`. Calcium is
#: total calcium (an ionised calcium in mmol/L is another measurement, not brought back).
SUSPECT_UNITS: dict[str, tuple[float, str]] = {
    "glucose_mg_dl": (18.016, "mmol/L: glucose is in mg/dL, multiply by 18.016"),
    "paco2_mmhg": (7.50062, "kPa: PaCO2 is in mmHg, multiply by 7.50062"),
    "lactate_mmol_l": (1 / 9.008, "mg/dL: lactate is in mmol/L, divide by 9.008"),
    "hgb_g_dl": (1.611, "mmol/L: haemoglobin is in g/dL, multiply by 1.611"),
    "bun_mg_dl": (2.801, "mmol/L (urea): urea nitrogen is in mg/dL, multiply by 2.801"),
    "magnesium_mg_dl": (2.431, "mmol/L: magnesium is in mg/dL, multiply by 2.431"),
    "calcium_mg_dl": (4.008, "mmol/L: calcium is in mg/dL, multiply by 4.008"),
    "phosphate_mg_dl": (3.097, "mmol/L: phosphate is in mg/dL, multiply by 3.097"),
}

#: The fewest measured values of a column whose median is judged: fewer, a handful of
#: patients can sit anywhere.
MIN_VALUES = 50


def unit_mixup_warnings(values: np.ndarray, columns: Sequence[str]) -> list[str]:
    """Sentences for the columns of :data:`SUSPECT_UNITS` whose median over the folder
    (of :data:`MIN_VALUES` measured values or more) lies outside the 5th-95th percentile
    range of the Challenge's own values (:data:`CHALLENGE_QUANTILES`) while the factor of
    the suspected unit brings it inside their interquartile range: the column looks
    exported in that unit. Nothing is converted (a data team fixes its export); the
    sentence says how many of the values the plausibility limits let through as they are.

    Parameters
    ----------
    values : numpy.ndarray
        ``(n_rows, n_features)`` as read, before :func:`~vitalgru.dsp.vitals.vitals_plausibility`
        (NaN where not measured).
    columns : sequence of str
        Column name of each feature.

    Returns
    -------
    list of str
        One sentence a column, in column order; empty when none is so.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != len(columns):
        raise ValueError(
            f"values must be (n_rows, {len(columns)}) to match columns, got shape {v.shape}"
        )
    out = []
    for j, col in enumerate(columns):
        if col not in SUSPECT_UNITS:
            continue
        x = v[:, j][~np.isnan(v[:, j])]
        if x.size < MIN_VALUES:
            continue
        median = float(np.median(x))
        p5, p25, p75, p95 = CHALLENGE_QUANTILES[col]
        factor, unit = SUSPECT_UNITS[col]
        if p5 <= median <= p95 or not p25 <= median * factor <= p75:
            continue
        lo, hi = PLAUSIBILITY_LIMITS[col]
        taken = int(((x >= lo) & (x <= hi)).sum())
        out.append(
            f"{col}: the median of its {x.size} measured values, {median:.4g}, lies far "
            f"outside the Challenge's own range ({p5:g} to {p95:g}, 5th to 95th percentile "
            f"of training set A); they look like {unit} (median {median * factor:.4g}); "
            f"{taken} of them are within the plausibility limits and are taken as they are"
        )
    return out
