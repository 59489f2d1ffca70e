"""Each patient group's utility with the interval of its own patients resampled, and none
for a group with too few septic patients for a bootstrap to say anything."""

from __future__ import annotations

import numpy as np
import pytest

from vitalgru.metrics.early_warning import (
    MIN_SEPTIC_FOR_INTERVAL,
    report_markdown,
    subgroup_intervals,
    subgroup_metrics,
)
from vitalgru.metrics.early_warning_intervals import early_warning_intervals


def _cohort(n: int, septic: set[int], rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    lengths = rng.integers(10, 30, n)
    off = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    y = np.zeros(off[-1], np.int8)
    for p in septic:
        y[off[p + 1] - 8 : off[p + 1]] = 1
    scores = np.clip(rng.random(y.size) * 0.6 + 0.35 * y, 0, 1)
    return y, scores, off


def test_a_group_with_enough_septic_patients_has_the_interval_of_its_own_patients() -> None:
    rng = np.random.default_rng(2)
    n = 60
    y, s, off = _cohort(n, set(range(0, 40, 3)), rng)  # 14 septic among the first 40
    big = np.arange(n) < 40
    small = ~big & (np.arange(n) < 50)
    for p in (41, 44):  # two septic patients in the small group
        y[off[p + 1] - 8 : off[p + 1]] = 1
    groups = {"big": big, "small": small, "empty": np.zeros(n, bool)}
    got = subgroup_intervals(y, s, off, 0.5, groups, n_resamples=400, seed=5)
    assert list(got) == ["big", "small"]

    rows = np.repeat(big, np.diff(off))
    sub_off = np.r_[0, np.cumsum(np.diff(off)[big])]
    want = early_warning_intervals(y[rows], s[rows], sub_off, 0.5, n_resamples=400, seed=5,
                                   ranking=False)  # fmt: skip
    assert got["big"] == want and got["big"]["utility"]["low"] is not None

    assert MIN_SEPTIC_FOR_INTERVAL > 2
    small_iv = got["small"]
    assert small_iv["utility"]["low"] is None and small_iv["utility"]["high"] is None
    assert small_iv["note"] == f"fewer than {MIN_SEPTIC_FOR_INTERVAL} septic patients"
    assert small_iv["utility"]["estimate"] is not None and small_iv["n_patients"] == 10

    metrics = subgroup_metrics(y, s, off, 0.5, groups)
    shown = {k: {**m, "intervals": got[k]} for k, m in metrics.items()}
    md = report_markdown({"n_patients": n, "subgroups": shown})
    big_row = next(line for line in md.splitlines() if line.startswith("| big |"))
    u = want["utility"]
    assert f"{metrics['big']['utility']:.3f} [{u['low']:.3f}, {u['high']:.3f}] |" in big_row
    small_row = next(line for line in md.splitlines() if line.startswith("| small |"))
    assert "[" not in small_row


def test_the_septic_count_is_of_patients_not_hours() -> None:
    y, s, off = _cohort(12, {0, 1, 2, 3}, np.random.default_rng(0))  # 4 septic, 32 hours
    got = subgroup_intervals(y, s, off, 0.5, {"all": np.ones(12, bool)}, n_resamples=50)
    assert got["all"]["utility"]["low"] is None and "note" in got["all"]
    y[off[5] : off[5] + 2] = 1  # a fifth septic patient
    got = subgroup_intervals(y, s, off, 0.5, {"all": np.ones(12, bool)}, n_resamples=50)
    assert got["all"]["utility"]["low"] is not None and "note" not in got["all"]
    assert got["all"]["n_resamples"] == 50


@pytest.mark.parametrize("n_resamples", [0])
def test_no_resamples_is_refused(n_resamples: int) -> None:
    y, s, off = _cohort(12, set(range(6)), np.random.default_rng(1))
    with pytest.raises(ValueError):
        subgroup_intervals(y, s, off, 0.5, {"all": np.ones(12, bool)}, n_resamples=n_resamples)
