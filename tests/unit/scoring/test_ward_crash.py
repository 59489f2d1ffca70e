"""A gateway killed among the writes of one change of the ward: the state file keeps all of
that change or none of it, and a restart goes on from there without losing or repeating an
alarm. A kill is the state file as it is on disk at that moment: its database and
write-ahead log copied before the write (what SQLite recovers after a kill: the
transactions committed)."""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from monitor_kit import hovering, untrained_monitor

from vitalgru.scoring import EarlyWarningMonitor
from vitalgru.scoring.ward import Ward
from vitalgru.scoring.ward_journal import WardJournal
from vitalgru.scoring.ward_journal_writes import TAKING


def _killed_before(monkeypatch: pytest.MonkeyPatch, method: str, state: Path, dest: Path,
                   nth: int = 1) -> None:  # fmt: skip
    """Copy the state file as a kill before the ``nth`` call of ``WardJournal.method`` would
    leave it, to ``dest``; the ward itself goes on."""
    real = getattr(WardJournal, method)
    calls = [0]

    def copy_then_write(self: WardJournal, *args: Any) -> Any:
        calls[0] += 1
        if calls[0] == nth:
            for suffix in ("", "-wal"):
                if Path(f"{state}{suffix}").exists():
                    shutil.copyfile(f"{state}{suffix}", f"{dest}{suffix}")
        return real(self, *args)

    monkeypatch.setattr(WardJournal, method, copy_then_write)


def _restarted(sepsis_fit: tuple[Any, dict, list[dict]], pre: dict, state: Path) -> Ward:
    ward = Ward(sepsis=EarlyWarningMonitor(sepsis_fit[0], pre), journal=WardJournal(state))
    ward.restore(ward.journal.load())
    return ward


def _admitted(
    sepsis_fit: tuple[Any, dict, list[dict]], tmp_path: Path
) -> tuple[dict, list[dict], Ward, Path, Path]:
    """A ward on a new state file with patient icu-1 on sepsis scoring, the alarm line where
    the test stay crosses it most (:func:`hovering`), and where a kill's copy goes."""
    pre, rows = hovering(sepsis_fit)
    state, crash = tmp_path / "w.sqlite", tmp_path / "crash.sqlite"
    ward = Ward(sepsis=EarlyWarningMonitor(sepsis_fit[0], pre), journal=WardJournal(state))
    ward.admit_sepsis("icu-1")
    return pre, rows, ward, state, crash


def _log(ward: Ward) -> list[tuple[int, str, Any]]:
    return [(e["seq"], e["kind"], e.get("ends")) for e in ward.events()["events"]]


def test_a_message_killed_halfway_is_kept_as_none_of_it_and_taken_whole_again(
    sepsis_fit: tuple[Any, dict, list[dict]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the first write while a message was taken marked it taken: the sender's resend was
    # answered as a duplicate, and the rest of the message was lost
    pre, rows, ward, state, crash = _admitted(sepsis_fit, tmp_path)
    _killed_before(monkeypatch, "add_hour", state, crash, nth=2)
    with ward.journal.taking("msg-1", "ORU^R01"):
        ward.add_hour("icu-1", rows[0])
        ward.add_hour("icu-1", rows[1])
    assert ("msg-1", "ORU^R01", TAKING) in ward.journal.hl7_messages()  # taken, uninterrupted
    ward.close()
    again = _restarted(sepsis_fit, pre, crash)
    assert again.journal.hl7_messages() == []  # a resend is taken
    assert again.sepsis_summary("icu-1")["last_hour"] is None  # neither hour
    again.close()


def test_an_episode_that_ended_just_before_a_kill_is_ended_after_the_restart(
    sepsis_fit: tuple[Any, dict, list[dict]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the hour was kept and the event ending its episode was not: the restarted bed was out
    # of alarm with the onset never ended (an engine showed it active for good)
    pre, rows, ward, state, crash = _admitted(sepsis_fit, tmp_path)
    _killed_before(monkeypatch, "add_event", state, crash, nth=2)  # the episode's end
    for k in range(len(rows)):
        ward.add_hour("icu-1", rows[k])
        if any(e[1] == "alarm_ended" for e in _log(ward)):
            break
    (onset,) = [e for e in _log(ward) if e[1] != "alarm_ended"]
    ward.close()
    monkeypatch.undo()
    again = _restarted(sepsis_fit, pre, crash)
    for row in rows[k:]:  # the feed sends again what was not acknowledged, and goes on
        again.add_hour("icu-1", row)
        if not again.sepsis_summary("icu-1")["in_alarm"]:
            break
    ends = [e for e in _log(again) if e[2] == onset[0]]
    assert len(ends) == 1 and onset[0] not in again.alarms_in_progress()
    again.close()


def test_an_onset_a_restart_no_longer_finds_going_on_is_ended(
    sepsis_fit: tuple[Any, dict, list[dict]], tmp_path: Path
) -> None:
    # a gateway restarted with another alarm line: the stored hours scored again are out
    # of alarm, and the logged onset stayed open for good
    pre, rows, ward, state, _ = _admitted(sepsis_fit, tmp_path)
    for row in rows:
        if ward.add_hour("icu-1", row)["alarm_started"]:
            break
    onset = ward.sepsis_summary("icu-1")["alarm_seq"]
    ward.close()
    again = _restarted(sepsis_fit, {**pre, "threshold": 0.9999}, state)
    assert not again.sepsis_summary("icu-1")["in_alarm"]
    (end,) = [e for e in again.events()["events"] if e.get("ends") == onset]
    assert end["reason"] == "restart" and again.alarms_in_progress() == []
    again.close()


@pytest.mark.parametrize("change", ["acknowledge", "discharge", "merge"])
def test_a_change_and_its_event_are_kept_together_or_not_at_all(
    sepsis_fit: tuple[Any, dict, list[dict]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    change: str,
) -> None:  # fmt: skip
    # each was two commits: a kill between them paged an acknowledged episode again (merge),
    # lost the acknowledgement's event for good, or ended an alarm twice (discharge)
    pre, rows, ward, state, crash = _admitted(sepsis_fit, tmp_path)
    for row in rows:
        if ward.add_hour("icu-1", row)["alarm_started"]:
            break
    onset = ward.sepsis_summary("icu-1")["alarm_seq"]
    if change == "merge":
        ward.acknowledge(onset, "nurse a")
        _killed_before(monkeypatch, "add_event", state, crash)  # patient_merged
        ward.merge_sepsis("icu-1", "mrn-1")
    elif change == "acknowledge":
        _killed_before(monkeypatch, "add_event", state, crash, nth=2)  # the event
        ward.acknowledge(onset, "nurse a")
    else:
        _killed_before(monkeypatch, "discharge_sepsis", state, crash)
        ward.discharge_sepsis("icu-1")
    ward.close()
    monkeypatch.undo()
    again = _restarted(sepsis_fit, pre, crash)
    (pid,) = again.patients()["sepsis"]
    assert pid == "icu-1"  # none of it was kept
    before = ["sepsis_risk", "acknowledged"] if change == "merge" else ["sepsis_risk"]
    assert [e[1] for e in _log(again)] == before  # nor a second page
    assert again.alarms_in_progress() == [onset]
    assert bool(again.events()["events"][0].get("acknowledged")) == (change == "merge")
    if change == "discharge":  # done again: the episode ends once
        again.discharge_sepsis("icu-1")
        assert [e[2] for e in _log(again) if e[1] == "alarm_ended"] == [onset]
    again.close()


def test_a_state_file_left_halfway_made_opens_as_a_new_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the tables were made and committed before the schema mark: a gateway stopped between
    # them left a file every later start refused as another program's
    class Interrupted(sqlite3.Connection):
        def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
            if sql.startswith("INSERT INTO meta VALUES ('schema'"):
                raise KeyboardInterrupt
            return super().execute(sql, *args)

    real = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: real(*a, **k, factory=Interrupted))
    with pytest.raises(KeyboardInterrupt):
        WardJournal(tmp_path / "w.sqlite")
    monkeypatch.undo()
    WardJournal(tmp_path / "w.sqlite").close()


@pytest.mark.parametrize("stop", ["clean", "kill"])
def test_numbers_of_events_whose_writes_failed_are_not_given_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop: str
) -> None:
    # the restarted log went on from the newest number in the file: events a poller had
    # seen (their writes failed on a full disk) had their numbers given to new ones, which
    # a cursor past them skipped
    state = tmp_path / "w.sqlite"
    ward = Ward(untrained_monitor(), journal=WardJournal(state), feed_timeout_s=0.05,
                escalate_after_s=None)  # fmt: skip
    for pid in ("a", "b", "c"):
        ward.admit_ecg(pid, 360.0)
        ward.add_ecg(pid, [0.0] * 360)
    ward.tick()
    real = WardJournal.add_event

    def full_disk(self: WardJournal, event: Any) -> None:
        if event["seq"] >= 2:
            raise sqlite3.OperationalError("database or disk is full")
        real(self, event)

    monkeypatch.setattr(WardJournal, "add_event", full_disk)
    time.sleep(0.1)
    ward.tick()  # three feeds lost: alarms the poller sees, two not written
    seen = ward.events()["last_seq"]
    assert seen == 3 and ward.status()["state_write_errors"] == 2
    monkeypatch.undo()
    if stop == "clean":
        ward.close()
    else:
        ward.journal.close()
    again = Ward(untrained_monitor(), journal=WardJournal(state))
    again.restore(again.journal.load())
    new = again.events(since=seen)["events"]
    assert [e["kind"] for e in new] == ["monitor_restarted"] * 3  # none skipped
    assert all(e["seq"] > seen for e in new)
    again.close()
