"""A restarted ward takes its sepsis patients up in time linear in what was stored: the
inputs of the stored hours are built once for all, not again over the whole stay at every
hour (which cost the stay's length squared), and what is restored is, to the bit, what
scoring them again hour by hour gave."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import torch
from monitor_kit import hovering

import vitalgru.scoring.early_warning as early_warning
from vitalgru.scoring import EarlyWarningMonitor
from vitalgru.scoring.ward import Ward
from vitalgru.scoring.ward_journal import WardJournal

ADMITTED = "2026-01-01T00:00:00+00:00"


def _hour_by_hour(
    self: EarlyWarningMonitor, rounds: list[dict[str, dict]]
) -> list[tuple[list, dict]]:
    """How the restore scored the stored hours before: a push per round, and a round push
    refused pushed again one patient at a time."""
    out = []
    for rows in rounds:
        try:
            out.append((self.push(rows), {}))
        except ValueError:
            risks, bad = [], {}
            for pid, row in rows.items():
                try:
                    risks += self.push({pid: row})
                except ValueError as e:
                    bad[pid] = e
            out.append((risks, bad))
    return out


def _stored(path: Path, rows: list[dict]) -> None:
    """Stays of different lengths, with skipped hours and two hours edited by hand (and
    enough patients that how they are batched could change a risk's last bit)."""
    j = WardJournal(path)
    n = len(rows)
    stays: dict[str, list[tuple[int, dict]]] = {
        "long": [(r["ICULOS"], r) for k, r in enumerate(rows) if not 10 <= k < 13],
        "short": [(r["ICULOS"], r) for r in rows[:5]],
        "every-third": [(r["ICULOS"], r) for r in rows[1::3]],
        "edited": [(r["ICULOS"], r) for r in rows[: n // 2]],
        **{f"more-{k}": [(r["ICULOS"], r) for r in rows[k : n // 2]] for k in range(1, 7)},
    }
    stays["edited"][4] = (stays["edited"][4][0], {**stays["edited"][4][1], "HR": "n/a"})
    stays["edited"][9] = (stays["edited"][9][0], {**stays["edited"][9][1], "ICULOS": 1})
    with j.together():
        for pid, hours in stays.items():
            j.admit_sepsis(pid, ADMITTED)
            for h, row in hours:
                j.add_hour(pid, h, row)
    j.close()


def _untimed(event: dict | None) -> dict | None:
    """An event less the second it was logged at (two restores may straddle one)."""
    return None if event is None else {k: v for k, v in event.items() if k != "received_at"}


def _restored(path: Path, model: Any, preprocessing: dict) -> tuple[Ward, dict[str, Any]]:
    ward = Ward(
        sepsis=EarlyWarningMonitor(model, preprocessing),
        shadow_sepsis=EarlyWarningMonitor(model, {**preprocessing, "threshold": 0.5}),
        journal=WardJournal(path),
    )
    took = ward.restore(ward.journal.load())
    shadow = ward._shadow_sepsis
    kept = {
        "took": took,
        "beds": {
            pid: replace(bed, onset=_untimed(bed.onset), paged=_untimed(bed.paged))
            for pid, bed in ward._sepsis_beds.items()
        },
        "events": [_untimed(e) for e in ward.events(limit=10_000)["events"]],
        "damaged": [(d.patient_id, d.message) for d in ward.state_damage],
        "shadow": (shadow.report(), shadow._moments.tolist(), shadow._in_alarm),
        "stays": {
            pid: (st.h.numpy().tobytes(), st.grid_rows, st.values.tobytes())
            for m in (ward.sepsis, shadow.monitor)
            for pid, st in m._stays.items()
        },
    }
    return ward, kept


def test_the_restored_state_is_that_of_scoring_the_hours_again_one_by_one(
    sepsis_fit: tuple[Any, dict, list[dict]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.set_num_threads(1)
    # one clock for both restores: a bed taken up from a file without the admission's
    # taking counts "nothing came yet" from the restart
    restart = datetime(2026, 1, 2, tzinfo=UTC)
    monkeypatch.setattr("vitalgru.scoring.ward_sepsis_hours._now", lambda: restart)
    preprocessing, rows = hovering(sepsis_fit)
    model = sepsis_fit[0]
    _stored(tmp_path / "now.sqlite", rows)
    _stored(tmp_path / "before.sqlite", rows)
    ward, now = _restored(tmp_path / "now.sqlite", model, preprocessing)
    monkeypatch.setattr(EarlyWarningMonitor, "push_rounds", _hour_by_hour)
    old, before = _restored(tmp_path / "before.sqlite", model, preprocessing)
    # the stays cover what the restore must carry: alarms, episodes, skipped and refused hours
    assert now["took"]["hours"] == sum(len(b.risks) for b in now["beds"].values())
    assert any(b.episodes >= 2 for b in now["beds"].values())
    assert any(b.in_alarm for b in now["beds"].values())
    assert [m.split(": ")[1].split(" (")[0] for _, m in now["damaged"]] == [
        "ICU hour 5",
        "ICU hour 10",
    ]
    assert now["shadow"][0]["hours"] == now["took"]["hours"]
    assert now == before
    # and the next hours score alike
    nxt = {**rows[-1], "ICULOS": rows[-1]["ICULOS"] + 2}
    assert ward.add_hour("long", nxt) == old.add_hour("long", nxt)
    ward.close()
    old.close()


def test_the_stored_hours_inputs_are_built_once_not_at_every_hour(
    sepsis_fit: tuple[Any, dict, list[dict]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, preprocessing, rows = sepsis_fit
    hours = 150
    j = WardJournal(tmp_path / "w.sqlite")
    with j.together():
        for pid in ("a", "b", "c"):
            j.admit_sepsis(pid, ADMITTED)
            for h in range(1, hours + 1):
                j.add_hour(pid, h, {**rows[(h - 1) % len(rows)], "ICULOS": h})
    j.close()
    built = []
    real = early_warning.gru_d_arrays

    def counted(cohort: Any, *args: Any) -> Any:
        built.append(len(cohort.frame))
        return real(cohort, *args)

    monkeypatch.setattr(early_warning, "gru_d_arrays", counted)
    ward = Ward(sepsis=EarlyWarningMonitor(model, preprocessing), journal=WardJournal(j.path))
    assert ward.restore(ward.journal.load())["hours"] == 3 * hours
    # each stored hour's inputs built once (hour by hour they were built 3 * 150 * 151 / 2
    # times: each stay's every hour so far, at every hour)
    assert sum(built) == 3 * hours and len(built) == 1
    ward.close()


def test_rounds_of_patients_not_monitored_are_refused_before_anything_is_scored(
    sepsis_fit: tuple[Any, dict, list[dict]],
) -> None:
    model, preprocessing, rows = sepsis_fit
    mon = EarlyWarningMonitor(model, preprocessing)
    mon.admit("a")
    with pytest.raises(KeyError, match="not being monitored"):
        mon.push_rounds([{"a": rows[0]}, {"a": rows[1], "b": rows[1]}])
    assert mon.stay_values("a")["hour"].size == 0
    assert mon.push_rounds([]) == []
