"""The gateway as a CDS Hooks service: the EHR asks, when a clinician opens a patient's
chart, and gets back cards for the alarms going on (``vitalgru serve --cds-clients FILE``).

Alarms reach the ward through the event log, its stream and ``ORU^R40`` messages; a
clinician working in the electronic health record sees none of them unless someone built a
view. CDS Hooks (HL7, cds-hooks.hl7.org) is how EHRs call decision support from inside
their own screens: on the ``patient-view`` hook the EHR posts the patient's id to each
service it trusts and shows the cards that come back. The gateway offers one service per
monitor it runs:

- ``vitalgru-sepsis``: a card while the patient is in a sepsis alarm episode: the risk and
  the alarm line, the estimated probability, what raised the risk at the onset, whether and
  by whom it was acknowledged (``warning``; ``critical`` once escalated unacknowledged; an
  episode in the lockout after an acknowledged alarm is ``info``);
- ``vitalgru-ecg``: a card for each of the patient's five newest ECG alarms no one has
  acknowledged, saying whether it goes on, or when it ended (``critical`` for ventricular
  runs and pauses going on, ``warning`` otherwise: :mod:`pipelines.cds_ecg_cards`);
- ``vitalgru-sepsis-discharge`` and ``vitalgru-ecg-discharge``: the same cards on the
  ``encounter-discharge`` hook, their detail opening with :data:`DISCHARGE_NOTE` (for an ECG
  alarm no longer going on, :data:`DISCHARGE_NOTE_OVER`), so that a patient is not
  discharged with an alarm unseen.

No alarm, no card (an empty list, as the specification asks). Each card links to the
patient's page on the gateway and has a ``uuid`` made from its alarm's event; the EHR's
feedback on a card (``accepted``, or ``overridden`` with one of the card's reasons: the
sepsis card offers three, the ECG cards none; or with one the EHR added, as CDS Hooks
allows, noted as such) acknowledges that alarm, in the clinician's place, as ``CDS Hooks
(<client>)`` with the outcome as the note (:mod:`pipelines.cds_feedback`): only an alarm of
the service's monitor it gives cards for, never an informational event.

Patients: the hook's ``context.patientId`` is the EHR's FHIR id, which is often not the
identifier the feeds use. Without ``--patient-system`` it is the ward's patient id. With it
(the system of the medical record number the feeds send), the discovery's prefetch of
``Patient/{{context.patientId}}`` names the patient: its identifier of that system is the
ward's id, taken only from a Patient whose ``id`` is the ``context.patientId`` (a prefetch
of another Patient, or of anything else, is ignored), and a call whose Patient has none
gets no card (the FHIR id is never taken for a record number: it may be another
patient's). A call without the ``patient`` prefetch key is answered 412 Precondition
Failed, as CDS Hooks asks of a service that cannot obtain the data it needs: an EHR leaves
the key out when its own prefetch failed, and "no card" would read as "no alarm" while
one goes on (the gateway does not fetch the Patient from the EHR's ``fhirServer`` itself).
A key whose value is ``null`` is the EHR saying it has no such Patient: no card.

Trust: every call carries a JSON Web Token the EHR signed (``Authorization: Bearer``), as
the specification requires, checked against the EHRs ``FILE`` names
(:mod:`pipelines.cds_tokens`); the caller in the access log is ``cds <client>``. A token
not taken is answered 401 ``invalid token (<category>)``, its reason in full only logged.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from pipelines.access import RateLimit
from pipelines.cds_ecg_cards import (
    DISCHARGE_NOTE,
    DISCHARGE_NOTE_OVER,
    ack_line,
    ecg_alarm_cards,
    links,
)
from pipelines.cds_feedback import OVERRIDE_REASONS, apply_feedback, card_uuid, carded
from pipelines.cds_tokens import CdsAuthError, CdsClient, CdsClients
from pipelines.gateway_http import rate_limited, unknown_caller
from vitalgru.scoring.ward_events import REPEATED_SEPSIS_KIND
from vitalgru.sepsis_display import OUTCOME, probability_text, risk_and_line, risk_decimals

__all__ = [
    "DISCHARGE_NOTE",
    "DISCHARGE_NOTE_OVER",
    "SERVICES",
    "CdsStats",
    "apply_feedback",
    "carded",
    "cds_router",
    "discovery",
    "PrefetchMissing",
    "ecg_cards",
    "patient_of",
    "sepsis_cards",
]

#: The services, by id: (monitor, hook, title, description).
SERVICES: dict[str, tuple[str, str, str, str]] = {
    "vitalgru-sepsis": (
        "sepsis",
        "patient-view",
        "vitalgru sepsis early warning",
        "While the patient is in a sepsis alarm episode of the gateway's early-warning model: "
        f"the risk score, the estimated probability of {OUTCOME} and what raised it.",
    ),
    "vitalgru-ecg": (
        "ecg",
        "patient-view",
        "vitalgru ECG alarms",
        "The patient's newest ECG alarms (ventricular or supraventricular runs, frequent "
        "ventricular ectopy, pauses, poor signal, a lost feed) that no one has acknowledged.",
    ),
    "vitalgru-sepsis-discharge": (
        "sepsis",
        "encounter-discharge",
        "vitalgru sepsis alarm at discharge",
        "When the patient is being discharged while in a sepsis alarm episode of the "
        "gateway's early-warning model: the alarm's card, before the discharge is signed.",
    ),
    "vitalgru-ecg-discharge": (
        "ecg",
        "encounter-discharge",
        "vitalgru ECG alarms at discharge",
        "When the patient is being discharged with ECG alarms no one has acknowledged: their "
        "cards, before the discharge is signed.",
    ),
}
logger = logging.getLogger(__name__)


class CdsStats:
    """What the CDS Hooks services did, counted for ``/metrics``: calls by service and
    outcome (``card``, ``none``: answered without a card; ``refused``: the token was not
    taken; ``invalid``: a call it could not read; ``no_prefetch``: a 412, the Patient it
    needs not prefetched), cards given, feedback by outcome."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: Counter[tuple[str, str]] = Counter()
        self.cards: Counter[str] = Counter()
        self.feedback: Counter[str] = Counter()

    def call(self, service: str, outcome: str, cards: int = 0) -> None:
        with self._lock:
            self.calls[(service, outcome)] += 1
            self.cards[service] += cards

    def fed_back(self, counts: Mapping[str, int]) -> None:
        with self._lock:
            self.feedback.update(counts)

    def snapshot(self) -> tuple[dict[tuple[str, str], int], dict[str, int], dict[str, int]]:
        with self._lock:
            return dict(self.calls), dict(self.cards), dict(self.feedback)


def discovery(monitors: set[str]) -> dict[str, Any]:
    """The discovery document: the services of the monitors the gateway runs."""
    return {
        "services": [
            {"hook": hook, "id": sid, "title": title, "description": text,
             "prefetch": {"patient": "Patient/{{context.patientId}}"}}
            for sid, (monitor, hook, title, text) in SERVICES.items() if monitor in monitors
        ]
    }  # fmt: skip


class PrefetchMissing(LookupError):
    """A hook call without the ``patient`` prefetch key the service needs (a 412)."""


def patient_of(request: Mapping[str, Any], patient_system: str | None) -> str | None:
    """The ward's patient id for a hook call: without ``patient_system``, ``context.
    patientId``; with it, the identifier of ``patient_system`` of the prefetched Patient,
    taken only when that Patient is the hook's (``resourceType`` Patient, ``id`` the
    ``context.patientId``), and None when there is none (no card: a FHIR id is not a record
    number, and the prefetch of another patient or of anything else is not this one's; a
    ``null`` prefetch is the EHR's "no such data"). ValueError when the call names no
    patient, or its prefetch is not an object or its ``patient`` neither a resource nor
    ``null`` (a 422: "no card" would read as no alarm); :class:`PrefetchMissing` when, with ``patient_system``, the call has no
    ``patient`` prefetch key (the EHR could not prefetch it: CDS Hooks' 412)."""
    context = request.get("context")
    pid = context.get("patientId") if isinstance(context, Mapping) else None
    if not isinstance(pid, str) or not pid:
        raise ValueError("the hook's context names no patientId")
    if not patient_system:
        return pid
    prefetch = request.get("prefetch")
    if prefetch is None or isinstance(prefetch, Mapping) and "patient" not in prefetch:
        # CDS Hooks: a client leaves out a key it could not (or chose not to) satisfy, and
        # sends null only for "no data"; without the key this service cannot tell
        raise PrefetchMissing("the call has no 'patient' prefetch (Patient/{{context."
                              "patientId}}), which this service needs to find the patient")  # fmt: skip
    if not isinstance(prefetch, Mapping):  # answered "no card" before: read as no alarm
        raise ValueError(f"the call's prefetch is a {type(prefetch).__name__}, not an object "
                         "of prefetch keys")  # fmt: skip
    patient = prefetch["patient"]
    if patient is None:
        return None
    if not isinstance(patient, Mapping):
        raise ValueError(f"the call's 'patient' prefetch is a {type(patient).__name__}, not a "
                         "FHIR resource or null")  # fmt: skip
    if patient.get("resourceType") != "Patient" or patient.get("id") != pid:
        return None  # not the hook's Patient: as if there were none
    idents = patient.get("identifier")
    for ident in idents if isinstance(idents, list) else []:
        if isinstance(ident, Mapping) and ident.get("system") == patient_system:
            if isinstance(ident.get("value"), str) and ident["value"]:
                return str(ident["value"])
    return None


def _source(service: str) -> dict[str, Any]:
    return {"label": SERVICES[service][2]}


def sepsis_cards(
    summary: Mapping[str, Any],
    onset: Mapping[str, Any] | None,
    threshold: float,
    page: str | None = None,
    service: str = "vitalgru-sepsis",
    *,
    log_id: str,
    old_ids_up_to: int | None = None,
) -> list[dict[str, Any]]:
    """The card of a sepsis patient (:meth:`Ward.sepsis_summary`, the episode's onset event,
    the model's alarm line, the stay page's URL if it has one a browser reaches), from
    ``service``: one while in an alarm episode, else none; its id :func:`card_uuid` of
    ``log_id`` and ``old_ids_up_to``."""
    last = summary.get("last_hour")
    if not summary.get("in_alarm") or onset is None or last is None:
        return []
    prob = last.get("probability")
    said = "" if prob is None else f"; estimated probability of {OUTCOME} {probability_text(prob)}"
    score, line = risk_and_line(float(last["risk"]), threshold)
    summary_line = (f"Sepsis alarm: risk score {score} (alarm line {line}) at ICU hour "
                    f"{last['hour']}{said}")[:139]  # fmt: skip
    drivers = "; ".join(d.get("text", "") for d in onset.get("drivers") or []) or "not known"
    repeated = onset.get("kind") == REPEATED_SEPSIS_KIND
    indicator = ("info" if repeated else "critical"
                 if onset.get("escalated") and not onset.get("acknowledged") else "warning")  # fmt: skip
    detail = "\n".join([
        f"The alarm episode began at ICU hour {onset.get('hour')} "
        f"(risk score {_score(onset.get('risk'), threshold)}; event {onset['seq']} at "
        f"{onset.get('received_at')}).",
        "",
        f"What raised the risk most then: {drivers}.",
        "",
        ack_line(onset),
        *([""] + ["A repeat within the lockout after an acknowledged alarm: it paged no one."]
          if repeated else []),
        "",
        "A model's risk, not a diagnosis: assess the patient.",
    ])  # fmt: skip
    return [{
        "uuid": card_uuid(onset, log_id, old_ids_up_to), "summary": summary_line, "indicator": indicator,
        "detail": detail, "source": _source(service),
        "overrideReasons": OVERRIDE_REASONS,
        **links("The stay's risk, hour by hour", page),
    }]  # fmt: skip


def _score(risk: Any, threshold: float) -> str:
    """A logged risk score as the card's summary prints scores (``?`` where not logged)."""
    if not isinstance(risk, int | float):
        return "?"
    return f"{risk:.{risk_decimals([(float(risk), threshold)])}f}"


def ecg_cards(
    summary: Mapping[str, Any],
    page: str | None = None,
    live: Collection[int] = (),
    service: str = "vitalgru-ecg",
    *,
    log_id: str,
    old_ids_up_to: int | None = None,
    discharge: bool = False,
) -> list[dict[str, Any]]:
    """The cards of an ECG patient's alarms from ``service``:
    :func:`pipelines.cds_ecg_cards.ecg_alarm_cards` (a card for each of the newest alarms no
    one has acknowledged, saying whether it goes on or when it ended; a technical one only
    while in ``live``; ``discharge``: for the ``encounter-discharge`` hook)."""
    return ecg_alarm_cards(summary, page, live, _source(service), log_id=log_id,
                           old_ids_up_to=old_ids_up_to, discharge=discharge)  # fmt: skip


def cds_router(
    ward: Any,
    clients: CdsClients,
    patient_system: str | None = None,
    public_url: str | None = None,
    limit: RateLimit | None = None,
    stats: CdsStats | None = None,
) -> APIRouter:
    """The CDS Hooks routes of the gateway: ``GET /cds-services`` (discovery), ``POST
    /cds-services/{id}`` (a hook call: the cards) and ``POST /cds-services/{id}/feedback``,
    each taken only with a token of one of ``clients``. ``public_url``: the gateway's address
    as the EHR calls it (behind a proxy), for the tokens' ``aud`` and the cards' links to the
    patient's page (given only then: the page needs a browser that reaches the gateway).
    ``stats``: where the calls are counted (:class:`CdsStats`)."""
    if not public_url:
        # the tokens' audience must be an address this gateway was told, not the Host
        # header a caller sends (a token the EHR signed for another gateway is not ours)
        raise ValueError("CDS Hooks needs the gateway's public URL (--public-url): each "
                         "token's audience is checked against it")  # fmt: skip
    base = public_url.rstrip("/")
    stats = CdsStats() if stats is None else stats

    def service_of(request: Request) -> str:
        # a name the URL gives is a label only when it is a service: anonymous calls to
        # made-up ones must not add series to /metrics without end
        sid = request.path_params.get("service_id")
        return "discovery" if sid is None else sid if sid in SERVICES else "unknown"

    def caller(request: Request, authorization: str | None = Header(default=None)) -> CdsClient:
        request.state.caller = "cds (refused)"  # the access log's name for a refused call
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            stats.call(service_of(request), "refused")
            unknown_caller(limit, request)
            raise HTTPException(401, "a CDS Hooks call needs the EHR's signed token "
                                "(Authorization: Bearer <JWT>)",
                                headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
        url = f"{base}{request.url.path}"
        audiences = [url, url.removesuffix("/feedback")]
        try:
            client = clients.verify(given.strip(), audiences)
        except CdsAuthError as e:
            stats.call(service_of(request), "refused")
            unknown_caller(limit, request)  # (429 past the limit: not logged either)
            # the reason in full only in the log: it names trusted issuers, the clients'
            # names, their key URLs and network errors, to anyone who sends a token
            logger.warning("CDS call to %s refused: %s", request.url.path, e)
            raise HTTPException(401, f"invalid token ({e.category})",
                                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
                                ) from None  # fmt: skip
        request.state.caller = f"cds {client.name}"
        request.state.cds_client = client
        rate_limited(limit, f"cds {client.name}")
        return client

    router = APIRouter(dependencies=[Depends(caller)])
    monitors = {m for m, on in (("sepsis", ward.sepsis), ("ecg", ward.ecg)) if on is not None}

    def service(service_id: str) -> tuple[str, str]:
        """The monitor and the hook of a service this gateway offers (404 otherwise)."""
        if service_id not in SERVICES or SERVICES[service_id][0] not in monitors:
            raise HTTPException(404, f"no CDS service {service_id!r} here "
                                "(GET /cds-services lists them)")  # fmt: skip
        return SERVICES[service_id][0], SERVICES[service_id][1]

    @router.get("/cds-services")
    def cds_discovery() -> dict[str, Any]:
        """The CDS Hooks services of this gateway (one per monitor it runs)."""
        return discovery(monitors)

    async def body_of(request: Request, counted_as: str) -> dict[str, Any]:
        """The call's JSON object, read after its token was taken (a caller without one
        learns nothing from the answer; a broken body of a trusted EHR is counted)."""
        try:
            body = await request.json()
        except (ValueError, RecursionError):  # not JSON, or nested past Python's stack
            body = None
        if not isinstance(body, dict):
            stats.call(counted_as, "invalid")
            raise HTTPException(422, "a CDS Hooks call's body is a JSON object")
        return body

    @router.post("/cds-services/{service_id}")
    async def cds_call(service_id: str, request: Request) -> dict[str, Any]:
        """A hook call (``patient-view``, or ``encounter-discharge`` for the discharge
        services): the patient's cards (none without an alarm)."""
        monitor, hook = service(service_id)
        body = await body_of(request, service_id)
        return await run_in_threadpool(answer, service_id, monitor, hook, body, request)

    def answer(
        service_id: str, monitor: str, hook: str, body: dict[str, Any], request: Request
    ) -> dict[str, Any]:
        try:
            if body.get("hook") != hook:
                raise ValueError(f"{service_id} answers the {hook} hook, not "
                                 f"{body.get('hook')!r}")  # fmt: skip
            pid = patient_of(body, patient_system)
        except PrefetchMissing as e:
            # not "no card": the EHR shows that as no alarm, while one may be going on
            stats.call(service_id, "no_prefetch")
            raise HTTPException(412, str(e)) from None
        except ValueError as e:
            stats.call(service_id, "invalid")
            raise HTTPException(422, str(e)) from None
        if pid is None:  # no record number for the EHR's patient: no guidance
            logger.info("CDS call to %s: no prefetched Patient/%s with an identifier of %s: "
                        "no card", service_id, body["context"]["patientId"], patient_system)  # fmt: skip
            stats.call(service_id, "none")
            return {"cards": []}
        request.state.audit_patient = pid
        path = f"/vitals/{quote(pid, safe='')}/page" if monitor == "sepsis" else (
            f"/ecg/{quote(pid, safe='')}/page")  # fmt: skip
        page = f"{base}{path}"
        try:
            if monitor == "sepsis":
                summary = ward.sepsis_summary(pid)
                cards = sepsis_cards(summary, summary.get("alarm_onset"),
                                     ward.sepsis.threshold, page, service_id,
                                     log_id=ward.log_id,
                                     old_ids_up_to=ward.old_ids_up_to)  # fmt: skip
            else:
                cards = ecg_cards(ward.ecg_summary(pid), page, set(ward.alarms_in_progress()),
                                  service_id, log_id=ward.log_id,
                                  old_ids_up_to=ward.old_ids_up_to,
                                  discharge=hook == "encounter-discharge")  # fmt: skip
        except KeyError:  # not on this monitor: no guidance
            cards = []
        if hook == "encounter-discharge" and monitor == "sepsis":  # (ECG: ecg_cards says)
            for card in cards:
                card["detail"] = f"{DISCHARGE_NOTE}\n\n{card['detail']}"
        stats.call(service_id, "card" if cards else "none", len(cards))
        return {"cards": cards}

    @router.post("/cds-services/{service_id}/feedback")
    async def cds_feedback(service_id: str, request: Request) -> dict[str, Any]:
        """The EHR's feedback on cards: each card's alarm acknowledged."""
        service(service_id)
        body = await body_of(request, f"{service_id}/feedback")
        return await run_in_threadpool(take_feedback, service_id, body, request)

    def take_feedback(service_id: str, body: dict[str, Any], request: Request) -> dict[str, Any]:
        events = ward.events(0, 10_000)["events"]
        patients: set[str] = set()
        try:
            got = apply_feedback(ward, events, body, request.state.cds_client.name,
                                 service(service_id)[0], patients, log_id=ward.log_id,
                                 old_ids_up_to=ward.old_ids_up_to)  # fmt: skip
        except ValueError as e:
            stats.call(f"{service_id}/feedback", "invalid")
            raise HTTPException(422, str(e)) from None
        stats.call(f"{service_id}/feedback", "taken")
        stats.fed_back(got)
        request.state.audit_patients = sorted(patients)  # the access log: a row for each
        return got

    return router
