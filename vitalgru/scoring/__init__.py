"""Live scoring: per-patient streaming state, batched across patients, and alarm rules.

:class:`ArrhythmiaMonitor` labels the heartbeats of many patients' live ECG with a
registered arrhythmia model; :mod:`vitalgru.scoring.alerts` turns the labels into alarms;
:class:`EarlyWarningMonitor` gives each patient-hour of vital signs a sepsis risk;
:func:`replay_database` replays recordings as live feeds and scores the monitor beat by
beat against the reference (AAMI EC57); :func:`replay_stays` feeds ICU stays to an
:class:`EarlyWarningMonitor` an hour per tick.
"""

from vitalgru.scoring.alert_types import Alert, AlertRules
from vitalgru.scoring.alerts import AlertTracker
from vitalgru.scoring.arrhythmia import ArrhythmiaMonitor, Tick
from vitalgru.scoring.early_warning import EarlyWarningMonitor, HourRisk, RiskDriver
from vitalgru.scoring.early_warning_replay import StayReplay, replay_stays
from vitalgru.scoring.ecg_labels import BeatCall
from vitalgru.scoring.replay import ReplayResult, live_report, replay, replay_database

__all__ = [
    "Alert",
    "AlertRules",
    "AlertTracker",
    "ArrhythmiaMonitor",
    "BeatCall",
    "EarlyWarningMonitor",
    "HourRisk",
    "ReplayResult",
    "RiskDriver",
    "StayReplay",
    "Tick",
    "live_report",
    "replay",
    "replay_database",
    "replay_stays",
]
