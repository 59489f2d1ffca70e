"""FHIR R4-shaped JSON of what the monitors found, for a hospital's integration engine.

Each function returns a ``Bundle`` of type ``collection`` (plain dicts, ready for
``json.dumps``) built from the summaries the clinician pages are drawn from:

* sepsis (:func:`sepsis_bundle`, from :func:`vitalgru.reports.early_warning.stay_summary`):
  per patient one ``RiskAssessment`` of the latest hour scored, whose predicted outcome is
  sepsis (SNOMED CT 91302008, "Sepsis (disorder)"), qualified ``moderate`` when in alarm and
  ``low`` otherwise, ``high`` only for a probability over one half (HL7 risk-probability
  codes: "high" is "more likely to occur than not"), with ``probabilityDecimal`` the model's
  recalibrated probability (a model without a recalibration gives a score, not a
  probability: it goes in the note instead); and one ``Flag`` per alarm
  episode, ``active`` if it was still going at the latest hour;
* ECG (:func:`ecg_bundle`, from :func:`vitalgru.reports.monitoring.patient_summary`): per
  patient one ``Observation`` of heart rate (LOINC 8867-4, the median over beats in accepted
  signal, UCUM ``/min``, category ``vital-signs``), and one ``Flag`` per alarm.

The live gateway's resources (its alarm log, its sepsis patients' latest hours, an ECG
alarm's strip) are built in :mod:`vitalgru.reports.fhir_gateway` from the pieces here
(:func:`subject_ref`, :func:`clinical_flag`, :func:`risk_assessment`,
:func:`collection_bundle`, :func:`event_identifier`).

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
from vitalgru.sepsis_display import risk_decimals
from vitalgru.types import event_log_id

__all__ = [
    "clinical_flag",
    "collection_bundle",
    "ecg_bundle",
    "event_identifier",
    "risk_assessment",
    "sepsis_bundle",
    "subject_ref",
]

_SNOMED = "http://snomed.info/sct"
_LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
_FLAG_CATEGORY = "http://terminology.hl7.org/CodeSystem/flag-category"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
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


def subject_ref(pid: str, system: str | None) -> dict[str, Any]:
    """A reference to patient ``pid`` by identifier (``system``: the hospital's identifier
    system, when given)."""
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


def collection_bundle(
    resources: Sequence[tuple[str, Resource]], generated: datetime | None
) -> Resource:
    """A ``collection`` Bundle of ``resources`` (``(key, resource)``: the key names the
    entry's deterministic ``urn:uuid`` full URL), stamped ``generated`` when given. No
    resources: no ``entry`` at all (FHIR's JSON has no empty arrays; one was sent before,
    which a validating engine refuses)."""
    out: Resource = {"resourceType": "Bundle", "type": "collection"}
    if generated is not None:
        if generated.tzinfo is None:  # an instant (FHIR) carries its zone
            raise ValueError(f"generated {generated.isoformat()} has no time zone; FHIR needs one")
        out["timestamp"] = generated.isoformat()
    entries = [
        {"fullUrl": f"urn:uuid:{uuid.uuid5(_NAMESPACE, key)}", "resource": r}
        for key, r in resources
    ]
    if entries:
        out["entry"] = entries
    return out


def clinical_flag(
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


#: R4's risk-probability codes used, with their displays: "low" (the outcome is possible
#: but unlikely), "moderate" (it has a reasonable likelihood of occurrence), "high" (it is
#: more likely to occur than not).
_LIKELIHOOD = {
    "low": "Low likelihood",
    "moderate": "Moderate likelihood",
    "high": "High likelihood",
}


def _likelihood(in_alarm: bool, probability: float | None) -> dict[str, str]:
    """The qualitative risk of an hour: ``moderate`` in alarm (the model's alarm line is
    where a reasonable likelihood begins: the champion's lies at a probability of 2.6 %),
    ``low`` otherwise, and ``high`` only where the probability says the outcome is more
    likely than not (R4's definition of it). It was ``high`` whenever in alarm, beside a
    probability of 3 %."""
    code = "high" if probability is not None and probability > 0.5 else (
        "moderate" if in_alarm else "low"
    )  # fmt: skip
    return {"system": _RISK, "code": code, "display": _LIKELIHOOD[code]}


def risk_assessment(
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
    d = risk_decimals([(risk_last, threshold), (risk_max, threshold)])
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
                "qualitativeRisk": {"coding": [_likelihood(in_alarm, probability)]},
            }
        ],
        "note": [
            {
                "text": f"ICU hour {last_hour}: risk score {risk_last:.{d}f} (a score, not a "
                f"probability), alarm line {threshold:.{d}f} "
                f"({'in alarm' if in_alarm else 'not in alarm'}); highest risk score of the "
                f"stay {risk_max:.{d}f} at ICU hour {risk_max_hour}"
            }
        ],
    }
    if probability is not None:  # a probability only where the model was recalibrated
        risk["prediction"][0]["probabilityDecimal"] = round(float(probability), 6)
    else:
        risk["note"][0]["text"] += "; the model has no recalibration: no probability"
    if when is not None:
        risk["occurrenceDateTime"] = when
    return risk


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
        subject = subject_ref(pid, patient_system)
        t0 = starts.get(pid)
        thr = float(s["threshold"])
        in_alarm = bool(s["in_alarm_at_end"])
        risk = risk_assessment(
            subject, model, last_hour=int(s["last_hour"]), risk_last=float(s["risk_last"]),
            probability=s.get("probability_last"), in_alarm=in_alarm, threshold=thr,
            risk_max=float(s["risk_max"]), risk_max_hour=int(s["risk_max_hour"]),
            when=_when(t0, timedelta(hours=int(s["last_hour"]))),
        )  # fmt: skip
        out.append((f"sepsis-risk/{pid}", risk))
        last = len(s["episodes"]) - 1
        d = risk_decimals((ep["peak_risk"], thr) for ep in s["episodes"])
        for k, ep in enumerate(s["episodes"]):
            active = in_alarm and k == last
            text = (
                f"Sepsis early warning alarm: risk score at or above the alarm line "
                f"{thr:.{d}f} from ICU hour {ep['start_hour']} to {ep['end_hour']} (peak "
                f"{ep['peak_risk']:.{d}f})"
            )
            if ep.get("drivers"):
                text += "; raised most by " + "; ".join(d["text"] for d in ep["drivers"])
            start = _when(t0, timedelta(hours=int(ep["start_hour"])))
            end = None if active else _when(t0, timedelta(hours=int(ep["end_hour"]) + 1))
            out.append(
                (f"sepsis-alarm/{pid}/{k}", clinical_flag(text, subject, active, start, end))
            )
    return collection_bundle(out, generated)


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
        subject = subject_ref(pid, patient_system)
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
                    "system": UCUM,
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
                    "system": OBS_CATEGORY, "code": "vital-signs", "display": "Vital Signs",
                }]}]  # fmt: skip
            out.append((f"ecg-heart-rate/{pid}", obs))
        for k, a in enumerate(p["alerts"]):
            onset = float(a["onset_s"])
            text = (
                f"{ALERT_NAMES.get(a['kind'], a['kind'])} at {onset:.0f} s from the start of "
                f"monitoring: {a['message']}"
            )
            start = _when(t0, timedelta(seconds=onset))
            out.append((f"ecg-alarm/{pid}/{k}", clinical_flag(text, subject, False, start, None)))
    return collection_bundle(out, generated)
