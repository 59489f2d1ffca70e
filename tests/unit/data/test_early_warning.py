"""Early-warning cohort: folds by patient, dataset files round trip, GRU-D arrays."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vitalgru.data.early_warning import (
    CHILDREN,
    EarlyWarningCohort,
    build_cohort,
    patient_folds,
    patient_groups,
)
from vitalgru.data.early_warning_files import load_dataset, write_dataset
from vitalgru.data.gru_d_inputs import NormStats, fit_norm_stats, gru_d_arrays
from vitalgru.errors import RecordError
from vitalgru.io.psv import MEASUREMENT_COLUMNS


@pytest.fixture(scope="module")
def cohort(physionet_mirror: Path):
    return build_cohort(physionet_mirror / "challenge-2019" / "training_setA", limit=300)


class TestFolds:
    def test_stratified_and_deterministic(self):
        septic = np.r_[np.ones(50, bool), np.zeros(450, bool)]
        f = patient_folds(septic, 5, seed=3)
        assert np.bincount(f[septic]).tolist() == [10] * 5
        assert np.bincount(f[~septic]).tolist() == [90] * 5
        np.testing.assert_array_equal(f, patient_folds(septic, 5, seed=3))
        assert not np.array_equal(f, patient_folds(septic, 5, seed=4))

    def test_too_few_patients(self, caplog: pytest.LogCaptureFixture):
        with pytest.raises(ValueError):
            patient_folds(np.zeros(3, bool), 5)
        # three septic patients for five folds: two folds without one, said (silent before;
        # their utility is undefined and the mean over folds leaves them out)
        f = patient_folds(np.r_[np.ones(3, bool), np.zeros(17, bool)], 5)
        assert np.bincount(f[:3], minlength=5).tolist().count(0) == 2
        assert "3 septic patients for 5 folds: 2 fold(s) will hold none" in caplog.text


class TestDataset:
    def test_round_trip(self, cohort, tmp_path: Path):
        folds = patient_folds(cohort.septic(), 3)
        write_dataset(cohort, folds, tmp_path)
        back, f2, manifest = load_dataset(tmp_path)
        np.testing.assert_array_equal(f2, folds)
        np.testing.assert_array_equal(back.offsets, cohort.offsets)
        assert back.frame.equals(cohort.frame)
        assert manifest["n_patients"] == 300
        assert manifest["n_septic_patients"] == int(cohort.septic().sum())
        assert "hr_bpm" in manifest["implausible_values"]
        assert json.loads((tmp_path / "manifest.json").read_text())["plausibility_limits"][
            "temp_c"
        ] == [25.0, 45.0]
        assert (tmp_path / "attrition.csv").read_text().startswith("database,item,stage")

    def test_text_cells_are_counted_through_to_the_manifest(
        self, physionet_mirror: Path, tmp_path: Path
    ):
        src = physionet_mirror / "challenge-2019" / "training_setA" / "p000001.psv"
        lines = src.read_text().splitlines()
        cells = lines[3].split("|")
        cells[0] = "high"  # HR at the third hour
        (tmp_path / "in").mkdir()
        (tmp_path / "in" / "p000001.psv").write_text(
            "\n".join([*lines[:3], "|".join(cells), *lines[4:]])
        )
        c = build_cohort(tmp_path / "in")
        assert c.n_patients == 1 and len(c.frame) == len(lines) - 1  # nothing else lost
        assert np.isnan(c.frame["hr_bpm"].iloc[2])
        assert c.non_numeric_counts == {"hr_bpm": 1}
        write_dataset(c, np.zeros(1, np.int64), tmp_path / "ds")
        back, _, manifest = load_dataset(tmp_path / "ds")
        assert manifest["non_numeric_values"] == back.non_numeric_counts == {"hr_bpm": 1}

    def test_a_sex_coded_1_2_is_refused_and_counted_not_taken_for_a_number(
        self, physionet_mirror: Path, tmp_path: Path
    ):
        # Gender 2 (ISO 5218 female) went into the model as a "more than male" 2
        src = physionet_mirror / "challenge-2019" / "training_setA" / "p000001.psv"
        head, *rows = src.read_text().splitlines()
        g = head.split("|").index("Gender")
        for code in ("2", "0.5"):  # and one between the two flags' values
            coded = ["|".join(c[:g] + [code] + c[g + 1 :]) for c in (r.split("|") for r in rows)]
            (tmp_path / code).mkdir()
            (tmp_path / code / "p000001.psv").write_text("\n".join([head, *coded]) + "\n")
            c = build_cohort(tmp_path / code)
            assert c.frame["gender_male"].isna().all() and len(c.frame) == len(rows)
            assert c.implausible_counts["gender_male"] == len(rows)

    def test_skipped_icu_hours_are_counted_and_warned(
        self, physionet_mirror: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ):
        # p000001 keeps every hour; p000002 loses the rows of hours 4-6 (3 hours) and
        # 10 (1 hour); p000003 loses none but starts late (not a skip)
        set_a = physionet_mirror / "challenge-2019" / "training_setA"
        (tmp_path / "in").mkdir()
        for name, drop in (("p000001", ()), ("p000002", (4, 5, 6, 10)), ("p000003", (1, 2))):
            lines = (set_a / f"{name}.psv").read_text().splitlines()
            kept = [ln for i, ln in enumerate(lines) if i == 0 or i not in drop]
            (tmp_path / "in" / f"{name}.psv").write_text("\n".join(kept) + "\n")
        with caplog.at_level("WARNING"):
            c = build_cohort(tmp_path / "in")
        assert c.n_patients == 3  # scored, not dropped
        assert c.skipped_hours() == {"p000002": 4}
        assert "1 patient(s) have rows that skip ICU hours (4 hours in all" in caplog.text
        write_dataset(c, np.zeros(3, np.int64), tmp_path / "ds")
        assert load_dataset(tmp_path / "ds")[2]["skipped_hours"] == {"p000002": 4}
        assert c.subset(np.array([0, 2])).skipped_hours() == {}
        # the hourly grid the scorer uses: the original rows untouched, a row per hour
        grid, rows = c.on_hourly_grid()
        assert len(grid.frame) == len(c.frame) + 4 and grid.skipped_hours() == {}
        assert grid.frame.iloc[rows].reset_index(drop=True).equals(c.frame)
        added = np.setdiff1d(np.arange(len(grid.frame)), rows)
        g = grid.frame
        assert g.loc[added, "patient_id"].eq("p000002").all()
        assert g.loc[added, "hour"].tolist() == [4, 5, 6, 10]
        assert g.loc[added, list(MEASUREMENT_COLUMNS)].isna().all().all()
        for col in ("age_years", "gender_male", "sepsis_label"):  # carried from the hour before
            assert g.loc[added, col].tolist() == g.loc[added - 1, col].tolist()
        np.testing.assert_array_equal(grid.patient_ids, c.patient_ids)

    def test_a_label_that_falls_back_to_zero_is_counted_and_warned(
        self, physionet_mirror: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ):
        # p000009 is septic (label 1 from some hour on); set one later hour back to 0. The
        # first patient's last label and the second's first do not count as a reversal.
        set_a = physionet_mirror / "challenge-2019" / "training_setA"
        (tmp_path / "in").mkdir()
        for name in ("p000009", "p000010"):
            lines = (set_a / f"{name}.psv").read_text().splitlines()
            if name == "p000009":
                labels = [ln.rsplit("|", 1)[1] for ln in lines[1:]]
                assert labels[-1] == "1" and labels[0] == "0"
                lines[-2] = lines[-2].rsplit("|", 1)[0] + "|0"
            (tmp_path / "in" / f"{name}.psv").write_text("\n".join(lines) + "\n")
        with caplog.at_level("WARNING"):
            c = build_cohort(tmp_path / "in")
        assert c.label_reversals() == {"p000009": 1}
        assert "1 patient(s) have a SepsisLabel that falls from 1 back to 0" in caplog.text
        assert c.skipped_hours() == {}
        write_dataset(c, np.zeros(2, np.int64), tmp_path / "ds")
        assert load_dataset(tmp_path / "ds")[2]["label_reversals"] == {"p000009": 1}

    def test_a_folder_with_no_readable_patient_is_one_clear_error(self, tmp_path: Path):
        for i in range(7):
            (tmp_path / f"p90000{i}.psv").write_text("")  # empty files
        (tmp_path / "p900007.psv").write_text("HR|O2Sat\n80|97\n")  # a broken header
        with pytest.raises(RecordError, match="no patient could be read: all 8 .psv files") as e:
            build_cohort(tmp_path)
        assert e.value.reason == "no_usable_patient"
        msg = str(e.value)
        assert "p900000.psv: file is empty" in msg and msg.endswith("; and 3 more)")

    def test_not_a_dataset(self, tmp_path: Path):
        with pytest.raises(FileNotFoundError, match="not an early-warning dataset"):
            load_dataset(tmp_path)


class TestPatientGroups:
    def test_groups_follow_each_patients_first_row(self, cohort):
        g = patient_groups(cohort)
        first = cohort.frame.iloc[cohort.offsets[:-1]]
        assert all(m.shape == (cohort.n_patients,) for m in g.values())
        assert (g["surgical ICU"] == (first["unit_sicu"] == 1).to_numpy()).all()
        # every patient has one ICU group (type, or not recorded) and at most one sex
        icu = g["medical ICU"].astype(int) + g["surgical ICU"] + g["ICU type not recorded"]
        assert set(icu) == {1} and not (g["female"] & g["male"]).any()
        ages = first["age_years"].to_numpy()
        bands = sum(g[k].astype(int) for k in ("age < 45", "age 45-64", "age 65-79", "age >= 80"))
        assert (bands == np.isfinite(ages)).all()
        assert (g["age >= 80"] == (ages >= 80)).all() and g["male"].sum() > 0

    def test_an_age_on_a_band_edge_is_in_the_band_it_opens(self):
        """Bands are ``[lo, hi)``: a 45-, 65- or 80-year-old falls in the band starting at
        their age, so each subgroup's results count every patient once and no patient on
        an edge drops out of the breakdown."""
        ages = [44.0, 45.0, 65.0, 80.0]
        frame = pd.DataFrame(
            {"unit_micu": 1.0, "unit_sicu": 0.0, "gender_male": 1.0, "age_years": ages}
        )
        g = patient_groups(EarlyWarningCohort(frame, np.arange(5), np.array(list("abcd")), {}, []))
        assert g["age < 45"].tolist() == [True, False, False, False]
        assert g["age 45-64"].tolist() == [False, True, False, False]
        assert g["age 65-79"].tolist() == [False, False, True, False]
        assert g["age >= 80"].tolist() == [False, False, False, True]

    def test_children_are_a_group_of_their_own(self):
        """No Challenge-2019 cohort holds a patient under 18: an evaluation on children
        reports them apart, as outside the training population (an empty group is not
        reported)."""
        frame = pd.DataFrame({"unit_micu": 1.0, "unit_sicu": 0.0, "gender_male": 1.0,
                              "age_years": [0.05, 17.9, 18.0]})  # fmt: skip
        g = patient_groups(EarlyWarningCohort(frame, np.arange(4), np.array(list("abc")), {}, []))
        assert g[CHILDREN].tolist() == [True, True, False]
        assert CHILDREN == "age < 18 (outside the adult training population)"


def _tiny_cohort() -> EarlyWarningCohort:
    """Two patients, heart rate only: A (4 h, age 40) and B (2 h, age 70)."""
    n = 6
    frame = pd.DataFrame({c: np.full(n, np.nan) for c in MEASUREMENT_COLUMNS})
    frame["hr_bpm"] = [84.0, np.nan, np.nan, 200.0, np.nan, 70.0]
    frame["temp_c"] = 37.0  # the same everywhere: no spread to scale by
    frame["hour"] = [0.0, 1.0, 2.0, 30.0, 0.0, 1.0]
    frame["age_years"] = [40.0] * 4 + [70.0] * 2
    frame["gender_male"] = 1.0
    frame["unit_micu"] = [1.0] * 4 + [np.nan] * 2
    frame["unit_sicu"] = [0.0] * 4 + [np.nan] * 2
    frame["hosp_adm_time_h"] = [-5000.0] * 4 + [-10.0] * 2
    frame["sepsis_label"] = 0
    return EarlyWarningCohort(
        frame=frame, offsets=np.array([0, 4, 6]), patient_ids=["A", "B"],
        implausible_counts={}, attrition=[],
    )  # fmt: skip


class TestArrays:
    def test_values_by_hand(self):
        """Each block of the GRU-D input worked out by hand on two tiny patients."""
        tiny = _tiny_cohort()
        fitted = fit_norm_stats(tiny)
        assert fitted.age_mean == 55.0  # per patient (40, 70), not per row (50)
        assert fitted.adm_mean == (-2000.0 - 10.0) / 2  # admission times clipped at -2000 h
        t = MEASUREMENT_COLUMNS.index("temp_c")
        assert fitted.mean[t] == 37.0 and fitted.std[t] == 1.0  # no spread: not scaled
        n_f = len(MEASUREMENT_COLUMNS)
        stats = NormStats(
            columns=list(MEASUREMENT_COLUMNS), mean=[0.0] * n_f, std=[1.0] * n_f,
            age_mean=55.0, age_std=15.0, adm_mean=0.0, adm_std=100.0, delta_scale_h=2.0,
        )  # fmt: skip
        h = MEASUREMENT_COLUMNS.index("hr_bpm")
        stats.mean[h], stats.std[h] = 80.0, 4.0
        x = gru_d_arrays(tiny, stats).x
        np.testing.assert_allclose(x[:, h], [1, 0, 0, 10, 0, -2.5])  # z, clipped at 10
        np.testing.assert_array_equal(x[:, n_f + h], [1, 0, 0, 1, 0, 1])  # mask
        # hours since the last reading before the row / delta_scale_h, at most 10
        np.testing.assert_allclose(x[:, 2 * n_f + h], [0, 0.5, 1.0, 10, 0, 0.5])
        np.testing.assert_allclose(x[:, 3 * n_f + h], [1, 1, 1, 10, 0, -2.5])  # last z
        static = x[:, 4 * n_f :]
        np.testing.assert_allclose(static[:, 0], [-1] * 4 + [1] * 2)  # age
        np.testing.assert_array_equal(static[:, 4], [1] * 4 + [0] * 2)  # unit known
        np.testing.assert_allclose(static[:, 5], [-20] * 4 + [-0.1] * 2)  # admission, clipped

    def test_layout_and_subset(self, cohort):
        stats = fit_norm_stats(cohort)
        arr = gru_d_arrays(cohort, stats)
        n_f = len(stats.columns)
        assert arr.x.shape == (len(cohort.frame), 4 * n_f + arr.n_static)
        assert np.isfinite(arr.x).all()
        mask = arr.x[:, n_f : 2 * n_f]
        assert set(np.unique(mask)) <= {0.0, 1.0}
        assert (arr.x[:, :n_f][mask == 0] == 0).all()  # missing value -> 0 (the mean)
        # A subset's arrays equal the matching rows of the whole (per-patient, causal).
        sub = cohort.subset(np.array([5, 2]))
        a_sub = gru_d_arrays(sub, stats)
        rows = np.r_[np.arange(*cohort.offsets[5:7]), np.arange(*cohort.offsets[2:4])]
        np.testing.assert_allclose(a_sub.x, arr.x[rows])

    def test_a_column_never_seen_in_training_is_read_as_not_measured(self, cohort):
        # EtCO2 is never charted in set A: its statistics were a mean 0 / std 1 fallback, and
        # a capnograph's 35 mmHg reached the network as a z-score of 10 with mask 1 (and
        # its counts as raw numbers), moving the risk through weights that never learnt
        stats = fit_norm_stats(cohort, engineered=True)
        assert "etco2_mmhg" in stats.unseen and "hr_bpm" not in stats.unseen
        charted = EarlyWarningCohort(
            frame=cohort.frame.assign(etco2_mmhg=35.0),
            offsets=cohort.offsets, patient_ids=cohort.patient_ids,
            implausible_counts={}, attrition=[],
        )  # fmt: skip
        np.testing.assert_array_equal(gru_d_arrays(charted, stats).x, gru_d_arrays(cohort, stats).x)
        assert cohort.frame["etco2_mmhg"].isna().all()  # the caller's frame is untouched
        assert charted.frame["etco2_mmhg"].eq(35.0).all()
        # statistics stored before the field mark the fallback's columns the same way
        old = stats.to_dict()
        del old["unseen"]
        assert NormStats.from_dict(old).unseen == stats.unseen

    def test_engineered_context_block(self, cohort):
        stats = fit_norm_stats(cohort, engineered=True)
        plain = fit_norm_stats(cohort)
        assert plain.engineered == [] and len(stats.engineered) > 100
        assert "hr_bpm__mean6h" in stats.engineered and "news2" in stats.engineered
        arr = gru_d_arrays(cohort, stats)
        base = gru_d_arrays(cohort, plain)
        assert arr.n_static == base.n_static + len(stats.engineered)
        assert np.isfinite(arr.x).all()
        assert np.abs(arr.x[:, base.x.shape[1] :]).max() <= 10.0  # clipped z-scores
        # The GRU-D part is unchanged; the summaries follow the statics.
        np.testing.assert_array_equal(arr.x[:, : base.x.shape[1]], base.x)
        # Causal: a patient's rows do not depend on how much of the stay is there.
        sub = cohort.subset(np.array([3]))
        n = len(sub.frame)
        head = cohort.frame.iloc[cohort.offsets[3] : cohort.offsets[3] + n // 2]
        from vitalgru.data.early_warning import EarlyWarningCohort

        short = EarlyWarningCohort(
            frame=head.reset_index(drop=True),
            offsets=np.array([0, len(head)]),
            patient_ids=sub.patient_ids,
            implausible_counts={},
            attrition=[],
        )
        np.testing.assert_allclose(
            gru_d_arrays(short, stats).x, gru_d_arrays(sub, stats).x[: len(head)], atol=1e-6
        )
        # Statistics without a column the scorer cannot compute are refused clearly.
        bad = fit_norm_stats(cohort, engineered=True)
        bad.engineered = [*bad.engineered[:-1], "no_such_feature"]
        with pytest.raises(ValueError, match="no_such_feature"):
            gru_d_arrays(cohort, bad)
