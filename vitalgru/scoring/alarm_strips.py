"""An alarm's ECG strip: the seconds around its episode, as the gateway keeps them and a
replay writes them, with the beats labelled in it (:func:`alarm_strip`).

The one who answers an alarm sees the rhythm the episode broke from, the episode, and every
beat of it labelled: a strip runs from :data:`STRIP_BEFORE_S` before the onset to
:data:`STRIP_AFTER_S` after the alarm was raised, at most :data:`STRIP_MAX_S`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from vitalgru.scoring.alert_types import Alert

__all__ = ["STRIP_LABEL_WAIT_S", "STRIP_MAX_S", "alarm_strip", "strip_bounds"]

#: An alarm's ECG strip runs from this long before the episode's onset to this long after
#: the alarm was raised, at most :data:`STRIP_MAX_S`: the one who answers it sees the rhythm
#: the episode broke from, the episode, and every beat of it labelled (a beat is labelled a
#: few seconds after its R peak).
STRIP_BEFORE_S = 5.0
STRIP_AFTER_S = 5.0
STRIP_MAX_S = 25.0
#: A strip is complete this long after its end, when the beats in it have been labelled
#: (the live monitor labels a beat 4.5 s after its R peak at the median, 6.1 s at p99 on DS2).
STRIP_LABEL_WAIT_S = 7.0


def strip_bounds(alert: Alert) -> tuple[float, float]:
    """Stream times ``(start, end)`` of ``alert``'s ECG strip (see :data:`STRIP_BEFORE_S`)."""
    end = alert.raised_at_s + STRIP_AFTER_S
    return max(alert.onset_s - STRIP_BEFORE_S, end - STRIP_MAX_S, 0.0), end


def alarm_strip(
    alert: Alert,
    fs: float,
    samples: np.ndarray,
    first: int,
    beats: Iterable[Any],
    *,
    complete: bool,
    labelled_by: float | None = None,
) -> dict[str, Any]:
    """``alert``'s ECG strip cut from ``samples`` (stream samples ``first`` onwards, at
    ``fs``): as much of :func:`strip_bounds` as they hold, with the labelled ``beats``
    (objects with ``time_s``, ``label``, ``signal_ok``, and ``labelled_at_s``, which must be
    at most ``labelled_by`` when given) in it. ``complete``: the strip will not change (its
    end and :data:`STRIP_LABEL_WAIT_S` after it have been reached, or the stream ended)."""
    start_s, end_s = strip_bounds(alert)
    lo = max(int(math.floor(start_s * fs)), first)
    hi = max(min(int(round(end_s * fs)), first + len(samples)), lo)
    t0, t1 = lo / fs, hi / fs
    return {
        "patient_id": alert.patient_id, "kind": alert.kind, "message": alert.message,
        "fs": float(fs), "start_s": t0, "end_s": t1, "onset_s": alert.onset_s,
        "raised_at_s": alert.raised_at_s, "complete": bool(complete),
        "beats": [{"time_s": round(b.time_s, 4), "label": b.label, "signal_ok": b.signal_ok}
                  for b in beats if t0 <= b.time_s < t1
                  and (labelled_by is None or b.labelled_at_s <= labelled_by)],
        "samples": np.asarray(samples[lo - first : hi - first], dtype=np.float32),
    }  # fmt: skip
