"""The gateway's access log: who read which patient's data, acknowledged, admitted or
discharged, and who was refused; written as it happens, read by admins only."""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from monitor_kit import untrained_monitor

from pipelines import audit
from pipelines.access import TokenTable, new_token
from pipelines.audit import COALESCE_S, AuditLog, read_rows, verify_files
from pipelines.cli import main
from pipelines.gateway import create_app
from vitalgru.scoring import EarlyWarningMonitor
from vitalgru.scoring.ward import Ward


def test_rows_are_appended_coalesced_and_filtered(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.sqlite")
    log.record("reader-1", "GET /vitals/{patient_id}", "p1", 200, "10.0.0.7")
    log.record("reader-1", "GET /vitals/{patient_id}", "p1", 200, "10.0.0.7")  # within a minute
    log.record("reader-1", "GET /vitals/{patient_id}", "p2", 200, "10.0.0.7")
    log.record("feed-1", "GET /vitals/{patient_id}", "p1", 403, "10.0.0.9")
    log.record("feed-1", "GET /vitals/{patient_id}", "p1", 403, "10.0.0.9")  # refusals: each
    rows = log.rows()
    assert [(r["caller"], r["patient_id"], r["status"], r["count"]) for r in rows] == [
        ("reader-1", "p1", 200, 2), ("reader-1", "p2", 200, 1),
        ("feed-1", "p1", 403, 1), ("feed-1", "p1", 403, 1)]  # fmt: skip
    assert [r["seq"] for r in log.rows(patient_id="p1")] == [1, 3, 4]
    assert [r["seq"] for r in log.rows(caller="reader-1", since=1)] == [2]
    assert [r["seq"] for r in log.rows(refused=True, limit=1)] == [3]
    assert rows[0]["at"].endswith("+00:00") and rows[0]["client"] == "10.0.0.7"
    assert COALESCE_S == 60.0
    log.close()
    again = AuditLog(tmp_path / "audit.sqlite")  # the file outlives the gateway
    assert len(again.rows()) == 4
    again.record("reader-1", "GET /vitals/{patient_id}", "p1", 200)  # a new span after restart
    assert len(again.rows()) == 5
    assert list(read_rows(tmp_path / "audit.sqlite", patient_id="p2")) == [rows[1]]
    # the hash chain: intact, then broken where a row was changed or deleted
    n, broken, last = again.verify()
    assert (n, broken) == (5, None) and len(last) == 64
    assert main(["serve-audit", str(tmp_path / "audit.sqlite"), "--verify"]) == 0
    # a link kept elsewhere is found while the rows up to it are there, missed when rows
    # were cut off the end (which leaves the rest of the chain whole)
    kept = again.verify()[2]
    assert again.row_of_link(kept) == 5
    assert main(["serve-audit", str(tmp_path / "audit.sqlite"), "--verify", "--expect", kept]) == 0
    with sqlite3.connect(tmp_path / "audit.sqlite") as db:
        cut = db.execute("SELECT * FROM access WHERE seq = 5").fetchone()
        db.execute("DELETE FROM access WHERE seq = 5")
    assert again.verify()[:2] == (4, None)
    with pytest.raises(SystemExit, match="not in its chain: rows were cut off"):
        main(["serve-audit", str(tmp_path / "audit.sqlite"), "--verify", "--expect", kept])
    with sqlite3.connect(tmp_path / "audit.sqlite") as db:
        db.execute(f"INSERT INTO access VALUES ({', '.join('?' * len(cut))})", cut)
    with sqlite3.connect(tmp_path / "audit.sqlite") as db:
        db.execute("UPDATE access SET caller = 'someone else' WHERE seq = 3")
    assert again.verify()[:2] == (3, 3)
    with pytest.raises(SystemExit, match="breaks at row 3"):
        main(["serve-audit", str(tmp_path / "audit.sqlite"), "--verify"])
    with sqlite3.connect(tmp_path / "audit.sqlite") as db:
        db.execute("UPDATE access SET caller = 'feed-1' WHERE seq = 3")
    assert again.verify()[:2] == (5, None)  # put back as it was: whole again
    with sqlite3.connect(tmp_path / "audit.sqlite") as db:
        db.execute("DELETE FROM access WHERE seq = 2")
    assert again.verify()[:2] == (2, 3)
    # a field whose bytes changed on disk so that it is not UTF-8 any more is a row that
    # breaks the chain (sqlite's decoding error, a traceback, before)
    with sqlite3.connect(tmp_path / "audit.sqlite") as db:
        db.execute("UPDATE access SET caller = CAST(x'666565ff2d31' AS TEXT) WHERE seq = 1")
    assert again.verify()[:2] == (1, 1)
    with pytest.raises(SystemExit, match="breaks at row 1"):
        main(["serve-audit", str(tmp_path / "audit.sqlite"), "--verify"])
    # a page that cannot be read at all: verified up to it, then a clear refusal
    big = AuditLog(tmp_path / "big.sqlite")
    for i in range(2000):
        big.record(f"reader-{i}", "GET /vitals/{patient_id}", f"p{i}", 200)
    big.close()
    data = bytearray((tmp_path / "big.sqlite").read_bytes())
    data[59 * 4096] = 0xFF  # page 60's kind: no b-tree page
    (tmp_path / "big.sqlite").write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"damaged past row \d+ .*cannot be verified beyond"):
        verify_files([tmp_path / "big.sqlite"])
    # files that are not an audit log are refused, not written over
    (tmp_path / "text").write_text("not sqlite at all" * 100)
    with pytest.raises(ValueError, match="not a vitalgru audit log"):
        AuditLog(tmp_path / "text")
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.executescript("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);"
                         "INSERT INTO meta VALUES ('kind', 'something-else');")  # fmt: skip
    with pytest.raises(ValueError, match="something-else file"):
        AuditLog(other)
    with pytest.raises(FileNotFoundError):
        list(read_rows(tmp_path / "absent.sqlite"))


def test_the_gateway_writes_who_read_what_and_who_was_refused(
    sepsis_fit: tuple[Any, dict, list[dict]], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    model, preprocessing, rows = sepsis_fit
    f = tmp_path / "tokens.json"
    tok = {role: new_token(f, f"{role}-1", role) for role in ("feed", "reader", "clinician")}
    tok["bed-2 screen"] = new_token(f, "bed-2 screen", "clinician", patients=["b2"])
    tok["admin"] = new_token(f, "admin-1", "admin")
    as_ = {k: {"Authorization": f"Bearer {v}"} for k, v in tok.items()}
    log = AuditLog(tmp_path / "audit.sqlite")
    ward = Ward(untrained_monitor(), EarlyWarningMonitor(model, preprocessing), feed_timeout_s=0.01)
    app = create_app(ward, tick_s=0, tokens=TokenTable.from_file(f), audit=log)
    with TestClient(app) as c:
        assert c.post("/vitals/p1/admit", headers=as_["feed"]).status_code == 201
        assert c.post("/vitals/p1", json=rows[0], headers=as_["feed"]).status_code == 200
        for _ in range(3):  # a screen refreshing: one row, counted
            assert c.get("/vitals/p1", headers=as_["reader"]).status_code == 200
        assert c.get("/vitals/p1/page", headers=as_["clinician"]).status_code == 200
        assert c.get("/events", params={"patient": "p1"}, headers=as_["reader"]).status_code == 200
        assert c.get("/vitals/p1", headers=as_["feed"]).status_code == 403  # a feed reads nothing
        assert c.get("/vitals/p1").status_code == 401
        assert c.get("/audit", headers=as_["reader"]).status_code == 403
        for bed in ("b1", "b2"):  # two events about patients: feeds that went quiet
            c.post(f"/ecg/{bed}/admit", json={"fs": 360}, headers=as_["feed"])
            c.post(f"/ecg/{bed}", json={"samples": [0.0] * 36}, headers=as_["feed"])
        time.sleep(0.05)
        ward.tick()
        ward.tick()
        seq = {
            e["patient_id"]: e["seq"] for e in ward.events()["events"] if e["kind"] == "feed_lost"
        }
        r = c.post(f"/events/{seq['b1']}/ack", json={"by": "RN Diaz"}, headers=as_["bed-2 screen"])
        assert r.status_code == 403  # not its patient: refused, and the event's patient named
        r = c.post(f"/events/{seq['b2']}/ack", json={"by": "RN Diaz"}, headers=as_["bed-2 screen"])
        assert r.status_code == 200
        assert c.delete("/vitals/p1", headers=as_["feed"]).status_code == 200
        adt = "MSH|^~\\&|A|H|V|H|202612050800+0000||ADT^A01|A1|P|2.5\rPID|1||p3\r"
        er7 = {**as_["feed"], "Content-Type": "x-application/hl7-v2+er7"}
        assert c.post("/hl7", content=adt, headers=er7).status_code == 200
        r = c.get("/audit", headers=as_["admin"])
        assert r.status_code == 200
        got = [(x["caller"], x["action"], x["patient_id"], x["status"], x["count"])
               for x in r.json()["rows"]]  # fmt: skip
        by_p1 = c.get("/audit", params={"patient": "p1"}, headers=as_["admin"]).json()["rows"]
        refused = c.get("/audit", params={"refused": "true"}, headers=as_["admin"]).json()["rows"]
    # the hourly data and ECG chunks are not rows; the admissions, reads, refusals are
    assert ("feed-1", "POST /vitals/{patient_id}", "p1", 200, 1) not in got
    assert not any(a == "POST /ecg/{patient_id}" for _, a, *_ in got)
    assert got[:7] == [
        ("feed-1", "POST /vitals/{patient_id}/admit", "p1", 201, 1),
        ("reader-1", "GET /vitals/{patient_id}", "p1", 200, 3),
        ("clinician-1", "GET /vitals/{patient_id}/page", "p1", 200, 1),
        ("reader-1", "GET /events", "p1", 200, 1),
        ("feed-1", "GET /vitals/{patient_id}", "p1", 403, 1),
        ("(no valid token)", "GET /vitals/{patient_id}", "p1", 401, 1),
        ("reader-1", "GET /audit", None, 403, 1),
    ]
    assert ("bed-2 screen", "POST /events/{seq}/ack", "b1", 403, 1) in got
    assert ("bed-2 screen", "POST /events/{seq}/ack", "b2", 200, 1) in got
    assert ("feed-1", "DELETE /vitals/{patient_id}", "p1", 200, 1) in got
    assert ("feed-1", "HL7 ADT^A01 admit", "p3", 200, 1) in got
    assert [x["status"] for x in by_p1] == [201, 200, 200, 200, 403, 401, 200]
    assert {x["status"] for x in refused} == {401, 403} and len(refused) == 4
    # and the command line prints them, one patient's too
    assert main(["serve-audit", str(tmp_path / "audit.sqlite"), "--patient", "p1"]) == 0
    out = capsys.readouterr()
    lines = out.out.strip().split("\n")
    assert len(lines) == 8 and "reader-1\tGET /vitals/{patient_id}\tp1\t200" in lines[1]
    assert lines[1].endswith("(x3)") and "8 row(s)" in out.err
    assert "admin-1\tGET /audit\tp1\t200" in lines[7]  # looking at p1's accesses is one too
    assert main(["serve-audit", str(tmp_path / "audit.sqlite"), "--refused", "--json"]) == 0
    assert len([json.loads(x) for x in capsys.readouterr().out.strip().split("\n")]) == 4
    with pytest.raises(SystemExit, match="no audit log"):
        main(["serve-audit", str(tmp_path / "nothing.sqlite")])


def test_an_open_gateway_writes_its_callers_as_open(
    sepsis_fit: tuple[Any, dict, list[dict]], tmp_path: Path
) -> None:
    model, preprocessing, _ = sepsis_fit
    log = AuditLog(tmp_path / "audit.sqlite")
    app = create_app(Ward(None, EarlyWarningMonitor(model, preprocessing)), tick_s=0, audit=log)
    with TestClient(app) as c:
        c.post("/vitals/p1/admit")
        c.get("/vitals/p1")
        c.get("/health")
        c.get("/metrics")
        assert c.get("/vitals/nobody").status_code == 404
        assert c.get("/audit").status_code == 200
    got = [(x["caller"], x["action"], x["patient_id"], x["status"]) for x in log.rows()]
    assert got == [("open", "POST /vitals/{patient_id}/admit", "p1", 201),
                   ("open", "GET /vitals/{patient_id}", "p1", 200),
                   ("open", "GET /vitals/{patient_id}", "nobody", 404),
                   ("open", "GET /audit", None, 200)]  # fmt: skip
    assert got[0] and log.rows()[0]["client"] == "testclient"


class _Clock(datetime):
    """The audit log's clock, set by the test."""

    at = datetime(2026, 1, 10, 8, 0, tzinfo=UTC)

    @classmethod
    def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
        return cls.at


def test_a_row_number_past_sqlites_integers_is_refused_not_a_500(tmp_path: Path) -> None:
    app = create_app(Ward(untrained_monitor()), tick_s=0, audit=AuditLog(tmp_path / "a.sqlite"))
    with TestClient(app, raise_server_exceptions=False) as c:
        c.get("/patients")
        r = c.get("/audit", params={"since": 2**63})
        assert r.status_code == 422 and "less than or equal to" in r.text
        assert c.get("/audit", params={"since": 2**63 - 1}).json() == {"rows": []}


def test_old_rows_move_to_an_archive_and_the_files_verify_as_one_chain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(audit, "datetime", _Clock)
    live, old, older = tmp_path / "audit.sqlite", tmp_path / "2026-01.sqlite", tmp_path / "x.sqlite"
    log = AuditLog(live)
    for pid in ("p1", "p2", "p3"):  # January
        log.record("reader-1", "GET /vitals/{patient_id}", pid, 200)
    _Clock.at = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # March
    log.record("reader-1", "GET /vitals/{patient_id}", "p4", 200)
    log.record("feed-1", "GET /vitals/{patient_id}", "p4", 403)
    whole = log.rows()
    kept_link = log.verify()[2]
    _Clock.at = datetime(2026, 3, 5, tzinfo=UTC)
    with pytest.raises(ValueError, match="too recent"):
        log.archive(_Clock.at - timedelta(seconds=30), old)
    with pytest.raises(ValueError, match="no UTC offset"):
        log.archive(datetime(2026, 2, 1), old)
    assert log.archive(datetime(2025, 1, 1, tzinfo=UTC), old)["rows"] == 0 and not old.exists()
    got = log.archive(datetime(2026, 2, 1, tzinfo=UTC), old)
    assert (got["rows"], got["first_seq"], got["last_seq"]) == (3, 1, 3)
    # a rollback-journal file: kept in a read-only place it opens without a -shm beside it
    # (a WAL archive there was "not a vitalgru audit log: unable to open database file")
    with closing(sqlite3.connect(old)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert log.rows() == whole[3:] and AuditLog(old).rows() == whole[:3]  # as they were
    assert log.anchor() == got["last_link"] and log.verify()[:2] == (2, None)
    checked = verify_files([old, live])
    assert [(c["rows"], c["broken"], c["follows"]) for c in checked] == [(3, None, True),
                                                                          (2, None, True)]  # fmt: skip
    assert checked[-1]["last"] == kept_link  # the same chain as before the move
    assert not verify_files([live, old])[1]["follows"]
    with pytest.raises(ValueError, match="exists"):
        log.archive(datetime(2026, 2, 1, tzinfo=UTC), old)
    # everything moved: the next row follows the archive's last link
    assert log.archive(datetime(2026, 3, 3, tzinfo=UTC), older)["rows"] == 2
    assert log.rows() == [] and log.verify() == (0, None, kept_link)
    log.record("reader-2", "GET /ward", None, 200)
    assert log.rows()[0]["seq"] == 6
    assert [c["follows"] for c in verify_files([old, older, live])] == [True, True, True]
    assert not verify_files([old, live])[1]["follows"]  # the archive between them is missing
    log.close()
    # the command line: read and verify the files as one log, archive by date
    assert main(["serve-audit", str(old), str(older), str(live)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 6
    assert main(["serve-audit", str(old), str(older), str(live), "--verify",
                 "--expect", kept_link]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "the files follow one another" in out and "not given here" not in out
    # a link kept in January, its row archived since: still in the chain the files make
    # (it was looked for in the live file only: "rows were cut off its end")
    with sqlite3.connect(old) as db:
        (jan_link,) = db.execute("SELECT chain FROM access WHERE seq = 2").fetchone()
    assert main(["serve-audit", str(old), str(older), str(live), "--verify",
                 "--expect", jan_link]) == 0  # fmt: skip
    assert f"the link kept earlier is row 2 of {old}" in capsys.readouterr().out
    # an archive into a folder that is not there: said so (sqlite's "unable to open")
    missing = tmp_path / "nowhere" / "a.sqlite"
    with pytest.raises(SystemExit, match=r"--archive-to .*a\.sqlite: the folder .*nowhere does"):
        main(["serve-audit", str(live), "--archive-before", "2026-03-04T00:00:00+00:00",
              "--archive-to", str(missing)])  # fmt: skip
    # the live file alone: its beginning is not checked, and it says so (it read as fully
    # verified before, which a file with its first rows cut and its anchor set also does)
    assert main(["serve-audit", str(live), "--verify"]) == 0
    assert "its chain starts from an archive not given here" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="does not follow"):
        main(["serve-audit", str(old), str(live), "--verify"])
    with pytest.raises(SystemExit, match="go together"):
        main(["serve-audit", str(live), "--archive-before", "2026-03-04"])
    _Clock.at = datetime(2026, 4, 1, tzinfo=UTC)
    assert main(["serve-audit", str(live), "--archive-before", "2026-03-31",
                 "--archive-to", str(tmp_path / "march.sqlite")]) == 0  # fmt: skip
    assert "1 row(s) (6 to 6) moved to" in capsys.readouterr().out
    # a changed archived row is found in the archive
    with sqlite3.connect(old) as db:
        db.execute("UPDATE access SET caller = 'someone-else' WHERE seq = 2")
    assert verify_files([old, older])[0]["broken"] == 2


def test_a_second_workstation_with_the_same_token_is_a_row_of_its_own(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.sqlite")
    for client in ("10.0.0.5", "192.168.9.77", "10.0.0.5"):
        log.record("open", "GET /vitals/{patient_id}", "p1", 200, client)
    # coalesced by caller, action, patient and status alone, the second reader's address
    # was lost in the first's count
    assert [(r["client"], r["count"]) for r in log.rows()] == [
        ("10.0.0.5", 2), ("192.168.9.77", 1)]  # fmt: skip
    log.close()


def test_a_file_of_another_kind_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    # --state and --audit swapped, or an MLflow store given as either: each got the other's
    # tables, was switched to WAL and marked as the gateway's own
    from vitalgru.scoring.ward_journal import WardJournal

    def tables(p: Path) -> list[str]:
        with sqlite3.connect(p) as db:
            return sorted(r[0] for r in db.execute("SELECT name FROM sqlite_master "
                                                   "WHERE type='table'"))  # fmt: skip

    state, log, other = tmp_path / "s.sqlite", tmp_path / "a.sqlite", tmp_path / "mlflow.db"
    WardJournal(state).close()
    AuditLog(log).close()
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE experiments (id INTEGER)")
    before = {p: (tables(p), p.read_bytes()) for p in (state, log, other)}
    for path in (state, other):
        with pytest.raises(ValueError, match="is not a vitalgru audit log: it holds other"):
            AuditLog(path)
    for path in (log, other):
        with pytest.raises(ValueError, match="is not a vitalgru ward state file: it holds"):
            WardJournal(path)
    assert {p: (tables(p), p.read_bytes()) for p in (state, log, other)} == before
    assert not (tmp_path / "mlflow.db-wal").exists()
    AuditLog(log).close()  # its own kind: taken up
    WardJournal(state).close()


def test_repeats_are_one_row_whatever_the_answer_but_refusals(tmp_path: Path) -> None:
    # only answers under 400 were grouped: a client over its rate (429) or a screen polling
    # a discharged patient (404) wrote a row, and an fsync, per request
    log = AuditLog(tmp_path / "audit.sqlite")
    for status in (429, 429, 429, 404, 404, 401, 401, 403, 403):
        log.record("reader-1", "GET /vitals/{patient_id}", "p1", status, "10.0.0.7")
    assert [(r["status"], r["count"]) for r in log.rows()] == [
        (429, 3), (404, 2), (401, 1), (401, 1), (403, 1), (403, 1)]  # fmt: skip
    log.close()


def test_a_row_that_cannot_be_written_is_counted_logged_and_shown(
    sepsis_fit: tuple[Any, dict, list[dict]], tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    model, preprocessing, _ = sepsis_fit
    log = AuditLog(tmp_path / "audit.sqlite")
    # a lone surrogate (a JSON "\ud800") cannot be UTF-8: it raised out of record() (a 500
    # for the request, no row, nothing counted); it is kept escaped
    log.record("open", "GET /vitals/{patient_id}", "\ud800x", 200)
    assert log.rows()[-1]["patient_id"] == "\\ud800x" and log.errors == 0
    app = create_app(Ward(None, EarlyWarningMonitor(model, preprocessing)), tick_s=0, audit=log)
    with TestClient(app) as c:
        c.post("/vitals/p1/admit")
        with sqlite3.connect(tmp_path / "audit.sqlite", timeout=0) as other:
            other.execute("BEGIN EXCLUSIVE")  # another program holds the file
            log._db.execute("PRAGMA busy_timeout = 0")
            with caplog.at_level("ERROR", logger="pipelines.audit"):
                assert c.get("/vitals/p1").status_code == 200  # answered all the same
            other.execute("ROLLBACK")
        # counted before, and shown nowhere: now in /health, /metrics and the log
        assert log.errors == 1 and c.get("/health").json()["audit"] == {"write_errors": 1}
        assert "vitalgru_audit_write_errors_total 1.0" in c.get("/metrics").text
    assert "a row could not be written (1 errors so far)" in caplog.text


def test_a_slow_audit_write_does_not_hold_up_other_requests(
    sepsis_fit: tuple[Any, dict, list[dict]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the row was written on the event loop: while one read waited on a locked audit file
    # (up to sqlite's 5 s), /health, the event streams and the feeds waited too
    import threading
    from concurrent.futures import ThreadPoolExecutor

    model, preprocessing, _ = sepsis_fit
    log = AuditLog(tmp_path / "audit.sqlite")
    app = create_app(Ward(None, EarlyWarningMonitor(model, preprocessing)), tick_s=0, audit=log)
    entered, release = threading.Event(), threading.Event()
    real = log.record_many

    def slow(*args: Any) -> None:
        if args[1] == "GET /vitals/{patient_id}":
            entered.set()
            release.wait(10)
        real(*args)

    monkeypatch.setattr(log, "record_many", slow)
    with TestClient(app) as c, ThreadPoolExecutor(1) as pool:
        c.post("/vitals/p1/admit")
        read = pool.submit(c.get, "/vitals/p1")
        assert entered.wait(10)
        t0 = time.monotonic()
        assert c.get("/health").status_code == 200
        took = time.monotonic() - t0
        release.set()
        assert read.result(10).status_code == 200
    assert took < 5  # answered while the read's row waited (10 s before)


def test_files_are_owner_only_and_read_without_being_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "audit.sqlite"
    log = AuditLog(path)
    log.record("reader-1", "GET /vitals/{patient_id}", "p1", 200)
    # who read which patient: created -rw-r--r-- beside a 0600 token file
    assert path.stat().st_mode & 0o777 == 0o600
    assert all(p.stat().st_mode & 0o077 == 0 for p in tmp_path.glob("audit.sqlite*"))
    kept = log.verify()[2]
    log.close()
    # reading and verifying opened the file for writing (WAL, schema, meta): an archive
    # kept read-only could be neither listed nor verified ("attempt to write a readonly
    # database"); each reader now opens it read-only
    opened: list[bool] = []
    real_init = AuditLog.__init__

    def init(self: AuditLog, p: Any, read_only: bool = False) -> None:
        opened.append(read_only)
        real_init(self, p, read_only)

    monkeypatch.setattr(AuditLog, "__init__", init)
    assert verify_files([path])[0]["broken"] is None
    assert len(list(read_rows(path))) == 1
    assert main(["serve-audit", str(path), "--verify", "--expect", kept]) == 0
    assert opened and all(opened)
    ro = AuditLog(path, read_only=True)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        ro._db.execute("DELETE FROM access")
    ro.close()
    with pytest.raises(ValueError, match="not a vitalgru audit log"):
        AuditLog(tmp_path / "empty.sqlite", read_only=True)


@pytest.mark.parametrize(
    ("column", "value"),
    [("at", "2026-01-01T00:00:00+00:00"), ("caller", "someone else"), ("action", "GET /x"),
     ("patient_id", "vip-1"), ("status", 403), ("client", "10.9.9.9")],
)  # fmt: skip
def test_a_change_to_any_field_breaks_the_chain(tmp_path: Path, column: str, value: Any) -> None:
    # only the caller was ever changed in a test: a chain over fewer fields passed them all
    log = AuditLog(tmp_path / "audit.sqlite")
    for p in ("p1", "p2", "p3"):
        log.record("reader-1", "GET /vitals/{patient_id}", p, 200, "10.0.0.7")
    assert log.verify()[:2] == (3, None)
    with sqlite3.connect(tmp_path / "audit.sqlite") as db:
        db.execute(f"UPDATE access SET {column} = ? WHERE seq = 2", (value,))
    assert log.verify()[:2] == (2, 2)
    log.close()


def test_a_read_of_the_whole_ward_is_found_under_each_patient_it_carried(
    sepsis_fit: tuple[Any, dict, list[dict]], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    # the ward page, /patients, /fhir/risk, the event log and its stream carry every
    # patient's data but were rows with no patient: `serve-audit --patient icu-7` answered
    # as if no one had seen icu-7
    import threading

    model, preprocessing, rows = sepsis_fit
    path = tmp_path / "audit.sqlite"
    log = AuditLog(path)
    ward = Ward(untrained_monitor(), EarlyWarningMonitor(model, preprocessing), feed_timeout_s=0.01)

    def lose_a_feed(pid: str) -> None:  # an alarm of pid's in the event log
        c.post(f"/ecg/{pid}/admit", json={"fs": 360})
        time.sleep(0.02)
        ward.tick()

    with TestClient(create_app(ward, tick_s=0, audit=log)) as c:
        for p in ("icu-7", "icu-8", "icu-9"):
            assert c.post(f"/vitals/{p}/admit").status_code == 201
        for p in ("icu-7", "icu-8"):  # icu-9 has no hour scored yet
            assert c.post(f"/vitals/{p}", json=rows[0]).status_code == 200
        lose_a_feed("bed-2")
        for route in ("/fhir/risk", "/ward", "/patients", "/events", "/fhir/events", "/ward"):
            assert c.get(route).status_code == 200, route
        assert c.get("/events", params={"source": "ward"}).json()["events"] == []
        r = c.get("/events/stream", params={"since": 0, "limit": 1, "source": "ecg"})
        assert r.status_code == 200 and '"patient_id":"bed-2"' in r.text.replace(" ", "")
        # a stream opened on the whole ward names each patient as their events go out
        answers: list[Any] = []
        reader = threading.Thread(
            target=lambda: answers.append(c.get("/events/stream", params={"limit": 1}))
        )
        reader.start()
        for k in range(50):  # until the stream has its event (it may open after the first)
            lose_a_feed(f"bed-3.{k}")
            reader.join(timeout=0.3)
            if not reader.is_alive():
                break
        streamed = json.loads(answers[0].text.split("data: ", 1)[1].split("\n", 1)[0])
        # a merge answers the summary of the record the stay goes on under
        assert c.post("/vitals/icu-8/merge", params={"into": "mrn-8"}).status_code == 200
    got = log.rows()

    def actions(pid: str | None) -> list[tuple[str, int]]:
        return [(r["action"], r["count"]) for r in got if r["patient_id"] == pid]

    assert actions("icu-9") == [  # on the page and the list, not in the risks (none yet)
        ("POST /vitals/{patient_id}/admit", 1), ("GET /ward", 2), ("GET /patients", 1)]  # fmt: skip
    for read in [("GET /fhir/risk", 1), ("GET /ward", 2), ("GET /patients", 1)]:
        assert read in actions("icu-7")
    icu7_events = [e for e in ward.events()["events"] if e["patient_id"] == "icu-7"]
    assert (("GET /events", 1) in actions("icu-7")) == bool(icu7_events)  # its alarm, if any
    assert actions("bed-2") == [
        ("POST /ecg/{patient_id}/admit", 1), ("GET /ward", 2), ("GET /patients", 1),
        ("GET /events", 1), ("GET /fhir/events", 1), ("GET /events/stream", 1)]  # fmt: skip
    stream_rows = [r for r in got if r["action"] == "GET /events/stream"]
    pid = streamed["patient_id"]
    # the two opened naming no one (one row, counted), then each patient whose event
    # went out on one
    assert [(r["patient_id"], r["count"]) for r in stream_rows] == [
        (None, 2), ("bed-2", 1), (pid, 1)]  # fmt: skip
    assert ("POST /vitals/{patient_id}/merge", 1) in actions("mrn-8")
    assert ("POST /vitals/{patient_id}/merge", 1) in actions("icu-8")
    # an answer that carried no patient is still a row, naming none
    assert ("GET /events", 1) in actions(None)
    # the command line finds them, and the chain written in one go per answer verifies
    assert main(["serve-audit", str(path), "--patient", "icu-7"]) == 0
    out = capsys.readouterr()
    assert "GET /ward\ticu-7\t200" in out.out and "GET /fhir/risk\ticu-7\t200" in out.out
    assert main(["serve-audit", str(path), "--verify"]) == 0
    assert verify_files([path])[0]["broken"] is None


def test_a_stream_names_a_patient_once_a_span_and_answers_before_their_data_go_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    from types import SimpleNamespace

    from pipelines import gateway_http
    from pipelines.gateway_http import AuditMiddleware

    log = AuditLog(tmp_path / "audit.sqlite")
    seen: list[list[str | None]] = []

    async def stream(scope: dict, receive: Any, send: Any) -> None:
        scope["route"] = SimpleNamespace(path="/events/stream")
        told = scope["state"]["audit_sent"]
        told({"early"})  # before the answer starts: written with its row
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for batch in ({"b1"}, {"b1", "b2", None}, {"b2"}):
            await asyncio.to_thread(told, batch)
            seen.append([r["patient_id"] for r in log.rows()])
        await send({"type": "http.response.body", "body": b""})

    async def nothing(*_: Any) -> None:
        return None

    mw = AuditMiddleware(stream, log, audited=lambda m, p: True, open_=True)
    scope = {"type": "http", "method": "GET", "query_string": b"", "client": ("10.0.0.7", 1)}
    asyncio.run(mw(dict(scope), nothing, nothing))
    assert seen == [["early", "b1"], ["early", "b1", "b2"], ["early", "b1", "b2"]]
    assert [r["count"] for r in log.rows()] == [1, 1, 1]  # not counted per event
    # a stream held open longer than a span names its patients again as their data go out
    monkeypatch.setattr(gateway_http, "COALESCE_S", 0.0)
    asyncio.run(mw(dict(scope), nothing, nothing))
    assert [(r["patient_id"], r["count"]) for r in log.rows()] == [
        ("early", 2), ("b1", 3), ("b2", 3)]  # fmt: skip
    log.close()
