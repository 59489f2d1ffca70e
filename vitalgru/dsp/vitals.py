"""Hourly vital-sign and laboratory sequences: plausibility limits, missingness masks, last
observation and time since it (the inputs of GRU-D, Che et al., "Recurrent Neural Networks
for Multivariate Time Series with Missing Values", Sci Rep 8:6085, 2018). numpy only.

Many patients are stored back to back in one array: ``values`` is ``(n_rows, n_features)``
and ``offsets`` is ``(n_patients + 1,)`` with patient ``p`` in rows
``offsets[p]:offsets[p + 1]`` (hours ascending). Nothing leaks from one patient into the
next, and every output at row ``t`` depends only on rows up to ``t`` (causal), so the same
functions serve training and live scoring.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Inclusive physiologically plausible ranges, in the units of the column names. A value
#: outside is a device or charting artefact (HR 0 is a flat line, SpO2 above 100 % does
#: not exist, a negative pressure is a zeroing error), is counted and treated as missing.
#: Limits sit beyond the extremes compatible with life rather than at clinical alarm
#: levels, in the spirit of the outlier ranges of the MIMIC-III benchmark (Harutyunyan et
#: al., Sci Data 6:96, 2019); the temperature limits (25-45 C) bracket the lowest
#: survived accidental hypothermia and fatal hyperthermia; pulse-oximeter and gas
#: saturations are bounded by 100 % by definition; FiO2 is a fraction of at least room
#: air (0.21) and at most pure oxygen (1.0).
PLAUSIBILITY_LIMITS: dict[str, tuple[float, float]] = {
    "hr_bpm": (10.0, 300.0),
    "spo2_pct": (10.0, 100.0),
    "temp_c": (25.0, 45.0),
    "sbp_mmhg": (10.0, 300.0),
    "map_mmhg": (10.0, 300.0),
    "dbp_mmhg": (5.0, 300.0),
    "resp_per_min": (1.0, 80.0),
    "etco2_mmhg": (1.0, 150.0),
    "base_excess_mmol_l": (-40.0, 40.0),
    "hco3_mmol_l": (1.0, 60.0),
    "fio2_frac": (0.21, 1.0),
    "ph": (6.5, 8.0),
    "paco2_mmhg": (5.0, 200.0),
    "sao2_pct": (10.0, 100.0),
    "ast_iu_l": (1.0, 30000.0),
    "bun_mg_dl": (1.0, 300.0),
    "alkaline_phos_iu_l": (1.0, 5000.0),
    "calcium_mg_dl": (2.0, 20.0),
    "chloride_mmol_l": (50.0, 160.0),
    "creatinine_mg_dl": (0.05, 50.0),
    "bilirubin_direct_mg_dl": (0.0, 60.0),
    "glucose_mg_dl": (10.0, 2000.0),
    "lactate_mmol_l": (0.1, 40.0),
    "magnesium_mg_dl": (0.3, 10.0),
    "phosphate_mg_dl": (0.1, 25.0),
    "potassium_mmol_l": (1.0, 12.0),
    "bilirubin_total_mg_dl": (0.0, 60.0),
    "troponin_i_ng_ml": (0.0, 1000.0),
    "hct_pct": (5.0, 75.0),
    "hgb_g_dl": (1.5, 25.0),
    "ptt_s": (10.0, 250.0),
    "wbc_10e3_ul": (0.0, 500.0),
    "fibrinogen_mg_dl": (10.0, 2000.0),
    "platelets_10e3_ul": (1.0, 2500.0),
    "age_years": (0.0, 120.0),
    "hosp_adm_time_h": (-100000.0, 1000.0),
    # 0/1 flags in the Challenge (Gender 1 male, Unit1 medical, Unit2 surgical ICU); a
    # sex coded 1/2 (ISO 5218, 2 female) or any other number the model would take as is
    "gender_male": (0.0, 1.0),
    "unit_micu": (0.0, 1.0),
    "unit_sicu": (0.0, 1.0),
}

#: Columns that are 0/1 flags: a value between the limits that is neither (a ``Gender`` of
#: 0.5) is refused as well, since the model only ever saw the two.
FLAG_COLUMNS: frozenset[str] = frozenset({"gender_male", "unit_micu", "unit_sicu"})


def _refused(column: str, x: float) -> bool:
    lo, hi = PLAUSIBILITY_LIMITS.get(column, (-np.inf, np.inf))
    return x < lo or x > hi or (column in FLAG_COLUMNS and x not in (0.0, 1.0))


def _check_offsets(offsets: np.ndarray, n_rows: int) -> np.ndarray:
    off = np.asarray(offsets, dtype=np.int64)
    if off.ndim != 1 or off.size < 1:
        raise ValueError("offsets must be a 1-D array of n_patients + 1 row offsets")
    if off[0] != 0 or off[-1] != n_rows:
        raise ValueError(
            f"offsets must start at 0 and end at the number of rows ({n_rows}), "
            f"got {off[0]}..{off[-1]}"
        )
    if (np.diff(off) < 0).any():
        raise ValueError("offsets must be non-decreasing")
    return off


def plausible_mean(column: str, values: Sequence[float]) -> float:
    """One hour's value of ``column`` from the readings taken in it: the mean of those
    within :data:`PLAUSIBILITY_LIMITS`, so that an impossible reading (an HR of 0 from a
    lead off, a Fahrenheit temperature sent as Celsius) neither drags the hour to a false
    but plausible value nor throws the good readings out with it; when none is within
    them, the mean of all (which the monitor then refuses and names)."""
    good = [float(x) for x in values if not _refused(column, x) and x == x]
    use = good or [float(x) for x in values]
    return sum(use) / len(use)


def impossible(column: str, values: Sequence[float]) -> list[float]:
    """The readings of ``column`` outside :data:`PLAUSIBILITY_LIMITS`, or a flag's other
    than 0 and 1 (:data:`FLAG_COLUMNS`; NaN is not one)."""
    return [float(x) for x in values if x == x and _refused(column, x)]


def vitals_plausibility(
    values: np.ndarray, columns: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Flag values outside :data:`PLAUSIBILITY_LIMITS` and treat them as missing.

    Parameters
    ----------
    values : numpy.ndarray
        ``(n_rows, n_features)`` float, NaN where not measured; units as in ``columns``.
    columns : sequence of str
        Column name of each feature; columns without a limit pass unchanged.

    Returns
    -------
    cleaned : numpy.ndarray
        ``(n_rows, n_features)`` float32 copy with implausible values set to NaN.
    implausible : numpy.ndarray
        ``(n_rows, n_features)`` bool, True where a measured value was rejected.
    """
    v = np.asarray(values, dtype=np.float32)
    if v.ndim != 2 or v.shape[1] != len(columns):
        raise ValueError(
            f"values must be (n_rows, {len(columns)}) to match columns, got shape {v.shape}"
        )
    # The limits in float32, as the values are: in float64, room air's FiO2 read as
    # float32(0.21) = 0.2099999934 fell below 0.21 and was thrown out as impossible.
    lo = np.array([PLAUSIBILITY_LIMITS.get(c, (-np.inf, np.inf))[0] for c in columns], np.float32)
    hi = np.array([PLAUSIBILITY_LIMITS.get(c, (-np.inf, np.inf))[1] for c in columns], np.float32)
    with np.errstate(invalid="ignore"):
        bad = ~np.isnan(v) & ((v < lo) | (v > hi))
    flags = [i for i, c in enumerate(columns) if c in FLAG_COLUMNS]
    if flags:
        f = v[:, flags]
        bad[:, flags] |= ~np.isnan(f) & (f != 0) & (f != 1)
    out = v.copy()
    out[bad] = np.nan
    return out, bad


#: Columns whose values, when refused, may be in another unit, and the range (in it) that
#: gives that away: a body temperature in °F is 86-113, an FiO2 in per cent 21-100, a
#: saturation or haematocrit as a fraction at most 1, a haemoglobin in g/L 25-250, a glucose
#: in mmol/L (18.016 mg/dL each) or a fibrinogen in g/L (100 mg/dL each) below the mg/dL
#: limit of 10, a creatinine in umol/L (88.42 a mg/dL) above the mg/dL limit of 50. Each
#: range lies outside the plausibility limits, so only refused values can fall in it.
UNIT_MIXUPS: dict[str, tuple[float, float, str]] = {
    "temp_c": (86.0, 113.0, "°F: convert to °C, (°F - 32) × 5/9"),
    "fio2_frac": (21.0, 100.0, "per cent: FiO2 is a fraction, divide by 100"),
    "spo2_pct": (0.1, 1.0, "a fraction: SpO2 is in per cent, multiply by 100"),
    "sao2_pct": (0.1, 1.0, "a fraction: SaO2 is in per cent, multiply by 100"),
    "hct_pct": (0.05, 0.75, "a fraction (L/L): haematocrit is in per cent, multiply by 100"),
    "hgb_g_dl": (25.0, 250.0, "g/L: haemoglobin is in g/dL, divide by 10"),
    "glucose_mg_dl": (0.5, 10.0, "mmol/L: glucose is in mg/dL, multiply by 18.016"),
    "fibrinogen_mg_dl": (0.5, 10.0, "g/L: fibrinogen is in mg/dL, multiply by 100"),
    "creatinine_mg_dl": (50.0, 2000.0, "umol/L: creatinine is in mg/dL, divide by 88.42"),
}


def refused_column_warnings(
    values: np.ndarray, implausible: np.ndarray, columns: Sequence[str]
) -> list[str]:
    """Sentences for the columns where :func:`vitals_plausibility` refused more than half of
    the measured values: such a column is not a few artefacts but a column the model will
    in effect not see (every temperature of an export in °F). Where the refused values'
    median lies in a range another unit gives (:data:`UNIT_MIXUPS`), the sentence says so.

    Parameters
    ----------
    values : numpy.ndarray
        ``(n_rows, n_features)`` as given to :func:`vitals_plausibility`.
    implausible : numpy.ndarray
        ``(n_rows, n_features)`` bool, its second result.
    columns : sequence of str

    Returns
    -------
    list of str
        One sentence a column, in column order; empty when none is so.
    """
    v = np.asarray(values, dtype=np.float32)
    bad = np.asarray(implausible, dtype=bool)
    measured = (~np.isnan(v)).sum(axis=0)
    refused = bad.sum(axis=0)
    out = []
    for j, col in enumerate(columns):
        if refused[j] == 0 or 2 * refused[j] <= measured[j]:
            continue
        lo, hi = PLAUSIBILITY_LIMITS[col]
        median = float(np.median(v[bad[:, j], j]))
        text = (
            f"{col}: {int(refused[j])} of {int(measured[j])} measured values "
            f"({100 * refused[j] / measured[j]:.0f} %) are outside the plausibility limits "
            f"{lo:g} to {hi:g} and are read as missing (median refused value {median:.4g})"
        )
        if col in UNIT_MIXUPS and UNIT_MIXUPS[col][0] <= median <= UNIT_MIXUPS[col][1]:
            text += f"; they look like {UNIT_MIXUPS[col][2]}"
        out.append(text)
    return out


def vitals_last_observed(
    values: np.ndarray, offsets: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Missingness mask, last observation carried forward, and its row index.

    Parameters
    ----------
    values : numpy.ndarray
        ``(n_rows, n_features)`` float, NaN = not measured.
    offsets : numpy.ndarray
        ``(n_patients + 1,)`` row offsets of the patients.

    Returns
    -------
    mask : numpy.ndarray
        ``(n_rows, n_features)`` float32, 1 where measured at that hour.
    last : numpy.ndarray
        ``(n_rows, n_features)`` float32, the latest measured value at or before the row
        within the same patient, NaN before the first measurement.
    last_idx : numpy.ndarray
        ``(n_rows, n_features)`` int64 row of that value, -1 if none yet.
    """
    v = np.asarray(values, dtype=np.float32)
    if v.ndim != 2:
        raise ValueError(f"values must be (n_rows, n_features), got shape {v.shape}")
    n = v.shape[0]
    off = _check_offsets(offsets, n)
    observed = ~np.isnan(v)
    rows = np.arange(n, dtype=np.int64)[:, None]
    idx = np.where(observed, rows, -1)
    idx = np.maximum.accumulate(idx, axis=0) if n else idx
    # Indices from an earlier patient are below this patient's first row: drop them.
    first_row = np.repeat(off[:-1], np.diff(off))[:, None]
    idx = np.where(idx >= first_row, idx, -1)
    safe = np.where(idx >= 0, idx, 0)
    last = np.take_along_axis(v, safe, axis=0) if n else v.copy()
    last = np.where(idx >= 0, last, np.nan).astype(np.float32)
    return observed.astype(np.float32), last, idx


def vitals_time_since_observed(
    mask: np.ndarray, hours: np.ndarray, offsets: np.ndarray
) -> np.ndarray:
    """GRU-D's time interval ``delta``: hours since the last observation before each row.

    Che et al. 2018, eq. 2: ``delta_t = s_t - s_{t-1} + delta_{t-1}`` if the feature was
    missing at ``t-1``, ``s_t - s_{t-1}`` if it was observed, and 0 at a patient's first
    row. Equivalently, the time since the last observation strictly before ``t`` (or since
    the patient's first row when there was none).

    Parameters
    ----------
    mask : numpy.ndarray
        ``(n_rows, n_features)``, nonzero where measured.
    hours : numpy.ndarray
        ``(n_rows,)`` time stamps in hours (ICU hour), ascending within a patient.
    offsets : numpy.ndarray
        ``(n_patients + 1,)`` row offsets.

    Returns
    -------
    numpy.ndarray
        ``(n_rows, n_features)`` float32 hours, >= 0.
    """
    m = np.asarray(mask) != 0
    if m.ndim != 2:
        raise ValueError(f"mask must be (n_rows, n_features), got shape {m.shape}")
    s = np.asarray(hours, dtype=np.float64)
    if s.shape != (m.shape[0],):
        raise ValueError(f"hours must be ({m.shape[0]},) to match mask, got shape {s.shape}")
    n = m.shape[0]
    off = _check_offsets(offsets, n)
    first_row = np.repeat(off[:-1], np.diff(off))
    rows = np.arange(n, dtype=np.int64)
    # Last observation strictly before row t: shift the observed indices down one row.
    idx = np.where(m, rows[:, None], -1)
    if n:
        idx = np.maximum.accumulate(idx, axis=0)
        prev = np.vstack([np.full((1, m.shape[1]), -1, dtype=np.int64), idx[:-1]])
    else:
        prev = idx
    ref = np.where(prev >= first_row[:, None], prev, first_row[:, None])
    delta = s[:, None] - s[ref]
    return delta.astype(np.float32)


def patient_offsets(patient_ids: np.ndarray) -> np.ndarray:
    """Row offsets ``(n_patients + 1,)`` of runs of equal ids (rows grouped by patient)."""
    ids = np.asarray(patient_ids)
    if ids.ndim != 1:
        raise ValueError("patient_ids must be 1-D")
    if ids.size == 0:
        return np.zeros(1, dtype=np.int64)
    change = np.flatnonzero(ids[1:] != ids[:-1]) + 1
    return np.concatenate([[0], change, [ids.size]]).astype(np.int64)


class VitalsStreamState:
    """Per-patient state that turns one new hour per patient into GRU-D inputs, live.

    Feeding a patient's rows one tick at a time gives exactly what
    :func:`vitals_last_observed` and :func:`vitals_time_since_observed` give on the whole
    table (the streaming-equals-offline invariant), for many patients at once.

    Parameters
    ----------
    n_patients : int
        Patients advanced together (one row each per tick).
    n_features : int
        Measurements per row.
    """

    def __init__(self, n_patients: int, n_features: int) -> None:
        if n_patients < 1 or n_features < 1:
            raise ValueError("n_patients and n_features must be >= 1")
        self.last = np.full((n_patients, n_features), np.nan, dtype=np.float32)
        # Time of the last observation strictly before the coming row (or of the first row).
        self.ref_time = np.full((n_patients, n_features), np.nan)
        self.started = np.zeros(n_patients, dtype=bool)

    def reset(self, patients: np.ndarray) -> None:
        """Forget patients (a bed is given to a new admission)."""
        self.last[patients] = np.nan
        self.ref_time[patients] = np.nan
        self.started[patients] = False

    def update(
        self, values: np.ndarray, hours: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Advance every patient by one row.

        Parameters
        ----------
        values : numpy.ndarray
            ``(n_patients, n_features)`` this hour's measurements, NaN = not measured
            (already passed through :func:`vitals_plausibility`).
        hours : numpy.ndarray
            ``(n_patients,)`` time stamp of the row, hours.

        Returns
        -------
        mask, last, delta : numpy.ndarray
            ``(n_patients, n_features)`` float32 each, as the offline functions give.
        """
        v = np.asarray(values, dtype=np.float32)
        s = np.asarray(hours, dtype=np.float64)
        if v.shape != self.last.shape or s.shape != (self.last.shape[0],):
            raise ValueError(
                f"values must be {self.last.shape} and hours ({self.last.shape[0]},), "
                f"got {v.shape} and {s.shape}"
            )
        first = ~self.started
        self.ref_time[first] = s[first, None]
        delta = (s[:, None] - self.ref_time).astype(np.float32)
        mask = ~np.isnan(v)
        self.last = np.where(mask, v, self.last)
        self.ref_time = np.where(mask, s[:, None], self.ref_time)
        self.started[:] = True
        return mask.astype(np.float32), self.last.copy(), delta
