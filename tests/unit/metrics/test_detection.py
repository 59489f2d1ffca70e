from __future__ import annotations

import math

import numpy as np

from vitalgru.metrics.detection import detection_scores, match_beats


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
