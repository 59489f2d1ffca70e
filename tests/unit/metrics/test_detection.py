from __future__ import annotations

import math

import numpy as np

from vitalgru.metrics.detection import (
    detection_counts,
    detection_scores,
    in_intervals,
    match_beats,
    match_pairs,
    vf_episodes,
)


class TestMatchBeats:
    def test_window_edges_and_one_to_one(self) -> None:
        fs = 1000.0  # 1 sample = 1 ms; window +-75 ms
        ref = np.array([1000, 2000, 3000, 4000])
        det = np.array([1075, 1990, 2010, 3076, 5000])
        r, d = match_beats(ref, det, fs)
        np.testing.assert_array_equal(r, [True, True, False, False])
        # 2000 takes the nearer 1990; 2010 stays unmatched (one-to-one); 3076 is 76 ms off
        np.testing.assert_array_equal(d, [True, True, False, False, False])

    def test_empty(self) -> None:
        r, d = match_beats(np.array([], dtype=int), np.array([5]), 360.0)
        assert r.size == 0 and not d.any()

    def test_scores(self) -> None:
        s = detection_scores(tp=98, fp=2, fn=1)
        assert math.isclose(s["se"], 98 / 99) and math.isclose(s["ppv"], 0.98)
        assert math.isnan(detection_scores(0, 0, 0)["se"])


class TestEC57Exclusion:
    def test_closest_pairs_first(self) -> None:
        # det 1060 is within reach of both 1000 and 1100; closest-first gives it to 1100
        # only if 1100 has no closer detection.
        ri, di = match_pairs(np.array([1000, 1100]), np.array([1060, 1101]), fs=1000.0)
        np.testing.assert_array_equal(ri, [0, 1])
        np.testing.assert_array_equal(di, [0, 1])

    def test_a_reference_beat_takes_its_closest_detection_not_its_earliest(self) -> None:
        """Both detections are within +-75 ms of the beat: the 6 ms one is its match and
        the 56 ms one an extra detection. Taking the earliest would make the R-peak
        timing error look ten times worse and leave the closer peak as a false positive."""
        ri, di = match_pairs(np.array([100]), np.array([80, 102]), fs=360.0)
        assert ri.tolist() == [0] and di.tolist() == [1]

    def test_a_vf_episode_includes_its_end_sample(self) -> None:
        """Episodes are ``[start, end]``, both ends included (``end`` is the sample of the
        ``]`` annotation): a detection right on it is in the episode, where EC57 does not
        count false positives, and not an extra beat against the detector."""
        inside = in_intervals(np.array([9, 10, 20, 21]), np.array([[10, 20]]))
        assert inside.tolist() == [False, True, True, False]

    def test_vf_episodes_and_fp_exclusion(self) -> None:
        sym = ["N", "[", "!", "!", "]", "N", "["]
        idx = np.array([100, 200, 250, 300, 400, 500, 900])
        ep = vf_episodes(sym, idx, n_samples=1000)
        np.testing.assert_array_equal(ep, [[200, 400], [900, 999]])
        c = detection_counts(
            np.array([100, 500]), np.array([100, 250, 300, 500, 700, 950]), fs=1000.0, exclude=ep
        )
        assert c == {"tp": 2, "fn": 0, "fp": 1, "fp_excluded": 3}
