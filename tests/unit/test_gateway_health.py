"""``/health`` says ``degraded``, and why, while the state file or the access log cannot be
written or the alarm forwarder fails, not only while a model fall-back is served; HTTP 200
all the same, and the same causes on ``/metrics``."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from fastapi.testclient import TestClient
from http_testkit import closed_port
from monitor_kit import untrained_monitor
from prometheus_client.parser import text_string_to_metric_families

from pipelines.audit import AuditLog
from pipelines.gateway import create_app
from pipelines.gateway_health import DEGRADED_CAUSES
from pipelines.hl7_forward import AlarmForwarder
from vitalgru.scoring.ward import Ward
from vitalgru.scoring.ward_journal import WardJournal


def _degraded(c: TestClient) -> dict[str, float]:
    return {s.labels["cause"]: s.value
            for f in text_string_to_metric_families(c.get("/metrics").text)
            for s in f.samples if s.name == "vitalgru_degraded"}  # fmt: skip


def _wait(cond, seconds: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("timed out")
        time.sleep(0.02)


def test_failing_writes_and_a_failing_forwarder_make_the_gateway_degraded(tmp_path: Path) -> None:
    journal = WardJournal(tmp_path / "ward.sqlite")
    journal._db.execute("PRAGMA busy_timeout = 0")  # a locked file fails at once
    ward = Ward(untrained_monitor(), feed_timeout_s=0.01, journal=journal)
    audit = AuditLog(tmp_path / "audit.sqlite")
    audit._db.execute("PRAGMA busy_timeout = 0")
    app = create_app(ward, tick_s=0, audit=audit)
    with TestClient(app) as c:
        health = c.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert health.json()["degraded_because"] == []
        assert _degraded(c) == dict.fromkeys(DEGRADED_CAUSES, 0.0)

        # another program holds the state file: the ward's writes fail (a full disk alike)
        with sqlite3.connect(tmp_path / "ward.sqlite", timeout=0) as other:
            other.execute("BEGIN EXCLUSIVE")
            assert c.post("/ecg/bed-1/admit", json={"fs": 360}).status_code == 201
            health = c.get("/health")
            other.execute("ROLLBACK")
        # before: "ok", with only the count of errors beside it
        assert health.status_code == 200 and health.json()["status"] == "degraded"
        assert health.json()["degraded_because"] == ["state_write_failing"]
        assert health.json()["state_write_errors"] >= 1 and health.json()["state_write_failing"]
        assert _degraded(c)["state_write_failing"] == 1
        c.post("/ecg/bed-2/admit", json={"fs": 360})  # written: the cause is over
        assert c.get("/health").json()["degraded_because"] == []
        assert _degraded(c)["state_write_failing"] == 0

        # the access log cannot be written: reads are answered that it does not hold
        with sqlite3.connect(tmp_path / "audit.sqlite", timeout=0) as other:
            other.execute("BEGIN EXCLUSIVE")
            assert c.get("/patients").status_code == 200
            other.execute("ROLLBACK")
        health = c.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "degraded"
        assert health.json()["degraded_because"] == ["audit_write_failing"]
        assert health.json()["audit"]["write_errors"] == 2  # a row per patient listed
        assert _degraded(c)["audit_write_failing"] == 1
        c.get("/patients")  # written
        assert c.get("/health").json()["status"] == "ok"
    ward.close()


def test_a_failing_alarm_forwarder_makes_the_gateway_degraded() -> None:
    ward = Ward(untrained_monitor(), feed_timeout_s=0.01)
    fwd = AlarmForwarder(ward, "127.0.0.1", closed_port(), retry_s=0.05, poll_s=0.02)
    with TestClient(create_app(ward, tick_s=0, forwarder=fwd)) as c:
        assert c.get("/health").json()["status"] == "ok"
        c.post("/ecg/bed-1/admit", json={"fs": 360})
        time.sleep(0.03)
        ward.tick()  # the feed is lost: an alarm the interface engine does not take
        _wait(lambda: fwd.failing)
        health = c.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "degraded"
        assert health.json()["degraded_because"] == ["alarm_forwarder_failing"]
        assert health.json()["alarm_forwarder"]["failing"]
        assert _degraded(c) == {**dict.fromkeys(DEGRADED_CAUSES, 0.0),
                                "alarm_forwarder_failing": 1.0}  # fmt: skip


def test_a_failing_tick_makes_the_gateway_degraded(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Out of memory in every tick (a memory limit): the clock logged each failure and went
    # on, and /health said "ok" while no ECG was scored and no alarm raised from it.
    ward = Ward(untrained_monitor(), feed_timeout_s=60.0)
    real, calls = ward.tick, []

    def out_of_memory() -> dict[str, int]:
        calls.append(1)
        raise MemoryError("Unable to allocate 49.0 MiB for an array")

    monkeypatch.setattr(ward, "tick", out_of_memory)
    with TestClient(create_app(ward, tick_s=0.02)) as c:
        _wait(lambda: len(calls) >= 2)
        health = c.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "degraded"
        assert health.json()["degraded_because"] == ["tick_failing"]
        assert _degraded(c)["tick_failing"] == 1
        monkeypatch.setattr(ward, "tick", real)  # memory again: the next tick succeeds
        _wait(lambda: c.get("/health").json()["status"] == "ok")
        assert _degraded(c)["tick_failing"] == 0 and c.get("/health").json()["tick_errors"] >= 2
    ward.close()
