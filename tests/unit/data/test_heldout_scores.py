"""The held-out scores file an early-warning run logs for the gate: written compact, read
back as each hour's alarm at its fold's threshold, whatever order the rows were in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vitalgru.data.heldout_scores import (
    HELDOUT_COLUMNS,
    heldout_scores_frame,
    read_heldout_alarms,
    write_heldout_scores,
)

IDS = ["p000003", "p000001", "p000002"]  # the cohort's order need not be the ids'
OFFSETS = [0, 3, 5, 9]
HOURS = [1, 2, 3, 1, 2, 1, 2, 3, 4]
LABELS = [0, 0, 0, 0, 1, 0, 0, 1, 1]
FOLDS = [0, 1, 0]
SCORES = [0.1, 0.5, 0.6, 0.69, 0.7, 0.2, 0.5, 0.5, 0.9]
THRESHOLDS = {0: 0.5, 1: 0.7}


def _frame() -> pd.DataFrame:
    return heldout_scores_frame(IDS, OFFSETS, HOURS, LABELS, FOLDS, SCORES, THRESHOLDS)


def test_a_round_trip_gives_each_hours_alarm_at_its_folds_threshold(tmp_path: Path) -> None:
    frame = _frame()
    assert tuple(frame.columns) == HELDOUT_COLUMNS
    assert [str(frame[c].dtype) for c in HELDOUT_COLUMNS[1:]] == [
        "int16", "int8", "int8", "float32", "float64"]  # fmt: skip
    path = write_heldout_scores(frame, tmp_path / "held.parquet")
    got = read_heldout_alarms(path)
    # patients in id order: p000001 (fold 1, threshold 0.7), p000002 (0), p000003 (0)
    assert got.patient_ids.tolist() == ["p000001", "p000002", "p000003"]
    assert got.offsets.tolist() == [0, 2, 6, 9]
    assert got.hours.tolist() == [1, 2, 1, 2, 3, 4, 1, 2, 3]
    assert got.labels.tolist() == [0, 1, 0, 0, 1, 1, 0, 0, 0]
    # 0.69 < 0.7 and 0.7 >= 0.7 in fold 1 (a float32 0.7 is below the float64 0.7: the
    # alarm the cross-validation raised is kept); 0.5 >= 0.5 in fold 0
    assert got.alarms.tolist() == [False, True, False, True, True, True, False, True, True]


def test_rows_in_another_order_read_back_the_same(tmp_path: Path) -> None:
    frame = _frame()
    a = read_heldout_alarms(write_heldout_scores(frame, tmp_path / "a.parquet"))
    shuffled = frame.sample(frac=1.0, random_state=3)
    b = read_heldout_alarms(write_heldout_scores(shuffled, tmp_path / "b.parquet"))
    for field in ("patient_ids", "offsets", "hours", "labels", "alarms"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"scores": [np.nan] + SCORES[1:]}, "1 hours have no held-out score"),
        ({"folds": [0, 2, 0]}, "folds [2] have no threshold"),
        ({"offsets": [0, 3, 5]}, "3 patients need 4 increasing offsets"),
        ({"hours": HOURS[:-1]}, "9 hours expected"),
    ],
)
def test_arrays_that_do_not_fit_are_refused(change: dict, said: str) -> None:
    args = {"patient_ids": IDS, "offsets": OFFSETS, "hours": HOURS, "labels": LABELS,
            "folds": FOLDS, "scores": SCORES, "fold_thresholds": THRESHOLDS} | change  # fmt: skip
    with pytest.raises(ValueError, match=said.replace("[", r"\[").replace("]", r"\]")):
        heldout_scores_frame(**args)


def test_a_file_that_is_not_one_is_refused(tmp_path: Path) -> None:
    frame = _frame()
    frame.drop(columns="threshold").to_parquet(tmp_path / "no_thr.parquet")
    with pytest.raises(ValueError, match=r"no column \['threshold'\]"):
        read_heldout_alarms(tmp_path / "no_thr.parquet")
    pd.concat([frame, frame.iloc[:1]]).to_parquet(tmp_path / "twice.parquet")
    with pytest.raises(ValueError, match="an hour of a patient twice"):
        read_heldout_alarms(tmp_path / "twice.parquet")
    (tmp_path / "text.parquet").write_text("not parquet")
    with pytest.raises(ValueError):  # pyarrow's ArrowInvalid is a ValueError
        read_heldout_alarms(tmp_path / "text.parquet")


def test_the_pooled_utility_is_that_of_the_alarms_read_back(tmp_path: Path) -> None:
    from vitalgru.data.heldout_scores import pooled_utility_interval
    from vitalgru.metrics.utility import normalized_utility

    path = write_heldout_scores(_frame(), tmp_path / "held.parquet")
    back = read_heldout_alarms(path)
    got = pooled_utility_interval(path, n_resamples=200, seed=3, min_septic=1)
    want = normalized_utility(back.labels, back.alarms, back.offsets)
    assert got["utility"]["estimate"] == pytest.approx(want, abs=1e-12)
    assert got["n_patients"] == 3 and got["n_resamples"] == 200 and "auroc" not in got
