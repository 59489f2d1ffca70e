"""``vitalgru serve``: the bedside gateway, an HTTP service in front of a
:class:`vitalgru.scoring.ward.Ward`.

Bedside feeds (or a hospital's integration engine) admit patients, send ECG in small chunks
and one row of vital signs and labs per ICU hour; the gateway queues the ECG, pushes every
patient's queued samples through the arrhythmia monitor once per tick (one batched network
call for the ward), scores each hour for sepsis when it arrives, and keeps a numbered log
of alarms for the integration engine to poll. JSON in and out; FastAPI serves its OpenAPI
description at ``/openapi.json``.

========================================  ==================================================
``GET /health``                           models loaded, patients, ticks, events
``POST /ecg/{patient}/admit``             ``{"fs": 250}``: start an ECG feed
``POST /ecg/{patient}``                   ``{"samples": [mV, ...]}`` (null: a gap): queue
``GET /ecg/{patient}``                    beats by class, heart rate, recent beats, alarms
``DELETE /ecg/{patient}``                 end the feed; the final summary
``POST /vitals/{patient}/admit``          start hourly sepsis scoring (optional body: the
                                          demographics, ``{"Age": 71, "Gender": 1}``)
``POST /vitals/{patient}``                one hour (``ICULOS`` and values): its risk
``POST /vitals/{patient}/fhir?iculos=N``  the hour as FHIR Observations (LOINC, UCUM); without
                                          ``iculos``, a part of the hour their times fall in,
                                          scored when it closes
``POST /vitals/{patient}/hl7?iculos=N``   the same as an HL7 v2 ``ORU^R01`` message
``POST /vitals/{patient}/close``          score the hours being assembled now
``POST /hl7``                             any HL7 v2 message (``ADT`` admits and discharges,
                                          ``ORU`` results for its ``PID-3`` patient); the
                                          same over MLLP with ``--mllp-port``
``GET /vitals/{patient}``                 the latest hour's risk, in alarm, episodes
``DELETE /vitals/{patient}``              stop; the last hour and alarm episodes
``GET /events?since=N&limit=M``           alarms and sepsis alarm onsets after event ``N``
                                          (``unacknowledged=true``: those no one has seen)
``POST /events/{seq}/ack``                ``{"by": "RN Diaz", "note": ""}``: a clinician saw it
                                          (unseen for ``--escalate-after-min``: ``escalated``)
``GET /events/stream?since=N``            the log as it grows (Server-Sent Events; resumes
                                          from ``Last-Event-ID``; ``patient=``, ``source=``)
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

import asyncio
import ipaddress
import logging
import os
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, tzinfo
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Body, Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.exposition import choose_encoder
from pydantic import BaseModel, Field

from pipelines.access import RateLimit, StreamTickets, TokenFile, TokenTable
from pipelines.audit import AuditLog
from pipelines.gateway_metrics import (
    ForwarderCollector,
    IntakeCollector,
    RateLimitCollector,
    TokenFileCollector,
    WardCollector,
)
from pipelines.hl7_forward import AlarmForwarder, client_tls
from pipelines.hl7_inbox import (
    Hl7Inbox,
    Refused,
    score_observations,
    server_tls,
    start_mllp,
    ward_call,
)
from vitalgru import __version__, tracking
from vitalgru.io.hl7v2 import HL7_MEDIA_TYPE, OruMessage, oru_observations
from vitalgru.io.hl7v2 import ack as hl7_ack
from vitalgru.models.arrhythmia import ArrhythmiaEnsemble, ArrhythmiaGRU
from vitalgru.models.early_warning import GRUDEarlyWarning, SepsisBlend
from vitalgru.reports.early_warning import KEY_MEASURES, early_warning_report_html, stay_summary
from vitalgru.reports.fhir import events_bundle, risk_bundle, strip_observation
from vitalgru.reports.strip import strip_svg
from vitalgru.reports.ward import PAGE_STRIPS, ecg_patient_page_html, ward_page_html
from vitalgru.scoring import ArrhythmiaMonitor, EarlyWarningMonitor
from vitalgru.scoring.ward import ESCALATE_AFTER_S, HOUR_CLOSE_AFTER_S, Ward
from vitalgru.scoring.ward_journal import WardJournal, event_json

logger = logging.getLogger(__name__)

#: Largest request body taken (bytes): 60 s of 1 kHz ECG as JSON is about 1.3 MB. A larger
#: one is refused with 413 as it streams in, before it is parsed or held in memory.
MAX_BODY_BYTES = 8 * 2**20

#: Seconds between ticks: how often queued ECG is pushed through the network. Labels wait
#: for two more beats and the filtering margin anyway (about 4.5 s), so 1 s adds little.
DEFAULT_TICK_S = 1.0

#: Seconds between reloads of the ward page (``GET /ward?refresh=N``; 0: never): a screen
#: on the ward's wall shows a new alarm within this long.
WARD_PAGE_REFRESH_S = 10

#: How often an event stream looks for new events (s): a fifth of a tick, so an alarm
#: reaches the stream's reader within about 0.2 s of being logged.
STREAM_POLL_S = 0.2
#: Seconds of silence after which an event stream sends a comment line, so that a proxy
#: does not close a connection that is only waiting for the next alarm.
STREAM_KEEPALIVE_S = 15.0
#: Seconds ``vitalgru serve`` gives open requests (event streams never end by themselves)
#: to finish when it is stopped.
SHUTDOWN_GRACE_S = 5.0


class EcgAdmission(BaseModel):
    fs: float = Field(gt=0, le=10_000, description="sampling rate of the feed (Hz)")


class Acknowledgement(BaseModel):
    by: str = Field(min_length=1, max_length=100, description="who saw it (name or staff id)")
    note: str = Field("", max_length=500, description="what was done, if anything")


class EcgChunk(BaseModel):
    samples: list[float | None] = Field(
        description="the next samples of the feed's one lead, in mV; null for a gap"
    )


class _BodyLimit:
    """ASGI middleware: a request whose body passes ``limit`` bytes (by its Content-Length,
    or counted as it streams in) is answered 413 and read no further."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(send)
        seen = 0
        refused = answered = False

        async def counted() -> dict:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    refused = True
                    raise _TooLarge
            return message

        async def answer(message: dict) -> None:
            nonlocal answered
            if not refused:
                await send(message)
            elif not answered:  # whatever the app made of the cut-off body, the answer is 413
                answered = True
                await self._refuse(send)

        try:
            await self.app(scope, counted, answer)
        except Exception:
            if not refused:
                raise
            if not answered:
                await self._refuse(send)

    async def _refuse(self, send: Callable) -> None:
        body = f'{{"detail":"request body over {self.limit} bytes"}}'.encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


class _Audit:
    """ASGI middleware: each request ``audited(method, route path)`` selects, and every 401
    or 403 answer, written to ``log`` (:class:`pipelines.audit.AuditLog`) when its answer
    starts: who (the token's name from ``request.state.caller``; ``open`` without tokens),
    what, which patient (the path's, ``?patient=``, or the event's:
    ``request.state.audit_patient``), the status and the client's address."""

    def __init__(self, app: Any, log: AuditLog, audited: Callable[[str, str], bool],
                 open_: bool) -> None:  # fmt: skip
        self.app, self.log, self.audited, self.open = app, log, audited, open_

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        written = False

        async def watched(message: dict) -> None:
            nonlocal written
            if message["type"] == "http.response.start" and not written:
                written = True
                self._write(scope, int(message["status"]))
            await send(message)

        await self.app(scope, receive, watched)

    def _write(self, scope: dict, status: int) -> None:
        route = scope.get("route")
        path = getattr(route, "path", None)
        if path is None or path in ("/health", "/metrics"):
            return
        if not (status in (401, 403) or self.audited(scope["method"], path)):
            return
        state = scope.get("state") or {}
        params = scope.get("path_params") or {}
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        patient = params.get("patient_id") or query.get("patient") or state.get("audit_patient")
        caller = state.get("caller") or ("open" if self.open else "(no valid token)")
        client = (scope.get("client") or (None,))[0]
        self.log.record(caller, f"{scope['method']} {path}", patient, status, client)


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    """Run a ward method (or anything raising :class:`~pipelines.hl7_inbox.Refused`),
    turning its errors into HTTP answers (:func:`~pipelines.hl7_inbox.ward_call`)."""
    try:
        return ward_call(fn, *args)
    except Refused as e:
        raise HTTPException(e.status, e.detail) from None


#: Environment variable ``vitalgru serve`` reads the shared access token from.
TOKEN_ENV = "VITALGRU_GATEWAY_TOKEN"
#: Environment variable naming a token file (:mod:`pipelines.access`), as ``--tokens``.
TOKENS_ENV = "VITALGRU_GATEWAY_TOKENS"

#: Where an event comes from (the ``source`` filter of ``/events``).
Source = Literal["ecg", "sepsis", "ward"]

#: The ``iculos`` parameter of the FHIR and HL7 v2 inputs.
ICULOS_HELP = (
    "the ICU hour these observations belong to (1: the first hour of the stay); without "
    "it, the hour their times fall in, counted from the admission"
)
#: What each kind of request is called in a refusal.
_KIND_TEXT = {"feed": "send patient data", "read": "read patient data",
              "ack": "acknowledge events", "audit": "read the access log"}  # fmt: skip


def _access(
    token: str | None, tokens: TokenTable | TokenFile | None
) -> Callable[[], TokenTable] | None:
    """The tokens the gateway takes, as they are at each request: the shared one (may do
    everything) and a file's (read again when it changes); None: the gateway is open."""
    shared = None if token is None else TokenTable.single(token, name=TOKEN_ENV)
    if tokens is None:
        return None if shared is None else (lambda: shared)
    current = tokens.current if isinstance(tokens, TokenFile) else (lambda: tokens)
    if shared is None:
        return current
    shared.merged(current())  # a file token equal to the shared one: refused at start
    merged: list[tuple[TokenTable, TokenTable]] = []

    def both() -> TokenTable:
        table = current()
        if not merged or merged[0][0] is not table:
            try:
                merged[:] = [(table, shared.merged(table))]
            except ValueError:  # a file read again holds the shared token: the file alone
                logger.error("gateway: the token file holds the shared token; ignored there")
                merged[:] = [(table, shared)]
        return merged[0][1]

    return both


def _require(
    access: Callable[[], TokenTable] | None,
    kind: str,
    tickets: StreamTickets | None = None,
    limit: RateLimit | None = None,
) -> Callable[..., None]:
    """A dependency that lets a request of ``kind`` (feed, read, ack) through only with
    ``Authorization: Bearer <token>`` of a role that may make it (401 without a known
    token or with an expired one, 403 for a role that may not, or for a patient the token
    is not for), and puts the token's name in ``request.state.caller`` and its credential
    in ``request.state.credential``; everything, when ``access`` is None. A token limited
    to some patients may only make requests about one of them (the routes of one event,
    ``/events/{seq}/...``, check the event's patient themselves: :func:`_event_for`).
    On the event stream, ``?ticket=`` from ``tickets`` stands for the token it was issued
    to (:class:`~pipelines.access.StreamTickets`), while that token is in force. With
    ``limit``, a caller over its rate is answered 429 with ``Retry-After``."""

    def check(request: Request, authorization: str | None = Header(default=None)) -> None:
        request.state.caller = request.state.credential = None
        if access is None:
            _limited(limit, request.client.host if request.client else "unknown")
            return
        scheme, _, given = (authorization or "").partition(" ")
        cred = access().who(given.strip()) if scheme.lower() == "bearer" else None
        ticket = request.query_params.get("ticket")
        if (
            cred is None
            and ticket
            and tickets is not None
            and not authorization
            and (request.url.path == "/events/stream")
        ):
            held = tickets.redeem(ticket)
            table = access()
            if held is None or not any(c.sha256 == held.sha256 for c in table.credentials):
                raise HTTPException(401, "the stream ticket is unknown, used or expired "
                                    "(ask for another: POST /events/stream/ticket)")  # fmt: skip
            cred = held
        if cred is None:
            raise HTTPException(401, "a bearer token is required",
                                headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
        request.state.caller = cred.name  # for the access log, refused or not
        _limited(limit, f"token {cred.name}")
        if cred.expired():
            raise HTTPException(401, f"token {cred.name!r} expired at {cred.expires}",
                                headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
        if not cred.may(kind):
            raise HTTPException(
                403, f"token {cred.name!r} ({cred.role}) may not {_KIND_TEXT[kind]}"
            )
        if cred.patients is not None and "seq" not in request.path_params:
            pid = request.path_params.get("patient_id") or request.query_params.get("patient")
            if pid is None:
                raise HTTPException(
                    403, f"token {cred.name!r} is for patients {', '.join(cred.patients)} "
                    "only: ask about one of them (a patient's path, or ?patient=)",
                )  # fmt: skip
            if not cred.covers(pid):
                raise HTTPException(403, f"token {cred.name!r} is not for patient {pid!r}")
        request.state.credential = cred

    return check


def _limited(limit: RateLimit | None, caller: str) -> None:
    if limit is None:
        return
    wait = limit.take(caller)
    if wait > 0:
        raise HTTPException(429, f"over {limit.rate:g} requests per second; try again in "
                            f"{wait:.1f} s", headers={"Retry-After": str(max(1, round(wait)))})  # fmt: skip


def _event_for(request: Request, patient_id: Any) -> None:
    """403 when the request's token is limited to patients and ``patient_id`` (the patient
    of the event the request is about) is not one of them; the patient is named in the
    access log either way."""
    request.state.audit_patient = None if patient_id is None else str(patient_id)
    cred = request.state.credential
    if cred is not None and cred.patients is not None and patient_id is not None:
        if not cred.covers(str(patient_id)):
            raise HTTPException(403, f"token {cred.name!r} is not for patient {patient_id!r}")


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
    mllp: tuple[str, int] | None = None,
    mllp_allow: list[str] | None = None,
    adt_units: list[str] | None = None,
    audit: AuditLog | None = None,
    forwarder: AlarmForwarder | None = None,
    mllp_tls: ssl.SSLContext | None = None,
    rate_limit: RateLimit | None = None,
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
    port; port 0: any free one, in ``app.state.mllp_port``) the same messages are taken
    over MLLP while the app runs, from the addresses in ``mllp_allow`` (None: any), over
    TLS with ``mllp_tls`` (:func:`pipelines.hl7_inbox.server_tls`).
    ``hl7_timezone``: the site's zone, for HL7 times sent without a UTC offset.
    ``adt_units``: the points of care whose admissions and transfers are scored.

    With ``audit`` (:class:`pipelines.audit.AuditLog`), every read of a patient's data,
    acknowledgement, admission and discharge, and every refusal for want of a token or a
    role, is written to it; ``GET /audit`` (admin tokens) reads it. A ``forwarder``
    (:class:`pipelines.hl7_forward.AlarmForwarder`) runs while the app does. With
    ``rate_limit`` (:class:`pipelines.access.RateLimit`), each token (or client address,
    on an open gateway) over its rate is answered 429; ``/health`` and ``/metrics`` are
    not limited."""
    if not tick_s >= 0:
        raise ValueError(f"tick_s must be >= 0 seconds, got {tick_s!r}")
    access = _access(token, tokens)
    intake = IntakeCollector()  # what the FHIR and HL7 v2 inputs took and left
    inbox = Hl7Inbox(ward, intake, hl7_timezone, adt_units, audit=audit)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()

        def run() -> None:
            while not stop.wait(tick_s):
                try:
                    ward.tick()
                except Exception:  # a bad tick must not stop the ward's clock
                    logger.exception("gateway tick failed")

        clock = threading.Thread(target=run, name="ward-tick", daemon=True)
        if tick_s > 0:
            clock.start()
        if forwarder is not None:
            forwarder.start()
        listener = None
        if mllp is not None:
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

    app = FastAPI(
        title="vitalgru bedside gateway",
        version=__version__,
        description="Live ECG beat labels and arrhythmia alarms, hourly sepsis risk.",
        lifespan=lifespan,
    )
    app.add_middleware(_BodyLimit, limit=max_body_bytes)
    audited_routes: set[tuple[str, str]] = set()  # (method, path), filled below
    if audit is not None:
        app.add_middleware(_Audit, log=audit, open_=access is None,
                           audited=lambda method, path: (method, path) in audited_routes)  # fmt: skip
    feeds = APIRouter(dependencies=[Depends(_require(access, "feed", limit=rate_limit))])
    tickets = StreamTickets()  # the event stream's stand-ins for a token (EventSource)
    reads = APIRouter(dependencies=[Depends(_require(access, "read", tickets, rate_limit))])
    acks = APIRouter(dependencies=[Depends(_require(access, "ack", limit=rate_limit))])
    admin = APIRouter(dependencies=[Depends(_require(access, "audit", limit=rate_limit))])

    @app.get("/health")
    def health() -> dict[str, Any]:
        """Models, patients, ticks, the state file; with HL7 interfaces, the MLLP port and
        the alarm forwarder's state (``behind``: events not handled yet; ``failing``: its
        latest tries got no acknowledgement). No identifiers: it is open."""
        out = {"status": "ok", "models": models or {}, "tick_s": tick_s,
               "token_required": access is not None, **ward.status()}  # fmt: skip
        if mllp is not None:
            out["mllp"] = {"port": getattr(app.state, "mllp_port", None),
                           "tls": mllp_tls is not None}  # fmt: skip
        if forwarder is not None:
            out["alarm_forwarder"] = {
                "target": f"{forwarder.host}:{forwarder.port}", "tls": forwarder.tls is not None,
                "sent": forwarder.sent, "refused": forwarder.rejected,
                "failures": forwarder.failures, "behind": forwarder.lag,
                "failing": forwarder.failing,
            }  # fmt: skip
        return out

    @feeds.post("/ecg/{patient_id}/admit", status_code=201)
    def ecg_admit(patient_id: str, body: EcgAdmission) -> dict[str, Any]:
        _call(ward.admit_ecg, patient_id, body.fs)
        return {"patient_id": patient_id, "fs": body.fs}

    @feeds.post("/ecg/{patient_id}", status_code=202)
    def ecg_samples(patient_id: str, body: EcgChunk) -> dict[str, Any]:
        queued = _call(ward.add_ecg, patient_id, body.samples)
        return {"patient_id": patient_id, "queued_samples": queued}

    @reads.get("/ecg/{patient_id}")
    def ecg_summary(patient_id: str) -> dict[str, Any]:
        return _call(ward.ecg_summary, patient_id)

    @reads.get("/ecg/{patient_id}/page", response_class=HTMLResponse)
    def ecg_page(patient_id: str) -> str:
        """The patient's ECG for a clinician: beats by class, heart rate and its trend by
        minute, every alarm kept with a link to its strip, and the newest strips drawn."""
        summary = _call(ward.ecg_summary, patient_id)
        strips = []
        for a in reversed(summary["alarms"]):
            if a.get("strip_s") and len(strips) < PAGE_STRIPS:
                try:
                    strips.append(ward.strip(a["seq"]))
                except KeyError:  # older than the strips kept
                    continue
        return ecg_patient_page_html(summary, strips, ward.ecg_trend(patient_id),
                                     model=(models or {}).get("arrhythmia"))  # fmt: skip

    @feeds.delete("/ecg/{patient_id}")
    def ecg_discharge(patient_id: str) -> dict[str, Any]:
        return _call(ward.discharge_ecg, patient_id)

    @feeds.post("/vitals/{patient_id}/admit", status_code=201)
    def vitals_admit(
        patient_id: str,
        static: Annotated[
            dict[str, float | None] | None,
            Body(description="demographics added to every hour: Age, Gender (1 male), Unit1 "
                 "(medical ICU), Unit2 (surgical ICU), HospAdmTime (hours, <= 0)"),
        ] = None,
        admitted_at: Annotated[datetime | None, Query(
            description="when the ICU stay began, with its UTC offset (default now): the "
            "ICU hours of observations sent with their times count from it")] = None,
    ) -> dict[str, Any]:  # fmt: skip
        _call(ward.admit_sepsis, patient_id, static, admitted_at)
        return {"patient_id": patient_id, "static": ward.sepsis_summary(patient_id)["static"]}

    @feeds.post("/vitals/{patient_id}")
    def vitals_hour(patient_id: str, row: dict[str, float | str | None]) -> dict[str, Any]:
        return _call(ward.add_hour, patient_id, row)

    @feeds.post("/vitals/{patient_id}/fhir")
    def vitals_hour_fhir(
        patient_id: str,
        payload: Annotated[
            dict[str, Any] | list[Any],
            Body(description="a FHIR Bundle of Observations, a list of them, or one"),
        ],
        iculos: int | None = Query(None, ge=1, description=ICULOS_HELP),
    ) -> dict[str, Any]:
        """One hour as FHIR R4 Observations (LOINC-coded, values in UCUM units, converted
        to the model's): scored like ``POST /vitals/{patient}``, with what was used,
        converted and skipped (:mod:`vitalgru.io.fhir_observations`)."""
        try:
            return _score_observations(patient_id, payload, iculos, "fhir")
        except HTTPException:
            intake.count("fhir", "hours", "refused")
            raise

    def _score_observations(
        patient_id: str, payload: Any, iculos: int | None, source: str
    ) -> dict[str, Any]:
        return _call(score_observations, ward, intake, patient_id, payload, iculos, source)

    @feeds.post(
        "/vitals/{patient_id}/hl7",
        openapi_extra={"requestBody": {"content": {HL7_MEDIA_TYPE: {
            "schema": {"type": "string"}}}, "required": True}},
    )  # fmt: skip
    async def vitals_hour_hl7(
        patient_id: str,
        request: Request,
        iculos: int | None = Query(None, ge=1, description=ICULOS_HELP),
    ) -> Any:
        """One hour as an HL7 v2 ``ORU^R01`` message (ER7 text; :mod:`vitalgru.io.hl7v2`):
        each ``OBX`` read as an Observation and scored like ``POST /vitals/{p}/fhir``; a
        message whose ``PID-3`` names other patients only is refused (422). The answer
        carries the HL7 acknowledgement (``hl7.ack``) to hand back to the sender; the
        ``skipped`` indexes count the message's ``OBX`` segments from 0. A sender that
        asks for ``Accept: x-application/hl7-v2+er7`` gets the acknowledgement itself as
        the body: ``AA``, or ``AE``/``AR`` with the reason (and the same HTTP status)."""
        er7 = HL7_MEDIA_TYPE in (request.headers.get("accept") or "")
        msg = OruMessage([], "", "")
        try:
            msg = oru_observations(await request.body(), hl7_timezone)
            if msg.patient_ids and patient_id not in msg.patient_ids:
                raise HTTPException(
                    422, f"the message is about patient {', '.join(msg.patient_ids)} (PID-3), "
                    f"not {patient_id}; nothing was scored",
                )  # fmt: skip
            out = await run_in_threadpool(
                _score_observations, patient_id, msg.observations, iculos, "hl7"
            )
        except (ValueError, HTTPException) as e:
            intake.count("hl7", "hours", "refused")
            status, text = (e.status_code, str(e.detail)) if isinstance(e, HTTPException) else (
                422, str(e))  # fmt: skip
            if er7:  # rejected (not a result we read) or an error (this one not taken)
                code = "AR" if not msg.message_type else "AE"
                return Response(hl7_ack(msg, code, text), status, media_type=HL7_MEDIA_TYPE)
            raise HTTPException(status, text) from None
        acknowledgement = hl7_ack(msg, "AA")
        if er7:
            return Response(acknowledgement, media_type=HL7_MEDIA_TYPE)
        return {**out, "hl7": {"control_id": msg.control_id, "message_type": msg.message_type,
                               "ack": acknowledgement}}  # fmt: skip

    @feeds.post("/vitals/{patient_id}/close")
    def vitals_close(patient_id: str) -> dict[str, Any]:
        """Score the patient's ICU hours being assembled from observations now, without
        waiting until they close (a sender that has sent a whole hour, or a stay being
        loaded after the fact): their risks, in order."""
        return {"patient_id": patient_id, "scored": _call(ward.close_hours, patient_id)}

    @feeds.post(
        "/hl7",
        openapi_extra={"requestBody": {"content": {HL7_MEDIA_TYPE: {
            "schema": {"type": "string"}}}, "required": True}},
    )  # fmt: skip
    async def hl7_message(request: Request) -> Response:
        """Any HL7 v2 message an interface engine forwards (ER7; :mod:`pipelines.hl7_inbox`):
        ``ADT^A01`` admits to sepsis scoring, ``A03``/``A11`` discharge, ``ORU^R01`` adds
        its observations to the ICU hour their times fall in, for its ``PID-3`` patient.
        The body of the answer is the acknowledgement (``AA``, or ``AE``/``AR`` with the
        reason, and the same HTTP status); a resent message (same ``MSH-10``) is not
        taken twice."""
        caller = request.state.caller or ("open" if access is None else None)
        client = request.client.host if request.client else None
        reply = await run_in_threadpool(inbox.handle, await request.body(), "http", caller, client)
        return Response(reply.ack, reply.status, media_type=HL7_MEDIA_TYPE)

    @reads.get("/vitals/{patient_id}")
    def vitals_summary(patient_id: str) -> dict[str, Any]:
        return _call(ward.sepsis_summary, patient_id)

    @reads.get("/vitals/{patient_id}/page", response_class=HTMLResponse)
    def vitals_page(patient_id: str) -> str:
        """The patient's stay so far for a clinician: the risk over the ICU hours, each
        alarm episode with the measurements at its start and what raised the risk, the
        values refused as impossible (the page ``vitalgru replay early-warning`` writes)."""
        st = _call(ward.sepsis_stay, patient_id)
        summary = stay_summary(
            st["patient_id"], st["hours"], st["risks"], st["threshold"],
            {c: v for c, v in st["values"].items() if c in KEY_MEASURES}, st["rejected"],
            probabilities=st["probabilities"], drivers=st["drivers"],
        )  # fmt: skip
        model = (models or {}).get("early-warning")
        return early_warning_report_html(
            [summary], title=f"Sepsis early warning: patient {patient_id} (live)", model=model,
        )  # fmt: skip

    @feeds.delete("/vitals/{patient_id}")
    def vitals_discharge(patient_id: str) -> dict[str, Any]:
        return _call(ward.discharge_sepsis, patient_id)

    @reads.get("/events")
    def events(
        since: int = Query(0, ge=0, description="the last event number already seen"),
        limit: int = Query(500, ge=1, le=10_000),
        unacknowledged: bool = Query(False, description="only events no one has acknowledged"),
        patient: str | None = Query(None, description="only this patient's events"),
        source: Annotated[Source | None, Query(description="only events of this source")] = None,
    ) -> dict[str, Any]:
        return ward.events(since, limit, unacknowledged, patient, source)

    @reads.post("/events/stream/ticket")
    def stream_ticket(request: Request) -> dict[str, Any]:
        """A one-use ticket, good for 60 s, that opens the event stream for this token
        without a header (``GET /events/stream?ticket=...``): what a browser's EventSource,
        which cannot send ``Authorization``, needs; the stream keeps the token's role and
        patient limits. 409 on a gateway that takes no token."""
        if request.state.credential is None:
            raise HTTPException(409, "this gateway takes no token: open the stream as it is")
        ticket = tickets.issue(request.state.credential)
        return {"ticket": ticket, "expires_in_s": tickets.ttl_s,
                "stream": f"/events/stream?ticket={ticket}"}  # fmt: skip

    @reads.get("/events/stream")
    async def event_stream(
        since: int | None = Query(
            None,
            ge=0,
            description="the last event number already seen (default: the newest "
            "logged, so that only events from now on are sent)",
        ),
        limit: int | None = Query(None, ge=1, description="end the stream after this many"),
        patient: str | None = Query(None, description="only this patient's events"),
        source: Annotated[Source | None, Query(description="only events of this source")] = None,
        ticket: str | None = Query(
            None,
            description="a one-use ticket standing for the token "
            "(POST /events/stream/ticket), for an EventSource",
        ),
        last_event_id: str | None = Header(
            None, description="sent by a reconnecting EventSource: go on after that event"
        ),
    ) -> StreamingResponse:
        """The event log as it grows, as Server-Sent Events: each event once, in order, as
        ``id: <seq>`` and ``data: <the event as in /events>``. A client that fell behind
        the log's memory gets an ``event: dropped`` with how many it missed."""
        if since is None and last_event_id is not None:
            try:
                since = max(0, int(last_event_id))
            except ValueError:
                raise HTTPException(422, "Last-Event-ID must be an event number") from None
        start = ward.last_seq if since is None else since
        return StreamingResponse(
            _sse(ward, start, limit, stopping, patient, source),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @acks.post("/events/{seq}/ack")
    def acknowledge(seq: int, body: Acknowledgement, request: Request) -> dict[str, Any]:
        if request.state.credential is not None:
            found = ward.events(max(seq - 1, 0), 1)["events"]
            if found and found[0]["seq"] == seq:
                _event_for(request, found[0].get("patient_id"))
        return _call(ward.acknowledge, seq, body.by, body.note, request.state.caller)

    @reads.get("/events/{seq}/strip")
    def event_strip(seq: int, request: Request) -> dict[str, Any]:
        """The ECG strip of an arrhythmia alarm: the samples (mV, the feed's rate) from
        5 s before its onset to when it was raised (at most 20 s), and the beats labelled
        in it."""
        strip = _call(ward.strip, seq)
        _event_for(request, strip["patient_id"])
        return strip

    @reads.get("/fhir/strips/{seq}")
    def fhir_strip(seq: int, request: Request) -> dict[str, Any]:
        """An ECG alarm's strip as a FHIR ``Observation`` with ``valueSampledData``."""
        strip = _call(ward.strip, seq)
        _event_for(request, strip["patient_id"])
        return strip_observation(strip, patient_system=patient_system)

    @reads.get("/events/{seq}/strip.svg")
    def event_strip_svg(seq: int, request: Request) -> Response:
        """The strip drawn on ECG paper (25 mm/s, 10 mm/mV), beats labelled, onset marked."""
        strip = _call(ward.strip, seq)
        _event_for(request, strip["patient_id"])
        title = (f"{strip['patient_id']} · {strip['message']} · strip from "
                 f"{strip['start_at'].replace('T', ' ')}")  # fmt: skip
        svg = strip_svg(strip["samples"], strip["fs"], start_s=strip["start_s"],
                        beats=strip["beats"], onset_s=strip["onset_s"], title=title)  # fmt: skip
        return Response(svg, media_type="image/svg+xml")

    @reads.get("/ward", response_class=HTMLResponse)
    def ward_page(
        refresh: int = Query(WARD_PAGE_REFRESH_S, ge=0, le=3600,
                             description="seconds between reloads of the page (0: never)"),
    ) -> str:  # fmt: skip
        ecg, sepsis = ward.summaries()
        names = ", ".join(f"{k}: {v}" for k, v in (models or {}).items()) or None
        return ward_page_html(ecg, sepsis, model=names, refresh_s=refresh or None)

    @reads.get("/patients")
    def patients() -> dict[str, list[str]]:
        return ward.patients()

    registry = CollectorRegistry()
    registry.register(WardCollector(ward, models or {}))
    registry.register(intake)
    if isinstance(tokens, TokenFile):
        registry.register(TokenFileCollector(tokens))
    if forwarder is not None:
        registry.register(ForwarderCollector(forwarder))
    if rate_limit is not None:
        registry.register(RateLimitCollector(rate_limit))
    ProcessCollector(registry=registry)

    @app.get("/metrics")
    def metrics(accept: str | None = Header(None)) -> Response:
        encode, content_type = choose_encoder(accept or "")  # what the scraper asks for
        return Response(encode(registry), media_type=content_type)

    @reads.get("/shadow")
    def shadow() -> dict[str, Any]:
        try:
            report = ward.shadow_report()
        except ValueError as e:
            raise HTTPException(404, str(e)) from None
        names = {k: v for k, v in (models or {}).items() if k.startswith("shadow")}
        return {"models": names, **report}

    @reads.get("/fhir/risk")
    def fhir_risk() -> dict[str, Any]:
        """Every sepsis patient's latest hour as a FHIR ``RiskAssessment`` (a Bundle)."""
        if ward.sepsis is None:
            raise HTTPException(503, "this ward was started without an early-warning model")
        _, sepsis = ward.summaries()
        return risk_bundle(
            sepsis, model=(models or {}).get("early-warning", "early-warning model"),
            threshold=ward.sepsis.threshold, patient_system=patient_system,
            generated=datetime.now(UTC),
        )  # fmt: skip

    @reads.get("/fhir/events")
    def fhir_events(
        since: int = Query(0, ge=0, description="the last event number already seen"),
        limit: int = Query(500, ge=1, le=10_000),
    ) -> dict[str, Any]:
        got = ward.events(since, limit)
        return events_bundle(
            got["events"], active=ward.alarms_in_progress(), patient_system=patient_system,
            generated=datetime.now(UTC),
        )  # fmt: skip

    @admin.get("/audit")
    def audit_rows(
        patient: str | None = Query(None, description="one patient's rows"),
        caller: str | None = Query(None, description="one token's rows"),
        since: int = Query(0, ge=0, description="the last row number already seen"),
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
                          if r.path.endswith(("/admit", "/close")) or m == "DELETE")  # fmt: skip
    audited_routes.add(("GET", "/audit"))
    for router in (feeds, reads, acks, admin):
        app.include_router(router)
    return app


async def _sse(
    ward: Ward,
    since: int,
    limit: int | None,
    stopping: Callable[[], bool],
    patient: str | None = None,
    source: str | None = None,
) -> AsyncIterator[str]:
    """Server-Sent Events of the ward's log after event ``since`` (only ``patient``'s and
    ``source``'s when given), until ``limit`` have been sent (None: until the client goes
    or ``stopping()``)."""
    sent = 0
    quiet_since = time.monotonic()
    yield "retry: 2000\n\n"  # a client that loses the connection tries again after 2 s
    while not stopping():
        if ward.last_seq > since:
            got = ward.events(since, 500, patient_id=patient, source=source)
            if got["dropped"]:
                yield f"event: dropped\ndata: {event_json({'dropped': got['dropped']})}\n\n"
            for e in got["events"]:
                yield f"id: {e['seq']}\ndata: {event_json(e)}\n\n"
                sent += 1
                if limit is not None and sent >= limit:
                    return
            since = got["last_seq"]
            quiet_since = time.monotonic()
            if ward.last_seq > since:
                continue  # more than one batch was waiting
        elif time.monotonic() - quiet_since >= STREAM_KEEPALIVE_S:
            yield ": keep-alive\n\n"
            quiet_since = time.monotonic()
        await asyncio.sleep(STREAM_POLL_S)


def _monitor(task: str, uri: str | None, names: dict[str, str]) -> Any:
    """The live monitor of the model at ``uri`` (None: none), its name put in ``names``."""
    if not uri:
        return None
    if task.endswith("arrhythmia"):
        m = tracking.load_model(uri, kinds=(ArrhythmiaGRU, ArrhythmiaEnsemble))
        monitor = ArrhythmiaMonitor(m.module, m.preprocessing)
    else:
        m = tracking.load_model(uri, kinds=(SepsisBlend, GRUDEarlyWarning))
        monitor = EarlyWarningMonitor(m.module, m.preprocessing)
    names[task] = f"{uri} (version {m.version})"
    return monitor


def _champions(models: dict[str, str]) -> dict[str, str]:
    """The models that score patients (a changed shadow changes no stored patient's risk)."""
    return {k: v for k, v in models.items() if not k.startswith("shadow")}


def build_ward(
    arrhythmia_model: str | None,
    early_warning_model: str | None,
    state: str | os.PathLike | None = None,
    shadow_arrhythmia_model: str | None = None,
    shadow_early_warning_model: str | None = None,
    escalate_after_s: float | None = ESCALATE_AFTER_S,
    hour_close_after_s: float = HOUR_CLOSE_AFTER_S,
) -> tuple[Ward, dict]:
    """Load the registered models (None: that monitor is off) and build the ward, taking up
    the patients and events of the ``state`` file when it has some (None: in memory only);
    returns it and ``{task: "URI (version N)"}``. A shadow model is compared with the
    champion of its task (:mod:`vitalgru.scoring.shadow`)."""
    if (shadow_arrhythmia_model and not arrhythmia_model) or (
        shadow_early_warning_model and not early_warning_model
    ):
        raise ValueError("a shadow model needs the champion of its task to be served too")
    journal = None if state is None else WardJournal(state)  # a bad file fails before loading
    names: dict[str, str] = {}
    ward = Ward(
        _monitor("arrhythmia", arrhythmia_model, names),
        _monitor("early-warning", early_warning_model, names),
        journal=journal,
        shadow_ecg=_monitor("shadow arrhythmia", shadow_arrhythmia_model, names),
        shadow_sepsis=_monitor("shadow early-warning", shadow_early_warning_model, names),
        escalate_after_s=escalate_after_s,
        hour_close_after_s=hour_close_after_s,
    )
    if journal is not None:
        kept = journal.load()
        if not kept.empty:
            if kept.models and _champions(kept.models) != _champions(names):
                logger.warning(
                    "gateway: the models changed since %s was written (%s, now %s): the "
                    "sepsis patients' stored hours are scored again by the new model",
                    journal.path, kept.models, names,
                )  # fmt: skip
            took = ward.restore(kept)
            logger.info(
                "gateway: took up %d ECG (%d with their memory) and %d sepsis patient(s) "
                "(%d hours scored again) and %d events from %s", took["ecg"],
                took["ecg_memory"], took["sepsis"], took["hours"], took["events"], journal.path,
            )  # fmt: skip
        journal.set_models(names)
    return ward, names


def serve(
    arrhythmia_model: str | None,
    early_warning_model: str | None,
    host: str = "127.0.0.1",
    port: int = 8000,
    tick_s: float = DEFAULT_TICK_S,
    state: str | os.PathLike | None = None,
    shadow_arrhythmia_model: str | None = None,
    shadow_early_warning_model: str | None = None,
    tokens: str | os.PathLike | None = None,
    escalate_after_s: float | None = ESCALATE_AFTER_S,
    patient_system: str | None = None,
    hl7_timezone: str | None = None,
    mllp_port: int | None = None,
    mllp_host: str = "127.0.0.1",
    mllp_allow: list[str] | None = None,
    adt_units: list[str] | None = None,
    hour_close_after_s: float = HOUR_CLOSE_AFTER_S,
    audit: str | os.PathLike | None = None,
    forward_alarms: str | None = None,
    mllp_tls_cert: str | None = None,
    mllp_tls_key: str | None = None,
    mllp_tls_client_ca: str | None = None,
    forward_alarms_ca: str | None = None,
    rate_limit: float | None = None,
) -> None:
    """Load the models, take up the ``state`` file's patients, and serve the gateway until
    interrupted; with ``mllp_port``, HL7 v2 over MLLP beside HTTP; with ``audit``, every
    access to patient data written to that file (:mod:`pipelines.audit`); with
    ``forward_alarms`` (``HOST:PORT``), every alarm sent there as HL7 v2
    (:mod:`pipelines.hl7_forward`). TLS: the MLLP listener with ``mllp_tls_cert`` and
    ``mllp_tls_key`` (and client certificates from ``mllp_tls_client_ca``); the forwarder
    with ``forward_alarms_ca`` (a CA file, or ``system``), presenting the same
    certificate."""
    import uvicorn

    zone = None
    if hl7_timezone:
        try:
            zone = ZoneInfo(hl7_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{hl7_timezone!r} is not a time zone (e.g. Europe/Berlin)") from None
    if bool(mllp_tls_cert) != bool(mllp_tls_key):
        raise ValueError("--mllp-tls-cert and --mllp-tls-key go together")
    listener_tls = (
        server_tls(mllp_tls_cert, mllp_tls_key, mllp_tls_client_ca) if mllp_tls_cert else None
    )  # a bad certificate fails here, before the models load
    sender_tls = None
    if forward_alarms_ca:
        ca = None if forward_alarms_ca == "system" else forward_alarms_ca
        sender_tls = client_tls(ca, mllp_tls_cert, mllp_tls_key)
    target = None
    if forward_alarms:
        host_, _, port_ = forward_alarms.rpartition(":")
        if not host_ or not port_.isdigit() or not 1 <= int(port_) <= 65535:
            raise ValueError(f"--forward-alarms wants HOST:PORT, got {forward_alarms!r}")
        target = (host_.strip("[]"), int(port_))
    if mllp_allow:
        for a in mllp_allow:
            ipaddress.ip_network(a.strip(), strict=False)  # ValueError: not an address
    if (
        mllp_port is not None
        and mllp_host not in ("127.0.0.1", "localhost", "::1")
        and (not mllp_allow)
    ):
        logger.warning(
            "gateway: MLLP on %s:%d takes messages from anyone who reaches it (MLLP has no "
            "credentials): give --mllp-allow with the interface engine's address",
            mllp_host, mllp_port,
        )  # fmt: skip
    token = os.environ.get(TOKEN_ENV) or None
    tokens = tokens or os.environ.get(TOKENS_ENV) or None
    table = None if tokens is None else TokenFile(tokens)  # before the models load
    access = _access(token, table)
    if table is not None and not table.table.credentials and token is None:
        raise ValueError(f"{tokens} holds no token: no one could use the gateway "
                         "(add one with vitalgru serve-token)")  # fmt: skip
    if access is None and host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning(
            "gateway: listening on %s without a token: anyone who reaches this port can read "
            "and send patient data; set %s or give --tokens", host, TOKEN_ENV,
        )  # fmt: skip
    elif table is not None:
        logger.info("gateway: %d named token(s) from %s, read again when it changes (%s)",
                    len(table.table.credentials), tokens,
                    ", ".join(f"{c.name}: {c.role}" for c in table.table.credentials))  # fmt: skip
    audit_log = None if audit is None else AuditLog(audit)  # a bad file fails before the models
    ward, names = build_ward(
        arrhythmia_model, early_warning_model, state,
        shadow_arrhythmia_model, shadow_early_warning_model, escalate_after_s,
        hour_close_after_s,
    )  # fmt: skip
    forwarder = None if target is None else AlarmForwarder(ward, *target, tls=sender_tls)
    logger.info("gateway: %s; listening on http://%s:%d", names, host, port)
    try:
        config = uvicorn.Config(
            create_app(ward, tick_s, names, token, stopping=lambda: server.should_exit,
                       tokens=table, patient_system=patient_system, hl7_timezone=zone,
                       mllp=None if mllp_port is None else (mllp_host, mllp_port),
                       mllp_allow=mllp_allow or None, adt_units=adt_units or None,
                       audit=audit_log, forwarder=forwarder, mllp_tls=listener_tls,
                       rate_limit=None if rate_limit is None else RateLimit(rate_limit)),
            host=host, port=port, log_level="info", timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
        )  # fmt: skip
        server = uvicorn.Server(config)
        server.run()
    finally:  # the queued ECG is scored and each patient's memory kept for the next start
        ward.close()
