"""Which lead of a record the arrhythmia pipeline reads, and what a cached record's key
holds of the code that processed it."""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import vitalgru
from vitalgru.data.dataset_files import (
    _PROCESSING_CODE,
    code_digest,
    load_part,
    processing_digest,
    prune_parts,
    save_part,
    write_dataset,
)
from vitalgru.data.ingest import RecordBeats, select_lead
from vitalgru.dsp.beats import RR_FEATURES
from vitalgru.types import AttritionEntry, Record


def _record(*leads: str) -> Record:
    return Record(
        "r1", "r1", np.zeros((10, len(leads)), np.float32), 360.0, leads, ("mV",) * len(leads)
    )


class TestSelectLead:
    def test_by_name_in_any_case(self) -> None:
        assert select_lead(_record("V1", "MLII"), "mlii", 0) == 1

    def test_a_standard_limb_lead_stands_for_its_modified_counterpart(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        twelve = _record("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2")
        with caplog.at_level(logging.WARNING):
            assert select_lead(twelve, "MLII", 0) == 1  # lead II, not the fallback lead I
        assert not caplog.records  # an expected substitution, not a warning
        assert select_lead(_record("V1", "MLIII"), "III", 0) == 1

    def test_a_lead_named_with_a_prefix_is_that_lead(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        # "ECG II" fell back to column 0 with a warning: the model read lead I
        with caplog.at_level(logging.WARNING):
            assert select_lead(_record("ECG I", "ECG II"), "MLII", 0) == 1
            assert select_lead(_record("Lead I", "Lead V1"), "V1", 0) == 1
            assert select_lead(_record("ECG-I", "ecg ii"), "II", 0) == 1
        assert not caplog.records
        with caplog.at_level(logging.WARNING):  # a channel number is not a lead's name
            assert select_lead(_record("ECG1", "ECG2"), "MLII", 0) == 0
        assert "no lead 'MLII'" in caplog.records[-1].getMessage()

    def test_no_counterpart_falls_back_and_warns(self, caplog: pytest.LogCaptureFixture) -> None:
        with caplog.at_level(logging.WARNING):
            assert select_lead(_record("V1", "V5"), "MLII", 1) == 1
        (rec,) = caplog.records
        assert "no lead 'MLII' nor 'II'" in rec.getMessage() and "(V5)" in rec.getMessage()

    def test_an_index_is_taken_as_given(self) -> None:
        assert select_lead(_record("V1", "MLII"), 0, 1) == 0
        with pytest.raises(ValueError, match="lead index 5 out of range"):
            select_lead(_record("V1", "MLII"), 5, 0)


class TestProcessingDigest:
    """A cached part is keyed by the code that made it, not only the package version."""

    def test_it_follows_the_processing_code_and_nothing_else(self, tmp_path: Path) -> None:
        pkg = Path(vitalgru.__file__).resolve().parent
        copy = tmp_path / "vitalgru"
        for name in ("io", "dsp", "data", "metrics"):
            shutil.copytree(pkg / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
        for name in ("config.py", "config_checks.py", "config_ingest.py", "config_files.py",
                     "claims.py", "types.py", "errors.py"):  # fmt: skip
            shutil.copy(pkg / name, copy / name)
        assert code_digest(copy) == processing_digest()
        assert re.fullmatch(r"[0-9a-f]{16}", processing_digest())
        (copy / "scoring").mkdir()  # code that does not make parts does not count
        (copy / "scoring" / "x.py").write_text("x = 1\n")
        assert code_digest(copy) == processing_digest()
        quality = copy / "dsp" / "quality.py"
        quality.write_text(
            quality.read_text().replace("max_gap_s: float = 0.1", "max_gap_s: float = 0.05")
        )
        assert code_digest(copy) != processing_digest()

    def test_it_covers_every_module_the_ingest_imports(self) -> None:
        # metrics.detection (the beat match that flags each beat detected, and rejects a
        # record) was left out: a change to it kept every cached part
        code = ("import sys, vitalgru.data.ingest, vitalgru.data.dataset_files, vitalgru.io; "
                "print('\\n'.join(m.__file__ for n, m in sys.modules.items() "
                "if n.startswith('vitalgru.') and getattr(m, '__file__', None)))")  # fmt: skip
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True).stdout.split()  # fmt: skip
        pkg = Path(vitalgru.__file__).resolve().parent
        outside = [
            rel for f in out
            if (rel := Path(f).resolve().relative_to(pkg).as_posix()).split("/")[0]
            not in _PROCESSING_CODE
        ]  # fmt: skip
        assert len(out) > 20 and outside == []


class TestWriteDataset:
    @staticmethod
    def _item(record: str, split: str) -> RecordBeats:
        n = 4
        beats = pd.DataFrame({"record_id": record, "patient_id": record, "split": split,
                              "sample_idx": np.arange(n) * 300, "aami": "N", "label": 0,
                              **{f: np.full(n, 0.8) for f in RR_FEATURES}})  # fmt: skip
        return RecordBeats(record, record, split, beats, np.ones((n, 8), np.float32),
                           np.arange(64, dtype=np.float32), {})  # fmt: skip

    def test_records_in_sub_folders_and_no_training_split(self, tmp_path: Path) -> None:
        # a record named with its folder (p00/100) was written to a folder never made: the
        # write failed after the manifest was taken away
        items = [self._item("p00/100", "DS2"), self._item("p01/101", "DS2")]
        man = json.loads(write_dataset(tmp_path, items, [], {}).read_text())
        assert np.array_equal(np.load(tmp_path / "signals" / "p00" / "100.npy"), items[0].signal)
        assert man["splits"] == {"DS2": ["p00/100", "p01/101"]}
        assert man["normalisation"] is None  # was fitted on DS2, the test records
        man = json.loads(write_dataset(tmp_path, [self._item("102", "DS1")], [], {}).read_text())
        assert man["normalisation"] is not None
        with pytest.raises(ValueError, match="outside the dataset folder"):
            write_dataset(tmp_path / "x", [self._item("../../escape", "DS1")], [], {})

    def test_when_every_record_is_refused_attrition_says_why(self, tmp_path: Path) -> None:
        # the error said "see attrition.csv", which was never written (or was an earlier
        # run's, beside that run's manifest)
        write_dataset(tmp_path, [self._item("100", "DS1")], [], {})
        refused = [AttritionEntry("mitdb", "100", "verify", "checksum_mismatch", "100.dat")]
        with pytest.raises(ValueError, match=r"no record survived .*attrition\.csv"):
            write_dataset(tmp_path, [], refused, {})
        att = pd.read_csv(tmp_path / "attrition.csv", dtype=str)
        assert att[["item", "reason"]].values.tolist() == [["100", "checksum_mismatch"]]
        assert not (tmp_path / "manifest.json").exists()
        assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []

    def test_a_full_disk_is_named_and_leaves_the_dataset_whole(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # numpy says a full disk as "525168 requested and 321504 written", without an errno:
        # the ingest ended in that traceback, status 1, naming no file, and the part it was
        # writing held half a windows.npy
        import errno
        import os

        import vitalgru.claims
        import vitalgru.data.dataset_files as dataset_files

        write_dataset(tmp_path, [self._item("100", "DS1")], [], {})
        before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
        real_save = np.save

        def short_write(f: object, array: np.ndarray) -> None:
            real_save(f, array[:1])  # part of it, as a disk filling up takes
            raise OSError("525168 requested and 321504 written")

        class NoSpace:
            f_bavail = 0

        monkeypatch.setattr(dataset_files.np, "save", short_write)
        monkeypatch.setattr(vitalgru.claims.os, "statvfs", lambda p: NoSpace())
        with pytest.raises(OSError) as e:
            write_dataset(tmp_path, [self._item("100", "DS1"), self._item("101", "DS1")], [], {})
        assert (e.value.errno, e.value.filename) == (
            errno.ENOSPC, str(tmp_path / "signals" / "100.npy"))  # fmt: skip
        # the earlier dataset's files are whole (its manifest is taken away first: read as
        # no dataset, ingested again), and nothing half-written lies beside them
        after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
        assert after == {k: v for k, v in before.items() if k != "manifest.json"}
        assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
        # a part: each file whole or not there, the error naming it
        with pytest.raises(OSError) as e:
            save_part(self._item("102", "DS1"), tmp_path / ".parts" / "102-a")
        assert (e.value.errno, e.value.filename) == (
            errno.ENOSPC, str(tmp_path / ".parts" / "102-a" / "windows.npy"))  # fmt: skip
        assert sorted(os.listdir(tmp_path / ".parts" / "102-a")) == ["beats.parquet"]
        # space left on the disk: an I/O error, still naming the file
        NoSpace.f_bavail = 10
        with pytest.raises(OSError) as e:
            save_part(self._item("102", "DS1"), tmp_path / ".parts" / "102-a")
        assert (e.value.errno, e.value.filename) == (
            errno.EIO, str(tmp_path / ".parts" / "102-a" / "windows.npy"))  # fmt: skip


class TestPruneParts:
    """Parts made by other processing code are removed; nothing else is."""

    @staticmethod
    def _part(root: Path, name: str, digest: str | None) -> Path:
        item = RecordBeats(
            "100", "100", "DS2", pd.DataFrame({"sample_idx": [5, 9]}),
            np.zeros((2, 4), np.float32), np.zeros(16, np.float32), {"beats": 2},
        )  # fmt: skip
        return save_part(item, root / name, digest)

    def test_only_complete_parts_of_other_code_go(self, tmp_path: Path) -> None:
        root = tmp_path / ".parts"
        mine = self._part(root, "101-a", None)  # default: this code's digest
        other = self._part(root, "100-b", "b" * 16)
        unmarked = self._part(root, "100-c", "c" * 16)  # made before parts said their code
        facts = unmarked / "facts.json"
        facts.write_text(facts.read_text().replace('"processing_digest"', '"other"'))
        writing = root / "102-b"  # still being written: no facts.json yet
        writing.mkdir()
        (writing / "windows.npy").write_bytes(b"x" * 10)
        broken = root / "103-b"
        broken.mkdir()
        (broken / "facts.json").write_text("{not json")
        (root / "stray.txt").write_text("not a part")
        size = sum(f.stat().st_size for p in (other, unmarked) for f in p.rglob("*"))
        assert prune_parts(root, processing_digest()) == (2, size)
        names = sorted(p.name for p in root.iterdir())
        assert names == ["101-a", "102-b", "103-b", "stray.txt"]
        assert load_part(mine).facts == {"beats": 2}
        # Under another digest, this code's part is the stale one.
        assert prune_parts(root, "b" * 16)[0] == 1 and not mine.exists()
        assert prune_parts(tmp_path / "none", "b" * 16) == (0, 0)


class TestAnotherRate:
    def test_a_record_at_another_rate_gives_the_same_beats_as_at_the_datasets(
        self, mitdb_dir: Path
    ) -> None:
        # nothing ran the ingest on a record whose rate is not the dataset's: even
        # resample(x, 360, 500) for resample(x, 500, 360) passed every test
        from scipy.signal import resample_poly

        from vitalgru.config import ArrhythmiaDataConfig
        from vitalgru.data.ingest import process_record
        from vitalgru.io import open_database
        from vitalgru.types import Annotations

        db = open_database(mitdb_dir)
        rec, ann = db.read_record("119"), db.read_annotations("119")  # N and V beats
        n = 150 * 360
        rec = Record(rec.record_id, rec.patient_id, rec.signal[:n], rec.fs, rec.channels, rec.units)
        keep = ann.sample_idx < n
        ann = Annotations(ann.sample_idx[keep], ann.symbol[keep], ann.fs)
        up = resample_poly(rec.signal.astype(np.float64), 25, 18, axis=0)  # 360 -> 500 Hz
        rec500 = Record(rec.record_id, rec.patient_id, up.astype(np.float32), 500.0,
                        rec.channels, rec.units)  # fmt: skip
        ann500 = Annotations(
            np.round(ann.sample_idx * 500 / 360).astype(np.int64), ann.symbol, 500.0
        )
        cfg = ArrhythmiaDataConfig()
        a = process_record(rec, ann, cfg, "x")
        b = process_record(rec500, ann500, cfg, "x")
        assert b.facts["fs_source"] == 500.0 and a.facts["n_samples"] == b.facts["n_samples"]
        assert len(a.beats) == len(b.beats) > 150
        assert (a.beats["label"].to_numpy() == b.beats["label"].to_numpy()).all()
        assert set(a.beats["aami"]) >= {"N", "V"}
        # the beats at the dataset's rate where they were, their source samples at 500 Hz
        assert (
            np.abs(a.beats["sample_idx"].to_numpy() - b.beats["sample_idx"].to_numpy()).max() <= 1
        )
        src = np.round(a.beats["source_idx"].to_numpy() * 500 / 360)
        assert np.array_equal(b.beats["source_idx"].to_numpy(), src)
        for col in RR_FEATURES:
            np.testing.assert_allclose(b.beats[col], a.beats[col], rtol=0.02, atol=0.01)
        # the windows: the same waveform, resampled
        corr = [np.corrcoef(u, v)[0, 1] for u, v in zip(a.windows, b.windows, strict=True)]
        assert np.median(corr) > 0.99 and min(corr) > 0.9
        assert np.abs(a.signal - b.signal).max() < 0.1 * np.abs(a.signal).max()


class TestQualityChecksShareTheLead:
    def test_the_lead_is_bridged_once_for_detection_and_both_quality_checks(
        self, mitdb_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # each quality check bridged the whole lead again (and the trailing one threw its
        # copy away): on a day at 1000 Hz every copy is 0.7 GB of the peak
        import vitalgru.data.ingest as ingest
        import vitalgru.dsp.quality as quality
        from vitalgru.config import ArrhythmiaDataConfig
        from vitalgru.io import open_database
        from vitalgru.types import Annotations

        db = open_database(mitdb_dir)
        rec, ann = db.read_record("119"), db.read_annotations("119")
        n = 60 * 360
        rec = Record(rec.record_id, rec.patient_id, rec.signal[:n], rec.fs, rec.channels, rec.units)
        keep = ann.sample_idx < n
        ann = Annotations(ann.sample_idx[keep], ann.symbol[keep], ann.fs)
        cfg = ArrhythmiaDataConfig()
        calls: list[int] = []

        def counted(f):
            def g(x):
                calls.append(len(x))
                return f(x)

            return g

        monkeypatch.setattr(ingest, "interpolate_nonfinite", counted(ingest.interpolate_nonfinite))
        monkeypatch.setattr(
            quality, "interpolate_nonfinite", counted(quality.interpolate_nonfinite)
        )
        out = ingest.process_record(rec, ann, cfg, "x")
        assert calls == [n] and len(out.beats) > 50
