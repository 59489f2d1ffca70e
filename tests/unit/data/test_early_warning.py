"""Early-warning cohort: folds by patient, dataset files round trip, GRU-D arrays."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vitalgru.data.early_warning import (
    build_cohort,
    fit_norm_stats,
    gru_d_arrays,
    load_dataset,
    patient_folds,
    write_dataset,
)


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

    def test_too_few_patients(self):
        with pytest.raises(ValueError):
            patient_folds(np.zeros(3, bool), 5)


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

    def test_not_a_dataset(self, tmp_path: Path):
        with pytest.raises(FileNotFoundError, match="not an early-warning dataset"):
            load_dataset(tmp_path)


class TestArrays:
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
