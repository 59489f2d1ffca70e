"""Beat labels written as WFDB annotation files read back with wfdb-python as they were
written, in the MIT-BIH codes EC57 maps back to each class; what cannot be written is
refused before anything is."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import wfdb

from vitalgru.io.wfdb_writer import check_annotation_extension, write_beat_labels


def test_labels_read_back_as_written(tmp_path: Path) -> None:
    samples = [12, 400, 401, 9000, 2_000_000]  # adjacent beats and a far one
    path = write_beat_labels(tmp_path, "rec", "vgru", samples, list("NSVFQ"), 257.0)
    assert path == tmp_path / "rec.vgru"
    got = wfdb.rdann(str(tmp_path / "rec"), "vgru")
    np.testing.assert_array_equal(got.sample, samples)
    assert got.symbol == ["N", "A", "V", "F", "Q"] and got.fs == 257.0
    # a record in a subfolder of its database keeps its path; a record without beats
    # gets a file that reads as empty
    write_beat_labels(tmp_path, "p01/s1", "vgru", [5], ["S"], 360.0)
    assert wfdb.rdann(str(tmp_path / "p01" / "s1"), "vgru").symbol == ["A"]
    write_beat_labels(tmp_path, "none", "vgru", [], [], 360.0)
    assert wfdb.rdann(str(tmp_path / "none"), "vgru").sample.size == 0


@pytest.mark.parametrize(
    ("samples", "labels", "match"),
    [
        ([1, 2], ["N"], "2 beat samples but 1 labels"),
        ([5, 3], ["N", "N"], "ascending"),
        ([-1], ["N"], "ascending"),
        ([1], ["X"], "not AAMI classes"),
    ],
)
def test_what_cannot_be_written_is_refused(
    tmp_path: Path, samples: list[int], labels: list[str], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        write_beat_labels(tmp_path, "rec", "vgru", samples, labels, 360.0)
    assert not (tmp_path / "rec.vgru").exists()


def test_extensions() -> None:
    assert check_annotation_extension("vgru1") == "vgru1"
    for bad in ("", "a.b", "x" * 17, "ä"):
        with pytest.raises(ValueError, match="not an annotation file extension"):
            check_annotation_extension(bad)
    with pytest.raises(ValueError, match="reference annotations' extension"):
        check_annotation_extension("ATR", "atr")


def test_a_write_cut_short_leaves_the_last_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A disk that fills while wrann writes: the file of the last evaluation stays whole
    # (a bxb run reading the folder meanwhile reads it), and nothing is left beside it.
    write_beat_labels(tmp_path, "rec", "vgru", [10, 20], ["N", "V"], 360.0)
    real = wfdb.wrann

    def cut_short(record_name: str, extension: str, *args: object, **kw: object) -> None:
        real(record_name, extension, *args, **kw)
        target = Path(str(kw["write_dir"])) / f"{record_name}.{extension}"
        target.write_bytes(target.read_bytes()[:3])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(wfdb, "wrann", cut_short)
    with pytest.raises(OSError, match="No space"):
        write_beat_labels(tmp_path, "rec", "vgru", [10, 20, 30], ["N", "N", "S"], 360.0)
    assert wfdb.rdann(str(tmp_path / "rec"), "vgru").symbol == ["N", "V"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.vgru"]
