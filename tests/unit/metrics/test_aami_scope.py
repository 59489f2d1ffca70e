"""An evaluation on paced records says that the beat model does not cover them."""

from __future__ import annotations

import numpy as np

from vitalgru.metrics.aami import aami_report, report_markdown

N, S, V, F, Q = range(5)


class TestPacedBeatsInAReport:
    def test_q_beats_are_counted_with_their_calls_and_the_paced_record_named(self) -> None:
        # record 107-like: paced beats (Q) called N and V; record 100-like: normal beats
        y_true = np.array([Q] * 90 + [N] * 10 + [N] * 200 + [Q])
        y_pred = np.array([N] * 80 + [V] * 10 + [N] * 10 + [N] * 200 + [N])
        rids = np.array(["107"] * 100 + ["100"] * 201)
        md = report_markdown(aami_report(y_true, y_pred, rids))
        assert (
            "Reference beats of class Q (paced, fusion of paced and normal, unclassifiable): "
            "91, called N 81, V 10. The model was trained without paced records"
        ) in md
        assert "(over 5 % Q beats: paced?): 107 (90 % of 100)" in md
        assert "100 (" not in md.split("paced?):")[1].split("\n")[0]

    def test_a_report_without_q_beats_says_nothing_of_them(self) -> None:
        y = np.array([N] * 50 + [V] * 5)
        md = report_markdown(aami_report(y, y, np.array(["100"] * 55)))
        assert "class Q" not in md and "paced" not in md


class TestAReportReadBack:
    def test_a_report_saved_with_sorted_keys_names_its_matrix_rows_as_made(self) -> None:
        import json

        from vitalgru.metrics.aami_scope import matrix_classes
        from vitalgru.reports.model_card import _class_intervals

        y_true = np.array([Q] * 90 + [N] * 10 + [N] * 200 + [Q] + [S] * 7 + [F] * 3)
        y_pred = np.array([N] * 80 + [V] * 10 + [N] * 10 + [N] * 200 + [N] + [S] * 5 + [N] * 5)
        rids = np.array(["107"] * 100 + ["100"] * 211)
        report = aami_report(y_true, y_pred, rids)
        # as `evaluate --out` writes it (json.dumps(..., sort_keys=True)) and a reader loads it
        back = json.loads(json.dumps(report, sort_keys=True, default=float))
        assert list(back["classes"]) == ["F", "N", "Q", "S", "V"]
        assert matrix_classes(back) == ["N", "S", "V", "F", "Q"]
        made, read = report_markdown(report), report_markdown(back)
        table = "Confusion matrix (rows true, columns predicted):"

        def matrix(md: str) -> str:
            return md.split(table)[1].split("\n\n")[1]

        assert matrix(read) == matrix(made) and "| Q | 81 | 0 | 10 | 0 | 0 |" in matrix(read)
        assert "91, called N 81, V 10." in read
        assert _class_intervals(back) == _class_intervals(report)
