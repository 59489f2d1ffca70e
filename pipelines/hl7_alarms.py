"""The HL7 v2 ``ORU^R40`` message of an alarm, as the gateway forwards it to the hospital's
interface engine (:mod:`pipelines.hl7_forward`).

Each is shaped after IHE PCD's Report Alert (PCD-04, ``ORU^R40``), with its facets and
their MDC codes:

- ``OBR``: the alarm's id as placer and filler id (:func:`alarm_id`: the event log's id and
  the alarm's event number, unique across gateways and state files; an escalation carries
  the id of the alarm it escalates or ends, so the receiver ties them together), ``OBR-4``
  ``196616^MDC_EVT_ALARM^MDC``, ``OBR-7`` when it began and, in the message that ends it,
  ``OBR-8`` when it ended: an ECG alarm's onset and a pause's or poor signal's end on the
  stream's clock (``onset_at``, the end's ``ended_at``), as the pages, CDS cards and FHIR
  flags give them, else when each was logged;
- ``OBX`` facets under sub-ids ``1.0.0.0.n``: the event (``MDC_EVT_ALARM``, its value the
  alarm's kind as a local code, ``99VGR``: MDC has no term for a sepsis-risk or a
  ventricular-run alarm of this kind; priority and type in ``OBX-8``), its source (``ecg``
  or ``sepsis``), phase (``start``; ``continue`` for an escalation; ``end`` when a sepsis
  alarm episode is over, a lost ECG feed is back, a feed sends at its admitted rate again,
  a poor signal is good again or a heartbeat ends a pause), state
  (``active``; ``inactive`` at the end),
  priority (``PH`` for runs and pauses and escalations, ``PM`` for other physiological
  alarms, ``PL`` for technical ones) and type (``SP`` physiological, ``ST`` technical);
- ``NTE`` right after ``OBR``, a note on the alarm: its text (what it was, and for a
  sepsis alarm what raised the risk).

The bytes are UTF-8, and ``MSH-18`` says so (:data:`CHARSET`) in every message.

``MSH-10`` (the control id) is the :func:`control_id` of the event sent. Event numbers
begin at 1 in every gateway and in a new state file: the bare number, as it was sent before,
gave the alarms of two gateways the same order and control ids at a receiver that takes
both. The events a state file held when an upgrade gave its log an id keep the ids they
had before (``<seq>^VITALGRU``, ``VG<seq>``; :func:`vitalgru.types.event_log_id`): an
alarm forwarded before the upgrade and still open is ended, or escalated, under the id the
receiver knows it by.

This is the message's shape, not a claim of conformance: no IHE test tool has seen it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from vitalgru.io.hl7v2 import escape
from vitalgru.types import event_log_id

__all__ = ["ALARM_CLASSES", "CHARSET", "LOG_ID_CHARS", "alarm_id", "alarm_message", "control_id"]

#: The kinds forwarded, with their priority and type (IHE PCD's PH/PM/PL, SP/ST).
ALARM_CLASSES: dict[str, tuple[str, str]] = {
    "ventricular_run": ("PH", "SP"),
    "pause": ("PH", "SP"),
    "supraventricular_run": ("PM", "SP"),
    "frequent_ventricular_ectopy": ("PM", "SP"),
    "sepsis_risk": ("PM", "SP"),
    "poor_signal": ("PL", "ST"),
    "feed_lost": ("PL", "ST"),
    "feed_rate": ("PL", "ST"),
}
#: ``MSH-18`` of every message sent: its bytes are UTF-8. HL7 reads an empty ``MSH-18`` as
#: ASCII, and engines that default to 8859/1 misread a patient id or a facility with a
#: letter beyond it (``MÜLLER-0042``, ``Hôpital``), so the alarm matched no patient. Named
#: always, not only when a message needs it: an engine that cannot take UTF-8 says so on
#: the first alarm, while it is set up, not on the first patient with an accent.
CHARSET = "UNICODE UTF-8"
#: Characters of the event log's id in :func:`alarm_id`: the ids are kept within 20
#: characters in ``MSH-10`` (ST) and 22 in ``OBR-2``/``OBR-3`` (EI), the lengths of HL7
#: versions before 2.6 that many engines still apply; 8 hex digits (32 bits:
#: two logs share them once in 4 billion) and a dash leave 11 digits for the event number
#: (the ``OBR`` ids go without a namespace, ``^VITALGRU``, which would not fit; ``MSH-3``
#: names the sender).
LOG_ID_CHARS = 8


def alarm_id(log_id: str, seq: int, old_ids_up_to: int | None = None) -> str:
    """The id of alarm ``seq`` of the event log ``log_id`` in HL7 (``OBR-2``, ``OBR-3``):
    ``<first 8 characters of the log id>-<seq>``, unique across gateways and state files
    (:attr:`vitalgru.scoring.ward.Ward.log_id`, kept in the state file) where the bare
    number was not, and within the lengths of :data:`LOG_ID_CHARS`; ``<seq>^VITALGRU``, as
    before logs had ids, for an alarm numbered up to ``old_ids_up_to``
    (:attr:`vitalgru.scoring.ward.Ward.old_ids_up_to`, :func:`vitalgru.types.event_log_id`):
    one the receiver may hold open under that id."""
    named = event_log_id(log_id, old_ids_up_to, seq)
    if named is None:
        return f"{int(seq)}^VITALGRU"
    return f"{named[:LOG_ID_CHARS]}-{int(seq)}"


def control_id(log_id: str, seq: int, old_ids_up_to: int | None = None) -> str:
    """``MSH-10`` of the message of event ``seq``: its :func:`alarm_id`, or ``VG<seq>``, as
    before logs had ids, for an event numbered up to ``old_ids_up_to``."""
    named = event_log_id(log_id, old_ids_up_to, seq)
    if named is None:
        return f"VG{int(seq)}"
    return alarm_id(named, seq)


def _ts(iso: str | None) -> str:
    t = datetime.fromisoformat(iso) if iso else datetime.now(UTC)
    return t.astimezone(UTC).strftime("%Y%m%d%H%M%S+0000")


def _named_alarm(event: dict[str, Any]) -> dict[str, Any] | None:
    """The alarm an escalation or an end names, from what the event carries itself (its
    number and ``alarm_kind``) when the alarm is no longer at hand: its time raised
    unknown. None when the event does not say the alarm's kind (logged before it did)."""
    seq = event.get("escalates") or event.get("ends")
    kind = event.get("alarm_kind")
    if seq is None or not kind:
        return None
    source = "sepsis" if str(kind).startswith("sepsis") else "ecg"
    return {"seq": int(seq), "kind": kind, "source": source, "received_at": None}


def alarm_message(
    event: dict[str, Any],
    alarm: dict[str, Any] | None = None,
    *,
    log_id: str,
    old_ids_up_to: int | None = None,
    facility: str = "",
    receiver: str = "",
    authority: str = "",
) -> str | None:
    """The ``ORU^R40`` message of a logged event (see the module's description): an alarm,
    an escalation, the end of a sepsis alarm episode, a pause, poor signal or a lost feed
    (``alarm``: the event it escalates or ends, when the log still has it; else the kind
    the event carries, ``alarm_kind``, and ``OBR-7`` is left empty), its ids those of the
    event log ``log_id`` (:func:`alarm_id`, :func:`control_id`; those of the events up to
    ``old_ids_up_to`` as they were before logs had ids). None for an event that is not forwarded
    (information, acknowledgements), and for an escalation or end whose alarm is not at
    hand and whose kind it does not carry."""
    kind = event.get("kind")
    # an event that ends an alarm names it (alarm_ended, feed_restored, signal_restored,
    # beats_resumed)
    escalation, ended = kind == "escalated", event.get("ends") is not None
    base = (alarm or _named_alarm(event)) if escalation or ended else event
    if base is None or base.get("kind") not in ALARM_CLASSES:
        return None
    priority, alert_type = ALARM_CLASSES[str(base["kind"])]
    if escalation:
        priority = "PH"
    order = alarm_id(log_id, int(base["seq"]), old_ids_up_to)
    # the times the pages, CDS cards and FHIR flags give: an ECG alarm's onset and a pause's
    # or poor signal's end on the stream's clock, where they have one (the times it was
    # logged put the onset seconds late, and a short pause's end before its start)
    began = base.get("onset_at") or base.get("received_at")
    raised = _ts(began) if began else ""  # "": not known
    now = _ts(event.get("received_at"))
    over = _ts(event.get("ended_at") or event.get("received_at")) if ended else ""
    pid = escape(str(event.get("patient_id") or base.get("patient_id") or ""))
    label = str(base["kind"]).replace("_", " ")
    text = escape(str(event.get("message") or base.get("message") or label))
    facets = [
        ("CWE", "196616^MDC_EVT_ALARM^MDC", f"{base['kind']}^{label}^99VGR",
         f"{priority}~{alert_type}"),
        ("ST", "68480^MDC_ATTR_ALERT_SOURCE^MDC", str(base.get("source", "")), ""),
        ("ST", "68481^MDC_ATTR_EVENT_PHASE^MDC",
         "end" if ended else "continue" if escalation else "start", ""),
        ("ST", "68482^MDC_ATTR_ALARM_STATE^MDC", "inactive" if ended else "active", ""),
        ("ST", "68484^MDC_ATTR_ALARM_PRIORITY^MDC", priority, ""),
        ("ST", "68485^MDC_ATTR_ALERT_TYPE^MDC", alert_type, ""),
    ]  # fmt: skip
    segments = [
        f"MSH|^~\\&|VITALGRU|{escape(facility)}|{escape(receiver)}||{now}||ORU^R40^ORU_R40|"
        f"{control_id(log_id, int(event['seq']), old_ids_up_to)}|P|2.6|||AL|NE||{CHARSET}",
        # PID-5 (required from v2.6): the name is not known here, an empty one of type U
        f"PID|||{pid}^^^{escape(authority)}^MR||^^^^^^U" if authority else f"PID|||{pid}||^^^^^^U",
        f"OBR|1|{order}|{order}|196616^MDC_EVT_ALARM^MDC|||{raised}" + (f"|{over}" if over else ""),
        # the alarm's text is a note on the request (OBR [{NTE}] {OBX [{NTE}]}): after the
        # last OBX it was read as a note on the alert-type facet
        f"NTE|1||{text}",
    ]
    for i, (vt, code, value, flags) in enumerate(facets, 1):
        sub = f"1.0.0.0.{i if i < 5 else i + 1}"  # facet 5 (inactivation state) not sent
        when = f"|||{raised}" if i == 1 and raised else ""
        segments.append(f"OBX|{i}|{vt}|{code}|{sub}|{value}|||{flags}|||F{when}")
    return "\r".join(segments) + "\r"
