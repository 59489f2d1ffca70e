"""The folder-level unit check of the laboratory columns: a column exported in another unit
whose values pass the plausibility limits is named by its median, and the Challenge's own
training set raises no such warning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vitalgru.data.early_warning import build_cohort
from vitalgru.dsp.vitals_units import (
    CHALLENGE_QUANTILES,
    MIN_VALUES,
    SUSPECT_UNITS,
    unit_mixup_warnings,
)
from vitalgru.io.observation_codes import UNITS
from vitalgru.io.psv import MEASUREMENT_COLUMNS
from vitalgru.io.psv_folder import read_psv_folder

#: The unit each column of :data:`SUSPECT_UNITS` is suspected of, as a UCUM code.
SUSPECTED = {"glucose_mg_dl": "mmol/L", "paco2_mmhg": "kPa", "lactate_mmol_l": "mg/dL",
             "hgb_g_dl": "mmol/L", "bun_mg_dl": "mmol/L", "magnesium_mg_dl": "mmol/L",
             "calcium_mg_dl": "mmol/L", "phosphate_mg_dl": "mmol/L"}  # fmt: skip


def test_the_suspected_units_factors_are_the_intakes() -> None:
    assert set(SUSPECT_UNITS) == set(SUSPECTED) == set(CHALLENGE_QUANTILES)
    for col, unit in SUSPECTED.items():
        factor, text = SUSPECT_UNITS[col]
        assert factor == pytest.approx(UNITS[col][unit](1.0), rel=1e-12), col
        assert text.startswith(unit), col


def test_a_median_far_outside_that_the_units_factor_brings_back_is_warned_about() -> None:
    # glucoses of 70-200 mg/dL exported in mmol/L: 3.9-11.1, those >= 10 taken as 10-11
    # mg/dL without a word; the same values in mg/dL are not warned about
    mg_dl = np.linspace(70.0, 200.0, 60)[:, None]
    (said,) = unit_mixup_warnings(mg_dl / 18.016, ["glucose_mg_dl"])
    assert said.startswith("glucose_mg_dl: the median of its 60 measured values, 7.493,")
    assert "they look like mmol/L: glucose is in mg/dL, multiply by 18.016 (median 135)" in said
    assert said.endswith("10 of them are within the plausibility limits and are taken as they are")
    assert unit_mixup_warnings(mg_dl, ["glucose_mg_dl"]) == []
    # too few values, or a median the factor does not bring back: nothing said
    few = np.full((MIN_VALUES - 1, 1), 7.0)
    assert unit_mixup_warnings(few, ["glucose_mg_dl"]) == []
    assert unit_mixup_warnings(np.full((60, 1), 40.0), ["glucose_mg_dl"]) == []
    # NaN is not a value; a column with no suspected unit is not judged
    gaps = np.vstack([mg_dl / 18.016, np.full((100, 1), np.nan)])
    assert len(unit_mixup_warnings(np.hstack([gaps, gaps]), ["glucose_mg_dl", "hr_bpm"])) == 1
    with pytest.raises(ValueError, match="match columns"):
        unit_mixup_warnings(mg_dl, ["glucose_mg_dl", "hr_bpm"])


@pytest.mark.slow
def test_training_set_a_raises_none_and_its_quantiles_are_the_ones_kept(
    physionet_mirror: Path,
) -> None:
    # the reference quantiles were computed from this folder: recomputed here, and the whole
    # folder, and each slice of 100 stays of it, is taken as it is
    folder = physionet_mirror / "challenge-2019" / "training_setA"
    frame = read_psv_folder(folder).frame
    for col, kept in CHALLENGE_QUANTILES.items():
        x = frame[col].to_numpy(np.float64)
        got = np.percentile(x[~np.isnan(x)], [5, 25, 75, 95])
        assert got == pytest.approx(kept, abs=1e-3), col
    cols = list(MEASUREMENT_COLUMNS)
    values = frame[cols].to_numpy()
    assert unit_mixup_warnings(values, cols) == []
    starts = np.flatnonzero(
        np.r_[True, frame["patient_id"].to_numpy()[1:] != frame["patient_id"].to_numpy()[:-1]]
    )
    for a, b in zip(starts[::100], np.r_[starts[100::100], len(frame)], strict=True):
        assert unit_mixup_warnings(values[a:b], cols) == [], (a, b)
    assert build_cohort(folder).unit_warnings == []
