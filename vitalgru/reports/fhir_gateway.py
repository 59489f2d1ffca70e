"""FHIR R4 resources of the live gateway (``vitalgru serve``): what an EHR or an
integration engine reads at ``/fhir/*``.

* the alarm log (:func:`events_bundle`, from :meth:`vitalgru.scoring.ward.Ward.events`): one
  ``Flag`` per event, timed on the wall clock, its period closed when the alarm's end was
  logged;
* the sepsis patients' latest hours (:func:`risk_bundle`): one ``RiskAssessment`` each;
* an ECG alarm's strip (:func:`strip_observation`, from :meth:`vitalgru.scoring.ward.Ward.strip`):
  an ``Observation`` of the lead's potential (ISO/IEEE 11073 MDC_ECG_ELEC_POTL, 131328; the
  gateway is not told which lead a feed sends) whose ``valueSampledData`` holds the samples
  in µV (``factor`` 0.001 to mV, ``E`` where there was no signal), as FHIR's own ECG example
  does, with the beats' classes in its note.

The pieces they share with the offline reports (patients referenced by identifier, the
Flag, the RiskAssessment, the Bundle, event identifiers) are in :mod:`vitalgru.reports.fhir`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from vitalgru.reports.fhir import (
    ECG_POTENTIAL,
    FLAG_DETAIL,
    OBS_CATEGORY,
    UCUM,
    Resource,
    clinical_flag,
    collection_bundle,
    event_identifier,
    risk_assessment,
    subject_ref,
)
from vitalgru.reports.monitoring import ALERT_NAMES

__all__ = ["events_bundle", "risk_bundle", "strip_observation"]


def risk_bundle(
    patients: Sequence[Mapping[str, Any]],
    *,
    model: str,
    threshold: float,
    patient_system: str | None = None,
    generated: datetime | None = None,
) -> Resource:
    """The live gateway's sepsis patients as a FHIR ``Bundle`` of one ``RiskAssessment``
    each (their latest hour; patients not yet scored left out), for an EHR to store.

    ``patients`` are :meth:`vitalgru.scoring.ward.Ward.sepsis_summary` dicts; each
    assessment is timed when its hour was scored (``last_scored_at``) when that is known.
    """
    out: list[tuple[str, Resource]] = []
    for p in patients:
        last = p.get("last_hour")
        if not last:
            continue
        pid = str(p["patient_id"])
        risk = risk_assessment(
            subject_ref(pid, patient_system), model, last_hour=int(last["hour"]),
            risk_last=float(last["risk"]), probability=last.get("probability"),
            in_alarm=bool(p["in_alarm"]), threshold=threshold,
            risk_max=float(p["risk_max"]), risk_max_hour=int(p["risk_max_hour"]),
            when=p.get("last_scored_at"),
        )  # fmt: skip
        out.append((f"sepsis-risk/{pid}", risk))
    return collection_bundle(out, generated)


def events_bundle(
    events: Sequence[Mapping[str, Any]],
    *,
    log_id: str,
    old_ids_up_to: int | None = None,
    active: Sequence[int] = (),
    ended: Mapping[int, str] | None = None,
    patient_system: str | None = None,
    generated: datetime | None = None,
) -> Resource:
    """The live gateway's events (:meth:`vitalgru.scoring.ward.Ward.events`) as a FHIR
    ``Bundle`` of ``Flag`` resources, one per event, for an integration engine that takes
    FHIR rather than the gateway's JSON.

    An ECG alarm's flag starts at its onset on the wall clock (``onset_at``, stream time),
    and a pause's or poor signal's ends on the same clock (its end's ``ended_at``), a sepsis
    alarm onset's and a feed's at the time the gateway logged it (``received_at``). An alarm is
    ``active`` when its event number is in ``active`` (its condition goes on: the patient
    is still in that sepsis episode, the feed is not back yet, the signal not good again,
    no heartbeat since the pause); other ECG alarms and other events are momentary
    (``inactive``). An alarm whose end was logged (an event that ``ends`` it: in
    ``events``, or its time in ``ended``, ``{seq: dateTime}``, for an end logged after
    them: :meth:`vitalgru.scoring.ward.Ward.alarms_ended`) has its period closed then (R4:
    a flag's period runs from its activation to its inactivation). An acknowledged
    event's flag says by whom and when; acknowledgements get no flag of their own. An ECG
    alarm with a strip points at it (the ``flag-detail`` extension, a reference by the
    event's identifier, :func:`event_identifier` of ``log_id``, ``old_ids_up_to`` and its
    number, to the Observation :func:`strip_observation` makes).
    """
    live = set(int(a) for a in active)
    ends = {int(a): str(at) for a, at in (ended or {}).items()}
    ends.update({int(e["ends"]): str(e.get("ended_at") or e["received_at"]) for e in events
                 if e.get("ends") is not None and e.get("received_at")})  # fmt: skip
    out: list[tuple[str, Resource]] = []
    for e in events:
        if e.get("source") == "ward":
            continue  # an acknowledgement: it shows on the flag it acknowledges
        pid = str(e["patient_id"])
        kind = str(e["kind"])
        if e.get("source") == "sepsis":
            text = f"Sepsis early warning alarm: {e['message']}"
        else:
            text = f"{ALERT_NAMES.get(kind, kind.replace('_', ' ').capitalize())}: {e['message']}"
        if e.get("acknowledged"):
            ack = e["acknowledged"]
            text += f" (acknowledged by {ack['by']} at {ack['at']}" + (
                f": {ack['note']})" if ack.get("note") else ")"
            )
        elif e.get("escalated"):
            level = int(e["escalated"].get("level") or 1)
            text += f" (escalated{f' to level {level}' if level > 1 else ''} at " + (
                f"{e['escalated']['at']}: not acknowledged)"
            )
        start = e.get("onset_at") or e.get("received_at")
        key = f"gateway-event/{e['seq']}/{e.get('received_at', '')}"
        seq = int(e["seq"])
        end = None if seq in live else ends.get(seq)
        if (
            end is not None
            and start
            and datetime.fromisoformat(end) < datetime.fromisoformat(start)
        ):
            end = start  # ended within the second its onset (to the ms) was in: the log's
            # received_at is to the second
        flag = clinical_flag(text, subject_ref(pid, patient_system), seq in live, start, end)
        if e.get("strip_s"):  # its ECG strip, at /fhir/strips/{seq} (strip_observation)
            flag["extension"] = [{"url": FLAG_DETAIL, "valueReference": {
                "type": "Observation", "display": "ECG strip of the alarm",
                "identifier": event_identifier(log_id, int(e["seq"]), old_ids_up_to)}}]  # fmt: skip
        out.append((key, flag))
    return collection_bundle(out, generated)


def strip_observation(
    strip: Mapping[str, Any],
    *,
    log_id: str,
    old_ids_up_to: int | None = None,
    patient_system: str | None = None,
) -> Resource:
    """An ECG alarm's strip (:meth:`vitalgru.scoring.ward.Ward.strip`) as a FHIR
    ``Observation`` with ``valueSampledData``: one sample every ``1000 / fs`` ms, in µV
    (``factor`` 0.001 gives mV, ``origin`` 0 mV), ``E`` for a sample with no signal; timed
    on the wall clock from ``start_at``, with the alarm and each labelled beat in its note,
    and identified by its alarm's event (:func:`event_identifier` of ``log_id``, the
    gateway's event log, and ``old_ids_up_to``)."""
    fs = float(strip["fs"])
    samples = strip["samples"]
    data = " ".join("E" if v is None else str(int(round(float(v) * 1000))) for v in samples)
    start = datetime.fromisoformat(str(strip["start_at"]))
    end = start + timedelta(seconds=len(samples) / fs)
    beats = ", ".join(
        f"{float(b['time_s']) - float(strip['start_s']):.2f} s {b['label']}"
        + ("" if b.get("signal_ok", True) else " (signal rejected)")
        for b in strip["beats"]
    )
    kind = str(strip["kind"])
    alarm = ALERT_NAMES.get(kind, kind.replace("_", " ").capitalize())
    note = (f"{alarm}: {strip['message']}; onset "
            f"{float(strip['onset_s']) - float(strip['start_s']):.2f} s into the strip. "
            f"Beats (time into the strip, AAMI class): {beats or 'none labelled'}.")  # fmt: skip
    obs: Resource = {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {"coding": [{"system": OBS_CATEGORY, "code": "procedure", "display": "Procedure"}]}
        ],  # fmt: skip
        "code": {"coding": [ECG_POTENTIAL], "text": f"ECG strip of an alarm: {alarm}"},
        "subject": subject_ref(str(strip["patient_id"]), patient_system),
        "effectivePeriod": {"start": start.isoformat(), "end": end.isoformat()},
        "valueSampledData": {
            "origin": {"value": 0, "unit": "mV", "system": UCUM, "code": "mV"},
            "period": round(1000.0 / fs, 6),
            "factor": 0.001,
            "dimensions": 1,
            "data": data,
        },
        "note": [{"text": note}],
    }
    if "seq" in strip:
        obs["identifier"] = [event_identifier(log_id, int(strip["seq"]), old_ids_up_to)]
    return obs
