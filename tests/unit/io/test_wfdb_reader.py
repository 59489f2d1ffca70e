"""Reading WFDB records and annotations: real MIT-BIH / NSTDB records, records written
with wfdb at other rates and lead counts, and one test per kind of bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import wfdb

from vitalgru.errors import RecordError
from vitalgru.io.wfdb_header import check_record_files, read_header
from vitalgru.io.wfdb_reader import read_annotations_file, read_record_files


def _copy_record(src_dir: Path, record: str, dst_dir: Path, exts=("hea", "dat", "atr")) -> Path:
    dst_dir.mkdir(parents=True, exist_ok=True)
    for ext in exts:
        shutil.copyfile(src_dir / f"{record}.{ext}", dst_dir / f"{record}.{ext}")
    return dst_dir


def _write_header(path: Path, text: str) -> None:
    path.write_text(text.strip() + "\n")


class TestRealRecords:
    def test_mitdb_100(self, mitdb_dir: Path) -> None:
        rec = read_record_files(mitdb_dir, "100", database="mitdb")
        assert rec.signal.shape == (650000, 2)
        assert rec.signal.dtype == np.float32
        assert rec.channels == ("MLII", "V5")
        assert rec.units == ("mV", "mV")
        assert rec.fs == 360.0
        assert rec.patient_id == "100" and rec.database == "mitdb"
        # Same physical values as wfdb's own conversion (212 format, gain 200, baseline 1024).
        ref = wfdb.rdrecord(str(mitdb_dir / "100")).p_signal
        np.testing.assert_allclose(rec.signal, ref, atol=1e-6)
        assert rec.signal[0, 0] == pytest.approx(-0.145)

    def test_mitdb_100_annotations(self, mitdb_dir: Path) -> None:
        ann = read_annotations_file(mitdb_dir, "100", "atr")
        assert len(ann) == 2274  # 2273 beats + one rhythm annotation
        assert ann.sample_idx.dtype == np.int64
        assert np.all(np.diff(ann.sample_idx) >= 0)
        symbols, counts = np.unique(ann.symbol, return_counts=True)
        assert dict(zip(symbols.tolist(), counts.tolist(), strict=True)) == {
            "+": 1,
            "A": 33,
            "N": 2239,
            "V": 1,
        }
        assert ann.fs == 360.0
        assert ann.aux_note[0] == "(N"  # trailing NUL stripped

    def test_nstdb_format16_record(self, physionet_mirror: Path) -> None:
        d = physionet_mirror / "nstdb"
        rec = read_record_files(d, "118e00")
        assert rec.signal.shape == (650000, 2)
        assert rec.channels == ("MLII", "V1")
        ref = wfdb.rdrecord(str(d / "118e00")).p_signal
        np.testing.assert_allclose(rec.signal, ref, atol=1e-5)

    def test_channel_selection(self, mitdb_dir: Path) -> None:
        rec = read_record_files(mitdb_dir, "100", channels=["v5"])
        assert rec.channels == ("V5",) and rec.signal.shape == (650000, 1)
        full = read_record_files(mitdb_dir, "100")
        np.testing.assert_array_equal(rec.signal[:, 0], full.signal[:, 1])
        both = read_record_files(mitdb_dir, "100", channels=[1, "MLII"])
        assert both.channels == ("V5", "MLII")

    def test_missing_channel(self, mitdb_dir: Path) -> None:
        with pytest.raises(RecordError) as e:
            read_record_files(mitdb_dir, "100", channels=["V1"])
        assert e.value.reason == "missing_channel" and "100.hea" in str(e.value)
        with pytest.raises(RecordError):
            read_record_files(mitdb_dir, "100", channels=[2])


class TestWrittenRecords:
    def test_250hz_three_leads(self, tmp_path: Path) -> None:
        fs, n = 250, 2501  # odd length: format 212 ends on a half-filled byte triple
        t = np.arange(n) / fs
        sig = np.stack(
            [np.sin(2 * np.pi * 1.2 * t), 0.5 * np.cos(2 * np.pi * 3 * t), 0.1 * t], axis=1
        )
        wfdb.wrsamp(
            "rec250",
            fs=fs,
            units=["mV", "mV", "mV"],
            sig_name=["I", "II", "V2"],
            p_signal=sig,
            fmt=["212"] * 3,
            adc_gain=[400.0] * 3,
            baseline=[0] * 3,
            write_dir=str(tmp_path),
        )
        rec = read_record_files(tmp_path, "rec250")
        assert rec.fs == 250.0 and rec.channels == ("I", "II", "V2")
        assert rec.signal.shape == (n, 3) and rec.signal.dtype == np.float32
        np.testing.assert_allclose(rec.signal, sig, atol=1.0 / 400 + 1e-6)

    def test_microvolts_become_millivolts(self, tmp_path: Path) -> None:
        sig = np.linspace(-1000, 1000, 500)[:, None]  # uV
        wfdb.wrsamp(
            "uv",
            fs=500,
            units=["uV"],
            sig_name=["ECG"],
            p_signal=sig,
            fmt=["16"],
            adc_gain=[1.0],
            baseline=[0],
            write_dir=str(tmp_path),
        )
        rec = read_record_files(tmp_path, "uv")
        assert rec.units == ("mV",)
        np.testing.assert_allclose(rec.signal[:, 0], sig[:, 0] / 1000, atol=1e-3)

    @pytest.mark.parametrize("fmt", ["16", "24", "32", "80", "212"])  # what wfdb writes
    @pytest.mark.parametrize("n", [1, 2, 3, 1000, 1001])
    def test_size_rule_matches_wfdb_writer(self, tmp_path: Path, fmt: str, n: int) -> None:
        rng = np.random.default_rng(0)
        d = rng.integers(-100, 100, size=(n, 2)).astype(np.int32)
        wfdb.wrsamp(
            "s",
            fs=100,
            units=["mV", "mV"],
            sig_name=["a", "b"],
            d_signal=d,
            fmt=[fmt, fmt],
            adc_gain=[100.0, 100.0],
            baseline=[0, 0],
            write_dir=str(tmp_path),
        )
        header = read_header(tmp_path, "s")
        assert check_record_files(tmp_path, header) == n
        rec = read_record_files(tmp_path, "s")
        np.testing.assert_allclose(rec.signal, d / 100.0, atol=1e-6)

    def test_nan_only_and_constant_signals_are_not_errors(self, tmp_path: Path) -> None:
        sig = np.column_stack([np.full(1000, np.nan), np.full(1000, 0.7)])
        wfdb.wrsamp(
            "flat",
            fs=360,
            units=["mV", "mV"],
            sig_name=["MLII", "V1"],
            p_signal=sig,
            fmt=["16", "16"],
            adc_gain=[200.0, 200.0],
            baseline=[0, 0],
            write_dir=str(tmp_path),
        )
        rec = read_record_files(tmp_path, "flat")
        assert np.isnan(rec.signal[:, 0]).all()
        np.testing.assert_allclose(rec.signal[:, 1], 0.7, atol=1e-2)

    def test_format_8_first_differences(self, tmp_path: Path) -> None:
        # format 8 stores each sample as its difference from the last, which wfdb sums
        # into int64; its sums run past 16 bits
        d = np.cumsum(np.random.default_rng(0).integers(-20, 101, (3000, 2)), axis=0)
        np.diff(np.vstack([[0, 0], d]), axis=0).astype("i1").tofile(tmp_path / "f8.dat")
        _write_header(tmp_path / "f8.hea", "f8 2 360 3000\n"
                      "f8.dat 8 200(0)/mV 16 0 0 0 0 MLII\nf8.dat 8 200(0)/mV 16 0 0 0 0 V5")  # fmt: skip
        assert np.abs(d).max() > 2**15
        rec = read_record_files(tmp_path, "f8")
        np.testing.assert_allclose(rec.signal, d / 200.0, rtol=1e-6)

    def test_several_samples_per_frame(self, tmp_path: Path) -> None:
        # lead II at 2 samples per frame (500 Hz in a 250 Hz record), V1 at one: II is
        # averaged to the frame rate, and a frame holding an invalid sample is a gap,
        # not the average of -32768 and a real sample
        rng = np.random.default_rng(1)
        frames = rng.integers(-300, 300, (1000, 3)).astype("<i2")  # II, II, V1
        frames[500, 1] = -32768
        frames.tofile(tmp_path / "mf.dat")
        _write_header(tmp_path / "mf.hea", "mf 2 250 1000\n"
                      "mf.dat 16x2 200(0)/mV 16 0 0 0 0 II\nmf.dat 16 200(0)/mV 16 0 0 0 0 V1")  # fmt: skip
        rec = read_record_files(tmp_path, "mf")
        assert rec.fs == 250 and rec.channels == ("II", "V1") and rec.n_samples == 1000
        ii = frames[:, :2].astype(float).mean(axis=1) / 200
        ii[500] = np.nan
        np.testing.assert_allclose(rec.signal[:, 0], ii, rtol=1e-6)
        np.testing.assert_allclose(rec.signal[:, 1], frames[:, 2] / 200, rtol=1e-6)

    def test_annotations_at_a_time_resolution_of_their_own(self, tmp_path: Path) -> None:
        # WFDB high-resolution annotations: written at 500 Hz for a 250 Hz record, they
        # are read at the record's frames (they sat at twice their samples before)
        np.zeros((1000, 1), "<i2").tofile(tmp_path / "hr.dat")
        _write_header(tmp_path / "hr.hea", "hr 1 250 1000\nhr.dat 16 200(0)/mV 16 0 0 0 0 II")
        wfdb.wrann("hr", "hra", np.array([10, 501, 1999]), symbol=["N", "V", "N"], fs=500,
                   write_dir=str(tmp_path))  # fmt: skip
        ann = read_annotations_file(tmp_path, "hr", "hra")
        assert ann.fs == 250 and ann.sample_idx.tolist() == [5, 250, 1000]
        (tmp_path / "hr.hea").unlink()  # no header: the file's own rate
        ann = read_annotations_file(tmp_path, "hr", "hra")
        assert ann.fs == 500 and ann.sample_idx.tolist() == [10, 501, 1999]

    def test_record_in_a_sub_folder(self, tmp_path: Path, mitdb_dir: Path) -> None:
        # PhysioNet's larger databases keep records in sub-folders (RECORDS: p00/p000020);
        # the header names its signal files relative to its own folder
        _copy_record(mitdb_dir, "100", tmp_path / "p00")
        rec = read_record_files(tmp_path, "p00/100")
        assert rec.record_id == "p00/100" and rec.n_samples == 650000
        whole = read_record_files(mitdb_dir, "100")
        np.testing.assert_array_equal(rec.signal, whole.signal)

    def test_header_without_sample_count(self, tmp_path: Path, mitdb_dir: Path) -> None:
        _copy_record(mitdb_dir, "100", tmp_path, ("dat",))
        lines = (mitdb_dir / "100.hea").read_text().splitlines()
        lines[0] = "100 2 360"
        _write_header(tmp_path / "100.hea", "\n".join(lines))
        assert read_record_files(tmp_path, "100").n_samples == 650000


class TestBadInput:
    def test_truncated_dat(self, tmp_path: Path, mitdb_dir: Path) -> None:
        _copy_record(mitdb_dir, "100", tmp_path)
        with open(tmp_path / "100.dat", "r+b") as f:
            f.truncate(1_000_000)
        with pytest.raises(RecordError) as e:
            read_record_files(tmp_path, "100")
        assert e.value.reason == "truncated_dat"
        assert e.value.path.endswith("100.dat") and "1000000 bytes" in str(e.value)

    def test_dat_longer_than_header_says(self, tmp_path: Path, mitdb_dir: Path) -> None:
        _copy_record(mitdb_dir, "100", tmp_path)
        text = (tmp_path / "100.hea").read_text().replace("100 2 360 650000", "100 2 360 600000")
        _write_header(tmp_path / "100.hea", text)
        with pytest.raises(RecordError) as e:
            read_record_files(tmp_path, "100")
        assert e.value.reason == "dat_size_mismatch" and "100.dat" in str(e.value)

    def test_more_signals_declared_than_lines(self, tmp_path: Path, mitdb_dir: Path) -> None:
        _copy_record(mitdb_dir, "100", tmp_path)
        text = (tmp_path / "100.hea").read_text().replace("100 2 360", "100 3 360")
        _write_header(tmp_path / "100.hea", text)
        with pytest.raises(RecordError) as e:
            read_record_files(tmp_path, "100")
        assert e.value.reason == "bad_header" and e.value.path.endswith("100.hea")

    def test_extra_signal_line(self, tmp_path: Path, mitdb_dir: Path) -> None:
        _copy_record(mitdb_dir, "100", tmp_path)
        text = (tmp_path / "100.hea").read_text()
        text = text.replace("0 V5\n", "0 V5\n100.dat 212 200 11 1024 1011 20052 0 V6\n")
        _write_header(tmp_path / "100.hea", text)
        with pytest.raises(RecordError) as e:
            read_record_files(tmp_path, "100")
        assert e.value.reason == "bad_header"

    def test_signal_count_contradicts_data(self, tmp_path: Path, mitdb_dir: Path) -> None:
        # Three signals in a two-signal file: the header implies 1.5x the bytes present.
        _copy_record(mitdb_dir, "100", tmp_path)
        text = (tmp_path / "100.hea").read_text().replace("100 2 360", "100 3 360")
        text = text.replace("0 V5\n", "0 V5\n100.dat 212 200 11 1024 1011 20052 0 V6\n")
        _write_header(tmp_path / "100.hea", text)
        with pytest.raises(RecordError) as e:
            read_record_files(tmp_path, "100")
        assert e.value.reason == "truncated_dat" and "2925000" in str(e.value)

    def test_bad_format_code(self, tmp_path: Path, mitdb_dir: Path) -> None:
        _copy_record(mitdb_dir, "100", tmp_path)
        text = (tmp_path / "100.hea").read_text().replace("100.dat 212", "100.dat 999")
        _write_header(tmp_path / "100.hea", text)
        with pytest.raises(RecordError) as e:
            read_record_files(tmp_path, "100")
        assert e.value.reason == "bad_format" and "'999'" in str(e.value)

    def test_no_sampling_frequency(self, tmp_path: Path, mitdb_dir: Path) -> None:
        # WFDB's default rate (250 Hz) would read this 360 Hz record 1.44x too slow
        _copy_record(mitdb_dir, "100", tmp_path)
        text = (tmp_path / "100.hea").read_text().replace("100 2 360 650000", "100 2")
        _write_header(tmp_path / "100.hea", "# a comment first\n" + text)
        assert wfdb.rdheader(str(tmp_path / "100")).fs == 250
        with pytest.raises(RecordError) as e:
            read_record_files(tmp_path, "100")
        assert e.value.reason == "unknown_fs" and "no sampling frequency" in str(e.value)

    @pytest.mark.parametrize("rate", ["abc", "-360", "360Hz", "36O", "1e3"])
    def test_sampling_frequency_that_is_not_a_rate(
        self, tmp_path: Path, mitdb_dir: Path, rate: str
    ) -> None:
        # wfdb-python reads 'abc' and '-360' as its default 250 Hz, and '36O' as 36 Hz
        # without the sample count after it
        _copy_record(mitdb_dir, "100", tmp_path)
        text = (tmp_path / "100.hea").read_text()
        _write_header(tmp_path / "100.hea", text.replace("100 2 360 ", f"100 2 {rate} "))
        with pytest.raises(RecordError) as e:
            read_header(tmp_path, "100")
        assert e.value.reason == "unknown_fs" and repr(rate) in str(e.value)

    @pytest.mark.parametrize(("line", "why"), [("100 2 0 650000", "> 0"),
                                               ("100 2 360 65000x", "'65000x'")])  # fmt: skip
    def test_rate_of_zero_or_sample_count_that_is_not_a_number(
        self, tmp_path: Path, mitdb_dir: Path, line: str, why: str
    ) -> None:
        _copy_record(mitdb_dir, "100", tmp_path)
        text = (tmp_path / "100.hea").read_text()
        _write_header(tmp_path / "100.hea", text.replace("100 2 360 650000", line))
        with pytest.raises(RecordError) as e:
            read_header(tmp_path, "100")
        assert e.value.reason == "bad_header" and why in str(e.value)

    @pytest.mark.parametrize(
        ("field", "why"),
        [
            ("2OO 11 1024", "gain field '2OO'"),  # wfdb-python: gain 2, 100x too large
            ("nan 11 1024", "gain field 'nan'"),  # wfdb-python: default gain 200, silently
            ("2E2 11 1024", "gain field '2E2'"),  # wfdb-python: gain 2 in units 'E2'
            ("200(nan) 11 1024", "gain field '200(nan)'"),
            ("200/°C 11 1024", "gain field '200/°C'"),  # the fields after it read as a name
            ("1e-300 11 1024", "too close to 0"),  # 1/gain overflows: -inf millivolts
            ("1e309 11 1024", "not finite"),  # an infinite gain: a flat line of zeros
            ("200(99999999999999999999) 11 1024", "does not fit a 32-bit sample"),
            ("200 11 1O24", "ADC zero '1O24'"),  # wfdb-python: zero 1, and baseline 1
            ("200 -11 1024", "ADC resolution '-11'"),
        ],
    )
    def test_signal_line_field_wfdb_would_misread(
        self, tmp_path: Path, mitdb_dir: Path, field: str, why: str
    ) -> None:
        _copy_record(mitdb_dir, "100", tmp_path)
        text = (tmp_path / "100.hea").read_text()
        _write_header(tmp_path / "100.hea", text.replace("212 200 11 1024 995", f"212 {field} 995"))
        with pytest.raises(RecordError) as e:
            read_record_files(tmp_path, "100")
        assert e.value.reason == "bad_header" and why in str(e.value) and "signal 0" in str(e.value)

    def test_format_field_wfdb_would_misread(self, tmp_path: Path, mitdb_dir: Path) -> None:
        # wfdb-python reads '212abc 200 11' as format 212, units 'abc', ADC resolution 200
        _copy_record(mitdb_dir, "100", tmp_path)
        text = (tmp_path / "100.hea").read_text().replace("100.dat 212 200", "100.dat 212abc 200")
        _write_header(tmp_path / "100.hea", text)
        with pytest.raises(RecordError) as e:
            read_header(tmp_path, "100")
        assert e.value.reason == "bad_header" and "'212abc'" in str(e.value)

    def test_signal_line_without_trailing_fields_is_read(
        self, tmp_path: Path, mitdb_dir: Path
    ) -> None:
        # header(5) lets a line stop after any field; what follows the last number names it
        _copy_record(mitdb_dir, "100", tmp_path)
        text = (tmp_path / "100.hea").read_text()
        text = text.replace("212 200 11 1024 995 -22131 0 MLII", "212 200(1024)/mV 11 MLII")
        _write_header(tmp_path / "100.hea", text)
        h = read_header(tmp_path, "100")
        assert (h.sig_name[0], h.adc_gain[0], h.baseline[0]) == ("MLII", 200.0, 1024)

    def test_a_changed_byte_in_the_signal_file_is_a_checksum_error(
        self, tmp_path: Path, mitdb_dir: Path
    ) -> None:
        # wfdb-python does not check the header's checksums: a corrupted copy of 100.dat
        # (one bit of one byte) read as a record like any other
        _copy_record(mitdb_dir, "100", tmp_path)
        dat = tmp_path / "100.dat"
        data = bytearray(dat.read_bytes())
        data[3 * 1000] ^= 0x40  # the low byte of signal 0 at sample 2000
        dat.write_bytes(bytes(data))
        with pytest.raises(RecordError) as e:
            read_record_files(tmp_path, "100")
        assert e.value.reason == "bad_checksum" and e.value.path.endswith("100.dat")
        assert "signal 0 (MLII)" in str(e.value) and "states -22131" in str(e.value)
        assert read_record_files(tmp_path, "100", channels=["V5"]).channels == ("V5",)  # intact

    def test_counter_frequency_is_read(self, tmp_path: Path, mitdb_dir: Path) -> None:
        _copy_record(mitdb_dir, "100", tmp_path)
        text = (tmp_path / "100.hea").read_text()
        _write_header(tmp_path / "100.hea", text.replace("100 2 360 ", "100 2 360/720(-5) "))
        h = read_header(tmp_path, "100")
        assert (h.fs, h.sig_len) == (360.0, 650000)

    def test_unparseable_header(self, tmp_path: Path) -> None:
        (tmp_path / "x.hea").write_text("this is not a header\n")
        with pytest.raises(RecordError) as e:
            read_record_files(tmp_path, "x")
        assert e.value.reason == "bad_header" and e.value.path.endswith("x.hea")

    def test_missing_header(self, tmp_path: Path) -> None:
        with pytest.raises(RecordError) as e:
            read_record_files(tmp_path, "nope")
        assert e.value.reason == "missing_header"

    def test_missing_dat(self, tmp_path: Path, mitdb_dir: Path) -> None:
        _copy_record(mitdb_dir, "100", tmp_path, ("hea",))
        with pytest.raises(RecordError) as e:
            read_record_files(tmp_path, "100")
        assert e.value.reason == "missing_dat" and e.value.path.endswith("100.dat")

    def test_missing_annotations(self, tmp_path: Path, mitdb_dir: Path) -> None:
        _copy_record(mitdb_dir, "100", tmp_path, ("hea", "dat"))
        with pytest.raises(RecordError) as e:
            read_annotations_file(tmp_path, "100", "atr")
        assert e.value.reason == "missing_annotations" and e.value.path.endswith("100.atr")

    @pytest.mark.parametrize("keep", [0.5, 0.999])
    def test_truncated_annotations(self, tmp_path: Path, mitdb_dir: Path, keep: float) -> None:
        # cut at an even length, wfdb read the first part as the whole list of beats
        _copy_record(mitdb_dir, "100", tmp_path, ("hea", "dat"))
        data = (mitdb_dir / "100.atr").read_bytes()
        (tmp_path / "100.atr").write_bytes(data[: int(len(data) * keep) & ~1])
        with pytest.raises(RecordError) as e:
            read_annotations_file(tmp_path, "100", "atr")
        assert e.value.reason == "bad_annotations" and "truncated" in str(e.value)

    def test_every_mitdb_annotation_file_ends_as_wfdb_says(self, mitdb_dir: Path) -> None:
        records = (mitdb_dir / "RECORDS").read_text().split()
        assert len(records) == 48
        for r in records:
            assert read_annotations_file(mitdb_dir, r, "atr").sample_idx.size > 1000

    def test_corrupt_annotations(self, tmp_path: Path, mitdb_dir: Path) -> None:
        _copy_record(mitdb_dir, "100", tmp_path, ("hea", "dat"))
        (tmp_path / "100.atr").write_bytes(b"\x01\x02\x03")
        with pytest.raises(RecordError) as e:
            read_annotations_file(tmp_path, "100", "atr")
        assert e.value.reason == "bad_annotations" and e.value.path.endswith("100.atr")

    def test_an_annotation_code_wfdb_does_not_define_is_named_and_logged(
        self, tmp_path: Path, mitdb_dir: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        # a damaged byte turned a beat's code (N, 1) into 45, which WFDB does not define:
        # wfdb-python gives it NaN, read as the symbol 'nan', and the beat left the beats
        # without a word
        _copy_record(mitdb_dir, "100", tmp_path, ("hea", "dat"))
        words = [(1 << 10) | 10, (45 << 10) | 20, (1 << 10) | 300, 0]  # code << 10 | interval
        (tmp_path / "100.atr").write_bytes(np.array(words, "<u2").tobytes())
        ann = read_annotations_file(tmp_path, "100", "atr")
        assert ann.symbol.tolist() == ["N", "[45]", "N"]  # as WFDB's annstr names it
        assert ann.sample_idx.tolist() == [10, 30, 330]
        assert "1 annotation(s) of a code WFDB does not define" in caplog.text
        assert "[45], at sample 30" in caplog.text and "100.atr" in caplog.text


def _out_of_memory(*args: object, **kwargs: object) -> None:
    """What wfdb does where the process may not allocate a record's arrays (a memory limit):
    numpy's own MemoryError, from an allocation no machine can make."""
    np.empty(2**62, dtype=np.uint8)


class TestOutOfMemory:
    """A reader that runs out of memory raises MemoryError, never a RecordError: a record
    the process could not hold is not a damaged file, and in a flow a RecordError sends it
    to attrition (``unreadable``), so an ingest under a memory limit wrote a dataset
    without it and said nothing but a line in attrition.csv."""

    @pytest.mark.parametrize(
        ("name", "read"),
        [
            ("rdrecord", lambda d: read_record_files(d, "100")),
            ("rdann", lambda d: read_annotations_file(d, "100", "atr")),
            ("rdheader", lambda d: read_header(d, "100")),
        ],
    )
    def test_memory_error_is_not_a_damaged_file(
        self, tmp_path: Path, mitdb_dir: Path, monkeypatch: pytest.MonkeyPatch, name, read
    ) -> None:
        _copy_record(mitdb_dir, "100", tmp_path)
        monkeypatch.setattr(wfdb, name, _out_of_memory)
        with pytest.raises(MemoryError, match="Unable to allocate"):
            read(tmp_path)
