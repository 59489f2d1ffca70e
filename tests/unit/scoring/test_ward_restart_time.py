"""An ECG feed that sends in real time with its sample index across a gateway restart: the
restored stream keeps the feed's clock, so the alarms after the restart are timed
(``onset_at``, a strip's ``start_at``) when the device took their beats, and an outage
longer than a chunk can be is a break in the feed, not a feed that restarted its count.

The wall clock is the test's own (the gateway's ``datetime.now`` and ``time.monotonic``):
the feed sends each second's chunk the moment it is over, and the gateway is down for
``D`` seconds without the test waiting them."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import wfdb
from monitor_kit import PREPROCESSING

from vitalgru.data.beat_features import RR_FEATURES
from vitalgru.models.arrhythmia import ArrhythmiaEnsemble, ArrhythmiaGRU
from vitalgru.scoring import ArrhythmiaMonitor
from vitalgru.scoring.alert_types import AlertRules
from vitalgru.scoring.ward import Ward
from vitalgru.scoring.ward_journal import WardJournal

FS = 360
BEFORE = 16  # seconds sent before the gateway stops
AFTER = 16  # and after it is back


@pytest.fixture(scope="module")
def x(mitdb_dir: Path) -> np.ndarray:
    rec = wfdb.rdrecord(str(mitdb_dir / "119"), sampto=(BEFORE + 91 + AFTER + 2) * FS)
    return rec.p_signal[:, rec.sig_name.index("MLII")].astype(np.float64)


def _monitor() -> ArrhythmiaMonitor:
    """Seeded networks biased towards V, so that runs of V are called in 119's bigeminy
    (the same weights every call: the restarted ward takes up the network's memory)."""
    torch.manual_seed(0)
    nets = [ArrhythmiaGRU(n_rr=len(RR_FEATURES), output_delay=1) for _ in range(2)]
    with torch.no_grad():
        for net in nets:
            net.head[-1].bias[2] += 0.25
    return ArrhythmiaMonitor(ArrhythmiaEnsemble.of(nets, quality_gate=0.9).eval(),
                             PREPROCESSING, alert_rules=AlertRules(v_run_beats=1))  # fmt: skip


class _Clock:
    """The gateway's wall clock, moved on only by the test (:meth:`at`: seconds since the
    admission)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.t = 0.0
        self.t0 = datetime(2026, 12, 5, 8, 0, 0, 250_000, tzinfo=UTC)
        mono0 = time.monotonic()
        clock = self

        class Now(datetime):
            @classmethod
            def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
                return (clock.t0 + timedelta(seconds=clock.t)).astimezone(tz)

        monkeypatch.setattr(time, "monotonic", lambda: mono0 + clock.t)
        for module in ("ward_ecg", "ward_restart", "ward_events"):
            monkeypatch.setattr(f"vitalgru.scoring.{module}.datetime", Now)

    def at(self, t: float) -> None:
        assert t >= self.t
        self.t = t


def _send(ward: Ward, x: np.ndarray, clock: _Clock, k: int, start: int) -> None:
    """Second ``k`` of the device's signal, sent as it ends, from the feed's index ``start``."""
    clock.at(k + 1.0)
    ward.add_ecg("p", x[k * FS : (k + 1) * FS].tolist(), start)
    ward.tick()


def _runs(ward: Ward, after: int = 0) -> list[dict[str, Any]]:
    return [e for e in ward.events(after, limit=10_000)["events"]
            if e["kind"] == "ventricular_run"]  # fmt: skip


def _on_time(at: str, device_s: float, clock: _Clock) -> bool:
    """Whether a wall time the ward gave (ISO, to the millisecond) is when the device took
    the sample at ``device_s`` (s since the admission): cut to the second, as it was, a
    strip was up to a second (360 samples) off its time."""
    off = (datetime.fromisoformat(at) - clock.t0).total_seconds() - device_s
    return -1e-3 < off <= 1e-6


@pytest.mark.parametrize(("down_s", "recount"), [(8, False), (90, False), (8, True)])
def test_alarms_after_a_restart_are_timed_when_the_device_took_their_beats(
    x: np.ndarray,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    down_s: int,
    recount: bool,
) -> None:
    # the feed's sample i is taken at admission + i / FS; the gateway stops after BEFORE
    # seconds and is back down_s seconds later (8: a break shorter than a chunk can be; 90:
    # longer), the device sending on from its index (or, recount, from 0: it restarted too)
    clock = _Clock(monkeypatch)
    state = tmp_path / "w.sqlite"
    ward = Ward(_monitor(), journal=WardJournal(state), feed_timeout_s=3600)
    ward.admit_ecg("p", float(FS))
    for k in range(BEFORE):
        _send(ward, x, clock, k, k * FS)
    before = _runs(ward)
    assert before
    for e in before:  # the stream from the admission: sample i at i / FS
        assert _on_time(e["onset_at"], e["onset_s"], clock)
    ward.close()
    clock.at(BEFORE + 0.5 + down_s)
    again = Ward(_monitor(), journal=WardJournal(state), feed_timeout_s=3600)
    again.restore(again.journal.load())
    seen = again.events()["last_seq"]
    first = BEFORE + 1 + down_s  # the first second the device ends after the restart
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vitalgru.scoring.ward"):
        for k in range(first, first + AFTER):
            _send(again, x, clock, k, (k - first if recount else k) * FS)
    got = again.ecg_summary("p")
    after = _runs(again, seen)
    assert after
    if recount:  # the stream starts at the chunk: its samples were taken just before
        assert (got["index_restarts"], got["break_samples"]) == (1, 0)
        zero = first
    else:  # the samples sent while the gateway was down: a break, the index going on
        assert (got["index_restarts"], got["break_samples"]) == (0, (first - BEFORE) * FS)
        assert "restarted its count" not in caplog.text
        zero = BEFORE  # the restored stream's time 0: the index it resumed at
    for e in after:
        # was down_s late: the stream's time 0 was taken as the restart itself
        assert _on_time(e["onset_at"], zero + e["onset_s"], clock), e
        # logged after its onset (received_at is to the second)
        assert datetime.fromisoformat(e["onset_at"]) < datetime.fromisoformat(
            e["received_at"]
        ) + timedelta(seconds=1)
        strip = again.strip(e["seq"])
        assert _on_time(strip["start_at"], zero + strip["start_s"], clock)
    again.close()
