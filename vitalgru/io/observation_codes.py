"""The codes and units of the measurements the early-warning models take: LOINC codes
(:data:`LOINC_COLUMNS`), their IEEE 11073 (MDC) equivalents as bedside monitors send them
(:data:`MDC_LOINC`, :data:`MDC_UNITS`), the UCUM units each measurement may come in with
their conversion to the Challenge-2019 unit (:data:`UNITS`), and the spellings of those units
HL7 v2 feeds send (:data:`UNIT_SPELLINGS`), under UCUM or HL7 v2's own unit coding systems
(:data:`HL7_UNIT_SYSTEMS`).

FHIR Observations (:mod:`vitalgru.io.fhir_observations`) and HL7 v2 results
(:mod:`vitalgru.io.hl7v2`) are read through these tables.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = [
    "CATEGORY_SYSTEMS",
    "LOINC_COLUMNS",
    "LOINC_SYSTEM",
    "MDC_LOINC",
    "MDC_SYSTEM",
    "MDC_UNITS",
    "PULSE_OX_PROFILES",
    "SAME_UNIT",
    "UCUM_SYSTEM",
    "UNITS",
    "HL7_UNIT_SYSTEMS",
    "UNIT_SPELLINGS",
    "hl7_unit",
    "hl7_unit_system",
    "ucum_unit",
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

#: FHIR's observation-category code systems (R4's, and STU3's before it).
CATEGORY_SYSTEMS = {
    "http://terminology.hl7.org/CodeSystem/observation-category",
    "http://hl7.org/fhir/observation-category",
}
#: Profiles of a pulse-oximetry SpO2, which code it 2708-6 (59408-5 optional): R4 core's
#: oxygen saturation vital sign and US Core's pulse oximetry.
PULSE_OX_PROFILES = {
    "http://hl7.org/fhir/StructureDefinition/oxygensat",
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-pulse-oximetry",
}

#: LOINC code -> vitalgru measurement column. Pulse oximetry (59408-5, or 2708-6 in a
#: vital-sign Observation) is handled before this table (see
#: :mod:`vitalgru.io.fhir_observations`).
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
    "2708-6": "sao2_pct",  # Oxygen saturation in Arterial blood (of a blood gas; see above)
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


#: The conversion of a value already in the Challenge's unit.
SAME_UNIT = _times(1.0)
_PCT_FROM_FRACTION = _times(100.0)
_MMHG = {"mm[Hg]": SAME_UNIT, "kPa": _times(7.50062)}
_MMOL_L = {"mmol/L": SAME_UNIT, "meq/L": SAME_UNIT, "mEq/L": SAME_UNIT}
_PER_MIN = {"/min": SAME_UNIT, "{beats}/min": SAME_UNIT, "{breaths}/min": SAME_UNIT}
_PCT = {"%": SAME_UNIT, "1": _PCT_FROM_FRACTION}
_PER_NL = {"10*3/uL": SAME_UNIT, "10*9/L": SAME_UNIT, "/nL": SAME_UNIT, "10*3/mm3": SAME_UNIT}
#: 1 U = 1 umol/min and 1 kat = 1 mol/s, so 1 ukat = 60 U (Nordic laboratories report ukat/L).
_IU_L = {"U/L": SAME_UNIT, "[IU]/L": SAME_UNIT, "ukat/L": _times(60.0)}
_NG_ML = {"ng/mL": SAME_UNIT, "ug/L": SAME_UNIT, "ng/L": _times(0.001), "pg/mL": _times(0.001)}

#: vitalgru column -> {UCUM unit code: conversion to the Challenge's unit} (``""``: a value
#: sent without a unit, taken only where it can mean one unit, the pH). Factors: urea
#: nitrogen 2.801 mg/dL per mmol/L, calcium 4.008, glucose 18.016, magnesium 2.431,
#: phosphate 3.097, lactate 9.008 mg/dL per mmol/L; creatinine 88.42 and bilirubin 17.1
#: umol/L per mg/dL; haemoglobin 1.611 g/dL per mmol/L; 7.50062 mmHg per kPa; 60 U/L per
#: ukat/L. Calcium and magnesium are not taken in meq/L: UCUM's eq is the mole, which for
#: these divalent ions is two equivalents, so the unit cannot be read without a guess.
UNITS: dict[str, dict[str, Callable[[float], float]]] = {
    "hr_bpm": _PER_MIN,
    "spo2_pct": _PCT,
    "temp_c": {
        "Cel": SAME_UNIT,
        "[degF]": lambda f: (f - 32.0) * 5.0 / 9.0,
        "K": lambda k: k - 273.15,
    },
    "sbp_mmhg": _MMHG,
    "map_mmhg": _MMHG,
    "dbp_mmhg": _MMHG,
    "resp_per_min": _PER_MIN,
    "etco2_mmhg": _MMHG,
    "base_excess_mmol_l": _MMOL_L,
    "hco3_mmol_l": _MMOL_L,
    "fio2_frac": {"1": SAME_UNIT, "%": _times(0.01)},
    # no unit: the pH scale has one, and HL7 v2 feeds leave a pH's OBX-6 empty
    "ph": {"[pH]": SAME_UNIT, "1": SAME_UNIT, "": SAME_UNIT},
    "paco2_mmhg": _MMHG,
    "sao2_pct": _PCT,
    "ast_iu_l": _IU_L,
    "bun_mg_dl": {"mg/dL": SAME_UNIT, "mmol/L": _times(2.801)},
    "alkaline_phos_iu_l": _IU_L,
    "calcium_mg_dl": {"mg/dL": SAME_UNIT, "mmol/L": _times(4.008)},
    "chloride_mmol_l": _MMOL_L,
    "creatinine_mg_dl": {"mg/dL": SAME_UNIT, "umol/L": _times(1 / 88.42)},
    "bilirubin_direct_mg_dl": {"mg/dL": SAME_UNIT, "umol/L": _times(1 / 17.1)},
    "glucose_mg_dl": {"mg/dL": SAME_UNIT, "mmol/L": _times(18.016)},
    "lactate_mmol_l": {"mmol/L": SAME_UNIT, "mg/dL": _times(1 / 9.008)},
    "magnesium_mg_dl": {"mg/dL": SAME_UNIT, "mmol/L": _times(2.431)},
    "phosphate_mg_dl": {"mg/dL": SAME_UNIT, "mmol/L": _times(3.097)},
    "potassium_mmol_l": _MMOL_L,
    "bilirubin_total_mg_dl": {"mg/dL": SAME_UNIT, "umol/L": _times(1 / 17.1)},
    "troponin_i_ng_ml": _NG_ML,
    "hct_pct": {"%": SAME_UNIT, "1": _PCT_FROM_FRACTION, "L/L": _PCT_FROM_FRACTION},
    "hgb_g_dl": {"g/dL": SAME_UNIT, "g/L": _times(0.1), "mmol/L": _times(1.611)},
    "ptt_s": {"s": SAME_UNIT},
    "wbc_10e3_ul": _PER_NL,
    "fibrinogen_mg_dl": {"mg/dL": SAME_UNIT, "g/L": _times(100.0)},
    "platelets_10e3_ul": _PER_NL,
}

#: The litre in a UCUM unit, with its prefix (``dl``, ``ml``, ``ul``, ``l``), outside an
#: annotation (``{...}``, taken as it is): UCUM has two symbols for the litre, ``l`` and
#: ``L``, one unit; :data:`UNITS` spells it ``L``. Not a letter before it (``mol``, ``Cel``
#: keep theirs), nor after it.
_LITRE = re.compile(r"(\{[^}]*\})|(?<![A-Za-z\[])([dcmunpf]?)l(?![A-Za-z\]])")


def ucum_unit(code: str) -> str:
    """A UCUM unit code as :data:`UNITS` spells it: the litre's symbol ``l`` as ``L``
    (``mmol/l`` is ``mmol/L``, ``mg/dl`` ``mg/dL``, ``10*3/ul`` ``10*3/uL``), the same
    unit in UCUM; nothing else is changed."""
    return _LITRE.sub(lambda m: m.group(1) or f"{m.group(2)}L", code)


#: HL7 v2 unit spellings read as the UCUM code they can only mean; looked up with the micro
#: sign (µ, or the Greek mu) as UCUM's ``u`` and the litre as ``L`` (``mg/dl`` is ``mg/dL``,
#: :func:`ucum_unit`). Cell counts in thousands per microlitre
#: (``K/uL``, ``10^3/uL``, ``x10E3/uL``) and per nanolitre (``10^9/L``) are one unit.
UNIT_SPELLINGS = {
    "mmHg": "mm[Hg]", "mm Hg": "mm[Hg]", "degF": "[degF]", "F": "[degF]", "°F": "[degF]",
    "degC": "Cel", "C": "Cel", "°C": "Cel", "bpm": "/min", "beats/min": "/min",
    "breaths/min": "/min", "u/L": "U/L", "IU/L": "[IU]/L", "pH": "[pH]", "sec": "s",
    **{f"{x}10{p}3/uL": "10*3/uL" for x in ("", "x") for p in ("^", "E", "e")},
    **{f"{x}10{p}9/L": "10*9/L" for x in ("", "x") for p in ("^", "E", "e")},
    "K/uL": "10*3/uL",
}  # fmt: skip
#: The micro sign and the Greek mu, as UCUM's micro prefix ``u``.
_MICRO = str.maketrans({"\u00b5": "u", "\u03bc": "u"})


def hl7_unit(text: str) -> str:
    """An HL7 v2 ``OBX-6`` unit identifier as the UCUM code it means: stripped, the micro
    sign as ``u``, the litre as ``L`` (:func:`ucum_unit`), then :data:`UNIT_SPELLINGS`."""
    code = ucum_unit(text.strip().translate(_MICRO))
    return UNIT_SPELLINGS.get(code, code)


#: HL7 v2's own unit coding systems (its table 0396: ISO 2955's abbreviations and ANSI
#: X3.50's, each with HL7's additions), the default of older feeds before UCUM. Their codes
#: are not UCUM's, but a unit sent in them that is spelt as one :data:`UNITS` takes
#: (``mmol/L^^ISO+``) can mean only that unit; any other code of theirs is not guessed at.
HL7_UNIT_SYSTEMS = frozenset({"ISO+", "ANSI+"})
_TAKEN = frozenset(code for units in UNITS.values() for code in units) - {""}


def hl7_unit_system(code: str, system: str) -> str:
    """The FHIR unit system of an HL7 v2 ``OBX-6`` whose identifier :func:`hl7_unit` read as
    ``code`` and whose coding system (``OBX-6.3``) is ``system``: UCUM's for ``UCUM`` or none,
    and for :data:`HL7_UNIT_SYSTEMS` where ``code`` is a unit :data:`UNITS` takes; MDC's for
    ``MDC``; otherwise ``system`` as sent, which the reader refuses as not UCUM."""
    upper = system.strip().upper()
    if upper == "MDC":
        return MDC_SYSTEM  # the reader knows the vital signs' units
    if upper in ("", "UCUM") or (upper in HL7_UNIT_SYSTEMS and code in _TAKEN):
        return UCUM_SYSTEM
    return system.strip()
