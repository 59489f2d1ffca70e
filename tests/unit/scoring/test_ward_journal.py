"""The ward's state file: what it keeps, what it refuses, and a ward that keeps working
when the file cannot be written."""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from monitor_kit import untrained_monitor

from vitalgru.scoring.ward import Ward
from vitalgru.scoring.ward_journal import WardJournal
from vitalgru.scoring.ward_state import WardState


def test_what_is_written_reads_back(tmp_path: Path) -> None:
    j = WardJournal(tmp_path / "w.sqlite")
    assert j.load().empty
    j.admit_ecg("bed-1", 360.0, "2026-12-05T08:00:00+00:00")
    j.ecg_progress({"bed-1": (12.5, {"N": 10, "V": 2}, 4500, "2026-12-05T08:00:12.5+00:00")})
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
    assert [(a.patient_id, a.fs, a.received_s, a.counts, a.next_index, a.next_at)
            for a in got.ecg] == [
        ("bed-1", 360.0, 12.5, {"N": 10, "V": 2}, 4500, "2026-12-05T08:00:12.5+00:00")
    ]  # fmt: skip
    assert [(a.patient_id, a.hours, a.static) for a in got.sepsis] == [
        ("icu-1", [{"ICULOS": 1, "HR": 88.0}, {"ICULOS": 2}], {})  # a null is a value not sent
    ]
    assert got.events == [{"seq": 1, "kind": "pause", "onset_s": 3.5, "n_beats": 0}]
    assert got.last_seq == 1
    assert got.models == {"arrhythmia": "models:/a@champion (version 2)"}
    # the ward's patients and their data: readable by the owner only (was -rw-r--r--)
    assert all(p.stat().st_mode & 0o077 == 0 for p in tmp_path.glob("w.sqlite*"))


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
    with sqlite3.connect(tmp_path / "w.sqlite") as db:  # and before the feed's index was
        db.execute("CREATE TABLE old AS SELECT patient_id, fs, admitted_at, received_s, "
                   "counts FROM ecg_beds")  # fmt: skip
        db.execute("DROP TABLE ecg_beds")
        db.execute("ALTER TABLE old RENAME TO ecg_beds")
        db.execute(
            "INSERT INTO ecg_beds VALUES ('bed-1', 360, '2026-12-05T08:00:00+00:00', 1, '{}')"
        )
    j = WardJournal(tmp_path / "w.sqlite")
    assert [(a.patient_id, a.next_index, a.next_at) for a in j.load().ecg] == [
        ("bed-1", None, None)]  # fmt: skip
    j.ecg_progress({"bed-1": (2.0, {}, 720, "2026-12-05T08:00:02+00:00")})
    assert [(a.next_index, a.next_at) for a in j.load().ecg] == [
        (720, "2026-12-05T08:00:02+00:00")]  # fmt: skip


def test_the_event_log_keeps_its_id_over_restarts_and_a_new_file_gets_another(
    tmp_path: Path,
) -> None:
    # the id makes the event numbers, which start at 1 again in a new log, unique across
    # gateways and state files (the FHIR identifiers of what the gateway logged)
    first = Ward(untrained_monitor(), journal=WardJournal(tmp_path / "a.sqlite"))
    first.close()
    again = Ward(untrained_monitor(), journal=WardJournal(tmp_path / "a.sqlite"))
    again.restore(again.journal.load())
    other = Ward(untrained_monitor(), journal=WardJournal(tmp_path / "b.sqlite"))
    in_memory = [Ward(untrained_monitor()).log_id for _ in range(2)]
    assert again.log_id == first.log_id and len(first.log_id) >= 16
    assert len({first.log_id, other.log_id, *in_memory}) == 4
    for ward in (again, other):
        ward.close()


def _written_before_log_ids(path: Path, events: int, reserved: int | None = None) -> None:
    """A state file as a version before event logs had ids left it: ``events`` events, the
    numbers reserved ahead of them (``reserved``; as many as the events: closed cleanly),
    and no log id."""
    j = WardJournal(path)
    for seq in range(1, events + 1):
        j.add_event({"seq": seq, "source": "ecg", "kind": "feed_lost", "patient_id": "bed-1"})
    j.set_value("seq_reserved", events if reserved is None else reserved)
    j.close()


def test_a_log_given_its_id_by_an_upgrade_keeps_where_its_old_ids_end(tmp_path: Path) -> None:
    # the alarms the file held were forwarded under ids without the log's: up to its last
    # event number they keep them (vitalgru.types.event_log_id), or the receiver could not
    # match the end of an alarm still open at the upgrade to it
    _written_before_log_ids(tmp_path / "old.sqlite", 3)
    ward = Ward(untrained_monitor(), journal=WardJournal(tmp_path / "old.sqlite"))
    ward.restore(ward.journal.load())
    assert ward.old_ids_up_to == 3 and ward.log_id
    ward.close()
    again = Ward(untrained_monitor(), journal=WardJournal(tmp_path / "old.sqlite"))
    assert (again.log_id, again.old_ids_up_to) == (ward.log_id, 3)  # kept over restarts
    again.close()
    # stopped with numbers reserved past the last event written (a crash): the restart goes
    # on after the reservation, and those numbers may have been used
    _written_before_log_ids(tmp_path / "crashed.sqlite", 2, reserved=1002)
    crashed = Ward(untrained_monitor(), journal=WardJournal(tmp_path / "crashed.sqlite"))
    crashed.restore(crashed.journal.load())
    assert crashed.old_ids_up_to == 1002 == crashed.last_seq
    crashed.close()
    # a new file, and a ward without one, have no events from before: no boundary
    fresh = Ward(untrained_monitor(), journal=WardJournal(tmp_path / "new.sqlite"))
    with fresh._queue_lock:  # an event logged after the id was made
        fresh._event({"source": "ecg", "kind": "feed_lost", "patient_id": "bed-1"})
    assert fresh.old_ids_up_to is None and Ward(untrained_monitor()).old_ids_up_to is None
    fresh.close()
    restarted = Ward(untrained_monitor(), journal=WardJournal(tmp_path / "new.sqlite"))
    assert restarted.old_ids_up_to is None and restarted.journal.last_event_seq() == 1
    restarted.close()


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


def test_a_file_whose_tables_are_not_text_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "w.sqlite"
    WardJournal(path).close()
    data = bytearray(path.read_bytes())
    at = data.find(b"CREATE TABLE hl7_taken")  # a table's schema, edited on the disk
    data[at + 10 : at + 14] = b"\x8b\xc1\x8b\xc1"
    path.write_bytes(bytes(data))
    # was a UnicodeDecodeError from SQLite's message quoting the bytes, naming no file
    with pytest.raises(ValueError, match="is not a vitalgru ward state file") as e:
        WardJournal(path)
    assert str(path) in str(e.value)


def _damaged_file(path: Path) -> None:
    """A state file of two ECG and two sepsis patients, 50 events and 3 strips, then a row
    of every table damaged as a disk or an edit by hand would."""
    j = WardJournal(path)
    for pid in ("bed-1", "bed-2"):
        j.admit_ecg(pid, 360.0, "2026-12-05T08:00:00+00:00")
    j.ecg_progress(
        {"bed-1": (60.0, {"N": 70}, None, None), "bed-2": (30.0, {"N": 35, "V": 1}, None, None)}
    )
    j.ecg_memory({"bed-1": b"m1", "bed-2": b"m2"}, "2026-12-05T08:01:00+00:00")
    for pid in ("icu-1", "icu-2"):
        j.admit_sepsis(pid, "2026-12-05T08:00:00+00:00", {"age_years": 70.0})
        for h in (1, 2, 3):
            j.add_hour(pid, h, {"ICULOS": h, "HR": 80.0 + h})
        j.pending_hour(pid, 4, {"heart_rate_bpm": [90.0]}, "2026-12-05T11:20:00+00:00")
    for seq in range(1, 51):
        j.add_event({"seq": seq, "message": "x" * 100})
    for seq in (10, 20, 30):
        j.add_strip(seq, {"patient_id": "bed-1", "samples": np.zeros(8)})
    j.set_models({"arrhythmia": "models:/a@champion (version 2)"})
    j.set_value("ecg_trends", {"p": []})
    j.set_value("cursor", 41)
    j.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE ecg_beds SET fs = 'fast' WHERE patient_id = 'bed-1'")
        db.execute("UPDATE ecg_beds SET counts = '{\"N\": 3' WHERE patient_id = 'bed-2'")
        db.execute("UPDATE sepsis_hours SET row = CAST(x'7b22ff' AS TEXT) "
                   "WHERE patient_id = 'icu-1' AND hour = 2")  # fmt: skip
        db.execute("UPDATE sepsis_static SET static = '[70]' WHERE patient_id = 'icu-1'")
        db.execute("UPDATE sepsis_pending SET measurements = 'x' WHERE patient_id = 'icu-1'")
        db.execute("UPDATE sepsis_live SET last_observation = 'noon' WHERE patient_id = 'icu-1'")
        db.execute("UPDATE sepsis_beds SET admitted_at = '2026-12-05 08:00' "
                   "WHERE patient_id = 'icu-2'")  # no UTC offset: not the ward's  # fmt: skip
        db.execute("UPDATE events SET event = '{oops' WHERE seq = 7")
        db.execute("UPDATE events SET event = '{\"seq\": 99}' WHERE seq = 8")  # not its own
        db.execute("UPDATE meta SET value = CAST(x'ff34' AS TEXT) WHERE key = 'value:cursor'")
        db.execute("UPDATE strips SET meta = 'null' WHERE seq = 20")
        db.execute("UPDATE meta SET value = '{oops' WHERE key = 'value:ecg_trends'")


def test_a_damaged_row_is_left_out_and_said_and_the_rest_taken_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # a row that could not be read raised from load(), and the gateway did not start: one
    # bad row cost every patient on the ward their monitoring
    path = tmp_path / "w.sqlite"
    _damaged_file(path)
    before = path.read_bytes()
    j = WardJournal(path)
    got = j.load()
    assert [(a.patient_id, a.counts, a.memory) for a in got.ecg] == [("bed-2", {}, b"m2")]
    (icu1,) = got.sepsis  # icu-2's admission time cannot be placed: not taken up
    assert icu1.patient_id == "icu-1" and [h["ICULOS"] for h in icu1.hours] == [1, 3]
    assert (icu1.static, icu1.pending, icu1.last_observation) == ({}, {}, None)
    assert [e["seq"] for e in got.events] == [s for s in range(1, 51) if s not in (7, 8)]
    assert got.last_seq == 50 and [seq for seq, _ in got.strips] == [10, 30]
    assert got.models == {"arrhythmia": "models:/a@champion (version 2)"}
    said = {(d.table, tuple(d.key.values()), d.patient_id) for d in got.damaged}
    assert said == {
        ("ecg_beds", ("bed-1",), "bed-1"), ("ecg_beds", ("bed-2",), "bed-2"),
        ("sepsis_hours", ("icu-1", 2), "icu-1"), ("sepsis_static", ("icu-1",), "icu-1"),
        ("sepsis_pending", ("icu-1", 4), "icu-1"), ("sepsis_live", ("icu-1",), "icu-1"),
        ("sepsis_beds", ("icu-2",), "icu-2"), ("events", (7,), None), ("events", (8,), None),
        ("strips", (20,), None),
    }  # fmt: skip
    lost = {d.message for d in got.damaged}
    assert "ecg_beds (patient_id bed-1): the ECG admission (not taken up) (ValueError: " \
        "could not convert string to float: 'fast')" in lost  # fmt: skip
    assert any(m.startswith("sepsis_hours (patient_id icu-1, hour 2): ICU hour 2 (scored "
                            "again as an hour with nothing measured)") for m in lost)  # fmt: skip
    assert path.read_bytes() == before  # reading changes nothing
    # a kept value that cannot be read is left out, with a warning, as one of the wrong kind
    with caplog.at_level(logging.WARNING, logger="vitalgru.scoring.ward"):
        assert j.value("ecg_trends", {}) == {} and j.value("cursor", 0) == 0  # not UTF-8
    assert "ecg_trends cannot be read" in caplog.text and "cursor cannot be read" in caplog.text

    copy = j.set_aside(got.damaged)  # the file as it was, beside it; the bad rows gone
    assert copy.parent == tmp_path and copy.name.startswith("w.sqlite.damaged-")
    j.close()
    with sqlite3.connect(copy) as db:
        assert db.execute("SELECT event FROM events WHERE seq = 7").fetchone() == ("{oops",)
    again = WardJournal(path).load()
    assert again.damaged == []
    assert [(a.patient_id, a.counts) for a in again.ecg] == [("bed-2", {})]  # mended, not gone
    assert [h["ICULOS"] for h in again.sepsis[0].hours] == [1, 3] and again.last_seq == 50


def test_a_damaged_page_costs_only_its_table(tmp_path: Path) -> None:
    path = tmp_path / "w.sqlite"
    j = WardJournal(path)
    j.admit_ecg("bed-1", 360.0, "2026-12-05T08:00:00+00:00")
    j.admit_sepsis("icu-1", "2026-12-05T08:00:00+00:00")
    j.add_hour("icu-1", 1, {"ICULOS": 1})
    for seq in range(1, 401):  # a table of many pages
        j.add_strip(seq, {"patient_id": "bed-1", "samples": np.ones(1000)})
    j.add_event({"seq": 1})
    j.close()
    with sqlite3.connect(path) as db:  # checkpointed: every page in the main file
        page = db.execute("PRAGMA page_size").fetchone()[0]
        root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'strips'").fetchone()[0]
    with path.open("r+b") as f:  # the strips table's first page is garbage
        f.seek((root - 1) * page)
        f.write(b"\xa5" * page)
    got = WardJournal(path).load()
    assert [a.patient_id for a in got.ecg] == ["bed-1"] and got.sepsis[0].hours == [{"ICULOS": 1}]
    assert got.last_seq == 1 and got.strips == []
    assert [(d.table, d.key) for d in got.damaged] == [("strips", {})]
    assert "malformed" in got.damaged[0].reason


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
    assert took == {"ecg": 1, "sepsis": 0, "hours": 0, "events": 0, "ecg_memory": 0, "damaged": 0}
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


def test_an_ecg_stays_earlier_trends_leave_with_it(tmp_path: Path) -> None:
    j = WardJournal(tmp_path / "w.sqlite")
    j.admit_ecg("bed-1", 360.0, "2026-12-05T08:00:00+00:00")
    j.set_value("ecg_trends", {"bed-1": [{"hr_trend_bpm": [66.8]}], "bed-2": [{"x": 1}]})
    j.discharge_ecg("bed-1")  # the next patient in the bed is not shown this one's trend
    assert j.value("ecg_trends") == {"bed-2": [{"x": 1}]}
    j.set_value("ecg_trends", {"bed-1": [{"hr_trend_bpm": [66.8]}], "bed-2": [{"x": 1}]})
    j.admit_ecg("bed-1", 360.0, "2026-12-05T09:00:00+00:00")  # a new stay, whatever came
    assert j.value("ecg_trends") == {"bed-2": [{"x": 1}]}
    j.close()


def test_an_event_a_restart_cannot_read_is_left_out_not_the_ward(tmp_path: Path) -> None:
    j = WardJournal(tmp_path / "w.sqlite")
    j.admit_ecg("bed-1", 360.0, "2026-12-05T08:00:00+00:00")
    good = {"source": "ecg", "patient_id": "bed-1", "kind": "feed_lost"}
    j.add_event({"seq": 1, "received_at": "2026-12-05T08:01:00+00:00", **good})
    j.add_event({"seq": 2, "received_at": "X026-12-05T08:02:00+00:00", **good})  # one byte
    j.add_event({"seq": 3, "received_at": "2026-12-05T08:03:00+00:00", "ends": "one", **good})
    state = j.load()
    assert [e["seq"] for e in state.events] == [1]
    assert [d.key for d in state.damaged] == [{"seq": 2}, {"seq": 3}]
    ward = Ward(untrained_monitor(), journal=j)
    ward.restore(state)  # a ValueError stopped the restore half-way before
    assert ward.patients()["ecg"] == ["bed-1"] and ward.alarms_in_progress() == [1]
    ward.close()


def test_the_copy_of_a_damaged_file_is_owner_only_as_the_file(tmp_path: Path) -> None:
    # it holds every patient's data the file held: under the usual umask (022) the copy was
    # made -rw-r--r--, readable by every local user, beside a file readable by its owner only
    path = tmp_path / "w.sqlite"
    mask = os.umask(0o022)
    try:
        j = WardJournal(path)
        j.admit_sepsis("MRN0012345", "2026-12-05T08:00:00+00:00")
        j.add_hour("MRN0012345", 1, {"ICULOS": 1, "HR": 112.0})
        copy = j.set_aside([])
        j.close()
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o600
    assert copy.stat().st_mode & 0o777 == 0o600
    with sqlite3.connect(copy) as db:  # a copy all the same
        assert db.execute("SELECT patient_id FROM sepsis_beds").fetchall() == [("MRN0012345",)]
