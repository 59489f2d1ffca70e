"""How the live ward's pages say an alarm: when it began, whether its condition goes on or
how it ended, who acknowledged it or how far it was escalated, and a link to its ECG strip
named for a screen reader. Shared by the ward's page and an ECG patient's page
(:mod:`vitalgru.reports.ward`); plain data in (the alarms of
:meth:`vitalgru.scoring.ward.Ward.ecg_summary`), text out.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import tzinfo
from typing import Any

from vitalgru.reports.html import shown_at
from vitalgru.reports.monitoring import ALERT_NAMES

__all__ = [
    "acknowledged_note",
    "alarm_at",
    "alarm_state_html",
    "ecg_alarms",
    "escalated_word",
    "strip_link",
    "unacknowledged",
]


def unacknowledged(alarms: Sequence[Mapping[str, Any]]) -> int:
    """How many of ``alarms`` no one has acknowledged."""
    return sum(not a.get("acknowledged") for a in alarms)


def acknowledged_note(event: Mapping[str, Any] | None) -> str:
    """`` (acknowledged by <who>)``, or `` (escalated, not acknowledged)`` for an escalated
    alarm no one has acknowledged, or nothing (plain text, to be escaped)."""
    event = event or {}
    if event.get("acknowledged"):
        return f" (acknowledged by {event['acknowledged']['by']})"
    return (
        f" ({escalated_word(event['escalated'])}, not acknowledged)"
        if event.get("escalated")
        else ""
    )


def escalated_word(mark: Mapping[str, Any]) -> str:
    """The word for an alarm's escalation, with its level from the second level on."""
    level = int(mark.get("level") or 1)
    return "escalated" if level == 1 else f"escalated (level {level})"


def alarm_at(alarm: Mapping[str, Any], zone: tzinfo | None) -> str:
    """When an ECG alarm began (its onset; when it was logged, for one without; ``–`` for
    one with neither)."""
    return shown_at(alarm.get("onset_at") or alarm.get("received_at"), zone)


def alarm_state_html(alarm: Mapping[str, Any], zone: tzinfo | None) -> str:
    """HTML: whether an ECG alarm's condition goes on, or when and why it ended (from the
    summary's ``state``; nothing for an alarm without one)."""
    state = alarm.get("state")
    if state == "going_on":
        return "<span class=hi>going on</span>"
    if state == "ended":
        end = alarm.get("ended")
        if not end:
            return "ended (its end is no longer in the event log)"
        return f"ended {html.escape(shown_at(end.get('at'), zone))}: {html.escape(str(end.get('message', '')))}"
    if state == "momentary":
        return "momentary (no condition that lasts)"
    if state == "notice":
        return "a notice, not an alarm"
    return ""


def strip_link(
    href: str, alarm: Mapping[str, Any], zone: tzinfo | None, patient: object = None
) -> str:
    """A link to an alarm's strip, named for a screen reader's list of links by its alarm
    and time (and patient): thirty beds' links all read "strip" (WCAG 2.1 2.4.4). The name
    begins with the word shown (2.5.3: a speech user says what they see)."""
    about = f"{ALERT_NAMES.get(alarm['kind'], alarm['kind'])} at {alarm_at(alarm, zone)}"
    name = f"strip: {'' if patient is None else f'patient {patient}, '}{about}"
    return f'<a href="{href}" aria-label="{html.escape(name)}">strip</a>'


def ecg_alarms(patient: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """An ECG patient's alarms, less the notices among them (the monitor restarted)."""
    return [a for a in patient["alarms"] if a.get("state") != "notice"]
