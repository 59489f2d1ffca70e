"""An ECG alarm going on when the gateway restarts stays in the bed's alarm list, going on:
the ward page's "still going on" note, the patient's page and the CDS cards read it there
(it was only in the event log, and the list held the restart's notice alone)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import wfdb
from monitor_kit import untrained_monitor

from pipelines.cds_ecg_cards import ecg_alarm_cards
from vitalgru.reports.ward import ecg_patient_page_html, ward_page_html
from vitalgru.scoring.ward import Ward
from vitalgru.scoring.ward_journal import WardJournal

FS = 360


def _lead_off(mitdb_dir: Path, start_s: int, end_s: int | None) -> np.ndarray:
    """90 s of record 100's MLII with the lead off (flat) from ``start_s`` to ``end_s``
    (None: to the end)."""
    rec = wfdb.rdrecord(str(mitdb_dir / "100"), sampto=90 * FS)
    x = rec.p_signal[:, rec.sig_name.index("MLII")].astype(np.float64)
    x[start_s * FS : None if end_s is None else end_s * FS] = 0.0
    return x


def _restarted(state: Path) -> Ward:
    """An ECG ward restarted on the state file ``state``."""
    again = Ward(untrained_monitor(), journal=WardJournal(state))
    again.restore(again.journal.load())
    return again


def test_a_pause_going_on_at_a_restart_is_still_listed_going_on(
    mitdb_dir: Path, tmp_path: Path
) -> None:
    x = _lead_off(mitdb_dir, 40, 70)  # lead off (flat) from 40 to 70 s: a pause and poor signal
    state = tmp_path / "w.sqlite"
    ward = Ward(untrained_monitor(), journal=WardJournal(state))
    ward.admit_ecg("bed-5", FS)
    k = 0
    while not any(e["kind"] == "poor_signal" for e in ward.events()["events"]):
        ward.add_ecg("bed-5", x[k : k + FS].tolist())
        ward.tick()
        k += FS
    (pause,) = [e["seq"] for e in ward.events()["events"] if e["kind"] == "pause"]
    (poor,) = [e["seq"] for e in ward.events()["events"] if e["kind"] == "poor_signal"]
    ward.close()
    again = _restarted(state)
    summary = again.ecg_summary("bed-5")
    shown = {a["seq"]: a for a in summary["alarms"]}
    assert [a["kind"] for a in summary["alarms"]] == ["pause", "poor_signal", "monitor_restarted"]
    for seq in (pause, poor):
        assert shown[seq]["state"] == "going_on" and shown[seq]["before_restart"] is True
    # the ward page says the pause still goes on behind the newer alarm
    (ecg,), _ = again.summaries()
    assert "<span class=hi>still going on</span>: Pause since" in ward_page_html([ecg], [])
    # the patient's page lists it going on, and marks no onset of it on the new stream's trend
    page = ecg_patient_page_html(summary, [], again.ecg_trend("bed-5"))
    assert page.count("<span class=hi>going on</span>") == 2
    assert ">P</text>" not in page
    # a CDS card for the pause, going on (critical); poor signal too, still in progress
    cards = ecg_alarm_cards(summary, None, set(again.alarms_in_progress()), {"label": "x"},
                            log_id=again.log_id)  # fmt: skip
    (card,) = [c for c in cards if c["summary"].startswith("ECG alarm: Pause")]
    assert card["indicator"] == "critical" and "**Going on** since" in card["detail"]
    # acknowledged after the restart: the list shows it (it is the log's own event)
    again.acknowledge(pause, "nurse")
    (acked,) = [a for a in again.ecg_summary("bed-5")["alarms"] if a["seq"] == pause]
    assert acked["acknowledged"]["by"] == "nurse"
    # the lead back on: the first beats end both, and the list says so
    for j in range(k, 90 * FS, FS):
        again.add_ecg("bed-5", x[j : j + FS].tolist())
        again.tick()
    states = {a["seq"]: a["state"] for a in again.ecg_summary("bed-5")["alarms"]}
    assert states[pause] == states[poor] == "ended"
    again.close()


def test_the_stays_alarms_that_ended_before_a_restart_are_still_listed(
    mitdb_dir: Path, tmp_path: Path
) -> None:
    # only alarms going on were taken up: a pause that had ended a minute before the restart
    # (or a ventricular run, which is momentary) vanished from the bed's list, the ward page's
    # count and the patient's page, though nothing had happened to the patient
    x = _lead_off(mitdb_dir, 40, 55)  # lead off from 40 to 55 s, then back
    state = tmp_path / "w.sqlite"
    ward = Ward(untrained_monitor(), journal=WardJournal(state))
    ward.admit_ecg("bed-6", FS)
    for k in range(0, 90 * FS, FS):
        ward.add_ecg("bed-6", x[k : k + FS].tolist())
        ward.tick()
    before = {a["seq"]: a["state"] for a in ward.ecg_summary("bed-6")["alarms"]}
    assert {"pause", "poor_signal"} <= {a["kind"] for a in ward.ecg_summary("bed-6")["alarms"]}
    assert set(before.values()) == {"ended"}
    ward.close()
    again = _restarted(state)
    alarms = again.ecg_summary("bed-6")["alarms"]
    assert {a["seq"]: a["state"] for a in alarms[:-1]} == before  # ended, as before
    assert all(a["before_restart"] for a in alarms[:-1])
    assert alarms[-1]["kind"] == "monitor_restarted"
    (ecg,), _ = again.summaries()
    n = len(before)  # the stay's count, none acknowledged, as before the restart
    assert f"<td class=n>{n} <span class=hi>({n} not acknowledged)</span></td>" in ward_page_html(
        [ecg], []
    )
    again.close()
    # a second restart keeps the first one's notice too, and nothing twice
    third = _restarted(state)
    kinds = [a["kind"] for a in third.ecg_summary("bed-6")["alarms"]]
    assert kinds.count("monitor_restarted") == 2 and len(kinds) == len(before) + 2
    seqs = [a["seq"] for a in third.ecg_summary("bed-6")["alarms"]]
    assert len(set(seqs)) == len(seqs)
    third.close()


def test_an_alarm_going_on_is_taken_up_whatever_came_after_it(
    mitdb_dir: Path, tmp_path: Path
) -> None:
    # the bed's list keeps 100 alarms: taking up the whole stay's in order pushed a pause
    # still going on out of it after 99 newer ones (the pages and cards lost it)
    x = _lead_off(mitdb_dir, 40, None)  # lead off from 40 s on: a pause going on
    state = tmp_path / "w.sqlite"
    ward = Ward(untrained_monitor(), journal=WardJournal(state))
    ward.admit_ecg("bed-7", FS)
    k = 0
    while not any(e["kind"] == "pause" for e in ward.events()["events"]):
        ward.add_ecg("bed-7", x[k : k + FS].tolist())
        ward.tick()
        k += FS
    (pause,) = [e["seq"] for e in ward.events()["events"] if e["kind"] == "pause"]
    for i in range(120):  # a busy stay: momentary alarms logged after it
        ward._event({"source": "ecg", "patient_id": "bed-7", "kind": "ventricular_run",
                     "message": f"run {i}"})  # fmt: skip
    ward.close()
    again = _restarted(state)
    alarms = again.ecg_summary("bed-7")["alarms"]
    assert len(alarms) == 100 and alarms[-1]["kind"] == "monitor_restarted"
    (taken,) = [a for a in alarms if a["seq"] == pause]
    assert taken["state"] == "going_on" and taken["before_restart"]
    assert alarms[-2]["message"] == "run 119"  # the newest kept beside it
    again.close()
