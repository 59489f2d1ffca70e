"""FHIR R4 ``Observation`` resources (LOINC codes, UCUM units) as one ICU hour of the
Challenge-2019 measurements, in the units the early-warning models were trained on.

A hospital's integration engine rarely speaks the Challenge's column names; it speaks FHIR
vital-sign and laboratory Observations. :func:`observations_to_hour` reads them: each
Observation (and each ``component`` of one, as in a blood-pressure panel or a pulse
oximetry reading with its inhaled oxygen) whose LOINC code names a measurement
(:data:`~vitalgru.io.observation_codes.LOINC_COLUMNS`) and whose ``valueQuantity`` is in a unit this module can convert
(:data:`~vitalgru.io.observation_codes.UNITS`; the litre as UCUM's ``L`` or ``l``, one unit:
``mmol/l`` is ``mmol/L``) becomes a value in the Challenge's unit: a temperature in [degF], a
glucose in mmol/L, a PaCO2 in kPa, an FiO2 in %, a creatinine in umol/L are converted, never
taken as they come. Several values of one measurement in the hour are averaged, but a
final result replaces the preliminary ones sent before it (``preliminary``, then
``final``), and a correction (``corrected``, ``amended``) every one sent before it.

Nothing is guessed: an Observation with a code outside the table, a unit the table does not
know for that measurement (no unit at all: only a pH may come so), no numeric value, or a status that withdraws it
(``entered-in-error``, ``cancelled``) is skipped, and the result says which and why. What is
left goes to the monitor, which then flags physiologically impossible values as it does
for any row.

Oxygen saturation: a reading coded LOINC 59408-5 (by pulse oximetry, with or without
2708-6) is ``O2Sat``. 2708-6 alone is ``O2Sat`` too when the Observation is a vital sign
(category ``vital-signs``, not also ``laboratory``) or claims a pulse-oximetry profile
(:data:`~vitalgru.io.observation_codes.PULSE_OX_PROFILES`: R4 core's ``oxygensat``, which
requires 2708-6 and leaves 59408-5 optional, and US Core's): a pulse oximeter's SpO2 read
as an arterial blood gas was scored as ``SaO2``, with no ``O2Sat``. Otherwise (a
``laboratory`` Observation, or one with no category, as an HL7 v2 ``OBX`` is: bedside
monitors send pulse oximetry as MDC 150456, read as 59408-5) 2708-6 is ``SaO2``, the
blood gas.

The code and unit tables are :mod:`vitalgru.io.observation_codes`'s; which resources a payload
holds, when each was made and whom it is about, :mod:`vitalgru.io.fhir_resources`'s.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vitalgru.dsp.vitals import plausible_mean
from vitalgru.io.fhir_resources import payload_resources
from vitalgru.io.observation_codes import (
    CATEGORY_SYSTEMS,
    LOINC_COLUMNS,
    LOINC_SYSTEM,
    MDC_LOINC,
    MDC_SYSTEM,
    MDC_UNITS,
    PULSE_OX_PROFILES,
    SAME_UNIT,
    UCUM_SYSTEM,
    UNITS,
    ucum_unit,
)
from vitalgru.io.psv import MEASUREMENT_UNITS, PSV_COLUMNS

__all__ = [
    "HourFromObservations",
    "observations_to_hour",
    "row_to_observations",
]

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


def _categories(res: Mapping[str, Any]) -> set[str]:
    """The observation-category codes of an Observation (``vital-signs``, ``laboratory``)."""
    return {
        str(c["code"])
        for cat in _listed(res.get("category")) if isinstance(cat, Mapping)
        for c in _listed(cat.get("coding"))
        if isinstance(c, Mapping) and c.get("system") in CATEGORY_SYSTEMS and c.get("code")
    }  # fmt: skip


def _pulse_oximetry(res: Mapping[str, Any]) -> bool:
    """Whether an Observation's 2708-6 is a pulse oximeter's SpO2: it claims a
    pulse-oximetry profile, or is a vital sign and not a laboratory result."""
    meta = res.get("meta")
    profiles = _listed(meta.get("profile") if isinstance(meta, Mapping) else None)
    if any(isinstance(p, str) and p.split("|")[0] in PULSE_OX_PROFILES for p in profiles):
        return True
    categories = _categories(res)
    return "vital-signs" in categories and "laboratory" not in categories


def _column(codes: list[str], pulse_oximetry: bool = False) -> str | None:
    if "59408-5" in codes:  # pulse oximetry, even when 2708-6 comes with it
        return "spo2_pct"
    if pulse_oximetry and "2708-6" in codes:  # R4 core's oxygensat: 2708-6 required
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
    # UCUM's litre is l or L: mmol/l, a valid code for mmol/L, was refused
    convert = UNITS[column].get(ucum_unit(unit))
    if convert is None:
        known = ", ".join(u or "no unit" for u in UNITS[column])
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
    return convert(x), ucum_unit(unit), None


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

    for i, res in enumerate(payload_resources(payload)):
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
        pulse_ox = _pulse_oximetry(res)  # its components are of the same kind
        for part in (res, *components):
            codes = _loinc(part.get("code"))
            column = _column(codes, pulse_ox)
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
            if UNITS[column][unit] is not SAME_UNIT and unit not in out.converted.get(column, []):
                out.converted.setdefault(column, []).append(unit)
    for column in dict.fromkeys([*values, *preliminary]):
        xs = values.get(column, []) + preliminary.get(column, [])
        out.row[column] = plausible_mean(column, xs)
        out.used += len(xs)
    return out


#: vitalgru column -> (its first LOINC code in :data:`LOINC_COLUMNS`, the UCUM code of the
#: Challenge's own unit): what :func:`row_to_observations` writes.
_AS_SENT = {
    col: (next(c for c, k in LOINC_COLUMNS.items() if k == col),
          next(u for u, f in units.items() if f is SAME_UNIT))
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
