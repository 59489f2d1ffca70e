"""Valid WFDB records written as other PhysioNet databases write them (other signal formats,
units, gains, byte offsets, skew), built in a temporary folder from the first seconds of
MIT-BIH record 100, each read as wfdb-python reads it in physical units."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import wfdb

from vitalgru.config import PhysioNetConfig
from vitalgru.data.beat_features import N_RR_FEATURES
from vitalgru.errors import RecordError
from vitalgru.io import open_database
from vitalgru.io.wfdb_reader import read_record_files
from vitalgru.models.arrhythmia import ArrhythmiaGRU
from vitalgru.training.arrhythmia_eval import score_database

SECONDS = 10
N = SECONDS * 360


@pytest.fixture(scope="module")
def mitdb_100(mitdb_dir: Path) -> wfdb.Record:
    return wfdb.rdrecord(str(mitdb_dir / "100"), sampto=N, physical=False)


def _edit_signal_line(hea: Path, signal: int, old: str, new: str) -> None:
    lines = hea.read_text().splitlines()
    assert old in lines[1 + signal]
    lines[1 + signal] = lines[1 + signal].replace(old, new, 1)
    hea.write_text("\n".join(lines) + "\n")


class TestSkew:
    def test_a_skewed_signal_is_read_in_its_frames_against_its_stored_checksum(
        self, tmp_path: Path, mitdb_100: wfdb.Record
    ) -> None:
        # V5 stored 5 frames late (``16:5``), its header's checksum that of the samples
        # stored, as WFDB and wfdb-python write it. Before, the checksum was taken of the
        # skewed read, its last 5 samples invalid: the record was refused as a corrupted
        # copy (bad_checksum).
        skew = 5
        d = mitdb_100.d_signal.astype(np.int16)
        stored = d.copy()
        stored[:, 1] = np.concatenate([np.zeros(skew, np.int16), d[:-skew, 1]])
        wfdb.wrsamp("sk", fs=360, units=["mV"] * 2, sig_name=mitdb_100.sig_name,
                    d_signal=stored, fmt=["16"] * 2, adc_gain=[200.0] * 2,
                    baseline=[1024] * 2, write_dir=str(tmp_path))  # fmt: skip
        _edit_signal_line(tmp_path / "sk.hea", 1, "sk.dat 16 ", f"sk.dat 16:{skew} ")
        rec = read_record_files(tmp_path, "sk")
        want = (d - 1024) / 200.0
        np.testing.assert_allclose(rec.signal[:, 0], want[:, 0], atol=1e-6)
        np.testing.assert_allclose(rec.signal[: N - skew, 1], want[: N - skew, 1], atol=1e-6)
        assert np.isnan(rec.signal[N - skew :, 1]).all()  # beyond the file
        ref = wfdb.rdrecord(str(tmp_path / "sk")).p_signal  # wfdb's own deskewed read
        np.testing.assert_allclose(rec.signal, ref, atol=1e-6)


class TestNullSignal:
    def test_a_null_signal_beside_the_ecg_is_read_as_not_recorded(
        self, tmp_path: Path, mitdb_100: wfdb.Record
    ) -> None:
        # format 0: a signal the header lists but nothing recorded (no file; signal(5)
        # reads its samples as invalid). Before, the whole record was refused as
        # `unreadable` with wfdb-python's KeyError, "cannot decode signal data: '0'".
        wfdb.wrsamp("r", fs=360, units=["mV"], sig_name=["MLII"], d_signal=mitdb_100.d_signal[:, :1],
                    fmt=["212"], adc_gain=[200.0], baseline=[1024], write_dir=str(tmp_path))  # fmt: skip
        hea = tmp_path / "r.hea"
        record_line, mlii = hea.read_text().splitlines()[:2]
        two = record_line.replace("r 1 ", "r 2 ", 1)
        hea.write_text(f"{two}\n~ 0 100/mmHg 12 0 0 0 0 ABP\n{mlii}\n")
        rec = read_record_files(tmp_path, "r")
        assert rec.channels == ("ABP", "MLII") and rec.units == ("mmHg", "mV")
        assert np.isnan(rec.signal[:, 0]).all()
        np.testing.assert_allclose(rec.signal[:, 1], (mitdb_100.d_signal[:, 0] - 1024) / 200.0)
        assert read_record_files(tmp_path, "r", channels=["ABP"]).signal.shape == (N, 1)


def _segment(out: Path, name: str, p: np.ndarray, sig_name: list[str], fs: int = 360) -> None:
    wfdb.wrsamp(name, fs=fs, units=["mV"] * len(sig_name), sig_name=sig_name, p_signal=p,
                fmt=["16"] * len(sig_name), adc_gain=[200.0] * len(sig_name),
                baseline=[0] * len(sig_name), write_dir=str(out))  # fmt: skip


class TestMultiSegment:
    """Records of segments (MIMIC's layout): before, every one was refused as
    ``bad_header`` ("multi-segment records are not supported by this reader")."""

    def test_fixed_layout_reads_as_the_whole_record(
        self, tmp_path: Path, mitdb_100: wfdb.Record
    ) -> None:
        p = (mitdb_100.d_signal - 1024) / 200.0
        half = N // 2
        _segment(tmp_path, "m_0001", p[:half], mitdb_100.sig_name)
        _segment(tmp_path, "m_0002", p[half:], mitdb_100.sig_name)
        (tmp_path / "m.hea").write_text(f"m/2 2 360 {N}\nm_0001 {half}\nm_0002 {N - half}\n")
        (tmp_path / "RECORDS").write_text("m\n")
        rec = read_record_files(tmp_path, "m")
        assert rec.channels == ("MLII", "V5") and rec.fs == 360.0 and rec.units == ("mV", "mV")
        np.testing.assert_allclose(rec.signal, p, atol=1e-6)
        # through a database folder too, whose files are verified before they are read
        db_rec = open_database(str(tmp_path), PhysioNetConfig()).read_record("m", ["V5"])
        np.testing.assert_array_equal(db_rec.signal[:, 0], rec.signal[:, 1])

    def test_variable_layout_with_a_gap_and_a_segment_missing_a_signal(
        self, tmp_path: Path, mitdb_100: wfdb.Record
    ) -> None:
        p = (mitdb_100.d_signal - 1024) / 200.0
        q = N // 4
        sub = tmp_path / "p00"  # in a sub-folder, as MIMIC's records are
        sub.mkdir()
        _segment(sub, "m_0001", p[:q], mitdb_100.sig_name)
        _segment(sub, "m_0003", p[2 * q : 3 * q, ::-1], ["V5", "MLII"])  # the other order
        _segment(sub, "m_0004", p[3 * q :, :1], ["MLII"])  # V5 not recorded
        (sub / "m_layout.hea").write_text(
            "m_layout 2 360 0\n~ 0 200/mV 16 0 0 0 0 MLII\n~ 0 200/mV 16 0 0 0 0 V5\n"
        )
        (sub / "m.hea").write_text(
            f"m/5 2 360 {N}\nm_layout 0\nm_0001 {q}\n~ {q}\nm_0003 {q}\nm_0004 {N - 3 * q}\n"
        )
        rec = read_record_files(tmp_path, "p00/m")
        assert rec.channels == ("MLII", "V5") and rec.record_id == "p00/m"
        want = p.copy()
        want[q : 2 * q] = np.nan  # the gap segment
        want[3 * q :, 1] = np.nan  # V5 is not in the last segment
        np.testing.assert_allclose(rec.signal, want, atol=1e-6)
        ref = wfdb.rdrecord(str(sub / "m")).p_signal  # wfdb's own joined read
        np.testing.assert_allclose(rec.signal, ref, atol=1e-6)
        # a folder without RECORDS: the segments and the layout are parts, not records
        assert open_database(str(sub), PhysioNetConfig()).list_records() == ["m"]

    def test_a_segment_at_another_rate_is_one_clear_error(
        self, tmp_path: Path, mitdb_100: wfdb.Record
    ) -> None:
        p = (mitdb_100.d_signal - 1024) / 200.0
        _segment(tmp_path, "m_0001", p[:100], mitdb_100.sig_name, fs=250)
        (tmp_path / "m.hea").write_text("m/1 2 360 100\nm_0001 100\n")
        with pytest.raises(RecordError, match=r"m_0001.hea: segment of 100 samples at 250 Hz, "
                           r"but m.hea states 100 at 360 Hz") as e:  # fmt: skip
            read_record_files(tmp_path, "m")
        assert e.value.reason == "bad_header"
        (tmp_path / "m.hea").write_text("m/1 2 360 100\nm 100\n")  # itself, not a segment
        with pytest.raises(RecordError, match="names itself as a segment"):
            read_record_files(tmp_path, "m")

    def test_a_segmented_record_is_evaluated_as_the_same_record_whole(
        self, tmp_path: Path, mitdb_dir: Path
    ) -> None:
        n = 40 * 360
        src = wfdb.rdrecord(str(mitdb_dir / "100"), sampto=n)
        ann = wfdb.rdann(str(mitdb_dir / "100"), "atr", sampto=n)
        cut = [0, 13000, n]
        for k in range(2):
            _segment(tmp_path, f"m_{k + 1:04d}", src.p_signal[cut[k] : cut[k + 1]], src.sig_name)
        (tmp_path / "m.hea").write_text(f"m/2 2 360 {n}\nm_0001 13000\nm_0002 {n - 13000}\n")
        _segment(tmp_path, "whole", src.p_signal, src.sig_name)
        for name in ("m", "whole"):
            wfdb.wrann(name, "atr", ann.sample, symbol=ann.symbol, write_dir=str(tmp_path))
        db = open_database(str(tmp_path), PhysioNetConfig())
        assert db.list_records() == ["m", "whole"]
        torch.manual_seed(0)
        model = ArrhythmiaGRU(n_rr=N_RR_FEATURES).eval()
        pre = {"fs": 360.0, "lead": "MLII", "window": {"before_s": 0.25, "after_s": 0.45}}
        m, whole = (score_database(model, pre, db, [r]) for r in ("m", "whole"))
        assert m.report()["n_beats"] == whole.report()["n_beats"] > 40
        np.testing.assert_array_equal(m.probs, whole.probs)
