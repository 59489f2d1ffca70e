"""An ECG feed that sends at another rate than it was admitted at (a device set to 360 Hz
on a bed admitted at 250): every heart rate and interval the monitor computes is off by
that ratio, and nothing in the samples says so. The ward measures the rate each feed sends
at against the wall clock and raises ``feed_rate``, a technical alarm, until it matches.

The measuring window and the feed timeout are shortened here (under a second, not minutes);
the feeds send on the wall clock, as a bedside device does."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from monitor_kit import untrained_monitor

from vitalgru.scoring import ward_ecg, ward_ecg_bed
from vitalgru.scoring.ward import Ward
from vitalgru.scoring.ward_ecg_bed import EcgBed, off_rate
from vitalgru.scoring.ward_journal import WardJournal


@pytest.fixture(autouse=True)
def short_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ward_ecg_bed, "RATE_MIN_SPAN_S", 0.4)
    monkeypatch.setattr(ward_ecg, "RATE_WINDOW_S", 1.0)


#: The feed timeout of these wards (s): a pause this long starts the measure afresh, and the
#: rate tests wait for arrivals spanning this much more than the least span.
TIMEOUT_S = 0.3


def _send(ward: Ward, rates: dict[str, float], seconds: float, sent: dict[str, int]) -> None:
    """Each patient's feed sends ``rates[pid]`` samples a second (its index kept in
    ``sent``) for ``seconds`` of wall time, in chunks as they fall due, a tick between."""
    t0 = time.monotonic()
    base = dict(sent)
    while (now := time.monotonic() - t0) < seconds:
        for pid, hz in rates.items():
            due = base[pid] + int(now * hz)
            if due > sent[pid]:
                ward.add_ecg(pid, np.zeros(due - sent[pid]).tolist(), sent[pid])
                sent[pid] = due
        ward.tick()
        time.sleep(0.02)


def _kinds(ward: Ward, pid: str) -> list[dict]:
    return [e for e in ward.events()["events"] if e.get("patient_id") == pid
            and (e["kind"] == "feed_rate" or e.get("reason") == "rate_matches")]  # fmt: skip


def test_a_feed_sending_at_another_rate_raises_feed_rate_until_it_matches() -> None:
    ward = Ward(untrained_monitor(), feed_rate_tolerance=0.15, feed_timeout_s=TIMEOUT_S)
    ward.admit_ecg("right", 360.0)
    ward.admit_ecg("wrong", 250.0)  # the device sends 500 samples a second
    sent = {"right": 0, "wrong": 0}
    _send(ward, {"right": 360.0, "wrong": 500.0}, 1.5, sent)
    assert _kinds(ward, "right") == []
    (alarm,) = _kinds(ward, "wrong")
    assert alarm["sent_hz"] == pytest.approx(500, rel=0.05)
    assert "admitted at 250 Hz:" in alarm["message"]  # nothing missing: no word of the index
    assert alarm["seq"] in ward.alarms_in_progress()
    assert ward.telemetry()["feeds_off_rate"] == 1
    assert ward.ecg_summary("right")["sent_hz"] == pytest.approx(360, rel=0.05)
    # the device is set to 250 Hz: once the window holds only that, the alarm ends, once
    _send(ward, {"right": 360.0, "wrong": 250.0}, 2.0, sent)
    alarm, ended = _kinds(ward, "wrong")
    assert ended["kind"] == "alarm_ended" and ended["ends"] == alarm["seq"]
    assert alarm["seq"] not in ward.alarms_in_progress()
    assert ward.telemetry()["feeds_off_rate"] == 0
    ward.discharge_ecg("wrong")
    assert len(_kinds(ward, "wrong")) == 2  # nothing left open to end at the discharge


def test_an_index_that_counts_milliseconds_is_named_as_the_likely_cause() -> None:
    # a device at its admitted 250 Hz whose chunks' index counts milliseconds: every chunk
    # seems to follow a break of three times its length
    ward = Ward(untrained_monitor(), feed_rate_tolerance=0.15, feed_timeout_s=TIMEOUT_S)
    ward.admit_ecg("p", 250.0)
    t0, sent = time.monotonic(), 0
    while (now := time.monotonic() - t0) < 1.5:
        due = int(now * 250)
        if due > sent:
            ward.add_ecg("p", np.zeros(due - sent).tolist(), 4 * sent)
            sent = due
        ward.tick()
        time.sleep(0.02)
    (alarm,) = _kinds(ward, "p")
    assert alarm["sent_hz"] == pytest.approx(1000, rel=0.1)
    assert "(75% of them never came: does its index count samples?)" in alarm["message"]


def test_a_feed_that_stopped_is_measured_from_when_it_came_back() -> None:
    # without an index, an outage is samples not sent: counted over the outage, a feed at
    # its rate would read slow
    ward = Ward(untrained_monitor(), feed_rate_tolerance=0.15, feed_timeout_s=0.2)
    ward.admit_ecg("p", 360.0)
    t0 = time.monotonic()
    sent = {"p": 0}
    _send(ward, {"p": 360.0}, 0.5, sent)
    time.sleep(0.5)  # the feed stops, and is lost
    ward.tick()
    _send(ward, {"p": 360.0}, 1.0, sent)
    assert sent["p"] / (time.monotonic() - t0) < 0.8 * 360  # over the whole time: slow
    assert _kinds(ward, "p") == []
    assert ward.ecg_summary("p")["sent_hz"] == pytest.approx(360, rel=0.05)


def test_the_rate_is_not_checked_unless_the_ward_is_told_to() -> None:
    # a replay or a benchmark feeds a ward faster than real time
    ward = Ward(untrained_monitor())
    ward.admit_ecg("p", 250.0)
    _send(ward, {"p": 360.0}, 0.8, {"p": 0})
    assert _kinds(ward, "p") == [] and ward.telemetry()["feeds_off_rate"] == 0
    for bad in (0, 1, -0.1, float("nan")):
        with pytest.raises(ValueError, match="feed_rate_tolerance"):
            Ward(untrained_monitor(), feed_rate_tolerance=bad)


def test_a_restarted_ward_keeps_the_alarm_open_until_the_rate_matches(tmp_path: Path) -> None:
    state = tmp_path / "w.sqlite"
    ward = Ward(untrained_monitor(), feed_rate_tolerance=0.15, feed_timeout_s=TIMEOUT_S,
                journal=WardJournal(state))  # fmt: skip
    ward.admit_ecg("p", 250.0)
    _send(ward, {"p": 500.0}, 1.5, {"p": 0})
    (alarm,) = _kinds(ward, "p")
    ward.close()
    again = Ward(untrained_monitor(), feed_rate_tolerance=0.15, feed_timeout_s=TIMEOUT_S,
                 journal=WardJournal(state))  # fmt: skip
    again.restore(again.journal.load())
    assert alarm["seq"] in again.alarms_in_progress()  # not raised again, not forgotten
    _send(again, {"p": 250.0}, 1.5, {"p": 0})
    assert [e["kind"] for e in _kinds(again, "p")] == ["feed_rate", "alarm_ended"]
    assert again.alarms_in_progress() == []
    again.close()


def test_the_measure_and_its_limits_on_a_clock_of_their_own() -> None:
    now = datetime.now(UTC)
    bed = EcgBed(250.0, now, now)
    for t in range(1, 91):  # 1 s chunks at 250 Hz from 1 s to 90 s
        bed.arrived(250, float(t), 10.0, 120.0)
    assert bed.sent_rate(90.0) is None and bed.rate_tests(80.0, 10.0) is None  # too few
    bed.arrived(250, 91.0, 10.0, 120.0)
    assert bed.sent_rate(90.0) == 250.0 and bed.rate_tests(80.0, 10.0) == (250.0, 250.0)
    for t in range(92, 400):
        bed.arrived(250, float(t), 10.0, 120.0)
    assert bed.arrivals[-1][0] - bed.arrivals[0][0] == 120.0  # the window, no more
    # a 20 s stall (the feed timeout passed: afresh), its backlog at once, then on time
    for k in range(20):
        bed.arrived(250, 420.0 + 0.001 * k, 10.0, 120.0)
    assert len(bed.arrivals) == 20  # the 20 s before it forgotten
    for t in range(421, 451):
        bed.arrived(250, float(t), 10.0, 120.0)
    assert bed.sent_rate(20.0) > 1.5 * 250  # counted from the backlog: reads fast
    fast, slow = bed.rate_tests(20.0, 10.0) or (0.0, 0.0)
    assert fast == pytest.approx(250.0, rel=0.01) and slow > fast  # the tests are not swayed
    assert not off_rate(fast, slow, 250.0, 0.15, False, 10.0 / bed.arrival_span_s())
    # raised beyond 15 % (and beyond what a delay could explain), ended within 7.5 %
    for ratio, already, doubt, off in (
        (1.16, False, 0.0, True),
        (1.14, False, 0.0, False),
        (1 / 1.16, False, 0.0, True),
        (1.16, False, 0.2, False),  # a delay of a fifth of the span could read 20 % fast
        (1.25, False, 0.2, True),
        (1 / 1.2, False, 0.2, False),  # or as slow (1/1.2 = 1 - 0.17 > 1 - 0.2)
        (1 / 1.3, False, 0.2, True),
        (1.1, True, 0.0, True),
        (1.07, True, 0.0, False),
        (1 / 1.1, True, 0.0, True),
    ):
        rate = 250 * ratio
        assert off_rate(rate, rate, 250, 0.15, already, doubt) is off, (ratio, already, doubt)
    assert off_rate(0.0, 0.0, 250, 0.15, False)
