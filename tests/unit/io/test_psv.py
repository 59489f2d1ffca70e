"""Challenge-2019 PSV reader: column mapping, bad inputs, attrition, cache, speed."""

from __future__ import annotations

import codecs
import gzip
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from vitalgru.errors import RecordError
from vitalgru.io.psv import PSV_HEADER, read_psv
from vitalgru.io.psv_folder import list_psv, read_psv_folder

HEADER = "|".join(PSV_HEADER)


def _row(hour: int | str, label: int | str = 0, hr: str = "80") -> str:
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
            (["|".join(PSV_HEADER[1:]), _row(1)], "missing_columns"),
            (["|".join(PSV_HEADER[1:-1]), _row(1)], "missing_columns"),  # no HR, no label
            # no SepsisLabel in the header (unlabelled) but 41 cells in the rows
            (["|".join(PSV_HEADER[:-1]), _row(1)], "bad_row_shape"),
            ([HEADER + "|HR", _row(1) + "|80"], "bad_header"),  # a repeated column
            ([HEADER, _row(1) + "|3"], "bad_row_shape"),
            ([HEADER, _row("one")], "non_numeric"),  # the hour: no time axis
            ([HEADER, _row(1, label="yes")], "non_numeric"),
            ([HEADER, _row(2), _row(1)], "bad_hours"),
            ([HEADER, _row(1), _row("2.5")], "bad_hours"),  # read as hour 2, before
            ([HEADER, _row(1), _row(40000)], "bad_hours"),  # wrapped round to -25536
            ([HEADER, _row(-3), _row(1)], "bad_hours"),
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

    def test_non_numeric_measurement_is_missing_not_the_patient(self, tmp_path: Path):
        p = _write(tmp_path / "p1.psv", [HEADER, _row(1), _row(2, hr="eighty"), _row(3)])
        df = read_psv(p)
        assert df["hour"].tolist() == [1, 2, 3]
        assert df["hr_bpm"].iloc[[0, 2]].tolist() == [80, 80] and np.isnan(df["hr_bpm"].iloc[1])
        assert df["age_years"].tolist() == [70, 70, 70]

    def test_a_european_export_with_decimal_commas_is_read_as_written(
        self, tmp_path: Path, setA: Path, caplog: pytest.LogCaptureFixture
    ):
        src = setA / "p000001.psv"
        lines = src.read_text().splitlines()
        comma = [lines[0]] + [line.replace(".", ",") for line in lines[1:]]
        p = _write(tmp_path / "p000001.psv", comma)
        with caplog.at_level("WARNING"):
            df = read_psv(p)
        assert df.equals(read_psv(src))  # every value as in the original
        assert "with a decimal comma" in caplog.text and "read as numbers" in caplog.text
        # a comma that may be a thousands separator (1,234) is not guessed at: missing,
        # and counted as a non-numeric cell as before
        q = _write(tmp_path / "p2.psv", [HEADER, _row(1, hr="1,234"), _row(2)])
        assert np.isnan(read_psv(q)["hr_bpm"].iloc[0])
        # one cell that can only be a decimal comma settles it for the whole file
        r = _write(tmp_path / "p3.psv", [HEADER, _row(1, hr="1,234"), _row(2, hr="88,5")])
        assert read_psv(r)["hr_bpm"].tolist() == pytest.approx([1.234, 88.5])  # float32

    def test_columns_in_another_order_are_read_by_name(self, tmp_path: Path, setA: Path):
        src = setA / "p000001.psv"
        lines = src.read_text().splitlines()
        cols = [line.split("|") for line in lines]
        perm = list(range(len(PSV_HEADER)))[::-1]
        shuffled = ["|".join(row[i] for i in perm) for row in cols]
        mixed = _write(tmp_path / "p000001.psv", shuffled)
        assert mixed.read_text().splitlines()[0].startswith("SepsisLabel|ICULOS")
        assert read_psv(mixed).equals(read_psv(src))

    @pytest.mark.parametrize(
        ("mark", "encoding"),
        [(codecs.BOM_UTF8, "utf-8"), (b"", "utf-16"), (codecs.BOM_UTF16_BE, "utf-16-be")],
    )
    def test_spreadsheet_encodings_read_like_the_original(
        self, tmp_path: Path, setA: Path, mark: bytes, encoding: str
    ):
        # A UTF-8 byte-order mark (Excel's "CSV UTF-8") used to make the first column
        # "\ufeffHR", an unknown column, and the whole patient went to attrition.
        src = setA / "p000001.psv"
        saved = tmp_path / "p000001.psv"
        saved.write_bytes(mark + src.read_text().replace("\n", "\r\n").encode(encoding))
        assert read_psv(saved).equals(read_psv(src))
        cohort = read_psv_folder(tmp_path)
        assert cohort.attrition == [] and cohort.frame.equals(read_psv(src))

    def test_column_names_in_another_case_are_read_by_name(self, tmp_path: Path, setA: Path):
        # no two of the 41 names differ only in case, so the match is unambiguous
        assert len({c.lower() for c in PSV_HEADER}) == len(PSV_HEADER)
        src = setA / "p000001.psv"
        head, _, body = src.read_text().partition("\n")
        lower = _write(tmp_path / "p000001.psv", [head.lower() + "\n" + body.rstrip("\n")])
        assert read_psv(lower).equals(read_psv(src))
        assert read_psv_folder(tmp_path).attrition == []

    def test_broken_utf16_is_a_clear_error(self, tmp_path: Path):
        p = tmp_path / "p9.psv"
        p.write_bytes(codecs.BOM_UTF16_LE + HEADER.encode("utf-16-le") + b"\x00")
        with pytest.raises(RecordError, match="UTF-16") as ei:
            read_psv(p)
        assert ei.value.reason == "bad_encoding"

    def test_rows_whose_pipes_add_up_but_not_row_by_row_are_refused(self, tmp_path: Path):
        # one row a field long, the next a field short: the file's pipes add up to two
        # rows' worth, which the shape check counted, and the parser then failed on it
        p = _write(tmp_path / "p9.psv", [HEADER, _row(1), _row(2) + "|80", _row(3)[4:]])
        with pytest.raises(RecordError, match="data row 2 has 42") as ei:
            read_psv(p)
        assert ei.value.reason == "bad_row_shape" and "2 rows in all" in str(ei.value)

    def test_an_empty_line_among_the_rows_costs_nothing(
        self, tmp_path: Path, setA: Path, caplog: pytest.LogCaptureFixture
    ):
        # two exports joined, a stray Enter: the whole stay was refused as bad_row_shape
        src = setA / "p000001.psv"
        head, *rows = src.read_bytes().rstrip(b"\n").split(b"\n")
        joined = tmp_path / "p000001.psv"
        joined.write_bytes(b"\n".join([head, *rows[:20], b"", *rows[20:30], b" \t", *rows[30:]]))
        with caplog.at_level(logging.WARNING, logger="vitalgru.io.psv"):
            assert read_psv(joined).equals(read_psv(src))
        assert "2 empty line(s) among the rows skipped" in caplog.text
        cohort = read_psv_folder(tmp_path)
        assert cohort.attrition == [] and cohort.empty_lines == 2
        assert cohort.frame.equals(read_psv_folder(setA, limit=1).frame)
        cache = tmp_path.parent / f"{tmp_path.name}-cache"
        read_psv_folder(tmp_path, cache_dir=cache)
        assert read_psv_folder(tmp_path, cache_dir=cache).empty_lines == 2

    def test_a_cell_that_is_not_utf8_is_missing_not_the_patient(self, tmp_path: Path):
        p = tmp_path / "p1.psv"
        p.write_bytes("\n".join([HEADER, _row(1), _row(2, hr="8\udcff0"), _row(3)])
                      .encode("utf-8", "surrogateescape"))  # fmt: skip
        df = read_psv(p)
        assert df["hour"].tolist() == [1, 2, 3] and np.isnan(df["hr_bpm"].iloc[1])
        assert df["hr_bpm"].iloc[[0, 2]].tolist() == [80, 80]

    def test_a_quote_in_a_cell_is_that_cell_not_a_quoted_field(self, tmp_path: Path):
        # a quote opened a field that swallowed the pipes (and rows) up to the next quote
        p = _write(tmp_path / "p1.psv", [HEADER, _row(1, hr='"80'), _row(2), _row(3, hr='8"')])
        df = read_psv(p)
        assert df["hour"].tolist() == [1, 2, 3] and df["hr_bpm"].isna().tolist() == [
            True, False, True]  # fmt: skip

    def test_old_mac_line_ends_read_like_the_original(self, tmp_path: Path, setA: Path):
        src = setA / "p000001.psv"
        saved = tmp_path / "p000001.psv"
        saved.write_bytes(src.read_bytes().replace(b"\n", b"\r"))
        assert read_psv(saved).equals(read_psv(src))


class TestReadFolder:
    def test_bad_files_go_to_attrition_rest_is_read(self, tmp_path: Path):
        _write(tmp_path / "p1.psv", [HEADER, _row(1), _row(2)])
        _write(tmp_path / "p2.psv", [HEADER, _row(1, hr="x"), _row(2, hr="n/a")])
        _write(tmp_path / "p3.psv", [HEADER])
        _write(tmp_path / "p4.psv", [HEADER, _row(1), _row(2), _row(3, 1)])
        _write(tmp_path / "p5.psv", [HEADER, _row(1), _row("2h")])
        rev = ["|".join(reversed(line.split("|"))) for line in [HEADER, _row(1), _row(2, 1)]]
        _write(tmp_path / "p6.psv", rev)
        cohort = read_psv_folder(tmp_path)
        f = cohort.frame
        assert f["patient_id"].unique().tolist() == ["p1", "p2", "p4", "p6"]
        assert len(f) == 9
        assert f.loc[f["patient_id"] == "p2", "hr_bpm"].isna().all()  # text read as missing
        assert f.loc[f["patient_id"] == "p6", "sepsis_label"].tolist() == [0, 1]
        assert f.loc[f["patient_id"] == "p6", "hr_bpm"].tolist() == [80, 80]
        assert cohort.non_numeric_cells == {"hr_bpm": 2}
        assert sorted((e.item, e.reason) for e in cohort.attrition) == [
            ("p3.psv", "no_rows"),
            ("p5.psv", "non_numeric"),
        ]
        with pytest.raises(RecordError):
            read_psv_folder(tmp_path, on_error="raise")
        # and when the folder's read with files left out is cached: the cache answered
        # on_error="raise" with the cohort, as if every file had been read
        cache = tmp_path.parent / f"{tmp_path.name}-cache"
        read_psv_folder(tmp_path, cache_dir=cache)
        with pytest.raises(RecordError, match="p3.psv"):
            read_psv_folder(tmp_path, on_error="raise", cache_dir=cache)
        assert read_psv_folder(tmp_path, cache_dir=cache).frame.equals(f)

    def test_a_misshapen_file_goes_to_attrition_and_the_rest_is_read(self, tmp_path: Path):
        # the folder read used to fail whole on such a file's rows
        _write(tmp_path / "p1.psv", [HEADER, _row(1), _row(2)])
        _write(tmp_path / "p2.psv", [HEADER, _row(1) + "|80", _row(2)[4:]])
        _write(tmp_path / "p3.psv", [HEADER, _row(1, hr="x")])  # the lenient path too
        cohort = read_psv_folder(tmp_path)
        assert cohort.frame["patient_id"].unique().tolist() == ["p1", "p3"]
        assert [(e.item, e.reason) for e in cohort.attrition] == [("p2.psv", "bad_row_shape")]

    def test_reordered_file_on_the_one_pass_path(self, tmp_path: Path):
        # no bad cell anywhere: the joined parse reads it, then puts its columns in order
        _write(tmp_path / "p1.psv", [HEADER, _row(1, hr="81")])
        rev = ["|".join(reversed(line.split("|"))) for line in [HEADER, _row(1, 1, "92")]]
        _write(tmp_path / "p2.psv", rev)
        cohort = read_psv_folder(tmp_path)
        assert cohort.frame["hr_bpm"].tolist() == [81, 92]
        assert cohort.frame["sepsis_label"].tolist() == [0, 1]
        assert cohort.non_numeric_cells == {} and cohort.attrition == []

    def test_no_readable_file_is_all_attrition(self, tmp_path: Path):
        _write(tmp_path / "p1.psv", [])
        _write(tmp_path / "p2.psv", [HEADER])
        cohort = read_psv_folder(tmp_path)
        assert len(cohort.frame) == 0
        assert [e.reason for e in cohort.attrition] == ["empty_file", "no_rows"]

    def test_upper_case_and_gzip_tables_are_read(self, tmp_path: Path, setA: Path):
        # as soon as one .psv was there, .PSV and .psv.gz files were left out unsaid
        src = _first_files(setA, tmp_path / "src", 3)
        mixed = tmp_path / "mixed"
        mixed.mkdir()
        a, b, c = list_psv(src)
        shutil.copy(a, mixed / a.name)
        shutil.copy(b, mixed / b.name.upper().replace("P0", "p0"))  # p000002.PSV
        (mixed / f"{c.name}.gz").write_bytes(gzip.compress(c.read_bytes()))
        assert [f.name for f in list_psv(mixed)] == [
            a.name, "p000002.PSV", f"{c.name}.gz"]  # fmt: skip
        cohort = read_psv_folder(mixed)
        assert cohort.attrition == [] and cohort.source_files == 3
        assert cohort.frame.equals(read_psv_folder(src).frame)  # same ids, same rows
        assert read_psv(mixed / f"{c.name}.gz").equals(read_psv(c))
        # cached like the rest
        cache = tmp_path / "cache"
        read_psv_folder(mixed, cache_dir=cache)
        assert read_psv_folder(mixed, cache_dir=cache).frame.equals(cohort.frame)

    def test_a_broken_gzip_or_a_patient_twice_goes_to_attrition(self, tmp_path: Path):
        _write(tmp_path / "p1.psv", [HEADER, _row(1), _row(2)])
        (tmp_path / "p1.psv.gz").write_bytes(gzip.compress(f"{HEADER}\n{_row(1)}\n".encode()))
        (tmp_path / "p2.psv.gz").write_bytes(gzip.compress(b"HR|O2Sat\n")[:-6])
        cohort = read_psv_folder(tmp_path)
        assert cohort.frame["patient_id"].unique().tolist() == ["p1"]
        assert len(cohort.frame) == 2  # the .psv's rows, not both files' under one id
        assert [(e.item, e.reason) for e in cohort.attrition] == [
            ("p1.psv.gz", "duplicate_patient"), ("p2.psv.gz", "bad_gzip")]  # fmt: skip
        assert "already read from p1.psv" in cohort.attrition[0].detail

    def test_tables_in_subfolders_are_named_not_passed_over(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ):
        # ward2/ and ward3/ beside the folder's own files: neither read nor said before
        _write(tmp_path / "p1.psv", [HEADER, _row(1)])
        for ward in ("ward2", "ward3/old"):
            (tmp_path / ward).mkdir(parents=True)
            _write(tmp_path / ward / "p1.psv", [HEADER, _row(1, 1)])  # the same name
        _write(tmp_path / "ward2" / "p2.PSV", [HEADER, _row(1)])
        (tmp_path / "ward2" / "notes.txt").write_text("x")
        with caplog.at_level(logging.WARNING, logger="vitalgru.io.psv_folder"):
            cohort = read_psv_folder(tmp_path)
        assert cohort.frame["patient_id"].tolist() == ["p1"]
        assert cohort.frame["sepsis_label"].tolist() == [0]  # the folder's own p1
        assert [(e.item, e.reason) for e in cohort.attrition] == [
            ("ward2/p1.psv", "in_subfolder"),
            ("ward2/p2.PSV", "in_subfolder"),
            ("ward3/old/p1.psv", "in_subfolder"),
        ]
        assert "3 Challenge-2019 file(s) in sub-folders" in caplog.text
        assert "ward2/ (2), ward3/ (1)" in caplog.text
        # said again when the cohort comes from the cache, and not stored in it: a
        # sub-folder's files are not part of its key
        cache = tmp_path.parent / f"{tmp_path.name}-cache"
        read_psv_folder(tmp_path, cache_dir=cache)
        (tmp_path / "ward3" / "old" / "p1.psv").unlink()
        again = read_psv_folder(tmp_path, cache_dir=cache)
        assert [e.item for e in again.attrition] == ["ward2/p1.psv", "ward2/p2.PSV"]

    def test_missing_folder(self, tmp_path: Path):
        with pytest.raises(FileNotFoundError):
            read_psv_folder(tmp_path / "nope")

    def test_the_folder_above_the_sets_says_where_they_are(self, tmp_path: Path):
        # The challenge ships training_setA and training_setB side by side.
        for name, n in (("training_setA", 2), ("training_setB", 1)):
            (tmp_path / name).mkdir()
            for i in range(n):
                _write(tmp_path / name / f"p{i}.psv", [HEADER, _row(1)])
        (tmp_path / "notes").mkdir()
        with pytest.raises(FileNotFoundError) as e:
            read_psv_folder(tmp_path)
        assert str(e.value).endswith(
            "its subfolders hold them: training_setA (2 files), training_setB (1 files); "
            "point at one of those"
        )
        with pytest.raises(FileNotFoundError) as e:  # nothing anywhere: no hint
            read_psv_folder(tmp_path / "notes")
        assert str(e.value) == f"no .psv files in {tmp_path / 'notes'}"
        # PhysioNet serves the sets zipped: a folder with only the archive says so
        (tmp_path / "notes" / "training_setA.zip").write_bytes(b"PK")
        (tmp_path / "notes" / "README.txt").write_text("x")
        with pytest.raises(FileNotFoundError) as e:
            read_psv_folder(tmp_path / "notes")
        assert str(e.value).endswith("it holds training_setA.zip: unpack the .psv files first")

    def test_cache_round_trip_and_invalidation(self, tmp_path: Path, setA: Path):
        src = _first_files(setA, tmp_path / "src", 30)
        _write(src / "p999999.psv", [HEADER])
        _write(src / "p999998.psv", [HEADER, _row(1, hr="high")])
        cache = tmp_path / "cache"
        a = read_psv_folder(src, cache_dir=cache)
        assert len(list(cache.glob("*.parquet"))) == 1
        b = read_psv_folder(src, cache_dir=cache)
        assert b.frame.equals(a.frame)
        assert [e.reason for e in b.attrition] == ["no_rows"]
        assert b.non_numeric_cells == a.non_numeric_cells == {"hr_bpm": 1}
        (src / "p000001.psv").unlink()  # changes the file list: a new cache entry
        c = read_psv_folder(src, cache_dir=cache)
        assert "p000001" not in set(c.frame["patient_id"])
        assert len(list(cache.glob("*.parquet"))) == 2

    def test_a_file_corrected_in_place_is_read_again(self, tmp_path: Path, setA: Path):
        src = _first_files(setA, tmp_path / "src", 5)
        cache = tmp_path / "cache"
        first = read_psv_folder(src, cache_dir=cache).frame
        f = src / "p000002.psv"
        text = f.read_text()
        assert text.endswith("|0\n")
        f.write_text(text[:-2] + "1\n")  # its last hour's label corrected: the same size
        st = f.stat()
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        again = read_psv_folder(src, cache_dir=cache).frame
        rows = again["patient_id"] == "p000002"
        # Keyed on sizes alone, the cache served the old label.
        assert again.loc[rows, "sepsis_label"].iloc[-1] == 1
        assert first.loc[first["patient_id"] == "p000002", "sepsis_label"].iloc[-1] == 0

    def test_a_damaged_or_unwritable_cache_costs_only_the_cache(
        self, tmp_path: Path, setA: Path, caplog: pytest.LogCaptureFixture
    ):
        src = _first_files(setA, tmp_path / "src", 5)
        cache = tmp_path / "cache"
        good = read_psv_folder(src, cache_dir=cache).frame
        (entry,) = cache.glob("*.parquet")
        entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])  # a full disk
        with caplog.at_level(logging.WARNING, logger="vitalgru.io.psv_folder"):
            again = read_psv_folder(src, cache_dir=cache).frame
        assert again.equals(good) and "cannot be read" in caplog.text
        assert read_psv_folder(src, cache_dir=cache).frame.equals(good)  # written anew
        assert sorted(p.name for p in cache.iterdir()) == [entry.name]  # no stray .tmp
        not_a_folder = tmp_path / "file"
        not_a_folder.write_text("x")
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="vitalgru.io.psv_folder"):
            third = read_psv_folder(src, cache_dir=not_a_folder / "cache").frame
        assert third.equals(good) and "not written" in caplog.text

    @pytest.mark.slow
    def test_whole_set_a(self, setA: Path):
        # (its reading time is measured by benchmarks/early_warning.py, read_all_files_s)
        cohort = read_psv_folder(setA)
        assert cohort.frame["patient_id"].nunique() == 17652
        assert len(cohort.frame) == 687218
        assert cohort.attrition == [] and cohort.non_numeric_cells == {}


def _first_files(setA: Path, dst: Path, n: int) -> Path:
    """A folder holding copies of set A's first ``n`` files."""
    dst.mkdir()
    for f in list_psv(setA)[:n]:
        shutil.copy(f, dst / f.name)
    return dst
