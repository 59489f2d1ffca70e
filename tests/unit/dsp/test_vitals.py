"""Plausibility limits, last observation and GRU-D time intervals."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vitalgru.dsp.vitals import (
    PLAUSIBILITY_LIMITS,
    VitalsStreamState,
    impossible,
    patient_offsets,
    plausible_mean,
    refused_column_warnings,
    vitals_last_observed,
    vitals_plausibility,
    vitals_time_since_observed,
)

nan = np.nan


class TestPlausibility:
    def test_impossible_values_flagged_and_missing(self):
        cols = ["hr_bpm", "spo2_pct", "sbp_mmhg", "temp_c", "unknown_col"]
        v = np.array(
            [
                [0.0, 101.0, -5.0, 24.0, 1e9],
                [400.0, 100.0, 120.0, 46.0, -1e9],
                [80.0, 97.0, 120.0, 37.0, 3.0],
                [nan, nan, nan, nan, nan],
            ]
        )
        out, bad = vitals_plausibility(v, cols)
        assert bad[0].tolist() == [True, True, True, True, False]
        assert bad[1].tolist() == [True, False, False, True, False]
        assert not bad[2:].any()
        assert np.isnan(out[bad]).all() and out[1, 1] == 100.0
        np.testing.assert_allclose(out[2], v[2])
        assert bad.sum(axis=0).tolist() == [2, 1, 1, 2, 0]

    @pytest.mark.parametrize("dtype", [np.float64, np.float32])
    def test_a_value_at_a_limit_is_kept(self, dtype: type) -> None:
        # room air (FiO2 0.21) is read as float32 0.2099999934: it is no impossible value
        cols = list(PLAUSIBILITY_LIMITS)
        lo, hi = (np.array([[PLAUSIBILITY_LIMITS[c][k] for c in cols]], dtype) for k in (0, 1))
        for v in (lo, hi):
            out, bad = vitals_plausibility(v, cols)
            assert not bad.any(), [c for c, b in zip(cols, bad[0], strict=True) if b]
            np.testing.assert_array_equal(out, v.astype(np.float32))
        out, bad = vitals_plausibility(np.array([[0.21, 0.2, 1.0, 1.01]], dtype), ["fio2_frac"] * 4)
        assert bad[0].tolist() == [False, True, False, True]

    def test_one_hours_readings_keep_a_value_at_a_limit(self) -> None:
        # the limits are inclusive for the readings of an hour too (FHIR, HL7 v2 feeds)
        assert plausible_mean("hr_bpm", [10.0, 20.0]) == 15.0
        assert plausible_mean("hr_bpm", [0.0, 300.0, 90.0]) == 195.0
        assert plausible_mean("hr_bpm", [0.0, 400.0]) == 200.0  # none plausible: all
        assert impossible("spo2_pct", [10.0, 100.0, 100.5, 9.0, nan]) == [100.5, 9.0]

    def test_a_flag_is_0_or_1_and_nothing_between(self) -> None:
        # Gender, Unit1, Unit2 are 0/1 flags: a 0.5 (or 0.3 from an averaged chart) passed
        # the 0-1 limits and went into the model as a sex the model never saw
        for col in ("gender_male", "unit_micu", "unit_sicu"):
            out, bad = vitals_plausibility(np.array([[0.0, 1.0, 0.5, 2.0, nan]]), [col] * 5)
            assert bad[0].tolist() == [False, False, True, True, False]
            assert out[0, :2].tolist() == [0.0, 1.0]
            assert impossible(col, [0.0, 1.0, 0.5, nan]) == [0.5]
            assert plausible_mean(col, [1.0, 0.5]) == 1.0
        assert not vitals_plausibility(np.array([[0.5]]), ["fio2_frac"])[1].any()

    def test_a_column_refused_whole_is_named_with_the_unit_it_looks_like(self) -> None:
        # every temperature of an export in °F was refused without a word beyond a total
        cols = ["temp_c", "fio2_frac", "hr_bpm", "spo2_pct"]
        v = np.array(
            [
                [98.6, 40.0, 0.0, 97.0],
                [101.2, 0.5, 80.0, 98.0],
                [nan, 60.0, 82.0, 120.0],
                [97.9, nan, 85.0, 130.0],
            ]
        )
        _, bad = vitals_plausibility(v, cols)
        said = refused_column_warnings(v, bad, cols)
        assert len(said) == 2  # hr_bpm: 1 of 4 refused, spo2_pct: 2 of 4 (not over half)
        assert said[0].startswith("temp_c: 3 of 3 measured values (100 %) are outside")
        assert said[0].endswith("they look like °F: convert to °C, (°F - 32) × 5/9")
        assert said[1].startswith("fio2_frac: 2 of 3 measured values (67 %)")
        assert "per cent" in said[1]
        # refused whole but in no other unit's range: said, with no guess at a unit
        (odd,) = refused_column_warnings(np.array([[200.0]]), np.array([[True]]), ["temp_c"])
        assert "look like" not in odd and "median refused value 200" in odd
        assert refused_column_warnings(np.array([[nan]]), np.array([[False]]), ["temp_c"]) == []

    def test_a_lab_column_refused_whole_names_the_si_unit_it_looks_like(self) -> None:
        # an export's haemoglobin in g/L, glucose in mmol/L, creatinine in umol/L, SpO2 and
        # haematocrit as fractions were refused whole with no word on the unit
        cols = ["hgb_g_dl", "glucose_mg_dl", "creatinine_mg_dl", "spo2_pct", "hct_pct",
                "fibrinogen_mg_dl"]  # fmt: skip
        v = np.array([[121.0, 6.2, 97.0, 0.97, 0.36, 2.8], [98.0, 7.9, 140.0, 0.93, 0.29, 4.1]])
        _, bad = vitals_plausibility(v, cols)
        said = refused_column_warnings(v, bad, cols)
        assert len(said) == 6
        for text, unit in zip(said, ["g/L", "mmol/L", "umol/L", "a fraction",
                                     "a fraction (L/L)", "g/L"], strict=True):  # fmt: skip
            assert f"they look like {unit}:" in text, text

    def test_shape_mismatch(self):
        with pytest.raises(ValueError, match="match columns"):
            vitals_plausibility(np.zeros((3, 2)), ["hr_bpm"])


class TestLastObserved:
    def test_carry_forward_does_not_cross_patients(self):
        v = np.array([[1.0], [nan], [3.0], [nan], [nan], [7.0]])
        off = np.array([0, 4, 6])  # patient 0: rows 0-3, patient 1: rows 4-5
        mask, last, idx = vitals_last_observed(v, off)
        assert mask[:, 0].tolist() == [1, 0, 1, 0, 0, 1]
        np.testing.assert_array_equal(last[:, 0], [1, 1, 3, 3, nan, 7])
        assert idx[:, 0].tolist() == [0, 0, 2, 2, -1, 5]

    def test_bad_offsets(self):
        with pytest.raises(ValueError, match="offsets"):
            vitals_last_observed(np.zeros((3, 1)), np.array([0, 2]))


class TestTimeSinceObserved:
    def test_gru_d_definition(self):
        # Che et al. 2018 eq. 2 worked by hand: s = 0,1,2,4,5 (an hour skipped).
        m = np.array([[1], [0], [0], [1], [0]])
        s = np.array([0.0, 1.0, 2.0, 4.0, 5.0])
        d = vitals_time_since_observed(m, s, np.array([0, 5]))
        assert d[:, 0].tolist() == [0.0, 1.0, 2.0, 4.0, 1.0]

    def test_reset_at_patient_start(self):
        m = np.array([[1], [0], [0], [0]])
        s = np.array([1.0, 2.0, 1.0, 2.0])
        d = vitals_time_since_observed(m, s, np.array([0, 2, 4]))
        assert d[:, 0].tolist() == [0.0, 1.0, 0.0, 1.0]

    @settings(max_examples=50, deadline=None)
    @given(st.lists(st.lists(st.booleans(), min_size=1, max_size=12), min_size=1, max_size=5))
    def test_matches_recursive_definition_and_is_causal(self, patients):
        masks = [np.array(p, dtype=float)[:, None] for p in patients]
        m = np.concatenate(masks)
        off = np.r_[0, np.cumsum([len(p) for p in patients])]
        hours = np.concatenate([np.arange(1, len(p) + 1, dtype=float) for p in patients])
        d = vitals_time_since_observed(m, hours, off)
        for k, mk in enumerate(masks):
            a = off[k]
            expect = [0.0]
            for t in range(1, len(mk)):
                step = hours[a + t] - hours[a + t - 1]
                expect.append(step if mk[t - 1, 0] else step + expect[-1])
            np.testing.assert_allclose(d[a : off[k + 1], 0], expect)
            # Causal: computing on a prefix gives the same prefix.
            n = len(mk)
            for cut in range(1, n + 1):
                dp = vitals_time_since_observed(
                    m[a : a + cut], hours[a : a + cut], np.array([0, cut])
                )
                np.testing.assert_allclose(dp[:, 0], d[a : a + cut, 0])


class TestOffsets:
    def test_runs(self):
        assert patient_offsets(np.array(["a", "a", "b", "c", "c"])).tolist() == [0, 2, 3, 5]
        assert patient_offsets(np.array([], dtype=str)).tolist() == [0]


class TestStreamState:
    def test_streaming_equals_offline(self):
        rng = np.random.default_rng(3)
        n_pat, n_feat, t_len = 4, 3, 15
        v = rng.normal(size=(n_pat, t_len, n_feat)).astype(np.float32)
        v[rng.random(v.shape) < 0.6] = np.nan
        hours = np.tile(np.arange(1, t_len + 1, dtype=float), (n_pat, 1))
        hours[1] += 5  # a different admission hour
        flat = v.reshape(-1, n_feat)
        off = np.arange(0, n_pat * t_len + 1, t_len)
        mask_o, last_o, _ = vitals_last_observed(flat, off)
        delta_o = vitals_time_since_observed(mask_o, hours.reshape(-1), off)
        state = VitalsStreamState(n_pat, n_feat)
        for t in range(t_len):
            mask, last, delta = state.update(v[:, t], hours[:, t])
            rows = off[:-1] + t
            np.testing.assert_array_equal(mask, mask_o[rows])
            np.testing.assert_array_equal(last, last_o[rows])
            np.testing.assert_allclose(delta, delta_o[rows])

    def test_reset_and_shape_checks(self):
        state = VitalsStreamState(2, 1)
        state.update(np.array([[1.0], [2.0]]), np.array([1.0, 1.0]))
        state.reset(np.array([0]))
        mask, last, delta = state.update(np.array([[nan], [nan]]), np.array([1.0, 2.0]))
        assert np.isnan(last[0, 0]) and last[1, 0] == 2.0
        assert delta[:, 0].tolist() == [0.0, 1.0]
        with pytest.raises(ValueError):
            state.update(np.zeros((3, 1)), np.zeros(3))
