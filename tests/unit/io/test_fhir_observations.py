"""FHIR Observations as one ICU hour: codes and units read as a hospital sends them, values
converted to the Challenge's units by hand-worked factors, and everything left out said."""

from __future__ import annotations

from typing import Any

import pytest

from vitalgru.io.fhir_observations import observations_to_hour, row_to_observations
from vitalgru.io.fhir_resources import observation_times
from vitalgru.io.observation_codes import LOINC_COLUMNS, MDC_LOINC, MDC_UNITS, UNITS
from vitalgru.io.psv import MEASUREMENT_COLUMNS

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


def obs(codes: str | list[str], value: Any = None, unit: str | None = None, **extra: Any) -> dict:
    """An Observation with LOINC ``codes`` and, when ``unit`` is given, a UCUM quantity."""
    codes = [codes] if isinstance(codes, str) else codes
    out: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": c} for c in codes]},
    }
    if unit is not None:
        out["valueQuantity"] = {"value": value, "unit": unit, "system": UCUM, "code": unit}
    return {**out, **extra}


def bundle(*resources: dict) -> dict:
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"resource": r} for r in resources]}  # fmt: skip


def test_units_are_converted_to_the_challenges_by_hand_worked_factors() -> None:
    got = observations_to_hour(
        bundle(
            obs("8310-5", 101.3, "[degF]"),  # (101.3 - 32) * 5 / 9 = 38.5 degC
            obs("2345-7", 7.0, "mmol/L"),  # 7.0 * 18.016 = 126.112 mg/dL
            obs("2019-8", 6.2, "kPa"),  # 6.2 * 7.50062 = 46.504 mmHg
            obs("3150-0", 40, "%"),  # FiO2 0.40
            obs("2160-0", 120, "umol/L"),  # 120 / 88.42 = 1.3572 mg/dL
            obs("718-7", 130, "g/L"),  # 13.0 g/dL
            obs("2524-7", 18.016, "mg/dL"),  # 18.016 / 9.008 = 2.0 mmol/L
            obs("10839-9", 250, "ng/L"),  # 0.25 ng/mL
            obs("777-3", 210, "10*9/L"),  # 210 x10^3/uL
            obs("4544-3", 0.42, "L/L"),  # 42 %
        ),
        hour=7,
    )
    assert got.skipped == [] and got.used == 10
    assert got.row == pytest.approx({
        "ICULOS": 7.0, "temp_c": 38.5, "glucose_mg_dl": 126.112, "paco2_mmhg": 46.5038,
        "fio2_frac": 0.40, "creatinine_mg_dl": 1.35716, "hgb_g_dl": 13.0,
        "lactate_mmol_l": 2.0, "troponin_i_ng_ml": 0.25, "platelets_10e3_ul": 210.0,
        "hct_pct": 42.0}, rel=1e-5)  # fmt: skip
    assert got.converted["temp_c"] == ["[degF]"] and got.converted["hct_pct"] == ["L/L"]
    assert "platelets_10e3_ul" not in got.converted  # 10*9/L is 10*3/uL: nothing to convert


def test_panels_pulse_oximetry_and_repeated_values() -> None:
    bp = obs("85354-9", component=[obs("8480-6", 92, "mm[Hg]"), obs("8462-4", 48, "mm[Hg]")])
    pulse_ox = obs(["2708-6", "59408-5"], 91, "%", component=[obs("3150-0", 0.5, "1")])
    got = observations_to_hour(
        [bp, pulse_ox, obs("2708-6", 97, "%"), obs("8867-4", 110, "/min"),
         obs("8867-4", 120, "{beats}/min")],
        hour=3,
    )  # fmt: skip
    assert got.skipped == []
    assert got.row == {"ICULOS": 3.0, "sbp_mmhg": 92.0, "dbp_mmhg": 48.0, "spo2_pct": 91.0,
                       "fio2_frac": 0.5, "sao2_pct": 97.0, "hr_bpm": 115.0}  # fmt: skip
    assert got.used == 7 and got.converted == {}


CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


def category(*codes: str) -> list[dict]:
    return [{"coding": [{"system": CATEGORY, "code": c}]} for c in codes]


def test_a_vital_sign_spo2_coded_2708_6_alone_is_pulse_oximetry() -> None:
    # R4 core's oxygensat profile requires 2708-6 and leaves 59408-5 optional: a pulse
    # oximeter's 91 % sent so was scored as an arterial blood gas (SaO2), with no O2Sat
    profile = {"profile": ["http://hl7.org/fhir/StructureDefinition/oxygensat"]}
    r4_core = obs("2708-6", 91, "%", meta=profile, category=category("vital-signs"))
    assert observations_to_hour([r4_core], 3).row == {"ICULOS": 3.0, "spo2_pct": 91.0}
    for spo2 in (
        obs("2708-6", 91, "%", category=category("vital-signs")),  # the category alone
        obs("2708-6", 91, "%", meta=profile),  # the profile alone
        obs("2708-6", 91, "%", meta={"profile": [  # US Core's, with a version
            "http://hl7.org/fhir/us/core/StructureDefinition/us-core-pulse-oximetry|6.1.0"]}),
        # a vital-sign panel's component
        obs("85353-1", category=category("vital-signs"), component=[obs("2708-6", 91, "%")]),
    ):  # fmt: skip
        assert observations_to_hour([spo2], 3).row == {"ICULOS": 3.0, "spo2_pct": 91.0}, spo2
    # a blood gas: laboratory, no category, or both categories without the profile
    for sao2 in (obs("2708-6", 97, "%", category=category("laboratory")),
                 obs("2708-6", 97, "%"),
                 obs("2708-6", 97, "%", category=category("vital-signs", "laboratory")),
                 obs("2708-6", 97, "%", category=[{"coding": [{"system": "urn:x",
                                                               "code": "vital-signs"}]}]),
                 obs("2708-6", 97, "%", category="vital-signs", meta=["odd"])):  # fmt: skip
        assert observations_to_hour([sao2], 3).row == {"ICULOS": 3.0, "sao2_pct": 97.0}, sao2


def test_what_cannot_be_taken_is_skipped_with_the_reason() -> None:
    got = observations_to_hour(
        bundle(
            obs("8867-4", 88, "/min"),  # the one value that counts
            obs("29463-7", 80, "kg"),  # body weight: not a model input
            obs("2345-7", 1.1, "g/L"),  # glucose in a unit the table lacks
            obs("8867-4", 300, "/min", status="entered-in-error"),
            obs("8867-4"),  # no value
            obs("9279-1", "fast", "/min"),
            {**obs("8480-6", 120, "mm[Hg]"), "valueQuantity": {"value": 120, "unit": "mmHg",
                                                               "system": "http://example.org"}},
            {"resourceType": "Patient", "gender": "male"},
            obs("85354-9", component=[obs("8478-0", 70, "cm[H2O]")]),
            {**obs("2524-7", 0.5, "mmol/L"), "valueQuantity": {  # a bound, not a value
                "value": 0.5, "comparator": "<", "unit": "mmol/L", "system": UCUM,
                "code": "mmol/L"}},
            obs("8867-4", True, "/min"),  # JSON true: taken as 1 before
            obs("8867-4", "80", "/min"),  # a string: FHIR's decimal is a JSON number
        ),
        hour=1,
    )  # fmt: skip
    assert got.row == {"ICULOS": 1.0, "hr_bpm": 88.0} and got.used == 1
    reasons = {s["index"]: s["reason"] for s in got.skipped}
    assert sorted(reasons) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert reasons[9] == "value <0.5 is a bound, not a value"
    assert (
        reasons[10] == "value True is not a number" and reasons[11] == "value '80' is not a number"
    )
    assert reasons[1] == "no LOINC code of a measurement the model uses"
    assert reasons[2].startswith("unit 'g/L' cannot be converted to mg/dL glucose_mg_dl")
    assert reasons[3] == "status 'entered-in-error'"
    assert reasons[4] == "no valueQuantity with a value"
    assert reasons[5] == "value 'fast' is not a number"
    assert reasons[6] == "unit system 'http://example.org' is not UCUM"
    assert reasons[7] == "not an Observation (Patient)"
    assert reasons[8].startswith("unit 'cm[H2O]' cannot be converted to mmHg map_mmhg")
    assert got.skipped[0]["code"] == ["29463-7"] and got.skipped[6]["code"] is None


def test_bad_shapes_and_hours_are_refused() -> None:
    with pytest.raises(ValueError, match="expected a FHIR Bundle"):
        observations_to_hour("HR=88", hour=1)
    for hour in (0, 1.5, True):
        with pytest.raises(ValueError, match="whole number >= 1"):
            observations_to_hour([], hour=hour)
    assert observations_to_hour(bundle(), hour=2).row == {"ICULOS": 2.0}  # an empty hour
    # JSON of the wrong shape inside: a ValueError (422 at the gateway), not a TypeError
    with pytest.raises(ValueError, match="entry must be a list, got int"):
        observations_to_hour({"resourceType": "Bundle", "entry": 1}, hour=1)
    with pytest.raises(ValueError, match="entry must be a list"):
        observation_times({"resourceType": "Bundle", "entry": {"resource": obs("8867-4")}})


def test_malformed_parts_of_an_observation_skip_it_with_the_reason() -> None:
    got = observations_to_hour(
        [
            obs("8867-4", 88, "/min", status={"code": "final"}),  # not a code
            obs("8867-4", 90, "/min", status=["final"]),
            {**obs("8867-4", 91, "/min"), "code": {"coding": 5}},  # not an array
            obs("85354-9", component={"code": "8480-6"}),  # not an array
            obs("9279-1", 20, "/min"),  # the one that counts
        ],
        hour=1,
    )
    assert got.row == {"ICULOS": 1.0, "resp_per_min": 20.0}
    reasons = [s["reason"] for s in got.skipped]
    assert reasons[0] == "status {'code': 'final'} is not a code"
    assert reasons[1] == "status ['final'] is not a code"
    assert reasons[2:] == ["no LOINC code of a measurement the model uses"] * 2


def test_every_measurement_has_units_and_every_code_a_measurement() -> None:
    assert set(UNITS) == set(MEASUREMENT_COLUMNS)
    assert set(LOINC_COLUMNS.values()) == set(MEASUREMENT_COLUMNS)
    for column, units in UNITS.items():  # each takes at least its own unit as it is
        assert any(f(2.5) == 2.5 for f in units.values()), column


def test_a_row_written_as_observations_reads_back_as_it_was() -> None:
    row = {"ICULOS": 4, "HR": 97.0, "O2Sat": 93.0, "Temp": None, "SaO2": 96.0, "FiO2": 0.4,
           "pH": 7.31, "WBC": 14.2, "lactate_mmol_l": 3.1, "Age": 68.0, "SepsisLabel": 1,
           "Glucose": float("nan")}  # fmt: skip
    written = row_to_observations(row)
    assert len(written) == 7  # no temperature, glucose, age, hour or label
    got = observations_to_hour({"resourceType": "Bundle", "entry": [
        {"resource": o} for o in written]}, hour=4)  # fmt: skip
    assert got.skipped == [] and got.converted == {}
    assert got.row == {"ICULOS": 4.0, "hr_bpm": 97.0, "spo2_pct": 93.0, "sao2_pct": 96.0,
                       "fio2_frac": 0.4, "ph": 7.31, "wbc_10e3_ul": 14.2,
                       "lactate_mmol_l": 3.1}  # fmt: skip


def test_a_devices_ieee_11073_codes_and_units_are_read() -> None:
    mdc = "urn:iso:std:iso:11073:10101"

    def device(code: str, value: float, unit: str) -> dict:
        return {"resourceType": "Observation", "status": "final",
                "code": {"coding": [{"system": mdc, "code": code}]},
                "valueQuantity": {"value": value, "system": mdc, "code": unit}}  # fmt: skip

    hour = observations_to_hour([
        device("147842", 104, "264864"),  # MDC_ECG_HEART_RATE, beats per minute
        device("150364", 101.3, "266560"),  # MDC_TEMP_BODY, Fahrenheit (MDC_DIM_FAHR)
        device("150037", 88, "266016"),  # arterial systolic, mmHg
        device("149530", 99, "264864"),  # a pulse rate: not the heart rate
        device("151562", 22, "999999"),  # a unit code the table does not know
        device("150364", 98.6, "268160"),  # not MDC_DIM_FAHR (read as Fahrenheit before)
    ], 3)  # fmt: skip
    assert hour.row == pytest.approx({"ICULOS": 3.0, "hr_bpm": 104.0, "temp_c": 38.5,
                                      "sbp_mmhg": 88.0})  # fmt: skip
    assert [s["index"] for s in hour.skipped] == [3, 4, 5]
    assert "not UCUM" in hour.skipped[1]["reason"] and "not UCUM" in hour.skipped[2]["reason"]
    assert set(MDC_LOINC.values()) <= set(LOINC_COLUMNS)  # each a code the reader knows
    assert set(MDC_UNITS.values()) <= {u for units in UNITS.values() for u in units}


def test_a_final_result_replaces_the_preliminary_ones_before_it() -> None:
    # a preliminary lactate of 6.0 and the final 2.0 of the same specimen were averaged: 4.0
    early, late = obs("2524-7", 6.0, "mmol/L", status="preliminary"), obs("2524-7", 2.0, "mmol/L")
    got = observations_to_hour([early, late, obs("8867-4", 90, "/min")], hour=2)
    assert got.row == {"ICULOS": 2.0, "lactate_mmol_l": 2.0, "hr_bpm": 90.0}
    assert got.preliminary == {} and got.values["lactate_mmol_l"] == [2.0] and got.used == 2
    # alone, a preliminary result is the best there is, held apart for a final one to replace
    got = observations_to_hour([early], hour=2)
    assert got.row["lactate_mmol_l"] == 6.0 and got.used == 1
    assert got.preliminary == {"lactate_mmol_l": [6.0]} and got.values == {}
    # one sent after the final result joins it (another specimen's, not yet final)
    got = observations_to_hour([late, early], hour=2)
    assert got.row["lactate_mmol_l"] == 4.0 and got.preliminary == {"lactate_mmol_l": [6.0]}
    # a correction replaces both
    fixed = obs("2524-7", 3.0, "mmol/L", status="corrected")
    got = observations_to_hour([late, early, fixed], hour=2)
    assert got.row["lactate_mmol_l"] == 3.0 and got.preliminary == {}
