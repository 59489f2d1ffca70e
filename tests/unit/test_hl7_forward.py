"""Alarms sent on to an interface engine as HL7 v2 ORU^R40 over MLLP: every alarm once it is
acknowledged, in order, through a receiver that refuses one and is down for a while, and
from where it stopped after a restart."""

from __future__ import annotations

import socket
import sqlite3
import ssl
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from monitor_kit import untrained_monitor
from tls_kit import make_pki

from pipelines.gateway import create_app
from pipelines.hl7_alarms import ALARM_CLASSES, alarm_id, alarm_message
from pipelines.hl7_forward import AlarmForwarder, client_tls
from pipelines.mllp_server import server_tls
from vitalgru.io.hl7v2 import message_bytes, read_message
from vitalgru.scoring import EarlyWarningMonitor
from vitalgru.scoring.alert_types import KINDS
from vitalgru.scoring.ward import Ward
from vitalgru.scoring.ward_journal import WardJournal


def test_every_alarm_kind_has_a_priority_and_a_type() -> None:
    assert set(KINDS) | {"sepsis_risk", "feed_lost", "feed_rate"} == set(ALARM_CLASSES)
    assert {p for p, _ in ALARM_CLASSES.values()} == {"PH", "PM", "PL"}
    # a life-threatening rhythm pages at high priority, whatever the table says elsewhere
    assert ALARM_CLASSES["pause"] == ALARM_CLASSES["ventricular_run"] == ("PH", "SP")
    assert ALARM_CLASSES["sepsis_risk"] == ("PM", "SP")
    assert ALARM_CLASSES["feed_lost"] == ALARM_CLASSES["poor_signal"] == ("PL", "ST")


#: An event log's id (:attr:`Ward.log_id`).
LOG = "4f0c9a21e3b84d5f9a6c0d1e2f3a4b5c"


def test_an_alarm_as_an_oru_r40_message() -> None:
    alarm = {"seq": 7, "source": "sepsis", "patient_id": "icu|4", "kind": "sepsis_risk",
             "received_at": "2026-12-05T08:15:00+00:00",
             "message": "sepsis risk 0.61 reached 0.40; raised most by Lactate 4.2 mmol/L"}  # fmt: skip
    msg = read_message(alarm_message(alarm, log_id=LOG, authority="HOSP"))
    assert msg.kind == ("ORU", "R40") and msg.control_id == "4f0c9a21-7"
    assert msg.patient_ids == ["icu|4"]  # escaped in the message, read back whole
    # PID-5 is required in v2.6: an empty name of type U (unspecified)
    assert msg.field("PID", 5, 7) == "U" and msg.field("PID", 5) == ""
    assert (
        msg.field("OBR", 2) == msg.field("OBR", 3) == "4f0c9a21-7"
        and msg.field("OBR", 7) == "20261205081500+0000"
    )
    obx = [s for s in msg.segments if s[0] == "OBX"]
    assert [s[3].split("^")[1] for s in obx] == [
        "MDC_EVT_ALARM", "MDC_ATTR_ALERT_SOURCE", "MDC_ATTR_EVENT_PHASE", "MDC_ATTR_ALARM_STATE",
        "MDC_ATTR_ALARM_PRIORITY", "MDC_ATTR_ALERT_TYPE"]  # fmt: skip
    assert [s[4] for s in obx] == ["1.0.0.0.1", "1.0.0.0.2", "1.0.0.0.3", "1.0.0.0.4",
                                   "1.0.0.0.6", "1.0.0.0.7"]  # fmt: skip
    assert [s[5] for s in obx] == ["sepsis_risk^sepsis risk^99VGR", "sepsis", "start", "active",
                                   "PM", "SP"]  # fmt: skip
    assert obx[0][8] == "PM~SP" and obx[0][14] == "20261205081500+0000"
    assert msg.field("NTE", 3) == alarm["message"]
    # the text is a note on the request (OBR [{NTE}] {OBX [{NTE}]}), not on the last facet
    assert [s[0] for s in msg.segments] == ["MSH", "PID", "OBR", "NTE"] + ["OBX"] * 6
    # an escalation continues the alarm it escalates, at the highest priority
    esc = {"seq": 9, "source": "ward", "patient_id": "icu|4", "kind": "escalated",
           "escalates": 7, "received_at": "2026-12-05T08:30:00+00:00",
           "message": "sepsis_risk of patient icu|4 has not been acknowledged for 15 min"}  # fmt: skip
    msg = read_message(alarm_message(esc, alarm, log_id=LOG))
    obx = [s for s in msg.segments if s[0] == "OBX"]
    assert (
        msg.field("OBR", 2) == msg.field("OBR", 3) == "4f0c9a21-7"
        and msg.control_id == "4f0c9a21-9"
    )
    assert [s[5] for s in obx][2:5] == ["continue", "active", "PH"]
    assert msg.field("OBR", 7) == "20261205081500+0000"  # when the alarm was raised
    # the next level of a chain is one more continuation of the same alarm, and says which
    second = {**esc, "seq": 10, "level": 2, "received_at": "2026-12-05T08:45:00+00:00",
              "message": esc["message"].replace("15 min", "30 min (escalation 2 of 3)")}  # fmt: skip
    msg = read_message(alarm_message(second, alarm, log_id=LOG))
    obx = [s for s in msg.segments if s[0] == "OBX"]
    assert (
        msg.field("OBR", 2) == msg.field("OBR", 3) == "4f0c9a21-7"
        and msg.control_id == "4f0c9a21-10"
    )
    assert [s[5] for s in obx][2:5] == ["continue", "active", "PH"]
    assert msg.field("NTE", 3).endswith("(escalation 2 of 3)")
    # the end of the episode ends that alarm
    end = {"seq": 12, "source": "ward", "patient_id": "icu|4", "kind": "alarm_ended",
           "ends": 7, "received_at": "2026-12-05T11:02:00+00:00", "message": "over"}  # fmt: skip
    msg = read_message(alarm_message(end, alarm, log_id=LOG))
    obx = [s for s in msg.segments if s[0] == "OBX"]
    assert msg.field("OBR", 2) == msg.field("OBR", 3) == "4f0c9a21-7" and [s[5] for s in obx][
        2:4
    ] == ["end", "inactive"]
    # a lost feed that is back ends that technical alarm; one restored without it is not sent
    feed = {"seq": 20, "source": "ecg", "patient_id": "bed|2", "kind": "feed_lost",
            "received_at": "2026-12-05T09:00:00+00:00", "message": "no ECG samples"}  # fmt: skip
    again = {"seq": 21, "source": "ecg", "patient_id": "bed|2", "kind": "feed_restored",
             "ends": 20, "received_at": "2026-12-05T09:02:00+00:00",
             "message": "ECG samples are arriving again"}  # fmt: skip
    msg = read_message(alarm_message(again, feed, log_id=LOG))
    obx = [s for s in msg.segments if s[0] == "OBX"]
    assert (
        msg.field("OBR", 2) == msg.field("OBR", 3) == "4f0c9a21-20"
        and msg.field("OBR", 7) == "20261205090000+0000"
    )
    assert [s[5] for s in obx] == ["feed_lost^feed lost^99VGR", "ecg", "end", "inactive",
                                   "PL", "ST"]  # fmt: skip
    assert alarm_message({k: v for k, v in again.items() if k != "ends"}, log_id=LOG) is None
    poor = {**feed, "seq": 30, "kind": "poor_signal", "message": "poor ECG signal"}
    good = {**again, "seq": 31, "kind": "signal_restored", "ends": 30}
    obx = [s for s in read_message(alarm_message(good, poor, log_id=LOG)).segments if s[0] == "OBX"]
    assert [s[5] for s in obx][:4] == ["poor_signal^poor signal^99VGR", "ecg", "end", "inactive"]
    # heartbeats after a pause end that clinical alarm the same way, at its high priority
    pause = {**feed, "seq": 40, "kind": "pause", "message": "pause: no heartbeat for 6.0 s"}
    beats = {**again, "seq": 41, "kind": "beats_resumed", "ends": 40}
    obx = [
        s for s in read_message(alarm_message(beats, pause, log_id=LOG)).segments if s[0] == "OBX"
    ]
    assert [s[5] for s in obx] == ["pause^pause^99VGR", "ecg", "end", "inactive",
                                   "PH", "SP"]  # fmt: skip
    # information and acknowledgements are not alarms
    for kind in ("feed_restored", "monitor_restarted", "acknowledged"):
        assert alarm_message({"seq": 1, "kind": kind}, log_id=LOG) is None
    assert (
        alarm_message(esc, None, log_id=LOG) is None
    )  # an escalation of an alarm no longer in the log


def test_an_alarm_names_its_character_set() -> None:
    # sent as UTF-8 with MSH-18 empty (ASCII), an engine reading 8859/1 took MÜLLER-0042
    # for another id and the alarm matched no patient
    alarm = {"seq": 3, "source": "ecg", "patient_id": "MÜLLER-0042", "kind": "feed_lost",
             "received_at": "2026-12-05T08:15:00+00:00", "message": "no ECG samples"}  # fmt: skip
    text = alarm_message(alarm, log_id=LOG, facility="Hôpital")
    assert text is not None
    sent = message_bytes(text)
    assert sent == text.encode("utf-8")
    msg = read_message(sent)  # read in the set MSH-18 names
    assert msg.charset == "UNICODE UTF-8"
    assert msg.patient_ids == ["MÜLLER-0042"] and msg.field("MSH", 4) == "Hôpital"
    # an ASCII alarm names it as well: every message the engine sees has the same MSH
    plain = read_message(alarm_message({**alarm, "patient_id": "bed-1"}, log_id=LOG))
    assert plain.charset == "UNICODE UTF-8"


def test_two_gateways_alarms_are_told_apart_at_the_receiver(tmp_path: Path) -> None:
    # event numbers begin at 1 in every gateway and state file: the bare number gave the
    # first alarm of each the same control and order ids at an engine that takes both
    engine = _Receiver()
    wards = [Ward(untrained_monitor(), feed_timeout_s=0.01,
                  journal=WardJournal(tmp_path / f"{n}.sqlite")) for n in ("a", "b")]  # fmt: skip
    for ward, bed in zip(wards, ("a1", "b1"), strict=True):
        fwd = AlarmForwarder(ward, "127.0.0.1", engine.port, retry_s=0.05, poll_s=0.02)
        fwd.start()
        _lost_feeds(ward, [bed])
        _wait(lambda w=ward, f=fwd: f.cursor == w.last_seq)  # type: ignore[misc]
        fwd.stop()
    engine.close()
    a, b = (read_message(m) for m in engine.got)
    assert a.field("OBR", 4) == b.field("OBR", 4) and a.patient_ids != b.patient_ids
    seqs = [int(e["seq"]) for w in wards for e in w.events()["events"] if e["kind"] == "feed_lost"]
    assert seqs[0] == seqs[1]  # the same event number in both logs
    for msg, ward, seq in ((a, wards[0], seqs[0]), (b, wards[1], seqs[1])):
        (obr,) = [s for s in msg.segments if s[0] == "OBR"]
        assert obr[2] == obr[3] == alarm_id(ward.log_id, seq)  # whole: within 22 characters
    assert a.control_id != b.control_id and a.field("OBR", 2) != b.field("OBR", 2)
    # within HL7 2.6 (MSH-12): MSH-10 up to 20 characters, OBR-2/3 (EI) 22
    assert a.field("MSH", 12) == "2.6"
    assert len(alarm_id(LOG, 10**11 - 1)) == 20
    # the same log (a restart on the same state file) keeps its ids
    for ward in wards:
        ward.journal.close()
    again = Ward(untrained_monitor(), journal=WardJournal(tmp_path / "a.sqlite"))
    assert again.log_id == wards[0].log_id
    with pytest.raises(ValueError, match="log's id"):
        alarm_id("", 3)


class _Receiver:
    """An interface engine's MLLP listener that answers as told: ``codes`` in turn (then
    AA), and takes every message it answered."""

    def __init__(
        self,
        codes: list[str] | None = None,
        port: int = 0,
        tls: ssl.SSLContext | None = None,
        stale: int = 0,
    ) -> None:
        self.codes = list(codes or [])
        self.stale = stale  # the first answers are for another message (a late repeat)
        self.tls = tls
        self.got: list[str] = []
        self.server = socket.create_server(("127.0.0.1", port))
        self.port = self.server.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.server.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            if self.tls is not None:
                try:
                    conn.settimeout(5)
                    conn = self.tls.wrap_socket(conn, server_side=True)
                except (ssl.SSLError, OSError):
                    conn.close()
                    continue
            with conn:
                conn.settimeout(0.1)
                buf = b""
                while not self.stop.is_set():
                    try:
                        chunk = conn.recv(65536)
                    except TimeoutError:
                        continue
                    if not chunk:
                        break
                    buf += chunk
                    while b"\x1c\r" in buf:
                        frame, buf = buf.split(b"\x1c\r", 1)
                        text = frame.lstrip(b"\x0b").decode()
                        code = self.codes.pop(0) if self.codes else "AA"
                        self.got.append(text)
                        cid = read_message(text).control_id
                        if self.stale:
                            self.stale -= 1
                            cid = "VG0"
                        ack = f"MSH|^~\\&|ENGINE||VITALGRU||20261205||ACK^R40|A{cid}|P|2.6\r"
                        conn.sendall(b"\x0b" + (ack + f"MSA|{code}|{cid}|why\r").encode()
                                     + b"\x1c\r")  # fmt: skip

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.server.close()


def _wait(cond, seconds: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("timed out")


def _lost_feeds(ward: Ward, beds: list[str]) -> None:
    """An alarm per bed: ECG feeds that went quiet."""
    for bed in beds:
        ward.admit_ecg(bed, 360)
        ward.add_ecg(bed, [0.0] * 36)
    time.sleep(0.05)
    ward.tick()
    ward.tick()


def test_alarms_reach_the_receiver_in_order_through_refusals_outages_and_restarts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "ward.sqlite"
    ward = Ward(untrained_monitor(), feed_timeout_s=0.01, journal=WardJournal(path))
    _lost_feeds(ward, ["before"])  # raised before the forwarder ever ran: not sent
    engine = _Receiver(["AE"])  # it refuses the first one
    fwd = AlarmForwarder(ward, "127.0.0.1", engine.port, retry_s=0.05, poll_s=0.02)
    fwd.start()
    _lost_feeds(ward, ["b1", "b2"])
    _wait(lambda: fwd.cursor == ward.last_seq)
    assert [read_message(m).patient_ids for m in engine.got] == [["b1"], ["b2"]]
    assert (fwd.sent, fwd.rejected, fwd.lag) == (1, 1, 0)
    assert "refused event" in caplog.text
    # the engine goes down: the next alarms wait, in order, and arrive once it is back
    port = engine.port
    engine.close()
    _lost_feeds(ward, ["b3", "b4"])
    _wait(lambda: fwd.failures >= 2)
    assert fwd.lag > 0 and fwd.failing
    engine = _Receiver(port=port)
    _wait(lambda: fwd.cursor == ward.last_seq)
    assert [read_message(m).patient_ids[0] for m in engine.got] == ["b3", "b4"]
    assert not fwd.failing
    fwd.stop()
    # a restart goes on from where it stopped: nothing sent twice, nothing lost
    _lost_feeds(ward, ["b5"])
    ward.journal.close()
    again = Ward(untrained_monitor(), feed_timeout_s=0.01, journal=WardJournal(path))
    again.restore(again.journal.load())
    fwd = AlarmForwarder(again, "127.0.0.1", port, retry_s=0.05, poll_s=0.02)
    assert fwd.cursor < again.last_seq
    fwd.start()
    _wait(lambda: fwd.cursor == again.last_seq)
    fwd.stop()
    engine.close()
    assert [read_message(m).patient_ids[0] for m in engine.got] == ["b3", "b4", "b5"]
    assert all(read_message(m).kind == ("ORU", "R40") for m in engine.got)


def test_an_acknowledgement_of_another_message_is_not_taken_for_this_one() -> None:
    ward = Ward(untrained_monitor(), feed_timeout_s=0.01)
    engine = _Receiver(stale=1)  # answers the first alarm with an earlier message's id
    fwd = AlarmForwarder(ward, "127.0.0.1", engine.port, retry_s=0.05, poll_s=0.02,
                         timeout_s=0.5)  # fmt: skip
    fwd.start()
    _lost_feeds(ward, ["b1"])
    _wait(lambda: fwd.cursor == ward.last_seq)
    fwd.stop()
    engine.close()
    assert fwd.failures == 1 and fwd.sent == 1  # counted as sent on the second try only
    assert [read_message(m).patient_ids for m in engine.got] == [["b1"], ["b1"]]


def test_alarms_raised_before_the_first_delivery_outlive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "ward.sqlite"
    ward = Ward(untrained_monitor(), feed_timeout_s=0.01, journal=WardJournal(path))
    engine = _Receiver()
    port = engine.port
    engine.close()  # down from the start
    fwd = AlarmForwarder(ward, "127.0.0.1", port, retry_s=0.05, poll_s=0.02, timeout_s=0.5)
    fwd.start()
    _lost_feeds(ward, ["b1", "b2"])
    _wait(lambda: fwd.failures >= 1)
    fwd.stop()
    ward.journal.close()
    again = Ward(untrained_monitor(), feed_timeout_s=0.01, journal=WardJournal(path))
    again.restore(again.journal.load())
    engine = _Receiver(port=port)
    fwd = AlarmForwarder(again, "127.0.0.1", port, retry_s=0.05, poll_s=0.02)
    fwd.start()
    _wait(lambda: fwd.cursor == again.last_seq)
    fwd.stop()
    engine.close()
    assert [read_message(m).patient_ids[0] for m in engine.got] == ["b1", "b2"]  # none before


def test_the_gateway_runs_the_forwarder_and_counts_it() -> None:
    engine = _Receiver()
    ward = Ward(untrained_monitor(), feed_timeout_s=0.01)
    fwd = AlarmForwarder(ward, "127.0.0.1", engine.port, retry_s=0.05, poll_s=0.02)
    with TestClient(create_app(ward, tick_s=0.05, forwarder=fwd)) as c:
        c.post("/ecg/b7/admit", json={"fs": 360})
        c.post("/ecg/b7", json={"samples": [0.0] * 36})
        _wait(lambda: fwd.sent == 1)
        metrics = c.get("/metrics").text
        health = c.get("/health").json()["alarm_forwarder"]
    engine.close()
    assert "vitalgru_alarms_forwarded_total 1.0" in metrics
    assert "vitalgru_alarms_forward_lag_events 0.0" in metrics
    assert not fwd._thread.is_alive()  # stopped with the app
    assert health["sent"] == 1 and health["behind"] == 0 and not health["failing"]
    assert health["lost"] == 0 and "vitalgru_alarms_forward_lost_events_total 0.0" in metrics
    assert health["target"] == f"127.0.0.1:{engine.port}" and health["tls"] is False
    assert read_message(engine.got[0]).patient_ids == ["b7"]


def test_a_receiver_that_refuses_the_alarms_makes_the_gateway_degraded() -> None:
    # a misconfigured interface engine answers AE to every alarm: nobody is paged, and
    # /health said "ok" with only a count of refusals beside it
    engine = _Receiver(["AE", "AR"])  # then it takes them again
    ward = Ward(untrained_monitor(), feed_timeout_s=0.01)
    fwd = AlarmForwarder(ward, "127.0.0.1", engine.port, retry_s=0.05, poll_s=0.02)
    with TestClient(create_app(ward, tick_s=0, forwarder=fwd)) as c:
        _lost_feeds(ward, ["r1", "r2"])
        _wait(lambda: fwd.rejected == 2)
        health = c.get("/health")
        metrics = c.get("/metrics").text
        _lost_feeds(ward, ["r3"])  # taken: the cause is over
        _wait(lambda: fwd.sent == 1)
        after = c.get("/health").json()
    engine.close()
    assert health.status_code == 200 and health.json()["status"] == "degraded"
    assert health.json()["degraded_because"] == ["alarm_forwarder_refusing"]
    assert health.json()["alarm_forwarder"]["refusing"]
    assert health.json()["alarm_forwarder"]["refused"] == 2
    assert 'vitalgru_degraded{cause="alarm_forwarder_refusing"} 1.0' in metrics
    assert after["status"] == "ok" and not after["alarm_forwarder"]["refusing"]


def test_alarms_go_over_tls_to_a_receiver_whose_certificate_checks_out(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    engine = _Receiver(tls=server_tls(str(pki["server_cert"]), str(pki["server_key"])))
    ward = Ward(untrained_monitor(), feed_timeout_s=0.01)
    fwd = AlarmForwarder(ward, "127.0.0.1", engine.port, retry_s=0.05, poll_s=0.02,
                         tls=client_tls(str(pki["ca"])))  # fmt: skip
    fwd.start()
    _lost_feeds(ward, ["t1"])
    _wait(lambda: fwd.sent == 1)
    fwd.stop()
    assert read_message(engine.got[0]).patient_ids == ["t1"]
    # a receiver the CA did not sign is not sent to: nothing delivered, tried again
    ward2 = Ward(untrained_monitor(), feed_timeout_s=0.01)
    untrusted = AlarmForwarder(ward2, "127.0.0.1", engine.port, retry_s=0.05, poll_s=0.02,
                               tls=client_tls(None))  # the system's CAs  # fmt: skip
    untrusted.start()
    _lost_feeds(ward2, ["t2"])
    _wait(lambda: untrusted.failures >= 2)
    untrusted.stop()
    engine.close()
    assert untrusted.sent == 0 and len(engine.got) == 1


def test_the_end_of_a_sepsis_alarm_episode_is_logged_and_forwarded(
    sepsis_fit: tuple[Any, dict, list[dict]],
) -> None:
    model, preprocessing, rows = sepsis_fit
    probe = Ward(sepsis=EarlyWarningMonitor(model, preprocessing))
    probe.admit_sepsis("p")
    risks = [probe.add_hour("p", r)["risk"] for r in rows]
    k = next(i for i in range(len(risks) - 1) if risks[i] > risks[i + 1] + 1e-4)
    monitor = EarlyWarningMonitor(model, preprocessing)
    monitor.threshold = (risks[k] + risks[k + 1]) / 2  # in alarm at hour k, not at k + 1
    ward = Ward(sepsis=monitor)
    engine = _Receiver()
    fwd = AlarmForwarder(ward, "127.0.0.1", engine.port, retry_s=0.05, poll_s=0.02)
    fwd.start()
    ward.admit_sepsis("p")
    for r in rows[: k + 2]:
        ward.add_hour("p", r)
    events = ward.events()["events"]
    ended = [e for e in events if e["kind"] == "alarm_ended"]
    onsets = {e["seq"]: e for e in events if e["kind"] == "sepsis_risk"}
    assert ended and ended[-1]["ends"] in onsets and ended[-1]["hour"] == int(rows[k + 1]["ICULOS"])
    assert "is over" in ended[-1]["message"] and not ward.sepsis_summary("p")["in_alarm"]
    assert ward.telemetry()["unacknowledged"].get("ward", 0) == 0  # nothing to acknowledge
    _wait(lambda: fwd.cursor == ward.last_seq)
    fwd.stop()
    engine.close()
    phases = [[s for s in read_message(m).segments if s[0] == "OBX"][2][5] for m in engine.got]
    assert phases.count("start") == len(onsets) and phases[-1] == "end"
    assert read_message(engine.got[-1]).field("OBR", 2) == alarm_id(ward.log_id, ended[-1]["ends"])


def test_alarms_gone_from_the_log_during_an_outage_are_said_and_counted(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # the ward keeps the newest events only: after a long outage the forwarder went on from
    # the oldest kept, and the alarms before it were passed over without a word
    import vitalgru.scoring.ward as ward_module
    from pipelines.gateway_metrics import ForwarderCollector

    monkeypatch.setattr(ward_module, "MAX_EVENTS", 20)
    ward = Ward(untrained_monitor())
    engine = _Receiver()
    fwd = AlarmForwarder(ward, "127.0.0.1", engine.port, retry_s=0.05, poll_s=0.02)
    for i in range(1, 26):  # raised while the forwarder could not send
        with ward._queue_lock:
            ward._event({"source": "ecg", "kind": "feed_lost", "patient_id": f"bed{i}",
                         "message": f"feed {i} lost"})  # fmt: skip
    while fwd.cursor < ward.last_seq:
        assert fwd.step()
    fwd.stop()
    engine.close()
    assert [read_message(m).patient_ids[0] for m in engine.got] == [
        f"bed{i}" for i in range(6, 26)]  # fmt: skip
    assert fwd.lost == 5 and fwd.sent == 20
    assert "5 events after event 0 were no longer in the ward's log" in caplog.text
    metrics = {m.name: m.samples[0].value for m in ForwarderCollector(fwd).collect()}
    assert metrics["vitalgru_alarms_forward_lost_events"] == 5
    fwd.step()  # said once, not again on the next look
    assert fwd.lost == 5 and caplog.text.count("were no longer in the ward's log") == 1


def test_an_alarm_open_at_the_upgrade_is_ended_under_the_ids_it_was_raised_with(
    tmp_path: Path,
) -> None:
    # a state file of a version before event logs had ids, an alarm forwarded then as
    # OBR-2 `1^VITALGRU` (MSH-10 `VG1`) and still open: after the upgrade its end went as
    # `<log id>-1`, which the alarm manager matched to no alarm, and it stayed active on
    # the nurses' phones
    path = tmp_path / "ward.sqlite"
    old = Ward(untrained_monitor(), feed_timeout_s=0.01, journal=WardJournal(path))
    _lost_feeds(old, ["bed-1"])
    (lost,) = [e["seq"] for e in old.events()["events"] if e["kind"] == "feed_lost"]
    old.close()
    with sqlite3.connect(path) as db:  # as that version left it: no log id
        db.execute("DELETE FROM meta WHERE key = 'value:log_id'")
    ward = Ward(untrained_monitor(), feed_timeout_s=0.01, journal=WardJournal(path))
    ward.restore(ward.journal.load())
    assert ward.old_ids_up_to == lost  # the last event of the file (restore logs one after)
    engine = _Receiver()
    fwd = AlarmForwarder(ward, "127.0.0.1", engine.port, retry_s=0.05, poll_s=0.02)
    ward.add_ecg("bed-1", [0.0] * 36)  # the feed is back: the end of the alarm
    _lost_feeds(ward, ["bed-2"])  # an alarm raised after the upgrade
    while fwd.cursor < ward.last_seq:
        fwd.step()
    fwd.stop()
    engine.close()
    end = read_message(engine.got[0])
    (new,) = [m for m in map(read_message, engine.got) if m.patient_ids == ["bed-2"]]
    assert [s[5] for s in end.segments if s[0] == "OBX"][2] == "end"
    obr = next(s for s in end.segments if s[0] == "OBR")
    assert obr[2] == obr[3] == f"{lost}^VITALGRU"  # the id the receiver has it under
    # the alarm's own message, had it been sent after the upgrade: as before it too
    again = read_message(alarm_message(old.events()["events"][lost - 1], log_id=ward.log_id,
                                       old_ids_up_to=ward.old_ids_up_to))  # fmt: skip
    assert (again.control_id, again.field("OBR", 2)) == (f"VG{lost}", str(lost))
    assert new.field("OBX", 5) == "feed_lost"
    new_seq = int(new.control_id.split("-")[1])
    assert new.control_id == alarm_id(ward.log_id, new_seq) == f"{ward.log_id[:8]}-{new_seq}"
    assert next(s for s in new.segments if s[0] == "OBR")[2] == new.control_id
    # the end itself was logged after the upgrade: its message has a new control id
    assert end.control_id.startswith(f"{ward.log_id[:8]}-")
    ward.close()


def test_an_end_is_sent_after_a_restart_when_its_alarm_has_left_the_log(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # the forwarder looked for the ended alarm in what it had seen since it started and in
    # the ward's log: after a restart, with the alarm aged out, the end was passed over
    # without a word and the receiver kept the alarm active
    import vitalgru.scoring.ward as ward_module
    from pipelines.gateway_metrics import ForwarderCollector

    monkeypatch.setattr(ward_module, "MAX_EVENTS", 20)
    ward = Ward(untrained_monitor(), feed_timeout_s=0.01,
                journal=WardJournal(tmp_path / "ward.sqlite"))  # fmt: skip
    engine = _Receiver()
    fwd = AlarmForwarder(ward, "127.0.0.1", engine.port, retry_s=0.05, poll_s=0.02)
    _lost_feeds(ward, ["bed-1"])
    lost = next(e["seq"] for e in ward.events(since=0)["events"] if e["kind"] == "feed_lost")
    while fwd.cursor < ward.last_seq:
        fwd.step()
    assert read_message(engine.got[-1]).field("OBR", 2) == alarm_id(ward.log_id, lost)
    for i in range(25):  # other beds' alarms push it out of the log
        with ward._queue_lock:
            ward._event({"source": "ecg", "kind": "poor_signal", "patient_id": f"bed-{i + 2}",
                         "message": "poor signal"})  # fmt: skip
    while fwd.cursor < ward.last_seq:
        fwd.step()
    fwd.stop()
    assert ward.events(since=0, limit=1)["events"][0]["seq"] > lost
    fwd = AlarmForwarder(ward, "127.0.0.1", engine.port, retry_s=0.05, poll_s=0.02)  # restart
    ward.add_ecg("bed-1", [0.0] * 36)  # the feed is back: feed_restored ends that alarm
    end = ward.events(since=0)["events"][-1]
    assert end["kind"] == "feed_restored" and end["alarm_kind"] == "feed_lost"
    while fwd.cursor < ward.last_seq:
        fwd.step()
    msg = read_message(engine.got[-1])
    obx = [s[5] for s in msg.segments if s[0] == "OBX"]
    assert msg.control_id == alarm_id(ward.log_id, end["seq"])
    assert msg.field("OBR", 2) == msg.field("OBR", 3) == alarm_id(ward.log_id, lost)
    assert obx == ["feed_lost^feed lost^99VGR", "ecg", "end", "inactive", "PL", "ST"]
    assert msg.field("OBR", 7) == ""  # when it was raised is no longer known
    assert fwd.unmatched == 0
    # an end logged without the kind (an earlier version's) cannot be built: said, counted
    with ward._queue_lock:
        ward._event({"source": "ecg", "kind": "signal_restored", "patient_id": "bed-3",
                     "ends": lost, "message": "good again"})  # fmt: skip
    sent = len(engine.got)
    while fwd.cursor < ward.last_seq:
        fwd.step()
    fwd.stop()
    engine.close()
    assert len(engine.got) == sent and fwd.unmatched == 1
    assert f"names alarm {lost}, which is no longer in the ward's log" in caplog.text
    metrics = {m.name: m.samples[0].value for m in ForwarderCollector(fwd).collect()}
    assert metrics["vitalgru_alarms_forward_unmatched_events"] == 1


def test_an_ecg_alarm_begins_and_ends_on_the_streams_clock_as_the_other_outputs_say() -> None:
    """The end of a pause said only when it was logged (MSH-7), seconds after its
    ``ended_at``, and OBR-7 when the pause was logged, after its ``onset_at``: the pages,
    CDS cards and FHIR flags give the onset and end on the stream's clock."""
    pause = {"seq": 40, "source": "ecg", "patient_id": "bed2", "kind": "pause",
             "onset_at": "2026-12-05T09:00:00.250+00:00",
             "received_at": "2026-12-05T09:00:09+00:00", "message": "pause"}  # fmt: skip
    beats = {"seq": 41, "source": "ecg", "patient_id": "bed2", "kind": "beats_resumed",
             "ends": 40, "alarm_kind": "pause", "ended_at": "2026-12-05T09:00:06.500+00:00",
             "received_at": "2026-12-05T09:00:12+00:00", "message": "beats again"}  # fmt: skip
    start = read_message(alarm_message(pause, log_id=LOG))
    assert start.field("OBR", 7) == "20261205090000+0000" and start.field("OBR", 8) == ""
    assert next(s for s in start.segments if s[0] == "OBX")[14] == "20261205090000+0000"
    end = read_message(alarm_message(beats, pause, log_id=LOG))
    assert (end.field("OBR", 7), end.field("OBR", 8)) == (
        "20261205090000+0000", "20261205090006+0000")  # fmt: skip
    assert end.field("MSH", 7) == "20261205090012+0000"  # the message itself: when logged
    # an end without ``ended_at`` (a feed back, a sepsis episode over): when it was logged
    back = {**beats, "kind": "feed_restored", "alarm_kind": "feed_lost"}
    del back["ended_at"]
    lost = {**pause, "kind": "feed_lost"}
    del lost["onset_at"]
    msg = read_message(alarm_message(back, lost, log_id=LOG))
    assert (msg.field("OBR", 7), msg.field("OBR", 8)) == (
        "20261205090009+0000", "20261205090012+0000")  # fmt: skip
