"""Hours assembled from observations as they arrive, and HL7 v2 messages (ADT and ORU) taken
whole over MLLP or HTTP: what an interface engine sends reaches the ward as the same hours
a JSON feed would send, once each, and every message gets the acknowledgement it should."""

from __future__ import annotations

import socket
import sqlite3
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from fastapi.testclient import TestClient
from monitor_kit import untrained_monitor
from prometheus_client.parser import text_string_to_metric_families
from tls_kit import make_pki

from pipelines.gateway import create_app
from pipelines.gateway_metrics import IntakeCollector
from pipelines.hl7_inbox import Hl7Inbox
from pipelines.mllp_server import server_tls
from pipelines.ward_requests import Refused, score_observations
from vitalgru.errors import ConflictError
from vitalgru.io.fhir_observations import row_to_observations
from vitalgru.io.hl7v2 import read_message
from vitalgru.io.psv import PSV_COLUMNS
from vitalgru.scoring import EarlyWarningMonitor
from vitalgru.scoring.ward import Ward
from vitalgru.scoring.ward_journal import WardJournal
from vitalgru.scoring.ward_sepsis import MAX_HOUR_GAP

STATIC = ("Age", "Gender", "Unit1", "Unit2", "HospAdmTime")
HOURS = 6  # of the recorded stay fed in these tests


def _ward(sepsis_fit: tuple[Any, dict, list[dict]], **kw: Any) -> Ward:
    model, preprocessing, _ = sepsis_fit
    return Ward(None, EarlyWarningMonitor(model, preprocessing), **kw)


def _restarted(sepsis_fit: tuple[Any, dict, list[dict]], path: Path) -> Ward:
    """The ward as a gateway starting again on the state file at path has it."""
    ward = _ward(sepsis_fit, journal=WardJournal(path))
    ward.restore(ward.journal.load())
    return ward


def _measured(row: dict) -> dict:
    return {c: v for c, v in row.items() if c not in (*STATIC, "ICULOS") and v is not None}


def _risks(ward: Ward, pid: str) -> tuple[list[int], list[float]]:
    st = ward.sepsis_stay(pid)
    return st["hours"], st["risks"]


def test_an_hour_assembled_from_observations_scores_as_the_hour_sent_whole(
    sepsis_fit: tuple[Any, dict, list[dict]], monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = sepsis_fit[2][:HOURS]
    ward = _ward(sepsis_fit)
    start = datetime.now(UTC) - timedelta(hours=HOURS, minutes=30)  # hour 7 is going on
    static = {k: rows[0][k] for k in STATIC}
    ward.admit_sepsis("whole", static, start)
    ward.admit_sepsis("parts", static, start)
    for row in rows:
        ward.add_hour("whole", row)
        hour = int(row["ICULOS"])
        for col, v in _measured(row).items():  # one message per measurement
            if col == "HR":  # and the heart rate twice, around its value: the mean is it
                ward.add_observations("parts", hour, {"HR": [v - 2.0]})
                v = [v + 2.0]
            held = ward.add_observations("parts", hour, {col: v})
            assert held["pending"] and held["hour"] == hour
    # each hour closed when the next one's first observation came (they are all past due);
    # the last, past due too, waits until none has come for a while
    assert ward.sepsis_summary("parts")["assembling"] == {
        HOURS: {c: 1 + (c == "hr_bpm") for c in _measured_cols(rows[-1])}
    }
    assert ward.tick()["hours"] == 0
    monkeypatch.setattr("vitalgru.scoring.ward_sepsis_hours.HOUR_QUIET_S", 0.0)
    assert ward.tick()["hours"] == 1
    assert ward.sepsis_summary("parts")["assembling"] == {}
    hours, got = _risks(ward, "parts")
    want_hours, want = _risks(ward, "whole")
    # this stay's first hour has no measurement, so no observation: it is scored as the empty
    # row it is, before the second
    assert not _measured(rows[0])
    assert hours == want_hours == [int(r["ICULOS"]) for r in rows]
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert ward.telemetry()["sepsis_hours_assembling"] == 0
    # a late observation of a scored hour is refused and changes nothing
    with pytest.raises(ValueError, match="ICU hour 3 was already scored"):
        ward.add_observations("parts", 3, {"HR": 80.0})
    # the hour going on is held until it closes, or until someone closes it
    nxt = HOURS + 1
    ward.add_observations("parts", nxt, {"HR": 90.0, "Resp": 20.0})
    assert ward.tick()["hours"] == 0
    assert ward.sepsis_summary("parts")["assembling"] == {nxt: {"hr_bpm": 1, "resp_per_min": 1}}
    assert ward.telemetry()["sepsis_hours_assembling"] == 1
    (closed,) = ward.close_hours("parts")
    assert closed["hour"] == nxt and _risks(ward, "parts")[0][-1] == nxt
    for bad, says in (({"HR": "fast"}, "not a number"), ({"Age": 70}, "not a measured column")):
        with pytest.raises(ValueError, match=says):
            ward.add_observations("parts", nxt + 1, bad)
    with pytest.raises(KeyError):
        ward.add_observations("nobody", 1, {"HR": 80.0})


def _measured_cols(row: dict) -> list[str]:
    return [PSV_COLUMNS[c] for c in _measured(row)]


def test_a_row_sent_whole_waits_for_the_hours_being_assembled_before_it(
    sepsis_fit: tuple[Any, dict, list[dict]],
) -> None:
    ward = _ward(sepsis_fit)
    ward.admit_sepsis("p", None, datetime.now(UTC) - timedelta(minutes=150))
    ward.add_observations("p", 2, {"HR": 88.0})
    with pytest.raises(ValueError, match="hour 2 is being assembled"):
        ward.add_hour("p", {"ICULOS": 2, "HR": 90.0})
    ward.add_hour("p", {"ICULOS": 3, "HR": 95.0})  # hours 1 (empty) and 2 first, then 3
    assert _risks(ward, "p")[0] == [1, 2, 3]
    np.testing.assert_array_equal(ward.sepsis_stay("p")["values"]["hr_bpm"], [np.nan, 88, 95])


def test_a_mistyped_icu_hour_is_refused_before_it_changes_anything(
    sepsis_fit: tuple[Any, dict, list[dict]],
) -> None:
    # ICULOS 5000 for 50 was scored after 4,950 empty hours, and every right hour after it
    # was refused as out of order: the stay could only be thrown away
    rows = sepsis_fit[2]
    ward = _ward(sepsis_fit)
    ward.admit_sepsis("p", None)
    for h in range(1, 50):
        ward.add_hour("p", {**rows[h % len(rows)], "ICULOS": h})
    with TestClient(create_app(ward, tick_s=0)) as client:
        r = client.post("/vitals/p", json={"ICULOS": 5000, "HR": 90.0})
        assert r.status_code == 422 and "4951 hours after the latest (49)" in r.json()["detail"]
        er7 = "x-application/hl7-v2+er7"
        oru = ("MSH|^~\\&|M|I|V|H|20261205||ORU^R01|T9|P|2.5\rPID|1||p\r"
               "OBX|1|NM|8867-4^HR^LN||91|/min^^UCUM|||||F\r")  # fmt: skip
        r = client.post("/vitals/p/hl7?iculos=5000", content=oru,
                        headers={"content-type": er7, "accept": er7})  # fmt: skip
        assert r.status_code == 422 and "MSA|AE|T9|" in r.text and "typing error" in r.text
    assert ward.sepsis_summary("p")["last_hour"]["hour"] == 49
    assert ward.add_hour("p", {"ICULOS": 50, "HR": 90.0})["hour"] == 50
    # a real gap up to MAX_HOUR_GAP is taken, a longer one bridged by empty rows
    assert ward.add_hour("p", {"ICULOS": 50 + MAX_HOUR_GAP, "HR": 91.0})["hour"] == 122
    with pytest.raises(ValueError, match="at most 72 hours apart"):
        ward.add_hour("p", {"ICULOS": 122 + MAX_HOUR_GAP + 1})
    # a first row may come days into the stay (put on scoring late), not past 90 days
    ward.admit_sepsis("late", None)
    with pytest.raises(ValueError, match="more than 90 days into it"):
        ward.add_hour("late", {"ICULOS": 5000, "HR": 90.0})
    assert ward.add_hour("late", {"ICULOS": 304, "HR": 90.0})["hour"] == 304
    # observations sent for an hour that has not begun (counted from the admission)
    ward.admit_sepsis("obs", None, datetime.now(UTC) - timedelta(minutes=150))  # in hour 3
    with pytest.raises(ValueError, match="ICU hour 500 has not begun .*hour 3 is going on"):
        ward.add_observations("obs", 500, {"HR": 90.0})
    assert ward.sepsis_summary("obs")["assembling"] == {}
    assert ward.add_observations("obs", 3, {"HR": 90.0})["hour"] == 3


def test_hours_that_pass_without_observations_are_scored_as_they_close(
    sepsis_fit: tuple[Any, dict, list[dict]], monkeypatch: pytest.MonkeyPatch
) -> None:
    ward = _ward(sepsis_fit)
    real = datetime.now(UTC)

    def at(minutes: float) -> None:  # time passes: the wall clock and the monotonic one
        monkeypatch.setattr(
            "vitalgru.scoring.ward_sepsis_hours._now", lambda: real + timedelta(minutes=minutes)
        )
        monkeypatch.setattr("vitalgru.scoring.ward_sepsis_hours._clock", lambda: 60.0 * minutes)

    at(0)
    ward.admit_sepsis("live", None, real - timedelta(minutes=150))  # in hour 3
    ward.add_observations("live", 3, {"HR": 101.0})
    monkeypatch.setattr("vitalgru.scoring.ward_sepsis_hours.HOUR_QUIET_S", 0.0)
    at(20)  # hour 3 has ended, not closed (10 min of grace)
    assert ward.tick()["hours"] == 0
    at(45)  # closed: hours 1 and 2 as rows without measurements, then 3
    assert ward.tick()["hours"] == 3 and _risks(ward, "live")[0] == [1, 2, 3]
    at(100)  # hour 4 ended at 90 min with nothing: scored as it closes
    assert ward.tick()["hours"] == 1 and _risks(ward, "live")[0] == [1, 2, 3, 4]
    at(190)  # and hour 5 (ended 150 min); hour 6 is going on
    assert ward.tick()["hours"] == 1
    ward.add_observations("live", 6, {"HR": 120.0})
    at(260)
    assert ward.tick()["hours"] == 1  # hour 6, with its observation
    hours, _ = _risks(ward, "live")
    assert hours == [1, 2, 3, 4, 5, 6]
    hr = ward.sepsis_stay("live")["values"]["hr_bpm"]
    np.testing.assert_array_equal(hr, [np.nan, np.nan, 101.0, np.nan, np.nan, 120.0])
    # a stay sent after the fact is not filled ahead of its messages: its hours had ended
    # before they came
    monkeypatch.setattr("vitalgru.scoring.ward_sepsis_hours.HOUR_QUIET_S", 60.0)
    at(0)
    ward.admit_sepsis("late", None, real - timedelta(hours=10))
    ward.add_observations("late", 2, {"HR": 90.0})
    assert ward.tick()["hours"] == 0  # hour 2 waits for its other parts
    ward.add_observations("late", 3, {"HR": 95.0})  # the sender moved on: 1 and 2 close
    assert _risks(ward, "late")[0] == [1, 2]
    assert [r["hour"] for r in ward.close_hours("late")] == [3]
    assert ward.tick()["hours"] == 0  # hours 4 to 9 ended before any message came


def test_an_observation_from_a_sender_clock_a_little_ahead_is_placed_in_its_hour(
    sepsis_fit: tuple[Any, dict, list[dict]],
) -> None:
    """A monitor whose clock runs 2 min ahead (within the 5-min leeway) would have every
    observation refused as from an hour not begun, and the patient go unscored."""
    ward = _ward(sepsis_fit)
    now = datetime.now(UTC)
    ward.admit_sepsis("p", None, now - timedelta(hours=2, minutes=30))  # in hour 3
    assert ward.sepsis_hour_at("p", now + timedelta(minutes=2)) == 3


def test_an_observation_of_the_hour_just_scored_is_refused_not_lost(
    sepsis_fit: tuple[Any, dict, list[dict]],
) -> None:
    """A late result for an hour already scored, taken into an hour that can never be
    scored again, would be dropped silently instead of refused to its sender."""
    ward = _ward(sepsis_fit)
    ward.admit_sepsis("p", None, datetime.now(UTC) - timedelta(hours=5))
    ward.add_observations("p", 3, {"HR": 80.0})
    ward.close_hours("p")
    assert ward.sepsis_summary("p")["last_hour"]["hour"] == 3
    with pytest.raises(ValueError, match="already scored"):
        ward.add_observations("p", 3, {"HR": 90.0})


def test_an_hour_closes_its_grace_after_its_end_counted_from_the_admission(
    sepsis_fit: tuple[Any, dict, list[dict]],
) -> None:
    """Closing ICU hour 3 an hour early (from its start) would score it before most of its
    observations came, and tell the sender so."""
    ward = _ward(sepsis_fit)
    t0 = (datetime.now(UTC) - timedelta(hours=2, minutes=30)).replace(microsecond=0)
    ward.admit_sepsis("p", None, t0)
    out = ward.add_observations("p", 3, {"HR": 80.0})
    closes = datetime.fromisoformat(out["closes_at"].replace("Z", "+00:00"))
    assert closes == t0 + timedelta(hours=3, seconds=ward.hour_close_after_s)


def test_a_corrected_result_replaces_the_value_it_corrects(
    sepsis_fit: tuple[Any, dict, list[dict]],
) -> None:
    """A lactate of 6.0 corrected to 2.0 must leave 2.0 alone, not a mean of the wrong value
    and its correction in the hour the model scores."""
    ward = _ward(sepsis_fit)
    ward.admit_sepsis("p", None, datetime.now(UTC) - timedelta(hours=5))
    ward.add_observations("p", 3, {"Lactate": 6.0})
    out = ward.add_observations("p", 3, {"Lactate": 2.0}, replace=["Lactate"])
    assert out["measurements"] == {"lactate_mmol_l": 1}
    assert [h["hour"] for h in ward.close_hours("p")] == [1, 2, 3]
    assert ward.sepsis_stay("p")["values"]["lactate_mmol_l"][2] == pytest.approx(2.0)


def test_the_next_hours_vital_sign_does_not_close_an_hour_within_its_grace(
    sepsis_fit: tuple[Any, dict, list[dict]],
) -> None:
    """A minute into hour 3, hour 2 is within its 10-min grace: scoring it on hour 3's first
    vital sign would refuse the blood gas of hour 2 resulted a minute later."""
    ward = _ward(sepsis_fit)
    ward.admit_sepsis("p", None, datetime.now(UTC) - timedelta(hours=2, minutes=1))
    ward.add_observations("p", 2, {"HR": 80.0})
    out = ward.add_observations("p", 3, {"HR": 82.0})
    assert out["scored"] == []
    ward.add_observations("p", 2, {"Lactate": 2.5})  # not refused as late


def test_hours_without_observations_go_on_being_scored_after_a_restart(
    sepsis_fit: tuple[Any, dict, list[dict]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ward.sqlite"
    real = datetime.now(UTC)
    ward = _ward(sepsis_fit, journal=WardJournal(path))
    ward.admit_sepsis("live", None, real - timedelta(minutes=150))  # in hour 3
    ward.add_observations("live", 3, {"HR": 101.0})
    ward.journal.close()
    again = _restarted(sepsis_fit, path)
    monkeypatch.setattr("vitalgru.scoring.ward_sepsis_hours.HOUR_QUIET_S", 0.0)
    monkeypatch.setattr("vitalgru.scoring.ward_sepsis_hours._now",
                        lambda: real + timedelta(minutes=100))  # fmt: skip
    # hours 1 and 2 (nothing), 3 (its observation), and 4, which passed with nothing
    assert again.tick()["hours"] == 4 and _risks(again, "live")[0] == [1, 2, 3, 4]


def test_hours_being_assembled_outlive_a_restart_and_a_discharge_scores_them(
    sepsis_fit: tuple[Any, dict, list[dict]], tmp_path: Path
) -> None:
    path = tmp_path / "ward.sqlite"
    start = datetime.now(UTC) - timedelta(minutes=70)  # in hour 2
    ward = _ward(sepsis_fit, journal=WardJournal(path))
    ward.admit_sepsis("p", {"Age": 70}, start)
    ward.add_observations("p", 1, {"HR": 100.0, "Temp": 38.5})
    ward.close_hours("p")
    ward.add_observations("p", 2, {"HR": 110.0, "O2Sat": 93.0})
    ward.add_observations("p", 2, {"HR": 120.0})
    ward.journal.close()

    again = _ward(sepsis_fit, journal=WardJournal(path))
    assert again.restore(again.journal.load())["hours"] == 1
    assert again.sepsis_summary("p")["assembling"] == {2: {"hr_bpm": 2, "spo2_pct": 1}}
    again.add_observations("p", 2, {"Resp": 24.0})
    final = again.discharge_sepsis("p")
    assert final["last_hour"]["hour"] == 2 and final["discharged"]

    direct = _ward(sepsis_fit)
    direct.admit_sepsis("p", {"Age": 70}, start)
    direct.add_hour("p", {"ICULOS": 1, "HR": 100.0, "Temp": 38.5})
    risk = direct.add_hour("p", {"ICULOS": 2, "HR": 115.0, "O2Sat": 93.0, "Resp": 24.0})
    assert final["last_hour"]["risk"] == pytest.approx(risk["risk"], abs=1e-6)
    assert WardJournal(path).load().sepsis == []  # the discharge took it off the file


# --------------------------------------------------------------------------- HL7 v2 messages


def _ts(t: datetime, offset: bool = True) -> str:
    return t.strftime("%Y%m%d%H%M%S") + (t.strftime("%z") if offset else "")


def _adt(trigger: str, control: str, patient: str, when: datetime, unit: str = "ICU",
         born: str = "19550310", sex: str = "F", hospital: datetime | None = None,
         offset: bool = True) -> str:  # fmt: skip
    pv1 = ["PV1", "1", "I", f"{unit}^12^1"] + [""] * 41
    if hospital is not None:
        pv1[44] = _ts(hospital, offset)
    return "\r".join([
        f"MSH|^~\\&|ADT|HOSP|VITALGRU|HOSP|{_ts(when, offset)}||ADT^{trigger}^ADT_A01|{control}"
        "|P|2.5",
        f"EVN|{trigger}|{_ts(when, offset)}||||{_ts(when, offset)}",
        f"PID|1||{patient}^^^HOSP^MR~55^^^X^PI||Doe^Jane||{born}|{sex}",
        "|".join(pv1),
    ]) + "\r"  # fmt: skip


def _oru(obs: list[dict], patient: str, control: str, when: datetime) -> str:
    obx = [
        f"OBX|{i}|NM|{o['code']['coding'][0]['code']}^^LN||{o['valueQuantity']['value']!r}|"
        f"{o['valueQuantity']['code']}^^UCUM|||||F|||{_ts(when)}"
        for i, o in enumerate(obs, 1)
    ]
    head = [f"MSH|^~\\&|MON|ICU|VITALGRU|HOSP|{_ts(when)}||ORU^R01|{control}|P|2.5",
            f"PID|1||{patient}^^^HOSP^MR"]  # fmt: skip
    return "\r".join(head + obx) + "\r"


def _msa(ack: str) -> list[str]:
    return ack.split("\r")[1].split("|")


def test_adt_messages_admit_transfer_and_discharge(
    sepsis_fit: tuple[Any, dict, list[dict]],
) -> None:
    ward = _ward(sepsis_fit)
    intake = IntakeCollector()
    berlin = ZoneInfo("Europe/Berlin")
    inbox = Hl7Inbox(ward, intake, tz=berlin, units=["ICU", "MICU"])
    local = datetime(2026, 12, 4, 21, 15)  # Berlin time, sent without an offset
    hospital = local - timedelta(hours=30)
    msg = _adt("A01", "A1", "mrn-7", local, hospital=hospital, offset=False)
    reply = inbox.handle(msg)
    assert reply.code == "AA" and _msa(reply.ack)[:3] == ["MSA", "AA", "A1"], reply.text
    assert reply.ack.split("\r")[0].split("|")[8] == "ACK^A01^ACK"
    summary = ward.sepsis_summary("mrn-7")
    assert summary["admitted_at"] == "2026-12-04T20:15:00+00:00"  # CET is UTC+1
    assert summary["static"] == {"age_years": 71.0, "gender_male": 0.0, "hosp_adm_time_h": -30.0}
    # resent (its acknowledgement was lost): the same answer, not taken twice
    again = inbox.handle(msg)
    assert again.duplicate and again.ack == reply.ack and ward.patients()["sepsis"] == ["mrn-7"]
    # the same control id from another sending application is another message
    other_app = msg.replace("MSH|^~\\&|ADT|HOSP|", "MSH|^~\\&|LAB|HOSP|")
    assert not inbox.handle(other_app).duplicate
    other = inbox.handle(_adt("A01", "A2", "mrn-7", local, offset=False))
    assert other.code == "AA" and "already on sepsis scoring" in other.text
    # admissions elsewhere are not acted on; transfers in and out admit and discharge
    assert "not scored here" in inbox.handle(_adt("A01", "A3", "mrn-8", local, "WARD3")).text
    assert "mrn-8" not in ward.patients()["sepsis"]
    when = datetime.now(UTC) - timedelta(hours=1)
    assert inbox.handle(_adt("A02", "A4", "mrn-8", when, "MICU")).code == "AA"
    assert ward.sepsis_summary("mrn-8")["admitted_at"] == when.isoformat(timespec="seconds")
    out = inbox.handle(_adt("A02", "A5", "mrn-8", when, "WARD3"))
    assert "transferred to WARD3" in out.text and "mrn-8" not in ward.patients()["sepsis"]
    out = inbox.handle(_adt("A03", "A6", "mrn-7", when))
    assert out.code == "AA" and out.result["discharged"] and ward.patients()["sepsis"] == []
    assert "nothing to do" in inbox.handle(_adt("A03", "A7", "mrn-7", when)).text
    assert "not acted on" in inbox.handle(_adt("A31", "A8", "mrn-7", when)).text
    # a result message with the observations of several hours: each to its own hour
    inbox.handle(_adt("A01", "A10", "mrn-11", when - timedelta(hours=1)))
    hr = row_to_observations({"HR": 88.0})
    two = _oru(hr, "mrn-11", "R1", when - timedelta(minutes=50)).rstrip("\r").split("\r")
    two.append(_oru(hr, "mrn-11", "R1", when + timedelta(minutes=10)).split("\r")[2])
    out = inbox.handle("\r".join(two) + "\r")
    assert out.code == "AA" and "ICU hours 1-2, 2 used" in out.text, out.text
    assert [h["hour"] for h in out.result["hours"]] == [1, 2]
    # what was left out of an accepted message is said in the acknowledgement, all an HL7
    # sender sees (it said "1 used" before)
    lactate = f"OBX|2|SN|2524-7^Lactate^LN||<^0.3|mmol/L|||||F|||{_ts(when)}\r"
    out = inbox.handle(_oru(hr, "mrn-11", "R3", when + timedelta(minutes=20)) + lactate)
    assert out.code == "AA" and out.text.endswith(
        "1 used; 1 skipped: OBX 2 (no valueQuantity with a value)"
    ), out.text
    future = _oru(hr, "mrn-11", "R2", datetime.now(UTC) + timedelta(hours=2))
    out = inbox.handle(future)
    assert out.code == "AE" and "is in the future" in out.text
    # a fault of the gateway's own is an error the sender sees, not a dropped connection
    broken = Hl7Inbox(ward, intake)
    broken._adt = lambda msg, trigger: 1 / 0  # type: ignore[method-assign]
    out = broken.handle(_adt("A01", "Z1", "mrn-12", when))
    assert (out.code, out.status) == ("AE", 500) and "failed to take" in out.text
    assert _msa(out.ack)[:3] == ["MSA", "AE", "Z1"]  # what the sender reads: resend it
    # what is not a message the gateway reads is rejected, with the reason
    siu = "MSH|^~\\&|S|H|V|H|20261205||SIU^S12|S1|P|2.5\r"
    assert inbox.handle(siu).code == "AR"
    bad = inbox.handle(b"hello")
    assert bad.code == "AR" and _msa(bad.ack)[:2] == ["MSA", "AR"]
    future = inbox.handle(_adt("A01", "A9", "mrn-9", datetime.now(UTC) + timedelta(days=1)))
    assert future.code == "AE" and "in the future" in future.text
    assert inbox.handle(_adt("A01", "A9", "mrn-9", when)).code == "AA"  # an error: retried
    # a time that cannot be placed (no offset, no site zone) admits as of now, and says so
    plain = Hl7Inbox(ward, intake)
    out = plain.handle(_adt("A01", "B1", "mrn-10", local, offset=False))
    assert out.code == "AA" and "admitted as of now" in out.text
    assert "no time of day or no UTC offset" in out.text


def _merge(control: str, patient: str, prior: str, when: datetime) -> str:
    """An ``ADT^A40``: ``prior`` merged into ``patient``."""
    head = _adt("A40", control, patient, when).rstrip("\r").split("\r")[:3]
    return "\r".join([*head, f"MRG|{prior}^^^HOSP^MR"]) + "\r"


def _unstatic(row: dict) -> dict:
    return {c: v for c, v in row.items() if c not in STATIC}


def test_adt_updates_demographics_and_merges_records_of_one_patient(
    sepsis_fit: tuple[Any, dict, list[dict]],
) -> None:
    rows = [_unstatic(r) for r in sepsis_fit[2][:HOURS]]
    ward = _ward(sepsis_fit, shadow_sepsis=EarlyWarningMonitor(*sepsis_fit[:2]))
    inbox = Hl7Inbox(ward, IntakeCollector())
    start = datetime.now(UTC) - timedelta(hours=HOURS + 1)
    born = start.replace(year=start.year - 71) - timedelta(days=30)
    assert (
        inbox.handle(_adt("A01", "M1", "tmp-1", start, born=born.strftime("%Y%m%d"))).code == "AA"
    )
    assert ward.sepsis_summary("tmp-1")["static"] == {"age_years": 71.0, "gender_male": 0.0}
    for row in rows[:3]:
        ward.add_hour("tmp-1", row)
    # the registration is corrected hours later: ten years older, male; the age is counted
    # to the stay's start, not to the message
    older = born.replace(year=born.year - 10).strftime("%Y%m%d")
    out = inbox.handle(_adt("A08", "M2", "tmp-1", datetime.now(UTC), born=older, sex="M"))
    assert out.code == "AA" and "Age 81, Gender 1 for the hours scored from now on" in out.text
    assert out.result["static"] == {"age_years": 81.0, "gender_male": 1.0}
    ward.add_hour("tmp-1", rows[3])
    # the temporary number is merged into the patient's own record: the stay goes on there
    out = inbox.handle(_merge("M3", "mrn-100", "tmp-1", datetime.now(UTC)))
    assert out.code == "AA" and "tmp-1 merged into mrn-100" in out.text, out.text
    assert ward.patients()["sepsis"] == ["mrn-100"]
    for row in rows[4:]:
        ward.add_hour("mrn-100", row)
    merged = ward.sepsis_stay("mrn-100")
    # the same hours scored as one stay under one name, with the demographics changed
    # after its third hour
    ref = _ward(sepsis_fit)
    ref.admit_sepsis("ref", None, start)
    for i, row in enumerate(rows):
        static = {"Age": 71.0, "Gender": 0.0} if i < 3 else {"Age": 81.0, "Gender": 1.0}
        ref.add_hour("ref", {**row, **static})
    want = ref.sepsis_stay("ref")
    assert merged["hours"] == want["hours"] == [int(r["ICULOS"]) for r in rows]
    np.testing.assert_allclose(merged["risks"], want["risks"], atol=1e-6)
    assert ward.sepsis_summary("mrn-100")["last_hour"]["patient_id"] == "mrn-100"
    shadow = ward.shadow_report()  # the challenger followed the merge: the same model here
    assert ward.shadow_errors == 0 and shadow["early_warning"]["patients"] == 1
    assert shadow["early_warning"]["hours"] == HOURS
    assert shadow["early_warning"]["risk_max_abs_diff"] == pytest.approx(0.0, abs=1e-6)
    (event,) = ward.events(source="ward")["events"]
    assert (event["kind"], event["patient_id"], event["merged_from"]) == (
        "patient_merged", "mrn-100", "tmp-1")  # fmt: skip
    # a merge into a record with a stay of its own is refused; nothing to merge is said
    assert inbox.handle(_adt("A01", "M4", "tmp-2", start)).code == "AA"
    out = inbox.handle(_merge("M5", "mrn-100", "tmp-2", datetime.now(UTC)))
    assert (out.code, out.status) == ("AE", 409) and "stay of their own" in out.text
    assert sorted(ward.patients()["sepsis"]) == ["mrn-100", "tmp-2"]
    out = inbox.handle(_merge("M6", "mrn-5", "tmp-9", datetime.now(UTC)))
    assert out.code == "AA" and "nothing to merge" in out.text
    no_mrg = _adt("A40", "M7", "mrn-100", datetime.now(UTC))
    assert inbox.handle(no_mrg).status == 422
    assert "nothing to update" in inbox.handle(_adt("A08", "M8", "mrn-6", start)).text


def test_a_merge_moves_the_ecg_stream_with_the_stay_or_nothing_at_all(
    sepsis_fit: tuple[Any, dict, list[dict]],
) -> None:
    model, preprocessing, _ = sepsis_fit
    ward = Ward(untrained_monitor(), EarlyWarningMonitor(model, preprocessing))
    inbox = Hl7Inbox(ward, IntakeCollector())
    start = datetime.now(UTC) - timedelta(hours=2)
    for pid in ("tmp-1", "tmp-2"):  # on both monitors under a temporary number
        ward.admit_sepsis(pid, None, start)
        ward.admit_ecg(pid, 360.0)
    ward.admit_ecg("mrn-9", 360.0)  # a stream of its own under the record merged into
    out = inbox.handle(_merge("M1", "mrn-1", "tmp-1", datetime.now(UTC)))
    assert out.code == "AA", out.text
    assert out.text.endswith("patient tmp-1 merged into mrn-1: the sepsis stay goes on and "
                             "the ECG stream goes on under mrn-1")  # fmt: skip
    assert out.result["patient_id"] == "mrn-1" and "fs" not in out.result  # the stay's summary
    on = ward.patients()
    assert sorted(on["sepsis"]) == ["mrn-1", "tmp-2"] and "mrn-1" in on["ecg"]
    monitors = [e["monitor"] for e in ward.events(source="ward")["events"]]
    assert monitors == ["sepsis", "ecg"]
    out = inbox.handle(_merge("M2", "mrn-9", "tmp-2", datetime.now(UTC)))
    assert (out.code, out.status) == ("AE", 409) and "has an ECG stream of their own" in out.text
    on = ward.patients()  # refused before either moved: the stay stays too
    assert "tmp-2" in on["sepsis"] and "tmp-2" in on["ecg"]


def test_a_merged_stay_keeps_its_alarm_episode_across_a_restart(
    sepsis_fit: tuple[Any, dict, list[dict]], tmp_path: Path
) -> None:
    path = tmp_path / "ward.sqlite"
    rows = sepsis_fit[2][:3]
    ward = _ward(sepsis_fit, journal=WardJournal(path))
    ward.sepsis.threshold = 0.0  # every hour is in alarm: one episode from the first hour
    ward.admit_sepsis("tmp-1", None, datetime.now(UTC) - timedelta(hours=4))
    ward.add_hour("tmp-1", rows[0])
    onset = ward.sepsis_summary("tmp-1")["alarm_seq"]
    assert onset is not None
    ward.merge_sepsis("tmp-1", "mrn-1")
    ward.update_sepsis_static("mrn-1", {"Age": 60})
    ward.add_hour("mrn-1", rows[1])
    before = ward.sepsis_summary("mrn-1")
    ward.journal.close()

    again = _ward(sepsis_fit, journal=WardJournal(path))
    again.sepsis.threshold = 0.0
    again.restore(again.journal.load())
    after = again.sepsis_summary("mrn-1")
    assert after["alarm_seq"] == onset and after["alarm_episodes"] == 1
    assert after["static"]["age_years"] == 60.0
    assert after["last_hour"] == before["last_hour"]
    assert again.patients()["sepsis"] == ["mrn-1"]
    with pytest.raises(KeyError):
        again.merge_sepsis("tmp-1", "mrn-2")
    with pytest.raises(ValueError, match="into itself"):
        again.merge_sepsis("mrn-1", "mrn-1")


def test_demographics_and_merges_over_http(sepsis_fit: tuple[Any, dict, list[dict]],
                                           tmp_path: Path) -> None:  # fmt: skip
    from pipelines.access import TokenTable, new_token

    f = tmp_path / "tokens.json"
    bay = new_token(f, "bay-2 feed", "feed", patients=["bed-*"])
    admin = new_token(f, "ops", "admin")
    ward = _ward(sepsis_fit)
    app = create_app(ward, tick_s=0, tokens=TokenTable.from_file(f))

    def as_(t: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {t}"}

    with TestClient(app) as c:
        for p in ("bed-1", "bed-2"):
            assert (
                c.post(f"/vitals/{p}/admit", json={"Age": 50}, headers=as_(bay)).status_code == 201
            )
        r = c.post("/vitals/bed-1/static", json={"Gender": 1}, headers=as_(bay))
        assert r.status_code == 200 and r.json()["static"] == {"gender_male": 1.0}  # changed
        r = c.post("/vitals/bed-1/static", json={}, headers=as_(admin))
        assert r.json()["static"] == {"age_years": 50.0, "gender_male": 1.0}
        assert c.post("/vitals/bed-1/static", json={"Sex": 1}, headers=as_(bay)).status_code == 422
        r = c.post("/vitals/bed-1/merge", params={"into": "mrn-1"}, headers=as_(bay))
        assert r.status_code == 403 and "not for patient 'mrn-1'" in r.text
        r = c.post("/vitals/bed-1/merge", params={"into": "bed-2"}, headers=as_(bay))
        assert r.status_code == 409
        r = c.post("/vitals/bed-1/merge", params={"into": "mrn-1"}, headers=as_(admin))
        assert r.status_code == 200 and r.json()["patient_id"] == "mrn-1"
        assert c.post("/vitals/bed-9/merge", params={"into": "mrn-9"},
                      headers=as_(admin)).status_code == 404  # fmt: skip


def test_a_message_resent_after_a_restart_is_not_taken_twice(
    sepsis_fit: tuple[Any, dict, list[dict]], tmp_path: Path
) -> None:
    path = tmp_path / "ward.sqlite"
    start = datetime.now(UTC) - timedelta(minutes=30)
    ward = _ward(sepsis_fit, journal=WardJournal(path))
    inbox = Hl7Inbox(ward, IntakeCollector())
    oru = _oru(row_to_observations({"HR": 100.0}), "p", "R1", start + timedelta(minutes=5))
    assert inbox.handle(_adt("A01", "ADM", "p", start)).code == "AA"
    first = inbox.handle(oru)
    assert first.code == "AA" and ward.sepsis_summary("p")["assembling"] == {1: {"hr_bpm": 1}}
    ward.journal.close()  # the gateway stops before the engine got the acknowledgement

    again = _restarted(sepsis_fit, path)
    inbox = Hl7Inbox(again, IntakeCollector())
    resent = inbox.handle(oru)
    assert resent.duplicate and resent.ack == first.ack
    assert again.sepsis_summary("p")["assembling"] == {1: {"hr_bpm": 1}}  # not twice
    assert inbox.handle(_adt("A01", "ADM", "p", start)).duplicate
    again.journal.close()

    # the kept acknowledgement damaged: the message is still known as taken (it raised at
    # the gateway's start), and the resend is told so in an acknowledgement of its own
    with sqlite3.connect(path) as db:
        db.execute("UPDATE hl7_taken SET reply = '{\"ack\": ' WHERE control_id LIKE '%R1'")
    third = _restarted(sepsis_fit, path)
    inbox = Hl7Inbox(third, IntakeCollector())
    resent = inbox.handle(oru)
    assert resent.duplicate and resent.code == "AA" and "MSA|AA|R1" in resent.ack
    assert "taken before the gateway restarted" in resent.ack
    assert third.sepsis_summary("p")["assembling"] == {1: {"hr_bpm": 1}}


def test_observations_read_against_a_stay_that_ended_are_not_put_in_the_next(
    sepsis_fit: tuple[Any, dict, list[dict]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the hour was counted from one admission, then added (a second locked call) after the
    # id had been discharged and admitted again: the old stay's HR went into the new stay
    ward = _ward(sepsis_fit)
    now = datetime.now(UTC)
    ward.admit_sepsis("p", {}, now - timedelta(hours=40))
    obs = row_to_observations({"HR": 120.0})
    for o in obs:
        o["effectiveDateTime"] = (now - timedelta(hours=20, minutes=30)).isoformat()
    real = ward.add_observations

    def readmitted_first(*args: Any) -> Any:  # an ADT A03 + A01 on another thread
        ward.discharge_sepsis("p")
        ward.admit_sepsis("p", {}, now - timedelta(minutes=30))
        return real(*args)

    monkeypatch.setattr(ward, "add_observations", readmitted_first)
    with pytest.raises(Refused) as e:
        score_observations(ward, IntakeCollector(), "p", obs, None, "fhir")
    assert e.value.status == 409 and "admitted again" in e.value.detail
    assert ward.sepsis_summary("p")["assembling"] == {}  # {20: {"hr_bpm": 1}} before
    with pytest.raises(ConflictError):
        ward.sepsis_hour_at("p", now, (now - timedelta(hours=40)).isoformat())


class _Stopped(BaseException):
    """The process dying (a power cut, a kill -9) at the point it is raised."""


def test_a_gateway_stopped_before_keeping_the_answer_does_not_take_the_resend_twice(
    sepsis_fit: tuple[Any, dict, list[dict]], tmp_path: Path
) -> None:
    path = tmp_path / "ward.sqlite"
    start = datetime.now(UTC) - timedelta(minutes=30)
    ward = _ward(sepsis_fit, journal=WardJournal(path))
    inbox = Hl7Inbox(ward, IntakeCollector())
    assert inbox.handle(_adt("A01", "ADM", "p", start)).code == "AA"
    oru = _oru(row_to_observations({"HR": 100.0}), "p", "R1", start + timedelta(minutes=5))

    def stop(*args: Any) -> None:  # the observation is written; the answer never is
        raise _Stopped

    ward.journal.hl7_taken = stop  # type: ignore[method-assign]
    with pytest.raises(_Stopped):
        inbox.handle(oru)
    ward.journal.close()

    again = _restarted(sepsis_fit, path)
    assert again.sepsis_summary("p")["assembling"] == {1: {"hr_bpm": 1}}
    inbox = Hl7Inbox(again, IntakeCollector())
    resent = inbox.handle(oru)  # the engine got no acknowledgement: it sends it again
    assert resent.duplicate and resent.code == "AA" and "MSA|AA|R1" in resent.ack
    assert again.sepsis_summary("p")["assembling"] == {1: {"hr_bpm": 1}}  # was 2
    # a message that changed nothing leaves no mark; a refused one is tried again
    late = _oru(row_to_observations({"HR": 90.0}), "q", "R2", start + timedelta(minutes=6))
    assert inbox.handle(late).code == "AE"
    again.admit_sepsis("q", {}, start)
    assert inbox.handle(late).code == "AA"
    assert [c for c, _, _ in again.journal.hl7_messages()][-1].endswith("R2")
    # a refused message of another type under a taken id removes nothing of the taken one
    other = oru.replace("ORU^R01", "ORM^O01", 1)
    assert inbox.handle(other).code == "AR"
    again.journal.close()
    third = _restarted(sepsis_fit, path)
    assert Hl7Inbox(third, IntakeCollector()).handle(oru).duplicate  # taken twice before
    assert third.sepsis_summary("p")["assembling"] == {1: {"hr_bpm": 1}}
    third.journal.close()


def _mllp(port: int, *messages: str, noise: bytes = b"") -> list[str]:
    """Send messages over one MLLP connection (all at once: the listener takes them in
    order) and read one acknowledgement each."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(noise + b"".join(b"\x0b" + m.encode() + b"\x1c\x0d" for m in messages))
        buf, out = b"", []
        while len(out) < len(messages):
            chunk = s.recv(65536)
            assert chunk, "the listener closed the connection"
            buf += chunk
            while b"\x1c\x0d" in buf:
                frame, buf = buf.split(b"\x1c\x0d", 1)
                out.append(frame.lstrip(b"\x0b").decode())
    return out


def _samples(text: str) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}  # fmt: skip


def test_a_recorded_stay_sent_over_mllp_scores_as_the_same_hours_sent_as_json(
    sepsis_fit: tuple[Any, dict, list[dict]],
) -> None:
    rows = sepsis_fit[2][:HOURS]
    last = int(rows[-1]["ICULOS"])
    ward = Ward(untrained_monitor(), _ward(sepsis_fit).sepsis)
    app = create_app(ward, tick_s=0, mllp=("127.0.0.1", 0))
    start = (datetime.now(UTC) - timedelta(hours=last, minutes=30)).replace(microsecond=0)
    with TestClient(app) as client:
        port = app.state.mllp_port
        assert client.get("/health").json()["mllp"] == {"port": port, "tls": False}
        born = f"{start.year - int(rows[0]['Age'])}0101"
        sex = "M" if rows[0]["Gender"] == 1 else "F"
        hospital = start + timedelta(hours=rows[0]["HospAdmTime"])
        (ack,) = _mllp(port, _adt("A01", "ADM", "icu-3", start, born=born, sex=sex,
                                  hospital=hospital))  # fmt: skip
        assert _msa(ack)[:3] == ["MSA", "AA", "ADM"], ack
        summary = client.get("/vitals/icu-3").json()
        assert summary["admitted_at"] == start.isoformat()
        assert summary["static"]["age_years"] == int(rows[0]["Age"])
        assert summary["static"]["gender_male"] == rows[0]["Gender"]
        assert summary["static"]["hosp_adm_time_h"] == pytest.approx(
            rows[0]["HospAdmTime"], abs=0.01)  # fmt: skip
        # the same stay as JSON rows, with what an ADT message can tell of the patient
        client.post("/vitals/json/admit", json=summary["static"],
                    params={"admitted_at": start.isoformat()})  # fmt: skip
        messages = []
        for k, row in enumerate(rows):
            r = client.post("/vitals/json", json={**_measured(row), "ICULOS": row["ICULOS"]})
            assert r.status_code == 200, r.text
            obs = row_to_observations(_measured(row))
            at = start + timedelta(hours=int(row["ICULOS"]) - 1, minutes=20)
            half = (len(obs) + 1) // 2  # the monitor's message, then the laboratory's
            parts = [(obs[:half], f"V{k}", at), (obs[half:], f"L{k}", at + timedelta(minutes=15))]
            messages += [_oru(o, "icu-3", c, t) for o, c, t in parts if o]  # none: no message
        acks = _mllp(port, *messages[:5], noise=b"\r\n")  # noise before a frame: skipped
        acks += _mllp(port, messages[4], *messages[5:])  # one resent
        assert [_msa(a)[1] for a in acks] == ["AA"] * len(acks), [a for a in acks if "AE" in a]
        assert [_msa(a)[2] for a in acks] == [m.split("|")[9] for m in messages[:5]] + [
            m.split("|")[9] for m in (messages[4], *messages[5:])]  # fmt: skip
        assert list(client.get("/vitals/icu-3").json()["assembling"]) == [str(last)]  # waits
        r = client.post("/vitals/icu-3/close")
        assert r.status_code == 200 and [h["hour"] for h in r.json()["scored"]] == [last]
        hours, got = _risks(ward, "icu-3")
        _, want = _risks(ward, "json")
        assert hours == [int(r["ICULOS"]) for r in rows]
        np.testing.assert_allclose(got, want, atol=1e-5)
        # a result for a patient not admitted, a late one: errors, with the reason
        (nobody,) = _mllp(port, _oru(obs, "nobody", "N1", at))
        assert _msa(nobody)[1] == "AE" and "admit them first" in _msa(nobody)[3]
        (late,) = _mllp(port, _oru(obs, "icu-3", "N2", start + timedelta(minutes=5)))
        assert _msa(late)[1] == "AE" and "already scored" in _msa(late)[3]
        # the same inbox over HTTP: the acknowledgement is the body
        er7 = {"Content-Type": "x-application/hl7-v2+er7"}
        r = client.post("/hl7", content=_adt("A03", "D1", "icu-3", datetime.now(UTC)), headers=er7)
        assert r.status_code == 200 and r.headers["content-type"].startswith("x-application")
        assert _msa(r.text)[:3] == ["MSA", "AA", "D1"] and "icu-3" not in ward.patients()["sepsis"]
        r = client.post("/hl7", content="MSH|^~\\&|S|H|V|H|20261205||SIU^S12|S1|P|2.5\r",
                        headers=er7)  # fmt: skip
        assert r.status_code == 422 and _msa(r.text)[1] == "AR"
        m = _samples(client.get("/metrics").text)
        msgs = {(dict(k[1])["input"], dict(k[1])["type"], dict(k[1])["ack"]): v
                for k, v in m.items() if k[0] == "vitalgru_hl7_messages_total"}  # fmt: skip
        assert msgs[("mllp", "ORU^R01", "AA")] == len(messages)
        assert msgs[("mllp", "ORU^R01", "duplicate")] == 1
        assert msgs[("mllp", "ORU^R01", "AE")] == 2
        assert (
            msgs[("http", "ADT^A03", "AA")] == 1 and msgs[("http", "other", "AR")] == 1
        )  # a type not taken
        held = m[("vitalgru_intake_hours_total", (("input", "mllp"), ("outcome", "held")))]
        assert held == len(messages)


def test_mllp_takes_connections_only_from_the_addresses_allowed() -> None:
    ward = Ward(untrained_monitor())
    app = create_app(ward, tick_s=0, mllp=("127.0.0.1", 0), mllp_allow=["10.0.0.0/8"])
    with TestClient(app):
        with socket.create_connection(("127.0.0.1", app.state.mllp_port), timeout=10) as s:
            s.sendall(b"\x0bMSH|^~\\&|A|B|C|D|20261205||ADT^A01|X|P|2.5\r\x1c\x0d")
            try:
                got = s.recv(1024)
            except ConnectionResetError:  # closed before the message was read
                got = b""
            assert got == b""  # closed, nothing answered
    app = create_app(ward, tick_s=0, mllp=("127.0.0.1", 0), mllp_allow=["127.0.0.1"])
    with TestClient(app):
        (ack,) = _mllp(app.state.mllp_port,
                       "MSH|^~\\&|A|B|C|D|20261205||ADT^A01|X|P|2.5\rPID|1||p-1\r")  # fmt: skip
        assert _msa(ack)[:3] == ["MSA", "AE", "X"] and "early-warning" in _msa(ack)[3]


def test_mllp_over_tls_and_with_client_certificates(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    adt = "MSH|^~\\&|A|B|C|D|20261205||ADT^A08|T1|P|2.5\rPID|1||p-1\r"

    def send(port: int, ctx: ssl.SSLContext) -> str:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(b"\x0b" + adt.encode() + b"\x1c\x0d")
                buf = b""
                while not buf.endswith(b"\x1c\x0d"):
                    chunk = s.recv(65536)
                    assert chunk
                    buf += chunk
        return buf[1:-2].decode()

    trusting = ssl.create_default_context(cafile=str(pki["ca"]))
    ward = Ward(untrained_monitor())
    tls = server_tls(str(pki["server_cert"]), str(pki["server_key"]))
    app = create_app(ward, tick_s=0, mllp=("127.0.0.1", 0), mllp_tls=tls)
    with TestClient(app):
        port = app.state.mllp_port
        assert _msa(send(port, trusting))[:3] == ["MSA", "AA", "T1"]
        with pytest.raises(ssl.SSLError):  # a sender that does not know the CA
            send(port, ssl.create_default_context())
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:  # no TLS at all
            s.sendall(b"\x0b" + adt.encode() + b"\x1c\x0d")
            try:
                got = s.recv(1024)
            except ConnectionResetError:
                got = b""
            assert b"MSA" not in got
    # mutual TLS: only a sender with a certificate from the CA
    tls = server_tls(str(pki["server_cert"]), str(pki["server_key"]), str(pki["ca"]))
    app = create_app(ward, tick_s=0, mllp=("127.0.0.1", 0), mllp_tls=tls)
    with TestClient(app):
        port = app.state.mllp_port
        with pytest.raises((ssl.SSLError, ConnectionError, AssertionError)):
            send(port, trusting)  # refused in the handshake (or right after it, in TLS 1.3)
        trusting.load_cert_chain(str(pki["client_cert"]), str(pki["client_key"]))
        assert _msa(send(port, trusting))[:3] == ["MSA", "AA", "T1"]


def test_the_units_icu_type_reaches_the_model_at_admission_and_transfer(
    sepsis_fit: tuple[Any, dict, list[dict]], tmp_path: Path
) -> None:
    from pipelines.audit import AuditLog
    from pipelines.hl7_inbox import parse_adt_units

    ward = _ward(sepsis_fit)
    audit = AuditLog(tmp_path / "audit.sqlite")
    inbox = Hl7Inbox(ward, IntakeCollector(), units=["micu=Medical", "SICU=surgical", "CCU"],
                     audit=audit)  # fmt: skip
    when = datetime.now(UTC) - timedelta(hours=2)
    out = inbox.handle(_adt("A01", "U1", "p1", when, unit="MICU"))
    assert out.code == "AA" and "(medical ICU)" in out.text
    st = ward.sepsis_summary("p1")["static"]
    assert (st["unit_micu"], st["unit_sicu"], st["gender_male"]) == (1.0, 0.0, 0.0)
    # moved to the surgical ICU: the hours from now on are scored as a surgical patient's
    out = inbox.handle(_adt("A02", "U2", "p1", datetime.now(UTC), unit="SICU"))
    assert out.code == "AA" and "moved to SICU (surgical ICU)" in out.text
    assert {k: ward.sepsis_summary("p1")["static"][k] for k in ("unit_micu", "unit_sicu")} == {
        "unit_micu": 0.0, "unit_sicu": 1.0}  # fmt: skip
    # a unit without a type: admitted without one, moved to without a change
    inbox.handle(_adt("A01", "U3", "p2", when, unit="CCU"))
    assert "unit_micu" not in ward.sepsis_summary("p2")["static"]
    out = inbox.handle(_adt("A02", "U4", "p1", datetime.now(UTC), unit="CCU"))
    assert "still on scoring" in out.text and ward.sepsis_summary("p1")["static"]["unit_sicu"] == 1
    assert parse_adt_units(None) == (None, {})
    with pytest.raises(ValueError, match="medical or surgical"):
        parse_adt_units(["MICU=cardiac"])
    # a type without its unit, or no unit at all: every admission was then refused unscored
    for units in (["=medical"], [""], [], ["MICU", "=surgical"]):
        with pytest.raises(ValueError, match="names no point of care"):
            parse_adt_units(units)
    assert parse_adt_units(["MICU", " "]) == ({"MICU"}, {})  # a stray blank is no unit
    # the access log says what each message did
    inbox.handle(_merge("U5", "mrn-1", "p2", datetime.now(UTC)))
    assert [(r["action"], r["patient_id"]) for r in audit.rows()] == [
        ("HL7 ADT^A01 admit", "p1"), ("HL7 ADT^A02 update", "p1"), ("HL7 ADT^A01 admit", "p2"),
        ("HL7 ADT^A40 merge", "mrn-1")]  # fmt: skip


def test_a_message_type_no_one_takes_is_other_on_the_metrics_page() -> None:
    from pipelines.hl7_replies import type_label
    from vitalgru.io.hl7v2 import read_message

    odd = read_message("MSH|^~\\&|X|H|vitalgru|W|20261206100000||X0^DOE-JANE-MRN|c9|P|2.5\r")
    adt = read_message("MSH|^~\\&|X|H|vitalgru|W|20261206100000||ADT^A01|c1|P|2.5\r")
    # MSH-9 was a label as sent: a series per text, any text, on an open page
    assert (type_label(odd), type_label(adt)) == ("other", "ADT^A01")
    assert type_label(odd, bounded=False) == "X0^DOE-JANE-MRN"  # the access log keeps it


def test_an_observation_whose_time_cannot_be_read_is_skipped_and_said(
    sepsis_fit: tuple[Any, dict, list[dict]],
) -> None:
    # a lactate stamped 3 h earlier in local time without an offset was pooled, silently,
    # into the hour of the heart rate beside it: scored 3 hours late
    ward = _ward(sepsis_fit)
    now = datetime.now(UTC)
    ward.admit_sepsis("p", {}, now - timedelta(hours=5))
    hr, lactate = row_to_observations({"HR": 120.0, "Lactate": 6.0})
    hr["effectiveDateTime"] = now.isoformat()
    lactate["effectiveDateTime"] = (now - timedelta(hours=3)).replace(tzinfo=None).isoformat()
    out = score_observations(ward, IntakeCollector(), "p", [hr, lactate], None, "fhir")
    assert out["measurements"] == {"hr_bpm": 1}
    (skip,) = out["observations"]["skipped"]
    assert skip["index"] == 1 and "no UTC offset" in skip["reason"]
    # one with no time at all still goes with the others (a panel's members)
    del lactate["effectiveDateTime"]
    out = score_observations(ward, IntakeCollector(), "p", [hr, lactate], None, "fhir")
    assert out["measurements"] == {"hr_bpm": 2, "lactate_mmol_l": 1}


def test_a_message_whose_bytes_are_not_its_character_set_is_refused_by_its_id() -> None:
    inbox = Hl7Inbox(Ward(untrained_monitor()), IntakeCollector())
    raw = ("MSH|^~\\&|ADT|H|V|H|20261205090000+0000||ADT^A01|C7|P|2.5\r"
           "PID|1||GÖT-0001^^^H^MR\r").encode("latin-1")  # fmt: skip
    reply = inbox.handle(raw)
    assert reply.code == "AR" and reply.status == 422 and "0xD6" in reply.text
    assert _msa(reply.ack)[1:3] == ["AR", "C7"]  # the sender can tell which


def test_a_result_timed_to_the_hour_goes_to_that_hour_and_one_dated_only_is_skipped(
    sepsis_fit: tuple[Any, dict, list[dict]],
) -> None:
    # OBX-14 of hour precision (YYYYMMDDHH+ZZZZ) read as no time: the lactate drawn in the
    # stay's second hour was pooled into the fourth hour, the heart rate's
    ward = _ward(sepsis_fit)
    inbox = Hl7Inbox(ward, IntakeCollector())
    now = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
    admitted = now - timedelta(hours=5)
    assert inbox.handle(_adt("A01", "A1", "mrn-7", admitted)).code == "AA"
    second, fourth = admitted + timedelta(hours=1, minutes=40), admitted + timedelta(hours=3)
    oru = "\r".join([
        f"MSH|^~\\&|LAB|H|VG|H|{_ts(now)}||ORU^R01|L1|P|2.5", "PID|1||mrn-7",
        f"OBX|1|NM|8867-4^HR^LN||101|/min^^UCUM|||||F|||{_ts(fourth)}",
        f"OBX|2|NM|2524-7^Lactate^LN||6.5|mmol/L^^UCUM|||||F|||{second:%Y%m%d%H}+0000",
        f"OBX|3|NM|2524-7^Lactate^LN||9.9|mmol/L^^UCUM|||||F|||{second:%Y%m%d}",
    ]) + "\r"  # fmt: skip
    reply = inbox.handle(oru)
    assert reply.code == "AA", reply.text
    hours = {h["hour"]: h["measurements"] for h in reply.result["hours"]}
    assert hours == {2: {"lactate_mmol_l": 1}, 4: {"hr_bpm": 1}}
    assert "OBX 3 (its time has no UTC offset, is a date alone" in reply.text


def test_readings_of_the_hour_the_clock_goes_back_go_to_the_hour_they_were_sent_in(
    sepsis_fit: tuple[Any, dict, list[dict]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # New York, 1 Nov 2026: 02:00 EDT becomes 01:00 EST. A monitor sending local times without
    # an offset as it measures: the second 01:xx was read as the first, put in the hour
    # before (closed by then: refused), and the true hour was scored with nothing
    monkeypatch.setattr("vitalgru.scoring.ward_sepsis.MAX_STAY", timedelta(days=36500))
    ny = ZoneInfo("America/New_York")
    start = datetime(2026, 11, 1, 4, 0, tzinfo=UTC)  # 00:00 EDT
    ward = _ward(sepsis_fit)
    ward.admit_sepsis("icu-8", None, start)
    inbox = Hl7Inbox(ward, IntakeCollector(), tz=ny)
    hours = []
    for n, minutes in enumerate(range(60, 195, 15)):  # 01:00 EDT ... 01:45 EST, 02:00 EST
        at = start + timedelta(minutes=minutes)
        arrives = at + timedelta(seconds=30)
        monkeypatch.setattr("vitalgru.scoring.ward_sepsis_hours._now", lambda t=arrives: t)
        local = at.astimezone(ny).strftime("%Y%m%d%H%M")
        hr = 90 if minutes < 120 else 110
        reply = inbox.handle(
            f"MSH|^~\\&|MON|ICU|VG|HOSP|{local}||ORU^R01|V{n}|P|2.5\rPID|1||icu-8\r"
            f"OBX|1|NM|8867-4^Heart rate^LN||{hr}|/min^^UCUM|||||F|||{local}\r"
        )
        assert reply.code == "AA", reply.text
        hours.append(reply.result["hour"])
    assert hours == [2] * 4 + [3] * 4 + [4]
    ward.close_hours("icu-8")
    hr = ward.sepsis_stay("icu-8")["values"]["hr_bpm"]
    np.testing.assert_array_equal(hr, [np.nan, 90.0, 110.0, 110.0])


def test_a_refusal_says_why_with_a_code_of_hl7_table_0357() -> None:
    # the reason was in MSA-3 alone, with no code an engine could act on
    inbox = Hl7Inbox(Ward(untrained_monitor()), IntakeCollector())
    head = "MSH|^~\\&|MON|ICU|VITALGRU|HOSP|20261205083000+0000||"

    def err(message: str | bytes) -> tuple[str, str, str]:
        reply = inbox.handle(message)
        back = read_message(reply.ack)
        return back.field("MSA", 1), back.field("ERR", 3), back.field("ERR", 8)

    code, error, text = err(head + "SIU^S12|S1|P|2.5\r")
    assert (code, error) == ("AR", "200") and "is not read here" in text
    code, error, text = err(head + "ORU^R01|R1|P|2.6\rPID|1||nobody\r")
    assert (code, error) == ("AE", "204") and "nobody" in text  # not admitted: unknown key
    assert err(head + "ADT^A01|D1|P|2.5\rEVN|A01\r")[:2] == ("AE", "101")  # no PID-3
    assert err(b"PID|1||x\r")[:2] == ("AR", "100")  # no MSH first
    latin = (head + "ORU^R01|L1|P|2.5\rPID|1||M\xfcller\r").encode("latin-1")
    assert err(latin)[:2] == ("AR", "102")  # bytes not of the set MSH-18 names
    # in enhanced mode the commit acknowledgement carries the same code
    reply = inbox.handle(head + "ORU^R01|R2|P|2.5|||AL|NE\rPID|1||nobody\r")
    back = read_message(reply.ack)
    assert back.field("MSA", 1) == "CE" and back.field("ERR", 3) == "204"


def test_enhanced_mode_gets_the_commit_acknowledgement_of_the_outcome() -> None:
    inbox = Hl7Inbox(Ward(untrained_monitor()), IntakeCollector())
    now = _ts(datetime.now(UTC))

    def oru(cid: str, accept: str, app: str = "NE") -> str:
        return (f"MSH|^~\\&|LAB|H|VG|H|{now}||ORU^R01|{cid}|P|2.5|||{accept}|{app}\r"
                f"PID|1||not-admitted\rOBX|1|NM|8867-4^HR^LN||101|/min|||||F|||{now}\r")  # fmt: skip

    # an error stays an error (AE as CE), said to a sender that asks for errors or always;
    # one that asks for no commit acknowledgement of it but for an application one (MSH-16)
    # gets the AE (it got nothing, and resent)
    for accept, app, msa, send in (("AL", "AL", "CE", True), ("ER", "AL", "CE", True),
                                   ("SU", "AL", "AE", True), ("NE", "AL", "AE", True),
                                   ("NE", "ER", "AE", True), ("NE", "SU", "AE", False),
                                   ("SU", "NE", "AE", False), ("NE", "", "AE", False)):  # fmt: skip
        reply = inbox.handle(oru(f"E-{accept}-{app}", accept, app))
        assert (reply.code, _msa(reply.ack)[1], reply.send) == ("AE", msa, send), (accept, app)
        assert "no patient of PID-3" in _msa(reply.ack)[3]
    bad = inbox.handle(oru("E-X", "AL").replace("ORU^R01", "QRY^A19"))
    assert (bad.code, _msa(bad.ack)[1], bad.send) == ("AR", "CR", True)
    # original mode (no MSH-15) as before
    assert _msa(inbox.handle(oru("O-1", "")).ack)[1] == "AE"


def test_a_final_result_replaces_the_preliminary_one_held_for_the_hour_across_a_restart(
    sepsis_fit: tuple[Any, dict, list[dict]], tmp_path: Path
) -> None:
    # OBX-11 P (and R) then F of the same lactate in the same hour were averaged: 6.0 and
    # 2.0 scored as 4.0; only corrections (C, A) replaced
    path = tmp_path / "ward.sqlite"
    ward = _ward(sepsis_fit, journal=WardJournal(path))
    admitted = datetime.now(UTC) - timedelta(hours=3, minutes=30)
    drawn = admitted + timedelta(hours=1, minutes=5)
    inbox = Hl7Inbox(ward, IntakeCollector())
    assert inbox.handle(_adt("A01", "A1", "mrn-7", admitted)).code == "AA"

    codes = {"lac": "2524-7^Lactate^LN||{}|mmol/L", "hr": "8867-4^HR^LN||{}|/min"}

    def oru(cid: str, *results: tuple[str, str, float]) -> str:  # (OBX-11, which, value)
        obx = [f"OBX|{i}|NM|{codes[c].format(v)}^^UCUM|||||{st}|||{_ts(drawn)}"
               for i, (st, c, v) in enumerate(results, 1)]  # fmt: skip
        return "\r".join([f"MSH|^~\\&|LAB|H|VG|H|{_ts(drawn)}||ORU^R01|{cid}|P|2.5",
                          "PID|1||mrn-7", *obx]) + "\r"  # fmt: skip

    assert inbox.handle(oru("L1", ("P", "lac", 6.0), ("F", "hr", 100.0))).code == "AA"
    assert ward.sepsis_summary("mrn-7")["assembling"] == {2: {"lactate_mmol_l": 1, "hr_bpm": 1}}
    ward.journal.close()
    again = _restarted(sepsis_fit, path)  # the preliminary value is held apart on the file
    inbox = Hl7Inbox(again, IntakeCollector())
    reply = inbox.handle(oru("L2", ("F", "lac", 2.0), ("R", "hr", 120.0), ("F", "hr", 110.0)))
    assert reply.code == "AA" and reply.result["measurements"] == {
        "lactate_mmol_l": 1, "hr_bpm": 2}  # fmt: skip
    again.close_hours("mrn-7")
    values = again.sepsis_stay("mrn-7")["values"]
    assert values["lactate_mmol_l"].tolist()[1] == 2.0  # the final result, not 4.0
    assert values["hr_bpm"].tolist()[1] == 105.0  # two final heart rates, still averaged


def test_a_message_with_letters_for_separators_gets_a_readable_rejection() -> None:
    inbox = Hl7Inbox(Ward(untrained_monitor()), IntakeCollector())
    reply = inbox.handle("MSH|ABCD|MONITOR|ICU4|VG|HOSP|20261205||ORU^R01|M1|P|2.5\rPID|1||p-1\r")
    ack = read_message(reply.ack)
    assert (reply.code, reply.status, ack.encoding) == ("AR", 422, "^~\\&")
    assert ack.field("MSH", 9) == "ACK" and ack.field("MSH", 9, 2) == "R01"
    assert (ack.field("MSA", 1), ack.field("MSA", 2)) == ("AR", "M1")  # named by its id
    assert "separators" in ack.field("MSA", 3) and ack.field("ERR", 3) == "102"


def test_a_birth_date_that_cannot_be_read_is_not_repeated_or_kept(
    sepsis_fit: tuple[Any, dict, list[dict]], tmp_path: Path
) -> None:
    # PID-7 only gives the age; one sent in another format was quoted in the acknowledgement,
    # which the state file keeps (for resends) long after the patient's discharge
    path = tmp_path / "ward.sqlite"
    ward = _ward(sepsis_fit, journal=WardJournal(path))
    inbox = Hl7Inbox(ward, IntakeCollector())
    start = datetime.now(UTC) - timedelta(minutes=30)
    reply = inbox.handle(_adt("A01", "ADM", "p", start, born="1955-03-10"))
    assert reply.code == "AA" and "PID-7" in reply.ack and "not a date" in reply.ack
    assert inbox.handle(_adt("A03", "DIS", "p", start + timedelta(minutes=5))).code == "AA"
    ward.journal.close()
    kept = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert b"1955-03-10" not in reply.ack.encode() + kept
    assert b"Jane" not in kept and b"Doe" not in kept  # PID-5, never used, never kept


def test_a_rejection_names_the_refused_separators_in_words_not_escaped() -> None:
    # quoted as they were, the acknowledgement's text escaped them in its own separators:
    # an engine's log showed MSA-3 "its separators '\F\\S\\S\\S\\S\' ..."
    inbox = Hl7Inbox(Ward(untrained_monitor()), IntakeCollector())
    for msh2, named in (("^^^^", "vertical bar, caret, caret, caret, caret (caret 4 times)"),
                        ("^~ &", "vertical bar, caret, tilde, space, ampersand (space not "
                                 "allowed)")):  # fmt: skip
        reply = inbox.handle(f"MSH|{msh2}|MON|ICU|VG|HOSP|20261205||ORU^R01|M1|P|2.5\rPID|1||p\r")
        msa, err = reply.ack.split("\r")[1:3]  # as sent, before any unescaping
        for segment in (msa, err):
            assert f"its separators (MSH-1, MSH-2) are {named}; they must be" in segment
            assert "\\F\\" not in segment and "\\S\\" not in segment


def test_a_message_that_cannot_be_read_gets_the_same_code_on_every_way_in() -> None:
    # table 0357: 100 no MSH first, 102 bytes not of the character set or separators HL7
    # does not allow; POST /vitals/{patient}/hl7 sent 100 for all three
    head = "MSH|^~\\&|MON|ICU|VITALGRU|HOSP|20261205083000+0000||"
    unread = [
        ("100", b"PID|1||x\r"),
        ("102", (head + "ORU^R01|L1|P|2.5\rPID|1||M\xfcller\r").encode("latin-1")),
        ("102", b"MSH|ABCD|MONITOR|ICU4|VG|HOSP|20261205||ORU^R01|M1|P|2.5\rPID|1||p\r"),
    ]
    er7 = {"content-type": "x-application/hl7-v2+er7", "accept": "x-application/hl7-v2+er7"}
    with TestClient(create_app(Ward(untrained_monitor()), tick_s=0)) as client:
        for code, body in unread:
            for url in ("/hl7", "/vitals/p/hl7?iculos=1"):
                r = client.post(url, content=body, headers=er7)
                back = read_message(r.text)
                assert (r.status_code, back.field("MSA", 1)) == (422, "AR"), (code, url)
                assert back.field("ERR", 3) == code, (code, url, r.text)
