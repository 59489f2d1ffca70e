"""Databases over a local mirror or a plain folder: listing, verification, reading,
patient ids and attrition. Download paths are in test_download.py."""

from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath

import numpy as np
import pytest

import vitalgru.io.checksums as checksums_mod
from vitalgru.config import PhysioNetConfig
from vitalgru.errors import ChecksumError, RecordError, UnknownDatabaseError, UnknownRecordError
from vitalgru.io import ingest_records, open_database, resolve_source
from vitalgru.io.ingest import no_record_error
from vitalgru.io.sources import ENV_MIRROR


def _corrupt_byte(path: Path, offset: int = 1000) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def mirror_cfg(physionet_mirror: Path, tmp_path: Path) -> PhysioNetConfig:
    return PhysioNetConfig(mirror=physionet_mirror, cache_dir=tmp_path / "cache")


@pytest.fixture
def hash_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every file the verification layer hashes."""
    calls: list[str] = []
    real = checksums_mod.sha256_file

    def counting(path: str | Path) -> str:
        calls.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(checksums_mod, "sha256_file", counting)
    return calls


class TestResolveSource:
    def test_config_mirror_wins(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv(ENV_MIRROR, str(tmp_path / "elsewhere"))
        src = resolve_source(PhysioNetConfig(mirror=tmp_path, cache_dir=tmp_path / "c"))
        assert src.kind == "mirror" and src.mirror == tmp_path.resolve()

    def test_env_mirror(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv(ENV_MIRROR, str(tmp_path))
        src = resolve_source(PhysioNetConfig())
        assert src.kind == "mirror" and src.mirror == tmp_path.resolve()

    def test_remote_default(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv(ENV_MIRROR, raising=False)
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
        src = resolve_source(PhysioNetConfig(base_url="https://example.org/files"))
        assert src.kind == "remote" and src.mirror is None
        assert src.base_url == "https://example.org/files/"
        assert src.cache_dir == tmp_path / "vitalgru" / "physionet"

    def test_missing_mirror_names_its_origin(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv(ENV_MIRROR, str(tmp_path / "absent"))
        with pytest.raises(FileNotFoundError, match=ENV_MIRROR):
            resolve_source(PhysioNetConfig())


class TestMirror:
    def test_open_and_list(self, mirror_cfg: PhysioNetConfig, mitdb_dir: Path) -> None:
        db = open_database("mitdb", mirror_cfg)
        assert db.root == mitdb_dir and not db.is_remote
        recs = db.list_records()
        assert len(recs) == 48 and recs[0] == "100" and recs[-1] == "234"
        assert open_database("mitdb/1.0.0", mirror_cfg).root == mitdb_dir

    def test_read_record_and_annotations(self, mirror_cfg: PhysioNetConfig) -> None:
        db = open_database("mitdb", mirror_cfg)
        rec = db.read_record("100")
        assert rec.signal.shape == (650000, 2) and rec.channels == ("MLII", "V5")
        assert rec.fs == 360.0 and rec.database == "mitdb"
        ann = db.read_annotations("100")
        assert len(ann) == 2274

    def test_patient_ids(self, mirror_cfg: PhysioNetConfig, mitdb_dir: Path) -> None:
        db = open_database("mitdb", mirror_cfg)
        assert db.read_record("202", channels=["MLII"]).patient_id == "201"
        assert db.patient_id("201") == "201" and db.patient_id("100") == "100"
        custom = open_database("mitdb", mirror_cfg, patient_ids=lambda r: f"p{r}")
        assert custom.patient_id("202") == "p202"
        folder = open_database(mitdb_dir, mirror_cfg, patient_ids={"101": "x"})
        assert folder.patient_id("101") == "x" and folder.patient_id("202") == "202"

    def test_unknown_record(self, mirror_cfg: PhysioNetConfig) -> None:
        db = open_database("mitdb", mirror_cfg)
        with pytest.raises(UnknownRecordError, match="'999'"):
            db.read_record("999")

    def test_database_not_in_mirror(self, mirror_cfg: PhysioNetConfig) -> None:
        with pytest.raises(FileNotFoundError, match="svdb"):
            open_database("svdb", mirror_cfg)

    def test_nstdb(self, mirror_cfg: PhysioNetConfig) -> None:
        db = open_database("nstdb", mirror_cfg)
        assert set(db.list_records()) == {"118e00", "118e12", "118e24", "bw", "ma"}
        rec = db.read_record("118e24")
        assert rec.channels == ("MLII", "V1") and rec.signal.shape == (650000, 2)
        noise = db.read_record("bw")
        assert noise.channels == ("noise1", "noise2") and not np.isnan(noise.signal).any()
        report = db.fetch()
        assert report.complete and sorted(report.skipped) == ["bw.atr", "ma.atr"]

    def test_whole_mitdb_verifies_and_xws_is_not_required(
        self, mirror_cfg: PhysioNetConfig
    ) -> None:
        db = open_database("mitdb", mirror_cfg)
        report = db.fetch()
        assert report.complete and report.downloaded == []
        assert len(report.ok) == 48 * 3
        assert not any(f.endswith(".xws") for f in report.ok + report.skipped)


class TestVerification:
    def test_checksum_mismatch(self, small_mirror: Path, tmp_path: Path) -> None:
        _corrupt_byte(small_mirror / "mitdb" / "101.dat")
        cfg = PhysioNetConfig(mirror=small_mirror, cache_dir=tmp_path / "cache")
        db = open_database("mitdb", cfg)
        with pytest.raises(ChecksumError) as e:
            db.verify("101")
        assert e.value.path.endswith("101.dat")
        with pytest.raises(ChecksumError):
            db.read_record("101")
        db.verify("100")  # the other record is fine
        report = db.fetch()
        assert [(f.file, f.reason) for f in report.failures] == [("101.dat", "checksum_mismatch")]
        assert "100.dat" in report.ok and "101.hea" in report.ok and "101.atr" in report.ok

    def test_a_record_is_one_attrition_entry_however_often_listed_or_bad(
        self, small_mirror: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        # two bad files of a record listed twice were four entries: "attrition = 4" for
        # one record refused
        db_dir = small_mirror / "mitdb"
        _corrupt_byte(db_dir / "101.dat")
        _corrupt_byte(db_dir / "101.atr", 100)
        (db_dir / "RECORDS").write_text("100\n101\n 101 \n")
        db = open_database("mitdb", PhysioNetConfig(mirror=small_mirror, cache_dir=tmp_path))
        with caplog.at_level("WARNING", logger="vitalgru.io.listing"):
            assert db.list_records() == ["100", "101"]
        assert "RECORDS line 3 lists record '101' again (first on line 2)" in caplog.text
        report = db.fetch(["100", "101", "101"])
        assert [f.file for f in report.failures] == ["101.dat", "101.atr"]
        (entry,) = report.attrition()
        assert (entry.item, entry.stage, entry.reason) == ("101", "verify", "checksum_mismatch")
        assert "101.dat" in entry.detail and "101.atr" in entry.detail

    def test_second_ingest_hashes_nothing(
        self, small_mirror: Path, tmp_path: Path, hash_calls: list[str]
    ) -> None:
        cfg = PhysioNetConfig(mirror=small_mirror, cache_dir=tmp_path / "cache")
        ingest_records(open_database("mitdb", cfg))
        assert sorted(hash_calls) == sorted(
            f"{r}.{e}" for r in ("100", "101") for e in ("hea", "dat", "atr")
        )
        hash_calls.clear()
        res = ingest_records(open_database("mitdb", cfg))  # new object: state from disk
        assert len(res.records) == 2 and hash_calls == []

    def test_changed_file_is_hashed_again(
        self, small_mirror: Path, tmp_path: Path, hash_calls: list[str]
    ) -> None:
        cfg = PhysioNetConfig(mirror=small_mirror, cache_dir=tmp_path / "cache")
        open_database("mitdb", cfg).verify("100")
        dat = small_mirror / "mitdb" / "100.dat"
        _corrupt_byte(dat)
        st = dat.stat()
        os.utime(dat, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        hash_calls.clear()
        with pytest.raises(ChecksumError):
            open_database("mitdb", cfg).verify("100")
        assert "100.dat" in hash_calls

    def test_verification_off_reads_corrupt_data(
        self, small_mirror: Path, tmp_path: Path, hash_calls: list[str]
    ) -> None:
        _corrupt_byte(small_mirror / "mitdb" / "101.dat")
        cfg = PhysioNetConfig(
            mirror=small_mirror, cache_dir=tmp_path / "cache", verify_checksums=False
        )
        assert open_database("mitdb", cfg).read_record("101").n_samples == 650000
        assert hash_calls == []

    def test_listed_annotation_missing_from_mirror(
        self, small_mirror: Path, tmp_path: Path
    ) -> None:
        (small_mirror / "mitdb" / "100.atr").unlink()
        db = open_database("mitdb", PhysioNetConfig(mirror=small_mirror, cache_dir=tmp_path))
        with pytest.raises(RecordError) as e:
            db.read_annotations("100")
        assert e.value.reason == "missing_annotations"
        report = db.fetch()
        assert [(f.file, f.reason) for f in report.failures] == [("100.atr", "missing_annotations")]


class TestFolderDatabase:
    def test_folder_without_records_file(self, tmp_path: Path, mitdb_dir: Path) -> None:
        folder = tmp_path / "my_ecgs"
        folder.mkdir()
        for rec in ("105", "100"):
            for ext in ("hea", "dat"):
                shutil.copyfile(mitdb_dir / f"{rec}.{ext}", folder / f"{rec}.{ext}")
        db = open_database(str(folder), PhysioNetConfig(cache_dir=tmp_path / "cache"))
        assert db.name == "my_ecgs" and db.list_records() == ["100", "105"]
        assert db.read_record("105").n_samples == 650000
        res = ingest_records(db, annotation_extension=None)
        assert len(res.records) == 2 and res.annotations == {} and res.attrition == []
        res = ingest_records(db)  # annotations requested: records without them are dropped
        assert res.records == []
        assert {(a.item, a.reason) for a in res.attrition} == {
            ("100", "missing_annotations"),
            ("105", "missing_annotations"),
        }

    def test_listings_saved_with_a_byte_order_mark_or_not_in_utf8(
        self, small_mirror: Path, tmp_path: Path
    ) -> None:
        # a mark an editor put first made the first record '\ufeff100' (refused as
        # missing); a byte that is not UTF-8 was a bare UnicodeDecodeError
        db_dir = small_mirror / "mitdb"
        cfg = PhysioNetConfig(mirror=small_mirror, cache_dir=tmp_path / "cache")
        for name in ("RECORDS", "SHA256SUMS.txt"):
            (db_dir / name).write_bytes(b"\xef\xbb\xbf" + (db_dir / name).read_bytes())
        db = open_database("mitdb", cfg)
        assert db.list_records() == ["100", "101"]
        assert "100.dat" in db.checksums()
        assert db.fetch().complete
        good = (db_dir / "RECORDS").read_bytes()
        (db_dir / "RECORDS").write_bytes(good + b"# r\xe9sum\xe9 of the records\n")
        with pytest.raises(ValueError, match=r"RECORDS line 3: bytes that are not UTF-8"):
            open_database("mitdb", cfg).list_records()
        (db_dir / "RECORDS").write_bytes(good)
        sums = db_dir / "SHA256SUMS.txt"
        sums.write_bytes(sums.read_bytes().replace(b"100.hea", b"100\xff.hea"))
        with pytest.raises(ValueError, match=r"SHA256SUMS.txt line \d+: bytes that are not UTF-8"):
            open_database("mitdb", cfg).fetch()

    def test_missing_folder(self, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError, match="does not exist"):
            open_database(tmp_path / "nowhere", PhysioNetConfig(cache_dir=tmp_path))

    def test_a_bare_name_is_a_folder_when_no_source_knows_it(
        self, tmp_path: Path, mitdb_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv(ENV_MIRROR, raising=False)
        monkeypatch.chdir(tmp_path)
        cfg = PhysioNetConfig(cache_dir=tmp_path / "cache")
        # neither a PhysioNet name this version knows nor a folder: one clear error
        with pytest.raises(UnknownDatabaseError, match="no known version for database 'mydb'"):
            open_database("mydb", cfg)
        (tmp_path / "mydb").mkdir()
        for ext in ("hea", "dat"):
            shutil.copyfile(mitdb_dir / f"100.{ext}", tmp_path / "mydb" / f"100.{ext}")
        db = open_database("mydb", cfg)  # the folder in the working directory
        assert db.root == tmp_path / "mydb" and db.list_records() == ["100"]
        # a relative folder of two parts reads like <db>/<version>, but is there
        (tmp_path / "ward4" / "2024").mkdir(parents=True)
        shutil.copytree(tmp_path / "mydb", tmp_path / "ward4" / "2024", dirs_exist_ok=True)
        db = open_database("ward4/2024", cfg)
        assert db.root == tmp_path / "ward4" / "2024" and db.list_records() == ["100"]
        # a known name stays a PhysioNet name, folder or not
        (tmp_path / "mitdb" / "1.0.0").mkdir(parents=True)
        assert open_database("mitdb", cfg).url is not None
        assert open_database("mitdb/1.0.0", cfg).url is not None

    def test_records_in_subfolders_are_read_without_a_records_file(
        self, tmp_path: Path, mitdb_dir: Path
    ) -> None:
        # only the top-level .hea files were listed: ward2's records were left out without
        # a word (not scored, not in the attrition)
        folder = tmp_path / "ecgs"
        for sub, rec in (("", "100"), ("ward2", "101"), ("ward2/bed4", "105"), (".old", "103")):
            (folder / sub).mkdir(parents=True, exist_ok=True)
            for ext in ("hea", "dat", "atr"):
                shutil.copyfile(mitdb_dir / f"{rec}.{ext}", folder / sub / f"{rec}.{ext}")
        db = open_database(folder, PhysioNetConfig(cache_dir=tmp_path / "cache"))
        assert db.list_records() == ["100", "ward2/101", "ward2/bed4/105"]  # hidden: not
        res = ingest_records(db, ["100", "ward2/101"])
        assert [r.record_id for r in res.records] == ["100", "ward2/101"]
        assert res.records[1].channels == ("MLII", "V1") and res.attrition == []
        assert len(res.annotations["ward2/101"]) == len(db.read_annotations("ward2/101"))

    def test_a_records_line_ending_in_slash_is_a_folder_with_its_own_records(
        self, tmp_path: Path, mitdb_dir: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        # PhysioNet's nested layout (mimic3wdb-matched: p00/, p00/RECORDS, ...): 'ward2/'
        # was read as a record called 'ward2', and ward2's records never read
        folder = tmp_path / "ecgs"
        for sub, rec in (("", "100"), ("ward2/bed4", "101"), ("ward3", "105")):
            (folder / sub).mkdir(parents=True, exist_ok=True)
            for ext in ("hea", "dat", "atr"):
                shutil.copyfile(mitdb_dir / f"{rec}.{ext}", folder / sub / f"{rec}.{ext}")
        (folder / "RECORDS").write_text("100\nward2/\nward3/\nempty/\n")
        (folder / "empty").mkdir()
        (folder / "ward2" / "RECORDS").write_text("bed4/\n./\n../\n")  # a loop, a way out
        (folder / "ward2" / "bed4" / "RECORDS").write_text("101\n")
        # ward3 has no RECORDS of its own: its .hea files are its records
        db = open_database(folder, PhysioNetConfig(cache_dir=tmp_path / "cache"))
        with caplog.at_level("WARNING", logger="vitalgru.io.listing"):
            assert db.list_records() == ["100", "ward2/bed4/101", "ward3/105"]
        assert "'ward2/./'" in caplog.text and "walked already" in caplog.text
        assert "folder '../' is outside the database's folder" in caplog.text
        assert "folder 'empty/'" in caplog.text and "no RECORDS and no .hea" in caplog.text
        rec = db.read_record("ward2/bed4/101")
        assert rec.record_id == "ward2/bed4/101" and rec.channels == ("MLII", "V1")

    def test_the_folder_above_the_databases_names_them(self, tmp_path: Path) -> None:
        for name in ("mitdb", "nstdb"):
            (tmp_path / name).mkdir()
            (tmp_path / name / "100.hea").write_text("100 1 360 10\n")
        db = open_database(tmp_path, PhysioNetConfig(cache_dir=tmp_path / "cache"))
        with pytest.raises(FileNotFoundError, match="these subfolders hold records: mitdb, nstdb"):
            db.list_records()

    def test_a_folder_holding_the_zipped_database_says_to_unpack_it(self, tmp_path: Path) -> None:
        # PhysioNet offers each database as one zip file
        (tmp_path / "mit-bih-arrhythmia-database-1.0.0.zip").write_bytes(b"PK")
        db = open_database(tmp_path, PhysioNetConfig(cache_dir=tmp_path / "cache"))
        with pytest.raises(FileNotFoundError) as e:
            db.list_records()
        assert str(e.value) == (
            f"{tmp_path}: no RECORDS file and no .hea files; it holds "
            "mit-bih-arrhythmia-database-1.0.0.zip: unpack the records first"
        )


class TestIngest:
    def test_records_annotated_under_another_extension_are_named_in_the_error(
        self, tmp_path: Path, mitdb_dir: Path
    ) -> None:
        # every record annotated in .ann: the error advised --annotations none (no
        # scores) and never named the .ann files; with one stale RECORDS line it gave no
        # hint at all
        folder = tmp_path / "ecgs"
        (folder / "sub").mkdir(parents=True)
        for rec, ext in (("100", "ann"), ("sub/101", "ann"), ("sub/101", "qrs")):
            src = mitdb_dir / PurePosixPath(rec).name
            for suffix in ("hea", "dat"):
                shutil.copyfile(src.with_suffix(f".{suffix}"), folder / f"{rec}.{suffix}")
            shutil.copyfile(src.with_suffix(".atr"), folder / f"{rec}.{ext}")
        (folder / "100.txt").write_text("notes\n")  # not annotations
        (folder / "100.ann.part").write_bytes(b"x")
        (folder / "RECORDS").write_text("100\nsub/101\n999\n")
        db = open_database(folder, PhysioNetConfig(cache_dir=tmp_path / "cache"))
        res = ingest_records(db)
        assert res.records == [] and {a.reason for a in res.attrition} == {
            "missing_annotations",
            "missing_file",
        }
        msg = str(no_record_error(db.name, res.attrition, "scored", db=db, extension="atr"))
        assert "annotation files of another extension: .ann (2 of 2), .qrs (1 of 2)" in msg
        assert "--annotations ann" in msg and "--annotations none" not in msg
        for rec in ("100", "sub/101"):
            for ext in ("ann", "qrs"):
                (folder / f"{rec}.{ext}").unlink(missing_ok=True)
        res = ingest_records(db)
        msg = str(no_record_error(db.name, res.attrition, "scored", db=db, extension="atr"))
        assert "--annotations none" in msg and "another extension" not in msg

    def test_bad_records_become_attrition(self, small_mirror: Path, tmp_path: Path) -> None:
        db_dir = small_mirror / "mitdb"
        for ext in ("hea", "dat", "atr"):  # a third record, truncated, with no published sums
            shutil.copyfile(db_dir / f"100.{ext}", db_dir / f"900.{ext}")
        (db_dir / "900.hea").write_text((db_dir / "100.hea").read_text().replace("100", "900"))
        with open(db_dir / "900.dat", "r+b") as f:
            f.truncate(123_456)
        _corrupt_byte(db_dir / "101.dat")
        (db_dir / "RECORDS").write_text("100\n101\n900\n")
        db = open_database("mitdb", PhysioNetConfig(mirror=small_mirror, cache_dir=tmp_path))
        res = ingest_records(db, [*db.list_records(), "777"])
        assert [r.record_id for r in res.records] == ["100"]
        assert set(res.annotations) == {"100"}
        got = {(a.item, a.stage, a.reason) for a in res.attrition}
        assert got == {
            ("101", "verify", "checksum_mismatch"),
            ("900", "read", "truncated_dat"),
            ("777", "read", "unknown_record"),
        }
        assert all(a.database == "mitdb" and a.detail for a in res.attrition)

    def test_missing_lead_is_attrition(self, mirror_cfg: PhysioNetConfig) -> None:
        db = open_database("mitdb", mirror_cfg)
        res = ingest_records(db, ["100", "102"], channels=["MLII"], annotation_extension=None)
        assert [r.record_id for r in res.records] == ["100"]  # 102 has no MLII lead
        assert [(a.item, a.reason) for a in res.attrition] == [("102", "missing_channel")]
