"""The ward when the machine's wall clock steps (NTP correcting it, a VM resumed, a date set
by hand, a clock that started years off): the sepsis hours close as time passes, not as the
clock jumps."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from pipelines.gateway_metrics import WardCollector
from vitalgru.scoring import EarlyWarningMonitor
from vitalgru.scoring.clock_steps import ClockSteps
from vitalgru.scoring.ward import Ward


class _Clocks:
    """The wall clock and the monotonic one the sepsis hours read, moved by the test."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.wall = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
        self.mono = 1000.0
        monkeypatch.setattr("vitalgru.scoring.ward_sepsis_hours._now", lambda: self.wall)
        monkeypatch.setattr("vitalgru.scoring.ward_sepsis_hours._clock", lambda: self.mono)

    def passes(self, **kw: float) -> None:
        """Time passes: both clocks move on."""
        self.wall += timedelta(**kw)
        self.mono += timedelta(**kw).total_seconds()

    def steps(self, **kw: float) -> None:
        """The wall clock steps; no time passes."""
        self.wall += timedelta(**kw)


def _hours(ward: Ward, pid: str) -> list[int]:
    return ward.sepsis_stay(pid)["hours"]


class TestSepsisHoursOverAClockStep:
    @pytest.mark.parametrize("step", [timedelta(hours=1), timedelta(days=365)])
    def test_a_step_forward_closes_no_hour_early_nor_any_as_empty(
        self,
        sepsis_fit: tuple[Any, dict, list[dict]],
        monkeypatch: pytest.MonkeyPatch,
        step: timedelta,
    ) -> None:
        # a year forward scored 24 empty hours a tick until the stay reached the clock, and
        # every observation after it was refused as late; an hour forward closed the hour
        # going on 35 min early, its later observations refused
        model, preprocessing, _ = sepsis_fit
        clocks = _Clocks(monkeypatch)
        monkeypatch.setattr("vitalgru.scoring.ward_sepsis_hours.HOUR_QUIET_S", 0.0)
        ward = Ward(None, EarlyWarningMonitor(model, preprocessing))
        ward.admit_sepsis("icu-1", None, clocks.wall - timedelta(minutes=150))  # in hour 3
        ward.add_observations("icu-1", 3, {"HR": 101.0})
        clocks.passes(minutes=5)
        clocks.steps(seconds=step.total_seconds())
        for _ in range(3):
            clocks.passes(seconds=1)
            ward.tick()
        assert _hours(ward, "icu-1") == []  # hour 3 is still going on
        clocks.steps(seconds=-step.total_seconds())  # corrected
        ward.add_observations("icu-1", 3, {"HR": 99.0})  # taken: hour 3 is still open
        clocks.passes(minutes=40)  # hour 3 ended 10 min ago: it closes
        ward.tick()
        assert _hours(ward, "icu-1") == [1, 2, 3]
        assert ward.sepsis_stay("icu-1")["risks"][-1] is not None
        ward.add_observations("icu-1", 4, {"HR": 97.0})  # the next hour is taken too

    def test_hours_without_observations_still_close_as_time_passes(
        self, sepsis_fit: tuple[Any, dict, list[dict]], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        model, preprocessing, _ = sepsis_fit
        clocks = _Clocks(monkeypatch)
        monkeypatch.setattr("vitalgru.scoring.ward_sepsis_hours.HOUR_QUIET_S", 0.0)
        ward = Ward(None, EarlyWarningMonitor(model, preprocessing))
        ward.admit_sepsis("icu-1", None, clocks.wall - timedelta(minutes=150))
        ward.add_observations("icu-1", 3, {"HR": 101.0})
        clocks.passes(minutes=100)  # hour 3 closed at +40 min, hour 4 (empty) at +100
        ward.tick()
        assert _hours(ward, "icu-1") == [1, 2, 3, 4]
        clocks.steps(hours=5)  # a step forward: hours 5 to 9 are not over for all that
        ward.tick()
        assert _hours(ward, "icu-1") == [1, 2, 3, 4]
        clocks.passes(minutes=60)  # an hour later, one more
        ward.tick()
        assert _hours(ward, "icu-1") == [1, 2, 3, 4, 5]
        clocks.steps(hours=-5)
        clocks.passes(minutes=60)  # and on the corrected clock, the next as it ends
        ward.tick()
        assert _hours(ward, "icu-1") == [1, 2, 3, 4, 5, 6]


def test_the_hours_clock_counts_a_suspend(monkeypatch: pytest.MonkeyPatch) -> None:
    # time.monotonic stops while Linux is suspended: a gateway resumed after 3 h closed
    # the hours it slept through only when the next observation came; the patient's hours
    # went on, as CLOCK_BOOTTIME does
    from vitalgru.scoring import ward_sepsis_hours

    if not hasattr(time, "CLOCK_BOOTTIME"):
        pytest.skip("no CLOCK_BOOTTIME on this system: time.monotonic is used")
    suspended = {"s": 0.0}
    real = time.clock_gettime

    def clock_gettime(which: int) -> float:
        return real(which) + (suspended["s"] if which == time.CLOCK_BOOTTIME else 0.0)

    monkeypatch.setattr(time, "clock_gettime", clock_gettime)
    before = ward_sepsis_hours._clock()
    suspended["s"] = 3 * 3600.0  # 3 h asleep: the monotonic clock did not count them
    assert ward_sepsis_hours._clock() - before >= 3 * 3600.0


class TestAStepIsLogged:
    def test_each_step_is_logged_once_and_counted(
        self,
        sepsis_fit: tuple[Any, dict, list[dict]],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        # nothing told that the times in the event log had jumped an hour, or back
        model, preprocessing, _ = sepsis_fit
        wall, mono = [1.8e9], [50.0]
        ward = Ward(None, EarlyWarningMonitor(model, preprocessing))
        ward.clock_steps = ClockSteps(lambda: wall[0], lambda: mono[0])
        caplog.set_level("WARNING", logger="vitalgru.scoring.ward")
        for step in (3600.0, 0.0, 0.0, -600.0, 0.0, 365 * 86400.0):
            wall[0] += step + 1.0
            mono[0] += 1.0
            ward.tick()
        said = [r.getMessage() for r in caplog.records if "wall clock stepped" in r.getMessage()]
        assert len(said) == 3
        assert "forward by 3600.0 s" in said[0] and "back by 600.0 s" in said[1]
        assert ward.telemetry()["clock_steps"] == 3
        registry = CollectorRegistry()
        registry.register(WardCollector(ward, {}))
        assert registry.get_sample_value("vitalgru_clock_steps_total") == 3

    def test_time_passing_and_slewing_are_not_steps(self) -> None:
        wall, mono = [0.0], [0.0]  # a machine started at 1970, corrected later
        steps = ClockSteps(lambda: wall[0], lambda: mono[0])
        for _ in range(100):
            wall[0] += 1.0005  # NTP slewing: both clocks follow it, but say this one did not
            mono[0] += 1.0
            assert steps.check() is None
        wall[0] += 1.7e9
        assert steps.check() == pytest.approx(1.7e9)
