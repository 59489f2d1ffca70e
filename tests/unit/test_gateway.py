"""The bedside gateway over HTTP: what a feed sends reaches the ward, what the ward refuses
comes back as a status code with the reason, and alarms are polled from the event log."""

from __future__ import annotations

import html
import json
import logging
import re
import sqlite3
import ssl
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import wfdb
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome
from monitor_kit import untrained_monitor
from prometheus_client.parser import text_string_to_metric_families

from pipelines.access import RateLimit, TokenFile, TokenTable, new_token, revoke_token
from pipelines.gateway import create_app
from pipelines.gateway_serve import build_ward
from vitalgru import __version__
from vitalgru.io.fhir_observations import row_to_observations
from vitalgru.io.psv import PSV_COLUMNS
from vitalgru.scoring import EarlyWarningMonitor, HourRisk, RiskDriver
from vitalgru.scoring.ward import Ward
from vitalgru.scoring.ward_journal import WardJournal
from vitalgru.scoring.ward_state import SepsisAdmission, WardState
from vitalgru.sepsis_display import risk_decimals

CHALLENGE = {v: k for k, v in PSV_COLUMNS.items()}


@pytest.fixture()
def client(sepsis: tuple[EarlyWarningMonitor, list[dict]]) -> TestClient:
    ward = Ward(untrained_monitor(), sepsis[0])
    with TestClient(create_app(ward, tick_s=0, models={"arrhythmia": "test"})) as c:
        c.ward = ward  # the tests tick it themselves
        yield c
    for pid in list(sepsis[0].patients):  # the monitor is shared by the tests
        sepsis[0].discharge(pid)


def test_an_ecg_feed_through_the_gateway(client: TestClient, mitdb_dir: Path) -> None:
    rec = wfdb.rdrecord(str(mitdb_dir / "100"), sampto=60 * 360)
    x = rec.p_signal[:, rec.sig_name.index("MLII")]
    x[30 * 360 : 36 * 360] = 0.0  # the lead off for 6 s
    assert client.post("/ecg/bed-4/admit", json={"fs": 360}).status_code == 201
    for k in range(60):
        chunk = x[k * 360 : (k + 1) * 360].tolist()
        chunk[5] = None  # one lost sample: a gap, not an error
        r = client.post("/ecg/bed-4", json={"samples": chunk})
        assert r.status_code == 202 and r.json()["queued_samples"] == 360
        client.ward.tick()
        if k == 35:  # 36 s in, the lead still off: the pause goes on, its flag is active
            (paused,) = [e["resource"] for e in client.get("/fhir/events").json()["entry"]
                         if e["resource"]["code"]["text"].startswith("Pause: ")]  # fmt: skip
            assert paused["status"] == "active"
    live = client.get("/ecg/bed-4").json()
    page = client.get("/ward")
    assert page.headers["content-type"].startswith("text/html")
    assert (
        '<a href="ecg/bed-4/page">bed-4</a>' in page.text and "Poor signal" in page.text
    )  # patients with alarms first
    assert "1 patient(s) on ECG monitoring, 0 on sepsis scoring" in page.text
    # a screen on the wall loads itself again (every 10 s unless asked otherwise)
    assert "<meta http-equiv=refresh content=10>" in page.text
    assert "http-equiv=refresh" not in client.get("/ward", params={"refresh": 0}).text
    assert client.get("/ward", params={"refresh": -1}).status_code == 422
    assert live["received_s"] == pytest.approx(60.0) and live["beats"] > 50
    assert sum(live["counts"].values()) == live["beats"]
    final = client.delete("/ecg/bed-4").json()
    assert final["discharged"] and final["beats"] >= live["beats"]
    assert client.get("/ecg/bed-4").status_code == 404
    events = client.get("/events", params={"since": 0}).json()
    kinds = [e["kind"] for e in events["events"]]
    assert "pause" in kinds and all(e["patient_id"] == "bed-4" for e in events["events"])
    (pause,) = [e["seq"] for e in events["events"] if e["kind"] == "pause"]
    assert [e["ends"] for e in events["events"] if e["kind"] == "beats_resumed"] == [pause]
    # one sample lost a second is bridged: the signal is judged good again after the lead-off
    (poor,) = [e["seq"] for e in events["events"] if e["kind"] == "poor_signal"]
    assert [e["ends"] for e in events["events"] if e["kind"] == "signal_restored"] == [poor]
    assert client.get("/events", params={"since": events["last_seq"]}).json()["events"] == []
    # the same log as FHIR: one Flag per event, starting at the alarm's onset
    bundle = client.get("/fhir/events", params={"since": 0}).json()
    Bundle.model_validate(bundle)
    flags = [e["resource"] for e in bundle["entry"]]
    alarms = [e for e in events["events"] if e["source"] != "ward"]  # the ward's own: no flag
    assert len(flags) == len(alarms) and all(f["resourceType"] == "Flag" for f in flags)
    assert all(f["status"] == "inactive" and f["period"]["start"] for f in flags)
    assert any(f["code"]["text"].startswith("Pause: ") for f in flags)
    assert flags[0]["subject"]["identifier"]["value"] == "bed-4"
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["ecg_patients"] == 0
    assert health["models"] == {"arrhythmia": "test"} and health["events"] == len(kinds)


def test_refusals_are_status_codes_with_the_reason(client: TestClient) -> None:
    assert client.post("/ecg/x", json={"samples": [0.1]}).status_code == 404
    assert client.post("/ecg/x/admit", json={"fs": 0}).status_code == 422  # not a rate
    assert client.post("/ecg/x/admit", json={"fs": 250}).status_code == 201
    r = client.post("/ecg/x/admit", json={"fs": 250})
    assert r.status_code == 409 and "already" in r.json()["detail"]
    assert client.post("/ecg/x", json={"samples": ["a"]}).status_code == 422
    # a number and nothing else: true and "0.5" were taken as 1.0 and 0.5 mV, fs true as 1 Hz
    for bad in ([True], ["0.5"], [0.1, False]):
        r = client.post("/ecg/x", json={"samples": bad})
        assert r.status_code == 422 and "valid number" in r.text, bad
    assert client.post("/ecg/z/admit", json={"fs": True}).status_code == 422
    assert client.post("/ecg/z/admit", json={"fs": "360"}).status_code == 422
    # a feed's JSON with Infinity in it (Python's json writes it): a gap, the rest kept
    r = client.post("/ecg/x", content=b'{"samples": [0.1, -Infinity, 0.2]}',
                    headers={"content-type": "application/json"})  # fmt: skip
    assert r.status_code == 202 and r.json()["queued_samples"] == 3
    r = client.post("/ecg/x", json={"samples": [0.0] * 250 * 61})
    assert r.status_code == 422 and "queued" in r.json()["detail"]
    assert client.post("/vitals/y", json={"ICULOS": 1}).status_code == 404
    assert client.get("/events", params={"limit": 0}).status_code == 422
    assert client.delete("/vitals/y").status_code == 404


def test_hourly_vitals_through_the_gateway(
    client: TestClient, sepsis: tuple[EarlyWarningMonitor, list[dict]]
) -> None:
    monitor, rows = sepsis
    assert client.post("/vitals/icu-7/admit").status_code == 201
    assert client.post("/vitals/icu-7/admit").status_code == 409
    got = [client.post("/vitals/icu-7", json=row).json() for row in rows]
    assert [g["hour"] for g in got] == [int(r["ICULOS"]) for r in rows]
    # what the monitor gives the same rows on its own
    monitor.admit("alone")
    want = [monitor.push({"alone": r})[0] for r in rows]
    monitor.discharge("alone")
    np.testing.assert_allclose([g["risk"] for g in got], [w.risk for w in want], atol=1e-6)
    onsets = [g["hour"] for g in got if g["alarm_started"]]
    sepsis_events = [e for e in client.get("/events").json()["events"] if e["source"] == "sepsis"]
    assert [e["hour"] for e in sepsis_events] == onsets
    in_alarm = client.get("/vitals/icu-7").json()["in_alarm"]
    flags = [e["resource"] for e in client.get("/fhir/events").json()["entry"]
             if e["resource"]["code"]["text"].startswith("Sepsis")]  # fmt: skip
    assert [f["status"] for f in flags] == ["inactive"] * (len(onsets) - 1) + [
        "active" if in_alarm else "inactive"]  # fmt: skip
    assert sepsis_events, "the test stay should raise at least one alarm"
    for e in sepsis_events:  # the fitted model carries a recalibration
        assert 0 <= e["probability"] <= 1 and "estimated probability of sepsis" in e["message"]
        # and names what raised the risk, as the monitor explains that hour
        assert all(d["text"] in e["message"] for d in e["drivers"]) and len(e["drivers"]) <= 3
        assert [d["risk_drop"] for d in e["drivers"]] == sorted(
            (d["risk_drop"] for d in e["drivers"]), reverse=True)  # fmt: skip
    # a row the monitor refuses: hours out of order, text; nothing changes
    r = client.post("/vitals/icu-7", json={"ICULOS": 1, "HR": 80})
    assert r.status_code == 422 and "does not follow" in r.json()["detail"]
    r = client.post("/vitals/icu-7", json={"ICULOS": len(rows) + 1, "HR": "high"})
    assert r.status_code == 422 and "not a number" in r.json()["detail"]
    now = client.get("/vitals/icu-7").json()
    page = client.get("/ward").text
    assert (
        '<a href="vitals/icu-7/page">icu-7</a>' in page
        and "0 patient(s) on ECG monitoring, 1 on sepsis scoring" in page
    )
    assert ("<span class=hi>in alarm, not acknowledged</span>" in page) == now["in_alarm"]
    assert now["last_hour"] == {k: v for k, v in got[-1].items() if k != "alarm_started"}
    assert now["in_alarm"] == got[-1]["alarm"] and now["alarm_episodes"] == len(onsets)
    # the alarm going on (if any) carries what its onset event said raised the risk
    assert now["alarm_drivers"] == (sepsis_events[-1]["drivers"] if now["in_alarm"] else [])
    done = client.delete("/vitals/icu-7").json()
    assert done["last_hour"]["hour"] == got[-1]["hour"] and done["alarm_episodes"] == len(onsets)
    assert done["discharged"] and client.get("/vitals/icu-7").status_code == 404


def test_a_gateway_without_a_model_says_so(sepsis: tuple[EarlyWarningMonitor, list[dict]]) -> None:
    with TestClient(create_app(Ward(sepsis=sepsis[0]), tick_s=0.05)) as c:
        r = c.post("/ecg/a/admit", json={"fs": 360})
        assert r.status_code == 503 and "arrhythmia" in r.json()["detail"]
        assert c.get("/ecg/a").status_code == 503  # 404 "not on ECG monitoring" before
    with TestClient(create_app(Ward(untrained_monitor()), tick_s=0)) as c:
        for method, path in (("get", "/vitals/icu-1"), ("post", "/vitals/icu-1/close")):
            r = getattr(c, method)(path)  # 404 before, as if the patient were the matter
            assert r.status_code == 503 and "early-warning" in r.json()["detail"], path
    with pytest.raises(ValueError, match="tick_s"):
        create_app(Ward(sepsis=sepsis[0]), tick_s=-1)


def test_with_a_token_only_the_health_check_is_open(
    sepsis: tuple[EarlyWarningMonitor, list[dict]],
) -> None:
    token = "s3cret-token-for-ward-4"
    with TestClient(create_app(Ward(sepsis=sepsis[0]), tick_s=0, token=token)) as c:
        assert c.get("/health").json()["token_required"] is True
        for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"},
                        {"Authorization": token}):  # fmt: skip
            r = c.post("/vitals/t1/admit", headers=headers)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert c.get("/events", headers={}).status_code == 401
        assert c.get("/patients", headers={}).status_code == 401
        assert c.get("/events/stream", headers={}).status_code == 401
        for page in ("/docs", "/redoc", "/openapi.json"):  # FastAPI's: open before
            assert c.get(page).status_code == 404
        ok = {"Authorization": f"Bearer {token}"}
        assert c.post("/vitals/t1/admit", headers=ok).status_code == 201
        assert c.get("/patients", headers=ok).json() == {"ecg": [], "sepsis": ["t1"]}
        # the open endpoints count patients and never name them
        assert c.get("/health").json()["sepsis_patients"] == 1
        metrics = c.get("/metrics")
        assert metrics.status_code == 200 and "t1" not in metrics.text
        assert c.delete("/vitals/t1", headers=ok).status_code == 200
        assert c.get("/events", headers=ok).status_code == 200
    with pytest.raises(ValueError, match="at least 16 characters"):
        create_app(Ward(sepsis=sepsis[0]), token="short")


def test_a_chunk_sent_again_with_its_index_is_not_taken_twice(client: TestClient) -> None:
    assert client.post("/ecg/bed-7/admit", json={"fs": 360}).status_code == 201
    # the second sent twice, the third lost (a break), 5 samples lost before the fifth
    for start in (0, 360, 360, 1080, 1445):
        r = client.post("/ecg/bed-7", json={"samples": [0.1] * 360, "start": start})
        assert r.status_code == 202
    got = client.get("/ecg/bed-7").json()
    assert (got["repeated_samples"], got["break_samples"], got["filled_samples"],
            got["next_start"]) == (360, 360, 5, 1805)  # fmt: skip
    assert client.post("/ecg/bed-7", json={"samples": [0.1], "start": -1}).status_code == 422
    assert client.delete("/ecg/bed-7").status_code == 200


def test_a_restarted_gateway_takes_its_patients_up_again(
    sepsis_fit: tuple[Any, dict, list[dict]], mitdb_dir: Path, tmp_path: Path
) -> None:
    model, preprocessing, rows = sepsis_fit
    state = tmp_path / "ward-state.sqlite"

    def gateway() -> Ward:  # what build_ward does with a state file, minus the registry
        ward = Ward(untrained_monitor(), EarlyWarningMonitor(model, preprocessing),
                    journal=WardJournal(state))  # fmt: skip
        ward.restore(ward.journal.load())
        return ward

    rec = wfdb.rdrecord(str(mitdb_dir / "119"), sampto=40 * 360)
    x = rec.p_signal[:, rec.sig_name.index("MLII")]
    half = len(rows) // 2
    ward = gateway()
    with TestClient(create_app(ward, tick_s=0)) as c:
        for pid, n in (("icu-1", half), ("icu-2", 3), ("icu-3", 2)):
            c.post(f"/vitals/{pid}/admit")
            for row in rows[:n]:
                assert c.post(f"/vitals/{pid}", json=row).status_code == 200
        c.delete("/vitals/icu-3")  # discharged: gone from the file too
        c.post("/ecg/bed-1/admit", json={"fs": 360})
        for k in range(20):
            c.post("/ecg/bed-1", json={"samples": x[k * 360 : (k + 1) * 360].tolist()})
            ward.tick()
        before = {p: c.get(f"/vitals/{p}").json() for p in ("icu-1", "icu-2")}
        ecg_before = c.get("/ecg/bed-1").json()
        log_before = c.get("/events").json()
    ward.close()  # as serve() stops: the ECG patient's memory is kept
    memory = ward.ecg.memory("bed-1")

    ward = gateway()  # the restart
    with TestClient(create_app(ward, tick_s=0)) as c:
        assert c.get("/health").json()["state_file"] == str(state)
        assert c.get("/vitals/icu-3").status_code == 404
        for pid, was in before.items():
            now = c.get(f"/vitals/{pid}").json()
            assert now["last_hour"]["risk"] == pytest.approx(was["last_hour"]["risk"], abs=1e-6)
            assert now["risk_max"] == pytest.approx(was["risk_max"], abs=1e-6)
            assert was["last_scored_at"] and now["last_scored_at"] is None  # replayed hours
            # when a feed of rows last sent one is kept (to the second): a feed that stops
            # about a restart is still found quiet
            assert now["last_data_at"] == was["last_data_at"][:19] + "+00:00"
            assert now["no_data_since"] is None
            scored_again = ("last_hour", "risk_max", "last_scored_at", "last_data_at")
            assert {k: v for k, v in now.items() if k not in scored_again} == {
                k: v for k, v in was.items() if k not in scored_again}  # fmt: skip
        # the rest of the stay scores as if the gateway had never stopped
        after = [c.post("/vitals/icu-1", json=row).json()["risk"] for row in rows[half:]]
        alone = EarlyWarningMonitor(model, preprocessing)
        alone.admit("p")
        want = [alone.push({"p": r})[0].risk for r in rows]
        np.testing.assert_allclose(after, want[half:], atol=1e-6)
        # the ECG feed: its counts and memory kept, its detector afresh, and the log says so
        ecg = c.get("/ecg/bed-1").json()
        for key in ("counts", "beats", "received_s", "admitted_at", "fs"):
            assert ecg[key] == ecg_before[key], key
        assert ecg["stream_started_at"] >= ecg_before["stream_started_at"]
        assert ecg_before["beats"] > 10 and ecg["alarms"][-1]["kind"] == "monitor_restarted"
        log = c.get("/events").json()
        assert log["events"][: len(log_before["events"])] == log_before["events"]
        new = c.get("/events", params={"since": log_before["last_seq"]}).json()["events"]
        assert new[0]["seq"] == log_before["last_seq"] + 1
        assert [(e["patient_id"], e["kind"]) for e in new if e["source"] == "ecg"] == [
            ("bed-1", "monitor_restarted")]  # fmt: skip
        assert new[0]["memory"] == "carried"  # the beat network goes on where it was
        np.testing.assert_array_equal(ward.ecg.memory("bed-1").h, memory.h)
        for k in range(20, 30):
            c.post("/ecg/bed-1", json={"samples": x[k * 360 : (k + 1) * 360].tolist()})
            ward.tick()
        assert c.get("/ecg/bed-1").json()["beats"] > ecg_before["beats"]
        assert c.delete("/ecg/bed-1").status_code == 200
        last_seq = c.get("/events").json()["last_seq"]
    ward.journal.close()
    kept = WardJournal(state).load()
    assert kept.ecg == [] and [a.patient_id for a in kept.sepsis] == ["icu-1", "icu-2"]
    assert len(kept.sepsis[0].hours) == len(rows) and kept.last_seq == last_seq


def test_a_bad_state_file_fails_before_any_model_loads(tmp_path: Path) -> None:
    bad = tmp_path / "ward-state.sqlite"
    bad.write_text("not a database, " * 200)
    with pytest.raises(ValueError, match="not a vitalgru ward state file"):
        build_ward(None, "models:/no-such-model@champion", state=bad)


def _without_registry(monkeypatch: pytest.MonkeyPatch, model: Any, preprocessing: dict) -> None:
    """``build_ward`` loads no registered model: every sepsis URI is ``model``, every
    arrhythmia URI an untrained network (version 1)."""

    def monitor(task: str, uri: str | None, names: dict[str, str], fallbacks: Any = None) -> Any:
        if not uri:
            return None
        names[task] = f"{uri} (version 1)"
        if task.endswith("arrhythmia"):
            return untrained_monitor()
        return EarlyWarningMonitor(model, preprocessing)

    monkeypatch.setattr("pipelines.gateway_serve._monitor", monitor)


def test_a_damaged_state_file_costs_only_its_damaged_rows(
    sepsis_fit: tuple[Any, dict, list[dict]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # one row that could not be read stopped the gateway's start: every patient on the ward
    # went unmonitored until someone moved the file aside, and then lost all of it
    model, preprocessing, rows = sepsis_fit
    _without_registry(monkeypatch, model, preprocessing)
    state = tmp_path / "ward-state.sqlite"
    ward, _ = build_ward("models:/ecg", "models:/champ", state)
    for pid in ("icu-1", "icu-2"):
        ward.admit_sepsis(pid)
        for row in rows[:6]:
            ward.add_hour(pid, row)
    for pid in ("bed-1", "bed-2", "bed-3"):
        ward.admit_ecg(pid, 360.0)
    ward.close()
    ward.journal.close()
    h3, h5 = rows[2]["ICULOS"], rows[4]["ICULOS"]
    with sqlite3.connect(state) as db:
        db.execute("UPDATE ecg_beds SET fs = 'x' WHERE patient_id = 'bed-1'")
        db.execute("UPDATE ecg_beds SET fs = 20 WHERE patient_id = 'bed-3'")  # the monitor's no
        db.execute("UPDATE sepsis_hours SET row = '{\"ICULOS\": 3, \"HR\": ' "
                   "WHERE patient_id = 'icu-1' AND hour = ?", (h3,))  # cut short  # fmt: skip
        db.execute("UPDATE sepsis_hours SET row = '{\"ICULOS\": 0}' "
                   "WHERE patient_id = 'icu-2' AND hour = ?", (h5,))  # an hour gone back  # fmt: skip

    with caplog.at_level(logging.WARNING):
        ward, _ = build_ward("models:/ecg", "models:/champ", state)
    assert ward.status()["state_rows_damaged"] == 4
    assert ward.patients() == {"ecg": ["bed-2"], "sepsis": ["icu-1", "icu-2"]}
    said = {e["patient_id"]: e for e in ward.events()["events"] if e["kind"] == "state_damaged"}
    assert set(said) == {"bed-1", "bed-3", "icu-1", "icu-2"}
    assert said["bed-3"]["taken_up"] is False
    assert said["bed-1"]["taken_up"] is False and "not monitored until admitted again" in (
        said["bed-1"]["message"])  # fmt: skip
    assert said["icu-1"]["taken_up"] is True and said["icu-1"]["lost"][0].startswith(
        f"sepsis_hours (patient_id icu-1, hour {h3:g}): ICU hour {h3:g} (scored again as an "
        "hour with nothing measured) (JSONDecodeError: ")  # fmt: skip
    assert said["icu-2"]["lost"][0].startswith(f"sepsis_hours (patient_id icu-2, hour {h5:g}): "
                                               f"ICU hour {h5:g} (the model refused it")  # fmt: skip
    assert "could not all be read for patient bed-1" in caplog.text
    # the stays scored again without the hour lost, as stays with that hour unmeasured are
    for pid, lost in (("icu-1", 2), ("icu-2", 4)):
        alone = EarlyWarningMonitor(model, preprocessing)
        alone.admit("p")
        want = [alone.push({"p": r})[0].risk for i, r in enumerate(rows[:6]) if i != lost]
        got = ward.sepsis_summary(pid)["last_hour"]["risk"]
        assert got == pytest.approx(want[-1], abs=1e-6), pid
    # a copy of the file keeps the damaged rows; the file itself is clean for the next start
    copies = list(tmp_path.glob("ward-state.sqlite.damaged-*"))
    assert len(copies) == 1 and f"the file with them is kept as {copies[0]}" in caplog.text
    ward.journal.close()
    with sqlite3.connect(copies[0]) as db:
        assert db.execute("SELECT fs FROM ecg_beds WHERE patient_id = 'bed-1'").fetchone() == (
            "x",)  # fmt: skip
    again = WardJournal(state).load()
    assert again.damaged == [] and [a.patient_id for a in again.ecg] == ["bed-2"]
    assert [len(a.hours) for a in again.sepsis] == [5, 5]


def test_a_models_row_that_names_no_model_is_left_out_and_the_gateway_starts(
    sepsis_fit: tuple[Any, dict, list[dict]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # {"early-warning": null} in the state file's models stopped the start with an
    # AttributeError from the restart's model comparison: no patient was taken up
    model, preprocessing, rows = sepsis_fit
    _without_registry(monkeypatch, model, preprocessing)
    state = tmp_path / "ward-state.sqlite"
    ward, _ = build_ward("models:/ecg", "models:/champ", state)
    ward.admit_sepsis("icu-1")
    ward.add_hour("icu-1", rows[0])
    ward.close()
    ward.journal.close()
    with sqlite3.connect(state) as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'models'",
                   ('{"early-warning": null, "arrhythmia": 3}',))  # fmt: skip
    db.close()
    with caplog.at_level(logging.WARNING):
        ward, names = build_ward("models:/ecg", "models:/champ", state)
    assert ward.patients()["sepsis"] == ["icu-1"] and names["early-warning"]
    assert ward.status()["state_rows_damaged"] == 2
    said = [e for e in ward.events()["events"] if e["kind"] == "state_damaged"]
    lost = " ".join(str(e.get("lost", e["message"])) for e in said)
    assert "the model the early-warning task last ran with (unknown)" in lost, said
    assert "kept as None, not a model's name" in lost
    ward.journal.close()
    assert WardJournal(state).load().damaged == []  # mended: the next start finds none


def test_a_sepsis_alarm_event_names_what_raised_the_risk(
    sepsis: tuple[EarlyWarningMonitor, list[dict]],
) -> None:
    ward = Ward(sepsis=sepsis[0])
    risk = HourRisk("icu-9", 14, 0.31, True, (), 0.12)
    lactate = RiskDriver("lactate_mmol_l", 4.2, 2, 2.4, 0.31, 0.18)
    resp = RiskDriver("resp_per_min", 31.0, 0, 18.8, 0.31, 0.27)
    e = ward._sepsis_alarm_event("icu-9", risk, [lactate, resp])
    assert e["message"].endswith(
        "at ICU hour 14 (estimated probability of sepsis now or within 6 hours 12 %); raised most by "
        "Lactate 4.2 mmol/L (2 h ago; risk score 0.180 had it been typical, 2.4); "
        "Resp 31 /min (now; risk score 0.270 had it been typical, 18.8)"
    )
    assert [d["column"] for d in e["drivers"]] == ["lactate_mmol_l", "resp_per_min"]
    assert e["drivers"][0]["risk_drop"] == pytest.approx(0.13)
    assert "raised most" not in ward._sepsis_alarm_event("icu-9", risk, [])["message"]
    low = HourRisk("icu-9", 14, 0.31, True, (), 0.004)  # not "0 %"
    assert (
        "probability of sepsis now or within 6 hours 0.4 %)"
        in (ward._sepsis_alarm_event("icu-9", low, [])["message"])
    )


def test_a_restored_alarm_keeps_what_its_onset_said(
    sepsis_fit: tuple[Any, dict, list[dict]],
) -> None:
    model, preprocessing, rows = sepsis_fit
    said = {"seq": 4, "source": "sepsis", "patient_id": "icu-5", "kind": "sepsis_risk",
            "hour": 1, "received_at": "2026-12-05T08:00:05+00:00",
            "drivers": [{"column": "resp_per_min", "text": "Resp 31 /min"}]}  # fmt: skip
    state = WardState([], [SepsisAdmission("icu-5", "2026-12-05T08:00:00+00:00", rows[:1])],
                      [said], 4, {})  # fmt: skip
    ward = Ward(sepsis=EarlyWarningMonitor(model, preprocessing))
    ward.restore(state)
    now = ward.sepsis_summary("icu-5")
    assert now["in_alarm"], "the test model alarms at the stay's first hour"
    assert now["alarm_drivers"] == said["drivers"] and now["alarm_episodes"] == 1
    assert ward.events(3)["events"] == [said] and ward.alarms_in_progress() == [4]


def test_alarms_are_acknowledged_over_http(client: TestClient) -> None:
    client.ward.feed_timeout_s = 0.01
    assert client.post("/ecg/bed-8/admit", json={"fs": 360}).status_code == 201
    time.sleep(0.05)
    client.ward.tick()
    (lost,) = client.get("/events", params={"unacknowledged": True}).json()["events"]
    assert lost["kind"] == "feed_lost"
    r = client.post(f"/events/{lost['seq']}/ack", json={"by": "RN Diaz", "note": "reseated"})
    assert r.status_code == 200 and r.json()["acknowledged"]["by"] == "RN Diaz"
    assert client.get("/events", params={"unacknowledged": True}).json()["events"] == []
    again = client.post(f"/events/{lost['seq']}/ack", json={"by": "Dr Okafor"})
    assert again.status_code == 409 and "already acknowledged by RN Diaz" in again.json()["detail"]
    assert client.post("/events/999/ack", json={"by": "x"}).status_code == 404
    assert client.post(f"/events/{lost['seq']}/ack", json={"by": ""}).status_code == 422
    ack = client.get("/events", params={"since": lost["seq"]}).json()["events"][-1]
    assert client.post(f"/events/{ack['seq']}/ack", json={"by": "x"}).status_code == 422
    # FHIR: the flag says who saw it; the acknowledgement is no flag of its own
    flags = [e["resource"] for e in client.get("/fhir/events").json()["entry"]]
    assert len(flags) == 1
    assert flags[0]["code"]["text"].endswith(
        f"(acknowledged by RN Diaz at {r.json()['acknowledged']['at']}: reseated)"
    )
    assert "ECG feed lost" in client.get("/ward").text and "(acknowledged by RN Diaz)" in (
        client.get("/ward").text)  # fmt: skip


def test_a_shadow_early_warning_model_is_compared_over_http(
    sepsis_fit: tuple[Any, dict, list[dict]],
) -> None:
    model, preprocessing, rows = sepsis_fit
    strict = {**preprocessing, "threshold": 2 * preprocessing["threshold"]}  # fewer alarms
    ward = Ward(sepsis=EarlyWarningMonitor(model, preprocessing),
                shadow_sepsis=EarlyWarningMonitor(model, strict))  # fmt: skip
    names = {"early-warning": "champion", "shadow early-warning": "challenger"}
    with TestClient(create_app(ward, tick_s=0, models=names)) as c:
        c.post("/vitals/icu-1/admit")
        got = [c.post("/vitals/icu-1", json=row).json() for row in rows]
        report = c.get("/shadow").json()
        events = c.get("/events").json()["events"]
        c.delete("/vitals/icu-1")
    ew = report["early_warning"]
    assert report["models"] == {"shadow early-warning": "challenger"} and report["errors"] == 0
    assert report["arrhythmia"] is None and ew["patients"] == 1 and ew["hours"] == len(rows)
    assert ew["risk_max_abs_diff"] == 0.0 and ew["shadow_threshold"] == strict["threshold"]
    assert ew["risk_correlation"] == pytest.approx(1.0)
    risks = np.array([g["risk"] for g in got])
    assert ew["alarm_hours"] == {
        "champion": int((risks >= preprocessing["threshold"]).sum()),
        "shadow": int((risks >= strict["threshold"]).sum()),
        "both": int((risks >= strict["threshold"]).sum()),
    }
    assert ew["alarm_onsets"]["champion"] == sum(g["alarm_started"] for g in got)
    # the challenger raised nothing of its own
    assert len([e for e in events if e["source"] == "sepsis"]) == ew["alarm_onsets"]["champion"]
    with TestClient(create_app(Ward(sepsis=EarlyWarningMonitor(model, preprocessing)))) as c:
        assert c.get("/shadow").status_code == 404
    with pytest.raises(ValueError, match="needs the champion of its task"):
        build_ward(None, None, shadow_early_warning_model="models:/x@challenger")


def test_an_oversized_body_is_refused_as_it_arrives() -> None:
    app = create_app(Ward(untrained_monitor()), tick_s=0, max_body_bytes=10_000)
    with TestClient(app) as c:
        assert c.post("/ecg/a/admit", json={"fs": 360}).status_code == 201
        r = c.post("/ecg/a", json={"samples": [0.1] * 5000})  # by its Content-Length
        assert r.status_code == 413 and "over 10000 bytes" in r.json()["detail"]

        def streamed():  # no Content-Length: counted as it streams
            yield b'{"samples": ['
            for _ in range(10):
                yield b"0.1," * 1000

        r = c.post("/ecg/a", content=streamed(), headers={"content-type": "application/json"})
        assert r.status_code == 413
        assert c.get("/ecg/a").json()["queued_s"] == 0.0  # nothing of either was queued
        assert c.post("/ecg/a", json={"samples": [0.1] * 100}).status_code == 202


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    """A Prometheus exposition as ``{(sample name, ((label, value), ...)): value}``."""
    return {
        (x.name, tuple(sorted(x.labels.items()))): x.value
        for family in text_string_to_metric_families(text)
        for x in family.samples
    }


def test_metrics_count_what_the_ward_did_without_naming_anyone(
    client: TestClient, sepsis: tuple[EarlyWarningMonitor, list[dict]], mitdb_dir: Path
) -> None:
    rows = sepsis[1]
    rec = wfdb.rdrecord(str(mitdb_dir / "119"), sampto=20 * 360)  # V beats in bigeminy
    x = rec.p_signal[:, rec.sig_name.index("MLII")]
    client.post("/ecg/bed-4/admit", json={"fs": 360})
    for k in range(20):
        client.post("/ecg/bed-4", json={"samples": x[k * 360 : (k + 1) * 360].tolist()})
        client.ward.tick()
    client.post("/vitals/icu-7/admit")
    for row in rows:
        client.post("/vitals/icu-7", json=row)
    r = client.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "bed-4" not in r.text and "icu-7" not in r.text
    m = _samples(r.text)
    counts = client.get("/ecg/bed-4").json()["counts"]
    beats = {
        dict(k[1])["aami_class"]: v for k, v in m.items() if k[0] == "vitalgru_ecg_beats_total"
    }
    assert beats == {c: n for c, n in counts.items() if n} and sum(beats.values()) > 15
    events = client.get("/events").json()["events"]
    logged = {tuple(dict(k[1]).values()): v for k, v in m.items()
              if k[0] == "vitalgru_events_total"}  # fmt: skip
    assert logged == Counter((e["kind"], e["source"]) for e in events)  # labels sorted by name
    assert m[("vitalgru_sepsis_hours_total", ())] == len(rows)
    assert m[("vitalgru_sepsis_hour_seconds_count", ())] == len(rows)
    assert m[("vitalgru_ecg_tick_seconds_count", ())] == 20
    assert m[("vitalgru_ecg_tick_seconds_bucket", (("le", "+Inf"),))] == 20
    assert m[("vitalgru_ecg_tick_seconds_sum", ())] > 0
    assert m[("vitalgru_patients", (("monitor", "ecg"),))] == 1
    assert m[("vitalgru_patients", (("monitor", "sepsis"),))] == 1
    in_alarm = client.get("/vitals/icu-7").json()["in_alarm"]
    assert m[("vitalgru_sepsis_patients_in_alarm", ())] == int(in_alarm)
    assert m[("vitalgru_events_last_seq", ())] == len(events)
    strips = sum(bool(e.get("strip_s")) for e in events)
    assert (
        m[("vitalgru_ecg_strips_kept", ())] == strips == sum(e["source"] == "ecg" for e in events)
    )
    assert m[("vitalgru_gateway_info", (("arrhythmia", "test"), ("version", __version__)))] == 1
    assert m[("process_resident_memory_bytes", ())] > 0
    unacked = sum(v for k, v in m.items() if k[0] == "vitalgru_events_unacknowledged")
    assert unacked == len(events) > 0
    client.post(f"/events/{events[0]['seq']}/ack", json={"by": "RN Diaz"})
    m = _samples(client.get("/metrics").text)
    assert sum(v for k, v in m.items() if k[0] == "vitalgru_events_unacknowledged") == unacked - 1
    assert m[("vitalgru_events_total", (("kind", "acknowledged"), ("source", "ward")))] == 1
    # a scraper that asks for OpenMetrics gets it
    om = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert om.headers["content-type"].startswith("application/openmetrics-text")
    assert om.text.endswith("# EOF\n")


def _sse(text: str) -> list[dict[str, Any]]:
    """The events of a Server-Sent Events body: ``{"id", "event", "data"}`` each."""
    out = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in fields:
            out.append({"id": fields.get("id"), "event": fields.get("event"),
                        "data": json.loads(fields["data"])})  # fmt: skip
    return out


def test_the_event_log_streams_as_server_sent_events(client: TestClient) -> None:
    ward = client.ward
    ward.feed_timeout_s = 0.01

    def lose_a_feed(pid: str) -> None:  # one more event in the log: a feed_lost
        client.post(f"/ecg/{pid}/admit", json={"fs": 360})
        time.sleep(0.02)
        ward.tick()

    lose_a_feed("a")
    lose_a_feed("b")
    r = client.get("/events/stream", params={"since": 0, "limit": 2})
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["cache-control"] == "no-cache" and r.text.startswith("retry: ")
    got = _sse(r.text)
    assert [g["id"] for g in got] == ["1", "2"] and all(g["event"] is None for g in got)
    assert [g["data"] for g in got] == client.get("/events").json()["events"]
    # a reconnecting EventSource goes on after the last event it had
    client.post("/events/1/ack", json={"by": "RN Diaz"})
    r = client.get("/events/stream", params={"limit": 1}, headers={"Last-Event-ID": "2"})
    (ack,) = _sse(r.text)
    assert ack["id"] == "3" and ack["data"]["kind"] == "acknowledged"
    assert client.get("/events/stream", headers={"Last-Event-ID": "x"}).status_code == 422
    # opened without a starting point, a stream waits for what is logged next
    answers: list[Any] = []
    reader = threading.Thread(
        target=lambda: answers.append(client.get("/events/stream", params={"limit": 1}))
    )
    reader.start()
    for k in range(50):  # until the stream has its event (it may open after the first)
        lose_a_feed(f"c{k}")
        reader.join(timeout=0.3)
        if not reader.is_alive():
            break
    (nxt,) = _sse(answers[0].text)
    assert int(nxt["id"]) > 3 and nxt["data"]["kind"] == "feed_lost"
    # a bedside screen follows one patient: the others' events are not sent
    lose_a_feed("mine")
    got = _sse(
        client.get("/events/stream", params={"since": 0, "limit": 1, "patient": "mine"}).text
    )
    assert [g["data"]["patient_id"] for g in got] == ["mine"]
    polled = client.get("/events", params={"patient": "mine", "source": "ecg"}).json()
    assert [e["seq"] for e in polled["events"]] == [int(got[0]["id"])]
    assert client.get("/events", params={"source": "pharmacy"}).status_code == 422


def test_event_streams_end_when_the_server_stops() -> None:
    stopping = threading.Event()
    app = create_app(Ward(untrained_monitor()), tick_s=0, stopping=stopping.is_set)
    with TestClient(app) as c:
        threading.Timer(0.5, stopping.set).start()
        t0 = time.monotonic()
        r = c.get("/events/stream")  # no limit: it ends only because the server stops
        assert r.status_code == 200 and _sse(r.text) == [] and time.monotonic() - t0 < 5


def test_a_stream_that_fell_behind_the_log_is_told_how_much_it_missed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("vitalgru.scoring.ward.MAX_EVENTS", 2)  # the log keeps two events
    ward = Ward(untrained_monitor(), feed_timeout_s=0.01)
    with TestClient(create_app(ward, tick_s=0)) as c:
        for k in range(5):
            c.post(f"/ecg/{k}/admit", json={"fs": 360})
            time.sleep(0.02)
            ward.tick()
        got = _sse(c.get("/events/stream", params={"since": 1, "limit": 2}).text)
    assert got[0] == {"id": None, "event": "dropped", "data": {"dropped": 2}}
    assert [g["id"] for g in got[1:]] == ["4", "5"]


STATIC = ("Age", "Gender", "Unit1", "Unit2", "HospAdmTime")


def test_an_hour_sent_as_fhir_observations_scores_as_the_same_hour_sent_as_json(
    client: TestClient, sepsis: tuple[EarlyWarningMonitor, list[dict]]
) -> None:
    rows = sepsis[1]
    static = {k: rows[0][k] for k in STATIC}
    measured = [{k: v for k, v in r.items() if k not in STATIC} for r in rows]
    assert client.post("/vitals/json/admit").status_code == 201
    r = client.post("/vitals/fhir/admit", json=static)
    assert r.status_code == 201 and r.json()["static"] == {
        PSV_COLUMNS[k]: v for k, v in static.items() if v is not None}  # fmt: skip
    want, got = [], []
    for row, bare in zip(rows, measured, strict=True):
        want.append(client.post("/vitals/json", json={**row, **static}).json())
        bundle = {"resourceType": "Bundle", "type": "collection",
                  "entry": [{"resource": o} for o in row_to_observations(bare)]}  # fmt: skip
        r = client.post("/vitals/fhir/fhir", params={"iculos": int(row["ICULOS"])}, json=bundle)
        assert r.status_code == 200, r.text
        got.append(r.json())
        assert got[-1]["observations"]["skipped"] == []
    np.testing.assert_allclose([g["risk"] for g in got], [w["risk"] for w in want], atol=1e-6)
    assert [g["alarm_started"] for g in got] == [w["alarm_started"] for w in want]
    assert sum(g["observations"]["used"] for g in got) == sum(
        len(row_to_observations(b)) for b in measured)  # fmt: skip


def _oru(row: dict, patient: str, control: str) -> str:
    """An ORU^R01 message of a recorded hour, as a monitor's interface would send it."""
    obx = [
        f"OBX|{i}|NM|{o['code']['coding'][0]['code']}^^LN||{o['valueQuantity']['value']!r}|"
        f"{o['valueQuantity']['code']}^^UCUM|||||F"
        for i, o in enumerate(row_to_observations(row), 1)
    ]
    head = [f"MSH|^~\\&|MON|ICU|VITALGRU|HOSP|20261205080000||ORU^R01|{control}|P|2.5",
            f"PID|1||{patient}^^^HOSP^MR"]  # fmt: skip
    return "\r".join(head + obx) + "\r"


def test_an_hour_sent_as_hl7_v2_scores_as_the_same_hour_sent_as_json(
    client: TestClient, sepsis: tuple[EarlyWarningMonitor, list[dict]]
) -> None:
    rows = sepsis[1]
    client.post("/vitals/json/admit")
    client.post("/vitals/hl7/admit", json={k: rows[0][k] for k in STATIC})
    hl7 = {"content-type": "x-application/hl7-v2+er7"}
    want, got = [], []
    for k, row in enumerate(rows):
        want.append(client.post("/vitals/json", json=row).json())
        bare = {c: v for c, v in row.items() if c not in STATIC}
        r = client.post("/vitals/hl7/hl7", params={"iculos": int(row["ICULOS"])},
                        content=_oru(bare, "hl7", f"M{k}"), headers=hl7)  # fmt: skip
        assert r.status_code == 200, r.text
        got.append(r.json())
        assert got[-1]["observations"]["skipped"] == []
        assert got[-1]["hl7"]["ack"].split("\r")[1] == f"MSA|AA|M{k}"
    np.testing.assert_allclose([g["risk"] for g in got], [w["risk"] for w in want], atol=1e-6)
    assert [g["alarm_started"] for g in got] == [w["alarm_started"] for w in want]
    # a message about another patient, or not a result, or nothing usable: refused
    nxt = {"iculos": int(rows[-1]["ICULOS"]) + 1}
    r = client.post("/vitals/hl7/hl7", params=nxt, content=_oru(rows[0], "someone-else", "X1"),
                    headers=hl7)  # fmt: skip
    assert r.status_code == 422 and "about patient someone-else (PID-3), not hl7" in r.text
    adt = "MSH|^~\\&|A|B|C|D|20261205||ADT^A01|X2|P|2.5\rPID|1||hl7"
    r = client.post("/vitals/hl7/hl7", params=nxt, content=adt, headers=hl7)
    assert r.status_code == 422 and "not an observation result" in r.text
    weight = _oru({}, "hl7", "X3") + "OBX|1|NM|29463-7^Weight^LN||80|kg|||||F\r"
    r = client.post("/vitals/hl7/hl7", params=nxt, content=weight, headers=hl7)
    assert r.status_code == 422 and "nothing was scored" in r.text
    assert client.get("/vitals/hl7").json()["last_hour"]["hour"] == int(rows[-1]["ICULOS"])
    # a sender that asks for ER7 gets the acknowledgement itself
    er7 = {"accept": "x-application/hl7-v2+er7", **hl7}
    r = client.post("/vitals/hl7/hl7", params=nxt, content=_oru(rows[0], "hl7", "E1"), headers=er7)
    assert r.status_code == 200 and r.headers["content-type"].startswith("x-application/hl7-v2")
    assert r.text.startswith("MSH|") and r.text.split("\r")[1] == "MSA|AA|E1"
    r = client.post("/vitals/hl7/hl7", params={"iculos": nxt["iculos"] + 1},
                    content=_oru(rows[0], "other", "E2"), headers=er7)  # fmt: skip
    assert r.status_code == 422 and r.text.split("\r")[1].startswith("MSA|AE|E2|the message is")
    assert r.text.split("\r")[2].startswith("ERR|||207^Application internal error^HL70357|E|")
    r = client.post("/vitals/hl7/hl7", params=nxt, content="not hl7", headers=er7)
    assert r.status_code == 422 and r.text.split("\r")[1].startswith("MSA|AR||not an HL7 v2")
    assert r.text.split("\r")[2].startswith("ERR|||100^Segment sequence error^HL70357|E|")
    # and the operator's monitoring counts what the input took and left
    m = _samples(client.get("/metrics").text)
    hours = {dict(k[1])["outcome"]: v for k, v in m.items()
             if k[0] == "vitalgru_intake_hours_total" and dict(k[1])["input"] == "hl7"}  # fmt: skip
    assert hours == {"scored": len(rows) + 1, "refused": 5}
    used = m[("vitalgru_intake_observations_total", (("input", "hl7"), ("outcome", "used")))]
    assert used == sum(g["observations"]["used"] for g in got) + len(row_to_observations(rows[0]))
    assert (
        m[("vitalgru_intake_observations_total", (("input", "hl7"), ("outcome", "skipped")))] == 1
    )
    # a message read but not a result: the acknowledgement names it (MSA-2 empty and the
    # event R01 before); results left out of an accepted one are said in it, since the
    # acknowledgement is all an HL7 sender sees
    r = client.post("/vitals/hl7/hl7", params=nxt, content=adt.replace("|X2|", "|ADT77|"),
                    headers=er7)  # fmt: skip
    head, msa = r.text.split("\r")[:2]
    assert r.status_code == 422 and "|ACK^A01^ACK|" in head and msa.startswith("MSA|AR|ADT77|")
    both = _oru({}, "hl7", "E3") + ("OBX|1|NM|8867-4^HR^LN||80|/min^^UCUM|||||F\r"
                                    "OBX|2|NM|29463-7^Weight^LN||80|kg|||||F\r")  # fmt: skip
    r = client.post("/vitals/hl7/hl7", params={"iculos": nxt["iculos"] + 1}, content=both,
                    headers=er7)  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.text.split("\r")[1] == (
        "MSA|AA|E3|1 skipped: OBX 2 (no LOINC code of a measurement the model uses)"
    )


def test_the_icu_hour_is_told_from_the_observations_times_when_not_given(
    client: TestClient,
) -> None:
    def hr(value: float, when: str) -> dict:
        return {"resourceType": "Observation", "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                "effectiveDateTime": when,
                "valueQuantity": {"value": value, "code": "/min",
                                  "system": "http://unitsofmeasure.org"}}  # fmt: skip

    start = "2026-12-05T06:00:00+00:00"
    r = client.post("/vitals/icu-5/admit", params={"admitted_at": start})
    assert r.status_code == 201
    # 06:40 is the first hour of the stay, 08:10 the third (and 09:10+01:00 too)
    r = client.post("/vitals/icu-5/fhir", json=[hr(96, "2026-12-05T06:40:00Z")])
    assert r.status_code == 200 and r.json()["hour"] == 1
    r = client.post("/vitals/icu-5/fhir", json=[hr(99, "2026-12-05T08:10:00Z"),
                                                hr(101, "2026-12-05T09:10:00+01:00")])  # fmt: skip
    assert r.status_code == 200 and r.json()["hour"] == 3
    assert r.json()["measurements"] == {"hr_bpm": 2}
    # a corrected result replaces what it corrects in the hour being assembled (it was
    # averaged with it: a lactate of 45 corrected to 4.5 was scored 24.75)
    fixed = {**hr(100, "2026-12-05T08:20:00Z"), "status": "corrected"}
    r = client.post("/vitals/icu-5/fhir", json=[fixed])
    assert r.status_code == 200 and r.json()["hour"] == 3
    assert r.json()["measurements"] == {"hr_bpm": 1}
    oru = ("MSH|^~\\&|M|I|V|H|20261205||ORU^R01|T9|P|2.5\rPID|1||icu-5\r"
           "OBX|1|NM|8867-4^HR^LN||104|/min|||||F|||202612050915+0000\r")  # fmt: skip
    r = client.post("/vitals/icu-5/hl7", content=oru,
                    headers={"Content-Type": "x-application/hl7-v2+er7"})  # fmt: skip
    assert r.status_code == 200 and r.json()["hour"] == 4
    r = client.post("/vitals/icu-5/fhir", params={"iculos": 6},  # given: it wins
                    json=[hr(100, "2026-12-05T09:30:00Z")])  # fmt: skip
    assert r.status_code == 200 and r.json()["hour"] == 6
    # observations of several hours go each to its own hour
    r = client.post("/vitals/icu-5/fhir", json=[hr(90, "2026-12-05T12:10:00Z"),
                                                {"resourceType": "Patient"},
                                                hr(91, "2026-12-05T13:10:00Z")])  # fmt: skip
    assert r.status_code == 200, r.text
    assert [h["hour"] for h in r.json()["hours"]] == [7, 8]
    assert r.json()["observations"]["used"] == 2
    assert [s["index"] for s in r.json()["observations"]["skipped"]] == [1]
    untimed = {k: v for k, v in hr(92, "").items() if k != "effectiveDateTime"}
    for body, says in (
        ([hr(90, "2026-12-05T07:10:00Z"), hr(91, "2026-12-05T08:10:00Z"), untimed],
         "and 1 (at [2]) have no time"),
        ([hr(90, "2026-12-05T12:10:00")], "no ?iculos= and no observation time"),
        ([hr(90, "2026-12-05T05:10:00Z")], "before patient 'icu-5' was admitted"),
    ):  # fmt: skip
        r = client.post("/vitals/icu-5/fhir", json=body)
        assert r.status_code == 422 and says in r.json()["detail"], r.text
    assert client.get("/vitals/icu-5").json()["admitted_at"] == start
    # a time without its offset cannot be placed: that one is skipped and said, the rest
    # taken (it was refused among several hours, and pooled into the one hour otherwise)
    r = client.post("/vitals/icu-5/fhir", json=[hr(93, "2026-12-05T14:10:00Z"),
                                                hr(94, "2026-12-05T15:10:00")])  # fmt: skip
    assert r.status_code == 200 and r.json()["hour"] == 9, r.text
    (skip,) = r.json()["observations"]["skipped"]
    assert skip["index"] == 1 and "no UTC offset" in skip["reason"]
    r = client.post("/vitals/icu-6/admit", params={"admitted_at": "2026-12-05T06:00:00"})
    assert r.status_code == 422 and "no UTC offset" in r.text
    r = client.post("/vitals/icu-6/admit", params={"admitted_at": "2999-01-01T00:00:00Z"})
    assert r.status_code == 422 and "in the future" in r.text


def test_fhir_hours_that_give_nothing_usable_are_refused(client: TestClient) -> None:
    client.post("/vitals/icu-2/admit")
    weight = {"resourceType": "Observation", "status": "final", "code": {"coding": [
        {"system": "http://loinc.org", "code": "29463-7"}]},
        "valueQuantity": {"value": 80, "code": "kg", "system": "http://unitsofmeasure.org"}}  # fmt: skip
    r = client.post("/vitals/icu-2/fhir", params={"iculos": 1}, json=[weight])
    assert r.status_code == 422 and "nothing was scored" in r.json()["detail"]
    hot = {**weight, "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5"}]},
           "valueQuantity": {"value": 102.2, "code": "[degF]",
                             "system": "http://unitsofmeasure.org"}}  # fmt: skip
    r = client.post("/vitals/icu-2/fhir", params={"iculos": 1}, json=[weight, hot])
    assert r.status_code == 200 and r.json()["hour"] == 1
    assert r.json()["observations"]["converted"] == {"temp_c": ["[degF]"]}
    assert [s["index"] for s in r.json()["observations"]["skipped"]] == [0]
    assert client.post("/vitals/icu-2/fhir", params={"iculos": 0}, json=[hot]).status_code == 422
    assert client.post("/vitals/icu-2/fhir", json=[hot]).status_code == 422  # no hour
    assert client.post("/vitals/nobody/fhir", params={"iculos": 2}, json=[hot]).status_code == 404
    r = client.post("/vitals/icu-3/admit", json={"Weight": 80})
    assert r.status_code == 422 and "not a static column" in r.json()["detail"]
    assert client.post("/vitals/icu-3/admit", json={"Age": "old"}).status_code == 422


def test_fhir_observations_about_another_patient_are_refused(
    client: TestClient, sepsis: tuple[EarlyWarningMonitor, list[dict]]
) -> None:
    hr = {"resourceType": "Observation", "status": "final", "code": {"coding": [
        {"system": "http://loinc.org", "code": "8867-4"}]},
        "valueQuantity": {"value": 150, "code": "/min", "system": "http://unitsofmeasure.org"}}  # fmt: skip

    def about(ref: str, **ident: str) -> dict[str, Any]:
        return {**hr, "subject": {"reference": ref, **({"identifier": ident} if ident else {})}}

    for pid in ("bed-4", "bed-5"):
        client.post(f"/vitals/{pid}/admit")
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": hr}, {"resource": about("Patient/bed-5", value="bed-5")}]}  # fmt: skip
    r = client.post("/vitals/bed-4/fhir", params={"iculos": 1}, json=bundle)
    assert r.status_code == 422 and "about patient bed-5 (subject), not bed-4" in r.text
    assert "[1]" in r.json()["detail"] and client.get("/vitals/bed-4").json()["last_hour"] is None
    for ref in ("https://ehr.example/fhir/Patient/bed-5", "Patient/bed-5/_history/3"):
        assert client.post("/vitals/bed-4/fhir", params={"iculos": 1},
                           json=[about(ref)]).status_code == 422, ref  # fmt: skip
    # its own, none, or a subject that is not a patient: taken
    for hour, obs in enumerate((about("Patient/bed-4"), about("Group/icu"), hr), start=1):
        r = client.post("/vitals/bed-4/fhir", params={"iculos": hour}, json=[obs])
        assert r.status_code == 200 and r.json()["hour"] == hour
    mrn = "urn:oid:2.16.840.1.113883.19.5"
    ward = Ward(sepsis=sepsis[0])
    with TestClient(create_app(ward, tick_s=0, patient_system=mrn)) as c:
        c.post("/vitals/MRN-7/admit")
        other = about("Patient/12345", system=mrn, value="MRN-8")
        r = c.post("/vitals/MRN-7/fhir", params={"iculos": 1}, json=[other])
        assert r.status_code == 422 and "patient MRN-8 (subject)" in r.text
        # the server's own id is another namespace; another system's number is not ours
        own = about("Patient/12345", system=mrn, value="MRN-7")
        assert c.post("/vitals/MRN-7/fhir", params={"iculos": 1}, json=[own]).status_code == 200
        foreign = about("Patient/x", system="urn:other", value="77")
        assert c.post("/vitals/MRN-7/fhir", params={"iculos": 2}, json=[foreign]).status_code == 200
        c.delete("/vitals/MRN-7")  # the monitor is shared by the tests


def test_patient_ids_that_cannot_name_a_patient_are_refused_everywhere(
    client: TestClient,
) -> None:
    bad = {"n%00ul": "control", "icu-7%1C": "control", "tab%09id": "control", "%20": "blank",
           "x" * 65: "65 characters", "%20bed-4": "whitespace"}  # fmt: skip
    for pid, why in bad.items():
        r = client.post(f"/vitals/{pid}/admit")
        assert r.status_code == 422 and why in r.json()["detail"], pid
        r = client.post(f"/ecg/{pid}/admit", json={"fs": 360})
        assert r.status_code == 422 and why in r.json()["detail"], pid
        assert client.get(f"/vitals/{pid}").status_code == 422, pid
    assert client.post(f"/vitals/{'m' * 64}/admit").status_code == 201  # an MRN's room
    client.post("/ecg/tmp-4/admit", json={"fs": 360})
    client.post("/vitals/tmp-4/admit")
    for monitor in ("ecg", "vitals"):  # the merge's record, taken from the query
        for into, why in {
            "mrn/123": "'/'",
            "x\x00y": "control",
            " ": "blank",
            "..": "'..'",
        }.items():
            r = client.post(f"/{monitor}/tmp-4/merge", params={"into": into})
            assert r.status_code == 422 and why in r.json()["detail"], (monitor, into)
    assert client.get("/patients").json() == {"ecg": ["tmp-4"], "sepsis": ["m" * 64, "tmp-4"]}
    for pid, why in {"12345/2024": "'/'", "y" * 70: "70 characters"}.items():  # HL7's PID-3
        adt = ("MSH|^~\\&|ADT|H|vitalgru|W|20261206100000||ADT^A01|c-" + pid[:3] + "|P|2.5\r"
               f"PID|1||{pid}^^^H^MR\r")  # fmt: skip
        r = client.post("/hl7", content=adt, headers={"Content-Type": "x-application/hl7-v2+er7"})
        assert r.status_code == 422 and "MSA|AE" in r.text and why in r.text, pid
    assert client.get("/patients").json()["sepsis"] == ["m" * 64, "tmp-4"]


def test_a_discharge_between_a_routes_steps_is_no_server_error(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    ward = client.ward
    admit, summary = ward.admit_sepsis, ward.ecg_summary

    def admitted_then_discharged(pid: str, *args: Any) -> None:
        admit(pid, *args)
        ward.discharge_sepsis(pid)  # another request's, as this one goes on

    def read_then_discharged(pid: str) -> dict[str, Any]:
        out = summary(pid)
        ward.discharge_ecg(pid)
        return out

    monkeypatch.setattr(ward, "admit_sepsis", admitted_then_discharged)
    monkeypatch.setattr(ward, "ecg_summary", read_then_discharged)
    client.post("/ecg/e1/admit", json={"fs": 360})
    with TestClient(client.app, raise_server_exceptions=False) as c:
        r = c.post("/vitals/p1/admit", json={"Age": 71})
        assert r.status_code == 201 and r.json() == {
            "patient_id": "p1",
            "static": {"age_years": 71.0},
        }
        r = c.get("/ecg/e1/page")
        assert r.status_code == 404 and "not on ECG monitoring" in r.text


def test_a_patient_id_kept_from_before_ids_were_checked_is_taken_up_and_said(
    sepsis_fit: tuple[Any, dict, list[dict]], caplog: pytest.LogCaptureFixture
) -> None:
    model, preprocessing, rows = sepsis_fit
    old, long = "bed 4/2", "x" * 70  # admitted when any text was taken
    state = WardState([], [SepsisAdmission(p, "2026-12-05T08:00:00+00:00", rows[:2])
                           for p in (old, long)], [], 0, {})  # fmt: skip
    ward = Ward(sepsis=EarlyWarningMonitor(model, preprocessing))
    with caplog.at_level(logging.WARNING):
        assert ward.restore(state)["sepsis"] == 2
    assert ward.sepsis_summary(old)["last_hour"]["hour"] == rows[1]["ICULOS"]
    assert "patient id 'bed 4/2' in the state file holds a '/'" in caplog.text
    with pytest.raises(ValueError, match="holds a '/'"):
        ward.admit_sepsis(old)
    # they can still be read and discharged, as the warning asks (every route with the
    # patient in its path, and HL7's ADT, refused them)
    client = TestClient(create_app(ward))
    assert client.get(f"/vitals/{long}").status_code == 200
    assert client.delete(f"/vitals/{long}").status_code == 200
    a03 = "MSH|^~\\&|ADT|H|vitalgru|W|20261206100000||ADT^A03|d-1|P|2.5\rPID|1||bed 4/2^^^H^MR\r"
    r = client.post("/hl7", content=a03, headers={"Content-Type": "x-application/hl7-v2+er7"})
    assert r.status_code == 200 and "MSA|AA" in r.text, r.text
    assert ward.patients()["sepsis"] == []
    assert client.get(f"/vitals/{'y' * 70}").status_code == 422  # one the ward never held


def test_demographics_given_at_admission_outlive_a_restart(
    sepsis_fit: tuple[Any, dict, list[dict]], tmp_path: Path
) -> None:
    model, preprocessing, rows = sepsis_fit
    static = {k: rows[0][k] for k in STATIC}
    measured = [{k: v for k, v in r.items() if k not in STATIC} for r in rows]
    alone = EarlyWarningMonitor(model, preprocessing)
    alone.admit("p")
    want = [alone.push({"p": {**r, **static}})[0].risk for r in measured]
    state = tmp_path / "ward-state.sqlite"
    ward = Ward(sepsis=EarlyWarningMonitor(model, preprocessing), journal=WardJournal(state))
    ward.admit_sepsis("icu-1", static)
    half = len(rows) // 2
    before = [ward.add_hour("icu-1", r)["risk"] for r in measured[:half]]
    ward.journal.close()
    ward = Ward(sepsis=EarlyWarningMonitor(model, preprocessing), journal=WardJournal(state))
    ward.restore(ward.journal.load())
    assert ward.sepsis_summary("icu-1")["static"] == {
        PSV_COLUMNS[k]: v for k, v in static.items() if v is not None}  # fmt: skip
    after = [ward.add_hour("icu-1", r)["risk"] for r in measured[half:]]
    np.testing.assert_allclose(before + after, want, atol=1e-6)
    ward.journal.close()


def test_named_tokens_may_do_only_what_their_role_allows(
    sepsis: tuple[EarlyWarningMonitor, list[dict]], tmp_path: Path
) -> None:
    f = tmp_path / "tokens.json"
    tok = {role: new_token(f, f"{role}-1", role) for role in ("feed", "reader", "clinician")}
    shared = "a-shared-token-for-everything"
    as_ = {k: {"Authorization": f"Bearer {v}"} for k, v in {**tok, "admin": shared}.items()}
    ward = Ward(untrained_monitor(), sepsis[0], feed_timeout_s=0.01)
    app = create_app(ward, tick_s=0, token=shared, tokens=TokenTable.from_file(f))
    with TestClient(app) as c:
        assert c.get("/health").json()["token_required"] is True
        assert c.post("/vitals/p1/admit", headers=as_["feed"]).status_code == 201
        assert c.post("/vitals/p1", json=sepsis[1][0], headers=as_["feed"]).status_code == 200
        for role in ("reader", "clinician"):  # only a feed (or admin) sends data
            r = c.post("/vitals/p2/admit", headers=as_[role])
            assert r.status_code == 403 and f"'{role}-1' ({role}) may not send" in r.text
        for path in ("/vitals/p1", "/events", "/patients", "/ward", "/fhir/events"):
            assert c.get(path, headers=as_["feed"]).status_code == 403, path  # a feed reads nothing
            for role in ("reader", "clinician", "admin"):
                assert c.get(path, headers=as_[role]).status_code == 200, (path, role)
        assert c.get("/events/stream", headers=as_["feed"]).status_code == 403
        assert c.get("/health").status_code == 200 and c.get("/metrics").status_code == 200
        bad = {"Authorization": "Bearer not-a-token-at-all"}
        assert c.get("/events", headers=bad).status_code == 401
        # two events to acknowledge: feeds that went quiet
        for bed in ("b1", "b2"):
            assert (
                c.post(f"/ecg/{bed}/admit", json={"fs": 360}, headers=as_["feed"]).status_code
                == 201
            )
        time.sleep(0.05)
        ward.tick()
        first, second = [e["seq"] for e in c.get("/events", headers=as_["reader"]).json()["events"]
                         if e["kind"] == "feed_lost"]  # fmt: skip
        for role in ("feed", "reader"):
            r = c.post(f"/events/{first}/ack", json={"by": "x"}, headers=as_[role])
            assert r.status_code == 403 and "may not acknowledge" in r.text
        r = c.post(f"/events/{first}/ack", json={"by": "RN Diaz"}, headers=as_["clinician"])
        assert r.status_code == 200 and r.json()["acknowledged"]["via"] == "clinician-1"
        r = c.post(f"/events/{second}/ack", json={"by": "Dr Okafor"}, headers=as_["admin"])
        assert r.json()["acknowledged"]["via"] == "VITALGRU_GATEWAY_TOKEN"
        ack = c.get("/events", headers=as_["reader"]).json()["events"][-2]
        assert ack["kind"] == "acknowledged" and ack["via"] == "clinician-1"
        assert c.delete("/vitals/p1", headers=as_["reader"]).status_code == 403
        assert c.delete("/vitals/p1", headers=as_["feed"]).status_code == 200


def test_a_feed_is_answered_only_what_its_request_changed(
    sepsis: tuple[EarlyWarningMonitor, list[dict]], tmp_path: Path
) -> None:
    f = tmp_path / "tokens.json"
    feed, admin = new_token(f, "feeds", "feed"), new_token(f, "ops", "admin")
    as_feed, as_admin = ({"Authorization": f"Bearer {t}"} for t in (feed, admin))
    ward = Ward(untrained_monitor(), sepsis[0])
    with TestClient(create_app(ward, tick_s=0, tokens=TokenTable.from_file(f))) as c:
        c.post("/vitals/p1/admit", json={"Age": 71, "Gender": 1}, headers=as_admin)
        c.post("/vitals/p1", json=sepsis[1][0], headers=as_admin)
        assert c.get("/vitals/p1", headers=as_feed).status_code == 403
        # a correction that changes nothing read the whole summary before
        r = c.post("/vitals/p1/static", json={}, headers=as_feed)
        assert r.status_code == 200 and r.json() == {"patient_id": "p1", "static": {}}
        r = c.post("/vitals/p1/static", json={"Age": 72}, headers=as_feed)
        assert r.json() == {"patient_id": "p1", "static": {"age_years": 72.0}}
        full = c.post("/vitals/p1/static", json={}, headers=as_admin).json()
        assert full["static"] == {"age_years": 72.0, "gender_male": 1.0} and "in_alarm" in full
        r = c.post("/vitals/p1/merge", params={"into": "p2"}, headers=as_feed)
        assert r.json() == {"patient_id": "p2"}
        assert c.delete("/vitals/p2", headers=as_feed).json() == {
            "patient_id": "p2", "discharged": True}  # fmt: skip
        c.post("/ecg/e1/admit", json={"fs": 360}, headers=as_feed)
        assert c.post("/ecg/e1/merge?into=e2", headers=as_feed).json() == {"patient_id": "e2"}
        assert c.delete("/ecg/e2", headers=as_feed).json() == {
            "patient_id": "e2", "discharged": True}  # fmt: skip


def test_tokens_revoked_expired_or_for_other_patients_are_refused_while_it_runs(
    sepsis: tuple[EarlyWarningMonitor, list[dict]], tmp_path: Path
) -> None:
    f = tmp_path / "tokens.json"
    bed4 = new_token(f, "bed-4 monitor", "feed", patients=["bed-4"])
    screen = new_token(f, "bay-2 screen", "clinician", patients=["bed-4", "bed-5"])
    admin = new_token(f, "ops", "admin")

    def as_(t: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {t}"}

    ward = Ward(untrained_monitor(), sepsis[0], feed_timeout_s=0.01)
    with TestClient(create_app(ward, tick_s=0, tokens=TokenFile(f, check_s=0))) as c:
        assert c.post("/ecg/bed-4/admit", json={"fs": 360}, headers=as_(bed4)).status_code == 201
        r = c.post("/ecg/bed-5/admit", json={"fs": 360}, headers=as_(bed4))
        assert r.status_code == 403 and "not for patient 'bed-5'" in r.text
        assert c.post("/ecg/bed-5/admit", json={"fs": 360}, headers=as_(admin)).status_code == 201
        assert c.post("/ecg/bed-6/admit", json={"fs": 360}, headers=as_(admin)).status_code == 201
        assert c.get("/ecg/bed-5", headers=as_(screen)).status_code == 200
        assert c.get("/ecg/bed-6", headers=as_(screen)).status_code == 403
        # a limited token asks about one patient at a time
        for path in ("/events", "/patients", "/ward", "/fhir/risk", "/events/stream"):
            r = c.get(path, headers=as_(screen))
            assert r.status_code == 403 and "ask about one of them" in r.text, path
        # ... and naming one of its own where the answer is not filtered by it is no way
        # round that (these answered with the whole ward before; /hl7 took any patient)
        for path in ("/patients", "/ward", "/fhir/risk", "/fhir/events"):
            r = c.get(path, params={"patient": "bed-4"}, headers=as_(screen))
            assert r.status_code == 403, path
        hl7 = ("MSH|^~\\&|ADT|H|vitalgru|W|20261206100000||ADT^A03|c1|P|2.5\r"
               "PID|1||bed-6\r")  # fmt: skip
        r = c.post("/hl7", params={"patient": "bed-4"}, content=hl7,
                   headers={**as_(bed4), "Content-Type": "x-application/hl7-v2+er7"})  # fmt: skip
        assert r.status_code == 403
        time.sleep(0.05)
        ward.tick()  # three feeds lost
        got = c.get("/events", params={"patient": "bed-5"}, headers=as_(screen)).json()
        assert [e["patient_id"] for e in got["events"]] == ["bed-5"]
        lost = {e["patient_id"]: e["seq"] for e in c.get("/events", headers=as_(admin)).json()[
            "events"]}  # fmt: skip
        r = c.post(f"/events/{lost['bed-6']}/ack", json={"by": "RN Diaz"}, headers=as_(screen))
        assert r.status_code == 403 and "not for patient 'bed-6'" in r.text
        r = c.post(f"/events/{lost['bed-5']}/ack", json={"by": "RN Diaz"}, headers=as_(screen))
        assert r.status_code == 200 and r.json()["acknowledged"]["via"] == "bay-2 screen"
        # revoked while the gateway runs: refused from the next request
        revoke_token(f, "bed-4 monitor")
        r = c.post("/ecg/bed-4", json={"samples": [0.0] * 36}, headers=as_(bed4))
        assert r.status_code == 401
        # a new one works without a restart, and one past its time is refused as expired
        late = new_token(f, "locum", "reader", expires_days=1)
        assert c.get("/patients", headers=as_(late)).status_code == 200
        data = json.loads(f.read_text())
        data["tokens"][-1]["expires"] = "2026-01-01T00:00:00+00:00"
        f.write_text(json.dumps(data))
        r = c.get("/patients", headers=as_(late))
        assert r.status_code == 401 and "'locum' expired at 2026-01-01" in r.text
        f.write_text("{broken")  # a bad edit leaves the tokens in force
        assert c.get("/patients", headers=as_(admin)).status_code == 200
        m = _samples(c.get("/metrics").text)  # and the operator's monitoring sees it
        assert m[("vitalgru_token_file_errors_total", ())] == 1
        assert m[("vitalgru_token_file_reloads_total", ())] >= 3
        assert m[("vitalgru_access_tokens", ())] == 3  # the two left and the locum


def test_an_ecg_alarms_strip_is_served_as_data_and_on_paper(
    sepsis: tuple[EarlyWarningMonitor, list[dict]], mitdb_dir: Path, tmp_path: Path
) -> None:
    rec = wfdb.rdrecord(str(mitdb_dir / "100"), sampto=45 * 360)
    x = rec.p_signal[:, rec.sig_name.index("MLII")].copy()
    x[20 * 360 :] = 0.0  # the lead comes off: a pause
    f = tmp_path / "tokens.json"
    admin = {"Authorization": f"Bearer {new_token(f, 'ops', 'admin')}"}
    other = {
        "Authorization": f"Bearer {new_token(f, 'bed-9 screen', 'reader', patients=['bed-9'])}"
    }
    ward = Ward(untrained_monitor(), sepsis[0])
    with TestClient(create_app(ward, tick_s=0, tokens=TokenFile(f, check_s=0))) as c:
        c.post("/ecg/bed-1/admit", json={"fs": 360}, headers=admin)
        for k in range(45):
            c.post("/ecg/bed-1", json={"samples": x[k * 360 : (k + 1) * 360].tolist()},
                   headers=admin)  # fmt: skip
            ward.tick()
        events = c.get("/events", headers=admin).json()["events"]
        pause = next(e for e in events if e["kind"] == "pause")
        assert ward.strip(pause["seq"])["complete"]
        strip = c.get(f"/events/{pause['seq']}/strip", headers=admin).json()
        assert strip == ward.strip(pause["seq"]) and strip["seq"] == pause["seq"]
        assert abs(len(strip["samples"]) - pause["strip_s"] * 360) < 2  # on the sample grid
        r = c.get(f"/events/{pause['seq']}/strip.svg", headers=admin)
        assert r.status_code == 200 and r.headers["content-type"] == "image/svg+xml"
        assert r.text.startswith("<svg") and "bed-1 · " in r.text and ">onset<" in r.text
        latest = [e for e in events if e.get("strip_s")][-1]  # the page links the latest one
        assert f'href="events/{latest["seq"]}/strip.svg"' in c.get("/ward", headers=admin).text
        page = c.get("/ecg/bed-1/page", headers=admin)  # the patient's ECG for a clinician
        assert page.status_code == 200 and "ECG monitoring: patient bed-1 (live)" in page.text
        with_strip = [e for e in events if e.get("strip_s")]
        assert page.text.count("<svg") == min(3, len(with_strip)) + 1 > 1  # strips, the trend
        assert "Heart rate (bpm) by minute since" in page.text
        assert page.text.count('">strip</a>') == len(with_strip)
        assert f'href="../../events/{latest["seq"]}/strip.svg"' in page.text
        assert 'href="ecg/bed-1/page"' in c.get("/ward", headers=admin).text
        assert c.get("/ecg/bed-1/page", headers=other).status_code == 403
        obs = c.get(f"/fhir/strips/{pause['seq']}", headers=admin).json()
        Observation.model_validate(obs)
        sd = obs["valueSampledData"]
        assert sd["period"] == pytest.approx(1000 / 360) and sd["factor"] == 0.001
        got = [None if v == "E" else int(v) / 1000 for v in sd["data"].split()]
        np.testing.assert_allclose(got, strip["samples"], atol=6e-4)  # to the µV
        assert obs["identifier"][0]["value"] == f"{ward.log_id}/{pause['seq']}"
        assert obs["subject"]["identifier"]["value"] == "bed-1"
        assert obs["note"][0]["text"].startswith("Pause: ")
        # the alarm's flag points at it
        flags = c.get("/fhir/events", headers=admin).json()
        Bundle.model_validate(flags)
        by_seq = {e["seq"]: e for e in events}
        pointed = [f["resource"]["extension"][0]["valueReference"]["identifier"]["value"]
                   for f in flags["entry"] if "extension" in f["resource"]]  # fmt: skip
        assert pointed == [f"{ward.log_id}/{q}" for q, e in by_seq.items() if e.get("strip_s")]
        assert obs["identifier"][0]["system"] == "urn:vitalgru:gateway-event"
        for path in (f"/events/{pause['seq']}/strip", f"/events/{pause['seq']}/strip.svg",
                     f"/fhir/strips/{pause['seq']}"):  # fmt: skip
            r = c.get(path, headers=other)  # a token for another patient
            assert r.status_code == 403 and "not for patient 'bed-1'" in r.text
        assert c.get("/events/9999/strip", headers=admin).status_code == 404
        assert c.get(f"/events/{pause['seq']}/strip").status_code == 401


def test_a_sepsis_patients_live_page_is_the_replay_page_of_the_stay_so_far(
    sepsis_fit: tuple[Any, dict, list[dict]], tmp_path: Path
) -> None:
    model, preprocessing, rows = sepsis_fit
    state = tmp_path / "ward.sqlite"

    def gateway() -> Ward:
        ward = Ward(sepsis=EarlyWarningMonitor(model, preprocessing), journal=WardJournal(state))
        ward.restore(ward.journal.load())
        return ward

    ward = gateway()
    with TestClient(create_app(ward, tick_s=0, models={"early-warning": "m (version 3)"})) as c:
        c.post("/vitals/icu 4/admit")
        for row in rows:
            c.post(
                "/vitals/icu 4", json={**row, "HR": 400.0, "FiO2": 50.0} if row is rows[2] else row
            )
        summary = c.get("/vitals/icu 4").json()
        r = c.get("/vitals/icu 4/page")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        page = r.text
        assert "Sepsis early warning: patient icu 4 (live)" in page and "m (version 3)" in page
        assert page.count("<svg") == 1  # the risk over the stay
        assert f"{summary['risk_max']:.3f}" in page
        assert "HR" in page and "400" in page  # the refused value is listed
        # with its value for a column outside the findings too (a percentage FiO2 was "?")
        assert f"ICU hour {int(rows[2]['ICULOS'])}: FiO2 = 50<" in page
        onsets = [e for e in c.get("/events").json()["events"] if e["source"] == "sepsis"]
        assert len(onsets) == summary["alarm_episodes"] > 0
        for e in onsets:  # each episode with what raised the risk when it began
            assert f"ICU hour {e['hour']}" in page or f"hour {e['hour']}" in page
            for d in e["drivers"]:
                assert html.escape(d["text"]) in page
        assert 'href="vitals/icu%204/page"' in c.get("/ward").text
        assert c.get("/vitals/nobody/page").status_code == 404
        stay = ward.sepsis_stay("icu 4")
        assert stay["hours"] == [int(row["ICULOS"]) for row in rows]
        assert len(stay["values"]["hr_bpm"]) == len(rows)
    ward.close()
    again = gateway()  # the same page after a restart, but for when it was made
    with TestClient(create_app(again, tick_s=0, models={"early-warning": "m (version 3)"})) as c:
        after = c.get("/vitals/icu 4/page").text
    # when the latest hour was scored is not kept over a restart: the page says so
    assert re.search(r"<p>The latest hour was scored at \d{4}-\d\d-\d\d \d\d:\d\d UTC\.</p>", page)
    assert "scored before the gateway's restart (when is not kept)" in after

    def strip_time(t: str) -> str:
        return re.sub(r"Generated [^.]*\.|<p>The latest hour was scored [^<]*</p>", "", t)

    assert strip_time(after) == strip_time(page)
    again.close()


def test_each_sepsis_patients_latest_hour_as_a_fhir_risk_assessment(
    client: TestClient, sepsis: tuple[EarlyWarningMonitor, list[dict]]
) -> None:
    rows = sepsis[1]
    posted = {}
    for pid, n in (("icu-1", len(rows)), ("icu-2", 3)):
        client.post(f"/vitals/{pid}/admit")
        posted[pid] = [client.post(f"/vitals/{pid}", json=row).json() for row in rows[:n]]
    client.post("/vitals/icu-3/admit")  # no hour yet: no assessment
    bundle = client.get("/fhir/risk").json()
    Bundle.model_validate(bundle)
    risks = {e["resource"]["subject"]["identifier"]["value"]: e["resource"]
             for e in bundle["entry"]}  # fmt: skip
    assert sorted(risks) == ["icu-1", "icu-2"]
    line = sepsis[0].threshold
    for pid, r in risks.items():
        s = client.get(f"/vitals/{pid}").json()
        pred = r["prediction"][0]
        assert (
            r["resourceType"] == "RiskAssessment" and r["occurrenceDateTime"] == s["last_scored_at"]
        )
        assert pred["probabilityDecimal"] == pytest.approx(s["last_hour"]["probability"], abs=1e-6)
        assert pred["qualitativeRisk"]["coding"][0]["code"] == (
            "moderate" if s["in_alarm"] else "low"
        )
        assert f"ICU hour {s['last_hour']['hour']}: risk score " in r["note"][0]["text"]
        top = max(posted[pid], key=lambda h: h["risk"])
        assert (s["risk_max"], s["risk_max_hour"]) == (top["risk"], top["hour"])
        d = risk_decimals([(s["last_hour"]["risk"], line), (s["risk_max"], line)])
        assert (f"highest risk score of the stay {s['risk_max']:.{d}f} at ICU hour "
                f"{s['risk_max_hour']}") in r["note"][0]["text"]  # fmt: skip
    with TestClient(create_app(Ward(untrained_monitor()), tick_s=0)) as c:
        assert c.get("/fhir/risk").status_code == 503


def test_fhir_routes_answer_fhir_json_and_refuse_with_an_operation_outcome(
    sepsis: tuple[EarlyWarningMonitor, list[dict]], tmp_path: Path
) -> None:
    """A FHIR client reads ``application/fhir+json``, and a refusal as an OperationOutcome
    (before: ``application/json``, and ``{"detail": ...}``, no FHIR resource at all)."""
    f = tmp_path / "tokens.json"
    as_ = {"Authorization": f"Bearer {new_token(f, 'ops', 'admin')}"}
    ward = Ward(untrained_monitor(), sepsis[0])
    with TestClient(create_app(ward, tick_s=0, tokens=TokenTable.from_file(f))) as c:
        for path in ("/fhir/events", "/fhir/risk"):
            r = c.get(path, headers=as_)
            assert r.status_code == 200 and r.headers["content-type"] == "application/fhir+json"
            Bundle.model_validate(r.json())

        def outcome(r: Any, status: int, code: str) -> str:
            assert r.status_code == status and r.headers["content-type"] == "application/fhir+json"
            body = r.json()
            OperationOutcome.model_validate(body)
            (issue,) = body["issue"]
            assert (issue["severity"], issue["code"]) == ("error", code)
            return issue["diagnostics"]

        assert "event 999 has no ECG strip" in outcome(
            c.get("/fhir/strips/999", headers=as_), 404, "not-found"
        )
        assert "since" in outcome(c.get("/fhir/events?since=-1", headers=as_), 422, "invalid")
        r = c.get("/fhir/events")  # no token: its challenge kept
        outcome(r, 401, "login")
        assert r.headers["www-authenticate"].startswith("Bearer")
        outcome(c.get("/fhir/nothing", headers=as_), 404, "not-found")
        # elsewhere FastAPI's JSON as before
        r = c.get("/events/999/strip", headers=as_)
        assert r.status_code == 404 and set(r.json()) == {"detail"}
        r = c.get("/events?since=-1", headers=as_)
        assert r.status_code == 422 and set(r.json()) == {"detail"}
    with TestClient(create_app(Ward(untrained_monitor()), tick_s=0)) as c:
        r = c.get("/fhir/risk")
        assert r.status_code == 503 and r.json()["issue"][0]["severity"] == "error"


def test_a_sepsis_alarm_no_one_acknowledges_escalates_on_the_gateways_clock(
    sepsis_fit: tuple[Any, dict, list[dict]],
) -> None:
    model, preprocessing, rows = sepsis_fit
    ward = Ward(sepsis=EarlyWarningMonitor(model, preprocessing), escalate_after_s=0.2)
    with TestClient(create_app(ward, tick_s=0.05)) as c:  # its own clock ticks the ward
        c.post("/vitals/icu-1/admit")
        for row in rows:
            if c.post("/vitals/icu-1", json=row).json()["alarm_started"]:
                break
        onset = c.get("/vitals/icu-1").json()["alarm_seq"]
        got = _sse(c.get("/events/stream", params={"since": onset, "limit": 1}).text)
        summary = c.get("/vitals/icu-1").json()
        page = c.get("/ward").text
        flags = [f["resource"]["code"]["text"] for f in c.get("/fhir/events").json()["entry"]]
    assert [(g["data"]["kind"], g["data"]["escalates"]) for g in got] == [("escalated", onset)]
    assert summary["alarm_escalated"]["seq"] == int(got[0]["id"])
    assert "in alarm, escalated, not acknowledged" in page
    assert flags[0].endswith(f"(escalated at {summary['alarm_escalated']['at']}: not acknowledged)")


def test_fhir_resources_name_the_hospitals_identifier_system(
    sepsis: tuple[EarlyWarningMonitor, list[dict]],
) -> None:
    mrn = "urn:oid:2.16.840.1.113883.19.5"
    ward = Ward(untrained_monitor(), sepsis[0], feed_timeout_s=0.01)
    with TestClient(create_app(ward, tick_s=0, patient_system=mrn)) as c:
        c.post("/vitals/MRN-0042/admit")
        c.post("/vitals/MRN-0042", json=sepsis[1][0])
        c.post("/ecg/MRN-0043/admit", json={"fs": 360})
        time.sleep(0.03)
        ward.tick()  # a feed_lost flag
        subjects = [e["resource"]["subject"]["identifier"]
                    for path in ("/fhir/risk", "/fhir/events") for e in c.get(path).json()["entry"]]  # fmt: skip
        c.delete("/vitals/MRN-0042")  # the monitor is shared by the tests
    assert subjects[0] == {"system": mrn, "value": "MRN-0042"}  # the risk assessment
    assert {"system": mrn, "value": "MRN-0043"} in subjects[1:]  # the feed_lost flag
    assert all(s["system"] == mrn for s in subjects)


def test_a_browser_opens_the_event_stream_with_a_one_use_ticket(tmp_path: Path) -> None:
    f = tmp_path / "tokens.json"
    reader = new_token(f, "wall screen", "reader")
    bay = new_token(f, "bay 2 screen", "reader", patients=["b2"])
    feed = new_token(f, "feeds", "feed")
    as_ = {k: {"Authorization": f"Bearer {v}"} for k, v in
           {"reader": reader, "bay": bay, "feed": feed}.items()}  # fmt: skip
    ward = Ward(untrained_monitor(), feed_timeout_s=0.01)
    tokens = TokenFile(f, check_s=0)
    with TestClient(create_app(ward, tick_s=0, tokens=tokens)) as c:
        for bed in ("b1", "b2"):  # two events: feeds that went quiet
            c.post(f"/ecg/{bed}/admit", json={"fs": 360}, headers=as_["feed"])
        time.sleep(0.02)
        ward.tick()
        r = c.post("/events/stream/ticket", headers=as_["reader"])
        assert r.status_code == 200 and r.json()["expires_in_s"] == 60
        ticket = r.json()["ticket"]
        assert r.json()["stream"] == f"/events/stream?ticket={ticket}"
        # no header: the ticket stands for the token, once
        r = c.get("/events/stream", params={"ticket": ticket, "since": 0, "limit": 2})
        assert r.status_code == 200 and [e["id"] for e in _sse(r.text)] == ["1", "2"]
        r = c.get("/events/stream", params={"ticket": ticket, "since": 0, "limit": 2})
        assert r.status_code == 401 and "unknown, used or expired" in r.text
        assert c.get("/events", params={"ticket": ticket}).status_code == 401  # stream only
        assert c.post("/events/stream/ticket", headers=as_["feed"]).status_code == 403
        # a ticket keeps its token's limits: the bay's screen streams its own patient only
        assert c.post("/events/stream/ticket", headers=as_["bay"]).status_code == 403
        t = c.post("/events/stream/ticket", params={"patient": "b2"}, headers=as_["bay"])
        t = t.json()["ticket"]
        assert c.get("/events/stream", params={"ticket": t, "patient": "b1"}).status_code == 403
        t = c.post("/events/stream/ticket", params={"patient": "b2"}, headers=as_["bay"])
        r = c.get("/events/stream", params={"ticket": t.json()["ticket"], "patient": "b2",
                                            "since": 0, "limit": 1})  # fmt: skip
        assert [e["data"]["patient_id"] for e in _sse(r.text)] == ["b2"]
        # a ticket redeemed after its token was narrowed has the token's rights now (its
        # own snapshot's before)
        t = c.post("/events/stream/ticket", params={"patient": "b2"}, headers=as_["bay"])
        data = json.loads(f.read_text())
        next(x for x in data["tokens"] if x["name"] == "bay 2 screen")["patients"] = ["b9"]
        f.write_text(json.dumps(data))
        r = c.get("/events/stream", params={"ticket": t.json()["ticket"], "patient": "b2",
                                            "limit": 1})  # fmt: skip
        assert r.status_code == 403
        # a reconnecting EventSource sends its URL's since= and where it got to: the
        # newer wins (since=0 replayed the whole log on every reconnect)
        r = c.get("/events/stream", params={"since": 0, "limit": 1},
                  headers={**as_["reader"], "Last-Event-ID": "1"})  # fmt: skip
        assert [e["id"] for e in _sse(r.text)] == ["2"]
        # a cursor past the log's end (a log begun again): said, and the log from its start
        r = c.get("/events/stream", params={"since": 812, "limit": 1}, headers=as_["reader"])
        assert [e["id"] for e in _sse(r.text)] == [None, "1"]  # the reset, then event 1
        assert "event: reset" in r.text
        got = c.get("/events", params={"since": 812}, headers=as_["reader"]).json()
        assert got["reset"] is True and [e["seq"] for e in got["events"]] == [1, 2]
        # a ticket of a token revoked since is refused
        t = c.post("/events/stream/ticket", headers=as_["reader"]).json()["ticket"]
        revoke_token(f, "wall screen")
        assert c.get("/events/stream", params={"ticket": t, "limit": 1}).status_code == 401
    # an open gateway needs no ticket
    with TestClient(create_app(Ward(untrained_monitor()), tick_s=0)) as c:
        assert c.post("/events/stream/ticket").status_code == 409


def test_a_caller_over_the_rate_limit_is_answered_429(tmp_path: Path) -> None:
    f = tmp_path / "tokens.json"
    tok = {n: new_token(f, n, "reader") for n in ("screen", "engine")}
    as_ = {k: {"Authorization": f"Bearer {v}"} for k, v in tok.items()}
    app = create_app(Ward(untrained_monitor()), tick_s=0, tokens=TokenTable.from_file(f),
                     rate_limit=RateLimit(0.5, burst=3))  # fmt: skip
    with TestClient(app) as c:
        assert [c.get("/patients", headers=as_["screen"]).status_code for _ in range(4)] == [
            200, 200, 200, 429]  # fmt: skip
        r = c.get("/patients", headers=as_["screen"])
        assert r.status_code == 429 and r.headers["retry-after"] == "2"
        assert "over 0.5 requests per second" in r.text
        assert c.get("/patients", headers=as_["engine"]).status_code == 200  # its own rate
        assert c.get("/health").status_code == c.get("/metrics").status_code == 200
        assert "vitalgru_requests_rate_limited_total 2.0" in c.get("/metrics").text
        # requests without a valid token are limited by the client's address (the 401
        # came first: a client guessing tokens was never limited), valid tokens unaffected
        wrong = {"Authorization": "Bearer revoked-or-wrong-token-xyz"}
        codes = [c.get("/patients", headers=h).status_code for h in (wrong, {}, wrong, wrong)]
        assert codes == [401, 401, 401, 429]
        assert c.get("/patients", headers=as_["engine"]).status_code == 200
    # an open gateway limits each client address
    app = create_app(Ward(untrained_monitor()), tick_s=0, rate_limit=RateLimit(0.5, burst=1))
    with TestClient(app) as c:
        assert [c.get("/patients").status_code for _ in range(2)] == [200, 429]


def test_a_web_page_cannot_drive_a_gateway_without_tokens() -> None:
    adt = "MSH|^~\\&|ADT|H|vitalgru|W|20261206100000||ADT^A01|c1|P|2.5\rPID|1||bed-4\r"
    er7 = {"Content-Type": "x-application/hl7-v2+er7"}
    app = create_app(Ward(untrained_monitor()), tick_s=0, hosts=["0.0.0.0"],
                     public_url="https://gw.example.org")  # fmt: skip
    with TestClient(app, base_url="http://localhost:8000") as c:
        # bodies a browser sends cross-site without asking first are refused
        for kind in ("text/plain", "application/x-www-form-urlencoded", None):
            r = c.post("/hl7", content=adt, headers={} if kind is None else {"Content-Type": kind})
            assert r.status_code == 415 and "x-application/hl7-v2+er7" in r.text, kind
        for kind in ("x-application/hl7-v2+er7", "application/hl7-v2; charset=utf-8"):
            assert c.post("/hl7", content=adt, headers={"Content-Type": kind}).status_code != 415
        fhir = {"Content-Type": "application/fhir+json"}
        assert c.post("/ecg/e1/admit", content='{"fs": 360}', headers=fhir).status_code == 201
        # another site's page: refused, even without a body
        for head in ({"Origin": "https://evil.example"}, {"Origin": "null"},
                     {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}):  # fmt: skip
            r = c.post("/ecg/csrf/admit", json={"fs": 360}, headers=head)
            assert r.status_code == 403 and "another" in r.text, head
            assert c.post("/hl7", content=adt, headers={**er7, **head}).status_code == 403
        assert "csrf" not in c.get("/patients").json()["ecg"]
        for head in ({"Origin": "http://localhost:8000"}, {"Sec-Fetch-Site": "same-origin"},
                     {"Origin": "https://gw.example.org"}):  # fmt: skip
            assert c.get("/patients", headers=head).status_code == 200, head
        # a link from another site (the intranet) to a page is followed: it changes nothing
        for site in ("same-site", "cross-site"):
            link = {"Sec-Fetch-Site": site, "Sec-Fetch-Mode": "navigate"}
            assert c.get("/ward", headers=link).status_code == 200, site
        # a name pointed at the gateway by someone else's DNS (rebinding): refused
        r = c.get("/patients", headers={"Host": "evil.example:8000"})
        assert r.status_code == 403 and "not a name of this gateway" in r.text
        for host in ("127.0.0.1:8000", "[::1]:8000", "gw.example.org", "LOCALHOST"):
            assert c.get("/patients", headers={"Host": host}).status_code == 200, host
        assert c.get("/metrics", headers={"Host": "scraper-name:8000"}).status_code == 200
    # with tokens a page has nothing to send: only the body types are checked
    app = create_app(Ward(untrained_monitor()), tick_s=0, token="a-shared-token-for-everything",
                     hosts=["0.0.0.0"])  # fmt: skip
    with TestClient(app) as c:
        auth = {"Authorization": "Bearer a-shared-token-for-everything"}
        r = c.post("/ecg/e2/admit", json={"fs": 360}, headers={**auth, "Origin": "https://x.org"})
        assert r.status_code == 201
        r = c.post("/hl7", content=adt, headers={**auth, "Content-Type": "text/plain"})
        assert r.status_code == 415


def _https_server(app: Any, **tls: Any) -> tuple[Any, int, threading.Thread]:
    """``app`` served by uvicorn over HTTPS on a free port, in a thread (what ``vitalgru
    serve --tls-cert`` runs)."""
    import socket

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **tls)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    return server, port, thread


# the deprecations of the TLS set-up this test drives (httpx's verify=<path>) fail it, so that
# they are changed before an upgrade removes them
@pytest.mark.filterwarnings("error::DeprecationWarning")
def test_the_gateway_serves_https_and_with_client_certificates(tmp_path: Path) -> None:
    import httpx
    from tls_kit import make_pki

    from pipelines.gateway_serve import http_tls_options

    pki = make_pki(tmp_path)
    ca = str(pki["ca"])
    # a client that trusts the CA: an SSLContext (httpx deprecates verify=<path>)
    trusting = ssl.create_default_context(cafile=ca)
    ward = Ward(untrained_monitor())
    opts = http_tls_options(str(pki["server_cert"]), str(pki["server_key"]))
    server, port, thread = _https_server(create_app(ward, tick_s=0), **opts)
    try:
        r = httpx.get(f"https://127.0.0.1:{port}/health", verify=trusting, timeout=10)
        assert r.status_code == 200 and r.json()["status"] == "ok"
        with pytest.raises(httpx.ConnectError):  # a client that does not trust the CA
            httpx.get(f"https://127.0.0.1:{port}/health", timeout=10)
        with pytest.raises(httpx.HTTPError):  # plain HTTP gets no answer
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=10)
    finally:
        server.should_exit = True
        thread.join(10)

    mutual = http_tls_options(str(pki["server_cert"]), str(pki["server_key"]), ca)
    server, port, thread = _https_server(create_app(ward, tick_s=0), **mutual)
    try:
        with pytest.raises(httpx.HTTPError):  # no client certificate: no connection
            httpx.get(f"https://127.0.0.1:{port}/health", verify=trusting, timeout=10)
        ctx = ssl.create_default_context(cafile=ca)
        ctx.load_cert_chain(str(pki["client_cert"]), str(pki["client_key"]))
        assert (
            httpx.get(f"https://127.0.0.1:{port}/health", verify=ctx, timeout=10).status_code == 200
        )
    finally:
        server.should_exit = True
        thread.join(10)
    assert http_tls_options(None, None) == {}
    with pytest.raises(ValueError, match="go together"):
        http_tls_options(str(pki["server_cert"]), None)
    with pytest.raises(ValueError, match="needs --tls-cert"):
        http_tls_options(None, None, ca)
    # a file that is missing or not a certificate fails at once, naming its option and
    # the file (ssl's "[Errno 2] No such file or directory" named neither)
    with pytest.raises(ValueError, match=r"--tls-cert/--tls-key .*missing\.pem .*No such file"):
        http_tls_options(str(tmp_path / "missing.pem"), str(pki["server_key"]))
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ValueError, match=r"--tls-client-ca .*junk\.pem: not a PEM file"):
        http_tls_options(str(pki["server_cert"]), str(pki["server_key"]), str(junk))


def test_a_restarted_gateway_goes_on_with_the_same_challengers_comparison(
    sepsis_fit: tuple[Any, dict, list[dict]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, preprocessing, rows = sepsis_fit
    _without_registry(monkeypatch, model, preprocessing)
    state = tmp_path / "ward-state.sqlite"
    ward, _ = build_ward(None, "models:/champ", state, None, "models:/challenger")
    for pid, n in (("p1", 4), ("p2", 3)):
        ward.admit_sepsis(pid)
        for row in rows[:n]:
            ward.add_hour(pid, row)
    ward.discharge_sepsis("p2")  # in the comparison, no longer in the state file
    ward.close()
    before = ward.shadow_report()
    assert before["early_warning"]["hours"] == 7
    again, _ = build_ward(None, "models:/champ", state, None, "models:/challenger")
    assert again.shadow_report() == before
    again.close()
    # another challenger starts its own comparison: only p1's stored hours, scored anew
    other, _ = build_ward(None, "models:/champ", state, None, "models:/another")
    assert other.shadow_report()["early_warning"]["hours"] == 4
    other.add_hour("p1", rows[4])
    assert other.shadow_report()["early_warning"]["hours"] == 5
    other.close()


def test_an_ecg_stream_is_merged_into_the_patients_own_record(tmp_path: Path) -> None:
    f = tmp_path / "tokens.json"
    engine = new_token(f, "integration engine", "feed")
    bed = new_token(f, "bed-4 monitor", "feed", patients=["tmp-*", "bed-4"])
    app = create_app(Ward(untrained_monitor()), tick_s=0, tokens=TokenTable.from_file(f))
    with TestClient(app) as c:
        as_bed, as_engine = ({"Authorization": f"Bearer {t}"} for t in (bed, engine))
        assert c.post("/ecg/tmp-4/admit", json={"fs": 360}, headers=as_bed).status_code == 201
        refused = c.post("/ecg/tmp-4/merge?into=mrn-4", headers=as_bed)
        assert refused.status_code == 403 and "not for patient 'mrn-4'" in refused.text
        got = c.post("/ecg/tmp-4/merge?into=mrn-4", headers=as_engine)
        assert got.status_code == 200 and got.json()["patient_id"] == "mrn-4"
        again = c.post("/ecg/tmp-4", json={"samples": [0.0] * 36}, headers=as_engine)
        assert again.status_code == 404 and "was merged into 'mrn-4'" in again.text
        assert c.post("/ecg/tmp-4/merge?into=mrn-5", headers=as_engine).status_code == 404
        c.post("/ecg/bed-4/admit", json={"fs": 360}, headers=as_engine)
        clash = c.post("/ecg/mrn-4/merge?into=bed-4", headers=as_engine)
        assert clash.status_code == 409 and "already on ECG monitoring" in clash.text


def test_a_shadow_comparison_goes_on_only_against_the_same_champion() -> None:
    from pipelines.gateway_models import shadows_going_on

    ran = {"early-warning": "models:/ew@champion (version 1)",
           "shadow early-warning": "models:/ew@challenger (version 3)",
           "arrhythmia": "models:/a@champion (version 2)",
           "shadow arrhythmia": "models:/a@challenger (version 4)"}  # fmt: skip
    assert shadows_going_on(ran, ran) == {"early_warning", "arrhythmia"}
    promoted = {**ran, "early-warning": "models:/ew@champion (version 2)"}
    # the challenger was compared with version 1; version 2 scores the patients now (the
    # old counts were taken up before)
    assert shadows_going_on(ran, promoted) == {"arrhythmia"}
    other = {**ran, "shadow arrhythmia": "models:/a@challenger (version 5)"}
    assert shadows_going_on(ran, other) == {"early_warning"}


def test_an_acknowledgement_names_its_patient_in_the_access_log_on_an_open_gateway(
    tmp_path: Path,
) -> None:
    from pipelines.audit import AuditLog

    ward = Ward(untrained_monitor(), feed_timeout_s=0.01)
    audit = AuditLog(tmp_path / "audit.sqlite")
    with TestClient(create_app(ward, tick_s=0, audit=audit)) as c:
        c.post("/ecg/bed-2/admit", json={"fs": 360})
        time.sleep(0.03)
        ward.tick()  # the feed is lost: an alarm of bed-2's
        (lost,) = ward.events()["events"]
        assert c.post(f"/events/{lost['seq']}/ack", json={"by": "RN Diaz"}).status_code == 200
    acks = [r for r in audit.rows() if r["action"] == "POST /events/{seq}/ack"]
    assert [(r["caller"], r["patient_id"]) for r in acks] == [("open", "bed-2")]  # None before


def test_a_stream_ends_when_its_token_is_revoked(tmp_path: Path) -> None:
    import asyncio

    from pipelines.gateway_events import _sse as stream

    ward = Ward(untrained_monitor(), feed_timeout_s=0.01)
    allowed = [True]

    async def read() -> list[str]:
        got = []
        async for part in stream(ward, 0, None, lambda: False, allowed=lambda: allowed[0]):
            got.append(part)
            if len(got) == 1:
                allowed[0] = False  # revoked while the stream is open
        return got

    # it ran on with the rights it opened with before, until the client went
    got = asyncio.run(asyncio.wait_for(read(), timeout=10))
    assert got[-1].startswith("event: unauthorized")


def test_bodies_the_models_refuse_are_422_however_odd(
    sepsis: tuple[EarlyWarningMonitor, list[dict]],
) -> None:
    ward = Ward(untrained_monitor(), sepsis[0])
    with TestClient(create_app(ward, tick_s=0)) as c:
        for path, body in (("/ecg/a/admit", '{"fs": NaN}'), ("/ecg/a/admit", '{"fs": -Infinity}'),
                           ("/ecg/b", '{"samples": [0.1], "start": Infinity}')):  # fmt: skip
            r = c.post(path, content=body, headers={"Content-Type": "application/json"})
            assert r.status_code == 422, (path, body)  # 500 before: the answer echoed NaN
        c.post("/ecg/b/admit", json={"fs": 360})
        r = c.post("/ecg/b", json={"samples": [0.1], "start": 2**63})  # broke every tick
        assert r.status_code == 422
        # the status follows what went wrong, not the words of a patient's id ("already-7"
        # made an out-of-order hour 409, "without a bed" 503)
        for pid in ("icu-7", "already-7", "without a bed"):
            c.post(f"/vitals/{pid}/admit")
            c.post(f"/vitals/{pid}", json={**sepsis[1][0], "ICULOS": 5})
            r = c.post(f"/vitals/{pid}", json={**sepsis[1][0], "ICULOS": 3})
            assert r.status_code == 422, pid
            c.delete(f"/vitals/{pid}")
        assert c.post("/ecg/b/admit", json={"fs": 360}).status_code == 409  # admitted twice
        # an admission time a year back (every hour since scored at once, under the lock
        # the feeds wait on) is refused
        r = c.post("/vitals/icu-9/admit", params={"admitted_at": "2025-06-01T00:00:00+00:00"})
        assert r.status_code == 422 and "check the year" in r.text


def test_a_stream_of_one_patient_sends_keep_alives_while_others_are_busy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the quiet time was reset by any event logged, even one the filter left out: a stream
    # of one patient sent nothing at all while the rest of the ward was busy, and proxies
    # closed it as idle
    import asyncio

    from pipelines import gateway_events

    class BusyWard:
        t0 = time.monotonic()

        @property
        def last_seq(self) -> int:  # another patient's event every 5 ms
            return int((time.monotonic() - self.t0) / 0.005)

        def events(self, since: int, limit: int, patient_id: Any = None, source: Any = None):
            return {"events": [], "dropped": 0, "last_seq": self.last_seq}

    monkeypatch.setattr(gateway_events, "STREAM_KEEPALIVE_S", 0.05)
    monkeypatch.setattr(gateway_events, "STREAM_POLL_S", 0.01)
    t_end = time.monotonic() + 0.5

    async def read() -> list[str]:
        gen = gateway_events._sse(BusyWard(), 0, None, lambda: time.monotonic() > t_end, "bed-4")
        return [m async for m in gen]

    sent = asyncio.run(read())
    assert sent[0].startswith("retry:") and sent.count(": keep-alive\n\n") >= 3


def test_a_row_is_refused_or_taken_before_the_hour_being_assembled_is_closed(
    sepsis_fit: tuple[Any, dict, list[dict]],
) -> None:
    # the row's hour was read only under "ICULOS"/"hour" as a number: "iculos" or "3" let
    # the row be scored ahead of the held hour, which the monitor then refused and the ward
    # dropped (a log line); a row refused (ICULOS 40000) had closed the held hour first, and
    # ICULOS Infinity was a 500
    from datetime import UTC, datetime, timedelta

    model, preprocessing, _ = sepsis_fit

    def held() -> tuple[Ward, TestClient]:
        ward = Ward(None, EarlyWarningMonitor(model, preprocessing))
        c = TestClient(create_app(ward, tick_s=0), raise_server_exceptions=False)
        at = (datetime.now(UTC) - timedelta(minutes=70)).isoformat()
        assert c.post("/vitals/p/admit", params={"admitted_at": at}).status_code == 201
        hr = {"resourceType": "Observation", "status": "final",
              "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
              "effectiveDateTime": datetime.now(UTC).isoformat(),
              "valueQuantity": {"value": 118, "unit": "/min",
                                "system": "http://unitsofmeasure.org", "code": "/min"}}  # fmt: skip
        assert c.post("/vitals/p/fhir", json=hr).json()["hour"] == 2
        return ward, c

    for spelled in ({"iculos": 3}, {"ICULOS": "3"}):
        ward, c = held()
        assert c.post("/vitals/p", json={**spelled, "HR": 90}).status_code == 200
        stay = ward.sepsis_stay("p")
        assert stay["hours"] == [1, 2, 3] and stay["values"]["hr_bpm"][1] == 118, spelled
    for body in (b'{"ICULOS": 40000, "HR": 90}', b'{"ICULOS": Infinity}', b'{"HR": 90}'):
        ward, c = held()
        r = c.post("/vitals/p", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 422 and "ICULOS" in r.json()["detail"], body
        assert ward.sepsis_stay("p")["hours"] == [] and c.get("/vitals/p").json()["assembling"]
