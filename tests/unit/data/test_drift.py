"""A cohort against a model's reference, on real set-A stays and on altered copies of them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from vitalgru.data.drift import (
    MIN_PATIENTS_FOR_DRIFT,
    PROFILE_COLUMNS,
    early_warning_drift,
    early_warning_reference,
)
from vitalgru.data.early_warning import EarlyWarningCohort, build_cohort
from vitalgru.io.psv import list_psv


def _risks(cohort: EarlyWarningCohort) -> np.ndarray:
    """A stand-in for a model's risks: a fixed function of the heart rate."""
    hr = cohort.frame["hr_bpm"].to_numpy(np.float64)
    return np.clip(np.nan_to_num((hr - 40.0) / 120.0, nan=0.2), 0.0, 1.0)


def _copy(files: list[Path], out: Path, edit=None) -> Path:
    out.mkdir()
    for f in files:
        if edit is None:
            shutil.copy(f, out / f.name)
            continue
        lines = f.read_text().splitlines()
        header = lines[0].split("|")
        rows = [edit(dict(zip(header, line.split("|"), strict=True))) for line in lines[1:]]
        text = [lines[0], *("|".join(r[h] for h in header) for r in rows)]
        (out / f.name).write_text("\n".join(text) + "\n")
    return out


@pytest.fixture(scope="module")
def set_a(physionet_mirror: Path) -> list[Path]:
    return list_psv(physionet_mirror / "challenge-2019" / "training_setA")


class TestEarlyWarningDrift:
    def test_same_cohort_has_no_drift_and_reference_is_json(
        self, set_a: list[Path], tmp_path: Path
    ) -> None:
        cohort = build_cohort(_copy(set_a[:150], tmp_path / "a"))
        ref = early_warning_reference(cohort, _risks(cohort), cohort.offsets, 0.6)
        ref = json.loads(json.dumps(ref))  # as stored with a model
        assert set(ref["columns"]) == set(PROFILE_COLUMNS)
        assert ref["n_patients"] == 150 and ref["n_patient_hours"] == int(cohort.offsets[-1])
        d = early_warning_drift(ref, cohort, _risks(cohort), 0.6)
        assert d["major"] == [] and d["moderate"] == [] and not d["too_few_patients"]
        assert max(r["psi"] for r in d["inputs"]) == pytest.approx(0.0, abs=1e-12)
        assert d["risk"]["psi"] == pytest.approx(0.0, abs=1e-12)
        r = d["risk"]
        assert r["alarm_hour_fraction_now"] == pytest.approx(r["alarm_hour_fraction_ref"])
        assert r["alarms_per_patient_day_now"] == pytest.approx(r["alarms_per_patient_day_ref"])
        assert 0 < r["alarm_hour_fraction_now"] < 1

    def test_other_patients_of_the_same_hospital_are_stable(
        self, set_a: list[Path], tmp_path: Path
    ) -> None:
        ref_c = build_cohort(_copy(set_a[:1500], tmp_path / "ref"))
        new_c = build_cohort(_copy(set_a[1500:1900], tmp_path / "new"))
        ref = early_warning_reference(ref_c, _risks(ref_c), ref_c.offsets, 0.6)
        d = early_warning_drift(ref, new_c, _risks(new_c), 0.6)
        assert d["major"] == [], d["inputs"][:3]
        assert d["risk"]["level"] == "stable"

    def test_fahrenheit_and_a_lab_no_longer_measured_are_named(
        self, set_a: list[Path], tmp_path: Path
    ) -> None:
        files = set_a[:150]
        ref_c = build_cohort(_copy(files, tmp_path / "ref"))
        ref = early_warning_reference(ref_c, _risks(ref_c), ref_c.offsets, 0.6)

        def shift(row: dict[str, str]) -> dict[str, str]:
            if row["Temp"] != "NaN":
                row["Temp"] = f"{float(row['Temp']) * 9 / 5 + 32:.1f}"
            row["Lactate"] = "NaN"
            return row

        new_c = build_cohort(_copy(files, tmp_path / "new", shift))
        d = early_warning_drift(ref, new_c, _risks(new_c), 0.6)
        assert set(d["major"]) == {"temp_c", "lactate_mmol_l"}
        by = {r["column"]: r for r in d["inputs"]}
        temp = by["temp_c"]
        assert temp["refused_ref"] == 0 and temp["refused_now"] == pytest.approx(
            ref["columns"]["temp_c"]["measured"]
        )
        assert temp["measured_now"] == 0 and temp["median_now"] is None
        assert by["lactate_mmol_l"]["measured_now"] == 0
        assert by["lactate_mmol_l"]["measured_ref"] > 0
        assert d["inputs"][0]["column"] in {"temp_c", "lactate_mmol_l"}  # largest first
        assert by["hr_bpm"]["psi"] == pytest.approx(0.0, abs=1e-12)

    def test_few_patients_and_bad_references(self, set_a: list[Path], tmp_path: Path) -> None:
        cohort = build_cohort(_copy(set_a[:20], tmp_path / "a"))
        ref = early_warning_reference(cohort, _risks(cohort), cohort.offsets, 0.6)
        assert early_warning_drift(ref, cohort, _risks(cohort), 0.6)["too_few_patients"]
        assert cohort.n_patients < MIN_PATIENTS_FOR_DRIFT
        with pytest.raises(ValueError, match="reference profile has version 0.*retrain"):
            early_warning_drift({**ref, "version": 0}, cohort, _risks(cohort), 0.6)
        with pytest.raises(ValueError, match="risks for a cohort of"):
            early_warning_drift(ref, cohort, _risks(cohort)[:-1], 0.6)
        with pytest.raises(ValueError, match="risks for offsets covering"):
            early_warning_reference(cohort, _risks(cohort)[:-1], cohort.offsets, 0.6)
