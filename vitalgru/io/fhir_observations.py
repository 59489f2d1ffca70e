"""FHIR R4 ``Observation`` resources (LOINC codes, UCUM units) as one ICU hour of the
Challenge-2019 measurements, in the units the early-warning models were trained on.

A hospital's integration engine rarely speaks the Challenge's column names; it speaks FHIR
vital-sign and laboratory Observations. :func:`observations_to_hour` reads them: each
Observation (and each ``component`` of one, as in a blood-pressure panel or a pulse
oximetry reading with its inhaled oxygen) whose LOINC code names a measurement
(:data:`LOINC_COLUMNS`) and whose ``valueQuantity`` is in a unit this module can convert
(:data:`UNITS`) becomes a value in the Challenge's unit: a temperature in [degF], a
glucose in mmol/L, a PaCO2 in kPa, an FiO2 in %, a creatinine in umol/L are converted, never
taken as they come. Several values of one measurement in the hour are averaged, but a
final result replaces the preliminary ones sent before it (``preliminary``, then
``final``), and a correction (``corrected``, ``amended``) every one sent before it.

Nothing is guessed: an Observation with a code outside the table, a unit the table does not
know for that measurement, no numeric value, or a status that withdraws it
(``entered-in-error``, ``cancelled``) is skipped, and the result says which and why. What is
left goes to the monitor, which then flags physiologically impossible values as it does
for any row.

Oxygen saturation follows FHIR's vital-signs convention: a pulse-oximetry reading carries
LOINC 59408-5 (with or without 2708-6) and is ``O2Sat``; 2708-6 alone, an arterial
blood gas, is ``SaO2``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from vitalgru.dsp.vitals import plausible_mean
from vitalgru.io.psv import MEASUREMENT_UNITS, PSV_COLUMNS

__all__ = [
    "LOINC_COLUMNS",
    "MDC_LOINC",
    "MDC_SYSTEM",
    "MDC_UNITS",
    "UNITS",
    "HourFromObservations",
    "observation_times",
    "observations_to_hour",
    "row_to_observations",
    "subject_patient",
    "timed_resources",
]

LOINC_SYSTEM = "http://loinc.org"
UCUM_SYSTEM = "http://unitsofmeasure.org"
#: IEEE 11073-10101 (MDC), the nomenclature bedside monitors code their results in.
MDC_SYSTEM = "urn:iso:std:iso:11073:10101"

#: MDC codes of the vital signs the model takes, as the LOINC code of the same measurement:
#: heart rate from the ECG, SpO2, temperature, non-invasive and arterial blood pressures,
#: respiratory rate (impedance, capnography). Pulse rates (from the oximeter or the cuff)
#: are not heart rate here, as 8867-4 is read.
MDC_LOINC = {
    "147842": "8867-4",  # MDC_ECG_HEART_RATE
    "150456": "59408-5",  # MDC_PULS_OXIM_SAT_O2
    "150344": "8310-5", "150364": "8310-5",  # MDC_TEMP, MDC_TEMP_BODY
    "150021": "8480-6", "150022": "8462-4", "150023": "8478-0",  # MDC_PRESS_BLD_NONINV_*
    "150033": "8480-6", "150034": "8462-4", "150035": "8478-0",  # MDC_PRESS_BLD_ART_*
    "150037": "8480-6", "150038": "8462-4", "150039": "8478-0",  # MDC_PRESS_BLD_ART_ABP_*
    "151562": "9279-1", "151578": "9279-1", "151594": "9279-1",  # MDC_RESP_RATE, _TTHOR_, _CO2_
}  # fmt: skip
#: MDC unit codes as UCUM.
MDC_UNITS = {
    "264864": "/min",  # MDC_DIM_BEAT_PER_MIN
    "264928": "/min",  # MDC_DIM_RESP_PER_MIN
    "262688": "%",  # MDC_DIM_PERCENT
    "266016": "mm[Hg]",  # MDC_DIM_MMHG
    "268192": "Cel",  # MDC_DIM_DEGC
    "266560": "[degF]",  # MDC_DIM_FAHR (4416 in partition 4; 268160 before, not it)
}

#: LOINC code -> vitalgru measurement column. Pulse oximetry (59408-5) is handled before
#: this table (see the module's description).
LOINC_COLUMNS: dict[str, str] = {
    "8867-4": "hr_bpm",  # Heart rate
    "59408-5": "spo2_pct",  # Oxygen saturation in Arterial blood by Pulse oximetry
    "8310-5": "temp_c",  # Body temperature
    "8331-1": "temp_c",  # Oral temperature
    "8328-7": "temp_c",  # Axillary temperature
    "8480-6": "sbp_mmhg",  # Systolic blood pressure
    "8478-0": "map_mmhg",  # Mean blood pressure
    "8462-4": "dbp_mmhg",  # Diastolic blood pressure
    "9279-1": "resp_per_min",  # Respiratory rate
    "19889-5": "etco2_mmhg",  # Carbon dioxide [Partial pressure] in Exhaled gas at end expiration
    "1925-7": "base_excess_mmol_l",  # Base excess in Arterial blood by calculation
    "11555-0": "base_excess_mmol_l",  # Base excess in Blood by calculation
    "1960-4": "hco3_mmol_l",  # Bicarbonate [Moles/volume] in Arterial blood
    "1963-8": "hco3_mmol_l",  # Bicarbonate [Moles/volume] in Serum or Plasma
    "3150-0": "fio2_frac",  # Inhaled oxygen concentration
    "2744-1": "ph",  # pH of Arterial blood
    "2019-8": "paco2_mmhg",  # Carbon dioxide [Partial pressure] in Arterial blood
    "2708-6": "sao2_pct",  # Oxygen saturation in Arterial blood
    "1920-8": "ast_iu_l",  # Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma
    "3094-0": "bun_mg_dl",  # Urea nitrogen [Mass/volume] in Serum or Plasma
    "6768-6": "alkaline_phos_iu_l",  # Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma
    "17861-6": "calcium_mg_dl",  # Calcium [Mass/volume] in Serum or Plasma
    "2075-0": "chloride_mmol_l",  # Chloride [Moles/volume] in Serum or Plasma
    "2160-0": "creatinine_mg_dl",  # Creatinine [Mass/volume] in Serum or Plasma
    "1968-7": "bilirubin_direct_mg_dl",  # Bilirubin.direct [Mass/volume] in Serum or Plasma
    "2345-7": "glucose_mg_dl",  # Glucose [Mass/volume] in Serum or Plasma
    "2339-0": "glucose_mg_dl",  # Glucose [Mass/volume] in Blood
    "2524-7": "lactate_mmol_l",  # Lactate [Moles/volume] in Serum or Plasma
    "32693-4": "lactate_mmol_l",  # Lactate [Moles/volume] in Blood
    "19123-9": "magnesium_mg_dl",  # Magnesium [Mass/volume] in Serum or Plasma
    "2777-1": "phosphate_mg_dl",  # Phosphate [Mass/volume] in Serum or Plasma
    "2823-3": "potassium_mmol_l",  # Potassium [Moles/volume] in Serum or Plasma
    "6298-4": "potassium_mmol_l",  # Potassium [Moles/volume] in Blood
    "1975-2": "bilirubin_total_mg_dl",  # Bilirubin.total [Mass/volume] in Serum or Plasma
    "10839-9": "troponin_i_ng_ml",  # Troponin I.cardiac [Mass/volume] in Serum or Plasma
    "4544-3": "hct_pct",  # Hematocrit [Volume Fraction] of Blood by Automated count
    "20570-8": "hct_pct",  # Hematocrit [Volume Fraction] of Blood
    "718-7": "hgb_g_dl",  # Hemoglobin [Mass/volume] in Blood
    "3173-2": "ptt_s",  # aPTT in Blood by Coagulation assay
    "14979-9": "ptt_s",  # aPTT in Platelet poor plasma by Coagulation assay
    "6690-2": "wbc_10e3_ul",  # Leukocytes [#/volume] in Blood by Automated count
    "26464-8": "wbc_10e3_ul",  # Leukocytes [#/volume] in Blood
    "3255-7": "fibrinogen_mg_dl",  # Fibrinogen [Mass/volume] in Platelet poor plasma by Coagulation assay
    "777-3": "platelets_10e3_ul",  # Platelets [#/volume] in Blood by Automated count
    "26515-7": "platelets_10e3_ul",  # Platelets [#/volume] in Blood
}


def _times(k: float) -> Callable[[float], float]:
    return lambda x: x * k


_SAME = _times(1.0)
_PCT_FROM_FRACTION = _times(100.0)
_MMHG = {"mm[Hg]": _SAME, "kPa": _times(7.50062)}
_MMOL_L = {"mmol/L": _SAME, "meq/L": _SAME, "mEq/L": _SAME}
_PER_MIN = {"/min": _SAME, "{beats}/min": _SAME, "{breaths}/min": _SAME}
_PCT = {"%": _SAME, "1": _PCT_FROM_FRACTION}
_PER_NL = {"10*3/uL": _SAME, "10*9/L": _SAME, "/nL": _SAME, "10*3/mm3": _SAME}
_IU_L = {"U/L": _SAME, "[IU]/L": _SAME}

#: vitalgru column -> {UCUM unit code: conversion to the Challenge's unit}. Factors: urea
#: nitrogen 2.801 mg/dL per mmol/L, calcium 4.008, glucose 18.016, magnesium 2.431,
#: phosphate 3.097, lactate 9.008 mg/dL per mmol/L; creatinine 88.42 and bilirubin 17.1
#: umol/L per mg/dL; haemoglobin 1.611 g/dL per mmol/L; 7.50062 mmHg per kPa.
UNITS: dict[str, dict[str, Callable[[float], float]]] = {
    "hr_bpm": _PER_MIN,
    "spo2_pct": _PCT,
    "temp_c": {"Cel": _SAME, "[degF]": lambda f: (f - 32.0) * 5.0 / 9.0, "K": lambda k: k - 273.15},
    "sbp_mmhg": _MMHG,
    "map_mmhg": _MMHG,
    "dbp_mmhg": _MMHG,
    "resp_per_min": _PER_MIN,
    "etco2_mmhg": _MMHG,
    "base_excess_mmol_l": _MMOL_L,
    "hco3_mmol_l": _MMOL_L,
    "fio2_frac": {"1": _SAME, "%": _times(0.01)},
    "ph": {"[pH]": _SAME, "1": _SAME},
    "paco2_mmhg": _MMHG,
    "sao2_pct": _PCT,
    "ast_iu_l": _IU_L,
    "bun_mg_dl": {"mg/dL": _SAME, "mmol/L": _times(2.801)},
    "alkaline_phos_iu_l": _IU_L,
    "calcium_mg_dl": {"mg/dL": _SAME, "mmol/L": _times(4.008)},
    "chloride_mmol_l": _MMOL_L,
    "creatinine_mg_dl": {"mg/dL": _SAME, "umol/L": _times(1 / 88.42)},
    "bilirubin_direct_mg_dl": {"mg/dL": _SAME, "umol/L": _times(1 / 17.1)},
    "glucose_mg_dl": {"mg/dL": _SAME, "mmol/L": _times(18.016)},
    "lactate_mmol_l": {"mmol/L": _SAME, "mg/dL": _times(1 / 9.008)},
    "magnesium_mg_dl": {"mg/dL": _SAME, "mmol/L": _times(2.431)},
    "phosphate_mg_dl": {"mg/dL": _SAME, "mmol/L": _times(3.097)},
    "potassium_mmol_l": _MMOL_L,
    "bilirubin_total_mg_dl": {"mg/dL": _SAME, "umol/L": _times(1 / 17.1)},
    "troponin_i_ng_ml": {"ng/mL": _SAME, "ug/L": _SAME, "ng/L": _times(0.001)},
    "hct_pct": {"%": _SAME, "1": _PCT_FROM_FRACTION, "L/L": _PCT_FROM_FRACTION},
    "hgb_g_dl": {"g/dL": _SAME, "g/L": _times(0.1), "mmol/L": _times(1.611)},
    "ptt_s": {"s": _SAME},
    "wbc_10e3_ul": _PER_NL,
    "fibrinogen_mg_dl": {"mg/dL": _SAME, "g/L": _times(100.0)},
    "platelets_10e3_ul": _PER_NL,
}

#: Statuses whose value is not (or no longer) a result.
_WITHDRAWN = {"entered-in-error", "cancelled", "registered"}


@dataclass
class HourFromObservations:
    """What :func:`observations_to_hour` made of the Observations.

    Attributes
    ----------
    row : dict
        ``{"ICULOS": hour, column: value, ...}`` in vitalgru column names and the
        Challenge's units (means where a measurement came more than once).
    used : int
        Values that went into ``row``.
    skipped : list of dict
        ``{"index" (the resource's position), "code" (its LOINC codes, or None),
        "reason"}`` for every Observation or component left out.
    converted : dict
        Column -> the units converted from (for the record: a feed sending [degF]).
    values : dict
        Column -> each value taken, in the Challenge's units, in the order sent (``row``
        holds their means): what an hour assembled from several messages pools.
    corrected : list of str
        Columns whose values here include a correction (status ``corrected`` or
        ``amended``; HL7 ``OBX-11`` C or A): a correction replaces the values of its
        measurement sent before it, in the payload and in the hour being assembled.
    preliminary : dict
        Column -> the preliminary values taken (status ``preliminary``; HL7 ``OBX-11`` P,
        R or S), apart from ``values`` (``row`` holds the means of both): a final result
        (or a correction) of the measurement replaces those sent before it, in the payload
        and in the hour being assembled, rather than being averaged with them.
    """

    row: dict[str, float]
    used: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)
    converted: dict[str, list[str]] = field(default_factory=dict)
    values: dict[str, list[float]] = field(default_factory=dict)
    corrected: list[str] = field(default_factory=list)
    preliminary: dict[str, list[float]] = field(default_factory=dict)


#: Observation statuses that correct an earlier result of the same measurement.
_CORRECTIONS = {"corrected", "amended"}
#: The status of a result a final one replaces (HL7 P, R, S).
_PRELIMINARY = "preliminary"


def _resources(payload: Any) -> list[Any]:
    """The Observations of a Bundle, of a list, or a single one."""
    if isinstance(payload, Mapping) and payload.get("resourceType") == "Bundle":
        entries = payload.get("entry") or []
        if not isinstance(entries, list):
            raise ValueError(f"a Bundle's entry must be a list, got {type(entries).__name__}")
        return [e.get("resource") if isinstance(e, Mapping) else e for e in entries]
    if isinstance(payload, list):
        return payload
    if isinstance(payload, Mapping):
        return [payload]
    raise ValueError("expected a FHIR Bundle, an Observation or a list of Observations")


def _listed(value: Any) -> list[Any]:
    """A JSON array as it is; anything else (absent, or not an array: malformed) as none."""
    return value if isinstance(value, list) else []


def _loinc(code: Any) -> list[str]:
    """The LOINC codes of a CodeableConcept, an IEEE 11073 coding as its LOINC equivalent."""
    out = []
    for c in _listed(code.get("coding") if isinstance(code, Mapping) else None):
        if not isinstance(c, Mapping) or not c.get("code"):
            continue
        if c.get("system") == LOINC_SYSTEM:
            out.append(str(c["code"]))
        elif c.get("system") == MDC_SYSTEM and str(c["code"]) in MDC_LOINC:
            out.append(MDC_LOINC[str(c["code"])])
    return out


def _column(codes: list[str]) -> str | None:
    if "59408-5" in codes:  # pulse oximetry, even when 2708-6 comes with it
        return "spo2_pct"
    return next((LOINC_COLUMNS[c] for c in codes if c in LOINC_COLUMNS), None)


def _value(part: Mapping[str, Any], column: str) -> tuple[float | None, str, str | None]:
    """(value in the Challenge's unit or None, the unit sent, why not)."""
    q = part.get("valueQuantity")
    if not isinstance(q, Mapping) or q.get("value") is None:
        return None, "", "no valueQuantity with a value"
    unit = str(q.get("code") or q.get("unit") or "")
    if q.get("system") == MDC_SYSTEM and unit in MDC_UNITS:
        unit = MDC_UNITS[unit]  # a device's unit code, as UCUM
    elif q.get("system") not in (None, UCUM_SYSTEM):
        return None, unit, f"unit system {q.get('system')!r} is not UCUM"
    convert = UNITS[column].get(unit)
    if convert is None:
        known = ", ".join(UNITS[column])
        target = MEASUREMENT_UNITS[column] or "the unitless"
        return (
            None,
            unit,
            f"unit {unit!r} cannot be converted to {target} {column} (known: {known})",
        )
    if q.get("comparator") is not None:  # "<0.3": below what was measured, not a value
        return None, unit, f"value {q.get('comparator')}{q['value']} is a bound, not a value"
    v = q["value"]
    if isinstance(v, bool) or not isinstance(v, int | float):  # a JSON number, as FHIR's decimal
        return None, unit, f"value {v!r} is not a number"
    x = float(v)
    if not math.isfinite(x):
        return None, unit, "value is not finite"
    return convert(x), unit, None


def observations_to_hour(payload: Any, hour: int) -> HourFromObservations:
    """One ICU hour (``ICULOS`` = ``hour``) from FHIR Observations: a Bundle's entries, a
    list, or one Observation, as parsed JSON. See the module's description for what is
    taken, converted and skipped. ValueError when ``payload`` is none of those shapes or
    ``hour`` is not a whole number >= 1."""
    if isinstance(hour, bool) or not isinstance(hour, int) or hour < 1:
        raise ValueError(f"the ICU hour must be a whole number >= 1, got {hour!r}")
    out = HourFromObservations(row={"ICULOS": float(hour)})
    values, preliminary = out.values, out.preliminary

    def skip(index: int, codes: list[str] | None, reason: str) -> None:
        out.skipped.append({"index": index, "code": codes or None, "reason": reason})

    for i, res in enumerate(_resources(payload)):
        if not isinstance(res, Mapping) or res.get("resourceType") != "Observation":
            kind = res.get("resourceType") if isinstance(res, Mapping) else type(res).__name__
            skip(i, None, f"not an Observation ({kind})")
            continue
        status = res.get("status")
        if status is not None and not isinstance(status, str):
            skip(i, _loinc(res.get("code")), f"status {status!r} is not a code")
            continue
        if status in _WITHDRAWN:
            skip(i, _loinc(res.get("code")), f"status {status!r}")
            continue
        components = [c for c in _listed(res.get("component")) if isinstance(c, Mapping)]
        for part in (res, *components):
            codes = _loinc(part.get("code"))
            column = _column(codes)
            if column is None:
                if part is res and components:
                    continue  # a panel's own code (85354-9): its components carry the values
                skip(i, codes, "no LOINC code of a measurement the model uses")
                continue
            x, unit, why = _value(part, column)
            if why is not None:
                skip(i, codes, why)
                continue
            if status == _PRELIMINARY:  # held apart, until a final result replaces it
                preliminary.setdefault(column, []).append(x)
            elif status in _CORRECTIONS:
                # replaces the result it corrects (HL7 table 0085: C "replaces a final
                # result"); averaged with it before, a lactate of 45 corrected to 4.5 was
                # scored 24.75. The results are not told apart by more than their
                # measurement, so it replaces every earlier value of it in the hour
                values[column] = [x]
                preliminary.pop(column, None)
                if column not in out.corrected:
                    out.corrected.append(column)
            else:
                # a final result replaces the preliminary ones of its measurement sent
                # before it (averaged before: a lactate of 6.0 preliminary, 2.0 final,
                # was scored 4.0)
                preliminary.pop(column, None)
                values.setdefault(column, []).append(x)
            if UNITS[column][unit] is not _SAME and unit not in out.converted.get(column, []):
                out.converted.setdefault(column, []).append(unit)
    for column in dict.fromkeys([*values, *preliminary]):
        xs = values.get(column, []) + preliminary.get(column, [])
        out.row[column] = plausible_mean(column, xs)
        out.used += len(xs)
    return out


def observation_times(payload: Any) -> list[datetime]:
    """When each Observation was made, for those that say so with a time and its UTC offset
    (``effectiveDateTime``, ``effectiveInstant`` or ``effectivePeriod.start``; a date
    alone or a time without an offset says nothing usable). ValueError for a payload that
    is not a Bundle, a list or an Observation."""
    return [t for t in timed_resources(payload)[1] if t is not None]


def _given_time(resource: Any) -> Any:
    """What an Observation gives as its time (``effectiveDateTime``, ``effectiveInstant`` or
    ``effectivePeriod.start``), as given; None for other resources and when none is."""
    if not isinstance(resource, Mapping) or resource.get("resourceType") != "Observation":
        return None
    period = resource.get("effectivePeriod")
    return (resource.get("effectiveDateTime") or resource.get("effectiveInstant")
            or (period.get("start") if isinstance(period, Mapping) else None))  # fmt: skip


def says_when(resource: Any) -> bool:
    """Whether an Observation gives a time at all, usable or not: one whose time
    :func:`timed_resources` cannot read (no UTC offset, a date alone) is not one without."""
    return bool(_given_time(resource))


def subject_patient(resource: Any, patient_system: str | None = None) -> str | None:
    """The patient a resource's ``subject`` names, or None when it names none that can be
    told: with ``patient_system`` (the hospital's identifiers, e.g. its medical record
    numbers), the value of an ``identifier`` of that system; without, the id of a
    ``Patient/<id>`` reference (relative, absolute or versioned). A reference's id is the
    FHIR server's own, another namespace than a ``patient_system``'s, so it is not compared
    there; a subject that is a group, a device or a location names no patient."""
    subject = resource.get("subject") if isinstance(resource, Mapping) else None
    if not isinstance(subject, Mapping):
        return None
    if patient_system is not None:
        ident = subject.get("identifier")
        if isinstance(ident, Mapping) and ident.get("system") == patient_system:
            value = ident.get("value")
            return value if isinstance(value, str) else None
        return None
    ref = subject.get("reference")
    if not isinstance(ref, str):
        return None
    parts = ref.split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    return parts[-1] if len(parts) >= 2 and parts[-2] == "Patient" and parts[-1] else None


def timed_resources(payload: Any) -> tuple[list[Any], list[datetime | None]]:
    """The payload's resources (a Bundle's entries, a list, or one) and, for each, when it
    was made, as :func:`observation_times` reads it (None: not an Observation, or no time
    with its offset). ValueError as :func:`observation_times`."""
    resources = _resources(payload)
    times: list[datetime | None] = []
    for res in resources:
        t = None
        raw = _given_time(res)
        if isinstance(raw, str) and "T" in raw:
            try:
                t = datetime.fromisoformat(raw)
            except ValueError:
                t = None
            if t is not None and t.tzinfo is None:
                t = None
        times.append(t)
    return resources, times


#: vitalgru column -> (its first LOINC code in :data:`LOINC_COLUMNS`, the UCUM code of the
#: Challenge's own unit): what :func:`row_to_observations` writes.
_AS_SENT = {
    col: (next(c for c, k in LOINC_COLUMNS.items() if k == col),
          next(u for u, f in units.items() if f is _SAME))
    for col, units in UNITS.items()
}  # fmt: skip


def row_to_observations(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The measurements of one Challenge-2019 row (Challenge or vitalgru names; nulls and
    NaN left out; ``ICULOS``, demographics and the label ignored) as FHIR Observations in
    the Challenge's units: what a FHIR feed of that hour could send, for testing an
    integration against recorded stays. :func:`observations_to_hour` reads them back."""
    out = []
    for name, value in row.items():
        col = PSV_COLUMNS.get(name, name)
        if col not in _AS_SENT or value is None or not math.isfinite(float(value)):
            continue
        code, unit = _AS_SENT[col]
        out.append({
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": LOINC_SYSTEM, "code": code}]},
            "valueQuantity": {"value": float(value), "unit": unit, "system": UCUM_SYSTEM,
                              "code": unit},
        })  # fmt: skip
    return out
