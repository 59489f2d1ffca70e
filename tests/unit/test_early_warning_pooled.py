"""The early-warning benchmark's pooled held-out patients: each at its own fold's
threshold, one utility over all of them with its patient-bootstrap interval, and the check
of a rerun's per-fold utilities against the saved benchmark's."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from early_warning_intervals import fold_check
from early_warning_pooled import pooled_alarms, pooled_intervals, pooled_lines

from vitalgru.metrics.early_warning_intervals import patient_utility_parts
from vitalgru.metrics.utility import normalized_utility
from vitalgru.training.early_warning import CVResult


def _cv(seed: int = 0, n_pat: int = 30) -> tuple[SimpleNamespace, CVResult]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, 40, n_pat)
    off = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    y = np.zeros(off[-1], np.int8)
    for p in range(0, n_pat, 3):  # every third patient septic
        y[off[p + 1] - int(rng.integers(1, lengths[p] + 1)) : off[p + 1]] = 1
    folds = np.arange(n_pat) % 3
    scores = rng.random(y.size) + 0.3 * y
    per_fold = [{"fold": float(k), "threshold": 0.6 + 0.1 * k, "utility": 0.1 * k}
                for k in range(3)]  # fmt: skip
    res = CVResult(folds=folds, per_fold={"m": per_fold}, oof_scores={"m": scores},
                   fit_seconds={})  # fmt: skip
    return SimpleNamespace(labels=y, offsets=off, n_patients=n_pat), res


def test_each_patient_is_alarmed_at_its_own_folds_threshold() -> None:
    cohort, res = _cv()
    pred, thr = pooled_alarms(cohort.offsets, res.folds, res.oof_scores["m"], res.per_fold["m"])
    fold_of_row = np.repeat(res.folds, np.diff(cohort.offsets))
    assert np.array_equal(thr, 0.6 + 0.1 * fold_of_row)
    assert np.array_equal(pred, res.oof_scores["m"] >= thr)


def test_the_pooled_utility_is_one_ratio_over_all_held_out_patients() -> None:
    cohort, res = _cv()
    got = pooled_intervals(cohort, res, n_resamples=200, seed=1)["m"]
    pred, _ = pooled_alarms(cohort.offsets, res.folds, res.oof_scores["m"], res.per_fold["m"])
    want = normalized_utility(cohort.labels, pred, cohort.offsets)
    assert got["utility"]["estimate"] == pytest.approx(want)
    # not the mean of the folds' utilities: the sums of the folds' parts, then the ratio
    obs, ina, best = patient_utility_parts(cohort.labels, pred, cohort.offsets)
    sums = [((obs - ina)[res.folds == k].sum(), (best - ina)[res.folds == k].sum())
            for k in range(3)]  # fmt: skip
    assert want == pytest.approx(sum(a for a, _ in sums) / sum(b for _, b in sums))
    assert got["utility"]["low"] <= want <= got["utility"]["high"]
    assert got["n_patients"] == 30 and got["n_resamples"] == 200 and got["seed"] == 1
    assert got["fold_thresholds"] == pytest.approx([0.6, 0.7, 0.8])
    md = "\n".join(pooled_lines({"m": got}, {"m": {"utility_mean": 0.1, "utility_sd": 0.1}}))
    u = got["utility"]
    assert f"| m | 0.100 ± 0.100 | {want:.3f} [{u['low']:.3f}, {u['high']:.3f}] |" in md


def test_a_patient_never_held_out_is_refused() -> None:
    cohort, res = _cv()
    res.oof_scores["m"][3] = np.nan
    with pytest.raises(ValueError, match="never held out"):
        pooled_intervals(cohort, res, n_resamples=10, seed=0)


def test_the_rerun_is_checked_fold_by_fold_against_the_saved_benchmark() -> None:
    _, res = _cv()
    same = fold_check(res.per_fold, {"per_fold": res.per_fold})
    assert same["equal"] and all(r["utility_difference"] == 0.0 for r in same["rows"])
    saved = [dict(r) for r in res.per_fold["m"]]
    saved[2]["utility"] += 1e-9
    other = fold_check(res.per_fold, {"per_fold": {"m": saved}})
    assert not other["equal"]
    assert [r["utility_difference"] for r in other["rows"]] == pytest.approx([0, 0, -1e-9])
    assert not fold_check(res.per_fold, {"per_fold": {}})["equal"]  # a model not saved


def test_the_paired_benchmark_compares_each_pair_at_each_models_own_thresholds() -> None:
    from early_warning_paired import markdown, paired_rows

    cohort, res = _cv(seed=4)
    rng = np.random.default_rng(9)
    other = rng.random(cohort.labels.size) + 0.1 * cohort.labels
    res.per_fold["gbm"] = [{**r, "threshold": 0.5} for r in res.per_fold.pop("m")]
    res.oof_scores["gbm"] = res.oof_scores.pop("m")
    res.per_fold["gru_d"] = [{**r, "threshold": 0.7} for r in res.per_fold["gbm"]]
    res.oof_scores["gru_d"] = other
    saved = SimpleNamespace(labels=cohort.labels, offsets=cohort.offsets, res=res,
                            n_patients=cohort.n_patients)  # fmt: skip
    rows = paired_rows(saved, n_resamples=200, seed=1)
    assert [(r["a"], r["b"]) for r in rows] == [("gbm", "gru_d")]  # the pairs it has both of
    a = res.oof_scores["gbm"] >= 0.5
    b = other >= 0.7
    want = normalized_utility(cohort.labels, a, cohort.offsets) - normalized_utility(
        cohort.labels, b, cohort.offsets
    )
    assert rows[0]["difference"] == pytest.approx(want)
    assert rows[0]["n_records"] == 30 and rows[0]["n_resamples"] == 200
    out = {"command": "c", "n_patients": 30, "n_resamples": 200, "seed": 1, "pairs": rows,
           "load_average_1min": 1.0}  # fmt: skip
    assert f"| gbm | gru_d | {want:+.3f} |" in markdown(out)
