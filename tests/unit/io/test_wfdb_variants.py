"""Valid WFDB records written as other PhysioNet databases write them (other signal formats,
units, gains, byte offsets, skew), built in a temporary folder from the first seconds of
MIT-BIH record 100, each read as wfdb-python reads it in physical units."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import wfdb

from vitalgru.io.wfdb_reader import read_record_files

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
