"""Whether a patient lies outside the population a model was trained on, in words a clinician
reads beside the result.

The sepsis model is trained on the 2019 PhysioNet Challenge's ICU stays, all of them adults:
the youngest of training set A's 17,652 stays is 18.11 years old and none is under 18. A
child's or a neonate's hours are still scored (the network takes any age), but the risk is
an extrapolation the model was never checked on, and its vital-sign inputs (a resting heart
rate of 140 /min, a respiratory rate of 50 /min) are normal for a neonate and alarming in
an adult. So each hour scored says, in :attr:`~vitalgru.scoring.early_warning.HourRisk.outside`,
what puts it outside the training population:

* an age below the youngest training patient's (:attr:`SepsisPopulation.age_min`), or
  above the oldest's;
* a vital sign beyond the central 99.8 % (:data:`RANGE_QUANTILES`) of the training
  patients' values of it (kept with models trained since; a model stored without them is
  checked on age alone). In set A, heart rates lie in 41-148.5 /min and respiratory rates in
  6-44 /min by that measure: a neonate's heart rate of 180 /min (25 of set A's 634,179 heart
  rates reach it) or respiratory rate of 60 /min (45 of 620,168) is outside.

A model stored before the youngest age was kept is taken to have been trained on adults
(:data:`ADULT_AGE_YEARS`), as every Challenge-2019 cohort was.

The beat model is trained on MIT-BIH DS1: adults, the paced records left out, few beats
faster than 150 bpm. An ECG whose heart rate is above :data:`ECG_TRAINED_MAX_BPM` says so
(:func:`ecg_rate_warning`), and the ECG pages say whom the model covers (:data:`ECG_SCOPE`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vitalgru.data.gru_d_inputs import RANGE_QUANTILES
from vitalgru.io.psv import MEASUREMENT_UNITS, PSV_COLUMNS

__all__ = [
    "ADULT_AGE_YEARS", "ECG_SCOPE", "ECG_TRAINED_MAX_BPM", "RANGE_QUANTILES", "SepsisPopulation",
    "ecg_rate_warning",
]  # fmt: skip

#: The youngest age taken as covered by a sepsis model stored without its training patients'
#: youngest age: the Challenge 2019 cohorts are adult ICU stays (set A: youngest 18.11 years).
ADULT_AGE_YEARS = 18.0

_CHALLENGE_NAMES = {v: k for k, v in PSV_COLUMNS.items()}
_CENTRAL = f"{100 * (RANGE_QUANTILES[1] - RANGE_QUANTILES[0]):.3g} %"


def _fmt(v: float) -> str:
    return f"{v:.3g}"


@dataclass(frozen=True)
class SepsisPopulation:
    """What a sepsis model's training patients were (from its normalisation statistics).

    Attributes
    ----------
    age_min, age_max : float or None
        Youngest and oldest training patient (years); None where not known.
    ranges : dict
        ``{vitalgru column: (low, high)}``: the :data:`RANGE_QUANTILES` of the training
        patients' values of each vital sign.
    """

    age_min: float | None = ADULT_AGE_YEARS
    age_max: float | None = None
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)

    @classmethod
    def from_stats(cls, extra: Mapping[str, Any] | None) -> SepsisPopulation:
        """From :attr:`vitalgru.data.gru_d_inputs.NormStats.extra`'s ``"population"`` (as
        :func:`vitalgru.data.gru_d_inputs.fit_norm_stats` writes it); adults of unknown
        ranges when it is not there."""
        pop = (extra or {}).get("population")
        if not pop:
            return cls()
        age_min = pop.get("age_min")
        age_max = pop.get("age_max")
        return cls(
            age_min=ADULT_AGE_YEARS if age_min is None else float(age_min),
            age_max=None if age_max is None else float(age_max),
            ranges={str(c): (float(lo), float(hi)) for c, (lo, hi) in
                    (pop.get("ranges") or {}).items()},
        )  # fmt: skip

    def outside(self, values: Mapping[str, float]) -> tuple[str, ...]:
        """What puts one hour (``{vitalgru column: value}``, NaN or absent where not
        measured; ``age_years`` the patient's age) outside the training population, one
        phrase each (``"age 0.1 y: below the youngest training patient (18.1 y)"``); empty
        when nothing does."""
        out = []
        age = values.get("age_years", math.nan)
        if age is not None and math.isfinite(age):
            if self.age_min is not None and age < self.age_min:
                out.append(
                    f"age {_fmt(age)} y: below the youngest training patient "
                    f"({_fmt(self.age_min)} y)"
                )
            elif self.age_max is not None and age > self.age_max:
                out.append(
                    f"age {_fmt(age)} y: above the oldest training patient ({_fmt(self.age_max)} y)"
                )
        for col, (lo, hi) in self.ranges.items():
            v = values.get(col, math.nan)
            if v is None or not math.isfinite(v) or lo <= v <= hi:
                continue
            unit = MEASUREMENT_UNITS.get(col, "")
            name = _CHALLENGE_NAMES.get(col, col)
            shown = f"{name} {_fmt(v)}{' ' + unit if unit else ''}"
            out.append(
                f"{shown}: outside the central {_CENTRAL} of the training patients' values "
                f"({_fmt(lo)}-{_fmt(hi)})"
            )
        return tuple(out)


#: Heart rate (bpm) above which the beat model runs outside the rates it was trained at. Of
#: the 50,999 annotated beats of MIT-BIH DS1 (its training records), 418 (0.8 %) came at an
#: 8-beat median rate of 150 bpm or more and 15 at 180 or more; a child's resting rate
#: (100-160 bpm) and a tachycardia (150-250 bpm) lie at or beyond that edge.
ECG_TRAINED_MAX_BPM = 150.0

#: Who the beat model covers, for the ECG pages.
ECG_SCOPE = (
    "The beat model was trained on adult recordings of the MIT-BIH Arrhythmia Database "
    "(DS1) at heart rates mostly under 150 bpm, without paced rhythms: it was not validated "
    "on children, on rates above 150 bpm, or on paced patients, whose paced beats it does "
    "not know as paced."
)


def ecg_rate_warning(hr_bpm: float | None) -> str | None:
    """The warning for an ECG whose heart rate (bpm) is above :data:`ECG_TRAINED_MAX_BPM`;
    None when it is not (or not known)."""
    if hr_bpm is None or not math.isfinite(hr_bpm) or hr_bpm <= ECG_TRAINED_MAX_BPM:
        return None
    return (
        f"heart rate {hr_bpm:.0f} bpm: above the {ECG_TRAINED_MAX_BPM:.0f} bpm the beat model "
        "was trained at (0.8 % of its training beats came that fast): its beat classes and S/V "
        "alarms are extrapolations"
    )
