"""Replay ICU stays hour by hour through an :class:`EarlyWarningMonitor`, as a bedside feed
would send them.

Every patient of a Challenge-2019 table is admitted together; each tick pushes every
patient's next row (the file's own values, before any cleaning: the monitor applies the
plausibility limits itself and says which values it rejected), and a patient is
discharged after their last row. What comes back is each patient-hour's
:class:`~vitalgru.scoring.early_warning.HourRisk`, what each tick cost and, when asked, the
measurements that raised the risk most at each hour an alarm episode began.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from vitalgru.data.early_warning import patient_offsets
from vitalgru.io.psv import PSV_COLUMNS
from vitalgru.scoring.early_warning import EarlyWarningMonitor, HourRisk, RiskDriver
from vitalgru.scoring.replay import tick_summary

__all__ = ["StayReplay", "replay_stays"]

#: Columns of a parsed table that a bedside feed sends (the outcome is not one of them).
_FEED_COLUMNS = tuple(c for c in PSV_COLUMNS.values() if c != "sepsis_label")


@dataclass
class StayReplay:
    """What :func:`replay_stays` produced, per patient, and what it cost."""

    risks: dict[str, list[HourRisk]]
    tick_compute_s: np.ndarray  # (n_ticks,) wall seconds each push took
    # patient -> ICU hour an alarm episode began -> what raised the risk most (``explain``)
    drivers: dict[str, dict[int, list[RiskDriver]]] = field(default_factory=dict)
    explain_s: float = 0.0  # wall seconds the explanations took (not in the ticks)

    def compute_summary(self) -> dict[str, Any]:
        """Throughput: patient-hours scored per wall second, the time one tick (every
        patient's next hour) took, and the alarm onsets explained and what that took."""
        ticks = tick_summary(self.tick_compute_s)
        hours = sum(len(r) for r in self.risks.values())
        total = ticks["compute_s"]
        return {
            "patients": len(self.risks),
            "patient_hours": int(hours),
            **ticks,
            "patient_hours_per_s": hours / total if total > 0 else None,
            "alarm_onsets_explained": sum(len(d) for d in self.drivers.values()),
            "explain_s": self.explain_s,
        }


def replay_stays(
    monitor: EarlyWarningMonitor,
    frame: pd.DataFrame,
    on_tick: Callable[[int, int], None] | None = None,
    explain: int = 0,
) -> StayReplay:
    """Push every patient's rows to ``monitor``, one row per patient per tick.

    Parameters
    ----------
    monitor : EarlyWarningMonitor
        Must not be monitoring any of the frame's patients yet.
    frame : pandas.DataFrame
        Rows grouped by ``patient_id``, hours ascending, with ``hour`` (ICULOS) and any of
        the measurement and static columns of :data:`vitalgru.io.psv.PSV_COLUMNS` (vitalgru
        names; ``sepsis_label`` is ignored).
    on_tick : callable, optional
        Called with ``(tick, n_ticks)`` after each tick (progress).
    explain : int
        At each hour an alarm episode begins, name this many measurements that raised the
        risk most (:meth:`EarlyWarningMonitor.explain`; 0: none), as a live ward does.

    Returns
    -------
    StayReplay
        ``risks[patient_id]`` holds one :class:`HourRisk` per row, in row order;
        ``drivers[patient_id][hour]`` what raised the risk at each alarm onset.
    """
    offsets, ids = patient_offsets(frame)
    cols = [c for c in _FEED_COLUMNS if c in frame.columns]
    if "hour" not in cols:
        raise ValueError("the frame has no 'hour' (ICULOS) column")
    values = frame[cols].to_numpy(np.float64)
    lengths = np.diff(offsets)
    n_ticks = int(lengths.max()) if lengths.size else 0
    for pid in ids:
        monitor.admit(pid)
    risks: dict[str, list[HourRisk]] = {pid: [] for pid in ids}
    drivers: dict[str, dict[int, list[RiskDriver]]] = {}
    times = []
    explain_s = 0.0
    live = np.arange(ids.size)
    for k in range(n_ticks):
        rows = {ids[i]: dict(zip(cols, values[offsets[i] + k].tolist(), strict=True)) for i in live}
        t0 = time.perf_counter()
        out = monitor.push(rows)
        if explain > 0:
            t1 = time.perf_counter()
            for r in out:
                before = risks[r.patient_id]
                if r.alarm and not (before and before[-1].alarm):
                    drivers.setdefault(r.patient_id, {})[r.hour] = monitor.explain(
                        r.patient_id, explain
                    )
            spent = time.perf_counter() - t1
            explain_s += spent
            t0 += spent  # the ticks' cost leaves the explanations out
        ending = live[lengths[live] == k + 1]
        for i in ending:
            monitor.discharge(ids[i])
        times.append(time.perf_counter() - t0)
        for r in out:
            risks[r.patient_id].append(r)
        live = live[lengths[live] > k + 1]
        if on_tick is not None:
            on_tick(k + 1, n_ticks)
    return StayReplay(risks, np.asarray(times), drivers, explain_s)
