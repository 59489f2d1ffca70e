"""What the alarm rules of :mod:`vitalgru.scoring.alerts` speak of: the kinds of alarm
(:data:`KINDS`), the limits of the rules (:class:`AlertRules`, each a setting as on a
bedside monitor) and one alarm raised (:class:`Alert`). The rules themselves, and why their
limits are what they are, are :class:`~vitalgru.scoring.alerts.AlertTracker`'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["KINDS", "Alert", "AlertRules"]

KINDS: tuple[str, ...] = (
    "ventricular_run",
    "supraventricular_run",
    "frequent_ventricular_ectopy",
    "pause",
    "poor_signal",
)


@dataclass(frozen=True)
class AlertRules:
    """Limits of the alarm rules (see the module docstring)."""

    v_run_beats: int = 3
    s_run_beats: int = 3
    s_run_min_bpm: float = 100.0
    v_per_window: int = 10
    window_s: float = 60.0
    pause_s: float = 3.0
    poor_signal_windows: int = 3
    quality_holdoff_s: float = 4.0

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ValueError(f"alert rule {f.name} must be a finite number, got {v!r}")
            if v <= 0:
                raise ValueError(f"alert rule {f.name} must be > 0, got {v!r}")
        for name in ("v_run_beats", "s_run_beats", "v_per_window", "poor_signal_windows"):
            if int(getattr(self, name)) != getattr(self, name):
                raise ValueError(f"alert rule {name} must be a whole number of beats")

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> AlertRules:
        """Rules from a mapping of limits (unknown keys are errors)."""
        d = dict(d or {})
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(
                f"unknown alert rule(s) {sorted(unknown)}; known: {[f.name for f in fields(cls)]}"
            )
        return cls(**d)


@dataclass(frozen=True)
class Alert:
    """One alarm.

    Attributes
    ----------
    patient_id : str
    kind : str
        One of :data:`KINDS`.
    onset_s : float
        Stream time (s from admission) the episode began: the first beat of a run, the
        beat that reached the ectopy limit, the last beat before a pause.
    raised_at_s : float
        Stream time of the push that raised it.
    message : str
        What a clinician reads.
    rate_bpm : float or None
        Heart rate of a run (None for the others).
    n_beats : int
        Beats in the run, or V beats in the window (0 for a pause).
    signal_flags : str
        What the signal-quality check found wrong with the signal the alarm is about, as
        the messages name it (``"flat"``, ``"nonfinite, lead off"``; ``""`` when nothing):
        for a pause, its silence (flat, or a lead problem); for a poor-signal
        alarm, the window that raised it.
    """

    patient_id: str
    kind: str
    onset_s: float
    raised_at_s: float
    message: str
    rate_bpm: float | None = None
    n_beats: int = 0
    signal_flags: str = ""

    @property
    def delay_s(self) -> float:
        """Seconds from the episode's onset to the alarm."""
        return self.raised_at_s - self.onset_s
