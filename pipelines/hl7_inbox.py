"""HL7 v2 messages to the ward, whichever way they come: over MLLP, the framing hospital
interface engines speak on a TCP port (``vitalgru serve --mllp-port``), or over HTTP
(``POST /hl7``).

A hospital's interface engine forwards the messages it has, as they happen, to one address:
admissions and discharges (``ADT``) and results (``ORU``). It does not know which bed's URL
a result belongs to, and it resends a message it got no acknowledgement for. So
:class:`Hl7Inbox` reads each message whole and decides:

==================  ========================================================================
message             what the ward does
==================  ========================================================================
``ADT^A01``         admit the patient (``PID-3``, the first identifier) to sepsis scoring,
                    the stay starting at the event (``EVN-6``, else ``EVN-2``, else
                    ``MSH-7``), with the age (``PID-7``), sex (``PID-8``) and hours since
                    the hospital admission (``PV1-44``) the model takes
                    (:func:`vitalgru.io.hl7v2.adt_event`)
``ADT^A02``         with ``units`` given: a transfer into one of them admits, out of them
                    discharges (``PV1-3``, the point of care); else not acted on
``ADT^A03``/``A11`` discharge (a discharge, a cancelled admission)
``ADT^A08``         a patient on scoring: the age, sex and hospital admission the message
                    gives, counted to the stay's start, for the hours scored from then on
``ADT^A40``         the stay of the record merged away (``MRG-1``, a temporary number) goes
                    on under the surviving identifier (``PID-3``)
``ORU^R01``         the observations go to the ICU hour their times fall in, for the first
                    ``PID-3`` identifier on sepsis scoring (:meth:`Ward.add_observations`:
                    the hour is scored when it closes)
other ``ADT``       acknowledged, not acted on (the acknowledgement says so)
anything else       rejected (``AR``): not a message this gateway reads
==================  ========================================================================

Every message gets an acknowledgement: ``AA`` (taken, or nothing to do, with a note), ``AE``
(an error: a patient not on scoring, an observation too late, ...) or ``AR`` (not a
message the gateway reads, not HL7 at all, or bytes that are not of the character set its
``MSH-18`` names, UTF-8 when none: refused, never read with replacement characters). A
message in enhanced acknowledgement mode (``MSH-15`` given) gets the commit
acknowledgement of the same outcome instead, ``CA``, ``CE`` or ``CR``, when ``MSH-15``
asks for one (``AL`` always, ``ER`` for ``CE``/``CR``, ``SU`` for ``CA``, ``NE`` never);
where it asks for none and ``MSH-16`` asks for an application acknowledgement of that
outcome, the original-mode ``AA``/``AE``/``AR`` is sent; where neither asks, nothing is
sent back over MLLP (over HTTP the answer carries it all the same). No application
acknowledgement is sent as a message of its own, after a commit acknowledgement: that
one is sent once the message was taken, and says how. A message whose control
id (``MSH-10``, within its sender's ``MSH-3``/``MSH-4``) was taken already (the engine resent it because
an acknowledgement was lost) is not taken again: it gets the first acknowledgement once
more (a message that was not taken is tried again when resent: the patient may have been
admitted since). The last
:data:`REMEMBER_MESSAGES` control ids are remembered, in the ward's state file when it has
one, so a message resent after a restart (its acknowledgement lost with the connection)
is not taken twice either.

The MLLP listener is :mod:`pipelines.mllp_server`'s; the acknowledgements, in either mode,
are made in :mod:`pipelines.hl7_replies`.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import nullcontext
from datetime import datetime, tzinfo
from typing import Any

from pipelines.hl7_replies import Hl7Reply, answered, sender_key, type_label, unread_header
from pipelines.ward_requests import Refused, score_observations, skipped_note, ward_call
from vitalgru.errors import Hl7ReadError
from vitalgru.io.hl7v2 import Hl7Message, adt_event, oru_observations, read_message
from vitalgru.io.hl7v2 import ack as hl7_ack
from vitalgru.scoring.patient_ids import check_patient_id
from vitalgru.scoring.ward import Ward
from vitalgru.scoring.ward_journal_writes import TAKING

__all__ = ["ICU_TYPES", "REMEMBER_MESSAGES", "Hl7Inbox", "Hl7Reply", "parse_adt_units"]

logger = logging.getLogger(__name__)

#: Control ids of taken messages remembered, to answer a resent one without taking it twice.
REMEMBER_MESSAGES = 10_000
#: What a resent message is told when it was taken before a restart and the state file could
#: not give back its first acknowledgement.
_TAKEN_BEFORE = "taken before the gateway restarted (its first acknowledgement cannot be read)"
#: ... and when the gateway stopped after the message changed the ward, before answering.
_TAKEN_UNANSWERED = "taken before the gateway restarted (it stopped before acknowledging it)"


class Hl7Inbox:
    """What the gateway does with each HL7 v2 message (see the module's description).

    Parameters
    ----------
    ward : Ward
    intake : IntakeCollector
        Counts observations and hours taken (:mod:`pipelines.gateway_metrics`).
    tz : tzinfo, optional
        The site's time zone, for times sent without a UTC offset (else those cannot be
        placed: an ``ORU`` needs offsets, an ``ADT`` without a placeable time admits now).
    units : sequence of str, optional
        Points of care (``PV1-3.1``) whose patients are scored: an admission elsewhere is
        not acted on, transfers in and out admit and discharge. None: every ``ADT^A01``.
        A unit given as ``MICU=medical`` or ``SICU=surgical`` also says its ICU type, which
        the sepsis model takes (``Unit1``, ``Unit2``): set at admission, and changed by a
        transfer between scored units for the hours scored from then on.
    audit : AuditLog, optional
        Where admissions and discharges taken from messages are written
        (:mod:`pipelines.audit`), with the caller :meth:`handle` is given.
    """

    def __init__(
        self,
        ward: Ward,
        intake: Any,
        tz: tzinfo | None = None,
        units: Sequence[str] | None = None,
        remember: int = REMEMBER_MESSAGES,
        audit: Any = None,
    ) -> None:
        self.ward, self.intake, self.tz, self.audit = ward, intake, tz, audit
        self.units, self.icu_types = parse_adt_units(units)
        self._seen: OrderedDict[str, Hl7Reply] = OrderedDict()
        self._remember = remember
        self.journal = getattr(ward, "journal", None)  # the state file, when there is one
        if self.journal is not None:  # what was taken before a restart
            for cid, kind, r in self.journal.hl7_messages()[-remember:]:
                if r == TAKING:  # stopped after the ward changed, before the answer
                    self._seen[cid] = Hl7Reply("", "AA", 200, _TAKEN_UNANSWERED, kind)
                    continue
                try:
                    self._seen[cid] = Hl7Reply(r["ack"], r["code"], r["status"], r["text"],
                                               kind)  # fmt: skip
                except (KeyError, TypeError):  # taken, but its reply cannot be read
                    self._seen[cid] = Hl7Reply("", "AA", 200, _TAKEN_BEFORE, kind)
        self._lock = threading.Lock()  # one message at a time: in order, and once

    def handle(
        self,
        raw: str | bytes,
        source: str = "mllp",
        caller: str | None = None,
        client: str | None = None,
    ) -> Hl7Reply:
        """Take one message and return its acknowledgement (never raises for bad input).
        ``caller`` and ``client`` (who sent it, from where) go to the access log with the
        admissions and discharges it makes."""
        received = self.ward.sepsis_now()  # before waiting for the messages ahead of it
        try:
            msg = read_message(raw)
        except ValueError as e:
            named = unread_header(raw)
            # why, as read_message says it in HL7 table 0357: 100 no MSH first, 102 bytes
            # not of the character set or separators HL7 does not allow
            error = e.hl7_error if isinstance(e, Hl7ReadError) else 207
            reply = Hl7Reply(hl7_ack(named, "AR", str(e), error=error), "AR", 422, str(e),
                             error=error)  # fmt: skip
            self.intake.message(source, "none", "AR")
            return answered(named, reply)
        with self._lock:
            key = sender_key(msg)
            kept = self._seen.get(key) if key else None
            if kept is not None and kept.message_type == msg.message_type:
                self._seen.move_to_end(key)
                self.intake.message(source, type_label(msg), "duplicate")
                return answered(msg, Hl7Reply(kept.ack or hl7_ack(msg, "AA", kept.text),
                                               kept.code, kept.status, kept.text,
                                               kept.message_type, kept.result,
                                               duplicate=True))  # fmt: skip
            marking = self.journal.taking(key, msg.message_type) if (
                key and self.journal is not None) else nullcontext()  # fmt: skip
            try:
                with marking:
                    reply = self._take(msg, source, received)
            except Exception:  # a fault of ours: said to the sender, not a dropped connection
                logger.exception("hl7: message %s (%s) failed", msg.control_id, msg.message_type)
                text = "the gateway failed to take this message (see its log)"
                reply = Hl7Reply(hl7_ack(msg, "AE", text), "AE", 500, text, msg.message_type)
            if self.audit is not None and msg.kind[0] == "ADT" and reply.result:
                pid = reply.result.get("patient_id")
                verb = reply.result.get("hl7_action") or (
                    "discharge" if reply.result.get("discharged") else "admit")  # fmt: skip
                action = f"HL7 {type_label(msg, bounded=False)} {verb}"
                self.audit.record(caller or source, action, pid, reply.status, client)
            if key and reply.code == "AA":  # an error is worth trying again
                self._seen[key] = reply
                while len(self._seen) > self._remember:
                    self._seen.popitem(last=False)
                if self.journal is not None:
                    kept = {"ack": reply.ack, "code": reply.code, "status": reply.status,
                            "text": reply.text}  # fmt: skip
                    try:
                        self.journal.hl7_taken(key, msg.message_type, kept,
                                               self._remember)  # fmt: skip
                    except (sqlite3.Error, OSError):
                        logger.exception("hl7: could not keep message %s", msg.control_id)
            elif key and self.journal is not None:  # any mark of the taking goes too
                try:
                    self.journal.hl7_forget(key, msg.message_type)
                except (sqlite3.Error, OSError):
                    logger.exception("hl7: could not forget message %s", msg.control_id)
        self.intake.message(source, type_label(msg), reply.code)
        return answered(msg, reply)

    def _take(self, msg: Hl7Message, source: str, received: datetime) -> Hl7Reply:
        code, trigger = msg.kind
        try:
            if code == "ORU":
                result, text = self._oru(msg, source, received)
            elif code == "ADT":
                result, text = self._adt(msg, trigger, received)
            else:
                text = (f"an HL7 v2 {msg.message_type or 'message without a type'!r} is not "
                        "read here: send ADT (admissions, transfers, discharges) and ORU^R01")  # fmt: skip
                return Hl7Reply(hl7_ack(msg, "AR", text, error=200), "AR", 422, text,
                                msg.message_type, error=200)  # fmt: skip
        except Refused as e:
            if code == "ORU":
                self.intake.count(source, "hours", "refused")
            return Hl7Reply(hl7_ack(msg, "AE", e.detail, error=e.hl7_error), "AE", e.status,
                            e.detail, msg.message_type, error=e.hl7_error)  # fmt: skip
        return Hl7Reply(hl7_ack(msg, "AA", text), "AA", 200, text, msg.message_type, result)

    def _oru(self, msg: Hl7Message, source: str, received: datetime) -> tuple[dict[str, Any], str]:
        on = set(self.ward.patients().get("sepsis", []))
        pid = next((p for p in msg.patient_ids if p in on), None)
        if pid is None:
            ids = ", ".join(msg.patient_ids) or "none"
            raise Refused(404, f"no patient of PID-3 ({ids}) is on sepsis scoring: admit them "
                          "first (ADT^A01, or POST /vitals/{patient}/admit)")  # fmt: skip
        try:
            oru = oru_observations(msg, self.tz, received)
        except ValueError as e:
            raise Refused(422, str(e)) from None
        out = score_observations(self.ward, self.intake, pid, oru.observations, None, source)
        hours = [h["hour"] for h in out.get("hours", [out])]
        which = f"ICU hour {hours[0]}" if len(hours) == 1 else f"ICU hours {hours[0]}-{hours[-1]}"
        note = skipped_note(out["observations"])
        return out, f"patient {pid}: {which}, {out['observations']['used']} used" + (
            f"; {note}" if note else ""
        )

    def _adt(self, msg: Hl7Message, trigger: str, received: datetime) -> tuple[dict[str, Any], str]:
        event = adt_event(msg, self.tz, received=received)
        if not event.patient_ids:
            raise Refused(422, "the message names no patient (PID-3)", 101)
        pid = event.patient_ids[0]
        on = pid in set(self.ward.patients().get("sepsis", []))
        if not on:  # one kept from before ids were checked can still be updated, discharged
            ward_call(check_patient_id, pid)  # AE 422 naming the problem
        unit = msg.field("PV1", 3, 1).upper()
        here = self.units is None or unit in self.units
        if trigger == "A01" or (trigger == "A02" and self.units is not None):
            if not here:
                if trigger == "A02" and on:  # moved out of the monitored units
                    return self._discharge(pid, f"transferred to {unit or 'an unnamed unit'}")
                return {}, f"not acted on: unit {unit or '(none)'} is not scored here"
            if on:
                if trigger == "A02":  # between scored units: its ICU type may change
                    return self._moved(pid, unit)
                return {}, f"patient {pid} is already on sepsis scoring; not admitted again"
            at = event.occurred_at
            notes = list(event.notes)
            if at is None:
                notes.append("admitted as of now")
            ward_call(self.ward.admit_sepsis, pid, {**event.static, **self._unit_type(unit)}, at)
            summary = ward_call(self.ward.sepsis_summary, pid)
            text = f"patient {pid} admitted to sepsis scoring from {summary['admitted_at']}"
            if unit in self.icu_types:
                text += f" ({self.icu_types[unit]} ICU)"
            return summary, "; ".join([text, *notes])
        if trigger in ("A03", "A11"):
            if not on:
                return {}, f"patient {pid} is not on sepsis scoring; nothing to do"
            return self._discharge(pid, "discharged" if trigger == "A03" else "admission cancelled")
        if trigger == "A08":
            return self._update(msg, pid, on, received)
        if trigger == "A40":
            return self._merge(msg, pid)
        return {}, f"ADT^{trigger} not acted on"

    def _unit_type(self, unit: str) -> dict[str, float]:
        """``Unit1``/``Unit2`` (medical/surgical ICU) of a point of care whose type the
        units given say; {} for the others."""
        kind = self.icu_types.get(unit)
        if kind is None:
            return {}
        return {"Unit1": float(kind == "medical"), "Unit2": float(kind == "surgical")}

    def _moved(self, pid: str, unit: str) -> tuple[dict[str, Any], str]:
        """``ADT^A02`` of a patient on scoring to another scored unit."""
        static = self._unit_type(unit)
        if not static:
            return {}, f"patient {pid} moved to {unit or 'an unnamed unit'}; still on scoring"
        summary = ward_call(self.ward.update_sepsis_static, pid, static)
        return {**summary, "hl7_action": "update"}, (
            f"patient {pid} moved to {unit} ({self.icu_types[unit]} ICU) for the hours scored "
            "from now on")  # fmt: skip

    def _update(
        self, msg: Hl7Message, pid: str, on: bool, received: datetime
    ) -> tuple[dict[str, Any], str]:
        """``ADT^A08``: the demographics of a patient on scoring, counted to the stay's
        start, for the hours scored from now on."""
        if not on:
            return {}, f"patient {pid} is not on sepsis scoring; nothing to update"
        start = datetime.fromisoformat(ward_call(self.ward.sepsis_summary, pid)["admitted_at"])
        update = adt_event(msg, self.tz, as_of=start, received=received)
        if not update.static:
            return {}, "; ".join([f"patient {pid}: no age, sex or hospital admission in the "
                                  "message; nothing updated", *update.notes])  # fmt: skip
        summary = ward_call(self.ward.update_sepsis_static, pid, update.static)
        given = ", ".join(f"{k} {v:g}" for k, v in sorted(update.static.items()))
        return {**summary, "hl7_action": "update"}, "; ".join([f"patient {pid}: {given} for the hours scored from now on",
                                   *update.notes])  # fmt: skip

    def _merge(self, msg: Hl7Message, pid: str) -> tuple[dict[str, Any], str]:
        """``ADT^A40``: the sepsis stay and the ECG stream of the record merged away
        (``MRG-1``) go on under the surviving identifier (``PID-3``). Both are checked before
        either moves: a refusal (the surviving record has a stay or a stream of its own)
        changes nothing."""
        prior = msg.prior_patient_ids
        if not prior:
            raise Refused(422, "ADT^A40 without MRG-1: it does not say which record is merged",
                          101)  # fmt: skip
        on = self.ward.patients()
        moves = [(monitor, old, merge) for monitor, merge in (
            ("sepsis", self.ward.merge_sepsis), ("ecg", self.ward.merge_ecg))
            for old in [next((p for p in prior if p in on.get(monitor, [])), None)]
            if old is not None]  # fmt: skip
        if not moves:
            return (
                {},
                f"{', '.join(prior)} not on sepsis scoring or ECG monitoring; nothing to merge",
            )
        for monitor, _, _ in moves:
            if pid in on.get(monitor, []):
                what = "a stay" if monitor == "sepsis" else "an ECG stream"
                raise Refused(409, f"patient {pid!r} has {what} of their own; nothing was "
                                   "merged (discharge one of the two first)")  # fmt: skip
        summary: dict[str, Any] = {}
        said = []
        for monitor, old, merge in moves:
            got = ward_call(merge, old, pid)
            summary = summary or got  # the sepsis stay's, when there is one
            said.append(f"the {'sepsis stay' if monitor == 'sepsis' else 'ECG stream'} goes on")
        olds = " and ".join(dict.fromkeys(old for _, old, _ in moves))
        text = f"patient {olds} merged into {pid}: {' and '.join(said)} under {pid}"
        return {**summary, "hl7_action": "merge"}, text

    def _discharge(self, pid: str, why: str) -> tuple[dict[str, Any], str]:
        summary = ward_call(self.ward.discharge_sepsis, pid)
        return summary, f"patient {pid} {why}: off sepsis scoring"


#: The ICU types a unit of ``--adt-units`` may be given (``MICU=medical``).
ICU_TYPES = ("medical", "surgical")


def parse_adt_units(units: Sequence[str] | None) -> tuple[set[str] | None, dict[str, str]]:
    """The scored points of care and the ICU type of those given one (``MICU=medical``).
    ValueError for a type that is not one of :data:`ICU_TYPES`, an item with a type but no
    unit, or no unit at all (none would be scored)."""
    if units is None:
        return None, {}
    names, types = set(), {}
    for item in units:
        name, _, kind = item.partition("=")
        name, kind = name.strip().upper(), kind.strip().lower()
        if not name:  # skipped before: "=medical" alone left no unit, and no patient scored
            if item.strip():
                raise ValueError(f"--adt-units: {item.strip()!r} names no point of care "
                                 "(MICU=medical)")  # fmt: skip
            continue
        names.add(name)
        if kind:
            if kind not in ICU_TYPES:
                raise ValueError(f"--adt-units: {item.strip()!r}: an ICU type is medical or "
                                 "surgical (MICU=medical)")  # fmt: skip
            types[name] = kind
    if not names:  # an empty set would take no admission at all
        raise ValueError("--adt-units names no point of care: leave it out to score every unit")
    return names, types
