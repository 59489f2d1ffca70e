"""A challenger model scored in the shadow of the champion, on the same live patients.

Before a new model is promoted, the question a ward asks is not its accuracy on a benchmark
but what it would have done here: how many more or fewer alarms, on which patients, and how
far its risks stray from the champion's. A shadow monitor is fed exactly what the champion
is fed, its output is compared as it comes and then dropped: it raises no alarm and writes
no event. :class:`Ward` owns one per task when asked (``vitalgru serve --shadow-...-model``);
these classes keep the comparison.

- :class:`SepsisShadow`: per patient-hour, the champion's and the challenger's risk; hours
  in alarm by either, both; alarm episodes each would have started; risk differences and
  their correlation.
- :class:`EcgShadow`: beats called by each, matched by R-peak time (10 ms), the confusion
  between their labels, and the alarms each raised, by kind.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vitalgru.scoring.alert_types import Alert
from vitalgru.scoring.arrhythmia import ArrhythmiaMonitor
from vitalgru.scoring.early_warning import EarlyWarningMonitor, HourRisk
from vitalgru.scoring.ecg_labels import BeatCall
from vitalgru.types import AAMI_CLASSES

__all__ = ["EcgShadow", "SepsisShadow"]

_CLASSES = [str(c) for c in AAMI_CLASSES]


class SepsisShadow:
    """A challenger early-warning monitor and its running comparison with the champion."""

    def __init__(self, monitor: EarlyWarningMonitor) -> None:
        self.monitor = monitor
        self.hours = 0
        # mean x, mean y, and the centred sums xx, yy, xy of the risks (Welford's running
        # update: raw sums lose the correlation of risks that barely vary)
        self._moments = np.zeros(5)
        self.abs_diff_sum = 0.0
        self.abs_diff_max = 0.0
        self.alarm_hours: Counter[str] = Counter()  # champion, shadow, both
        self.onsets: Counter[str] = Counter()  # champion, shadow
        self._in_alarm: dict[str, tuple[bool, bool]] = {}
        self.patients: set[str] = set()

    def admit(self, patient_id: str) -> None:
        self.monitor.admit(patient_id)
        self._in_alarm[patient_id] = (False, False)
        self.patients.add(patient_id)

    def discharge(self, patient_id: str) -> None:
        self._in_alarm.pop(patient_id, None)
        self.monitor.discharge(patient_id)

    def rename(self, patient_id: str, new_id: str) -> None:
        self.monitor.rename(patient_id, new_id)
        self._in_alarm[new_id] = self._in_alarm.pop(patient_id, (False, False))
        self.patients.discard(patient_id)  # one patient, counted once
        self.patients.add(new_id)

    def score(self, rows: Mapping[str, Mapping[str, Any]], champion: list[HourRisk]) -> None:
        """Push the rows the champion scored (``{patient: row}``) and compare its risks
        (``champion``, in the same order)."""
        self._compare(champion, self.monitor.push(rows))

    def score_rounds(
        self, rounds: Sequence[Mapping[str, Mapping[str, Any]]], champion: list[list[HourRisk]]
    ) -> None:
        """:meth:`score` of each round in turn (``champion``: the champion's risks of each),
        the shadow's inputs built once for all (:meth:`EarlyWarningMonitor.push_rounds`)."""
        shadow = self.monitor.push_rounds(rounds)
        for c, (s, refused) in zip(champion, shadow, strict=True):
            if refused:  # rows the champion took: the checks are the same
                raise ValueError(f"the shadow refused rows the champion took: {refused}")
            self._compare(c, s)

    def _compare(self, champion: list[HourRisk], shadow: list[HourRisk]) -> None:
        for c, s in zip(champion, shadow, strict=True):
            x, y = c.risk, s.risk
            self.hours += 1
            self._moments = _add_pair(self._moments, self.hours, x, y)
            d = abs(x - y)
            self.abs_diff_sum += d
            self.abs_diff_max = max(self.abs_diff_max, d)
            was_c, was_s = self._in_alarm.get(c.patient_id, (False, False))
            self.alarm_hours["champion"] += c.alarm
            self.alarm_hours["shadow"] += s.alarm
            self.alarm_hours["both"] += c.alarm and s.alarm
            self.onsets["champion"] += c.alarm and not was_c
            self.onsets["shadow"] += s.alarm and not was_s
            self._in_alarm[c.patient_id] = (c.alarm, s.alarm)

    def snapshot(self) -> dict[str, Any]:
        """The comparison so far as JSON (no patient's state: :meth:`load` takes it up)."""
        return {
            "hours": self.hours,
            "moments": self._moments.tolist(),
            "abs_diff_sum": self.abs_diff_sum,
            "abs_diff_max": self.abs_diff_max,
            "alarm_hours": dict(self.alarm_hours),
            "onsets": dict(self.onsets),
            "patients": sorted(self.patients),
        }

    def load(self, snap: Mapping[str, Any]) -> None:
        """Take up a :meth:`snapshot` in place of the comparison so far (the patients being
        scored keep their alarm state). ValueError for one that is not a snapshot."""
        try:
            hours, diff_sum, diff_max = int(snap["hours"]), float(snap["abs_diff_sum"]), float(
                snap["abs_diff_max"])  # fmt: skip
            if "moments" in snap:
                moments = np.asarray(snap["moments"], dtype=np.float64)
            else:  # a snapshot of raw sums (x, y, xx, yy, xy), as kept before
                moments = _from_sums(np.asarray(snap["sums"], dtype=np.float64), hours)
            if moments.shape != (5,):
                raise ValueError("moments")
            alarm_hours = Counter({str(k): int(v) for k, v in snap["alarm_hours"].items()})
            onsets = Counter({str(k): int(v) for k, v in snap["onsets"].items()})
            patients = {str(p) for p in snap["patients"]}
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ValueError(f"not a sepsis shadow snapshot: {e}") from None
        self.hours, self._moments, self.abs_diff_sum, self.abs_diff_max = (
            hours, moments, diff_sum, diff_max)  # fmt: skip
        self.alarm_hours, self.onsets = alarm_hours, onsets
        self.patients = patients | set(self._in_alarm)

    def report(self) -> dict[str, Any]:
        """``{"patients", "hours", "risk_mean_abs_diff", "risk_max_abs_diff",
        "risk_correlation" (Pearson; None with fewer than 2 hours or a constant risk),
        "alarm_hours" ({"champion", "shadow", "both"}), "alarm_onsets" ({"champion",
        "shadow"}), "shadow_threshold"}``."""
        n = self.hours
        _, _, cxx, cyy, cxy = self._moments
        var = cxx * cyy
        return {
            "patients": len(self.patients),
            "hours": n,
            "risk_mean_abs_diff": self.abs_diff_sum / n if n else None,
            "risk_max_abs_diff": self.abs_diff_max if n else None,
            "risk_correlation": float(np.clip(cxy / math.sqrt(var), -1.0, 1.0))
            if n > 1 and var > 0
            else None,
            "alarm_hours": {k: int(self.alarm_hours[k]) for k in ("champion", "shadow", "both")},
            "alarm_onsets": {k: int(self.onsets[k]) for k in ("champion", "shadow")},
            "shadow_threshold": self.monitor.threshold,
        }


def _add_pair(m: np.ndarray, n: int, x: float, y: float) -> np.ndarray:
    """The moments ``(mean x, mean y, Sxx, Syy, Sxy)`` with the ``n``-th pair added."""
    mx, my, cxx, cyy, cxy = m
    dx, dy = x - mx, y - my
    mx, my = mx + dx / n, my + dy / n
    return np.array([mx, my, cxx + dx * (x - mx), cyy + dy * (y - my), cxy + dx * (y - my)])


def _from_sums(sums: np.ndarray, n: int) -> np.ndarray:
    """The moments from raw sums ``(x, y, xx, yy, xy)`` of ``n`` pairs."""
    if sums.shape != (5,):
        raise ValueError("sums")
    if n == 0:
        return np.zeros(5)
    sx, sy, sxx, syy, sxy = sums
    return np.array([sx / n, sy / n, sxx - sx * sx / n, syy - sy * sy / n, sxy - sx * sy / n])


class EcgShadow:
    """A challenger arrhythmia monitor and its running comparison with the champion."""

    #: Beats are matched by R-peak time rounded to this many seconds.
    MATCH_S = 0.01
    #: Beats of one side kept per patient waiting for the other's; beyond it the oldest go
    #: unmatched (two models that never agree on beat times must not grow without bound).
    MAX_WAITING = 1000

    def __init__(self, monitor: ArrhythmiaMonitor) -> None:
        self.monitor = monitor
        self.confusion: dict[str, Counter] = {c: Counter() for c in _CLASSES}
        self.calls: dict[str, Counter[str]] = {"champion": Counter(), "shadow": Counter()}
        self.alarms: dict[str, Counter[str]] = {"champion": Counter(), "shadow": Counter()}
        # per patient, beats of one side still waiting for the other's: key -> label
        self._waiting: dict[str, dict[str, dict[int, str]]] = defaultdict(
            lambda: {"champion": {}, "shadow": {}}
        )

    def record(
        self,
        champion: tuple[list[BeatCall], list[Alert]],
        shadow: tuple[list[BeatCall], list[Alert]],
    ) -> None:
        """Compare what the two monitors made of the same samples."""
        for side, (calls, alerts) in (("champion", champion), ("shadow", shadow)):
            other = "shadow" if side == "champion" else "champion"
            for c in calls:
                self.calls[side][c.label] += 1
                waiting = self._waiting[c.patient_id]
                key = round(c.time_s / self.MATCH_S)
                match = waiting[other].pop(key, None)
                if match is None:
                    waiting[side][key] = c.label
                    if len(waiting[side]) > self.MAX_WAITING:
                        del waiting[side][next(iter(waiting[side]))]  # the oldest
                else:
                    ch, sh = (c.label, match) if side == "champion" else (match, c.label)
                    self.confusion[ch][sh] += 1
            for a in alerts:
                self.alarms[side][a.kind] += 1

    def rename(self, patient_id: str, new_id: str) -> None:
        """The patient's stream goes on under ``new_id`` (records merged), in the shadow
        monitor and in the beats waiting for a match."""
        self.monitor.rename(patient_id, new_id)
        if patient_id in self._waiting:
            self._waiting[new_id] = self._waiting.pop(patient_id)

    def forget(self, patient_id: str) -> None:
        """A discharged patient's unmatched beats stay unmatched."""
        self._waiting.pop(patient_id, None)

    def snapshot(self) -> dict[str, Any]:
        """The comparison so far as JSON (beats still waiting for a match left out)."""
        return {
            "confusion": {c: dict(self.confusion[c]) for c in _CLASSES},
            "calls": {k: dict(v) for k, v in self.calls.items()},
            "alarms": {k: dict(v) for k, v in self.alarms.items()},
        }

    def load(self, snap: Mapping[str, Any]) -> None:
        """Take up a :meth:`snapshot` in place of the comparison so far. ValueError for one
        that is not a snapshot."""
        try:
            confusion = {c: Counter({str(k): int(v) for k, v in snap["confusion"][c].items()})
                         for c in _CLASSES}  # fmt: skip
            calls = {side: Counter({str(k): int(v) for k, v in snap["calls"][side].items()})
                     for side in ("champion", "shadow")}  # fmt: skip
            alarms = {side: Counter({str(k): int(v) for k, v in snap["alarms"][side].items()})
                      for side in ("champion", "shadow")}  # fmt: skip
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ValueError(f"not an ECG shadow snapshot: {e}") from None
        self.confusion, self.calls, self.alarms = confusion, calls, alarms

    def report(self) -> dict[str, Any]:
        """``{"beats_matched", "agreement" (share of matched beats given the same label;
        None before any), "confusion" ({champion label: {shadow label: n}}), "beats"
        ({"champion", "shadow"}: {label: n}, matched or not), "alarms" ({"champion",
        "shadow"}: {kind: n})}``."""
        matched = sum(sum(row.values()) for row in self.confusion.values())
        same = sum(self.confusion[c][c] for c in _CLASSES)
        return {
            "beats_matched": int(matched),
            "agreement": same / matched if matched else None,
            "confusion": {c: {s: int(self.confusion[c][s]) for s in _CLASSES} for c in _CLASSES},
            "beats": {k: {c: int(v[c]) for c in _CLASSES} for k, v in self.calls.items()},
            "alarms": {k: dict(sorted(v.items())) for k, v in self.alarms.items()},
        }
