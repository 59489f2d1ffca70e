"""The EHR's feedback on the cards of the CDS Hooks services (:mod:`pipelines.cds_hooks`):
each card's id, made from its alarm's event, the override reasons a card offers, and the
feedback acknowledging the alarm of each card it names, as ``CDS Hooks (<client>)`` with
the outcome as the note. Only an alarm the service gives cards for is acknowledged (not an
informational event whose id someone worked out from the event log).

An override reason is one the card offered, or one the EHR added: CDS Hooks lets a client
augment the reasons it shows the clinician with its own (and the ECG cards offer none), so
a reason the card did not offer is taken, its code and display in the note marked as the
EHR's own; refusing it left the alarm unacknowledged and escalating. Only a reason that is
not a Coding (not an object with a code) is refused, as malformed."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from vitalgru.scoring.ward_events import INFO_KINDS, REPEATED_SEPSIS_KIND
from vitalgru.types import event_log_id

__all__ = ["OVERRIDE_REASONS", "REASONS_OF", "apply_feedback", "card_uuid", "carded"]

#: Reasons a clinician may give for overriding a card.
OVERRIDE_REASONS = [
    {"system": "urn:vitalgru:cds-override-reason", "code": "assessed",
     "display": "Assessed: no sepsis now"},
    {"system": "urn:vitalgru:cds-override-reason", "code": "known",
     "display": "Known and being treated"},
    {"system": "urn:vitalgru:cds-override-reason", "code": "artefact",
     "display": "Measurement artefact or error"},
]  # fmt: skip

_CARD_NS = uuid.UUID("5f1c4c55-0a2e-4d0b-9d3e-2b6a7c1e9f40")  # vitalgru's namespace for card ids


def card_uuid(event: Mapping[str, Any], log_id: str, old_ids_up_to: int | None = None) -> str:
    """The card id of an alarm event of the event log ``log_id`` (the same event, the same
    id, across calls): a name-based UUID of the log's id, the event's number and when it was
    received (:attr:`vitalgru.scoring.ward.Ward.log_id`, kept in the state file). Event
    numbers begin at 1 in every gateway and state file, and two gateways' alarms can be
    received in the same second: without the log's id, their cards had the same id. An
    alarm numbered up to ``old_ids_up_to`` (:attr:`vitalgru.scoring.ward.Ward.old_ids_up_to`:
    the state file held it when an upgrade gave its log an id;
    :func:`vitalgru.types.event_log_id`) keeps the id its card had before. The feedback finds
    a card's alarm by working out the ids of the log's alarms, not by reading the id
    (:func:`apply_feedback`)."""
    named = event_log_id(log_id, old_ids_up_to, int(event["seq"]))
    if named is None:
        return _card_uuid_before_log_ids(event)
    return str(uuid.uuid5(_CARD_NS, f"{named}/{event['seq']}/{event.get('received_at', '')}"))


def _card_uuid_before_log_ids(event: Mapping[str, Any]) -> str:
    """The card id an alarm had before card ids named the event log (:func:`card_uuid`):
    still taken in feedback, for the cards clinicians saw before the upgrade."""
    return str(uuid.uuid5(_CARD_NS, f"{event['seq']}/{event.get('received_at', '')}"))


#: The override reasons each monitor's cards offer (ECG cards offer none).
REASONS_OF = {"sepsis": OVERRIDE_REASONS, "ecg": []}


def carded(event: Mapping[str, Any], monitor: str) -> bool:
    """Whether ``event`` is an alarm the services of ``monitor`` give cards for: a sepsis
    alarm onset (a repeat in the lockout too), or an ECG alarm that is not information."""
    if event.get("source") != monitor:
        return False
    if monitor == "sepsis":
        return event.get("kind") in ("sepsis_risk", REPEATED_SEPSIS_KIND)
    return event.get("kind") not in INFO_KINDS


def _reason(item: Mapping[str, Any], monitor: str) -> str | None:
    """How the note names the override reason of a feedback item: one of its cards' by its
    display, one the EHR added by its code and display, marked so (None without one;
    ValueError for an ``overrideReason`` that is not an object, or a reason that is not a
    Coding with a code)."""
    given = item.get("overrideReason")
    if given is None:
        return None
    if not isinstance(given, Mapping):
        raise ValueError(f"an overrideReason is an object: {given!r}"[:300])
    coding = given.get("reason")
    if coding is None:
        return None  # a comment without a reason
    code = coding.get("code") if isinstance(coding, Mapping) else None
    if not isinstance(code, str) or not code:
        raise ValueError(f"an override reason is a Coding with a code: {coding!r}"[:300])
    for offered in REASONS_OF[monitor]:
        if (coding.get("system"), code) == (offered["system"], offered["code"]):
            return str(offered["display"])
    # CDS Hooks: "a CDS Client MAY augment the override reasons presented to the user with
    # its own reasons"; taken, and the note says the card did not offer it
    display = coding.get("display")
    named = f"{code}: {display}" if isinstance(display, str) and display else code
    return f"the EHR's reason, not one the card offered: {named}"


def apply_feedback(
    ward: Any,
    events: Sequence[Mapping[str, Any]],
    body: Mapping[str, Any],
    client: str,
    monitor: str,
    patients: set[str] | None = None,
    *,
    log_id: str,
    old_ids_up_to: int | None = None,
) -> dict[str, int]:
    """Acknowledge the alarm of each card the feedback names (``events``: the ward's log, to
    find the card's alarm by its id, :func:`card_uuid` of ``log_id``, the ward's event log,
    and ``old_ids_up_to``;
    only the alarms ``monitor``'s services give cards for, :func:`carded`), as ``CDS Hooks (<client>)``, the outcome and any override reason (one
    of the cards', :data:`REASONS_OF`, or one the EHR added, marked so) and comment as the
    note. Returns ``{"acknowledged", "already", "unknown"}`` (cards whose alarm was
    acknowledged before, or that the log no longer holds or never carded); the patients of
    the alarms it names are added to ``patients``. ValueError for a body that is not CDS
    Hooks feedback (an item without an outcome, an override reason that is not a Coding),
    before any alarm is acknowledged."""
    items = body.get("feedback") if isinstance(body, Mapping) else None
    if not isinstance(items, list):
        raise ValueError('CDS Hooks feedback is {"feedback": [...]}')
    if not all(isinstance(i, Mapping) and i.get("outcome") in ("accepted", "overridden")
               for i in items):  # fmt: skip
        # checked before any is taken: a refusal acknowledges nothing
        raise ValueError("each feedback names a card and an outcome (accepted or overridden)")
    reasons = [_reason(i, monitor) for i in items]  # all checked before any is taken too
    alarms = [e for e in events if carded(e, monitor)]
    # a card shown before card ids named the log: still taken by its old id (which a
    # gateway not yet upgraded may give another alarm of the same number and second)
    by_card = {_card_uuid_before_log_ids(e): e for e in alarms}
    by_card.update({card_uuid(e, log_id, old_ids_up_to): e for e in alarms})
    counts = {"acknowledged": 0, "already": 0, "unknown": 0}
    for item, said in zip(items, reasons, strict=True):
        event = by_card.get(str(item.get("card")))
        if event is None:
            counts["unknown"] += 1
            continue
        reason = item["overrideReason"] if isinstance(item.get("overrideReason"), Mapping) else {}
        note = " ".join(str(x) for x in (
            f"card {item['outcome']} in the EHR",
            f"({said})" if said else "",
            reason.get("userComment") or "",
        ) if x)[:500]  # fmt: skip
        try:
            ward.acknowledge(int(event["seq"]), f"CDS Hooks ({client})"[:100], note)
            counts["acknowledged"] += 1
        except ValueError:  # acknowledged already
            counts["already"] += 1
        except KeyError:
            counts["unknown"] += 1
            continue
        if patients is not None and event.get("patient_id") is not None:
            patients.add(str(event["patient_id"]))
    return counts
