"""The challenger side of a :class:`~vitalgru.scoring.ward.Ward`: shadow models fed what the
champions are fed and compared with them (:mod:`vitalgru.scoring.shadow`), their failures
stopped here, their comparison kept in the state file across restarts.

:class:`WardShadows` is one of :class:`~vitalgru.scoring.ward.Ward`'s base classes (the ECG
feeds and the sepsis hours both feed the shadows through :meth:`WardShadows._in_shadow`)
and uses the ward's model lock and journal; it is not used alone.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from vitalgru.scoring.alert_types import Alert
from vitalgru.scoring.arrhythmia import PatientMemory
from vitalgru.scoring.ecg_labels import BeatCall
from vitalgru.scoring.shadow import EcgShadow, SepsisShadow
from vitalgru.scoring.ward_events import WardEvents
from vitalgru.scoring.ward_state import EcgAdmission

__all__ = ["WardShadows"]

logger = logging.getLogger("vitalgru.scoring.ward")


class WardShadows(WardEvents):
    """The shadow models of a ward (the methods of :class:`~vitalgru.scoring.ward.Ward` that
    are about them; the ward holds the state)."""

    # set by Ward.__init__
    _shadow_ecg: EcgShadow | None
    _shadow_sepsis: SepsisShadow | None
    shadow_errors: int
    _shadow_failed: Counter[str]  # shadow_errors by task
    shadow_since: dict[str, str]
    _model_lock: threading.Lock

    def _in_shadow(self, shadow: Any, fn: Callable[[Any], Any]) -> None:
        """``fn(shadow)`` for a shadow model, if there is one (the caller holds the model
        lock). Whatever goes wrong there is counted and logged, and stops there."""
        if shadow is None:
            return
        try:
            fn(shadow)
        except Exception:
            self.shadow_errors += 1
            self._shadow_failed[
                "arrhythmia" if shadow is self._shadow_ecg else "early_warning"
            ] += 1
            if self.shadow_errors == 1 or self.shadow_errors % 100 == 0:
                logger.exception("ward: the shadow model failed (%d times)", self.shadow_errors)

    def shadow_report(self) -> dict[str, Any]:
        """How the shadow models compare with the champions on the patients seen so far:
        ``{"arrhythmia": EcgShadow.report() or None, "early_warning": SepsisShadow.report()
        or None, "since": {task: when its comparison began}, "errors": failures of the
        shadow models}``. ValueError without a shadow."""
        if self._shadow_ecg is None and self._shadow_sepsis is None:
            raise ValueError("this ward was started without a shadow model")
        with self._model_lock:
            return {
                "arrhythmia": None if self._shadow_ecg is None else self._shadow_ecg.report(),
                "early_warning": (
                    None if self._shadow_sepsis is None else self._shadow_sepsis.report()
                ),
                "since": dict(self.shadow_since),
                "errors": self.shadow_errors,
            }

    def _shadows(self) -> dict[str, Any]:
        return {t: sh for t, sh in (("arrhythmia", self._shadow_ecg),
                                    ("early_warning", self._shadow_sepsis)) if sh is not None}  # fmt: skip

    def _save_shadow(self) -> None:
        """Keep each shadow's comparison in the journal (the caller holds the model lock)."""
        shadows = self._shadows()
        if shadows:
            self._journal("set_value", "shadow", {t: {"since": self.shadow_since[t],
                                                      "errors": self._shadow_failed[t],
                                                      **sh.snapshot()}
                                                  for t, sh in shadows.items()})  # fmt: skip

    def restore_shadow(self, kept: Mapping[str, Any] | None, tasks: set[str]) -> list[str]:
        """Take up the comparisons the journal kept (:meth:`_save_shadow`) of the shadows in
        ``tasks`` (``arrhythmia``, ``early_warning``: those whose model is the one that
        made them), in place of what a :meth:`restore` counted again. Returns the tasks
        taken up; one that cannot be read is logged and starts afresh."""
        took = []
        with self._model_lock:
            for task, sh in self._shadows().items():
                snap = (kept or {}).get(task)
                if task not in tasks or not isinstance(snap, Mapping):
                    continue
                try:
                    sh.load(snap)
                    failed = int(snap.get("errors") or 0)  # (kept since this was)
                    if failed < 0:
                        raise ValueError(f"errors {failed}")
                except (ValueError, TypeError) as e:
                    logger.warning("ward: the %s shadow's comparison starts afresh: %s", task, e)
                    continue
                # the failures behind the comparison's counts carry over with them
                self._shadow_failed[task] += failed
                self.shadow_errors += failed
                self.shadow_since[task] = str(snap.get("since") or self.shadow_since[task])
                took.append(task)
        return took

    @staticmethod
    def _tick_output(t: Any) -> tuple[list[BeatCall], list[Alert]]:
        return list(t.calls), list(t.alerts)

    @staticmethod
    def _discharge_shadow(
        shadow: EcgShadow,
        pid: str,
        queued: tuple[np.ndarray | None, dict[str, list[tuple[int, int]]] | None],
        champion: tuple[list[BeatCall], list[Alert]],
    ) -> None:
        """The shadow's side of an ECG discharge: what was queued (the samples and the
        breaks among them), the beats still waiting."""
        calls: list[BeatCall] = []
        alerts: list[Alert] = []
        rest, breaks = queued
        try:
            if rest is not None:
                calls, alerts = WardShadows._tick_output(shadow.monitor.push({pid: rest}, breaks))
            last = WardShadows._tick_output(shadow.monitor.discharge(pid))
            shadow.record(champion, (calls + last[0], alerts + last[1]))
        finally:
            shadow.forget(pid)

    @staticmethod
    def _admit_shadow(shadow: EcgShadow, a: EcgAdmission) -> None:
        """Admit a restored ECG patient to the shadow monitor with the shadow's own memory when
        it fits (the comparison with the champion, which carries its memory, stays fair)."""
        if a.shadow_memory is not None:
            try:
                shadow.monitor.admit(a.patient_id, a.fs, PatientMemory.from_bytes(a.shadow_memory))
                return
            except ValueError as e:
                logger.warning("ward: the shadow starts %s afresh: %s", a.patient_id, e)
        shadow.monitor.admit(a.patient_id, a.fs)
