"""When a sepsis feed last sent a row is kept in the state file, and a gateway of an earlier
release (rolled back to, then upgraded from again) writes rows and admissions without
keeping it: the time kept from before is then older than the feed's latest row, and is not
taken as when the feed last sent one (the file counts from the restart, as one from before
the time was kept)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from monitor_kit import restarted_sepsis_ward

from vitalgru.scoring import EarlyWarningMonitor
from vitalgru.scoring.ward import Ward
from vitalgru.scoring.ward_journal import WardJournal


@pytest.fixture()
def clock(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    now = [datetime(2026, 12, 7, 8, 0, tzinfo=UTC)]
    monkeypatch.setattr("vitalgru.scoring.ward_sepsis_hours._now", lambda: now[0])
    return now


def _first_row_at_0830(model: Any, preprocessing: dict, state: Path, clock: list) -> None:
    ward = Ward(sepsis=EarlyWarningMonitor(model, preprocessing), journal=WardJournal(state))
    ward.admit_sepsis("icu-3")
    clock[0] += timedelta(minutes=30)
    ward.add_hour("icu-3", {"ICULOS": 1, "HR": 80.0})  # kept as the feed's last row: 08:30
    ward.journal.close()


def test_a_row_an_earlier_release_took_after_the_kept_time_is_not_lost(
    tmp_path: Path, sepsis_fit: tuple, clock: list[datetime]
) -> None:
    model, preprocessing, _ = sepsis_fit
    state = tmp_path / "ward-state.sqlite"
    _first_row_at_0830(model, preprocessing, state, clock)
    # rolled back at 09:00: the earlier release stores the hours it scores (10:00, 11:00)
    # and not when their rows came
    old = WardJournal(state)
    old.add_hour("icu-3", 2, {"ICULOS": 2, "HR": 82.0})
    old.add_hour("icu-3", 3, {"ICULOS": 3, "HR": 84.0})
    old.close()
    clock[0] = datetime(2026, 12, 7, 11, 45, tzinfo=UTC)  # upgraded again at 11:45
    again = restarted_sepsis_ward(model, preprocessing, state)
    summary = again.sepsis_summary("icu-3")
    # 3 h 15 min after the kept 08:30, 45 min after the feed's latest row: not quiet
    assert summary["no_data_since"] is None
    assert summary["last_data_at"] is None  # when the latest row came is not known
    clock[0] += timedelta(hours=3, minutes=1)
    assert again.sepsis_summary("icu-3")["no_data_since"] == "2026-12-07T11:45:00+00:00"
    again.journal.close()


def test_a_stay_an_earlier_release_admitted_again_does_not_take_the_last_stay_s_time(
    tmp_path: Path, sepsis_fit: tuple, clock: list[datetime]
) -> None:
    model, preprocessing, _ = sepsis_fit
    state = tmp_path / "ward-state.sqlite"
    _first_row_at_0830(model, preprocessing, state, clock)
    # the earlier release discharges the patient and admits them again at 11:00, a new
    # stay whose first row is again ICU hour 1; it leaves the table it does not know as is
    with sqlite3.connect(state) as db:
        db.execute("UPDATE sepsis_taken SET taken_at = '2026-12-07T11:00:00+00:00'")
        db.execute("UPDATE sepsis_beds SET admitted_at = '2026-12-07T11:00:00+00:00'")
    db.close()
    clock[0] = datetime(2026, 12, 7, 11, 45, tzinfo=UTC)
    again = restarted_sepsis_ward(model, preprocessing, state)
    assert again.sepsis_summary("icu-3")["no_data_since"] is None
    assert again.sepsis_summary("icu-3")["last_data_at"] is None
    again.journal.close()


def test_the_time_is_still_kept_over_a_restart_of_this_release(
    tmp_path: Path, sepsis_fit: tuple, clock: list[datetime]
) -> None:
    model, preprocessing, _ = sepsis_fit
    state = tmp_path / "ward-state.sqlite"
    _first_row_at_0830(model, preprocessing, state, clock)
    clock[0] = datetime(2026, 12, 7, 11, 45, tzinfo=UTC)
    again = restarted_sepsis_ward(model, preprocessing, state)
    assert again.sepsis_summary("icu-3")["last_data_at"] == "2026-12-07T08:30:00+00:00"
    assert again.sepsis_summary("icu-3")["no_data_since"] == "2026-12-07T08:30:00+00:00"
    again.journal.close()


def test_a_file_that_kept_the_time_without_the_hour_is_read_and_written(
    tmp_path: Path, sepsis_fit: tuple, clock: list[datetime]
) -> None:
    model, preprocessing, _ = sepsis_fit
    state = tmp_path / "ward-state.sqlite"
    _first_row_at_0830(model, preprocessing, state, clock)
    with sqlite3.connect(state) as db:  # the table as a file made before the hour was kept
        db.execute("DROP TABLE sepsis_row_at")
        db.execute("CREATE TABLE sepsis_row_at (patient_id TEXT PRIMARY KEY, "
                   "last_row_at TEXT NOT NULL)")  # fmt: skip
        db.execute("INSERT INTO sepsis_row_at VALUES ('icu-3', '2026-12-07T08:30:00+00:00')")
    db.close()
    clock[0] = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    again = restarted_sepsis_ward(model, preprocessing, state)
    assert again.sepsis_summary("icu-3")["last_data_at"] == "2026-12-07T08:30:00+00:00"
    again.add_hour("icu-3", {"ICULOS": 2, "HR": 82.0})  # 09:00, kept with its hour
    again.journal.close()
    with sqlite3.connect(state) as db:
        assert db.execute("SELECT * FROM sepsis_row_at").fetchall() == [
            ("icu-3", "2026-12-07T09:00:00+00:00", 2)
        ]
    db.close()
