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
    arrhythmia_drift,
    arrhythmia_reference,
    beat_inputs,
    early_warning_drift,
    early_warning_reference,
)
from vitalgru.data.early_warning import EarlyWarningCohort, build_cohort
from vitalgru.io.psv_folder import list_psv
from vitalgru.metrics.drift import reference_histogram


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
        assert d["unjudged_why"] is None
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

    def test_a_patients_descriptors_count_once_a_stay(
        self, set_a: list[Path], tmp_path: Path
    ) -> None:
        ref_c = build_cohort(_copy(set_a[:1500], tmp_path / "ref"))
        ref = early_warning_reference(ref_c, _risks(ref_c), ref_c.offsets, 0.6)
        # 150 other stays of the same hospital (about 5,500 hours)
        new_c = build_cohort(_copy(set_a[1500:1650], tmp_path / "new"))
        d = early_warning_drift(ref, new_c, _risks(new_c), 0.6)
        by = {r["column"]: r for r in d["inputs"]}
        # 150 ages are 150 values, too few for a PSI (judged as 5,500 before)
        for c in ("age_years", "gender_male", "hosp_adm_time_h"):
            assert by[c]["level"] in ("unknown", "stable"), (c, by[c])
            assert by[c]["psi"] is None or by[c]["level"] != "major"
        assert by["hr_bpm"]["level"] != "unknown"  # hourly values are still judged

    def test_a_few_patients_are_not_judged_hour_by_hour(
        self, set_a: list[Path], tmp_path: Path
    ) -> None:
        # batches of the reference's own stays, where nothing can have drifted: judged
        # hour by hour (the hours of a stay move together) they came out moderate or major
        ref_c = build_cohort(_copy(set_a[:400], tmp_path / "ref"))
        ref = early_warning_reference(ref_c, _risks(ref_c), ref_c.offsets, 0.6)
        for k in range(4):
            files = set_a[30 * k : 30 * (k + 1)]
            new_c = build_cohort(_copy(files, tmp_path / f"n{k}"))
            d = early_warning_drift(ref, new_c, _risks(new_c), 0.6)
            assert d["too_few_patients"] and d["major"] == [] and d["moderate"] == []
            assert {r["level"] for r in [*d["inputs"], d["risk"]]} == {"unknown"}
            assert d["unjudged_why"].startswith("only 30 patients (fewer than 100)")
            assert d["inputs"][0]["psi"] is not None  # the figures are still reported

    def test_few_patients_and_bad_references(self, set_a: list[Path], tmp_path: Path) -> None:
        cohort = build_cohort(_copy(set_a[:20], tmp_path / "a"))
        ref = early_warning_reference(cohort, _risks(cohort), cohort.offsets, 0.6)
        few = early_warning_drift(ref, cohort, _risks(cohort), 0.6)
        assert few["too_few_patients"] and few["unjudged_why"] is not None
        assert cohort.n_patients < MIN_PATIENTS_FOR_DRIFT
        with pytest.raises(ValueError, match="reference profile has version 0.*retrain"):
            early_warning_drift({**ref, "version": 0}, cohort, _risks(cohort), 0.6)
        with pytest.raises(ValueError, match="risks for a cohort of"):
            early_warning_drift(ref, cohort, _risks(cohort)[:-1], 0.6)
        with pytest.raises(ValueError, match="risks for offsets covering"):
            early_warning_reference(cohort, _risks(cohort)[:-1], cohort.offsets, 0.6)


class TestArrhythmiaDrift:
    def _beats(self, rng: np.random.Generator, n: int, gain: float = 1.0, rr_s: float = 0.8):
        t = np.linspace(-1, 1, 64)
        amp = rng.normal(1.2, 0.15, n)[:, None]
        windows = gain * amp * np.exp(-((t / 0.1) ** 2))[None, :]
        idx = np.cumsum(rng.normal(rr_s, 0.03, n) * 360).astype(np.int64)
        rid = np.repeat(["a", "b"], [n // 2, n - n // 2])
        return windows, idx, rid

    def test_inputs(self) -> None:
        w = np.array([[0.0, 1.0, -0.5], [0.0, 2.0, 0.0], [1.0, 1.0, 1.0]])
        got = beat_inputs(w, np.array([0, 360, 0]), np.array(["a", "a", "b"]), 360.0,
                          np.array([True, False, True]))  # fmt: skip
        hr, amp, ok = (
            got[k][0] for k in ("heart_rate_bpm", "amplitude_mv", "beat_in_clean_signal")
        )
        # the first beat of each record has no RR interval before it: left out
        assert hr.tolist() == [60.0]
        assert amp.tolist() == [1.5, 2.0, 0.0] and ok.tolist() == [1.0, 0.0, 1.0]
        with pytest.raises(ValueError, match="3 windows, 2 beat positions"):
            beat_inputs(w, np.array([0, 1]), np.array(["a", "a", "b"]), 360.0)

    def test_gain_error_and_class_mix(self) -> None:
        rng = np.random.default_rng(0)
        w, idx, rid = self._beats(rng, 4000)
        pred = rng.choice(5, size=4000, p=[0.9, 0.03, 0.06, 0.01, 0.0])
        ref = json.loads(json.dumps(arrhythmia_reference(beat_inputs(w, idx, rid, 360.0), pred, 2)))
        assert ref["task"] == "arrhythmia" and ref["n_beats"] == 4000
        same = arrhythmia_drift(ref, beat_inputs(*self._beats(rng, 4000)[:3], 360.0),
                                rng.choice(5, size=4000, p=[0.9, 0.03, 0.06, 0.01, 0.0]), 6)  # fmt: skip
        assert same["major"] == [] and same["moderate"] == [] and not same["too_few_records"]
        w2, idx2, rid2 = self._beats(rng, 4000, gain=2.0, rr_s=0.5)
        # every call V: the class mix moves, and says so class by class
        moved = arrhythmia_drift(ref, beat_inputs(w2, idx2, rid2, 360.0), np.full(4000, 2), 1)
        assert set(moved["major"]) == {"amplitude_mv", "heart_rate_bpm", "predicted class"}
        assert moved["predicted"]["classes"]["V"]["now"] == 1.0
        assert moved["predicted"]["classes"]["N"]["ref"] == pytest.approx(0.9, abs=0.02)
        assert moved["too_few_records"]

    def test_shorter_records_are_not_a_change_of_heart_rate(self) -> None:
        # the same beats cut into 10-s strips: a first beat every 12, without an RR
        # interval, was a missing heart rate (8 % of beats) and a major shift (PSI 0.44)
        rng = np.random.default_rng(1)
        w, idx, rid = self._beats(rng, 4000)
        pred = rng.choice(5, size=4000, p=[0.9, 0.03, 0.06, 0.01, 0.0])
        ref = arrhythmia_reference(beat_inputs(w, idx, rid, 360.0), pred, 2)
        w2, idx2, _ = self._beats(rng, 4000)
        strips = (np.arange(4000) // 12).astype(str)
        d = arrhythmia_drift(ref, beat_inputs(w2, idx2, strips, 360.0), pred, 334)
        hr = next(r for r in d["inputs"] if r["column"] == "heart_rate_bpm")
        assert hr["level"] == "stable" and hr["psi"] < 0.02, hr
        assert hr["measured_ref"] == hr["measured_now"] == 1.0
        assert d["major"] == [] and d["moderate"] == []
        assert ref["n_beats"] == 4000 and ref["columns"]["heart_rate_bpm"]["n"] == 3998
        # a reference stored with the first beats as missing heart rates reads the same
        rates = beat_inputs(w, idx, rid, 360.0)["heart_rate_bpm"][0]
        old_hr = np.insert(rates, [0, 1999], np.nan)  # records "a" and "b" start at 0, 2000
        old = {**ref, "columns": {**ref["columns"], "heart_rate_bpm": reference_histogram(old_hr)}}
        assert old["columns"]["heart_rate_bpm"]["n"] == 4000
        again = arrhythmia_drift(json.loads(json.dumps(old)), beat_inputs(w2, idx2, strips, 360.0),
                                 pred, 334)  # fmt: skip
        hr_old = next(r for r in again["inputs"] if r["column"] == "heart_rate_bpm")
        assert hr_old["psi"] == pytest.approx(hr["psi"], abs=1e-9)
        assert hr_old["measured_ref"] == pytest.approx(1.0)


def test_too_few_values_to_judge_are_unknown_not_stable() -> None:
    # risks moved wholesale over 400 hours (PSI 16): neither PSI could be judged, and the
    # share measured (always all, for a risk) made the row "stable"
    from vitalgru.data.drift_rows import drift_row
    from vitalgru.metrics.drift import histogram_on, reference_histogram

    rng = np.random.default_rng(0)
    ref = reference_histogram(rng.uniform(0, 0.1, 5000))
    moved = drift_row("risk", ref, histogram_on(ref["edges"], rng.uniform(0.5, 0.9, 400)))
    assert moved["psi"] > 10 and moved["level"] == "unknown"
    judged = drift_row("risk", ref, histogram_on(ref["edges"], rng.uniform(0.5, 0.9, 600)))
    assert judged["level"] == "major"
    # a share measured that changed is still found with too few values for a PSI
    sparse = reference_histogram(np.r_[rng.uniform(0, 1, 100), np.full(9900, np.nan)])
    half = drift_row("lab", sparse, histogram_on(sparse["edges"], np.r_[rng.uniform(0, 1, 20),
                                                                       np.full(9980, np.nan)]))  # fmt: skip
    assert half["level"] in ("moderate", "major")


def test_a_share_measured_is_not_judged_on_a_small_batch() -> None:
    """30 new rows of a lab the reference measured in half its 10,000 rows expect 15
    values, too few to call a change: judged at the reference's size, a quiet night's
    batch would be reported as a major drift."""
    from vitalgru.data.drift_rows import drift_row
    from vitalgru.metrics.drift import histogram_on

    v = np.where(np.arange(10_000) % 2 == 0, np.linspace(1, 2, 10_000), np.nan)
    ref = reference_histogram(v, 0, 10)
    now = histogram_on(ref["edges"], np.full(30, np.nan), 0)
    assert drift_row("lactate", ref, now)["level"] == "unknown"
