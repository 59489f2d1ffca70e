"""Hourly risks written as the Challenge 2019 wanted predictions: one file per patient,
named as its input, a row per input row; what cannot be written is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vitalgru.io.psv_writer import (
    LABEL_HEADER,
    PREDICTION_HEADER,
    write_challenge_labels,
    write_challenge_predictions,
)


def test_one_file_per_patient_a_row_per_hour(tmp_path: Path) -> None:
    risks = np.array([0.1, 0.25, 0.9, 0.0, 1.0])
    alarms = (risks >= 0.5).astype(int)
    paths = write_challenge_predictions(tmp_path / "p", ["p000001", "p000002", "p000003"],
                                        np.array([0, 3, 3, 5]), risks, alarms)  # fmt: skip
    assert [p.name for p in paths] == ["p000001.psv", "p000002.psv", "p000003.psv"]
    assert paths[0].read_text().splitlines() == [
        PREDICTION_HEADER, "0.1|0", "0.25|0", "0.9|1"]  # fmt: skip
    assert paths[1].read_text().splitlines() == [PREDICTION_HEADER]  # no rows: a header
    assert paths[2].read_text().splitlines()[1:] == ["0|0", "1|1"]
    # written again for fewer patients: the others' files go (the scorer pairs them all)
    (tmp_path / "p" / "notes.txt").write_text("kept")
    write_challenge_predictions(tmp_path / "p", ["p000002"], np.array([0, 1]), np.array([0.5]),
                                np.array([1]))  # fmt: skip
    assert sorted(f.name for f in (tmp_path / "p").iterdir()) == ["notes.txt", "p000002.psv"]
    # the shortest text that reads back as the risk: close risks stay apart, small ones
    # are not rounded to 0 (nine significant digits tied 0.1234567891 and 0.1234567894)
    (close,) = write_challenge_predictions(tmp_path / "q", ["p4"], np.array([0, 4]),
                                           np.array([0.123456781, 0.1234567891, 0.1234567894,
                                                     3.2e-9]), np.zeros(4, int))  # fmt: skip
    assert close.read_text().splitlines()[1:] == [
        "0.123456781|0", "0.1234567891|0", "0.1234567894|0", "3.2e-09|0"]  # fmt: skip
    # a network's float32 risk at its own precision, not its float64 widening's
    (f32,) = write_challenge_predictions(tmp_path / "r", ["p5"], np.array([0, 1]),
                                         np.array([0.1234567], np.float32), np.zeros(1, int))  # fmt: skip
    assert f32.read_text().splitlines()[1:] == ["0.1234567|0"]
    assert np.float32(0.1234567) == np.float32(float("0.1234567"))
    with pytest.raises(ValueError, match="more than once: \\['p3'\\]"):  # one file, rows lost
        write_challenge_predictions(tmp_path / "s", ["p3", "p3"], np.array([0, 2, 3]),
                                    np.array([0.1, 0.2, 0.3]), np.zeros(3, int))  # fmt: skip


@pytest.mark.parametrize(
    ("offsets", "risks", "alarms", "match"),
    [
        ([0, 2], [0.1], [0], "offsets must run"),
        ([0, 1], [0.1], [0, 1], "offsets must run"),
        ([0, 1], [1.5], [1], "within \\[0, 1\\]"),
        ([0, 1], [np.nan], [0], "within \\[0, 1\\]"),
        ([0, 1], [0.5], [2], "0 or 1"),
    ],
)
def test_what_cannot_be_written_is_refused(
    tmp_path: Path, offsets: list[int], risks: list[float], alarms: list[int], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        write_challenge_predictions(tmp_path, ["p1"], np.array(offsets), np.array(risks),
                                    np.array(alarms))  # fmt: skip
    assert not (tmp_path / "p1.psv").exists()


def test_a_write_cut_short_leaves_the_last_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A disk that fills in the middle of a patient's file: the scorer (which reads every
    # file of the folder) finds the last evaluation's file whole, and no stray file.
    write_challenge_predictions(tmp_path, ["p1"], np.array([0, 2]), np.array([0.1, 0.2]),
                                np.array([0, 0]))  # fmt: skip
    real = Path.write_text

    def cut_short(self: Path, text: str, *args: object, **kw: object) -> int:
        real(self, text[:5])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", cut_short)
    with pytest.raises(OSError, match="No space"):
        write_challenge_predictions(tmp_path, ["p1"], np.array([0, 1]), np.array([0.9]),
                                    np.array([1]))  # fmt: skip
    assert sorted(f.name for f in tmp_path.iterdir()) == ["p1.psv"]
    assert (tmp_path / "p1.psv").read_text().splitlines() == [PREDICTION_HEADER, "0.1|0", "0.2|0"]


def test_label_files_are_written_as_the_scorer_reads_them_never_through_a_link(
    tmp_path: Path,
) -> None:
    # the input files were linked as the labels; the scorer needs the header SepsisLabel
    # exactly and a value on every line after it
    source = tmp_path / "input.psv"
    source.write_text("hr|sepsislabel\n80|0\n\n81|1\n")
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "p1.psv").symlink_to(source)  # an earlier version's link
    (labels / "p9.psv").write_text("SepsisLabel\n0\n")  # a patient not scored now
    paths = write_challenge_labels(labels, ["p1", "p2"], np.array([0, 2, 3]),
                                   np.array([0, 1, 0], np.int8))  # fmt: skip
    assert [p.name for p in paths] == ["p1.psv", "p2.psv"]
    assert sorted(f.name for f in labels.iterdir()) == ["p1.psv", "p2.psv"]
    assert paths[0].read_text() == f"{LABEL_HEADER}\n0\n1\n" and not paths[0].is_symlink()
    assert paths[1].read_text() == f"{LABEL_HEADER}\n0\n"
    assert source.read_text() == "hr|sepsislabel\n80|0\n\n81|1\n"  # the input untouched
    with pytest.raises(ValueError, match="0 or 1"):
        write_challenge_labels(labels, ["p1"], np.array([0, 1]), np.array([2]))
    with pytest.raises(ValueError, match="offsets"):
        write_challenge_labels(labels, ["p1"], np.array([0, 2]), np.array([1]))
