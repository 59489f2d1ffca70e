"""AAMI EC57 metrics against hand-computed golden values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vitalgru.metrics.aami import (
    aami_metrics,
    aami_metrics_by_record,
    aami_report,
    calls_report,
    cohen_kappa,
    confusion_matrix,
    ec57_gross,
    report_markdown,
)

# Ten beats worked by hand (N=0, S=1, V=2, F=3, Q=4):
#   true N x4 -> N N N S;  true S x2 -> S N;  true V x3 -> V V N;  true F -> F.
Y_TRUE = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 3])
Y_PRED = np.array([0, 0, 0, 1, 1, 0, 2, 2, 0, 3])


class TestConfusionMatrix:
    def test_golden(self) -> None:
        cm = confusion_matrix(Y_TRUE, Y_PRED)
        expected = np.zeros((5, 5), int)
        expected[0] = [3, 1, 0, 0, 0]
        expected[1] = [1, 1, 0, 0, 0]
        expected[2] = [1, 0, 2, 0, 0]
        expected[3] = [0, 0, 0, 1, 0]
        np.testing.assert_array_equal(cm, expected)

    def test_rejects_out_of_range_and_float_labels(self) -> None:
        with pytest.raises(ValueError, match="outside"):
            confusion_matrix([0, 5], [0, 0])
        with pytest.raises(TypeError, match="integer"):
            confusion_matrix(np.array([0.0, 1.0]), np.array([0, 1]))
        with pytest.raises(ValueError, match="labels but"):
            confusion_matrix([0, 1], [0])


class TestAamiMetrics:
    def test_golden_values(self) -> None:
        m = aami_metrics(Y_TRUE, Y_PRED)
        assert m["accuracy"] == pytest.approx(0.7)
        assert m["n_se"] == pytest.approx(0.75)
        assert m["n_ppv"] == pytest.approx(0.6)
        assert m["n_spec"] == pytest.approx(4 / 6)
        assert m["n_f1"] == pytest.approx(6 / 9)
        assert m["s_se"] == pytest.approx(0.5)
        assert m["s_ppv"] == pytest.approx(0.5)
        assert m["s_spec"] == pytest.approx(7 / 8)
        assert m["s_f1"] == pytest.approx(0.5)
        assert m["v_se"] == pytest.approx(2 / 3)
        assert m["v_ppv"] == pytest.approx(1.0)
        assert m["v_f1"] == pytest.approx(0.8)
        assert m["f_f1"] == pytest.approx(1.0)
        assert m["q_n"] == 0
        # po = 0.7; pe = (4*5 + 2*2 + 3*2 + 1*1) / 100 = 0.31
        assert m["kappa"] == pytest.approx((0.7 - 0.31) / 0.69)
        # de Chazal 2004 j index and Mar et al. 2011 jk index
        j = 2 / 3 + 0.5 + 1.0 + 0.5
        assert m["j_index"] == pytest.approx(j)
        assert m["jk_index"] == pytest.approx(0.5 * (0.39 / 0.69) + j / 8)
        assert m["macro_f1"] == pytest.approx((6 / 9 + 0.5 + 0.8 + 1.0) / 4)

    def test_undefined_ratios_are_nan_not_zero(self) -> None:
        m = aami_metrics(Y_TRUE, Y_PRED)
        assert math.isnan(m["q_se"]) and math.isnan(m["q_ppv"]) and math.isnan(m["q_f1"])
        assert m["q_spec"] == pytest.approx(1.0)

    def test_perfect_prediction(self) -> None:
        y = np.array([0, 1, 2, 3, 4, 0, 0])
        m = aami_metrics(y, y)
        assert m["accuracy"] == 1.0 and m["kappa"] == pytest.approx(1.0)
        assert m["jk_index"] == pytest.approx(1.0)

    def test_kappa_of_chance_is_zero(self) -> None:
        # Prediction independent of truth: every cell equal.
        assert cohen_kappa(np.ones((2, 2))) == pytest.approx(0.0)
        assert math.isnan(cohen_kappa(np.zeros((5, 5))))


class TestEc57Gross:
    # Rows true, columns predicted (N, S, V, F, Q), worked by hand:
    CM = np.array(
        [
            [50, 4, 3, 2, 0],  # N: 4 called S, 3 called V
            [2, 8, 1, 0, 0],  # S: 8 of 11 found, 1 called V
            [1, 1, 10, 2, 0],  # V: 10 of 14 found
            [3, 1, 5, 6, 0],  # F: 5 called V (not VEB FP), 1 called S (SVEB FP)
            [0, 2, 1, 0, 1],  # Q: 1 called V, 2 called S (neither counted)
        ]
    )

    def test_golden_values(self) -> None:
        g = ec57_gross(self.CM)
        # VEB: TP 10, FN 4, FP = Nv + Sv = 3 + 1 (Fv 5 and Qv 1 not counted)
        assert g["veb_se"] == pytest.approx(10 / 14)
        assert g["veb_ppv"] == pytest.approx(10 / 14)
        assert g["veb_f1"] == pytest.approx(20 / 28)
        # TN: the non-V rows, non-V columns: 56 + 10 + 10 + 3 = 79 (incl. Q row 3)
        assert g["veb_fpr"] == pytest.approx(4 / (4 + 79))
        # SVEB: TP 8, FN 3, FP = Ns + Vs + Fs = 4 + 1 + 1 (Qs 2 not counted)
        assert g["sveb_se"] == pytest.approx(8 / 11)
        assert g["sveb_ppv"] == pytest.approx(8 / 14)
        assert g["sveb_f1"] == pytest.approx(16 / 25)

    def test_differs_from_one_versus_rest_only_where_ec57_says(self) -> None:
        y_true = np.repeat(np.arange(5), self.CM.sum(axis=1))
        y_pred = np.concatenate([np.repeat(np.arange(5), row) for row in self.CM])
        out = aami_metrics(y_true, y_pred)
        assert out["veb_se"] == pytest.approx(out["v_se"])
        assert out["sveb_se"] == pytest.approx(out["s_se"])
        assert out["v_ppv"] == pytest.approx(10 / 20)  # every V call that is not V counts
        assert out["veb_ppv"] == pytest.approx(10 / 14)
        assert out["s_ppv"] == pytest.approx(8 / 16)
        assert out["sveb_ppv"] == pytest.approx(8 / 14)

    def test_rejects_other_shapes(self) -> None:
        with pytest.raises(ValueError, match="5x5"):
            ec57_gross(np.ones((3, 3)))


class TestReports:
    def test_by_record_splits_counts(self) -> None:
        rec = np.array(["a"] * 5 + ["b"] * 5)
        by = aami_metrics_by_record(Y_TRUE, Y_PRED, rec)
        assert list(by) == ["a", "b"]
        assert by["a"]["n_beats"] == 5 and by["b"]["n_beats"] == 5
        # record a: true N N N N S -> pred N N N S S: accuracy 4/5
        assert by["a"]["accuracy"] == pytest.approx(0.8)

    def test_nested_report_and_markdown(self) -> None:
        rec = np.array(["a"] * 5 + ["b"] * 5)
        r = aami_report(Y_TRUE, Y_PRED, rec)
        assert r["classes"]["V"]["f1"] == pytest.approx(0.8)
        assert r["classes"]["Q"]["se"] is None
        assert r["classes"]["V"]["n"] == 3 and isinstance(r["classes"]["V"]["n"], int)
        assert r["confusion_matrix"][2] == [1, 0, 2, 0, 0]
        assert r["ec57"]["veb"]["ppv"] == pytest.approx(1.0)
        assert r["ec57"]["sveb"]["se"] == pytest.approx(0.5)
        assert set(r["records"]) == {"a", "b"}
        md = report_markdown(r)
        assert "| V | 3 | 66.7 | 100.0 | 80.0 | 100.0 |" in md
        assert "| a | 5 | 80.0 |" in md
        assert "VEB Se 66.7 %, +P 100.0 %, F1 80.0 %" in md
        assert "; kappa -; jk index -" in report_markdown(
            {**r, "kappa": None, "jk_index": None}
        )  # "None" before

    def test_calls_without_a_reference_are_counted_not_scored(self) -> None:
        # Y_PRED by hand: N x5, S x2, V x2, F x1; record b first: N N N S S, then a: N V V N F.
        rec = np.array(["b"] * 5 + ["a"] * 5)
        r = calls_report(Y_PRED, rec)
        assert r["n_beats"] == 10
        assert r["calls"] == {"N": 5, "S": 2, "V": 2, "F": 1, "Q": 0}
        assert list(r["records"]) == ["b", "a"]  # in order of appearance
        assert r["records"]["b"] == {
            "n_beats": 5,
            "calls": {"N": 3, "S": 2, "V": 0, "F": 0, "Q": 0},
        }
        assert r["records"]["a"]["calls"] == {"N": 2, "S": 0, "V": 2, "F": 1, "Q": 0}
        md = report_markdown(r, "calls")
        assert "no reference annotations" in md and "Se %" not in md
        assert "| b | 5 | 3 | 2 | 0 | 0 | 0 | 0.0 | 40.0 |" in md
        assert "| a | 5 | 2 | 0 | 2 | 1 | 0 | 40.0 | 0.0 |" in md
        assert "| all | 10 | 5 | 2 | 2 | 1 | 0 | 20.0 | 20.0 |" in md
        with pytest.raises(ValueError, match="one entry per beat"):
            calls_report(Y_PRED, rec[:3])
        with pytest.raises(ValueError, match="outside"):
            calls_report([0, 7], ["a", "a"])
