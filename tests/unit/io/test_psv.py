"""Challenge-2019 PSV reader: column mapping, bad inputs, attrition, cache, speed."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from vitalgru.errors import RecordError
from vitalgru.io.psv import PSV_HEADER, list_psv, read_psv, read_psv_folder

HEADER = "|".join(PSV_HEADER)


def _row(hour: int, label: int = 0, hr: str = "80") -> str:
    cells = ["NaN"] * len(PSV_HEADER)
    cells[PSV_HEADER.index("HR")] = hr
    cells[PSV_HEADER.index("Age")] = "70"
    cells[PSV_HEADER.index("Gender")] = "1"
    cells[PSV_HEADER.index("ICULOS")] = str(hour)
    cells[PSV_HEADER.index("SepsisLabel")] = str(label)
    return "|".join(cells)


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture()
def setA(physionet_mirror: Path) -> Path:
    d = physionet_mirror / "challenge-2019" / "training_setA"
    if not d.is_dir():
        pytest.fail(f"Challenge-2019 set A not found at {d}")
    return d


class TestReadPsv:
    def test_real_file_columns_and_units(self, setA: Path):
        df = read_psv(setA / "p000001.psv")
        assert df["patient_id"].unique().tolist() == ["p000001"]
        for col in ("hr_bpm", "spo2_pct", "temp_c", "sbp_mmhg", "lactate_mmol_l", "wbc_10e3_ul"):
            assert col in df.columns
        assert df["hour"].tolist() == list(range(1, len(df) + 1))
        assert df["hr_bpm"].iloc[1] == pytest.approx(97.0)
        assert df["age_years"].iloc[0] == pytest.approx(83.14)
        assert set(df["sepsis_label"].unique()) <= {0, 1}

    def test_synthetic_round_trip(self, tmp_path: Path):
        p = _write(tmp_path / "p1.psv", [HEADER, _row(1), _row(2, 1, "NaN")])
        df = read_psv(p)
        assert df["hr_bpm"].iloc[0] == 80 and np.isnan(df["hr_bpm"].iloc[1])
        assert df["sepsis_label"].tolist() == [0, 1]

    @pytest.mark.parametrize(
        ("lines", "reason"),
        [
            ([], "empty_file"),
            ([HEADER], "no_rows"),
            ([HEADER.replace("HR|", "HeartRate|"), _row(1)], "unknown_columns"),
            (["|".join(PSV_HEADER[:-1]), _row(1)], "missing_columns"),
            (["|".join(reversed(PSV_HEADER)), _row(1)], "bad_header"),
            ([HEADER, _row(1) + "|3"], "bad_row_shape"),
            ([HEADER, _row(1, hr="eighty")], "non_numeric"),
            ([HEADER, _row(2), _row(1)], "bad_hours"),
            ([HEADER, _row(1, label=2)], "bad_label"),
        ],
    )
    def test_malformed_file_names_file_and_reason(self, tmp_path: Path, lines, reason):
        p = tmp_path / "p9.psv"
        p.write_text("\n".join(lines))
        with pytest.raises(RecordError) as ei:
            read_psv(p)
        assert ei.value.reason == reason
        assert "p9.psv" in str(ei.value)


class TestReadFolder:
    def test_bad_files_go_to_attrition_rest_is_read(self, tmp_path: Path):
        _write(tmp_path / "p1.psv", [HEADER, _row(1), _row(2)])
        _write(tmp_path / "p2.psv", [HEADER, _row(1, hr="x")])
        _write(tmp_path / "p3.psv", [HEADER])
        _write(tmp_path / "p4.psv", [HEADER, _row(1), _row(2), _row(3, 1)])
        cohort = read_psv_folder(tmp_path)
        assert cohort.frame["patient_id"].unique().tolist() == ["p1", "p4"]
        assert len(cohort.frame) == 5
        assert sorted((e.item, e.reason) for e in cohort.attrition) == [
            ("p2.psv", "non_numeric"),
            ("p3.psv", "no_rows"),
        ]
        with pytest.raises(RecordError):
            read_psv_folder(tmp_path, on_error="raise")

    def test_missing_folder(self, tmp_path: Path):
        with pytest.raises(FileNotFoundError):
            read_psv_folder(tmp_path / "nope")

    def test_cache_round_trip_and_invalidation(self, tmp_path: Path, setA: Path):
        src = tmp_path / "src"
        src.mkdir()
        for f in list_psv(setA)[:30]:
            shutil.copy(f, src / f.name)
        _write(src / "p999999.psv", [HEADER])
        cache = tmp_path / "cache"
        a = read_psv_folder(src, cache_dir=cache)
        assert len(list(cache.glob("*.parquet"))) == 1
        b = read_psv_folder(src, cache_dir=cache)
        assert b.frame.equals(a.frame)
        assert [e.reason for e in b.attrition] == ["no_rows"]
        (src / "p000001.psv").unlink()  # changes the file list: a new cache entry
        c = read_psv_folder(src, cache_dir=cache)
        assert "p000001" not in set(c.frame["patient_id"])
        assert len(list(cache.glob("*.parquet"))) == 2

    @pytest.mark.slow
    def test_whole_set_a_reads_fast(self, setA: Path):
        t0 = time.perf_counter()
        cohort = read_psv_folder(setA)
        dt = time.perf_counter() - t0
        assert cohort.frame["patient_id"].nunique() == 17652
        assert len(cohort.frame) == 687218
        assert cohort.attrition == []
        assert dt < 60.0, f"reading set A took {dt:.1f} s"
