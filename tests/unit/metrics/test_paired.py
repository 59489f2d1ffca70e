"""The paired record bootstrap of two classifiers' class F1: golden values on hand-made
records, where every resample of 2 or 3 records can be worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from vitalgru.metrics.paired import (
    class_f1_parts,
    paired_f1_difference,
    paired_f1_replicates,
)

S, V = 1, 2  # AAMI class order N, S, V, F, Q


def _cm(s_tp: int, s_fn: int, s_fp: int, v_tp: int = 0) -> np.ndarray:
    """A record's 5x5 confusion matrix: S beats found and missed (called N), of 100 N
    beats those called S (the rest called N), V beats found."""
    m = np.zeros((5, 5), np.int64)
    m[0, 0], m[S, S], m[S, 0], m[0, S], m[V, V] = 100 - s_fp, s_tp, s_fn, s_fp, v_tp
    return m


# record A: new finds 9 of 10 S beats, old 8; record B: new finds 1 of 2 S beats with 2
# false S calls, old 2 of 2 with 2; record C: no S beat, new calls one N beat S, old none.
# Per record, new (2 TP, 2 TP + FP + FN): A 18/19, B 2/5, C 0/1; old: A 16/18, B 4/6, C 0/0.
NEW = [_cm(9, 1, 0, v_tp=5), _cm(1, 1, 2), _cm(0, 0, 1)]
OLD = [_cm(8, 2, 0, v_tp=5), _cm(2, 0, 2), _cm(0, 0, 0)]


class TestReplicates:
    def test_f1_parts_of_each_record(self) -> None:
        num, den = class_f1_parts(NEW)
        assert num[:, S].tolist() == [18, 2, 0] and den[:, S].tolist() == [19, 5, 1]

    def test_every_resample_of_three_records_by_hand(self) -> None:
        counts = [[1, 1, 1], [3, 0, 0], [0, 3, 0], [0, 1, 2], [2, 0, 1], [0, 0, 3]]
        d = paired_f1_replicates(counts, NEW, OLD)[:, S]
        want = [
            20 / 25 - 20 / 24,  # all records once: 0.8 - 0.8333
            54 / 57 - 48 / 54,  # A three times
            6 / 15 - 12 / 18,  # B three times
            2 / 7 - 4 / 6,  # B once, C twice
            36 / 39 - 32 / 36,  # A twice, C once
        ]
        assert d[:5] == pytest.approx(want, abs=1e-12)
        assert np.isnan(d[5])  # C alone: old called no S beat and there is none, F1 undefined

    def test_a_class_both_score_alike_differs_by_nothing(self) -> None:
        d = paired_f1_replicates([[1, 1, 1], [0, 3, 0]], NEW, OLD)[:, V]
        assert d[0] == 0.0 and np.isnan(d[1])  # no V beat in B, none called

    @pytest.mark.parametrize(
        ("new", "old", "counts", "match"),
        [
            (NEW, OLD[:2], [[1, 1, 1]], "same records"),
            (NEW, OLD, [[1, 1]], "one column per record"),
            (np.zeros((3, 5, 4)), OLD, [[1, 1, 1]], "square"),
            ([-m for m in NEW], OLD, [[1, 1, 1]], "counts"),
        ],
    )
    def test_matrices_that_cannot_be_paired_are_refused(
        self, new: object, old: object, counts: object, match: str
    ) -> None:
        with pytest.raises(ValueError, match=match):
            paired_f1_replicates(counts, new, old)


class TestPairedDifference:
    def test_golden_interval_of_three_records(self) -> None:
        # the 10 resamples of 3 records by hand; the lowest difference, 2/7 - 4/6 (B once,
        # C twice: 3 of 27 draws), and the highest, 54/57 - 48/54 (A three times: 1 of 27),
        # each more likely than 2.5 %, so they are the interval's ends
        s = paired_f1_difference(NEW, OLD)[S]
        assert s.difference == pytest.approx(20 / 25 - 20 / 24)
        assert s.low == pytest.approx(2 / 7 - 4 / 6) and s.high == pytest.approx(54 / 57 - 48 / 54)
        assert s.within_noise is True
        # new is better on (3,0,0), (2,1,0) and (2,0,1): 7 of the 26 in 27 draws where both
        # are defined
        assert s.share_better == pytest.approx(7 / 26, abs=0.02)
        assert (s.n_records, s.n_resamples, s.level) == (3, 5000, 0.95)

    def test_swapping_the_models_mirrors_the_interval(self) -> None:
        a, b = paired_f1_difference(NEW, OLD)[S], paired_f1_difference(OLD, NEW)[S]
        assert (b.low, b.high) == pytest.approx((-a.high, -a.low))  # type: ignore[operator]
        assert b.share_better == pytest.approx(19 / 26, abs=0.02)  # ties: none here

    def test_golden_interval_of_two_records_and_a_gain_beyond_noise(self) -> None:
        # new better on record A (16/17 against 12/15), the same on B (6/6): resamples
        # (2,0) 32/34 - 24/30 and (0,2) 6/6 - 6/6 a quarter each, (1,1) 22/23 - 18/21 a half
        new, old = [_cm(8, 1, 0), _cm(3, 0, 0)], [_cm(6, 3, 0), _cm(3, 0, 0)]
        s = paired_f1_difference(new, old)[S]
        assert s.difference == pytest.approx(22 / 23 - 18 / 21)
        assert (s.low, s.high) == pytest.approx((0.0, 16 / 17 - 12 / 15))
        assert s.share_better == pytest.approx(0.75, abs=0.02)  # all but (0,2)
        assert s.within_noise is True  # 0 is in it: (0,2) ties
        one_sided = paired_f1_difference([_cm(8, 1, 0)] * 2, [_cm(6, 3, 0)] * 2)[S]
        assert one_sided.low == pytest.approx(16 / 17 - 12 / 15) and one_sided.within_noise is False

    def test_a_class_never_seen_has_no_interval(self) -> None:
        f = paired_f1_difference(NEW, OLD)[3]  # no F beat anywhere, none called
        assert (f.difference, f.low, f.high, f.share_better, f.within_noise) == (
            None, None, None, None, None)  # fmt: skip

    def test_the_same_seed_gives_the_same_interval(self) -> None:
        a = paired_f1_difference(NEW, OLD, n_resamples=300, seed=7)[S]
        assert a == paired_f1_difference(NEW, OLD, n_resamples=300, seed=7)[S]
        assert a.n_resamples == 300
