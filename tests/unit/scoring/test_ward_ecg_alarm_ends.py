"""Each ECG alarm of a condition that lasts gets its own end, in order, even when one chunk
holds two of a kind; its end is on the clock of its onset; and a notice (the monitor
restarted) is not called an alarm."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import wfdb
from monitor_kit import untrained_monitor

from pipelines.cds_ecg_cards import ecg_alarm_cards
from vitalgru.reports.ward import ecg_patient_page_html, ward_page_html
from vitalgru.scoring.ward import Ward
from vitalgru.scoring.ward_ecg_alarms import alarm_state

FS = 360


def _two_gaps(mitdb_dir: Path) -> Ward:
    """MIT-BIH 119: 20 s, then one 52-s chunk with two 6-s gaps 25 s apart, sent far faster
    than real time, and one tick."""
    rec = wfdb.rdrecord(str(mitdb_dir / "119"), sampto=72 * FS)
    x = rec.p_signal[:, rec.sig_name.index("MLII")].copy()
    ward = Ward(untrained_monitor())
    ward.admit_ecg("bed-1", FS)
    ward.add_ecg("bed-1", x[: 20 * FS].tolist())
    ward.tick()
    seg = x[20 * FS :].copy()
    seg[10 * FS : 16 * FS] = np.nan
    seg[41 * FS : 47 * FS] = np.nan
    ward.add_ecg("bed-1", [None if np.isnan(v) else float(v) for v in seg])
    ward.tick()
    return ward


def test_two_alarms_of_a_kind_in_one_chunk_each_get_their_end_in_order(
    mitdb_dir: Path,
) -> None:
    # the bed kept one number per kind: the first pause and poor signal of the chunk were
    # never ended in the log, and the pages said their end "is no longer in the event log"
    ward = _two_gaps(mitdb_dir)
    events = ward.events()["events"]
    raised = [e for e in events if e["kind"] in ("pause", "poor_signal")]
    assert [e["kind"] for e in raised].count("pause") == 2, [e["kind"] for e in events]
    assert [e["kind"] for e in raised].count("poor_signal") == 2
    ends = {e["ends"]: e for e in events if e.get("ends") is not None}
    for kind, end_kind in (("pause", "beats_resumed"), ("poor_signal", "signal_restored")):
        first, second = [e for e in raised if e["kind"] == kind]
        assert ends[first["seq"]]["kind"] == end_kind
        # ended before the second began, in the log's order and on the onset's clock
        assert first["seq"] < ends[first["seq"]]["seq"] < second["seq"]
        assert first["onset_at"] <= ends[first["seq"]]["ended_at"] <= second["onset_at"]
    summary = ward.ecg_summary("bed-1")
    page = ecg_patient_page_html(summary, [], ward.ecg_trend("bed-1"))
    assert "no longer in the event log" not in page
    cards = ecg_alarm_cards(summary, None, set(ward.alarms_in_progress()), {"label": "x"},
                            log_id="L")  # fmt: skip
    assert cards and not any("no longer in" in c["detail"] for c in cards)


def test_an_alarms_end_is_never_printed_before_its_onset(mitdb_dir: Path) -> None:
    # the onset was stream time and the end the log's wall time: a feed sent faster than
    # real time read "Poor signal at 08:45:41 (ended 08:45:05 ...)"
    ward = _two_gaps(mitdb_dir)
    summary = ward.ecg_summary("bed-1")
    ended = [a for a in summary["alarms"] if a.get("state") == "ended"]
    assert ended
    for a in ended:
        assert a["onset_at"] <= a["ended"]["at"], a
    page = ecg_patient_page_html(summary, [], ward.ecg_trend("bed-1"))
    rows = re.findall(r"<tr><td>([0-9: -]+) UTC</td><td>[^<]*</td><td>[^<]*</td>"
                      r"<td>ended ([0-9: -]+) UTC", page)  # fmt: skip
    assert rows and all(onset <= end for onset, end in rows), rows


def test_a_notice_is_not_called_an_alarm() -> None:
    restarted: dict[str, Any] = {"seq": 5, "kind": "monitor_restarted", "message": "restarted"}
    run = {"seq": 6, "kind": "ventricular_run", "message": "run"}
    assert alarm_state(restarted, set(), {})["state"] == "notice"
    assert alarm_state(run, set(), {})["state"] == "momentary"
    summary = {"patient_id": "bed-1", "alarms": [alarm_state(restarted, set(), {})],
               "hr_bpm": None, "rejected_pct": None, "counts": {"V": 0, "S": 0}, "beats": 0,
               "received_s": 0.0}  # fmt: skip
    page = ward_page_html([summary], [])
    assert "<td>none</td>" in page and "(momentary" not in page and "restarted" not in page
