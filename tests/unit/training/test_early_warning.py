"""A small GRU-D training on real Challenge-2019 patients must learn, in seconds; the
cross-validation keeps test folds out of every fitted thing."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from vitalgru.baselines.gbm import GBMParams
from vitalgru.data.early_warning import build_cohort, patient_folds
from vitalgru.data.gru_d_inputs import NormStats, fit_norm_stats, gru_d_arrays
from vitalgru.io.psv import MEASUREMENT_COLUMNS
from vitalgru.metrics.ranking import auroc
from vitalgru.models.early_warning import SepsisBlend
from vitalgru.training import gru_d as gru_d_module
from vitalgru.training.early_warning import (
    BLEND,
    CVSettings,
    cross_validate,
    fit_final,
    score_cohort,
    split_validation,
)
from vitalgru.training.gru_d import GRUTrainParams, fit_gru_d, predict_scores, utility_targets


@pytest.fixture(scope="module")
def cohort(physionet_mirror: Path):
    return build_cohort(physionet_mirror / "challenge-2019" / "training_setA", limit=900)


def _fit_val_test(cohort):
    """Fold 0 of 3 as test; the rest split 75/25 into fitting and validation patients."""
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    septic = cohort.septic()
    folds = patient_folds(septic, 3, seed=0)
    train_p = np.flatnonzero(folds != 0)
    fit_i, val_i = split_validation(septic[train_p], 0.25, 0)
    return (
        cohort.subset(train_p[fit_i]),
        cohort.subset(train_p[val_i]),
        cohort.subset(np.flatnonzero(folds == 0)),
    )


class TestFitGRUD:
    def test_learns_on_held_out_patients(self, cohort):
        fit_c, val_c, test = _fit_val_test(cohort)
        stats = fit_norm_stats(fit_c)
        params = GRUTrainParams(hidden_size=24, max_epochs=4, patience=4, lr=5e-3, batch_size=32)
        res = fit_gru_d(gru_d_arrays(fit_c, stats), gru_d_arrays(val_c, stats), params)
        losses = [h["train_loss"] for h in res.history]
        assert losses[-1] < losses[0]
        scores = predict_scores(res.model, gru_d_arrays(test, stats))
        assert scores.shape == (len(test.frame),)
        assert np.all((scores >= 0) & (scores <= 1))
        assert auroc(test.labels, scores) > 0.62
        assert np.isfinite(res.threshold)

    def test_utility_target_and_engineered_inputs_learn(self, cohort):
        fit_c, val_c, test = _fit_val_test(cohort)
        stats = fit_norm_stats(fit_c, engineered=True)
        params = GRUTrainParams(
            hidden_size=24, max_epochs=4, patience=4, lr=3e-3, batch_size=32, target="utility"
        )
        res = fit_gru_d(gru_d_arrays(fit_c, stats), gru_d_arrays(val_c, stats), params)
        assert res.model.n_static == 7 + len(stats.engineered)
        losses = [h["train_loss"] for h in res.history]
        assert losses[-1] < losses[0]
        scores = predict_scores(res.model, gru_d_arrays(test, stats))
        assert auroc(test.labels, scores) > 0.62

    def test_unknown_target_is_refused(self, cohort):
        septic = cohort.septic()
        sub = cohort.subset(np.r_[np.flatnonzero(septic)[:3], np.flatnonzero(~septic)[:10]])
        a = gru_d_arrays(sub, fit_norm_stats(sub))
        with pytest.raises(ValueError, match="target must be"):
            fit_gru_d(a, a, GRUTrainParams(max_epochs=1, target="auc"))

    def test_val_without_septic_hours_is_refused(self, cohort):
        septic = cohort.septic()
        neg = cohort.subset(np.flatnonzero(~septic)[:20])
        stats = fit_norm_stats(neg)
        a = gru_d_arrays(neg, stats)
        with pytest.raises(ValueError, match="no septic hour"):
            fit_gru_d(a, a, GRUTrainParams(max_epochs=1))

    def test_a_fit_share_without_a_septic_patient_is_refused(self, cohort):
        septic = cohort.septic()
        # two septic patients of seven: one stays in the fitting share (both went to
        # validation before, and the network learnt from no positive)
        few = np.r_[np.ones(2, bool), np.zeros(5, bool)]
        fit_i, val_i = split_validation(few, 0.5, 0)
        assert few[fit_i].sum() == 1 and few[val_i].sum() == 1
        neg = cohort.subset(np.flatnonzero(~septic)[:20])
        pos = cohort.subset(np.flatnonzero(septic)[:3])
        stats = fit_norm_stats(neg)
        with pytest.raises(ValueError, match="training split has no septic hour"):
            fit_gru_d(gru_d_arrays(neg, stats), gru_d_arrays(pos, stats),
                      GRUTrainParams(max_epochs=1))  # fmt: skip

    def test_patience_zero_is_no_early_stopping(self, cohort):
        fit_c, val_c, _ = _fit_val_test(cohort)
        stats = fit_norm_stats(fit_c)
        params = GRUTrainParams(hidden_size=4, max_epochs=3, patience=0, max_minutes=5)
        res = fit_gru_d(gru_d_arrays(fit_c, stats), gru_d_arrays(val_c, stats), params)
        assert len(res.history) == 3  # it stopped after the first epoch before

    def test_the_callers_random_generators_are_left_as_they_were(self, cohort):
        # fit_gru_d left torch seeded with params.seed after it returned
        fit_c, val_c, _ = _fit_val_test(cohort)
        stats = fit_norm_stats(fit_c)
        fit_a, val_a = gru_d_arrays(fit_c, stats), gru_d_arrays(val_c, stats)
        torch.manual_seed(1234)
        expected = torch.rand(4)
        torch.manual_seed(1234)
        fit_gru_d(fit_a, val_a, GRUTrainParams(hidden_size=4, max_epochs=1, patience=0))
        torch.testing.assert_close(torch.rand(4), expected, rtol=0, atol=0)

    def test_the_fit_says_why_its_epochs_ended(self, cohort):
        # the final fit's record could not tell a fit cut by max_minutes_per_fit from one
        # that ran its epochs
        fit_c, val_c, _ = _fit_val_test(cohort)
        stats = fit_norm_stats(fit_c)
        fit_a, val_a = gru_d_arrays(fit_c, stats), gru_d_arrays(val_c, stats)
        ran = fit_gru_d(fit_a, val_a, GRUTrainParams(hidden_size=4, max_epochs=2, patience=0))
        assert (ran.stop_reason, len(ran.history)) == ("max_epochs", 2)
        cut = fit_gru_d(fit_a, val_a, GRUTrainParams(hidden_size=4, max_epochs=5, patience=0,
                                                     max_minutes=1e-6))  # fmt: skip
        assert (cut.stop_reason, len(cut.history)) == ("time_budget", 1)

    def test_a_slow_machine_gives_the_same_weights_when_the_budget_does_not_stop(
        self, cohort, monkeypatch
    ):
        # the learning rate annealed over whichever ran out first, the epochs or the clock:
        # where an epoch took longer than max_minutes / max_epochs, two identical fits that
        # the budget never stopped gave different weights (0.33 apart on the reviewer's)
        fit_c, val_c, _ = _fit_val_test(cohort)
        stats = fit_norm_stats(fit_c)
        fit_a, val_a = gru_d_arrays(fit_c, stats), gru_d_arrays(val_c, stats)
        # A slow machine: every reading of the clock 10 s on. The budget, 10 s a step and a
        # little more, is far above an epoch's 10 s now, and the old schedule (a reading at
        # every step) had not spent it either: it stopped neither.
        steps = 2 * -(-(fit_a.offsets.size - 1) // 32)
        params = GRUTrainParams(hidden_size=4, batch_size=32, max_epochs=2, patience=0,
                                max_minutes=10.0 * (steps + 10) / 60.0)  # fmt: skip
        quick = fit_gru_d(fit_a, val_a, params)
        _slow_clock(monkeypatch, 10.0)
        slow = fit_gru_d(fit_a, val_a, params)
        assert quick.stop_reason == slow.stop_reason == "max_epochs"
        assert slow.seconds < 60.0 * params.max_minutes  # the budget did not stop it ...
        for k, v in quick.model.state_dict().items():  # ... and the clock changed nothing
            assert torch.equal(v, slow.model.state_dict()[k]), k
        assert quick.threshold == slow.threshold and quick.val_utility == slow.val_utility

    def test_the_budget_stops_after_an_epoch_and_none_is_no_budget(self, cohort, monkeypatch):
        # the budget cut an epoch part way, and max_minutes None (no cap) was a TypeError
        fit_c, val_c, _ = _fit_val_test(cohort)
        stats = fit_norm_stats(fit_c)
        fit_a, val_a = gru_d_arrays(fit_c, stats), gru_d_arrays(val_c, stats)
        free = fit_gru_d(fit_a, val_a, GRUTrainParams(hidden_size=4, max_epochs=3, patience=0,
                                                      max_minutes=None))  # fmt: skip
        assert (free.stop_reason, len(free.history)) == ("max_epochs", 3)
        _slow_clock(monkeypatch, 10.0)  # epoch ends read 10 s, 20 s, ...: past 15 s at the 2nd
        cut = fit_gru_d(fit_a, val_a, GRUTrainParams(hidden_size=4, max_epochs=3, patience=0,
                                                     max_minutes=0.25))  # fmt: skip
        assert (cut.stop_reason, len(cut.history)) == ("time_budget", 2)
        # the epochs it ran are the unbounded fit's, whole
        for a, b in zip(free.history[:2], cut.history, strict=True):
            assert (a["train_loss"], a["val_utility"]) == (b["train_loss"], b["val_utility"])


def _slow_clock(monkeypatch: pytest.MonkeyPatch, step_s: float) -> None:
    """The GRU-D fit's clock advances ``step_s`` seconds at every reading (no sleeping)."""
    readings = itertools.count()
    clock = SimpleNamespace(perf_counter=lambda: step_s * next(readings))
    monkeypatch.setattr(gru_d_module, "time", clock)


class TestUtilityTargets:
    def test_hand_worked(self):
        # Patient 0 septic: label turns 1 at row 20, so onset t_sepsis = 26; 35 rows.
        # Patient 1 never septic: 5 rows.
        y = np.r_[np.zeros(20), np.ones(15), np.zeros(5)].astype(np.int8)
        off = np.array([0, 35, 40])
        target, weight = utility_targets(y, off)
        d = np.arange(35) - 26.0
        # Before onset - 12: an alarm costs u_fp = 0.05 -> target 0, weight 1.
        assert (target[:14] == 0).all() and np.allclose(weight[:14], 1.0)
        # Onset - 12 earns 0 either way: nothing at stake.
        assert weight[14] == 0.0
        # Onset - 11 .. onset - 6: an alarm earns (d + 12) / 6, a miss costs nothing.
        np.testing.assert_allclose(weight[15:21], (d[15:21] + 12) / 6 / 0.05, rtol=1e-6)
        # Onset - 6 .. onset + 3: alarm earns 1 -> 0, a miss costs 0 -> 2; gain 1 -> 2.
        np.testing.assert_allclose(weight[20:30], (1 + (d[20:30] + 6) / 9) / 0.05, rtol=1e-6)
        assert (target[15:30] == 1).all()
        # After onset + 3 the utility window is closed.
        assert (weight[30:35] == 0).all()
        # Non-septic hours: target 0, weight 1.
        assert (target[35:] == 0).all() and np.allclose(weight[35:], 1.0)
        # Hours 12 to 6 before onset are positives here although SepsisLabel is 0.
        assert (target[15:20] == 1).all() and (y[15:20] == 0).all()


class TestCrossValidate:
    def test_bedside_and_trees_on_folds(self, cohort):
        folds = patient_folds(cohort.septic(), 3, seed=1)
        settings = CVSettings(
            models=("news2", "qsofa", "gbm"), gbm=GBMParams(max_iter=20), val_fraction=0.25
        )
        res = cross_validate(cohort, folds, settings)
        for m in settings.models:
            assert len(res.per_fold[m]) == 3
            assert not np.isnan(res.oof_scores[m]).any()  # every row scored exactly once
            for row in res.per_fold[m]:
                assert -2.0 < row["utility"] <= 1.0 and 0.0 <= row["auroc"] <= 1.0
        summary = res.summary()
        assert summary["gbm"]["auroc_mean"] > 0.6
        assert set(summary) == set(settings.models)

    def test_trees_of_a_fold_never_see_its_test_patients(self, cohort, monkeypatch):
        """A fold's trees fitted or validated on its own test patients would leak them:
        the cross-validated utility would overstate what a new hospital gets."""
        import vitalgru.training.early_warning as ew

        small = cohort.subset(np.arange(80))
        folds = patient_folds(small.septic(), 2, seed=0)
        row_patient = np.repeat(np.arange(small.n_patients), np.diff(np.asarray(small.offsets)))
        fitted: list[np.ndarray] = []
        scored: list[np.ndarray] = []
        real_fit, real_predict = ew.fit_gbm, ew.predict_gbm

        def spy_fit(x, y, *a, **k):
            fitted.append(np.asarray(x.index))
            return real_fit(x, y, *a, **k)

        def spy_predict(clf, x, *a, **k):
            scored.append(np.asarray(x.index))
            return real_predict(clf, x, *a, **k)

        monkeypatch.setattr(ew, "fit_gbm", spy_fit)
        monkeypatch.setattr(ew, "predict_gbm", spy_predict)
        settings = CVSettings(models=("gbm",), gbm=GBMParams(max_iter=10), val_fraction=0.25)
        cross_validate(small, folds, settings)
        assert len(fitted) == 2 and len(scored) == 4  # per fold: validation, then test
        for k in (0, 1):
            test_p = np.flatnonzero(folds == k)
            assert not np.isin(row_patient[fitted[k]], test_p).any()
            assert not np.isin(row_patient[scored[2 * k]], test_p).any()
            assert np.isin(row_patient[scored[2 * k + 1]], test_p).all()

    def test_blend_is_the_configured_weighted_mean(self, cohort):
        torch.set_num_threads(1)
        small = cohort.subset(np.arange(300))
        settings = CVSettings(
            models=("gru_d", "gbm"),
            val_fraction=0.3,
            gru=GRUTrainParams(hidden_size=8, max_epochs=1, batch_size=64),
            gbm=GBMParams(max_iter=10),
            blend_gru_weight=0.3,
        )
        res = cross_validate(small, patient_folds(small.septic(), 2, seed=0), settings)
        s = res.oof_scores
        np.testing.assert_allclose(s[BLEND], 0.3 * s["gru_d"] + 0.7 * s["gbm"], rtol=0, atol=1e-12)
        assert len(res.per_fold[BLEND]) == 2
        # how each fold's GRU-D fit ended, on its rows and the blend's (the gate compares
        # the folds' figures; only the final fit's stop reason was kept)
        for m in ("gru_d", BLEND):
            assert [(r["gru_stop_reason"], r["gru_epochs"], r["gru_best_epoch"])
                    for r in res.per_fold[m]] == [("max_epochs", 1.0, 1.0)] * 2  # fmt: skip
        assert "gru_stop_reason" not in res.per_fold["gbm"][0]
        assert res.summary()["gru_d"]["gru_epochs_mean"] == 1.0

    def test_unknown_model(self, cohort):
        with pytest.raises(ValueError, match="unknown model"):
            cross_validate(cohort, patient_folds(cohort.septic(), 2), CVSettings(models=("lstm",)))

    @pytest.mark.parametrize("w", [-0.1, 1.5])
    def test_blend_weight_outside_0_1(self, cohort, w):
        with pytest.raises(ValueError, match="blend_gru_weight"):
            cross_validate(
                cohort, patient_folds(cohort.septic(), 2), CVSettings(blend_gru_weight=w)
            )


def _tiny_final_blend(cohort, **settings):
    """A blend fitted on the first 300 patients with a tiny GRU-D and 10 trees."""
    torch.set_num_threads(1)
    small = cohort.subset(np.arange(300))
    tiny = CVSettings(
        val_fraction=0.3,
        engineered_inputs=True,
        gru=GRUTrainParams(hidden_size=8, max_epochs=1, batch_size=64),
        gbm=GBMParams(max_iter=10),
        **settings,
    )
    return fit_final(small, tiny, blend=True)


class TestFinalBlendAndScoring:
    def test_blend_fit_and_chunked_scoring_equal_one_pass(self, cohort):
        res = _tiny_final_blend(cohort, blend_gru_weight=0.3)
        assert isinstance(res.model, SepsisBlend)
        assert res.model.gru_weight == 0.3  # registered with the weight it was validated with
        prep = res.preprocessing
        assert prep["threshold"] == res.threshold
        assert prep["tree_features"] and prep["input_layout"][-1] == "tree_features"
        test = cohort.subset(np.arange(300, 340))
        whole = score_cohort(res.model, prep, test, chunk_patients=10_000)
        chunked = score_cohort(res.model, prep, test, chunk_patients=7)
        np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-6)  # float32 batch rounding
        assert whole.shape == (len(test.frame),) and np.all((whole >= 0) & (whole <= 1))
        with pytest.raises(ValueError, match="chunk_patients"):
            score_cohort(res.model, prep, test, chunk_patients=0)

    def test_a_skipped_hour_scores_as_an_hour_with_nothing_measured(self, cohort):
        # Three rows of a patient deleted (the file skips those ICU hours) against the same
        # rows kept with nothing measured: the remaining rows get the same risks, so every
        # 6/12/24-hour summary spans hours, not rows.
        res = _tiny_final_blend(cohort)
        test = cohort.subset(np.arange(300, 310))
        a, b = int(test.offsets[2]), int(test.offsets[3])
        assert b - a > 10
        gone = np.arange(a + 4, a + 7)
        empty = test.frame.copy()
        empty.loc[gone, list(MEASUREMENT_COLUMNS)] = np.nan
        blank = dataclasses.replace(test, frame=empty)
        keep = np.setdiff1d(np.arange(len(test.frame)), gone)
        skipped = dataclasses.replace(
            test,
            frame=test.frame.iloc[keep].reset_index(drop=True),
            offsets=np.r_[test.offsets[:3], test.offsets[3:] - 3],
        )
        assert skipped.skipped_hours() == {str(test.patient_ids[2]): 3}
        want = score_cohort(res.model, res.preprocessing, blank)[keep]
        got = score_cohort(res.model, res.preprocessing, skipped)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
        # read row by row instead, the rows after the gap would be scored differently
        stats = NormStats.from_dict(res.preprocessing["norm_stats"])
        rowwise = predict_scores(
            res.model, gru_d_arrays(skipped, stats, res.preprocessing["tree_features"])
        )
        assert np.abs(rowwise - want).max() > 1e-3

    def test_blend_with_signature_trees_scores_them_from_its_stored_columns(self, cohort):
        res = _tiny_final_blend(cohort, tree_signatures=True)
        prep = res.preprocessing
        trees = prep["tree_features"]
        assert any(c.startswith("sig") for c in trees)
        # The network's own inputs stay the plain summaries: signatures are for the trees.
        assert not any(c.startswith("sig") for c in prep["norm_stats"]["engineered"])
        test = cohort.subset(np.arange(300, 340))
        whole = score_cohort(res.model, prep, test, chunk_patients=10_000)
        chunked = score_cohort(res.model, prep, test, chunk_patients=7)
        np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-6)
