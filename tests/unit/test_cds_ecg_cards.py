"""The ECG cards of the CDS Hooks service (pipelines.cds_ecg_cards) say whether their alarm goes on or when it ended,
and a pause that a heartbeat ended is no longer critical."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import wfdb
from monitor_kit import untrained_monitor

from pipelines.cds_hooks import DISCHARGE_NOTE, DISCHARGE_NOTE_OVER, ecg_cards
from vitalgru.scoring.ward import Ward


@pytest.fixture(scope="module")
def lead_off(mitdb_dir: Path) -> np.ndarray:
    rec = wfdb.rdrecord(str(mitdb_dir / "100"), sampto=60 * 360)
    x = rec.p_signal[:, rec.sig_name.index("MLII")].astype(np.float64)
    x[40 * 360 : 46 * 360] = 0.0  # the lead off (flat) for 6 s: a pause and a poor signal
    return x


def _pause_card(ward: Ward, discharge: bool = False) -> dict | None:
    cards = ecg_cards(ward.ecg_summary("bed-5"), live=set(ward.alarms_in_progress()),
                      log_id=ward.log_id, discharge=discharge)  # fmt: skip
    return next((c for c in cards if c["summary"].startswith("ECG alarm: Pause at ")), None)


def test_a_pause_card_says_it_goes_on_then_when_a_heartbeat_ended_it(lead_off: np.ndarray) -> None:
    ward = Ward(untrained_monitor(), escalate_after_s=3600)
    ward.admit_ecg("bed-5", 360.0)
    going = None
    for k in range(0, lead_off.size, 360):
        ward.add_ecg("bed-5", lead_off[k : k + 360].tolist())
        ward.tick()
        kinds = {e["kind"] for e in ward.events()["events"]}
        if going is None and "pause" in kinds and "beats_resumed" not in kinds:
            going, leaving = _pause_card(ward), _pause_card(ward, discharge=True)
    (pause,) = [e for e in ward.events()["events"] if e["kind"] == "pause"]
    (beats,) = [e for e in ward.events()["events"] if e["kind"] == "beats_resumed"]
    # while no heartbeat has come: critical, and said to go on since its onset
    assert going is not None and going["indicator"] == "critical"
    assert f"**Going on** since {pause.get('onset_at') or pause['received_at']}." in going["detail"]
    assert "ended" not in going["summary"]
    assert leaving["detail"].startswith(DISCHARGE_NOTE)
    # a heartbeat ended it: the same card (no one acknowledged it) says so, and when; not
    # critical any more (before: critical, and not a word of its end)
    ended = _pause_card(ward)
    assert ended is not None and ended["uuid"] == going["uuid"]
    assert ended["indicator"] == "warning"
    # its onset and its end on one clock, the stream's
    assert ended["summary"] == f"ECG alarm: Pause at {pause['onset_at']}, ended {beats['ended_at']}"
    said = beats["message"].rstrip(".")
    assert f"**Ended** at {beats['ended_at']}: {said}." in ended["detail"]
    assert "Going on" not in ended["detail"]
    at_discharge = _pause_card(ward, discharge=True)
    assert at_discharge["detail"].startswith(DISCHARGE_NOTE_OVER)
    assert not at_discharge["detail"].startswith(DISCHARGE_NOTE)


def test_each_state_is_said_and_an_alarm_without_one_reads_as_before() -> None:
    run = {"seq": 3, "kind": "ventricular_run", "received_at": "2026-12-07T12:46:00+00:00",
           "message": "ventricular run of 4 beats", "state": "momentary"}  # fmt: skip
    gone = {
        "seq": 2,
        "kind": "pause",
        "received_at": "2026-12-07T12:45:00+00:00",
        "message": "pause",
        "state": "ended",
    }  # its end no longer in the log
    bare = {"seq": 1, "kind": "pause", "received_at": "2026-12-07T12:44:00+00:00",
            "message": "pause"}  # fmt: skip
    cards = ecg_cards({"alarms": [bare, gone, run]}, log_id="log", discharge=True)
    assert [c["indicator"] for c in cards] == ["critical", "warning", "critical"]
    assert "Momentary" in cards[0]["detail"] and cards[0]["detail"].startswith(DISCHARGE_NOTE_OVER)
    assert cards[1]["summary"].endswith(", ended")
    assert "no longer in the gateway's event log" in cards[1]["detail"]
    assert cards[2]["detail"] == f"{DISCHARGE_NOTE}\n\npause\n\n**Not acknowledged** yet."
