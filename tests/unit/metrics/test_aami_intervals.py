"""Record-bootstrap intervals of an AAMI report: golden values on records whose resamples
can be enumerated by hand."""

from __future__ import annotations

import numpy as np
import pytest

from vitalgru.metrics.aami import aami_report, metrics_from_confusion, report_markdown
from vitalgru.metrics.aami_intervals import (
    INTERVAL_METHOD,
    interval_cell,
    interval_lines,
    leave_one_record_out,
    record_intervals,
)
from vitalgru.metrics.bootstrap import DEFAULT_RESAMPLES, DEFAULT_SEED


def _cm(n_n: int = 0, s_hit: int = 0, s_miss: int = 0, n_as_s: int = 0) -> list[list[int]]:
    """A 5x5 matrix (N, S, V, F, Q): ``n_n`` N beats called N, ``s_hit`` S beats called S,
    ``s_miss`` S beats called N, ``n_as_s`` N beats called S."""
    cm = np.zeros((5, 5), dtype=int)
    cm[0, 0], cm[1, 1], cm[1, 0], cm[0, 1] = n_n, s_hit, s_miss, n_as_s
    return cm.tolist()


def _records(*cms: list[list[int]]) -> dict[str, dict[str, list[list[int]]]]:
    return {f"r{i}": {"confusion_matrix": cm} for i, cm in enumerate(cms)}


class TestRecordIntervals:
    def test_two_records_give_the_range_of_their_own_figures(self) -> None:
        # resamples of two records: (2,0), (0,2) a quarter each, (1,1) a half; the pooled
        # figure lies between the two records', and a quarter of the draws at each end puts
        # both 2.5 % tails on a record alone: Se 8/10 and 2/10, F1 16/18 and 4/12
        iv = record_intervals(_records(_cm(90, 8, 2, 0), _cm(90, 2, 8, 0)))
        s = iv["classes"]["S"]
        assert s["se"] == pytest.approx([0.2, 0.8])
        assert s["f1"] == pytest.approx([4 / 12, 16 / 18])
        assert s["ppv"] == pytest.approx([1.0, 1.0])  # nothing else ever called S
        assert iv["accuracy"] == pytest.approx([92 / 100, 98 / 100])
        assert iv["classes"]["N"]["spec"] == pytest.approx([0.2, 0.8])  # N's Sp is S's Se
        assert iv["ec57"]["sveb"]["se"] == pytest.approx([0.2, 0.8])

    def test_three_records_and_gross_counting(self) -> None:
        # (3,0,0) and its like have probability 1/27 > 2.5 %: the tails are the extreme
        # records. Record 2 has 4 Q beats called S, no SVEB false positive under EC57.
        q = _cm(50, 5, 0, 5)
        q[4][1] = 4
        iv = record_intervals(_records(_cm(50, 5, 0, 0), _cm(50, 5, 0, 1), q))
        assert iv["classes"]["S"]["ppv"] == pytest.approx([5 / 14, 1.0])
        assert iv["ec57"]["sveb"]["ppv"] == pytest.approx([0.5, 1.0])
        assert iv["ec57"]["sveb"]["f1"] == pytest.approx([10 / 15, 1.0])

    def test_identical_records_give_an_interval_of_width_zero_at_every_figure(self) -> None:
        rng = np.random.default_rng(7)
        cm = rng.integers(1, 60, size=(5, 5))
        iv = record_intervals(_records(*[cm.tolist()] * 6), n_resamples=300)
        m = metrics_from_confusion(cm)
        assert iv["accuracy"] == pytest.approx([m["accuracy"]] * 2)
        for c, stats in iv["classes"].items():
            for s, ci in stats.items():
                assert ci == pytest.approx([m[f"{c.lower()}_{s}"]] * 2), (c, s)
        for g, stats in iv["ec57"].items():
            for s, ci in stats.items():
                assert ci == pytest.approx([m[f"{g}_{s}"]] * 2), (g, s)

    def test_a_class_in_one_record_only(self) -> None:
        # S beats in record 0 alone: resamples that miss it (29.6 % for three records) have
        # no S Se and are left out; the others all give record 0's Se, 3/4
        iv = record_intervals(_records(_cm(40, 3, 1), _cm(40), _cm(40)))
        assert iv["classes"]["S"]["se"] == pytest.approx([0.75, 0.75])
        # F has no beat and no call anywhere: Se, +P and F1 undefined in every resample, no
        # interval; its Sp (no beat called F) is 1 in every one
        f = iv["classes"]["F"]
        assert (f["se"], f["ppv"], f["f1"], f["spec"]) == (None, None, None, [1.0, 1.0])

    def test_how_it_was_made_is_recorded_and_the_default_seed_repeats(self) -> None:
        rng = np.random.default_rng(3)
        recs = _records(*(_cm(*(int(k) for k in rng.integers(0, 90, 4))) for _ in range(12)))
        iv = record_intervals(recs)
        assert (iv["method"], iv["level"], iv["n_records"]) == (INTERVAL_METHOD, 0.95, 12)
        assert (iv["n_resamples"], iv["seed"]) == (DEFAULT_RESAMPLES, DEFAULT_SEED)
        assert "note" not in iv
        assert record_intervals(recs) == iv
        other = record_intervals(recs, seed=1)
        assert other["seed"] == 1 and other["classes"]["S"] != iv["classes"]["S"]
        lo, hi = iv["classes"]["S"]["f1"]
        assert 0 <= lo < hi <= 1

    @pytest.mark.parametrize("n", [0, 1])
    def test_under_two_records_no_interval_and_the_reason(self, n: int) -> None:
        iv = record_intervals(_records(*[_cm(90, 8, 2)] * n))
        assert iv["n_records"] == n and iv["accuracy"] is None
        assert all(v is None for stats in iv["classes"].values() for v in stats.values())
        assert all(v is None for stats in iv["ec57"].values() for v in stats.values())
        assert "at least two" in iv["note"]

    def test_bad_matrices_are_refused(self) -> None:
        with pytest.raises(ValueError):
            record_intervals({"a": {"confusion_matrix": [[1, 2], [3, 4]]}, "b": {
                "confusion_matrix": [[1, 2], [3, 4]]}})  # fmt: skip
        bad = _cm(5, 1)
        bad[2][2] = -1
        with pytest.raises(ValueError, match="negative"):
            record_intervals(_records(bad, _cm(5)))


class TestLeaveOneRecordOut:
    def test_each_records_share_and_the_figure_without_it(self) -> None:
        recs = _records(_cm(90, 8, 2, 0), _cm(90, 2, 8, 0), _cm(90))
        loo = leave_one_record_out(recs)
        assert loo["r0"]["S"] == {"n": 10, "tp": 8, "f1": 16 / 18, "f1_without": 4 / 12}
        assert loo["r1"]["S"] == {"n": 10, "tp": 2, "f1": 4 / 12, "f1_without": 16 / 18}
        assert loo["r2"]["S"] == {"n": 0, "tp": 0, "f1": None, "f1_without": 20 / 30}
        assert loo["r2"]["V"] == {"n": 0, "tp": 0, "f1": None, "f1_without": None}


class TestMarkdown:
    def test_cells(self) -> None:
        assert interval_cell(0.665, [0.111, 0.887]) == "66.5 (11.1-88.7)"
        assert interval_cell(0.665, [0.111, 0.887], " %") == "66.5 % (11.1-88.7 %)"
        assert interval_cell(0.665) == "66.5"
        assert interval_cell(None, [0.1, 0.2], " %") == "- %"

    def test_the_report_shows_intervals_beside_the_figures_and_says_how(self) -> None:
        y = np.array([0] * 20 + [1] * 10 + [0] * 20 + [1] * 10)
        p = np.array([0] * 20 + [1] * 8 + [0] * 2 + [0] * 20 + [1] * 2 + [0] * 8)
        report = aami_report(y, p, np.array(["a"] * 30 + ["b"] * 30))
        plain = report_markdown(report)
        assert "| S | 20 | 50.0 | 100.0 | 66.7 | 100.0 |" in plain
        report["intervals"] = record_intervals(report["records"])
        md = report_markdown(report)
        assert "| S | 20 | 50.0 (20.0-80.0) | 100.0 (100.0-100.0) | 66.7 (33.3-88.9) |" in md
        assert "accuracy 83.3 % (73.3-93.3 %)" in md
        assert "SVEB Se 50.0 % (20.0-80.0 %)" in md
        assert "record bootstrap (2 records resampled" in md
        assert (
            interval_lines(report)[1] in md and interval_lines({**report, "intervals": None}) == []
        )

    def test_one_record_is_said_instead_of_an_interval(self) -> None:
        report = aami_report(np.array([0, 1, 0]), np.array([0, 1, 1]), np.array(["a"] * 3))
        report["intervals"] = record_intervals(report["records"])
        md = report_markdown(report)
        assert (
            "No record-bootstrap interval (1 record; a record bootstrap needs at least two)" in md
        )
        assert "(0.0-" not in md and "| S | 1 | 100.0 | 50.0 |" in md
