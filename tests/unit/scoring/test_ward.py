"""A ward behind the gateway: feeds queued from anywhere and pushed in batched ticks give
what the monitor gives alone, and the event log hands every alarm on exactly once."""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import wfdb
from monitor_kit import PREPROCESSING, hovering, untrained_monitor

from pipelines.hl7_alarms import alarm_message
from vitalgru.data.beat_features import RR_FEATURES
from vitalgru.errors import WardClosedError
from vitalgru.models.arrhythmia import ArrhythmiaEnsemble, ArrhythmiaGRU
from vitalgru.reports.fhir_gateway import events_bundle
from vitalgru.reports.ward import ward_page_html
from vitalgru.scoring import ArrhythmiaMonitor, EarlyWarningMonitor, replay
from vitalgru.scoring.arrhythmia import PatientMemory
from vitalgru.scoring.durations import Durations
from vitalgru.scoring.ecg_labels import BeatCall
from vitalgru.scoring.ward import Ward
from vitalgru.scoring.ward_ecg_bed import EcgBed
from vitalgru.scoring.ward_events import INFO_KINDS
from vitalgru.scoring.ward_journal import WardJournal
from vitalgru.scoring.ward_sepsis import within_lockout

SECONDS = 90


@pytest.fixture(scope="module")
def signals(mitdb_dir: Path) -> dict[str, np.ndarray]:
    out = {}
    for r in ("119", "100"):  # V beats in bigeminy; sinus
        rec = wfdb.rdrecord(str(mitdb_dir / r), sampto=SECONDS * 360)
        out[r] = rec.p_signal[:, rec.sig_name.index("MLII")].astype(np.float64)
    # 100's lead off for 6 s (flat): a pause and a poor-signal alarm, whatever the network
    # makes of the beats
    out["100"][40 * 360 : 46 * 360] = 0.0
    return out


class TestEcgWard:
    def test_chunks_queued_and_ticked_give_the_monitors_own_calls(
        self, signals: dict[str, np.ndarray]
    ) -> None:
        alone = replay(
            untrained_monitor(), {p: (x, 360.0) for p, x in signals.items()}, chunk_s=1.0
        )
        ward = Ward(untrained_monitor())
        for pid in signals:
            ward.admit_ecg(pid, 360.0)
        rng = np.random.default_rng(0)
        pos = dict.fromkeys(signals, 0)
        while any(pos[p] < x.size for p, x in signals.items()):
            for p, x in signals.items():  # feeds of uneven chunk sizes, several per tick
                for _ in range(int(rng.integers(1, 4))):
                    n = int(rng.integers(50, 400))
                    ward.add_ecg(p, x[pos[p] : pos[p] + n].tolist())
                    pos[p] = min(pos[p] + n, x.size)
            ward.tick()
        first = ward.events()
        finals = {p: ward.discharge_ecg(p) for p in signals}
        for p in signals:
            want = {c: sum(b.label == c for b in alone.calls[p]) for c in "NSVFQ"}
            assert finals[p]["counts"] == want and finals[p]["beats"] == len(alone.calls[p])
            assert finals[p]["received_s"] == pytest.approx(SECONDS)
            assert [a["kind"] for a in finals[p]["alarms"]] == [a.kind for a in alone.alerts[p]]
        assert 55 < finals["100"]["hr_bpm"] < 95  # record 100: sinus about 75 bpm
        assert finals["119"]["last_beats"][-1]["time_s"] > SECONDS - 3
        # the log: every alarm once, numbered; a poll after the last one gets nothing new
        log = ward.events(0, limit=10_000)
        assert [e["seq"] for e in log["events"]] == list(range(1, len(log["events"]) + 1))
        alarms = [e for e in log["events"] if e["kind"] not in INFO_KINDS]
        assert len(alarms) == sum(len(a) for a in alone.alerts.values()) >= 2
        assert {"pause", "poor_signal"} <= {e["kind"] for e in log["events"]}
        (back,) = [e for e in log["events"] if e["kind"] == "signal_restored"]  # lead on again
        assert back["ends"] == next(e["seq"] for e in alarms if e["kind"] == "poor_signal")
        (beats,) = [e for e in log["events"] if e["kind"] == "beats_resumed"]  # the pause's end
        (pause,) = [e for e in alarms if e["kind"] == "pause"]
        assert beats["ends"] == pause["seq"]
        # what its silence was, for the forwarders and pages (which show the message)
        assert pause["signal_flags"] == "flat" and "asystole or a lead off" in pause["message"]
        assert log["events"][: len(first["events"])] == first["events"]
        assert ward.events(log["last_seq"]) == {"events": [], "last_seq": log["last_seq"],
                                                "dropped": 0}  # fmt: skip
        assert ward.status()["ecg_patients"] == 0 and ward.status()["ticks"] > SECONDS / 2
        # what an operator's monitoring reads: the same beats and events, counted
        t = ward.telemetry()
        want_beats = Counter()
        for f in finals.values():
            want_beats.update(f["counts"])
        assert t["beats"] == {c: n for c, n in want_beats.items() if n}
        assert t["events"] == Counter(("ecg", e["kind"]) for e in log["events"])
        assert t["tick_seconds"]["count"] == ward.ticks
        assert t["tick_seconds"]["buckets"][-1] == (float("inf"), ward.ticks)
        assert t["unacknowledged"] == {"ecg": len(log["events"])} and t["last_seq"] == len(
            log["events"])  # fmt: skip
        assert t["patients"] == {"ecg": 0, "sepsis": 0} and 0 <= t["last_tick_age_s"] < 60

    def test_bad_feeds_are_refused_and_change_nothing(self, signals: dict[str, np.ndarray]) -> None:
        ward = Ward(untrained_monitor(), max_chunk_s=2.0)
        with pytest.raises(KeyError, match="admit them first"):
            ward.add_ecg("a", [0.1, 0.2])
        ward.admit_ecg("a", 360.0)
        with pytest.raises(ValueError, match="already on ECG monitoring"):
            ward.admit_ecg("a", 360.0)
        with pytest.raises(ValueError, match="fs"):
            ward.admit_ecg("b", 0.0)
        for bad in ([[0.1, 0.2]], ["x"]):
            with pytest.raises(ValueError, match="samples must be"):
                ward.add_ecg("a", bad)
        assert ward.add_ecg("a", [0.1, None, 0.2]) == 3  # null: a gap
        assert ward.add_ecg("a", [float("inf"), 0.3]) == 5  # a gap too, 0.3 kept
        with pytest.raises(ValueError, match="more than 2 s of ECG would be queued"):
            ward.add_ecg("a", signals["100"][:720].tolist())
        assert ward.ecg_summary("a")["queued_s"] == pytest.approx(5 / 360, abs=1e-3)
        with pytest.raises(ValueError, match="without a early-warning model"):
            ward.admit_sepsis("a")
        with pytest.raises(ValueError, match="needs an arrhythmia monitor"):
            Ward()

    def test_the_log_says_what_a_slow_poller_lost(self) -> None:
        ward = Ward(untrained_monitor())
        ward._events = type(ward._events)(maxlen=3)  # a small log, to overflow it
        with ward._queue_lock:
            for k in range(5):
                ward._event({"source": "ecg", "kind": "pause", "n": k})
        got = ward.events(0)
        assert [e["seq"] for e in got["events"]] == [3, 4, 5] and got["dropped"] == 2
        assert ward.events(3, limit=1) == {"events": [got["events"][1]], "last_seq": 4,
                                           "dropped": 0}  # fmt: skip
        with pytest.raises(ValueError, match="limit"):
            ward.events(0, limit=0)


def test_a_feed_that_goes_quiet_is_flagged_once_and_its_return_too() -> None:
    ward = Ward(untrained_monitor(), feed_timeout_s=0.05)
    ward.admit_ecg("bed-1", 360.0)
    ward.admit_ecg("bed-2", 360.0)
    ward.add_ecg("bed-1", [0.0] * 360)
    ward.tick()
    assert ward.events()["events"] == []  # both within the timeout
    time.sleep(0.1)
    ward.add_ecg("bed-2", [0.0] * 36)  # bed-2 keeps sending, bed-1 has gone quiet
    ward.tick()
    ward.tick()  # said once, not every tick
    lost = ward.events()["events"]
    assert [(e["patient_id"], e["kind"]) for e in lost] == [("bed-1", "feed_lost")]
    assert "no ECG samples received" in lost[0]["message"]
    assert ward.ecg_summary("bed-1")["alarms"][-1]["kind"] == "feed_lost"
    assert ward.alarms_in_progress() == [lost[0]["seq"]]  # the condition goes on
    ward.add_ecg("bed-1", [0.0] * 36)
    back = ward.events(lost[-1]["seq"])["events"]
    assert [(e["patient_id"], e["kind"]) for e in back] == [("bed-1", "feed_restored")]
    assert back[0]["ends"] == lost[0]["seq"] and ward.alarms_in_progress() == []
    with pytest.raises(ValueError, match="feed_timeout_s"):
        Ward(untrained_monitor(), feed_timeout_s=0)


def test_a_lost_feed_that_is_back_is_not_escalated_and_its_flag_ends() -> None:
    ward = Ward(untrained_monitor(), feed_timeout_s=0.01, escalate_after_s=0.3)
    for pid in ("back", "gone"):
        ward.admit_ecg(pid, 360.0)
    time.sleep(0.03)
    ward.tick()
    lost = {e["patient_id"]: e["seq"] for e in ward.events()["events"]}
    ward.add_ecg("back", [0.0] * 36)  # before anyone acknowledged it
    live = ward.alarms_in_progress()
    time.sleep(0.35)
    ward.tick()
    escalated = [e["escalates"] for e in ward.events()["events"] if e["kind"] == "escalated"]
    assert escalated == [lost["gone"]]  # a technical alarm that cleared pages no one
    flags = events_bundle(ward.events()["events"], log_id=ward.log_id, active=live)["entry"]
    status = [f["resource"]["status"] for f in flags
              if "no ECG samples received" in f["resource"]["code"]["text"]]  # fmt: skip
    assert live == [lost["gone"]] and status == ["inactive", "active"]  # back, gone
    restored = [e for e in ward.events()["events"] if e["kind"] == "feed_restored"]
    assert ward.alarms_ended(lost.values()) == {lost["back"]: restored[0]["received_at"]}


def test_a_closed_ward_refuses_what_it_could_not_keep(
    tmp_path: Path, sepsis_fit: tuple[Any, dict, list[dict]]
) -> None:
    # requests after close() were answered as taken and their writes only counted: lost at
    # the restart
    model, preprocessing, rows = sepsis_fit
    ward = Ward(untrained_monitor(), EarlyWarningMonitor(model, preprocessing),
                journal=WardJournal(tmp_path / "w.sqlite"))  # fmt: skip
    ward.admit_sepsis("icu-1")
    ward.admit_ecg("bed-1", 360.0)
    ward.close()
    for call in (lambda: ward.add_hour("icu-1", rows[0]), lambda: ward.admit_sepsis("icu-2"),
                 lambda: ward.add_ecg("bed-1", [0.0] * 36), lambda: ward.discharge_ecg("bed-1"),
                 lambda: ward.acknowledge(1, "nurse")):  # fmt: skip
        with pytest.raises(WardClosedError, match="stopped"):
            call()
    assert ward.tick()["hours"] == 0 and ward.journal_errors == 0
    ward.close()  # twice: nothing more


def test_a_feed_lost_before_a_restart_is_ended_by_its_first_samples(tmp_path: Path) -> None:
    state = tmp_path / "w.sqlite"
    ward = Ward(untrained_monitor(), feed_timeout_s=0.01, journal=WardJournal(state))
    ward.admit_ecg("bed-1", 360.0)
    ward.admit_ecg("bed-2", 360.0)
    time.sleep(0.03)
    ward.tick()
    ward.add_ecg("bed-2", [0.0] * 36)  # bed-2 is back before the stop, bed-1 is not
    (lost,) = [e["seq"] for e in ward.events()["events"] if e["patient_id"] == "bed-1"]
    ward.close()
    again = Ward(untrained_monitor(), feed_timeout_s=0.01, journal=WardJournal(state))
    again.restore(again.journal.load())
    assert again.alarms_in_progress() == [lost]
    time.sleep(0.03)
    again.tick()  # bed-1 still silent: its alarm is the one already raised, not a new one
    kinds = [(e["patient_id"], e["kind"]) for e in again.events(lost)["events"]]
    assert ("bed-1", "feed_lost") not in kinds and ("bed-2", "feed_lost") in kinds
    again.add_ecg("bed-1", [0.0] * 36)
    (back,) = [e for e in again.events(lost)["events"] if e["kind"] == "feed_restored"
               and e["patient_id"] == "bed-1"]  # fmt: skip
    assert back["ends"] == lost
    again.close()


def test_an_alarm_acknowledged_once_by_someone_stays_acknowledged(tmp_path: Path) -> None:
    journal = WardJournal(tmp_path / "ward.sqlite")
    ward = Ward(untrained_monitor(), feed_timeout_s=0.01, journal=journal)
    for bed in ("bed-1", "bed-2"):
        ward.admit_ecg(bed, 360.0)
    time.sleep(0.05)
    ward.tick()  # both feeds silent: two feed_lost events
    lost = ward.events()["events"]
    assert [e["kind"] for e in lost] == ["feed_lost", "feed_lost"]
    seq = lost[0]["seq"]
    got = ward.acknowledge(seq, "  RN Diaz ", "cable reseated")
    assert (
        got["acknowledged"]["by"] == "RN Diaz" and got["acknowledged"]["note"] == "cable reseated"
    )
    log = ward.events(lost[-1]["seq"])["events"]
    assert [(e["source"], e["kind"], e["acknowledges"]) for e in log] == [
        ("ward", "acknowledged", seq)]  # fmt: skip
    assert "RN Diaz acknowledged event 1 (feed_lost of patient bed-1): cable reseated" == (
        log[0]["message"])  # fmt: skip
    # only the other feed's event still wants someone; the summaries say who saw which
    assert [e["seq"] for e in ward.events(0, unacknowledged=True)["events"]] == [lost[1]["seq"]]
    assert ward.ecg_summary("bed-1")["alarms"][-1]["acknowledged"]["by"] == "RN Diaz"
    assert "acknowledged" not in ward.ecg_summary("bed-2")["alarms"][-1]
    with pytest.raises(ValueError, match="already acknowledged by RN Diaz"):
        ward.acknowledge(seq, "Dr Okafor")
    with pytest.raises(ValueError, match="an acknowledgement itself"):
        ward.acknowledge(log[0]["seq"], "Dr Okafor")
    with pytest.raises(KeyError, match="not in the log"):
        ward.acknowledge(99, "Dr Okafor")
    with pytest.raises(ValueError, match="say who"):
        ward.acknowledge(lost[1]["seq"], "   ")
    # what a poller was handed before is not changed under it
    assert "acknowledged" not in lost[0]
    # and a restarted gateway knows it was seen
    journal.close()
    kept = WardJournal(tmp_path / "ward.sqlite").load()
    assert kept.events[0]["acknowledged"]["by"] == "RN Diaz" and kept.last_seq == log[0]["seq"]


def test_a_shadow_model_sees_what_the_champion_sees_and_says_nothing(
    signals: dict[str, np.ndarray],
) -> None:
    alone = Ward(untrained_monitor())
    twin = Ward(untrained_monitor(), shadow_ecg=untrained_monitor())  # the same weights
    torch.manual_seed(7)
    other_nets = [ArrhythmiaGRU(n_rr=len(RR_FEATURES), output_delay=1) for _ in range(2)]
    other = ArrhythmiaMonitor(ArrhythmiaEnsemble.of(other_nets, quality_gate=0.9).eval(),
                              PREPROCESSING)  # fmt: skip
    rival = Ward(untrained_monitor(), shadow_ecg=other)
    finals = []
    for ward in (alone, twin, rival):
        for pid in signals:
            ward.admit_ecg(pid, 360.0)
        for k in range(0, SECONDS * 360, 720):
            for pid, x in signals.items():
                if pid != "119" or not 40 * 360 <= k < 46 * 360:  # 6 s of 119 lost: a break
                    ward.add_ecg(pid, x[k : k + 720].tolist(), k)
            ward.tick()
        # and one still queued at the discharge
        ward.add_ecg("100", signals["100"][:720].tolist(), (SECONDS + 6) * 360)
        finals.append({p: ward.discharge_ecg(p) for p in signals})
        assert finals[-1]["119"]["break_samples"] == finals[-1]["100"]["break_samples"] == 2160

    # the champion's own output is untouched by a shadow
    def outcome(f: dict) -> dict:
        return {p: (f[p]["counts"], [a["kind"] for a in f[p]["alarms"]]) for p in signals}

    assert outcome(finals[0]) == outcome(finals[1]) == outcome(finals[2])
    kinds = [[e["kind"] for e in w.events()["events"]] for w in (alone, twin, rival)]
    assert kinds[0] == kinds[1] == kinds[2]
    beats = sum(f["beats"] for f in finals[0].values())
    same = twin.shadow_report()["arrhythmia"]
    assert same["agreement"] == 1.0 and same["beats_matched"] == beats
    assert same["beats"]["champion"] == same["beats"]["shadow"]
    assert same["alarms"]["champion"] == same["alarms"]["shadow"]
    assert twin.shadow_report()["early_warning"] is None and twin.shadow_report()["errors"] == 0
    diff = rival.shadow_report()["arrhythmia"]
    assert diff["beats_matched"] == beats and diff["agreement"] < 1.0  # other weights
    assert sum(diff["confusion"]["N"].values()) == diff["beats"]["champion"]["N"]
    assert sum(diff["beats"]["shadow"].values()) == beats
    with pytest.raises(ValueError, match="without a shadow model"):
        alone.shadow_report()
    with pytest.raises(ValueError, match="needs the champion"):
        Ward(shadow_ecg=untrained_monitor(), sepsis=None)


def test_a_failing_shadow_is_counted_and_stops_there(caplog: pytest.LogCaptureFixture) -> None:
    broken = untrained_monitor()

    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the challenger broke")

    broken.push = fail  # type: ignore[method-assign]
    ward = Ward(untrained_monitor(), shadow_ecg=broken)
    ward.admit_ecg("bed-1", 360.0)
    with caplog.at_level(logging.ERROR, logger="vitalgru.scoring.ward"):
        for _ in range(3):
            ward.add_ecg("bed-1", [0.0] * 360)
            ward.tick()
    assert ward.shadow_report()["errors"] == 3 and "the challenger broke" in caplog.text
    assert ward.ecg_summary("bed-1")["received_s"] == 3.0


def test_a_shadows_failures_carry_over_a_restart_with_its_comparison(tmp_path: Path) -> None:
    # the counts were taken up and the failures behind them were not: errors 0 beside a
    # comparison missing the seconds the challenger failed on
    broken = untrained_monitor()
    real = broken.push
    calls = [0]

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] in (2, 3):
            raise RuntimeError("the challenger broke")
        return real(*args, **kwargs)

    broken.push = flaky  # type: ignore[method-assign]
    ward = Ward(untrained_monitor(), shadow_ecg=broken, journal=WardJournal(tmp_path / "w.sqlite"))
    ward.admit_ecg("bed-1", 360.0)
    for _ in range(4):
        ward.add_ecg("bed-1", [0.0] * 360)
        ward.tick()
    before = ward.shadow_report()
    ward.close()
    again = Ward(untrained_monitor(), shadow_ecg=untrained_monitor(),
                 journal=WardJournal(tmp_path / "w.sqlite"))  # fmt: skip
    again.restore(again.journal.load())
    assert again.restore_shadow(again.journal.value("shadow"), {"arrhythmia"}) == ["arrhythmia"]
    assert again.shadow_report()["errors"] == before["errors"] == 2
    assert again.status()["shadow_errors"] == 2
    again.close()


def test_durations_count_into_buckets_by_upper_bound() -> None:
    d = Durations((0.1, 1.0))
    for s in (0.05, 0.1, 0.5, 1.0, 3.0):  # a duration on a bound counts under it
        d.add(s)
    assert d.snapshot() == {
        "buckets": [(0.1, 2), (1.0, 4), (float("inf"), 5)],
        "sum": pytest.approx(4.65),
        "count": 5,
    }
    with pytest.raises(ValueError, match="must increase"):
        Durations((1.0, 0.5))


def test_the_log_filtered_by_patient_and_source_moves_on_past_what_it_left_out() -> None:
    ward = Ward(untrained_monitor(), feed_timeout_s=0.01)
    for pid in ("a", "b", "a"):  # feed_lost of a, of b, then a acknowledged
        if pid not in ward.patients()["ecg"]:
            ward.admit_ecg(pid, 360.0)
            time.sleep(0.02)
            ward.tick()
    ward.acknowledge(1, "RN Diaz")
    assert [(e["seq"], e["patient_id"], e["source"]) for e in ward.events()["events"]] == [
        (1, "a", "ecg"), (2, "b", "ecg"), (3, "a", "ward")]  # fmt: skip
    got = ward.events(patient_id="a", source="ecg")
    assert [e["seq"] for e in got["events"]] == [1] and got["last_seq"] == 3
    assert ward.events(since=got["last_seq"], patient_id="a")["events"] == []
    assert [e["seq"] for e in ward.events(patient_id="a")["events"]] == [1, 3]
    assert [e["seq"] for e in ward.events(source="ward")["events"]] == [3]
    assert ward.events(patient_id="nobody") == {"events": [], "last_seq": 3, "dropped": 0}
    cut = ward.events(limit=2)  # cut short: the next poll starts after the last one given
    assert [e["seq"] for e in cut["events"]] == [1, 2] and cut["last_seq"] == 2


class TestEscalation:
    @staticmethod
    def lose_feeds(ward: Ward, *pids: str) -> list[int]:
        """A feed_lost alarm per patient; their event numbers."""
        for pid in pids:
            ward.admit_ecg(pid, 360.0)
        time.sleep(0.03)
        ward.tick()
        return [e["seq"] for e in ward.events()["events"] if e["kind"] == "feed_lost"]

    def test_an_alarm_no_one_acknowledges_is_escalated_once(self) -> None:
        ward = Ward(untrained_monitor(), feed_timeout_s=0.01, escalate_after_s=0.3)
        seen, missed = self.lose_feeds(ward, "a", "b")
        ward.acknowledge(seen, "RN Diaz")
        ward.add_ecg("a", [0.1] * 36)  # back: feed_restored needs no one, never escalates
        ward.tick()
        assert [e["kind"] for e in ward.events(seen)["events"]] == [
            "feed_lost", "acknowledged", "feed_restored"]  # fmt: skip
        time.sleep(0.35)
        ward.tick()
        ward.tick()  # once, not every tick
        (esc,) = [e for e in ward.events()["events"] if e["kind"] == "escalated"]
        assert esc["escalates"] == missed and esc["patient_id"] == "b"
        assert esc["source"] == "ward" and "not been acknowledged for 0.005 min" in esc["message"]
        marked = ward.ecg_summary("b")["alarms"][-1]  # the alarm says so itself
        assert marked["seq"] == missed and marked["escalated"] == {
            "at": esc["received_at"], "seq": esc["seq"], "level": 1}  # fmt: skip
        assert esc["level"] == 1 and "escalation 1 of" not in esc["message"]
        assert "escalated" not in ward.ecg_summary("a")["alarms"][0]
        assert "(escalated, not acknowledged)" in ward_page_html(*ward.summaries())
        assert ward.telemetry()["escalated_unacknowledged"] == 1
        with pytest.raises(ValueError, match="acknowledgement itself"):  # ward events: none
            ward.acknowledge(esc["seq"], "x")
        ward.acknowledge(missed, "Dr Okafor")  # the alarm itself still can be
        assert ward.telemetry()["escalated_unacknowledged"] == 0
        assert ward.telemetry()["events"][("ward", "escalated")] == 1

    def test_off_means_never(self) -> None:
        ward = Ward(untrained_monitor(), feed_timeout_s=0.01, escalate_after_s=None)
        self.lose_feeds(ward, "a")
        time.sleep(0.05)
        ward.tick()
        assert "escalated" not in {e["kind"] for e in ward.events()["events"]}
        with pytest.raises(ValueError, match="escalate_after_s"):
            Ward(untrained_monitor(), escalate_after_s=0)

    def test_a_chain_escalates_level_after_level_until_someone_acknowledges(self) -> None:
        ward = Ward(untrained_monitor(), feed_timeout_s=0.01, escalate_after_s=(0.2, 0.5, 0.8))
        stopped, ignored = self.lose_feeds(ward, "a", "b")

        def levels() -> list[tuple[int, int]]:
            return [(e["escalates"], e["level"]) for e in ward.events()["events"]
                    if e["kind"] == "escalated"]  # fmt: skip

        time.sleep(0.25)
        ward.tick()
        assert levels() == [(stopped, 1), (ignored, 1)]
        ward.acknowledge(stopped, "RN Diaz")  # a's chain stops here
        time.sleep(0.3)
        ward.tick()
        ward.tick()  # each level once
        assert levels() == [(stopped, 1), (ignored, 1), (ignored, 2)]
        second = [e for e in ward.events()["events"] if e["kind"] == "escalated"][-1]
        assert "for 0.00833333 min (escalation 2 of 3)" in second["message"]
        assert ward.ecg_summary("b")["alarms"][-1]["escalated"]["level"] == 2
        assert "(escalated (level 2), not acknowledged)" in ward_page_html(*ward.summaries())
        flags = events_bundle([e for e in ward.events()["events"] if e["seq"] == ignored],
                              log_id=ward.log_id)  # fmt: skip
        (flag,) = [f["resource"]["code"]["text"] for f in flags["entry"]]
        assert "(escalated to level 2 at " in flag and flag.endswith(": not acknowledged)")
        time.sleep(0.35)
        ward.tick()
        time.sleep(0.1)
        ward.tick()  # nothing after the last level
        assert levels()[-1] == (ignored, 3) and len(levels()) == 4
        assert ward.telemetry()["escalated_unacknowledged"] == 1
        for bad in ((0.5, 0.2), (0.2, 0.2), (0.2, -1.0), (), (0.1, float("inf")), "soon"):
            with pytest.raises(ValueError, match="escalate_after_s"):
                Ward(untrained_monitor(), escalate_after_s=bad)  # type: ignore[arg-type]

    def test_a_restarted_chain_goes_on_from_the_level_it_reached(self, tmp_path: Path) -> None:
        state = tmp_path / "w.sqlite"
        chain = (3600, 7200, 10800)
        ward = Ward(untrained_monitor(), feed_timeout_s=0.01, journal=WardJournal(state),
                    escalate_after_s=(0.1, 7200, 10800))  # fmt: skip
        (alarm,) = self.lose_feeds(ward, "a")
        time.sleep(0.15)
        ward.tick()  # level 1 logged before the stop
        ward.journal.close()
        kept = WardJournal(state).load()
        for e in kept.events:  # the gateway was down two and a half hours since the alarm
            e["received_at"] = (datetime.now(UTC) - timedelta(hours=2.5)).isoformat()
        again = Ward(untrained_monitor(), feed_timeout_s=60, escalate_after_s=chain)
        again.restore(kept)
        again.tick()
        again.tick()
        esc = [(e["escalates"], e["level"]) for e in again.events()["events"]
               if e["kind"] == "escalated"]  # fmt: skip
        assert esc == [(alarm, 1), (alarm, 2)]  # level 2 (2 h) was due; level 3 (3 h) not yet
        assert again._awaiting_ack[alarm][1] == 3
        # a ward with fewer levels than were reached escalates it no further
        fewer = Ward(untrained_monitor(), feed_timeout_s=60, escalate_after_s=3600)
        fewer.restore(WardJournal(state).load())
        fewer.tick()
        assert [e["level"] for e in fewer.events()["events"] if e["kind"] == "escalated"] == [1]

    def test_a_restarted_ward_escalates_what_waited_before_it_stopped(self, tmp_path: Path) -> None:
        state = tmp_path / "w.sqlite"
        ward = Ward(untrained_monitor(), feed_timeout_s=0.01, journal=WardJournal(state),
                    escalate_after_s=3600)  # fmt: skip
        self.lose_feeds(ward, "a", "b")
        ward.acknowledge(1, "RN Diaz")
        ward.journal.close()
        # an hour went by while the gateway was down: at the first tick, b's alarm escalates
        kept = WardJournal(state).load()
        for e in kept.events:
            e["received_at"] = "2000-01-01T00:00:00+00:00"
        again = Ward(untrained_monitor(), feed_timeout_s=60, escalate_after_s=3600)
        again.restore(kept)
        again.tick()
        esc = [e for e in again.events()["events"] if e["kind"] == "escalated"]
        assert [e["escalates"] for e in esc] == [2]


class TestEcgMemoryAcrossRestarts:
    def _ward(self, state: Path, **kw: Any) -> Ward:
        return Ward(untrained_monitor(), journal=WardJournal(state), **kw)

    def test_a_restarted_ward_goes_on_with_what_the_network_had_learnt(
        self, signals: dict[str, np.ndarray], tmp_path: Path
    ) -> None:
        state = tmp_path / "ward.sqlite"
        ward = self._ward(state, memory_every_s=None)
        for pid in ("a", "b"):
            ward.admit_ecg(pid, 360.0)
        for k in range(30):
            for pid, rec in (("a", "119"), ("b", "100")):
                ward.add_ecg(pid, signals[rec][k * 360 : (k + 1) * 360])
            ward.tick()
        ward.add_ecg("a", signals["119"][30 * 360 : 31 * 360])  # queued: scored on close
        assert WardJournal(state).load().ecg[0].memory is None  # none written before close
        before = ward.ecg_summary("a")["beats"]
        ward.close()
        kept = {pid: ward.ecg.memory(pid) for pid in ("a", "b")}
        assert ward.ecg_summary("a")["beats"] > before

        again = self._ward(state)
        took = again.restore(again.journal.load())
        assert took["ecg"] == took["ecg_memory"] == 2
        for pid, m in kept.items():
            now = again.ecg.memory(pid)
            np.testing.assert_array_equal(now.h, m.h)
            np.testing.assert_array_equal(now.templates, m.templates)
            assert now.beats == m.beats > 20
        restarted = [e for e in again.events()["events"] if e["kind"] == "monitor_restarted"]
        assert [e["memory"] for e in restarted] == ["carried", "carried"]
        assert restarted[0]["memory_saved_at"] and f"({kept['a'].beats} beats" in (
            restarted[0]["message"])  # fmt: skip
        again.journal.close()

    def test_a_shadow_keeps_its_own_memory(
        self, signals: dict[str, np.ndarray], tmp_path: Path
    ) -> None:
        state = tmp_path / "ward.sqlite"

        def shadowed() -> Ward:
            torch.manual_seed(3)
            nets = [ArrhythmiaGRU(n_rr=len(RR_FEATURES), output_delay=1) for _ in range(2)]
            challenger = ArrhythmiaMonitor(ArrhythmiaEnsemble.of(nets, quality_gate=0.9).eval(),
                                           PREPROCESSING)  # fmt: skip
            return Ward(untrained_monitor(), journal=WardJournal(state), shadow_ecg=challenger)

        ward = shadowed()
        ward.admit_ecg("a", 360.0)
        for k in range(30):
            ward.add_ecg("a", signals["119"][k * 360 : (k + 1) * 360])
            ward.tick()
        ward.close()
        champion, shadow = ward.ecg.memory("a"), ward._shadow_ecg.monitor.memory("a")
        assert champion.model != shadow.model and shadow.beats > 20
        compared = ward.shadow_report()
        assert compared["arrhythmia"]["beats_matched"] > 20
        again = shadowed()
        again.restore(again.journal.load())
        np.testing.assert_array_equal(again._shadow_ecg.monitor.memory("a").h, shadow.h)
        np.testing.assert_array_equal(again.ecg.memory("a").h, champion.h)
        assert again.shadow_errors == 0
        # the comparison goes on from where it was (when the same challenger is served)
        assert again.shadow_report()["arrhythmia"]["beats_matched"] == 0
        assert again.restore_shadow(again.journal.value("shadow"), {"arrhythmia"}) == [
            "arrhythmia"]  # fmt: skip
        assert again.shadow_report() == compared
        for k in range(30, 40):
            again.add_ecg("a", signals["119"][k * 360 : (k + 1) * 360])
            again.tick()
        grown = again.shadow_report()["arrhythmia"]
        assert grown["beats_matched"] > compared["arrhythmia"]["beats_matched"]
        assert again.shadow_report()["since"] == compared["since"]
        again.close()
        # another challenger's comparison is not taken up; a broken one starts afresh
        third = shadowed()
        assert third.restore_shadow(third.journal.value("shadow"), set()) == []
        assert third.restore_shadow({"arrhythmia": {"confusion": 3}}, {"arrhythmia"}) == []
        assert third.shadow_report()["arrhythmia"]["beats_matched"] == 0
        third.close()
        # a gateway without the challenger: its memory would be runs old when it comes
        # back (taken up beside a champion that went on)
        alone = self._ward(state)
        alone.restore(alone.journal.load())
        for k in range(40, 45):
            alone.add_ecg("a", signals["119"][k * 360 : (k + 1) * 360])
            alone.tick()
        alone.close()
        assert WardJournal(state).load().ecg[0].shadow_memory is None
        back = shadowed()
        back.restore(back.journal.load())
        assert back._shadow_ecg.monitor.memory("a").beats == 0  # afresh
        assert back.ecg.memory("a").beats == alone.ecg.memory("a").beats
        back.journal.close()

    def test_a_sepsis_shadows_comparison_is_not_counted_twice_after_a_restart(
        self, sepsis_fit: tuple[Any, dict, list[dict]], tmp_path: Path
    ) -> None:
        from vitalgru.scoring import EarlyWarningMonitor

        model, preprocessing, rows = sepsis_fit
        state = tmp_path / "ward.sqlite"

        def shadowed() -> Ward:  # a sepsis-only ward with a challenger
            return Ward(sepsis=EarlyWarningMonitor(model, preprocessing),
                        shadow_sepsis=EarlyWarningMonitor(model, preprocessing),
                        journal=WardJournal(state))  # fmt: skip

        ward = shadowed()
        for pid in ("p1", "p2"):
            ward.admit_sepsis(pid)
            for row in rows[:5]:
                ward.add_hour(pid, row)
        ward.discharge_sepsis("p2")  # its hours are in the comparison, not in the file
        ward.close()
        before = ward.shadow_report()["early_warning"]
        assert before["hours"] == 10 and before["patients"] == 2
        again = shadowed()
        again.restore(again.journal.load())  # p1's five hours scored again: counted anew...
        assert again.shadow_report()["early_warning"]["hours"] == 5
        again.restore_shadow(again.journal.value("shadow"), {"early_warning"})
        assert again.shadow_report()["early_warning"] == before  # ...and replaced
        again.add_hour("p1", rows[5])
        assert again.shadow_report()["early_warning"]["hours"] == 11
        again.close()

    def test_the_memory_is_written_as_the_ward_runs_and_a_foreign_one_is_not_used(
        self, signals: dict[str, np.ndarray], tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        state = tmp_path / "ward.sqlite"
        ward = self._ward(state, memory_every_s=0.01)
        ward.admit_ecg("a", 360.0)
        ward.admit_ecg("b", 360.0)
        for k in range(10):
            ward.add_ecg("a", signals["100"][k * 360 : (k + 1) * 360])
            time.sleep(0.011)
            ward.tick()
        kept = {a.patient_id: a for a in ward.journal.load().ecg}
        m = PatientMemory.from_bytes(kept["a"].memory)  # without close: a crash keeps this
        assert m.beats == ward.ecg_summary("a")["beats"] > 5
        ward.journal.ecg_memory({"b": b"scrambled"}, "2026-12-05T08:00:00+00:00")
        ward.journal.close()

        torch.manual_seed(7)  # a gateway started with another model
        nets = [ArrhythmiaGRU(n_rr=len(RR_FEATURES), output_delay=1) for _ in range(2)]
        other = ArrhythmiaMonitor(ArrhythmiaEnsemble.of(nets, quality_gate=0.9).eval(),
                                  PREPROCESSING)  # fmt: skip
        ward = Ward(other, journal=WardJournal(state))
        with caplog.at_level(logging.WARNING, logger="vitalgru.scoring.ward"):
            took = ward.restore(ward.journal.load())
        assert took["ecg"] == 2 and took["ecg_memory"] == 0
        said = {e["patient_id"]: e for e in ward.events()["events"]}
        assert said["a"]["memory"] == "the memory was kept by another model"
        assert said["b"]["memory"] == "the memory kept could not be read"
        assert "starts afresh" in said["a"]["message"] and said["a"]["memory_saved_at"] is None
        assert "kept by another network" in caplog.text
        assert ward.ecg.memory("a").beats == 0  # afresh
        ward.close()
        with pytest.raises(ValueError, match="memory_every_s"):
            Ward(untrained_monitor(), memory_every_s=0)


def test_each_ecg_alarm_keeps_its_strip_across_a_restart(
    signals: dict[str, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "ward.sqlite"
    x = signals["100"]
    ward = Ward(untrained_monitor(), journal=WardJournal(state), feed_timeout_s=0.01)
    ward.admit_ecg("bed-1", 360.0)
    for k in range(60):
        ward.add_ecg("bed-1", x[k * 360 : (k + 1) * 360])
        ward.tick()
    events = ward.events()["events"]
    pause = next(e for e in events if e["kind"] == "pause")
    strip = ward.strip(pause["seq"])
    assert strip["patient_id"] == "bed-1" and strip["kind"] == "pause" and strip["fs"] == 360.0
    end_s = pause["raised_at_s"] + 5.0  # 5 s after it was raised
    assert strip["complete"] and strip["end_s"] == pytest.approx(end_s, abs=1 / 360)
    assert strip["start_s"] == pytest.approx(max(pause["onset_s"] - 5.0, end_s - 25.0), abs=1 / 360)
    assert pause["strip_s"] == pytest.approx(end_s - strip["start_s"], abs=2e-3)
    lo = round(strip["start_s"] * 360)
    np.testing.assert_allclose(strip["samples"], x[lo : lo + len(strip["samples"])], atol=1e-4)
    assert lo + len(strip["samples"]) == round(end_s * 360)
    assert strip["beats"] and all(strip["start_s"] <= b["time_s"] < end_s for b in strip["beats"])
    # every beat the monitor found in it is labelled (the strip waited for the labels)
    found = [
        c.time_s for c in ward._ecg_beds["bed-1"].recent if strip["start_s"] <= c.time_s < end_s
    ]
    assert len(strip["beats"]) == len(found)
    labelled = {round(c.time_s, 4): c.label for c in ward._ecg_beds["bed-1"].recent}
    assert all(labelled[b["time_s"]] == b["label"] for b in strip["beats"])
    lost = ward._event({"source": "ward", "kind": "note"})  # not an ECG alarm: no strip
    with pytest.raises(KeyError, match="no ECG strip"):
        ward.strip(lost["seq"])
    ward.close()

    again = Ward(untrained_monitor(), journal=WardJournal(state))
    again.restore(again.journal.load())
    assert again.strip(pause["seq"]) == strip
    # only the newest are kept, in memory and in the file
    monkeypatch.setattr("vitalgru.scoring.ward_strips.MAX_STRIPS", 2)
    again.journal.keep_strips = 2
    for _ in range(30):
        again.add_ecg("bed-1", np.zeros(360))  # lead off: a pause and poor signal again
        again.tick()
    kept = [e["seq"] for e in again.events()["events"] if e.get("strip_s")]
    assert len(kept) >= 3 and sorted(again._strips) == kept[-2:]
    assert [seq for seq, _ in again.journal.load().strips] == kept[-2:]
    again.close()


def test_a_replay_keeps_the_first_strip_of_each_alarm_kind_as_the_gateway_would(
    signals: dict[str, np.ndarray],
) -> None:
    x = signals["100"]
    result = replay(untrained_monitor(), {"bed-1": (x, 360.0)}, chunk_s=1.0)
    strips = result.strips["bed-1"]
    kinds = [a.kind for a in result.alerts["bed-1"]]
    assert sorted(s["kind"] for s in strips) == sorted(set(kinds))
    ward = Ward(untrained_monitor())
    ward.admit_ecg("bed-1", 360.0)
    for k in range(SECONDS):
        ward.add_ecg("bed-1", x[k * 360 : (k + 1) * 360])
        ward.tick()
    firsts = {}
    for e in ward.events()["events"]:
        firsts.setdefault(e["kind"], e["seq"])
    for s in strips:
        w = ward.strip(firsts[s["kind"]])
        assert w["complete"] and s["complete"]
        for key in ("start_s", "end_s", "onset_s", "beats"):
            assert w[key] == s[key], key
        np.testing.assert_allclose(w["samples"], s["samples"], atol=1e-4)
    assert replay(untrained_monitor(), {"b": (x, 360.0)}, strips_per_kind=0).strips == {}


def _feed_until_pause(ward: Ward, x: np.ndarray) -> tuple[int, int]:
    """Admit bed-1 and feed it ``x`` a second a tick until a pause alarm is raised; returns
    the seconds fed and the alarm's event number."""
    ward.admit_ecg("bed-1", 360.0)
    k = 0
    while not any(e["kind"] == "pause" for e in ward.events()["events"]):
        ward.add_ecg("bed-1", x[k * 360 : (k + 1) * 360])
        ward.tick()
        k += 1
    return k, next(e["seq"] for e in ward.events()["events"] if e["kind"] == "pause")


def test_a_strip_grows_until_its_beats_are_labelled_and_a_discharge_ends_it(
    signals: dict[str, np.ndarray],
) -> None:
    x = signals["100"]  # the lead off from 40 s: a pause
    ward = Ward(untrained_monitor())
    k, seq = _feed_until_pause(ward, x)
    first = ward.strip(seq)
    assert not first["complete"] and first["end_s"] == pytest.approx(k, abs=1e-9)  # so far
    ward.add_ecg("bed-1", x[k * 360 : (k + 2) * 360])
    ward.tick()
    grown = ward.strip(seq)
    assert not grown["complete"] and grown["end_s"] == pytest.approx(k + 2)
    assert grown["samples"][: len(first["samples"])] == first["samples"]
    ward.discharge_ecg("bed-1")  # the stream ends: the strip is as far as it went
    last = ward.strip(seq)
    assert last["complete"] and last["end_s"] == pytest.approx(k + 2)


def test_a_lost_feed_ends_its_alarms_strips_where_its_samples_stopped(
    signals: dict[str, np.ndarray],
) -> None:
    x = signals["100"]  # the lead off from 40 s: a pause
    ward = Ward(untrained_monitor(), feed_timeout_s=0.05)
    k, seq = _feed_until_pause(ward, x)
    assert not ward.strip(seq)["complete"]
    time.sleep(0.1)
    ward.tick()  # nothing came for longer than the feed timeout: the feed is lost
    assert ward.ecg_summary("bed-1")["alarms"][-1]["kind"] == "feed_lost"
    cut = ward.strip(seq)
    assert cut["complete"] and cut["end_s"] == pytest.approx(k)
    # samples after the gap do not join the strip as if there had been none
    ward.add_ecg("bed-1", x[k * 360 : (k + 2) * 360])
    ward.tick()
    assert ward.strip(seq) == cut


def test_a_failing_last_tick_still_keeps_the_memory_and_closes_the_file(
    signals: dict[str, np.ndarray], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ward = Ward(untrained_monitor(), journal=WardJournal(tmp_path / "w.sqlite"))
    ward.admit_ecg("a", 360.0)
    for k in range(10):
        ward.add_ecg("a", signals["119"][k * 360 : (k + 1) * 360])
        ward.tick()

    def broken() -> None:
        raise RuntimeError("the network failed")

    ward.tick = broken  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="vitalgru.scoring.ward"):
        ward.close()
    assert "broken failed while closing" in caplog.text
    kept = WardJournal(tmp_path / "w.sqlite").load().ecg[0]
    assert PatientMemory.from_bytes(kept.memory).beats == ward.ecg.memory("a").beats > 5


def test_the_heart_rate_by_minute_is_the_replay_pages(signals: dict[str, np.ndarray]) -> None:
    """Kept as the beats come, the trend is what the replay page computes from all of them."""
    from vitalgru.reports.monitoring import patient_summary

    ward = Ward(untrained_monitor())
    for pid in signals:
        ward.admit_ecg(pid, 360.0)
    for k in range(SECONDS):
        for pid, x in signals.items():
            ward.add_ecg(pid, x[k * 360 : (k + 1) * 360])
        ward.tick()
    for pid in signals:
        got = ward.ecg_trend(pid)
        calls = list(ward._ecg_beds[pid].recent)  # every beat labelled so far (< 600)
        want = patient_summary(pid, got["monitored_s"], [c.time_s for c in calls],
                               [c.label for c in calls], [c.signal_ok for c in calls], [])  # fmt: skip
        assert got["monitored_s"] == SECONDS and len(got["hr_trend_bpm"]) == 2
        assert got["hr_trend_bpm"] == want["hr_trend_bpm"], pid
        assert any(v is not None for v in got["hr_trend_bpm"])


def test_the_heart_rate_trend_outlives_gateway_restarts(
    signals: dict[str, np.ndarray], tmp_path: Path
) -> None:
    from vitalgru.reports.html import shown_at
    from vitalgru.reports.ward import ecg_patient_page_html

    state = tmp_path / "ward.sqlite"
    x = signals["119"]

    def feed(ward: Ward, seconds: range) -> None:
        for k in seconds:
            ward.add_ecg("bed-1", x[k * 360 : (k + 1) * 360])
            ward.tick()

    ward = Ward(untrained_monitor(), journal=WardJournal(state))
    ward.admit_ecg("bed-1", 360.0)
    feed(ward, range(0, 70))
    first = ward.ecg_trend("bed-1")
    assert len(first["hr_trend_bpm"]) == 2 and first["earlier"] == []
    ward.close()
    # restarted: a new stream, and the one before it kept
    again = Ward(untrained_monitor(), journal=WardJournal(state))
    again.restore(again.journal.load())
    feed(again, range(70, 130))
    got = again.ecg_trend("bed-1")
    assert got["earlier"] == [{k: first[k] for k in ("stream_started_at", "hr_trend_bpm")}]
    assert len(got["hr_trend_bpm"]) == 1  # the new stream's first minute
    page = ecg_patient_page_html(again.ecg_summary("bed-1"), [], got)
    assert (
        page.count("<svg") == 2
        and f"Before a gateway restart, until {shown_at(got['stream_started_at'])}" in page
    )
    again.close()
    # and again: both earlier streams, oldest first; a state file with junk in it is ignored
    third = Ward(untrained_monitor(), journal=WardJournal(state))
    third.restore(third.journal.load())
    assert [t["hr_trend_bpm"] for t in third.ecg_trend("bed-1")["earlier"]] == [
        first["hr_trend_bpm"], got["hr_trend_bpm"]]  # fmt: skip
    third.close()
    edited = WardJournal(state)  # a state file with something else under the trends
    edited.set_value("ecg_trends", {"bed-1": [{"hr_trend_bpm": "x"}, 3]})
    edited.close()
    fourth = Ward(untrained_monitor(), journal=WardJournal(state))
    fourth.restore(fourth.journal.load())
    assert fourth.ecg_trend("bed-1")["earlier"] == []
    fourth.journal.close()


def test_the_trends_kept_are_the_newest_three_and_a_day_of_each() -> None:
    from vitalgru.scoring.ward_ecg_trend import EARLIER_TRENDS, TREND_KEEP_MINUTES, kept_trends

    long = [{"stream_started_at": f"s{k}", "hr_trend_bpm": list(range(TREND_KEEP_MINUTES + 5))}
            for k in range(5)]  # fmt: skip
    kept = kept_trends(long)
    assert [t["stream_started_at"] for t in kept] == ["s2", "s3", "s4"] and EARLIER_TRENDS == 3
    assert all(t["hr_trend_bpm"] == list(range(5, TREND_KEEP_MINUTES + 5)) for t in kept)
    assert len(kept_trends(long, EARLIER_TRENDS + 1)) == 4
    empty = [{"stream_started_at": "s", "hr_trend_bpm": []}, {"hr_trend_bpm": [60.0, "x"]}]
    assert kept_trends(empty) == [{"stream_started_at": "", "hr_trend_bpm": [60.0, None]}]
    assert kept_trends(None) == [] and kept_trends({"a": 1}) == []


class TestSepsisLockout:
    @staticmethod
    def _feed(ward: Ward, rows: list[dict], ack_first: bool) -> list[dict]:
        """Admit (unless a restored ward has the patient), score ``rows``, acknowledge the
        stay's first alarm when it starts (with ``ack_first``); the sepsis events."""
        if "icu-1" not in ward.patients()["sepsis"]:
            ward.admit_sepsis("icu-1")
        for row in rows:
            started = ward.add_hour("icu-1", row)["alarm_started"]
            seq = ward.sepsis_summary("icu-1")["alarm_seq"]
            if (
                started
                and ack_first
                and seq
                == min(e["seq"] for e in ward.events()["events"] if e.get("source") == "sepsis")
            ):
                ward.acknowledge(seq, "RN Diaz")
        return [e for e in ward.events()["events"] if e.get("source") == "sepsis"]

    def test_after_an_acknowledged_alarm_repeats_page_no_one(
        self, sepsis_fit: tuple[Any, dict, list[dict]]
    ) -> None:
        preprocessing, rows = hovering(sepsis_fit)
        model = sepsis_fit[0]
        plain = self._feed(Ward(sepsis=EarlyWarningMonitor(model, preprocessing)), rows, True)
        assert {e["kind"] for e in plain} == {"sepsis_risk"}  # no lockout: every one alarms
        ward = Ward(sepsis=EarlyWarningMonitor(model, preprocessing), sepsis_lockout_h=1000,
                    escalate_after_s=0.01)  # fmt: skip
        got = self._feed(ward, rows, True)
        first, *repeats = got
        assert [e["hour"] for e in got] == [e["hour"] for e in plain] and len(repeats) >= 2
        assert first["kind"] == "sepsis_risk" and first["acknowledged"]["by"] == "RN Diaz"
        assert {e["kind"] for e in repeats} == {"sepsis_risk_repeated"}
        assert all(e["lockout"] == {"after": first["seq"], "until_hour": first["hour"] + 1000}
                   for e in repeats)  # fmt: skip
        assert "pages no one" in repeats[0]["message"]
        time.sleep(0.02)
        ward.tick()  # the repeats never escalate, nor does the acknowledged alarm
        assert not [e for e in ward.events()["events"] if e["kind"] == "escalated"]
        for e in repeats:  # nor are they sent on as alarms, nor their ends
            assert alarm_message(e, log_id=ward.log_id) is None
        ends = [e for e in ward.events()["events"] if e["kind"] == "alarm_ended"]
        assert all(
            alarm_message(e, r, log_id=ward.log_id) is None
            for e, r in zip(ends[1:], repeats, strict=False)
        )
        if ward.sepsis_summary("icu-1")["in_alarm"]:
            assert ward.sepsis_summary("icu-1")["alarm_repeated"]
            assert "a repeat within the lockout" in ward_page_html(*ward.summaries())
        # an alarm no one acknowledged silences nothing
        unseen = self._feed(Ward(sepsis=EarlyWarningMonitor(model, preprocessing),
                                 sepsis_lockout_h=1000), rows, False)  # fmt: skip
        assert {e["kind"] for e in unseen} == {"sepsis_risk"}
        with pytest.raises(ValueError, match="sepsis_lockout_h"):
            Ward(sepsis=EarlyWarningMonitor(model, preprocessing), sepsis_lockout_h=-1)

    def test_the_lockout_counts_from_the_alarm_that_paged_and_survives_a_restart(
        self, sepsis_fit: tuple[Any, dict, list[dict]], tmp_path: Path
    ) -> None:
        preprocessing, rows = hovering(sepsis_fit)
        model = sepsis_fit[0]
        whole = self._feed(Ward(sepsis=EarlyWarningMonitor(model, preprocessing),
                                sepsis_lockout_h=1000), rows, True)  # fmt: skip
        # stopped after the first repeat, started again on the state file
        cut = next(i for i, r in enumerate(rows) if r["ICULOS"] == whole[1]["hour"]) + 1
        state = tmp_path / "w.sqlite"
        ward = Ward(sepsis=EarlyWarningMonitor(model, preprocessing), sepsis_lockout_h=1000,
                    journal=WardJournal(state))  # fmt: skip
        before = self._feed(ward, rows[:cut], True)
        assert [e["kind"] for e in before][-1] == "sepsis_risk_repeated"
        ward.close()
        again = Ward(sepsis=EarlyWarningMonitor(model, preprocessing), sepsis_lockout_h=1000,
                     journal=WardJournal(state))  # fmt: skip
        again.restore(again.journal.load())
        for row in rows[cut:]:
            again.add_hour("icu-1", row)
        after = [e for e in again.events()["events"] if e.get("source") == "sepsis"]
        assert [(e["hour"], e["kind"]) for e in after] == [(e["hour"], e["kind"]) for e in whole]
        again.close()
        # the window: a repeat at the lockout's last hour is in it, one an hour later is not
        h = whole[0]["hour"]
        assert within_lockout(h, True, h + 11, 12) and not within_lockout(h, True, h + 12, 12)
        assert not within_lockout(h, False, h + 1, 12) and not within_lockout(None, True, h, 12)
        assert not within_lockout(h, True, h + 1, 0)

    def test_a_readmitted_patients_first_alarm_pages_after_a_restart(
        self, sepsis_fit: tuple[Any, dict, list[dict]], tmp_path: Path
    ) -> None:
        preprocessing, rows = hovering(sepsis_fit)
        model = sepsis_fit[0]

        def ward(**kw: Any) -> Ward:
            return Ward(sepsis=EarlyWarningMonitor(model, preprocessing), sepsis_lockout_h=1000,
                        **kw)  # fmt: skip

        first = ward(journal=WardJournal(tmp_path / "w.sqlite"))
        self._feed(first, rows, True)  # a stay with an acknowledged alarm and repeats
        first.discharge_sepsis("icu-1")
        time.sleep(1.0)  # event times are to the second
        first.admit_sepsis("icu-1")  # readmitted under the same id
        before = first.events()["last_seq"]
        cut = 0  # stopped before the new stay's first alarm
        for row in rows[:cut]:
            first.add_hour("icu-1", row)
        first.close()
        again = ward(journal=WardJournal(tmp_path / "w.sqlite"))
        again.restore(again.journal.load())
        for row in rows[cut:]:
            again.add_hour("icu-1", row)
        stay = [e for e in again.events()["events"] if e.get("source") == "sepsis"
                and e["seq"] > before]  # fmt: skip
        fresh = ward()  # the same second stay without a restart
        fresh.admit_sepsis("icu-1")
        straight = self._feed(fresh, rows, False)
        # the earlier stay's acknowledged alarm put the new one in its lockout (repeated:
        # paged no one) after a restart, and its drivers on the new stay's page
        assert [(e["hour"], e["kind"]) for e in stay] == [(e["hour"], e["kind"]) for e in straight]
        assert stay[0]["kind"] == "sepsis_risk"
        assert set(again.sepsis_stay("icu-1")["drivers"]) == {e["hour"] for e in stay}
        again.close()

    def test_an_alarm_whose_event_was_lost_in_a_crash_is_logged_at_the_restart(
        self, sepsis_fit: tuple[Any, dict, list[dict]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:  # fmt: skip
        preprocessing, rows = hovering(sepsis_fit)
        model = sepsis_fit[0]
        state = tmp_path / "w.sqlite"
        ward = Ward(sepsis=EarlyWarningMonitor(model, preprocessing), journal=WardJournal(state))
        ward.admit_sepsis("icu-1")
        real = WardJournal.add_event
        monkeypatch.setattr(WardJournal, "add_event", lambda self, e: None)  # the crash
        for row in rows:
            if ward.add_hour("icu-1", row)["alarm_started"]:
                break
        monkeypatch.setattr(WardJournal, "add_event", real)
        onset = ward.sepsis_summary("icu-1")
        ward.journal.close()  # no clean stop
        again = Ward(sepsis=EarlyWarningMonitor(model, preprocessing), journal=WardJournal(state))
        again.restore(again.journal.load())
        now = again.sepsis_summary("icu-1")
        assert now["in_alarm"] and now["alarm_seq"] is not None  # None before: never paged
        (event,) = [e for e in again.events()["events"] if e.get("source") == "sepsis"]
        assert event["recovered"] and event["hour"] == onset["alarm_onset"]["hour"] == row["ICULOS"]
        assert now["alarm_seq"] in again.alarms_in_progress()
        again.close()

    def test_a_lost_onset_after_an_earlier_episode_of_the_stay_is_logged_too(
        self, sepsis_fit: tuple[Any, dict, list[dict]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:  # fmt: skip
        # the stay's latest logged onset (an earlier, ended episode's) was taken for the
        # current one: the lost onset was never logged, the bed pointed at the old alarm
        preprocessing, rows = hovering(sepsis_fit)
        model = sepsis_fit[0]
        state = tmp_path / "w.sqlite"
        ward = Ward(sepsis=EarlyWarningMonitor(model, preprocessing), journal=WardJournal(state))
        ward.admit_sepsis("icu-1")
        real = WardJournal.add_event
        starts = 0
        for row in rows:
            if starts == 1:  # the second episode's onset will be lost in the crash
                monkeypatch.setattr(WardJournal, "add_event", lambda self, e: None)
            if ward.add_hour("icu-1", row)["alarm_started"]:
                starts += 1
                if starts == 2:
                    break
        monkeypatch.setattr(WardJournal, "add_event", real)
        onset = ward.sepsis_summary("icu-1")
        ward.journal.close()
        again = Ward(sepsis=EarlyWarningMonitor(model, preprocessing), journal=WardJournal(state))
        again.restore(again.journal.load())
        now = again.sepsis_summary("icu-1")
        recovered = [e for e in again.events()["events"] if e.get("recovered")]
        assert [e["hour"] for e in recovered] == [onset["alarm_onset"]["hour"]] == [row["ICULOS"]]
        assert now["alarm_seq"] == recovered[0]["seq"] in again.alarms_in_progress()
        again.close()


def test_a_poor_signal_alarm_ends_when_the_signal_is_good_again(
    signals: dict[str, np.ndarray],
) -> None:
    ward = Ward(untrained_monitor(), escalate_after_s=3600)
    ward.admit_ecg("bed-5", 360.0)
    x = signals["100"]  # lead off (flat) from 40 to 46 s
    kinds: list[tuple[str, Any]] = []
    for k in range(0, SECONDS * 360, 360):
        ward.add_ecg("bed-5", x[k : k + 360].tolist())
        ward.tick()
        got = ward.events(len(kinds) and kinds[-1][1] or 0)["events"]
        kinds += [(e["kind"], e["seq"]) for e in got]
        if any(kind == "poor_signal" for kind, _ in kinds) and not any(
            kind == "signal_restored" for kind, _ in kinds
        ):
            poor = next(seq for kind, seq in kinds if kind == "poor_signal")
            assert poor in ward.alarms_in_progress()  # the condition goes on
    (poor,) = [seq for kind, seq in kinds if kind == "poor_signal"]
    (back,) = [e for e in ward.events()["events"] if e["kind"] == "signal_restored"]
    assert back["ends"] == poor and back["seq"] > poor and back["patient_id"] == "bed-5"
    assert poor not in ward.alarms_in_progress() and poor not in ward._awaiting_ack
    assert "signal_restored" not in {a["kind"] for a in ward.ecg_summary("bed-5")["alarms"]}


def test_a_pause_alarm_is_in_progress_until_a_heartbeat_ends_it(
    signals: dict[str, np.ndarray],
) -> None:
    ward = Ward(untrained_monitor(), escalate_after_s=3600)
    ward.admit_ecg("bed-5", 360.0)
    x = signals["100"]  # lead off (flat) from 40 to 46 s: no R peak for 6 s
    in_progress = 0
    for k in range(0, 60 * 360, 360):
        ward.add_ecg("bed-5", x[k : k + 360].tolist())
        ward.tick()
        kinds = {e["kind"]: e["seq"] for e in ward.events()["events"]}
        if "pause" in kinds and "beats_resumed" not in kinds:
            assert kinds["pause"] in ward.alarms_in_progress()  # no beat yet: it goes on
            # and the summary the pages show says so (they could not tell it from one over)
            (shown,) = [a for a in ward.ecg_summary("bed-5")["alarms"] if a["kind"] == "pause"]
            assert shown["state"] == "going_on" and "ended" not in shown
            in_progress += 1
    assert in_progress >= 1  # raised while the pause went on, not after it
    (pause,) = [e["seq"] for e in ward.events()["events"] if e["kind"] == "pause"]
    (beats,) = [e for e in ward.events()["events"] if e["kind"] == "beats_resumed"]
    assert beats["ends"] == pause and beats["seq"] > pause and beats["patient_id"] == "bed-5"
    assert pause not in ward.alarms_in_progress()
    assert pause in ward._awaiting_ack  # a clinical alarm: over, but still to be seen
    assert "beats_resumed" not in {a["kind"] for a in ward.ecg_summary("bed-5")["alarms"]}
    # the summary says it ended, when and why: the end the log holds
    (ecg,), _ = ward.summaries()
    for summary in (ward.ecg_summary("bed-5"), ecg):
        (shown,) = [a for a in summary["alarms"] if a["kind"] == "pause"]
        assert shown["state"] == "ended"
        # on the stream's clock, as its onset is
        assert shown["onset_at"] <= beats["ended_at"]
        assert shown["ended"] == {"seq": beats["seq"], "at": beats["ended_at"],
                                  "kind": "beats_resumed", "reason": None,
                                  "message": beats["message"]}  # fmt: skip
        assert {a["state"] for a in summary["alarms"] if a["kind"] != "pause"} <= {
            "ended", "momentary", "notice"}  # fmt: skip


def test_poor_signal_and_pause_alarms_open_at_a_restart_are_ended_by_the_next_gateway(
    signals: dict[str, np.ndarray], tmp_path: Path
) -> None:
    state = tmp_path / "w.sqlite"
    ward = Ward(untrained_monitor(), journal=WardJournal(state))
    ward.admit_ecg("bed-5", 360.0)
    x, k = signals["100"].copy(), 0
    x[40 * 360 : 70 * 360] = 0.0  # lead off (flat) from 40 to 70 s
    while not any(e["kind"] == "poor_signal" for e in ward.events()["events"]):
        ward.add_ecg("bed-5", x[k : k + 360].tolist())
        ward.tick()
        k += 360
    (poor,) = [e["seq"] for e in ward.events()["events"] if e["kind"] == "poor_signal"]
    (pause,) = [e["seq"] for e in ward.events()["events"] if e["kind"] == "pause"]
    assert k < 60 * 360  # stopped while the lead is still off, for 10 s after the restart
    ward.close()
    again = Ward(untrained_monitor(), journal=WardJournal(state))
    again.restore(again.journal.load())
    assert again.alarms_in_progress() == sorted([poor, pause])  # no beat since the pause
    for j in range(k, SECONDS * 360, 360):
        again.add_ecg("bed-5", x[j : j + 360].tolist())
        again.tick()
        if j < 70 * 360:  # the lead still off: both go on (a young stream ends neither)
            assert again.alarms_in_progress() == sorted([poor, pause])
    after = again.events(max(poor, pause))["events"]
    # the open ones, not a second of either
    assert not {"poor_signal", "pause"} & {e["kind"] for e in after}
    (back,) = [e for e in after if e["kind"] == "signal_restored"]
    (beats,) = [e for e in after if e["kind"] == "beats_resumed"]
    assert back["ends"] == poor and beats["ends"] == pause and again.alarms_in_progress() == []
    again.close()


def test_a_chunk_sent_while_a_discharge_runs_is_refused_not_lost(
    signals: dict[str, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the discharge took the queue, then scored it without the queue lock: a chunk sent
    # meanwhile was taken (its answer a success) and dropped with the bed, never scored
    ward = Ward(untrained_monitor())
    ward.admit_ecg("bed-5", 360.0)
    x = signals["100"]
    ward.add_ecg("bed-5", x[:3600].tolist(), 0)
    assert ward.ecg is not None
    real = ward.ecg.discharge
    late: list[Any] = []

    def discharge(pid: str) -> Any:  # another request arrives while the last beats score
        try:
            late.append(ward.add_ecg("bed-5", x[3600:3960].tolist(), 3600))
        except KeyError as e:
            late.append(e)
        return real(pid)

    monkeypatch.setattr(ward.ecg, "discharge", discharge)
    summary = ward.discharge_ecg("bed-5")
    assert isinstance(late[0], KeyError) and "being discharged" in str(late[0])
    assert summary["queued_s"] == 0 and summary["received_s"] == 10.0


def test_alarms_going_on_at_a_discharge_end_with_it(
    signals: dict[str, np.ndarray], sepsis_fit: tuple[Any, dict, list[dict]]
) -> None:
    # an alarm going on when its patient was discharged got no end: the forwarder's receiver
    # and any engine that shows alarms until they end showed it active for good
    model, preprocessing, rows = sepsis_fit
    ews = EarlyWarningMonitor(model, preprocessing)
    ews.threshold = 0.0  # every hour in alarm
    ward = Ward(untrained_monitor(), ews)
    ward.admit_ecg("bed-5", 360.0)
    x = signals["100"].copy()
    x[40 * 360 :] = 0.0  # the lead off from 40 s, and the patient discharged so
    for k in range(60):
        ward.add_ecg("bed-5", x[k * 360 : (k + 1) * 360].tolist())
        ward.tick()
    ward.admit_sepsis("icu-1")
    for row in rows[:3]:
        ward.add_hour("icu-1", row)
    opened = {e["kind"]: e for e in ward.events()["events"]}
    poor, pause, onset = (opened[k]["seq"] for k in ("poor_signal", "pause", "sepsis_risk"))
    assert sorted(ward.alarms_in_progress()) == sorted([poor, pause, onset])
    last = ward.events()["last_seq"]
    ward.discharge_ecg("bed-5")
    ward.discharge_sepsis("icu-1")
    ended = ward.events(last)["events"]
    assert [(e["kind"], e["ends"], e["reason"]) for e in ended] == [
        ("alarm_ended", poor, "discharged"), ("alarm_ended", pause, "discharged"),
        ("alarm_ended", onset, "discharged")]  # fmt: skip
    assert ended[1]["message"] == (
        f"the pause alarm (event {pause}) ends: the patient left ECG monitoring"
    )
    assert ward.alarms_in_progress() == []
    # a technical alarm stops escalating; the pause and the sepsis alarm still want someone
    assert poor not in ward._awaiting_ack and {pause, onset} <= set(ward._awaiting_ack)
    # and the forwarder sends each end
    log = {e["seq"]: e for e in ward.events()["events"]}
    for e in ended:
        msg = alarm_message(e, log[e["ends"]], log_id=ward.log_id)
        assert msg is not None and "|end|" in msg and "|inactive|" in msg


def test_a_chunk_sent_twice_or_lost_keeps_the_streams_time(signals: dict[str, np.ndarray]) -> None:
    # the ward took every chunk as the next samples: a chunk resent because its answer was
    # lost was taken twice, and a chunk lost closed the stream up, both moving every beat
    # after them in time (and making RR intervals that were never there)
    x = signals["119"][: 40 * 360]

    def run(chunks: list[tuple[int, int | None]], skip: int = 0) -> tuple[list[float], dict]:
        ward = Ward(untrained_monitor())
        ward.admit_ecg("p", 360.0)
        for k, start in chunks:
            a = k * 360 + (skip if k == 30 else 0)  # chunk 30's first samples lost
            ward.add_ecg("p", x[a : (k + 1) * 360].tolist(), None if start is None else a)
            ward.tick()
        summary = ward.discharge_ecg("p")
        return [b["time_s"] for b in summary["last_beats"]], summary

    clean, _ = run([(k, k * 360) for k in range(40)])
    resent = [(k, k * 360) for k in range(40)]
    resent.insert(11, (10, 3600))  # chunk 10 again, its answer lost
    times, summary = run(resent)
    assert times == clean and summary["repeated_samples"] == 360
    assert summary["next_start"] == 40 * 360
    # a few samples lost: a gap the quality check bridges, filled with NaN
    times, summary = run([(k, k * 360) for k in range(40)], skip=10)
    assert times == clean and (summary["filled_samples"], summary["break_samples"]) == (10, 0)
    # a chunk lost, or 5 s: a break, which the monitor skips; the beats after it keep their
    # time (they came 1 or 5 s early) and no pause is raised over it
    for lost in ([20], [20, 21, 22, 23, 24]):
        times, summary = run([(k, k * 360) for k in range(40) if k not in lost])
        assert times == clean and summary["break_samples"] == 360 * len(lost)
        assert summary["filled_samples"] == 0
        assert "pause" not in {a["kind"] for a in summary["alarms"]}
    # without the index the stream closes up: every later beat 1 s early
    closed, _ = run([(k, None) for k in range(40) if k != 20])
    np.testing.assert_allclose(np.array(closed), np.array(clean) - 1.0, atol=0.01)
    ward = Ward(untrained_monitor())
    ward.admit_ecg("p", 360.0)
    with pytest.raises(ValueError, match="start must be a whole number"):
        ward.add_ecg("p", [0.0], -1)
    ward.add_ecg("p", [0.0] * 360, 0)
    ward.add_ecg("p", [0.0] * 360, 360 * 60)  # a minute missing: a break, not filled
    got = ward.ecg_summary("p")
    assert (got["filled_samples"], got["break_samples"]) == (0, 59 * 360)
    ward.tick()
    assert ward.ecg_trend("p")["monitored_s"] == 61.0  # the stream's time goes on over it
    ward.add_ecg("p", [0.0] * 360, 0)  # a feed that restarted its count: taken, not dropped
    got = ward.ecg_summary("p")
    assert (got["repeated_samples"], got["next_start"], got["queued_s"]) == (0, 360, 1.0)
    assert got["index_restarts"] == 1
    # so is an index further ahead than the feed can have sent since (an hour, at once)
    ward.add_ecg("p", [0.0] * 360, 360 * 3600)
    got = ward.ecg_summary("p")
    assert (got["break_samples"], got["next_start"]) == (59 * 360, 360 * 3601)
    assert got["index_restarts"] == 2


def test_a_feed_that_restarts_its_count_within_a_minute_is_taken_not_dropped(
    signals: dict[str, np.ndarray],
) -> None:
    # a feed (or the monitor behind it) restarted after 20 s sends its count from 0 again:
    # the ward took its chunks as sent again, and dropped 20 s of ECG unseen
    x = signals["119"][: 40 * 360]

    def run(starts: list[int | None]) -> dict:
        ward = Ward(untrained_monitor())
        ward.admit_ecg("p", 360.0)
        for k, start in enumerate(starts):
            if start is not None:
                ward.add_ecg("p", x[k * 360 : (k + 1) * 360].tolist(), start)
                ward.tick()
        return ward.discharge_ecg("p")

    def same(got: dict, want: dict) -> bool:
        return all(got[k] == want[k] for k in ("beats", "counts", "last_beats", "received_s"))

    clean = run([k * 360 for k in range(40)])
    got = run([k * 360 for k in range(20)] + [(k - 20) * 360 for k in range(20, 40)])
    assert same(got, clean)
    assert (got["index_restarts"], got["repeated_samples"], got["next_start"]) == (1, 0, 7200)
    # a chunk of the restarted count sent again is still dropped
    starts: list[int | None] = [k * 360 for k in range(20)] + [0, 0]
    starts += [(k - 20) * 360 for k in range(21, 40)]
    ward_chunks = [k if k < 21 else k - 1 for k in range(41)]
    ward = Ward(untrained_monitor())
    ward.admit_ecg("p", 360.0)
    for k, start in zip(ward_chunks, starts, strict=True):
        ward.add_ecg("p", x[k * 360 : (k + 1) * 360].tolist(), start)
        ward.tick()
    got = ward.discharge_ecg("p")
    assert same(got, clean) and (got["index_restarts"], got["repeated_samples"]) == (1, 360)
    # after a break (chunks 10-14 lost) too
    starts = [k * 360 if k not in range(10, 15) else None for k in range(30)]
    got = run(starts + [(k - 30) * 360 for k in range(30, 40)])
    assert (got["index_restarts"], got["break_samples"], got["repeated_samples"]) == (1, 1800, 0)


def test_the_heart_rate_takes_no_interval_across_a_break_in_the_feed() -> None:
    # 10 s at 60 bpm, samples lost from 11 s to 49 s, 120 bpm after: the interval across the
    # break made the median interval 0.75 s (80 bpm, a rate the patient never had)
    times = [float(t) for t in range(11)] + [50.0 + 0.5 * k for k in range(12)]
    for broken, bpm in ((False, 80.0), (True, 120.0)):
        now = datetime.now(UTC)
        bed = EcgBed(360.0, now, now)
        bed.queued, bed.queued_n = [np.zeros(11 * 360)], 11 * 360
        bed.breaks = [(11 * 360, 38 * 360)] if broken else []
        x, _ = bed.take_queued()
        assert bed.tail is not None and bed.tail.end == (49 if broken else 11) * 360
        for i, t in enumerate(times):
            bed.add_beat(BeatCall("p", i, int(t * 360), t, "N", (1, 0, 0, 0, 0), True, t))
        assert bed.rates.trend(1) == [pytest.approx(bpm)]  # the minute's trend
        assert bed.summary("p")["hr_bpm"] == bpm  # the bedside summary's last minute


def test_an_alarm_of_an_earlier_stay_is_not_taken_up_at_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "w.sqlite"
    ward = Ward(untrained_monitor(), feed_timeout_s=0.01, journal=WardJournal(state))
    ward.admit_ecg("bed-1", 360.0)
    time.sleep(0.03)
    ward.tick()  # lost, and never back before the discharge
    ward.discharge_ecg("bed-1")
    time.sleep(1.0)  # event times are to the second
    ward.admit_ecg("bed-1", 360.0)  # the bed's next patient, under the same id
    ward.feed_timeout_s = 60.0  # its own feed is not lost before the stop, however slow
    ward.close()
    again = Ward(untrained_monitor(), feed_timeout_s=60, journal=WardJournal(state))
    again.restore(again.journal.load())
    assert again.alarms_in_progress() == []
    again.add_ecg("bed-1", [0.0] * 36)
    assert "feed_restored" not in {e["kind"] for e in again.events()["events"]}
    again.close()


def test_a_merged_ecg_stream_goes_on_under_the_patients_own_record(
    signals: dict[str, np.ndarray], tmp_path: Path
) -> None:
    x = signals["119"]  # V beats in bigeminy
    half = 45 * 360
    ref = Ward(untrained_monitor())
    ref.admit_ecg("mrn-1", 360.0)
    state = tmp_path / "w.sqlite"
    ward = Ward(untrained_monitor(), shadow_ecg=untrained_monitor(), journal=WardJournal(state))
    ward.admit_ecg("tmp-1", 360.0)
    ward.admit_ecg("mrn-2", 360.0)  # another patient's stream
    for k in range(0, half, 720):
        ward.add_ecg("tmp-1", x[k : k + 720].tolist())
        ref.add_ecg("mrn-1", x[k : k + 720].tolist())
        ward.tick(), ref.tick()
    ward.save_memory()
    with pytest.raises(ValueError, match="already on ECG monitoring"):
        ward.merge_ecg("tmp-1", "mrn-2")  # two streams are not joined
    with pytest.raises(KeyError, match="not on ECG monitoring"):
        ward.merge_ecg("tmp-9", "mrn-1")
    with pytest.raises(ValueError, match="into itself"):
        ward.merge_ecg("tmp-1", "tmp-1")
    summary = ward.merge_ecg("tmp-1", "mrn-1")
    assert summary["patient_id"] == "mrn-1" and sorted(ward.patients()["ecg"]) == ["mrn-1", "mrn-2"]
    with pytest.raises(KeyError, match="was merged into 'mrn-1'"):
        ward.add_ecg("tmp-1", [0.0] * 36)  # the feed still sending the old number is told
    for k in range(half, SECONDS * 360, 720):
        ward.add_ecg("mrn-1", x[k : k + 720].tolist())
        ref.add_ecg("mrn-1", x[k : k + 720].tolist())
        ward.tick(), ref.tick()
    # one stream, as if it had never been renamed: the network's state and beats carried
    got, want = ward.ecg_summary("mrn-1"), ref.ecg_summary("mrn-1")
    assert got["counts"] == want["counts"] and sum(got["counts"].values()) > 50
    assert [b["label"] for b in got["last_beats"]] == [b["label"] for b in want["last_beats"]]
    (merged,) = [e for e in ward.events()["events"] if e["kind"] == "patient_merged"]
    assert (merged["source"], merged["monitor"], merged["patient_id"], merged["merged_from"]) == (
        "ward", "ecg", "mrn-1", "tmp-1")  # fmt: skip
    shadow = ward.shadow_report()["arrhythmia"]  # the challenger followed the merge
    assert ward.shadow_errors == 0 and shadow["agreement"] == 1.0
    ward.close()
    again = Ward(untrained_monitor(), journal=WardJournal(state))
    taken = again.restore(again.journal.load())
    assert sorted(again.patients()["ecg"]) == ["mrn-1", "mrn-2"]
    assert taken["ecg_memory"] == 2  # both kept their memory, the merged one under its new id
    assert again.ecg_summary("mrn-1")["counts"] == got["counts"]
    again.close()


def test_an_alarm_going_on_at_a_merge_is_taken_up_under_the_new_record(tmp_path: Path) -> None:
    state = tmp_path / "w.sqlite"
    ward = Ward(untrained_monitor(), feed_timeout_s=0.01, journal=WardJournal(state))
    ward.admit_ecg("tmp-1", 360.0)
    time.sleep(0.03)
    ward.tick()  # the feed is lost under the temporary number
    (lost,) = [e["seq"] for e in ward.events()["events"] if e["kind"] == "feed_lost"]
    ward.merge_ecg("tmp-1", "mrn-1")
    assert ward.alarms_in_progress() == [lost]
    ward.close()
    again = Ward(untrained_monitor(), feed_timeout_s=0.01, journal=WardJournal(state))
    again.restore(again.journal.load())
    assert again.alarms_in_progress() == [lost]  # followed through the merge
    again.add_ecg("mrn-1", [0.0] * 36)
    (back,) = [e for e in again.events(lost)["events"] if e["kind"] == "feed_restored"]
    assert back["ends"] == lost and back["patient_id"] == "mrn-1"
    again.close()


def test_an_alarm_raised_as_the_feed_broke_off_has_its_onset_in_its_strip(
    signals: dict[str, np.ndarray],
) -> None:
    # a run whose beats were still waiting when the feed broke off was raised at the time
    # the feed came back: its strip was cut around the resume (the break's NaN and samples
    # from after it), none of the episode in it
    from vitalgru.scoring.alert_types import AlertRules

    torch.manual_seed(0)
    nets = [ArrhythmiaGRU(n_rr=len(RR_FEATURES), output_delay=1) for _ in range(2)]
    with torch.no_grad():
        for net in nets:
            net.head[-1].bias[2] += 0.25  # towards V, so that runs of V are called
    monitor = ArrhythmiaMonitor(ArrhythmiaEnsemble.of(nets, quality_gate=0.9).eval(),
                                PREPROCESSING, alert_rules=AlertRules(v_run_beats=1))  # fmt: skip
    ward = Ward(monitor, feed_timeout_s=0.5)
    ward.admit_ecg("p", 360.0)
    x = signals["119"]
    for a in range(0, 30 * 360, 360):
        ward.add_ecg("p", x[a : a + 360].tolist(), a)
        ward.tick()
    time.sleep(0.7)
    ward.tick()  # the outage: feed lost
    before = {e["seq"] for e in ward.events()["events"]}
    for a in range(80 * 360, 90 * 360, 360):  # back 50 s later, at its index
        ward.add_ecg("p", x[a - 50 * 360 : a - 50 * 360 + 360].tolist(), a)
        ward.tick()
    assert ward.ecg_summary("p")["break_samples"] == 50 * 360
    runs = [e for e in ward.events()["events"]
            if e["seq"] not in before and e["kind"] == "ventricular_run"]  # fmt: skip
    at_break = [e for e in runs if e["onset_s"] < 30]
    assert at_break  # raised as the feed broke off
    for e in at_break:
        assert e["raised_at_s"] == pytest.approx(30.0)  # was 80: the time it came back
        s = ward.strip(e["seq"])
        assert s["start_s"] <= e["onset_s"] < s["end_s"] <= 35.0
        samples = np.array([np.nan if v is None else v for v in s["samples"]])
        assert np.isfinite(samples[: int((30.0 - s["start_s"]) * 360)]).all()


def test_a_tail_keeps_what_came_before_a_break_longer_than_its_ring() -> None:
    from vitalgru.scoring.ward_ecg_bed import SampleTail

    tail = SampleTail(100, hold=30)
    tail.add(np.arange(100, dtype=np.float32))
    tail.skip(500)  # a break five rings long: the samples before it went out of the ring
    tail.add(np.full(10, -1.0, dtype=np.float32))
    assert tail.oldest == 70
    got = tail.get(60, 620)  # from the oldest kept: the held 70-99, NaN, then the ring
    np.testing.assert_array_equal(got[:30], np.arange(70, 100))
    assert np.isnan(got[30:510]).all() and (got[-10:] == -1).all() and got.size == 540
    assert tail.get(600, 610).tolist() == [-1.0] * 10  # the ring alone as before
    plain = SampleTail(100)
    plain.add(np.arange(100, dtype=np.float32))
    plain.skip(500)
    assert plain.oldest == 500 and plain.get(0, 600).size == 100


def test_breaks_in_a_feed_without_beats_are_kept_bounded() -> None:
    # a flat lead (no R peak ever) losing a chunk now and then: the bed kept every break's
    # end, and the alarm tracker every break, for as long as no beat came
    from vitalgru.scoring.alerts import MAX_BREAKS_KEPT

    ward = Ward(untrained_monitor())
    ward.admit_ecg("p", 250.0)
    n, idx = 125, 0
    for k in range(1200):  # ten minutes of 0.5 s chunks, every fourth lost
        if k % 4 != 3:
            ward.add_ecg("p", [0.0] * n, idx)
            ward.tick()
        idx += n
    bed = ward._ecg_beds["p"]
    assert bed.break_samples == 299 * n and sum(bed.counts.values()) == 0  # the last: unknown
    assert len(bed.break_ends) <= MAX_BREAKS_KEPT + 1
    assert len(ward.ecg._patients["p"].alerts._breaks) <= MAX_BREAKS_KEPT


def test_a_sex_or_icu_flag_other_than_0_or_1_is_refused_not_scored(
    sepsis_fit: tuple[Any, dict, list[dict]],
) -> None:
    # a sex coded 1/2 (ISO 5218: 2 female) or a Unit1 of 3 went into the model as is,
    # with nothing said; the Challenge's flags are 0 or 1
    model, preprocessing, rows = sepsis_fit
    ward = Ward(None, EarlyWarningMonitor(model, preprocessing))
    ward.admit_sepsis("p", {"Gender": 2, "Age": 70})
    row = {k: v for k, v in rows[0].items() if k not in ("Gender", "Age")}
    hour = ward.add_hour("p", {**row, "Unit1": 3.0})
    assert set(hour["rejected"]) >= {"gender_male", "unit_micu"}
    assert "age_years" not in hour["rejected"]
    ward.admit_sepsis("q", {"Age": 70})  # the same hour, sex and ICU type not recorded
    assert ward.add_hour("q", {**row, "Unit1": None})["risk"] == hour["risk"]
    # a flag between 0 and 1 is no flag either: a Gender of 0.5 passed the 0-1 limits
    ward.admit_sepsis("h", {"Gender": 0.5, "Age": 70})
    half = ward.add_hour("h", {**row, "Unit1": 0.5})
    assert set(half["rejected"]) >= {"gender_male", "unit_micu"}
    assert half["risk"] == hour["risk"]


def test_an_impossible_reading_does_not_make_the_hours_value(
    sepsis_fit: tuple[Any, dict, list[dict]], caplog: pytest.LogCaptureFixture
) -> None:
    # readings were averaged before the plausibility limits: an HR of 0 from a lead off
    # beside two of 120 scored 80, and a Fahrenheit 98.6 beside 37.2 threw both out
    model, preprocessing, _ = sepsis_fit
    for readings, column, want in (([0.0, 120.0, 120.0], "HR", 120.0),
                                   ([37.2, 98.6], "Temp", 37.2),
                                   ([0.0], "HR", None)):  # fmt: skip
        ward = Ward(None, EarlyWarningMonitor(model, preprocessing))
        ward.admit_sepsis("p", None, datetime.now(UTC) - timedelta(minutes=30))
        for x in readings:  # one observation per message, as a monitor sends them
            ward.add_observations("p", 1, {column: x})
        with caplog.at_level(logging.WARNING, logger="vitalgru.scoring.ward"):
            (hour,) = ward.close_hours("p")
        name = {"HR": "hr_bpm", "Temp": "temp_c"}[column]
        if want is None:  # none possible: refused and named, as before
            assert hour["rejected"] == [name]
        else:
            assert ward.sepsis_stay("p")["values"][name][0] == pytest.approx(want)
            assert hour["rejected"] == [] and "left out of the hour's value" in caplog.text


def test_an_admission_time_is_judged_on_the_wards_clock_not_the_machines(
    sepsis_fit: tuple[Any, dict, list[dict]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a replay (or a test) runs the ward on a clock of its own: its hours closed on that
    # clock, but an admission time was checked against the machine's, so a stay that clock
    # had just begun was refused as "more than 90 days ago" and one a day ahead of it taken
    model, preprocessing, _ = sepsis_fit
    ward_now = datetime(2016, 3, 1, 12, 0, tzinfo=UTC)
    monkeypatch.setattr("vitalgru.scoring.ward_sepsis_hours._now", lambda: ward_now)
    ward = Ward(sepsis=EarlyWarningMonitor(model, preprocessing))
    ward.admit_sepsis("icu-1", None, ward_now - timedelta(hours=2))
    assert ward.sepsis_admitted_at("icu-1") == (ward_now - timedelta(hours=2)).isoformat()
    assert ward.sepsis_hour_at("icu-1", ward_now) == 3
    with pytest.raises(ValueError, match="in the future"):
        ward.admit_sepsis("icu-2", None, ward_now + timedelta(days=1))
    with pytest.raises(ValueError, match="more than 90 days ago"):
        ward.admit_sepsis("icu-3", None, ward_now - timedelta(days=91))
    ward.admit_sepsis("icu-4")  # now: the ward's
    assert ward.sepsis_admitted_at("icu-4") == ward_now.isoformat()


def test_a_long_streams_trend_is_kept_compactly_and_only_its_last_day_built_to_save(
    signals: dict[str, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vitalgru.scoring.ward_ecg_trend import TREND_KEEP_MINUTES, kept_trends

    ward = Ward(untrained_monitor(), journal=WardJournal(tmp_path / "w.sqlite"))
    ward.admit_ecg("bed-1", 360.0)
    bed = ward._ecg_beds["bed-1"]
    minutes = 2 * TREND_KEEP_MINUTES + 30  # two days and a half-hour of stream
    t, k = 0.0, 0
    while t < minutes * 60.0:  # 11 to 12 beats a minute, the rate varying minute by minute
        ok = int(t // 60) % 97 != 5  # one minute of rejected signal: no rate
        bed.rates.add(BeatCall("bed-1", k, int(t * 360), t, "N", (1.0,), ok, t))
        t, k = t + 5.0 + 0.1 * (int(t // 60) % 7), k + 1
    bed.tail.end = minutes * 60 * 360
    whole = bed.trend()
    assert len(whole["hr_trend_bpm"]) == minutes and None in whole["hr_trend_bpm"]
    built = []
    real = EcgBed.trend

    def trend(self: EcgBed, *args: Any) -> dict[str, Any]:
        out = real(self, *args)
        built.append(len(out["hr_trend_bpm"]))
        return out

    monkeypatch.setattr(EcgBed, "trend", trend)
    ward.save_memory()
    # built: the last day only (the whole stream was built, every minute, under the lock)
    assert built == [TREND_KEEP_MINUTES]
    assert ward.journal.value("ecg_trends")["bed-1"] == kept_trends([whole], 4)
    assert bed.rates.nbytes <= 16 * minutes  # the minutes as numbers, not a dict of them
    # the day kept says which minute of the stream it begins at, and the page labels it from
    # there (it said the stream's start, 1,470 minutes early)
    (saved,) = ward.journal.value("ecg_trends")["bed-1"]
    assert saved["first_minute"] == minutes - TREND_KEEP_MINUTES and "first_minute" not in whole
    from vitalgru.reports.html import shown_at
    from vitalgru.reports.ward import ecg_patient_page_html

    began = datetime.fromisoformat(whole["stream_started_at"])
    label = (began + timedelta(minutes=minutes - TREND_KEEP_MINUTES)).isoformat()
    now = {**ward.ecg_trend("bed-1"), "earlier": [saved]}
    page = ecg_patient_page_html(ward.ecg_summary("bed-1"), [], now)
    assert f"minute since {shown_at(label)} (its" in page
    assert f"minute since {shown_at(began)} (its" not in page
    assert kept_trends([saved]) == [saved]  # cut again: nothing more to cut, nothing added
    # a day kept by an older version, which did not say where it began: labelled from the
    # end of its stream (the next one's start) back over the minutes it holds
    old = {k: v for k, v in saved.items() if k != "first_minute"}
    assert kept_trends([old]) == [old]
    page = ecg_patient_page_html(ward.ecg_summary("bed-1"), [], {**now, "earlier": [old]})
    ended = datetime.fromisoformat(now["stream_started_at"])
    assert f"minute since about {shown_at(ended - timedelta(days=1))}" in page
    # a stream shorter than a day: saved whole, as before
    ward.admit_ecg("bed-2", 360.0)
    for k in range(3):
        ward.add_ecg("bed-2", signals["100"][k * 30 * 360 : (k + 1) * 30 * 360])
        ward.tick()
    short = real(ward._ecg_beds["bed-2"])
    assert len(short["hr_trend_bpm"]) == 2 and short["hr_trend_bpm"][0] is not None
    ward.save_memory()
    assert ward.journal.value("ecg_trends")["bed-2"] == [short]
    ward.close()
