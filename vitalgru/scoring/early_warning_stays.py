"""The patient-hours the live sepsis monitor keeps, and the cohort it builds of them.

:class:`~vitalgru.scoring.early_warning.EarlyWarningMonitor` checks each row as it arrives
(:func:`checked_row`: column names, numbers, the ICU hour and its order), keeps a patient's
rows so far in a :class:`Stay` with the network's state, and before a forward pass builds
the stays to score into one cleaned cohort on the hourly grid (:func:`stays_cohort`), the
form :func:`vitalgru.data.gru_d_inputs.gru_d_arrays` builds the network's inputs from.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from vitalgru.data.early_warning import EarlyWarningCohort
from vitalgru.dsp.vitals import vitals_plausibility
from vitalgru.io.psv import MAX_ICU_HOUR, MEASUREMENT_COLUMNS, PSV_COLUMNS, STATIC_COLUMNS

__all__ = [
    "LIMITED_COLUMNS", "LIMITED_IDX", "ROW_COLUMNS", "Stay", "checked_row", "hour_values",
    "stays_cohort",
]  # fmt: skip

_BY_NAME = {
    **{k.lower(): v for k, v in PSV_COLUMNS.items()},
    **{v: v for v in PSV_COLUMNS.values()},
}
_VALUE_COLUMNS = (*MEASUREMENT_COLUMNS, *STATIC_COLUMNS)

#: The columns the plausibility limits apply to (:func:`vitalgru.dsp.vitals.vitals_plausibility`).
LIMITED_COLUMNS = [*MEASUREMENT_COLUMNS, *STATIC_COLUMNS]

#: A stay's columns: the ICU hour, then every value the model takes.
ROW_COLUMNS = ("hour", *_VALUE_COLUMNS)

#: Where :data:`LIMITED_COLUMNS` lie in :data:`ROW_COLUMNS`.
LIMITED_IDX = [ROW_COLUMNS.index(c) for c in LIMITED_COLUMNS]


class Stay:
    """One patient's rows so far, as a matrix over :data:`ROW_COLUMNS` that grows by
    doubling (rebuilding a frame from a list of dicts every hour cost more than the
    network)."""

    def __init__(self, pid: str, hidden: int) -> None:
        self.pid = pid
        self._buf = np.empty((16, len(ROW_COLUMNS)))
        self.n = 0
        self.h = torch.zeros(1, 1, hidden)
        self.grid_rows = 0  # hourly-grid rows already run through the network

    @property
    def values(self) -> np.ndarray:
        return self._buf[: self.n]

    @property
    def last_hour(self) -> int | None:
        return int(self._buf[self.n - 1, 0]) if self.n else None

    def append(self, row: Mapping[str, float]) -> None:
        if self.n == self._buf.shape[0]:
            self._buf = np.concatenate([self._buf, np.empty_like(self._buf)])
        self._buf[self.n] = [row.get(c, math.nan) for c in ROW_COLUMNS]
        self.n += 1


def hour_values(
    stay: Stay, row: Mapping[str, float], refused: Sequence[bool] | None = None
) -> dict[str, float]:
    """One checked hour's values (``row``, of a stay's rows so far), with the patient's age
    taken from the latest row that gave one when this row does not, and NaN (not measured)
    for those refused as impossible (``refused``: over :data:`LIMITED_COLUMNS`)."""
    if refused is not None:
        row = {**row, **{c: math.nan for c, bad in zip(LIMITED_COLUMNS, refused, strict=True)
                         if bad}}  # fmt: skip
    age = row.get("age_years", math.nan)
    if not math.isfinite(age):
        ages = stay.values[:, ROW_COLUMNS.index("age_years")]
        known = ages[np.isfinite(ages)]
        age = float(known[-1]) if known.size else math.nan
    return {**row, "age_years": age}


def checked_row(pid: str, row: Mapping[str, Any], last_hour: int | None) -> dict[str, float]:
    """One hour's values keyed by vitalgru column names, checked."""
    if not isinstance(row, Mapping):  # a list or a bare number: an AttributeError before
        raise ValueError(
            f"patient {pid!r}: a row is a mapping of column to value ({{'HR': 80, "
            f"'ICULOS': 3}}), got {type(row).__name__}"
        )
    out: dict[str, float] = {}
    for key, value in row.items():
        col = _BY_NAME.get(str(key).lower(), _BY_NAME.get(str(key)))
        if col is None:
            raise ValueError(
                f"patient {pid!r}: unknown column {key!r}; use the Challenge-2019 names "
                "(HR, O2Sat, ..., ICULOS) or vitalgru's (hr_bpm, spo2_pct, ...)"
            )
        if col == "sepsis_label":
            continue  # an outcome, not an input
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "nan")):
            v = math.nan
        elif isinstance(value, bool):  # float(True) is 1.0: a Gender of true, an HR of 1
            raise ValueError(f"patient {pid!r}: {key} = {value!r} is not a number")
        else:
            try:
                v = float(value)
            except (TypeError, ValueError):
                raise ValueError(
                    f"patient {pid!r}: {key} = {value!r} is not a number"
                ) from None  # fmt: skip
        out[col] = v
    hour = out.get("hour")
    if (
        hour is None
        or not math.isfinite(hour)
        or hour != int(hour)
        or not 0 <= hour <= MAX_ICU_HOUR  # as the file reader takes them: an export may
    ):  # count the first hour 0 where the Challenge counts it 1
        raise ValueError(
            f"patient {pid!r}: each row needs ICULOS, the ICU hour (a whole number from 0 to "
            f"{MAX_ICU_HOUR}), got {row.get('ICULOS', hour)!r}"
        )
    if last_hour is not None and hour <= last_hour:
        raise ValueError(
            f"patient {pid!r}: ICULOS {int(hour)} does not follow the last hour pushed "
            f"({last_hour}); rows must arrive in time order, one per hour"
        )
    return out


def stays_cohort(stays: list[Stay]) -> tuple[EarlyWarningCohort, np.ndarray, np.ndarray]:
    """The stays as one cleaned cohort on the hourly grid, where each of their rows lies
    in it, and for each row which of :data:`LIMITED_COLUMNS` the plausibility limits
    refused."""
    lengths = np.array([st.n for st in stays])
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    values = np.concatenate([st.values for st in stays])
    cleaned, bad = vitals_plausibility(values[:, LIMITED_IDX], LIMITED_COLUMNS)
    values[:, LIMITED_IDX] = cleaned
    frame = pd.DataFrame(
        {
            "patient_id": np.repeat([st.pid for st in stays], lengths),
            "hour": values[:, 0].astype(np.int16),
            **{c: values[:, j + 1].astype(np.float32) for j, c in enumerate(_VALUE_COLUMNS)},
            "sepsis_label": np.zeros(len(values), np.int8),
        }
    )
    cohort = EarlyWarningCohort(frame, offsets, np.array([st.pid for st in stays]), {}, [], "live")
    where = np.arange(len(values))
    if cohort.skipped_hours():
        cohort, where = cohort.on_hourly_grid()
    return cohort, where, bad
