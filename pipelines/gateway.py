"""``vitalgru serve``: the bedside gateway, an HTTP service in front of a
:class:`vitalgru.scoring.ward.Ward` (its routes here, the ECG feeds' in
:mod:`pipelines.gateway_ecg`, the event log's in :mod:`pipelines.gateway_events`, the
sepsis hours' and HL7 v2's in :mod:`pipelines.gateway_vitals`, the whole ward's in
:mod:`pipelines.gateway_ward`; its access checks and middlewares in
:mod:`pipelines.gateway_http`; loading the models and serving in :mod:`pipelines.gateway_serve`).

Bedside feeds (or a hospital's integration engine) admit patients, send ECG in small chunks
and one row of vital signs and labs per ICU hour; the gateway queues the ECG, pushes every
patient's queued samples through the arrhythmia monitor once per tick (one batched network
call for the ward), scores each hour for sepsis when it arrives, and keeps a numbered log
of alarms for the integration engine to poll. JSON in and out; FastAPI serves its OpenAPI
description at ``/openapi.json``.

========================================  ==================================================
``GET /health``                           models loaded (and any fall-back), patients, ticks,
                                          events
``POST /ecg/{patient}/admit``             ``{"fs": 250}``: start an ECG feed
``POST /ecg/{patient}``                   ``{"samples": [mV, ...]}`` (null: a gap): queue
``GET /ecg/{patient}``                    beats by class, heart rate, recent beats, alarms
``DELETE /ecg/{patient}``                 end the feed; the final summary
``POST /ecg/{patient}/merge?into=ID``     the stream goes on under the patient's own record
``POST /vitals/{patient}/admit``          start hourly sepsis scoring (optional body: the
                                          demographics, ``{"Age": 71, "Gender": 1}``)
``POST /vitals/{patient}``                one hour (``ICULOS`` and values): its risk
``POST /vitals/{patient}/fhir?iculos=N``  the hour as FHIR Observations (LOINC, UCUM); without
                                          ``iculos``, a part of the hour their times fall in,
                                          scored when it closes
``POST /vitals/{patient}/hl7?iculos=N``   the same as an HL7 v2 ``ORU^R01`` message
``POST /vitals/{patient}/close``          score the hours being assembled now
``POST /vitals/{patient}/static``         correct the demographics (for the hours to come)
``POST /vitals/{patient}/merge?into=ID``  the stay goes on under the patient's own record
``POST /hl7``                             any HL7 v2 message (``ADT`` admits, discharges,
                                          updates and merges, ``ORU`` results for its
                                          ``PID-3`` patient); the same over MLLP with
                                          ``--mllp-port``
``GET /vitals/{patient}``                 the latest hour's risk, in alarm, episodes
``DELETE /vitals/{patient}``              stop; the last hour and alarm episodes
``GET /events?since=N&limit=M``           alarms and sepsis alarm onsets after event ``N``
                                          (``unacknowledged=true``: those no one has seen)
``POST /events/{seq}/ack``                ``{"by": "RN Diaz", "note": ""}``: a clinician saw it
                                          (unseen for ``--escalate-after-min``: ``escalated``)
``GET /events/stream?since=N``            the log as it grows (Server-Sent Events; resumes
                                          from ``Last-Event-ID``; ``patient=``, ``source=``)
``POST /events/stream/ticket``            a one-use ticket that opens the stream without a
                                          header (``?ticket=``: a browser's EventSource)
``GET /fhir/events?since=N&limit=M``      the same as a FHIR ``Bundle`` of flags
``GET /fhir/risk``                        each sepsis patient's latest hour as a FHIR
                                          ``RiskAssessment``
``GET /ward``                             every patient at a glance, for clinicians (HTML)
``GET /patients``                         the patients on each monitor
``GET /shadow``                           a challenger's output against the champion's
``GET /metrics``                          counts and timings for Prometheus (no identifiers)
``GET /audit?patient=&caller=&since=N``   who read which patient's data, who was refused
                                          (admin tokens; :mod:`pipelines.audit`)
========================================  ==================================================

Errors: 404 for a patient not admitted, 409 for one admitted twice, 422 for input the
monitors refuse (with the reason), 503 for a model the gateway was started without, 401
without a known token when tokens are set, 403 for a token whose role may not.

HL7 v2 (:mod:`pipelines.hl7_inbox`, :mod:`pipelines.hl7_forward`): admissions and results
in over ``POST /hl7`` or MLLP (``--mllp-port``), alarms out to the interface engine as
``ORU^R40`` over MLLP (``--forward-alarms HOST:PORT``). Access log: ``--audit FILE``
(:mod:`pipelines.audit`).

Restarts: ``vitalgru serve --state FILE`` (default ``ward-state.sqlite`` in the working
directory) writes admissions, sepsis hours and the event log to a SQLite file as they
happen; a gateway started on the same file takes its patients up again
(:class:`vitalgru.scoring.ward_journal.WardJournal`).

Shadow models: ``vitalgru serve --shadow-early-warning-model URI`` (and
``--shadow-arrhythmia-model``) feeds a challenger everything the champion is fed, raises no
alarm from it and compares the two (:mod:`vitalgru.scoring.shadow`): what it would have done
on these patients, before anyone promotes it.

Access: with a token (``vitalgru serve`` reads a shared one from ``VITALGRU_GATEWAY_TOKEN``,
named ones with roles from ``--tokens FILE``, :mod:`pipelines.access`) every endpoint but
``/health`` and ``/metrics`` (counts, no identifiers) wants ``Authorization: Bearer
<token>`` of a role that may make the request (401 without, 403 for another role); the
data are patients'.
Without one the gateway is open, and it says so when it listens beyond this machine. TLS
belongs to the reverse proxy or service mesh in front of it.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, tzinfo
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.exposition import choose_encoder

from pipelines.access import RateLimit, StreamTickets, TokenFile, TokenTable
from pipelines.audit import AuditLog
from pipelines.cds_hooks import CdsStats, cds_router
from pipelines.cds_tokens import CdsClients
from pipelines.gateway_ecg import add_ecg_routes
from pipelines.gateway_errors import add_error_handlers
from pipelines.gateway_events import add_event_routes
from pipelines.gateway_health import (
    HealthCollector,
    TickHealth,
    degraded_because,
    forwarder_health,
)
from pipelines.gateway_http import AuditMiddleware, BodyLimit, require, token_access
from pipelines.gateway_metrics import (
    AuditCollector,
    CdsCollector,
    ForwarderCollector,
    IntakeCollector,
    RateLimitCollector,
    TokenFileCollector,
    WardCollector,
)
from pipelines.gateway_origin import RequestOrigin
from pipelines.gateway_vitals import add_vitals_routes
from pipelines.gateway_ward import add_ward_routes
from pipelines.hl7_forward import AlarmForwarder
from pipelines.hl7_inbox import Hl7Inbox
from pipelines.mllp_server import start_mllp
from vitalgru import __version__
from vitalgru.scoring.ward import Ward

logger = logging.getLogger(__name__)

#: Largest request body taken (bytes): 60 s of 1 kHz ECG as JSON is about 1.3 MB. A larger
#: one is refused with 413 as it streams in, before it is parsed or held in memory.
MAX_BODY_BYTES = 8 * 2**20

#: Largest ``GET /audit?since=`` taken: SQLite's largest integer (a larger one was a 500).
MAX_ROW = 2**63 - 1

#: Seconds between ticks: how often queued ECG is pushed through the network. Labels wait
#: for two more beats and the filtering margin anyway (about 4.5 s), so 1 s adds little.
DEFAULT_TICK_S = 1.0


def create_app(
    ward: Ward,
    tick_s: float = DEFAULT_TICK_S,
    models: dict | None = None,
    token: str | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    stopping: Callable[[], bool] = lambda: False,
    tokens: TokenTable | TokenFile | None = None,
    patient_system: str | None = None,
    hl7_timezone: tzinfo | None = None,
    display_timezone: tzinfo | None = None,
    mllp: tuple[str, int] | socket.socket | None = None,
    mllp_allow: list[str] | None = None,
    adt_units: list[str] | None = None,
    audit: AuditLog | None = None,
    forwarder: AlarmForwarder | None = None,
    mllp_tls: ssl.SSLContext | None = None,
    rate_limit: RateLimit | None = None,
    cds_clients: CdsClients | None = None,
    public_url: str | None = None,
    hosts: list[str] | None = None,
    model_fallbacks: dict[str, dict] | None = None,
) -> FastAPI:
    """The gateway's HTTP application around ``ward``; while it runs, a thread ticks the
    ward every ``tick_s`` seconds (0: never; call :meth:`Ward.tick` yourself). With
    ``token`` (a shared token that may do everything) or ``tokens`` (named tokens with
    roles, :mod:`pipelines.access`; a :class:`~pipelines.access.TokenFile` is read again
    when it changes), every endpoint but ``/health`` and ``/metrics`` needs a bearer token
    whose role allows it.
    A request body over ``max_body_bytes`` is refused with 413 while it streams in. Event
    streams end once ``stopping()`` is true (the server is shutting down). FHIR resources
    reference patients by their id in ``patient_system`` (a URI, e.g. the hospital's
    medical record numbers) when given.

    HL7 v2 (:mod:`pipelines.hl7_inbox`): ``POST /hl7`` takes any message an interface
    engine forwards (admissions, transfers, discharges, results); with ``mllp`` (host,
    port; port 0: any free one, in ``app.state.mllp_port``; or a socket bound by the
    caller, as ``vitalgru serve`` binds it to hold the port) the same messages are taken
    over MLLP while the app runs, from the addresses in ``mllp_allow`` (None: any), over
    TLS with ``mllp_tls`` (:func:`pipelines.mllp_server.server_tls`).
    ``hl7_timezone``: the site's zone, for HL7 times sent without a UTC offset.
    ``display_timezone``: the zone of the times on the clinicians' pages (the ward page, the
    ECG and sepsis patient pages and strips), each labelled with it; None: ``hl7_timezone`` when given
    (the site's zone), else UTC. Times in JSON, HL7 v2 and FHIR stay as they are.
    ``adt_units``: the points of care whose admissions and transfers are scored.

    With ``audit`` (:class:`pipelines.audit.AuditLog`), every read of a patient's data,
    acknowledgement, admission and discharge, and every refusal for want of a token or a
    role, is written to it; ``GET /audit`` (admin tokens) reads it. A ``forwarder``
    (:class:`pipelines.hl7_forward.AlarmForwarder`) runs while the app does. With
    ``rate_limit`` (:class:`pipelines.access.RateLimit`), each token (or client address,
    on an open gateway or without a valid token) over its rate is answered 429; ``/health`` and ``/metrics`` are
    not limited. With ``cds_clients`` (:class:`pipelines.cds_hooks.CdsClients`), the EHRs
    they name may call the gateway's CDS Hooks services (``/cds-services``) with their
    signed tokens; ``public_url``: the gateway's address as they call it (behind a proxy).
    Bodies must be JSON or HL7 v2; without tokens, requests from other sites and, given
    ``hosts`` (the listen address), other ``Host`` names are refused (:mod:`pipelines.gateway_origin`).
    ``model_fallbacks``: the monitors serving an earlier champion because theirs could not
    be loaded (``{task: {"wanted", "serving", "error"}}``, :func:`pipelines.gateway_serve.build_ward`),
    said in ``/health`` and ``/metrics``."""
    if not tick_s >= 0:
        raise ValueError(f"tick_s must be >= 0 seconds, got {tick_s!r}")
    access = token_access(token, tokens)
    zone = next((z for z in (display_timezone, hl7_timezone) if z is not None), UTC)
    intake = IntakeCollector()  # what the FHIR and HL7 v2 inputs took and left
    ticks = TickHealth()  # the ward's clock: whether its latest tick failed
    inbox = Hl7Inbox(ward, intake, hl7_timezone, adt_units, audit=audit)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()

        def run() -> None:
            while not stop.wait(tick_s):
                try:
                    ward.tick()
                except Exception:  # a bad tick must not stop the ward's clock
                    ticks.failed()  # but /health says so
                    logger.exception("gateway tick failed")
                else:
                    ticks.succeeded()

        clock = threading.Thread(target=run, name="ward-tick", daemon=True)
        if tick_s > 0:
            clock.start()
        if forwarder is not None:
            forwarder.start()
        listener = None
        if mllp is not None:
            if isinstance(mllp, socket.socket):  # bound by the caller: the port is held
                listener = await start_mllp(inbox, allow=mllp_allow, tls=mllp_tls, sock=mllp)
            else:
                listener = await start_mllp(inbox, mllp[0], mllp[1], mllp_allow, tls=mllp_tls)
            app.state.mllp_port = listener.sockets[0].getsockname()[1]
        yield
        if listener is not None:
            listener.close()
        if forwarder is not None:
            forwarder.stop()
        stop.set()
        if clock.is_alive():
            clock.join(timeout=10)

    # FastAPI's own pages (/docs, /redoc, /openapi.json) answer anyone: a gateway that
    # wants tokens does not serve them (the API's layout and version are not for whoever
    # reaches the port); an open one does
    pages = {} if access is None else {"openapi_url": None, "docs_url": None, "redoc_url": None}
    app = FastAPI(
        title="vitalgru bedside gateway",
        version=__version__,
        description="Live ECG beat labels and arrhythmia alarms, hourly sepsis risk.",
        lifespan=lifespan,
        **pages,
    )
    app.add_middleware(BodyLimit, limit=max_body_bytes)

    add_error_handlers(app)  # an OperationOutcome under /fhir/, FastAPI's JSON elsewhere

    audited_routes: set[tuple[str, str]] = set()  # (method, path), filled below
    if audit is not None:
        app.add_middleware(AuditMiddleware, log=audit, open_=access is None,
                           audited=lambda method, path: (method, path) in audited_routes)  # fmt: skip
    app.add_middleware(RequestOrigin, open_=access is None, public_url=public_url, hosts=hosts)

    def on_ward(pid: str) -> bool:  # an id of before ids were checked stays reachable
        return any(pid in ids for ids in ward.patients().values())

    feeds = APIRouter(
        dependencies=[Depends(require(access, "feed", limit=rate_limit, on_ward=on_ward))]
    )
    tickets = StreamTickets()  # the event stream's stand-ins for a token (EventSource)
    reads = APIRouter(dependencies=[Depends(require(access, "read", tickets, rate_limit, on_ward))])
    acks = APIRouter(dependencies=[Depends(require(access, "ack", limit=rate_limit))])
    admin = APIRouter(dependencies=[Depends(require(access, "audit", limit=rate_limit))])

    def degraded() -> list[str]:
        return degraded_because(model_fallbacks, ward, forwarder, audit, ticks)

    @app.get("/health")
    def health() -> dict[str, Any]:
        """``status``: ``ok``, or ``degraded`` while a monitor serves an earlier champion
        (``model_fallbacks``), the state file's or the access log's latest write failed,
        the alarm forwarder is failing, or the latest tick failed, each named in ``degraded_because``
        (:mod:`pipelines.gateway_health`; HTTP 200 all the same: it monitors, and a
        healthcheck that restarted it would meet the same cause); models, patients, ticks, the
        state file; with HL7 interfaces, the MLLP port and the alarm forwarder's state
        (``behind``: events not handled yet; ``failing``: its latest tries got no
        acknowledgement; ``lost``: events gone from the log before it handled them;
        ``unmatched``: escalations and ends not sent, their alarm gone and its kind not
        said). No identifiers: it is open."""
        because = degraded()
        out = {"status": "degraded" if because else "ok", "degraded_because": because,
               "models": models or {},
               "model_fallbacks": model_fallbacks or {}, "tick_s": tick_s,
               "tick_errors": ticks.errors,
               "token_required": access is not None, **ward.status()}  # fmt: skip
        if mllp is not None:
            out["mllp"] = {"port": getattr(app.state, "mllp_port", None),
                           "tls": mllp_tls is not None}  # fmt: skip
        if audit is not None:  # rows lost: reads answered that the access log lacks
            out["audit"] = {"write_errors": audit.errors}
        if forwarder is not None:
            out["alarm_forwarder"] = forwarder_health(forwarder)
        return out

    add_ecg_routes(feeds, reads, ward, models, zone)

    add_vitals_routes(
        feeds,
        reads,
        ward,
        intake,
        inbox,
        open_=access is None,
        hl7_timezone=hl7_timezone,
        models=models or {},
        patient_system=patient_system,
        zone=zone,
    )

    add_event_routes(reads, acks, ward, tickets, stopping, patient_system, zone)

    add_ward_routes(reads, ward, models, zone, patient_system)

    registry = CollectorRegistry()
    registry.register(WardCollector(ward, models or {}, model_fallbacks or {}))
    registry.register(HealthCollector(degraded))
    registry.register(intake)
    if audit is not None:
        registry.register(AuditCollector(audit))
    if isinstance(tokens, TokenFile):
        registry.register(TokenFileCollector(tokens))
    if forwarder is not None:
        registry.register(ForwarderCollector(forwarder))
    if rate_limit is not None:
        registry.register(RateLimitCollector(rate_limit))
    cds_stats = CdsStats()
    if cds_clients is not None:
        registry.register(CdsCollector(cds_stats, cds_clients))
    ProcessCollector(registry=registry)

    @app.get("/metrics")
    def metrics(accept: str | None = Header(None)) -> Response:
        encode, content_type = choose_encoder(accept or "")  # what the scraper asks for
        return Response(encode(registry), media_type=content_type)

    @admin.get("/audit")
    def audit_rows(
        patient: str | None = Query(None, description="one patient's rows"),
        caller: str | None = Query(None, description="one token's rows"),
        since: int = Query(0, ge=0, le=MAX_ROW, description="the last row number already seen"),
        limit: int = Query(1000, ge=1, le=10_000),
        refused: bool = Query(False, description="only the 401 and 403 answers"),
    ) -> dict[str, Any]:
        """The access log: who read which patient's data, acknowledged, admitted or
        discharged, and who was refused (:mod:`pipelines.audit`); admin tokens only."""
        if audit is None:
            raise HTTPException(503, "this gateway keeps no access log (vitalgru serve --audit)")
        return {"rows": audit.rows(patient, caller, since, limit, refused)}

    audited_routes.update(("GET", r.path) for r in reads.routes)
    audited_routes.update((m, r.path) for r in acks.routes for m in r.methods)
    audited_routes.update((m, r.path) for r in feeds.routes for m in r.methods
                          if r.path.endswith(("/admit", "/close", "/static", "/merge"))
                          or m == "DELETE")  # fmt: skip
    audited_routes.add(("GET", "/audit"))
    for router in (feeds, reads, acks, admin):
        app.include_router(router)
    if cds_clients is not None:
        app.include_router(
            cds_router(ward, cds_clients, patient_system, public_url, rate_limit, cds_stats)
        )
        audited_routes.update({("POST", "/cds-services/{service_id}"),
                               ("POST", "/cds-services/{service_id}/feedback")})  # fmt: skip
    return app
