"""A pause alarm tells a lead problem from asystole by the signal of its own silence: the
latest quality window ended before the silence began (and there is none at a stream's
start), so its verdict could not say that a good lead had gone flat or off."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import wfdb
from monitor_kit import untrained_monitor

from vitalgru.dsp.quality_stream import QualityStream
from vitalgru.dsp.rpeaks import ecg_rpeaks
from vitalgru.scoring.alert_types import AlertRules
from vitalgru.scoring.alerts import AlertTracker

FS = 360


@pytest.fixture(scope="module")
def ecg(mitdb_dir: Path) -> np.ndarray:
    """60 s of record 100 (sinus rhythm), MLII, as recorded (raw, in mV)."""
    rec = wfdb.rdrecord(str(mitdb_dir / "100"), sampto=60 * FS)
    return rec.p_signal[:, rec.sig_name.index("MLII")].astype(np.float64)


def _pauses(x: np.ndarray, chunk: int = 90) -> list:
    mon = untrained_monitor()
    mon.admit("p", float(FS))
    alerts = []
    for a in range(0, x.size, chunk):
        alerts += mon.push({"p": x[a : a + chunk]}).alerts
    alerts += mon.discharge("p").alerts
    return [a for a in alerts if a.kind == "pause"]


def _lead_gone(kind: str) -> np.ndarray:
    """5 s of a lead that is off: a device sending null (NaN), zeros, or a flat line with
    a few µV of noise."""
    if kind == "nan":
        return np.full(5 * FS, np.nan)
    if kind == "zeros":
        return np.zeros(5 * FS)
    return np.random.default_rng(2).normal(0.0, 0.002, 5 * FS)


@pytest.mark.parametrize(
    ("kind", "at_s"),
    [("nan", 0), ("zeros", 0), ("nan", 30), ("zeros", 30), ("tiny noise", 30)],
)
def test_a_pause_on_a_lead_gone_flat_or_off_says_so(ecg: np.ndarray, kind: str, at_s: int) -> None:
    x = np.concatenate([ecg[: at_s * FS], _lead_gone(kind), ecg[at_s * FS :]])
    (pause,) = _pauses(x)
    # as fast as before: it is raised 3 s of silence after the last beat all the same
    assert at_s - 1.5 < pause.onset_s <= at_s and pause.delay_s < 4.0
    want = "nonfinite, lead off" if kind == "nan" else "flat"
    assert pause.signal_flags == want
    if kind == "nan":
        assert "the signal in it is nonfinite, lead off: likely a lead problem" in pause.message
        assert "check the electrodes" in pause.message
    else:  # a flat line is asystole as often as a lead off: the patient comes first
        assert "the signal in it is flat: asystole or a lead off" in pause.message
        assert "check the patient first" in pause.message


def test_a_pause_on_a_lead_gone_says_so_however_often_the_monitor_is_pushed(
    ecg: np.ndarray,
) -> None:
    # pushed every 10 s or once, the pause is found when it has ended, by the beat after it
    for kind in ("nan", "zeros"):
        x = np.concatenate([ecg[: 30 * FS], _lead_gone(kind), ecg[30 * FS :]])
        flags = {p.signal_flags for chunk in (90, 10 * FS, x.size) for p in _pauses(x, chunk)}
        assert flags == {"nonfinite, lead off" if kind == "nan" else "flat"}


def _asystole(ecg: np.ndarray, kind: str) -> np.ndarray:
    """Record 100 whose beats stop at 30 s for 8 s, its baseline going on."""
    x = ecg.copy()
    a, b = 30 * FS, 38 * FS
    if kind == "beats cut out":  # each beat, P wave to T wave, bridged by a straight line
        for r in ecg_rpeaks(ecg, FS):
            lo, hi = r - int(0.25 * FS), r + int(0.45 * FS)
            if a - FS // 2 <= r < b:
                x[lo:hi] = np.linspace(x[lo - 1], x[hi], hi - lo)
    else:  # 0.1 mV of baseline wander and a little noise, in the ADC's 5 µV steps
        t = np.arange(b - a) / FS
        rng = np.random.default_rng(0)
        wander = x[a] + 0.1 * np.sin(2 * np.pi * 0.3 * t) + rng.normal(0.0, 0.005, t.size)
        x[a:b] = np.round(wander / 0.005) * 0.005
    return x


@pytest.mark.parametrize("kind", ["beats cut out", "baseline wander"])
def test_a_pause_on_a_baseline_of_normal_amplitude_is_not_called_a_lead_problem(
    ecg: np.ndarray, kind: str
) -> None:
    x = _asystole(ecg, kind)
    for chunk in (90, 10 * FS):
        (pause,) = _pauses(x, chunk)
        assert 29.0 < pause.onset_s <= 30.0 and pause.signal_flags == ""
        assert "lead problem" not in pause.message and "electrodes" not in pause.message


def test_the_silence_check_uses_the_quality_checks_and_limits_that_need_no_beat() -> None:
    q = QualityStream(FS)
    assert q.silence_flags(np.zeros(2 * FS)) == ("flat",)
    assert q.silence_flags(np.full(2 * FS, np.nan)) == ("nonfinite", "lead_off")
    x = np.zeros(2 * FS)
    x[FS:] = 8.0  # an electrode's step
    assert q.silence_flags(x) == ("lead_off",)
    # a quiet baseline in ADC steps sits at its top value often, as a clipped QRS does: no
    # beat, no clipping (an amplifier at its rail is flat)
    t = np.arange(2 * FS) / FS
    assert q.silence_flags(np.round(0.1 * np.sin(2 * np.pi * 0.3 * t) / 0.005) * 0.005) == ()
    assert q.silence_flags(np.empty(0)) == ()
    assert QualityStream(FS, flat_mv=0.3).silence_flags(0.1 * np.sin(2 * np.pi * t)) == ("flat",)


def test_the_silences_verdict_is_asked_for_only_when_a_pause_is_raised() -> None:
    asked: list[int] = []

    def flags() -> str:
        asked.append(1)
        return "flat"

    tr = AlertTracker("p", AlertRules(pause_s=3.0))
    assert tr.silence(10.0, 12.9, 13.3, True, flags) == [] and asked == []
    (a,) = tr.silence(10.0, 13.1, 13.5, True, flags)
    assert a.signal_flags == "flat" and "asystole or a lead off" in a.message and asked == [1]
    assert tr.silence(10.0, 14.0, 14.4, True, flags) == [] and asked == [1]
    # a silence that passes after a window that rejected the lead: that is what it says
    tr = AlertTracker("p", AlertRules(pause_s=3.0))
    (b,) = tr.silence(10.0, 13.1, 13.5, False, "")
    assert b.signal_flags == "" and "quality check rejects the lead" in b.message
    # the poor-signal alarm names its window's flags the same way
    for end in (20.0, 22.0):
        tr.signal("flat", end, end)
    (c,) = tr.signal("flat, lead off", 24.0, 24.0)
    assert c.kind == "poor_signal" and c.signal_flags == "flat, lead off"
