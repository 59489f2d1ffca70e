"""The ECG alarms' CDS Hooks cards (:func:`ecg_alarm_cards`, served by
:func:`pipelines.cds_hooks.ecg_cards`), the wording every card shares, and what an ECG
card says of whether its alarm goes on, with its indicator.

The ECG summary gives each alarm a ``state`` (:func:`vitalgru.scoring.ward_ecg_alarms.
alarm_state`): ``going_on`` (a pause with no heartbeat since, a poor signal not judged good
again, a feed still lost or off its rate), ``ended`` (with ``ended``, the event that ended
it: ``beats_resumed``, ``signal_restored``, ...) or ``momentary`` (a run, frequent ectopy:
no condition that lasts). A card for an alarm no one acknowledged stays until someone does,
and a clinician reading it must know whether the condition is still there:

- a card says it in its detail (going on since its onset; ended, when and by what; or
  momentary), and an ended alarm's summary says ``ended <when>`` after its onset;
- the indicator is ``critical`` for a ventricular run and for a pause going on,
  ``warning`` for a pause that has ended (a heartbeat came back: it wants review, not a
  run to the bedside) and for every other alarm. CDS Hooks keeps ``critical`` for what
  needs acting on now; a ventricular run is momentary by nature and stays ``critical``;
- on the ``encounter-discharge`` hook, a card of an alarm that is not going on opens with
  :data:`DISCHARGE_NOTE_OVER`, not with the note that says the alarm goes on.

An alarm without a ``state`` (a summary of before states, an event passed as it is) is
read as before: nothing said, ``critical`` for a ventricular run and a pause.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from pipelines.cds_feedback import card_uuid
from vitalgru.reports.monitoring import ALERT_NAMES
from vitalgru.scoring.ward_events import INFO_KINDS

__all__ = [
    "CRITICAL_ECG",
    "DISCHARGE_NOTE",
    "DISCHARGE_NOTE_OVER",
    "ECG_CARDS",
    "TECHNICAL_ECG",
    "ack_line",
    "ecg_alarm_cards",
    "ecg_indicator",
    "ecg_state_line",
    "ecg_summary_line",
    "going_on",
    "links",
]

#: ECG alarms given a card each, the newest first.
ECG_CARDS = 5
#: ECG alarms whose card is critical (a pause only while it goes on).
CRITICAL_ECG = {"ventricular_run", "pause"}
#: Technical ECG alarms: a card only while their condition goes on.
TECHNICAL_ECG = {"poor_signal", "feed_lost", "feed_rate"}
#: Said first in the detail of a card given on the ``encounter-discharge`` hook.
DISCHARGE_NOTE = (
    "The patient is being discharged while this alarm goes on: review it before the "
    "discharge is signed."
)
#: Said first in the detail of the card of an alarm that no longer goes on (ended, or
#: momentary), given on the ``encounter-discharge`` hook.
DISCHARGE_NOTE_OVER = (
    "The patient is being discharged with this alarm not acknowledged (it no longer goes "
    "on): review it before the discharge is signed."
)


def going_on(alarm: Mapping[str, Any]) -> bool:
    """Whether the card may say the alarm goes on: ``state`` ``going_on``, or no state."""
    return alarm.get("state") in (None, "going_on")


def ecg_indicator(alarm: Mapping[str, Any]) -> str:
    """The card's CDS Hooks indicator: ``critical`` for a ventricular run and for a pause
    not ended, else ``warning``."""
    if alarm.get("kind") not in CRITICAL_ECG:
        return "warning"
    return "warning" if alarm.get("state") == "ended" else "critical"


def ecg_summary_line(alarm: Mapping[str, Any], name: str) -> str:
    """The card's summary (under 140 characters, as CDS Hooks asks): the alarm, when it was
    raised (its onset, on the clock its end is on) and, for one that ended, when it ended."""
    line = f"ECG alarm: {name} at {alarm.get('onset_at') or alarm.get('received_at')}"
    if alarm.get("state") == "ended":
        end = alarm.get("ended") or {}
        line += f", ended {end['at']}" if end.get("at") else ", ended"
    return line[:139]


def ecg_state_line(alarm: Mapping[str, Any]) -> str | None:
    """The detail's line on whether the alarm goes on (None for an alarm without a state)."""
    state = alarm.get("state")
    if state == "going_on":
        since = alarm.get("onset_at") or alarm.get("received_at")
        return f"**Going on** since {since}."
    if state == "ended":
        end = alarm.get("ended")
        if not end:
            return "**Ended** (the event that ended it is no longer in the gateway's event log)."
        said = str(end.get("message") or end.get("kind") or "").strip().rstrip(".")
        return f"**Ended** at {end.get('at')}" + (f": {said}." if said else ".")
    if state == "momentary":
        return "Momentary: an event, not a condition that lasts; nothing of it goes on."
    if state == "notice":
        return "A notice from the gateway, not an alarm."
    return None


def ack_line(event: Mapping[str, Any]) -> str:
    """A card's line on whether its alarm was acknowledged, by whom, or escalated."""
    ack = event.get("acknowledged")
    if ack:
        return f"Acknowledged by {ack['by']} at {ack['at']}."
    if event.get("escalated"):
        return f"**Not acknowledged**; escalated at {event['escalated']['at']}."
    return "**Not acknowledged** yet."


def links(label: str, page: str | None) -> dict[str, Any]:
    """A card's ``links`` to a page (nothing without one: CDS Hooks has no empty fields)."""
    return {} if page is None else {"links": [{"label": label, "url": page, "type": "absolute"}]}


def ecg_alarm_cards(
    summary: Mapping[str, Any],
    page: str | None,
    live: Collection[int],
    source: Mapping[str, Any],
    *,
    log_id: str,
    old_ids_up_to: int | None = None,
    discharge: bool = False,
) -> list[dict[str, Any]]:
    """A card (its ``source`` as given) for each of an ECG patient's :data:`ECG_CARDS`
    newest alarms no one has acknowledged (:meth:`Ward.ecg_summary`, the patient's page
    URL); a technical one (:data:`TECHNICAL_ECG`) only while it is in ``live``
    (:meth:`Ward.alarms_in_progress`: the lead not fixed, the feed not back); their ids
    :func:`card_uuid` of ``log_id`` and ``old_ids_up_to``. Each says whether its alarm goes
    on or when it ended, its indicator following. ``discharge``: on the
    ``encounter-discharge`` hook, the detail opens with :data:`DISCHARGE_NOTE` (or
    :data:`DISCHARGE_NOTE_OVER`, for an alarm that no longer goes on)."""
    waiting = [a for a in summary.get("alarms") or []
               if a.get("kind") not in INFO_KINDS and not a.get("acknowledged")
               and (a.get("kind") not in TECHNICAL_ECG or a.get("seq") in live)]  # fmt: skip
    cards = []
    for a in list(reversed(waiting))[:ECG_CARDS]:
        name = ALERT_NAMES.get(str(a.get("kind")), str(a.get("kind")))
        note = (DISCHARGE_NOTE if going_on(a) else DISCHARGE_NOTE_OVER) if discharge else None
        said = (note, a.get("message", name), ecg_state_line(a), ack_line(a))
        cards.append({
            "uuid": card_uuid(a, log_id, old_ids_up_to),
            "summary": ecg_summary_line(a, name),
            "indicator": ecg_indicator(a),
            "detail": "\n\n".join(x for x in said if x),
            "source": dict(source),
            **links("The ECG page, with the alarm's strip", page),
        })  # fmt: skip
    return cards
