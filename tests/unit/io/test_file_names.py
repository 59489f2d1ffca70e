"""Files written one per patient or record: ids a case-insensitive file system would take
as one file are refused before anything is written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vitalgru.errors import FileNameClashError
from vitalgru.io.file_names import check_distinct_names
from vitalgru.io.psv_writer import write_challenge_labels, write_challenge_predictions


def test_names_that_differ_only_in_case_or_accent_encoding_are_refused() -> None:
    check_distinct_names(["p001", "p002", "p01/s1", "p01/s2"], "patients")  # all distinct
    with pytest.raises(FileNameClashError, match="'P001' and 'p001' differ only in letter case"):
        check_distinct_names(["P001", "p002", "p001"], "patients")
    with pytest.raises(ValueError, match="records 'p01/s1' and 'P01/S1'"):
        check_distinct_names(["p01/s1", "P01/S1"], "records")  # a subfolder too
    with pytest.raises(FileNameClashError, match="how an accented letter is encoded"):
        check_distinct_names(["Jos\u00e9", "Jose\u0301"], "patients")  # NFC and NFD


def test_the_challenge_files_of_two_patients_differing_in_case_are_not_written(
    tmp_path: Path,
) -> None:
    # written as P001.psv and p001.psv: one file on macOS or Windows, holding the second
    # patient's rows, and the Challenge's scorer read one patient where two were scored
    off, rows = np.array([0, 2, 3]), np.array([0.1, 0.2, 0.3])
    with pytest.raises(FileNameClashError, match="rename one of them"):
        write_challenge_predictions(tmp_path / "pred", ["P001", "p001"], off, rows, rows > 0.15)
    with pytest.raises(FileNameClashError):
        write_challenge_labels(tmp_path / "lab", ["P001", "p001"], off, np.array([0, 0, 1]))
    assert not (tmp_path / "pred").exists() and not (tmp_path / "lab").exists()
