"""Whether each alarm of an ECG patient's summary goes on: the alarms of a condition that
lasts (a lost feed, one off its rate, a poor signal, a pause) are open until an event of the
ward's log ends them (``ends``); the other alarms are momentary; a notice among them (the
monitor restarted: :data:`~vitalgru.scoring.ward_events.INFO_KINDS`) is no alarm. What the
pages and the summary say of each (:meth:`vitalgru.scoring.ward.Ward.ecg_summary`)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from vitalgru.scoring.ward_events import INFO_KINDS

__all__ = ["LASTING_ALARMS", "alarm_ends", "alarm_state"]

#: The ECG alarms that last until their condition ends, which an event of the log names
#: (``ends``: ``feed_restored``, ``alarm_ended``, ``signal_restored``, ``beats_resumed``);
#: the others (runs, frequent ectopy) are momentary.
LASTING_ALARMS = ("feed_lost", "feed_rate", "poor_signal", "pause")


def alarm_state(
    alarm: Mapping[str, Any],
    open_seqs: Collection[int | None],
    ends: Mapping[int, Mapping[str, Any]],
    taken_up: Collection[int] = (),
) -> dict[str, Any]:
    """A copy of ``alarm`` with its ``state``: ``going_on`` (its number among ``open_seqs``,
    the patient's alarms whose condition lasts), ``ended`` (with ``ended``, its end from
    ``ends``, when the log still holds it), ``momentary``, or ``notice`` (no alarm: the
    monitor restarted). One among ``taken_up`` (going on at a gateway restart, taken up
    from the log) says so, ``before_restart``: its ``onset_s`` and ``raised_at_s`` are on
    the stream before the restart, not on the current one (its ``onset_at`` is on the
    wall clock)."""
    out = dict(alarm)
    if out.get("seq") in taken_up:
        out["before_restart"] = True
    if out.get("kind") in INFO_KINDS:
        out["state"] = "notice"
    elif out.get("kind") not in LASTING_ALARMS:
        out["state"] = "momentary"
    elif out.get("seq") in open_seqs:
        out["state"] = "going_on"
    else:
        out["state"] = "ended"
        if out.get("seq") in ends:
            out["ended"] = dict(ends[out["seq"]])
    return out


def alarm_ends(events: Iterable[Mapping[str, Any]]) -> dict[int, dict[str, Any]]:
    """The ends of alarms among ``events`` (the ward's log): ``{seq of the alarm: {"seq",
    "at" (ISO UTC: the end of a pause or a poor signal on the stream's clock, ``ended_at``,
    the clock its ``onset_at`` is on; another's when it was logged), "kind"
    (``beats_resumed``, ``alarm_ended``, ...), "reason" (an ``alarm_ended``'s, else None),
    "message"}}``."""
    return {
        int(e["ends"]): {"seq": e.get("seq"), "at": e.get("ended_at") or e.get("received_at"),
                         "kind": e.get("kind"),
                         "reason": e.get("reason"), "message": e.get("message", "")}
        for e in events
        if e.get("ends") is not None
    }  # fmt: skip
