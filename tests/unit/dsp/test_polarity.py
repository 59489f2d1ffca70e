"""Which way a lead's QRS points (vitalgru.dsp.polarity), and the flag an upside-down lead
gets in the ingest's facts and the evaluation report."""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path

import numpy as np
import pytest

from vitalgru.config import ArrhythmiaDataConfig
from vitalgru.data.ingest import process_record
from vitalgru.dsp.beats import beat_windows
from vitalgru.dsp.filters import ecg_clean
from vitalgru.dsp.polarity import (
    MIN_BEATS,
    POLARITY_LIMIT,
    expected_sign,
    polarity_warning,
    qrs_polarity,
)
from vitalgru.io import open_database
from vitalgru.metrics.aami import aami_report, report_markdown
from vitalgru.training.arrhythmia_eval import signal_summary

from .ecg_testkit import synthetic_ecg

FS = 360.0
BEFORE_S, AFTER_S = 0.25, 0.45


def _windows(x: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    w, _ = beat_windows(ecg_clean(x, FS).astype(np.float32), peaks, FS, BEFORE_S, AFTER_S)
    return w


def _complex(r_mv: float, s_mv: float, n_beats: int = 40) -> np.ndarray:
    """Windows of identical beats: an R wave of ``r_mv`` at the peak, an S wave of ``s_mv``
    (negative) 30 ms after it, flat PR segment."""
    t = (np.arange(int((BEFORE_S + AFTER_S) * FS)) - int(BEFORE_S * FS)) / FS
    beat = r_mv * np.exp(-0.5 * (t / 0.01) ** 2) + s_mv * np.exp(-0.5 * ((t - 0.03) / 0.01) ** 2)
    return np.tile(beat, (n_beats, 1))


class TestQrsPolarity:
    def test_an_upright_ecg_points_up_and_its_negation_exactly_down(self) -> None:
        x, peaks = synthetic_ecg(FS, duration_s=60.0)
        up = qrs_polarity(_windows(x, peaks), FS, BEFORE_S)
        down = qrs_polarity(_windows(-x, peaks), FS, BEFORE_S)
        assert up > 0.5  # R 1.2 mV against Q 0.15 and S 0.3
        assert down == pytest.approx(-up, abs=1e-6)

    def test_hand_worked_complexes(self) -> None:
        # R alone: +1; QS (S alone): -1; R 1.0 and S -0.5 (the Gaussians barely overlap)
        assert qrs_polarity(_complex(1.0, 0.0), FS, BEFORE_S) == pytest.approx(1.0)
        assert qrs_polarity(_complex(0.0, -1.0), FS, BEFORE_S) == pytest.approx(-1.0)
        assert qrs_polarity(_complex(1.0, -0.5), FS, BEFORE_S) == pytest.approx(1 / 3, abs=0.01)
        # an RS complex of equal deflections points neither way
        assert abs(qrs_polarity(_complex(1.0, -1.0), FS, BEFORE_S)) < 0.02

    def test_the_median_beat_outvotes_a_minority_of_other_beats(self) -> None:
        w = np.concatenate([_complex(1.0, 0.0, 30), _complex(0.0, -1.0, 10)])
        assert qrs_polarity(w, FS, BEFORE_S) == pytest.approx(1.0)

    def test_too_few_beats_flat_beats_and_unusable_rows(self) -> None:
        w = _complex(1.0, 0.0, MIN_BEATS)
        assert qrs_polarity(w, FS, BEFORE_S) == pytest.approx(1.0)
        assert math.isnan(qrs_polarity(w[:-1], FS, BEFORE_S))
        assert math.isnan(qrs_polarity(np.zeros_like(w), FS, BEFORE_S))
        bad = w.copy()
        bad[0, 5] = np.nan  # a row with a gap is left out: one beat short
        assert math.isnan(qrs_polarity(bad, FS, BEFORE_S))
        ok = np.ones(MIN_BEATS + 5, dtype=bool)
        w2 = np.concatenate([_complex(0.0, -1.0, 5), _complex(1.0, 0.0, MIN_BEATS)])
        ok[:5] = False  # the rejected beats are not counted
        assert qrs_polarity(w2, FS, BEFORE_S, ok=ok) == pytest.approx(1.0)

    @pytest.mark.parametrize("offset", [-2.0, 1.5])
    def test_polarity_is_measured_from_the_pr_segment_not_from_zero(self, offset: float) -> None:
        """On a lead with a DC offset a QS complex still points down and an R wave alone up:
        measured from 0 the offset decides, and an upright lead is flagged reversed."""
        assert qrs_polarity(_complex(0.0, -1.0) + offset, FS, BEFORE_S) == pytest.approx(-1.0)
        assert qrs_polarity(_complex(1.0, 0.0) + offset, FS, BEFORE_S) == pytest.approx(1.0)

    def test_beats_in_rejected_signal_do_not_decide(self) -> None:
        """Beats marked not ok (noise, lead off) outnumbering the good ones must not decide
        the polarity: a lead reversal warning would follow the artefact."""
        w = np.vstack([_complex(1.0, 0.0, 25), _complex(0.0, -1.0, 60)])
        ok = np.r_[np.ones(25, bool), np.zeros(60, bool)]
        assert qrs_polarity(w, FS, BEFORE_S, ok) == pytest.approx(1.0)

    def test_windows_that_cannot_hold_the_qrs_are_an_error(self) -> None:
        with pytest.raises(ValueError, match="2-D"):
            qrs_polarity(np.zeros(100), FS, BEFORE_S)
        with pytest.raises(ValueError, match="PR segment"):
            qrs_polarity(_complex(1.0, 0.0)[:, 80:], FS, 0.03)


class TestWarning:
    @pytest.mark.parametrize(
        ("lead", "sign"),
        [("MLII", 1), ("ii", 1), ("I", 1), ("V5", 1), ("aVR", -1), ("V1", 0), ("III", 0),
         ("aVF", 0), (None, 0), ("", 0)],
    )  # fmt: skip
    def test_expected_sign(self, lead: str | None, sign: int) -> None:
        assert expected_sign(lead) == sign

    def test_a_lead_ii_pointing_down_is_flagged_with_both_causes(self) -> None:
        msg = polarity_warning(-0.9, "MLII")
        assert msg is not None
        assert "points down" in msg and "-0.90" in msg
        assert "swapped" in msg and "left bundle branch block" in msg

    def test_an_avr_pointing_up_is_flagged(self) -> None:
        msg = polarity_warning(0.8, "aVR")
        assert msg is not None and "points up" in msg and "dextrocardia" in msg

    def test_upright_unjudged_near_zero_and_unknown_are_not(self) -> None:
        assert polarity_warning(0.9, "II") is None
        assert polarity_warning(-0.9, "V1") is None  # V1 points either way
        assert polarity_warning(-0.9, None) is None
        assert polarity_warning(math.nan, "II") is None
        assert polarity_warning(-POLARITY_LIMIT, "II") is None  # at the limit: an RS complex
        assert polarity_warning(-POLARITY_LIMIT - 0.01, "II") is not None

    def test_a_standing_flag_clears_only_past_half_the_limit(self) -> None:
        # judged afresh every run of beats, a median near -0.3 set and cleared the live flag
        # by turns (seven times in record 200 upside down)
        assert polarity_warning(-0.295, "II", flagged=True) is not None
        assert polarity_warning(-0.16, "II", flagged=True) is not None
        assert polarity_warning(-0.14, "II", flagged=True) is None
        assert polarity_warning(-0.295, "II") is None  # not flagged yet: the limit itself


class TestOnMitBih:
    def test_record_100_upside_down_is_flagged_and_upright_is_not(
        self, mitdb_dir: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        db = open_database(mitdb_dir)
        rec, ann = db.read_record("100"), db.read_annotations("100")
        cfg = ArrhythmiaDataConfig()
        upright = process_record(rec, ann, cfg, "x").facts
        assert upright["qrs_polarity"] > 0.5 and upright["polarity_warning"] is None
        with caplog.at_level(logging.WARNING, logger="vitalgru.data.ingest"):
            flipped = process_record(
                dataclasses.replace(rec, signal=-rec.signal), ann, cfg, "x"
            ).facts
        assert flipped["qrs_polarity"] == pytest.approx(-upright["qrs_polarity"], abs=1e-3)
        assert "lead MLII points down" in flipped["polarity_warning"]
        assert "record 100" in caplog.text and "swapped" in caplog.text
        # the evaluation report carries it, and its markdown says it
        summary = signal_summary(flipped)
        assert summary["qrs_polarity"] == flipped["qrs_polarity"]
        md = report_markdown(_report(summary), "t")
        assert "QRS pointing against the lead's usual way (1 records)" in md
        assert "- 100: the QRS of lead MLII points down" in md
        assert "QRS pointing" not in report_markdown(_report(signal_summary(upright)), "t")


def _report(signal: dict) -> dict:
    """An evaluation report of three beats of record 100 with that signal summary."""
    y = np.array([0, 1, 2])
    rep = aami_report(y, y, np.array(["100"] * 3))
    rep["records"]["100"]["signal"] = signal
    return rep
