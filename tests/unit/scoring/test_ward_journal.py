"""The ward's state file: what it keeps, what it refuses, and a ward that keeps working
when the file cannot be written."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from monitor_kit import untrained_monitor

from vitalgru.scoring.ward import Ward
from vitalgru.scoring.ward_journal import WardJournal, WardState


def test_what_is_written_reads_back(tmp_path: Path) -> None:
    j = WardJournal(tmp_path / "w.sqlite")
    assert j.load().empty
    j.admit_ecg("bed-1", 360.0, "2026-12-05T08:00:00+00:00")
    j.ecg_progress({"bed-1": (12.5, {"N": 10, "V": 2})})
    j.admit_sepsis("icu-1", "2026-12-05T08:00:00+00:00")
    j.add_hour("icu-1", 2, {"ICULOS": 2, "HR": None})
    j.add_hour("icu-1", 1, {"ICULOS": 1, "HR": 88.0})  # read back in hour order
    j.admit_sepsis("icu-2", "2026-12-05T09:00:00+00:00", {"age_years": 64.0})
    j.add_hour("icu-2", 1, {"ICULOS": 1})
    j.discharge_sepsis("icu-2")  # and nothing of it kept
    j.add_event({"seq": 1, "kind": "pause", "onset_s": np.float32(3.5), "n_beats": np.int64(0)})
    j.set_models({"arrhythmia": "models:/a@champion (version 2)"})
    j.close()
    got = WardJournal(tmp_path / "w.sqlite").load()
    assert [(a.patient_id, a.fs, a.received_s, a.counts) for a in got.ecg] == [
        ("bed-1", 360.0, 12.5, {"N": 10, "V": 2})
    ]
    assert [(a.patient_id, a.hours, a.static) for a in got.sepsis] == [
        ("icu-1", [{"ICULOS": 1, "HR": 88.0}, {"ICULOS": 2}], {})  # a null is a value not sent
    ]
    assert got.events == [{"seq": 1, "kind": "pause", "onset_s": 3.5, "n_beats": 0}]
    assert got.last_seq == 1
    assert got.models == {"arrhythmia": "models:/a@champion (version 2)"}


def test_a_file_written_before_admission_demographics_opens_as_it_is(tmp_path: Path) -> None:
    j = WardJournal(tmp_path / "w.sqlite")
    j.admit_sepsis("icu-1", "2026-12-05T08:00:00+00:00", {"age_years": 64.0, "gender_male": 1.0})
    j.admit_sepsis("icu-2", "2026-12-05T08:00:00+00:00")
    assert [a.static for a in j.load().sepsis] == [{"age_years": 64.0, "gender_male": 1.0}, {}]
    j.close()
    with sqlite3.connect(tmp_path / "w.sqlite") as db:  # as the first schema-1 files were
        db.execute("DROP TABLE sepsis_static")
    got = WardJournal(tmp_path / "w.sqlite").load()
    assert [(a.patient_id, a.static) for a in got.sepsis] == [("icu-1", {}), ("icu-2", {})]


def test_the_log_is_trimmed_to_its_newest_events(tmp_path: Path) -> None:
    j = WardJournal(tmp_path / "w.sqlite", keep_events=1000)
    for seq in range(1, 2501):
        j.add_event({"seq": seq})
    got = j.load()
    assert got.last_seq == 2500 and [e["seq"] for e in got.events] == list(range(1501, 2501))
    n = j._db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    assert n < 2500  # rows deleted, not just hidden


def test_a_file_that_is_not_a_ward_state_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "notes.sqlite"
    bad.write_bytes(b"these are not the droids" * 100)
    with pytest.raises(ValueError, match="not a vitalgru ward state file"):
        WardJournal(bad)
    other = tmp_path / "other.sqlite"
    WardJournal(other).close()
    with sqlite3.connect(other) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    with pytest.raises(ValueError, match="schema version 99"):
        WardJournal(other)


def test_a_damaged_file_is_refused_naming_it_and_left_as_it_is(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # a row that cannot be read (the disk, or an edit by hand) raised sqlite's or json's
    # own error from load(), a traceback at the gateway's start
    path = tmp_path / "w.sqlite"
    j = WardJournal(path)
    for seq in range(1, 51):
        j.add_event({"seq": seq, "message": "x" * 100})
    j.set_value("ecg_trends", {"p": []})
    j.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE events SET event = CAST(x'7b22ff' AS TEXT) WHERE seq = 7")
        db.execute("UPDATE meta SET value = '{oops' WHERE key = 'value:ecg_trends'")
    before = path.read_bytes()
    j = WardJournal(path)
    with pytest.raises(ValueError, match="w.sqlite: the ward state cannot be read .*damaged"):
        j.load()
    # a kept value that cannot be read is left out, with a warning, as one of the wrong kind
    with caplog.at_level(logging.WARNING, logger="vitalgru.scoring.ward"):
        assert j.value("ecg_trends", {}) == {}
    assert "ecg_trends cannot be read" in caplog.text
    j.close()
    assert path.read_bytes() == before


def test_a_ward_goes_on_when_its_file_cannot_be_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    j = WardJournal(tmp_path / "w.sqlite")
    ward = Ward(untrained_monitor(), journal=j)
    j.close()  # every write fails from here on
    with caplog.at_level(logging.ERROR, logger="vitalgru.scoring.ward"):
        ward.admit_ecg("bed-1", 360.0)
        ward.add_ecg("bed-1", [0.0] * 360)
        ward.tick()
    assert ward.status()["state_write_errors"] >= 1 and "could not write" in caplog.text
    assert ward.ecg_summary("bed-1")["received_s"] == 1.0  # the patient is still monitored


def test_restore_only_into_an_empty_ward_and_only_what_it_can_monitor(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    j = WardJournal(tmp_path / "w.sqlite")
    j.admit_sepsis("icu-1", "2026-12-05T08:00:00+00:00")
    j.add_hour("icu-1", 1, {"ICULOS": 1, "HR": 90})
    j.admit_ecg("bed-1", 250.0, "2026-12-05T08:00:00+00:00")
    ward = Ward(untrained_monitor(), journal=j)  # no sepsis model on this gateway
    with caplog.at_level(logging.WARNING, logger="vitalgru.scoring.ward"):
        took = ward.restore(j.load())
    assert took == {"ecg": 1, "sepsis": 0, "hours": 0, "events": 0, "ecg_memory": 0}
    assert "1 sepsis patient(s) in the state file are not taken up" in caplog.text
    assert [a.patient_id for a in j.load().sepsis] == ["icu-1"]  # kept for a ward that can
    assert ward.ecg_summary("bed-1")["fs"] == 250.0
    with pytest.raises(ValueError, match="new, empty ward"):
        ward.restore(WardState([], [], [], 0, {}))


def test_an_ecg_patients_memory_is_kept_until_discharge_or_readmission(tmp_path: Path) -> None:
    j = WardJournal(tmp_path / "w.sqlite")
    for pid in ("bed-1", "bed-2", "bed-3"):
        j.admit_ecg(pid, 360.0, "2026-12-05T08:00:00+00:00")
    j.ecg_memory({"bed-1": b"first", "bed-2": b"two"}, "2026-12-05T08:01:00+00:00")
    j.ecg_memory({"bed-1": b"newer"}, "2026-12-05T08:02:00+00:00")  # replaces
    j.ecg_memory({"bed-3": b"challenger"}, "2026-12-05T08:02:00+00:00", "shadow")
    assert [a.shadow_memory for a in j.load().ecg] == [None, None, b"challenger"]
    got = {a.patient_id: (a.memory, a.memory_saved_at) for a in j.load().ecg}
    assert got == {"bed-1": (b"newer", "2026-12-05T08:02:00+00:00"),
                   "bed-2": (b"two", "2026-12-05T08:01:00+00:00"), "bed-3": (None, None)}  # fmt: skip
    j.discharge_ecg("bed-1")
    j.admit_ecg("bed-2", 250.0, "2026-12-05T09:00:00+00:00")  # another stay: no old memory
    assert [(a.patient_id, a.memory) for a in j.load().ecg] == [("bed-3", None), ("bed-2", None)]
    rows = j._db.execute("SELECT patient_id, monitor FROM ecg_memory").fetchall()
    assert rows == [("bed-3", "shadow")]  # the discharged and readmitted ones are gone
    j.close()
    with sqlite3.connect(tmp_path / "w.sqlite") as db:  # a file from before memories were kept
        db.execute("DROP TABLE ecg_memory")
    assert [a.memory for a in WardJournal(tmp_path / "w.sqlite").load().ecg] == [None, None]
