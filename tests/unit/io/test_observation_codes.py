"""The unit table of the gateway's FHIR and HL7 v2 intake: every conversion checked against
factors worked out here from molar masses and unit definitions, and the spellings a feed
sends read as the units they are."""

from __future__ import annotations

import pytest

from vitalgru.io.fhir_observations import observations_to_hour
from vitalgru.io.hl7v2 import oru_observations
from vitalgru.io.observation_codes import LOINC_COLUMNS, UNITS, ucum_unit

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
#: Each measurement's first LOINC code in the table.
CODE = {col: next(c for c, k in LOINC_COLUMNS.items() if k == col) for col in UNITS}


def _mg_dl_per_mmol_l(g_per_mol: float) -> float:
    """mg/dL of 1 mmol/L of a substance of that molar mass: g/mol is mg/mmol, per L, / 10."""
    return g_per_mol / 10


#: (column, unit) -> the value of 1 of that unit in the Challenge's unit, worked out from
#: molar masses (g/mol: glucose 180.16, creatinine 113.12, bilirubin 584.66, calcium 40.08,
#: magnesium 24.305, phosphorus 30.97, lactate 90.08, urea's two nitrogens 2 x 14.007,
#: haemoglobin per haem 64,458 / 4) and unit definitions (1 mmHg = 101.325 / 760 kPa;
#: 1 U = 1 umol/min, 1 ukat = 1 umol/s).
EXPECTED = {
    ("glucose_mg_dl", "mmol/L"): _mg_dl_per_mmol_l(180.16),
    ("creatinine_mg_dl", "umol/L"): _mg_dl_per_mmol_l(113.12) / 1000,
    ("bilirubin_total_mg_dl", "umol/L"): _mg_dl_per_mmol_l(584.66) / 1000,
    ("bilirubin_direct_mg_dl", "umol/L"): _mg_dl_per_mmol_l(584.66) / 1000,
    ("calcium_mg_dl", "mmol/L"): _mg_dl_per_mmol_l(40.08),
    ("magnesium_mg_dl", "mmol/L"): _mg_dl_per_mmol_l(24.305),
    ("phosphate_mg_dl", "mmol/L"): _mg_dl_per_mmol_l(30.97),
    ("lactate_mmol_l", "mg/dL"): 1 / _mg_dl_per_mmol_l(90.08),
    ("bun_mg_dl", "mmol/L"): _mg_dl_per_mmol_l(2 * 14.007),
    ("hgb_g_dl", "mmol/L"): 64458 / 4 / 1000 / 10,  # g/L of 1 mmol/L, in g/dL
    ("hgb_g_dl", "g/L"): 0.1,
    ("fibrinogen_mg_dl", "g/L"): 100.0,  # 1 g/L = 1000 mg/L = 100 mg/dL
    ("troponin_i_ng_ml", "ng/L"): 0.001,
    ("troponin_i_ng_ml", "ug/L"): 1.0,
    ("troponin_i_ng_ml", "pg/mL"): 0.001,  # pg/mL = ng/L
    ("ast_iu_l", "ukat/L"): 60.0,  # 1 umol/s = 60 umol/min
    ("alkaline_phos_iu_l", "ukat/L"): 60.0,
    ("fio2_frac", "%"): 0.01,
    ("spo2_pct", "1"): 100.0,
    ("sao2_pct", "1"): 100.0,
    ("hct_pct", "1"): 100.0,
    ("hct_pct", "L/L"): 100.0,
    **{(c, "kPa"): 760 / 101.325 for c in ("sbp_mmhg", "dbp_mmhg", "map_mmhg", "paco2_mmhg",
                                          "etco2_mmhg")},
}  # fmt: skip


def fhir(column: str, value: float, unit: str | None) -> tuple[float | None, list[str]]:
    """The value the model receives of one FHIR Observation, and the reasons of any skip."""
    quantity = {"value": value, "system": UCUM} | ({} if unit is None else {"code": unit})
    hour = observations_to_hour([{
        "resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": LOINC, "code": CODE[column]}]},
        "valueQuantity": quantity}], 1)  # fmt: skip
    return hour.row.get(column), [s["reason"] for s in hour.skipped]


def hl7(column: str, value: float, obx_6: str) -> tuple[float | None, list[str]]:
    """The value the model receives of one HL7 v2 OBX, and the reasons of any skip."""
    text = "\r".join([
        "MSH|^~\\&|LAB|ICU|VITALGRU|HOSP|20261207093000+0000||ORU^R01|M1|P|2.5",
        "PID|1||icu-1",
        f"OBX|1|NM|{CODE[column]}^x^LN||{value}|{obx_6}|||||F",
    ])  # fmt: skip
    hour = observations_to_hour(oru_observations(text).observations, 1)
    return hour.row.get(column), [s["reason"] for s in hour.skipped]


def test_every_conversion_is_the_one_molar_masses_and_unit_definitions_give() -> None:
    for column, units in UNITS.items():
        for unit, convert in units.items():
            if column == "temp_c":
                continue  # not a factor: below
            want = EXPECTED.get((column, unit), 1.0)
            got, _ = fhir(column, 2.0, unit)
            assert got == pytest.approx(2.0 * want, rel=5e-4), (column, unit)
            assert convert(2.0) == pytest.approx(2.0 * want, rel=5e-4), (column, unit)
    assert fhir("temp_c", 101.3, "[degF]")[0] == pytest.approx(38.5)
    assert fhir("temp_c", 310.15, "K")[0] == pytest.approx(37.0)
    assert fhir("temp_c", 37.2, "Cel")[0] == 37.2


@pytest.mark.parametrize(
    ("column", "value", "unit", "want"),
    [
        ("glucose_mg_dl", 7.0, "mmol/l", 126.112),
        ("creatinine_mg_dl", 88.42, "umol/l", 1.0),
        ("hgb_g_dl", 130.0, "g/l", 13.0),
        ("fibrinogen_mg_dl", 3.0, "g/l", 300.0),
        ("platelets_10e3_ul", 210.0, "10*3/ul", 210.0),
        ("troponin_i_ng_ml", 250.0, "ng/l", 0.25),
        ("hct_pct", 0.42, "l/l", 42.0),
        ("bun_mg_dl", 14.0, "mg/dl", 14.0),
        ("potassium_mmol_l", 4.1, "meq/l", 4.1),
        ("ast_iu_l", 40.0, "U/l", 40.0),
    ],
)
def test_ucums_lower_case_litre_is_the_litre(
    column: str, value: float, unit: str, want: float
) -> None:
    # UCUM has two symbols for the litre, l and L: mmol/l is a valid code of mmol/L, and
    # was refused ("cannot be converted"), in FHIR and, for g/l, ng/l, 10*3/ul, in HL7 v2
    got, why = fhir(column, value, unit)
    assert why == [] and got == pytest.approx(want, rel=1e-4)
    got, why = hl7(column, value, f"{unit}^^UCUM")
    assert why == [] and got == pytest.approx(want, rel=1e-4)


def test_only_the_litre_is_respelled() -> None:
    assert ucum_unit("mmol/l") == "mmol/L" and ucum_unit("mg/dl") == "mg/dL"
    assert ucum_unit("10*3/ul") == "10*3/uL" and ucum_unit("l/l") == "L/L"
    for code in ("mmol/L", "Cel", "[degF]", "mm[Hg]", "kPa", "K", "{breaths}/min", "cal"):
        assert ucum_unit(code) == code
    assert ucum_unit("{whole blood}/l") == "{whole blood}/L"  # an annotation as it is


def test_a_unit_the_table_lacks_is_refused_with_the_reason() -> None:
    for unit in ("mmol/dL", "MG/DL", "mg/L", ""):
        got, why = fhir("glucose_mg_dl", 7.0, unit)
        assert got is None and why == [
            f"unit {unit!r} cannot be converted to mg/dL glucose_mg_dl (known: mg/dL, mmol/L)"
        ], unit
    got, why = fhir("glucose_mg_dl", 7.0, None)  # no unit at all
    assert got is None and "unit '' cannot be converted" in why[0]
    got, why = hl7("glucose_mg_dl", 7.0, "")
    assert got is None and "unit '' cannot be converted" in why[0]


def test_a_ph_without_a_unit_is_a_ph_and_nothing_else_is_taken_without_one() -> None:
    # the pH scale is the only one a pH has; HL7 v2 feeds send it with OBX-6 empty, and a
    # blood gas's pH was refused ("unit '' cannot be converted")
    assert fhir("ph", 7.31, None) == (7.31, [])
    assert hl7("ph", 7.31, "") == (7.31, [])
    for column, value in (("fio2_frac", 40.0), ("spo2_pct", 0.97), ("hct_pct", 0.3)):
        assert fhir(column, value, None)[0] is None  # a fraction or a per cent: not guessed
        assert hl7(column, value, "")[0] is None


@pytest.mark.parametrize(
    ("column", "value", "obx_6", "want"),
    [
        ("platelets_10e3_ul", 210.0, "10\\S\\3/uL", 210.0),  # 10^3/uL, ^ escaped
        ("platelets_10e3_ul", 210.0, "x10E3/uL", 210.0),
        ("platelets_10e3_ul", 210.0, "K/uL", 210.0),
        ("wbc_10e3_ul", 9.5, "10\\S\\9/L", 9.5),
        ("wbc_10e3_ul", 9.5, "x10\\S\\9/l", 9.5),
        ("wbc_10e3_ul", 9.5, "10*3/\u00b5L^^UCUM", 9.5),  # the micro sign
        ("creatinine_mg_dl", 88.42, "\u00b5mol/L", 1.0),
        ("bilirubin_total_mg_dl", 17.1, "\u03bcmol/l", 1.0),  # the Greek mu
        ("temp_c", 101.3, "\u00b0F", 38.5),
        ("temp_c", 38.5, "\u00b0C", 38.5),
        ("ast_iu_l", 40.0, "IU/l", 40.0),
    ],
)
def test_the_unit_spellings_hl7_feeds_send_are_read_as_their_units(
    column: str, value: float, obx_6: str, want: float
) -> None:
    # each was refused ("cannot be converted"): the thousands per microlitre of every US
    # laboratory's cell counts, the micro and degree signs of a feed's unit text
    got, why = hl7(column, value, obx_6)
    assert why == [] and got == pytest.approx(want, rel=1e-3)


def test_enzymes_in_ukat_per_litre_and_troponin_in_pg_per_ml_are_converted() -> None:
    # refused before ("cannot be converted"): a Nordic laboratory's liver enzymes, and a
    # high-sensitivity troponin reported in pg/mL
    assert hl7("ast_iu_l", 0.5, "ukat/L^^UCUM") == (pytest.approx(30.0), [])
    assert fhir("alkaline_phos_iu_l", 1.5, "ukat/L") == (pytest.approx(90.0), [])
    assert fhir("troponin_i_ng_ml", 45.0, "pg/mL") == (pytest.approx(0.045), [])
    for unit in ("meq/L", "mEq/L"):  # two equivalents a mole: not read as mmol/L
        assert fhir("magnesium_mg_dl", 1.6, unit)[0] is None
        assert fhir("calcium_mg_dl", 4.6, unit)[0] is None


@pytest.mark.parametrize(
    ("column", "value", "obx_6", "want"),
    [
        ("glucose_mg_dl", 7.0, "mmol/L^^ISO+", 126.112),
        ("glucose_mg_dl", 126.0, "mg/dL^mg/dL^ANSI+", 126.0),
        ("paco2_mmhg", 5.3, "kPa^^ISO+", 39.753),
        ("sbp_mmhg", 96.0, "mmHg^millimetres of mercury^ISO+", 96.0),  # a spelling
        ("hgb_g_dl", 130.0, "g/l^^iso+", 13.0),
        ("wbc_10e3_ul", 9.5, "10\\S\\9/L^^ANSI+", 9.5),
    ],
)
def test_units_coded_in_hl7s_own_iso_and_ansi_systems_are_read_as_the_units_they_spell(
    column: str, value: float, obx_6: str, want: float
) -> None:
    # HL7 v2's default unit systems before UCUM: older feeds send them, and each of these
    # was refused as "unit system 'ISO+' is not UCUM" though it names a unit the table takes
    got, why = hl7(column, value, obx_6)
    assert why == [] and got == pytest.approx(want, rel=1e-4)


def test_what_iso_and_ansi_units_do_not_spell_as_a_taken_unit_stays_refused() -> None:
    for obx_6 in ("MG/DL^^ANSI+", "mg%^^ISO+", "^^ISO+", "mmol/L^^99LAB", "mmol/L^^L"):
        got, why = hl7("glucose_mg_dl", 7.0, obx_6)
        assert got is None and len(why) == 1 and why[0].endswith("is not UCUM"), obx_6
    # a unit the table takes, but not for this measurement: refused, as under UCUM
    got, why = hl7("creatinine_mg_dl", 90.0, "mmol/L^^ISO+")
    assert got is None and why == [
        "unit 'mmol/L' cannot be converted to mg/dL creatinine_mg_dl (known: mg/dL, umol/L)"
    ]
