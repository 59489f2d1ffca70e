"""FHIR R4-shaped JSON of what the monitors found, for a hospital's integration engine.

Each function returns a ``Bundle`` of type ``collection`` (plain dicts, ready for
``json.dumps``) built from the summaries the clinician pages are drawn from:

* sepsis (:func:`sepsis_bundle`, from :func:`vitalgru.reports.early_warning.stay_summary`):
  per patient one ``RiskAssessment`` of the latest hour scored, whose predicted outcome is
  sepsis (SNOMED CT 91302008, "Sepsis (disorder)"), qualified ``high`` when in alarm and
  ``low`` otherwise (HL7 risk-probability codes), with ``probabilityDecimal`` the model's
  recalibrated probability (a model without a recalibration gives a score, not a
  probability: it goes in the note instead); and one ``Flag`` per alarm
  episode, ``active`` if it was still going at the latest hour;
* the live gateway's alarm log (:func:`events_bundle`): one ``Flag`` per event, and its
  sepsis patients' latest hours (:func:`risk_bundle`): one ``RiskAssessment`` each;
* ECG (:func:`ecg_bundle`, from :func:`vitalgru.reports.monitoring.patient_summary`): per
  patient one ``Observation`` of heart rate (LOINC 8867-4, the median over beats in accepted
  signal, UCUM ``/min``, category ``vital-signs``), and one ``Flag`` per alarm;
* an ECG alarm's strip (:func:`strip_observation`, from :meth:`vitalgru.scoring.ward.Ward.strip`):
  an ``Observation`` of the lead's potential (ISO/IEEE 11073 MDC_ECG_ELEC_POTL, 131328; the
  gateway is not told which lead a feed sends) whose ``valueSampledData`` holds the samples
  in µV (``factor`` 0.001 to mV, ``E`` where there was no signal), as FHIR's own ECG example
  does, with the beats' classes in its note.

Patients are referenced by identifier (``Reference.identifier``, with the hospital's
identifier system when given), since the monitor knows the id a feed was admitted under,
not a FHIR server's resource id. Times: given when each patient's monitoring began
(``starts``), resources carry dateTimes; without it (a replayed recording has no
wall-clock time) they carry none, and their text gives the time from the start of
monitoring. Entries get deterministic ``urn:uuid`` full URLs, so the same report gives the
same bundle.

Tests validate every bundle against the R4B resource models of ``fhir.resources``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from vitalgru.io.observation_codes import MDC_SYSTEM  # ISO/IEEE 11073-10101, R4's URI
from vitalgru.reports.monitoring import ALERT_NAMES, PatientSummary
from vitalgru.types import event_log_id

__all__ = [
    "ecg_bundle",
    "event_identifier",
    "events_bundle",
    "risk_bundle",
    "sepsis_bundle",
    "strip_observation",
]

_SNOMED = "http://snomed.info/sct"
_LOINC = "http://loinc.org"
_UCUM = "http://unitsofmeasure.org"
_FLAG_CATEGORY = "http://terminology.hl7.org/CodeSystem/flag-category"
_OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
_RISK = "http://terminology.hl7.org/CodeSystem/risk-probability"
#: Namespace of the entries' deterministic ``urn:uuid`` full URLs.
_NAMESPACE = uuid.UUID("6f3b0f4e-5d0a-4c55-9a53-2c9e4b8f1d27")

#: Identifier system of the gateway's events (a strip Observation carries its alarm's):
#: values ``{log id}/{event number}`` (:func:`event_identifier`; the bare number for the
#: events of a state file from before logs had ids).
GATEWAY_EVENT_SYSTEM = "urn:vitalgru:gateway-event"
#: FHIR's core extension pointing a Flag at the record that supports it.
FLAG_DETAIL = "http://hl7.org/fhir/StructureDefinition/flag-detail"
ECG_POTENTIAL = {"system": MDC_SYSTEM, "code": "131328", "display": "MDC_ECG_ELEC_POTL"}
SEPSIS = {"system": _SNOMED, "code": "91302008", "display": "Sepsis (disorder)"}
HEART_RATE = {"system": _LOINC, "code": "8867-4", "display": "Heart rate"}

Resource = dict[str, Any]


def _subject(pid: str, system: str | None) -> dict[str, Any]:
    ident = {"value": pid} if system is None else {"system": system, "value": pid}
    return {"identifier": ident, "display": f"Patient {pid}"}


def event_identifier(log_id: str, seq: int, old_ids_up_to: int | None = None) -> dict[str, str]:
    """The business identifier of event ``seq`` of the gateway's event log ``log_id``
    (:attr:`vitalgru.scoring.ward.Ward.log_id`, kept in its state file): event numbers
    start again at 1 in another gateway, or one given a new state file, so the number alone
    would name two patients' records alike (an engine updating on the identifier would
    overwrite one with the other). An event numbered up to ``old_ids_up_to``
    (:attr:`vitalgru.scoring.ward.Ward.old_ids_up_to`: the state file held it when an
    upgrade gave its log an id; :func:`vitalgru.types.event_log_id`) keeps the bare number
    it was identified by before, so that an engine updating on it does not make a second
    copy of a strip it already took."""
    named = event_log_id(log_id, old_ids_up_to, seq)
    value = str(int(seq)) if named is None else f"{named}/{int(seq)}"
    return {"system": GATEWAY_EVENT_SYSTEM, "value": value}


def _when(start: datetime | None, offset: timedelta) -> str | None:
    if start is None:
        return None
    if start.tzinfo is None:
        raise ValueError(f"start time {start.isoformat()} has no time zone; FHIR needs one")
    # in elapsed time: added to an aware time, Python moves the wall clock, and across a
    # daylight-saving change hour 6 of a stay admitted at midnight came out 5 h after it
    return (start.astimezone(UTC) + offset).astimezone(start.tzinfo).isoformat()


def _bundle(resources: Sequence[tuple[str, Resource]], generated: datetime | None) -> Resource:
    out: Resource = {"resourceType": "Bundle", "type": "collection"}
    if generated is not None:
        if generated.tzinfo is None:  # an instant (FHIR) carries its zone
            raise ValueError(f"generated {generated.isoformat()} has no time zone; FHIR needs one")
        out["timestamp"] = generated.isoformat()
    out["entry"] = [
        {"fullUrl": f"urn:uuid:{uuid.uuid5(_NAMESPACE, key)}", "resource": r}
        for key, r in resources
    ]
    return out


def _flag(
    text: str, subject: dict[str, Any], active: bool, start: str | None, end: str | None
) -> Resource:
    flag: Resource = {
        "resourceType": "Flag",
        "status": "active" if active else "inactive",
        "category": [
            {"coding": [{"system": _FLAG_CATEGORY, "code": "clinical", "display": "Clinical"}]}
        ],
        "code": {"text": text},
        "subject": subject,
    }
    if start is not None:
        flag["period"] = {"start": start, **({"end": end} if end is not None else {})}
    return flag


def _risk_assessment(
    subject: dict[str, Any],
    model: str,
    *,
    last_hour: int,
    risk_last: float,
    probability: float | None,
    in_alarm: bool,
    threshold: float,
    risk_max: float,
    risk_max_hour: int,
    when: str | None,
) -> Resource:
    """The ``RiskAssessment`` of a stay's latest hour (see the module's description)."""
    risk: Resource = {
        "resourceType": "RiskAssessment",
        "status": "final",
        "subject": subject,
        "method": {"text": f"vitalgru sepsis early warning, model {model}"},
        "prediction": [
            {
                "outcome": {
                    "coding": [SEPSIS],
                    "text": "Sepsis (Sepsis-3), now or within 6 hours (the label of the "
                    "PhysioNet/CinC Challenge 2019)",
                },
                "qualitativeRisk": {
                    "coding": [
                        {
                            "system": _RISK,
                            "code": "high" if in_alarm else "low",
                            "display": "High likelihood" if in_alarm else "Low likelihood",
                        }
                    ]
                },  # fmt: skip
            }
        ],
        "note": [
            {
                "text": f"ICU hour {last_hour}; alarm threshold {threshold:.4g} "
                f"({'in alarm' if in_alarm else 'not in alarm'}); highest risk of the "
                f"stay {risk_max:.3f} at ICU hour {risk_max_hour}"
            }
        ],
    }
    if probability is not None:  # a probability only where the model was recalibrated
        risk["prediction"][0]["probabilityDecimal"] = round(float(probability), 6)
    else:
        risk["note"][0]["text"] += (
            f"; risk score {risk_last:.3f} (the model has no recalibration: a score, "
            "not a probability)"
        )
    if when is not None:
        risk["occurrenceDateTime"] = when
    return risk


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
        risk = _risk_assessment(
            _subject(pid, patient_system), model, last_hour=int(last["hour"]),
            risk_last=float(last["risk"]), probability=last.get("probability"),
            in_alarm=bool(p["in_alarm"]), threshold=threshold,
            risk_max=float(p["risk_max"]), risk_max_hour=int(p["risk_max_hour"]),
            when=p.get("last_scored_at"),
        )  # fmt: skip
        out.append((f"sepsis-risk/{pid}", risk))
    return _bundle(out, generated)


def sepsis_bundle(
    stays: Sequence[Mapping[str, Any]],
    *,
    model: str,
    starts: Mapping[str, datetime] | None = None,
    patient_system: str | None = None,
    generated: datetime | None = None,
) -> Resource:
    """Sepsis risk and alarms of monitored ICU stays as a FHIR ``Bundle``.

    Parameters
    ----------
    stays : sequence of mapping
        :func:`vitalgru.reports.early_warning.stay_summary` dicts.
    model : str
        The model, as named in each assessment's method (e.g. its registry URI and version).
    starts : mapping of str to datetime, optional
        When each patient's ICU hour 0 was (time-zone aware); patients left out, or all
        without it, get resources without dateTimes.
    patient_system : str, optional
        The identifier system (URI) the patient ids belong to.
    generated : datetime, optional
        The bundle's timestamp.
    """
    starts = starts or {}
    out: list[tuple[str, Resource]] = []
    for s in stays:
        pid = str(s["patient_id"])
        if not s["n_hours"]:
            continue
        subject = _subject(pid, patient_system)
        t0 = starts.get(pid)
        thr = float(s["threshold"])
        in_alarm = bool(s["in_alarm_at_end"])
        risk = _risk_assessment(
            subject, model, last_hour=int(s["last_hour"]), risk_last=float(s["risk_last"]),
            probability=s.get("probability_last"), in_alarm=in_alarm, threshold=thr,
            risk_max=float(s["risk_max"]), risk_max_hour=int(s["risk_max_hour"]),
            when=_when(t0, timedelta(hours=int(s["last_hour"]))),
        )  # fmt: skip
        out.append((f"sepsis-risk/{pid}", risk))
        last = len(s["episodes"]) - 1
        for k, ep in enumerate(s["episodes"]):
            active = in_alarm and k == last
            text = (
                f"Sepsis early warning alarm: risk at or above {thr:.4g} from ICU hour "
                f"{ep['start_hour']} to {ep['end_hour']} (peak {ep['peak_risk']:.3f})"
            )
            if ep.get("drivers"):
                text += "; raised most by " + "; ".join(d["text"] for d in ep["drivers"])
            start = _when(t0, timedelta(hours=int(ep["start_hour"])))
            end = None if active else _when(t0, timedelta(hours=int(ep["end_hour"]) + 1))
            out.append((f"sepsis-alarm/{pid}/{k}", _flag(text, subject, active, start, end)))
    return _bundle(out, generated)


def ecg_bundle(
    patients: Sequence[PatientSummary],
    *,
    model: str,
    starts: Mapping[str, datetime] | None = None,
    patient_system: str | None = None,
    generated: datetime | None = None,
) -> Resource:
    """Heart rate and ECG alarms of monitored patients as a FHIR ``Bundle``.

    Parameters
    ----------
    patients : sequence of mapping
        :func:`vitalgru.reports.monitoring.patient_summary` dicts.
    model : str
        The model, as named in each observation's method.
    starts : mapping of str to datetime, optional
        When each patient's monitoring began (time-zone aware).
    patient_system, generated
        As in :func:`sepsis_bundle`.
    """
    starts = starts or {}
    out: list[tuple[str, Resource]] = []
    for p in patients:
        pid = str(p["patient_id"])
        subject = _subject(pid, patient_system)
        t0 = starts.get(pid)
        hr = p["hr_bpm"]
        if hr["median"] is not None:
            obs: Resource = {
                "resourceType": "Observation",
                "status": "final",
                "code": {
                    "coding": [HEART_RATE],
                    "text": "Heart rate, median over the monitored ECG",
                },
                "subject": subject,
                "valueQuantity": {
                    "value": round(float(hr["median"]), 1),
                    "unit": "/min",
                    "system": _UCUM,
                    "code": "/min",
                },
                "method": {
                    "text": f"R-R intervals of the beats vitalgru's monitor detected in accepted "
                    f"signal; model {model}"
                },
                "note": [
                    {
                        "text": f"{p['monitored_s'] / 60:.1f} min monitored; 1-minute range "
                        + (
                            f"{hr['min']:.0f}-{hr['max']:.0f} /min"
                            if hr["min"] is not None
                            else "not available"
                        )
                    }
                ],
            }
            begin = _when(t0, timedelta(0))
            if begin is not None:
                obs["effectivePeriod"] = {
                    "start": begin,
                    "end": _when(t0, timedelta(seconds=float(p["monitored_s"]))),
                }
                # a vital sign only with its time: R4's vital-signs profile, which the
                # category claims, requires effective[x] (a replay without a start has none)
                obs["category"] = [{"coding": [{
                    "system": _OBS_CATEGORY, "code": "vital-signs", "display": "Vital Signs",
                }]}]  # fmt: skip
            out.append((f"ecg-heart-rate/{pid}", obs))
        for k, a in enumerate(p["alerts"]):
            onset = float(a["onset_s"])
            text = (
                f"{ALERT_NAMES.get(a['kind'], a['kind'])} at {onset:.0f} s from the start of "
                f"monitoring: {a['message']}"
            )
            start = _when(t0, timedelta(seconds=onset))
            out.append((f"ecg-alarm/{pid}/{k}", _flag(text, subject, False, start, None)))
    return _bundle(out, generated)


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

    An ECG alarm's flag starts at its onset on the wall clock (``onset_at``), a sepsis alarm
    onset's and a feed's at the time the gateway logged it (``received_at``). An alarm is
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
    ends.update({int(e["ends"]): str(e["received_at"]) for e in events
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
        flag = _flag(text, _subject(pid, patient_system), seq in live, start, end)
        if e.get("strip_s"):  # its ECG strip, at /fhir/strips/{seq} (strip_observation)
            flag["extension"] = [{"url": FLAG_DETAIL, "valueReference": {
                "type": "Observation", "display": "ECG strip of the alarm",
                "identifier": event_identifier(log_id, int(e["seq"]), old_ids_up_to)}}]  # fmt: skip
        out.append((key, flag))
    return _bundle(out, generated)


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
            {"coding": [{"system": _OBS_CATEGORY, "code": "procedure", "display": "Procedure"}]}
        ],  # fmt: skip
        "code": {"coding": [ECG_POTENTIAL], "text": f"ECG strip of an alarm: {alarm}"},
        "subject": _subject(str(strip["patient_id"]), patient_system),
        "effectivePeriod": {"start": start.isoformat(), "end": end.isoformat()},
        "valueSampledData": {
            "origin": {"value": 0, "unit": "mV", "system": _UCUM, "code": "mV"},
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
