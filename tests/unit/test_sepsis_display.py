"""How the sepsis figures are worded: a probability never printed as 0 %, a risk score never
printed on the same digits as the alarm line it lies on the other side of."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vitalgru.sepsis_display import (
    OUTCOME,
    probability_text,
    risk_and_line,
    risk_decimals,
    risk_rounded,
)


class TestProbabilityText:
    @pytest.mark.parametrize(
        ("p", "said"),
        [
            (0.0034, "0.3 %"),  # the champion's probability at a risk score of 0.010
            (0.0064, "0.6 %"),
            (0.0148, "1.5 %"),  # 2.3 times the one above: no longer both "1"
            (0.026, "2.6 %"),
            (0.0996, "10 %"),
            (0.123, "12 %"),
            (0.0004, "<0.1 %"),
            (0.0, "<0.1 %"),
            (0.996, ">99 %"),
        ],
    )
    def test_small_probabilities_keep_a_decimal_and_none_reads_zero(
        self, p: float, said: str
    ) -> None:
        assert probability_text(p) == said

    @pytest.mark.parametrize("p", [-0.1, 1.5, float("nan"), True, "0.1"])
    def test_what_is_not_a_probability_is_refused(self, p: object) -> None:
        with pytest.raises(ValueError, match="is not a probability"):
            probability_text(p)  # type: ignore[arg-type]

    def test_the_outcome_is_the_label_the_model_predicts(self) -> None:
        assert OUTCOME == "sepsis now or within 6 hours"


class TestRiskDecimals:
    def test_three_decimals_unless_the_side_of_the_line_would_be_lost(self) -> None:
        assert risk_decimals([(0.48, 0.246)]) == 3
        assert risk_decimals([(0.0921, 0.0924)]) == 4
        assert risk_decimals([(0.3474, 0.349)]) == 3
        assert risk_decimals([(0.34899, 0.349)]) == 5
        assert risk_decimals([(0.5, float("inf"))]) == 3  # a model that never alarms

    def test_a_score_in_json_keeps_its_side_of_the_exact_line(self) -> None:
        assert risk_rounded(0.123456, 0.5) == 0.1235
        assert risk_rounded(0.3618162, 0.3618131) == 0.36182  # reached: not 0.3618
        assert risk_rounded(0.3499991, 0.35) == 0.349999  # under: not 0.35
        assert risk_rounded(0.35, 0.35) == 0.35
        assert risk_rounded(0.42, float("inf")) == 0.42  # a model that never alarms

    def test_a_score_and_its_line_are_printed_alike(self) -> None:
        assert risk_and_line(0.3474, 0.349) == ("0.347", "0.349")
        assert risk_and_line(0.0921, 0.0924) == ("0.0921", "0.0924")
        assert risk_and_line(0.0924, 0.0924) == ("0.092", "0.092")  # reached: at the line


def test_the_pages_do_not_pull_in_torch() -> None:
    """The wording the pages and the ward share lived in ``vitalgru.scoring``, whose package
    imports torch: drawing a page needs none."""
    code = (
        "import sys, vitalgru.reports.ward, vitalgru.reports.early_warning, "
        "vitalgru.reports.fhir; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
