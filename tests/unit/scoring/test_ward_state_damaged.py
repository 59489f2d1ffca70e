"""A ward's state file damaged in generated ways (values of any type in any column, bytes
edited anywhere): the file is refused with a ValueError only when it is not a ward state at
all; otherwise what can be read is taken up, nothing raises, and every patient the file
held is either monitored again or named in a ``state_damaged`` event."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from damage_kit import EDIT, FUZZ, JSON
from hypothesis import assume, given
from hypothesis import strategies as st
from monitor_kit import untrained_monitor

from vitalgru.scoring import EarlyWarningMonitor
from vitalgru.scoring.ward import Ward
from vitalgru.scoring.ward_journal import WardJournal

#: The columns a damaged value may land in (table, column), keys included.
CELLS = [
    ("ecg_beds", "patient_id"), ("ecg_beds", "fs"), ("ecg_beds", "admitted_at"),
    ("ecg_beds", "received_s"), ("ecg_beds", "counts"), ("ecg_beds", "next_index"),
    ("ecg_beds", "next_at"), ("ecg_memory", "memory"),
    ("ecg_memory", "saved_at"), ("sepsis_beds", "admitted_at"), ("sepsis_static", "static"),
    ("sepsis_hours", "hour"), ("sepsis_hours", "row"), ("sepsis_live", "last_observation"),
    ("sepsis_taken", "taken_at"), ("sepsis_row_at", "last_row_at"),
    ("sepsis_pending", "hour"), ("sepsis_pending", "measurements"), ("events", "event"),
    ("strips", "meta"), ("strips", "samples"), ("meta", "value"),
]  # fmt: skip
#: A value of any SQLite type: JSON text (of any shape), any text, bytes, numbers, NULL.
VALUE = st.one_of(JSON.map(json.dumps), st.text(max_size=12), st.binary(max_size=12),
                  st.integers(-(2**63), 2**63 - 1), st.floats(), st.none())  # fmt: skip


@pytest.fixture(scope="module")
def good_state(
    tmp_path_factory: pytest.TempPathFactory, sepsis_fit: tuple[Any, dict, list[dict]]
) -> Path:
    """A state file of two ECG and two sepsis patients, with events and strips."""
    model, preprocessing, rows = sepsis_fit
    path = tmp_path_factory.mktemp("state") / "ward-state.sqlite"
    ward = Ward(untrained_monitor(), EarlyWarningMonitor(model, preprocessing),
                journal=WardJournal(path))  # fmt: skip
    for pid in ("bed-1", "bed-2"):
        ward.admit_ecg(pid, 360.0)
        ward.add_ecg(pid, [0.0] * 720)  # flat: a poor-signal alarm and its strip in time
    for pid in ("icu-1", "icu-2"):
        ward.admit_sepsis(pid, {"Age": 70})
        for row in rows[:4]:
            ward.add_hour(pid, row)
    for _ in range(3):
        ward.tick()
    ward.close()
    ward.journal.close()
    return path


def _take_up(path: Path, sepsis_fit: tuple[Any, dict, list[dict]]) -> None:
    """Start a ward on ``path`` as the gateway does; what must hold of any damage."""
    model, preprocessing, _ = sepsis_fit
    try:
        journal = WardJournal(path)
    except ValueError as e:  # not a ward state at all: refused, saying which file
        assert str(path) in str(e)
        return
    state = journal.load()  # a file it opened, it reads: what it cannot is left out
    ward = Ward(untrained_monitor(), EarlyWarningMonitor(model, preprocessing), journal=journal)
    ward.restore(state)
    said = {e["patient_id"] for e in ward.events(limit=10_000)["events"]
            if e.get("kind") == "state_damaged"}  # fmt: skip
    monitored = set(ward.patients()["ecg"]) | set(ward.patients()["sepsis"])
    for a in [*state.ecg, *state.sepsis]:
        assert a.patient_id in monitored or a.patient_id in said, a.patient_id
    ward.tick()  # and it runs
    journal.close()


@FUZZ
@given(damage=st.lists(st.tuples(st.sampled_from(CELLS), st.integers(0, 20), VALUE),
                       min_size=1, max_size=4))  # fmt: skip
def test_any_value_anywhere_is_left_out_not_raised(
    good_state: Path,
    tmp_path: Path,
    sepsis_fit: tuple[Any, dict, list[dict]],
    damage: list[tuple[tuple[str, str], int, Any]],
) -> None:
    path = tmp_path / "ward-state.sqlite"
    shutil.copyfile(good_state, path)
    with sqlite3.connect(path) as db:
        for (table, column), row, value in damage:
            try:
                db.execute(f"UPDATE {table} SET {column} = ? WHERE rowid = (SELECT rowid FROM "
                           f"{table} ORDER BY rowid LIMIT 1 OFFSET ?)", (value, row))  # fmt: skip
            except sqlite3.IntegrityError:  # NOT NULL or a key taken: not a damage a disk makes
                assume(False)
    _take_up(path, sepsis_fit)


@FUZZ
@given(edits=st.lists(EDIT, min_size=1, max_size=3))
def test_bytes_edited_anywhere_are_refused_or_left_out(
    good_state: Path,
    tmp_path: Path,
    sepsis_fit: tuple[Any, dict, list[dict]],
    edits: list[tuple[float, int, bytes]],
) -> None:
    path = tmp_path / "ward-state.sqlite"
    data = bytearray(good_state.read_bytes())
    for where, _, new in edits:  # bytes overwritten in place: pages stay where they were
        i = int(where * len(data))
        data[i : i + len(new)] = new[: len(data) - i]
    path.write_bytes(bytes(data))
    _take_up(path, sepsis_fit)


def test_an_event_that_lost_its_fields_is_still_taken_up(
    good_state: Path, tmp_path: Path, sepsis_fit: tuple[Any, dict, list[dict]]
) -> None:
    # a sepsis event still JSON, still its number, but without its patient raised KeyError
    # from the replay
    path = tmp_path / "ward-state.sqlite"
    shutil.copyfile(good_state, path)
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO events VALUES (999, ?)",
                   (json.dumps({"seq": 999, "source": "sepsis", "kind": "sepsis_risk"}),))  # fmt: skip
    _take_up(path, sepsis_fit)
