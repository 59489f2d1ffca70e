"""The bedside gateway's HTTP plumbing (:mod:`pipelines.gateway`): request bodies cut off
at a size, the access log written as answers start, and who may make which request (tokens,
roles, patient limits, stream tickets, rate limits).

Each check is a FastAPI dependency or an ASGI middleware the routes of
:func:`pipelines.gateway.create_app` are built with; the ward itself knows nothing of HTTP.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Header, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder

from pipelines.access import RateLimit, StreamTickets, TokenFile, TokenTable
from pipelines.audit import COALESCE_S, AuditLog
from pipelines.ward_requests import Refused, ward_call
from vitalgru.scoring.patient_ids import check_patient_id

__all__ = [
    "TOKENS_ENV", "TOKEN_ENV", "AuditMiddleware", "BodyLimit", "answered", "error_json",
    "event_for", "event_patients", "feed_answer", "http_call", "may_read", "require",
    "token_access",
]  # fmt: skip

logger = logging.getLogger("pipelines.gateway")


class BodyLimit:
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


class AuditMiddleware:
    """ASGI middleware: each request ``audited(method, route path)`` selects, and every 401
    or 403 answer, written to ``log`` (:class:`pipelines.audit.AuditLog`) when its answer
    starts: who (the token's name from ``request.state.caller``; ``open`` without tokens),
    what, which patients (the path's, ``?patient=``, the event's:
    ``request.state.audit_patient``, and those whose data the answer carried:
    ``request.state.audit_patients``, set by :func:`answered`; a row for each, one row
    with none), the status and the client's address.

    An answer that goes on after it started (an event stream) names the patients it sends
    as it sends them: ``request.state.audit_sent(patient_ids)`` writes a row for each, once
    per :data:`~pipelines.audit.COALESCE_S` on that answer."""

    def __init__(self, app: Any, log: AuditLog, audited: Callable[[str, str], bool],
                 open_: bool) -> None:  # fmt: skip
        self.app, self.log, self.audited, self.open = app, log, audited, open_

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status: int | None = None
        named: dict[str, float] = {}  # patient: when this answer's row for them was written
        pending: set[str] = set()  # sent before the answer started (none for a stream)

        def sent(patient_ids: Iterable[Any]) -> None:
            """Rows for the patients whose data this answer sends now (from a thread)."""
            now = time.monotonic()
            new = sorted({str(p) for p in patient_ids if p is not None
                          and now - named.get(str(p), -math.inf) >= COALESCE_S})  # fmt: skip
            if not new:
                return
            named.update(dict.fromkeys(new, now))
            if status is None:
                pending.update(new)
            else:
                self._write(scope, status, new)

        scope.setdefault("state", {})["audit_sent"] = sent

        async def watched(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start" and status is None:
                status = int(message["status"])
                # a SQLite write (and its wait on a locked file) off the event loop: the
                # other requests, streams and feeds go on meanwhile
                named.update(await run_in_threadpool(self._write, scope, status, sorted(pending)))
            await send(message)

        await self.app(scope, receive, watched)

    def _write(self, scope: dict, status: int, also: list[str]) -> dict[str, float]:
        """The request's rows (the patients it names, and ``also``); returns the patients
        named, with the time."""
        route = scope.get("route")
        path = getattr(route, "path", None)
        if path is None or path in ("/health", "/metrics"):
            return {}
        if not (status in (401, 403) or self.audited(scope["method"], path)):
            return {}
        state = scope.get("state") or {}
        params = scope.get("path_params") or {}
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        patient = params.get("patient_id") or query.get("patient") or state.get("audit_patient")
        caller = state.get("caller") or ("open" if self.open else "(no valid token)")
        client = (scope.get("client") or (None,))[0]
        # an answer about several patients (the ward, the event log, CDS feedback on their
        # cards): a row for each; one row naming none when it named none
        names = {str(p) for p in [patient, *(state.get("audit_patients") or ()), *also]
                 if p is not None}  # fmt: skip
        self.log.record_many(caller, f"{scope['method']} {path}", sorted(names) or [None],
                             status, client)  # fmt: skip
        return dict.fromkeys(names, time.monotonic())


def _float_text(x: float) -> float | str:
    return x if math.isfinite(x) else repr(x)


def _finite(value: Any) -> Any:
    """``value`` with every float that is not finite as its text."""
    if isinstance(value, float):
        return _float_text(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def error_json(errors: Any) -> Any:
    """A request's validation errors as JSON can hold them: a NaN or an infinity the body
    held is named as text (FastAPI's own answer echoed it back: a 500)."""
    return _finite(jsonable_encoder(errors, custom_encoder={float: _float_text}))


def http_call(fn: Callable[..., Any], *args: Any) -> Any:
    """Run a ward method (or anything raising :class:`~pipelines.ward_requests.Refused`),
    turning its errors into HTTP answers (:func:`~pipelines.ward_requests.ward_call`)."""
    try:
        return ward_call(fn, *args)
    except Refused as e:
        raise HTTPException(e.status, e.detail) from None


def may_read(request: Request) -> bool:
    """Whether the request's caller may read patient data: a token whose role reads, or
    anyone on a gateway without tokens."""
    cred = request.state.credential
    return cred is None or cred.may("read")  # None: no tokens here


def feed_answer(request: Request, answer: dict[str, Any], *keys: str) -> dict[str, Any]:
    """What a feed's request (a merge, a discharge) is answered: ``answer`` whole for a
    caller that may also read patient data (:func:`may_read`), else only its ``keys``,
    what the request changed. A ``feed`` token reads nothing (403 on ``GET
    /vitals/{p}``): answered the patient's summary, it read any patient's risk, alarm and
    demographics through a request that changed nothing."""
    return answer if may_read(request) else {k: answer[k] for k in keys if k in answer}


#: Environment variable ``vitalgru serve`` reads the shared access token from.
TOKEN_ENV = "VITALGRU_GATEWAY_TOKEN"
#: Environment variable naming a token file (:mod:`pipelines.access`), as ``--tokens``.
TOKENS_ENV = "VITALGRU_GATEWAY_TOKENS"

#: What each kind of request is called in a refusal.
_KIND_TEXT = {"feed": "send patient data", "read": "read patient data",
              "ack": "acknowledge events", "audit": "read the access log"}  # fmt: skip


def token_access(
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


def require(
    access: Callable[[], TokenTable] | None,
    kind: str,
    tickets: StreamTickets | None = None,
    limit: RateLimit | None = None,
    on_ward: Callable[[str], bool] | None = None,
) -> Callable[..., None]:
    """A dependency that lets a request of ``kind`` (feed, read, ack) through only with
    ``Authorization: Bearer <token>`` of a role that may make it (401 without a known
    token or with an expired one, 403 for a role that may not, or for a patient the token
    is not for), and puts the token's name in ``request.state.caller`` and its credential
    in ``request.state.credential``; everything, when ``access`` is None. A token limited
    to some patients may only make requests about one of them (the routes of one event,
    ``/events/{seq}/...``, check the event's patient themselves: :func:`event_for`).
    On the event stream, ``?ticket=`` from ``tickets`` stands for the token it was issued
    to (:class:`~pipelines.access.StreamTickets`), while that token is in force. With
    ``limit``, a caller over its rate is answered 429 with ``Retry-After``: a token by its
    name, requests without a valid token by the client's address (:func:`unknown_caller`). A patient's
    path whose id cannot name a patient is answered 422 with the reason, once the caller
    is let through (:func:`~vitalgru.scoring.patient_ids.check_patient_id`), unless
    ``on_ward`` says the ward holds it already (taken up from a state file kept before ids were checked: it
    can still be read and discharged)."""

    def check(request: Request, authorization: str | None = Header(default=None)) -> None:
        request.state.caller = request.state.credential = None
        request.state.still_allowed = lambda: True
        if access is None:
            rate_limited(limit, request.client.host if request.client else "unknown")
            return _path_patient(request, on_ward)
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
            # the token as it is now (an edit since the ticket was issued counts: its
            # role, expiry and patients were the ticket's snapshot before)
            cred = None if held is None else _current(access(), held.sha256)
            if cred is None:
                unknown_caller(limit, request)
                raise HTTPException(401, "the stream ticket is unknown, used or expired "
                                    "(ask for another: POST /events/stream/ticket)")  # fmt: skip
        if cred is None:
            unknown_caller(limit, request)
            raise HTTPException(401, "a bearer token is required",
                                headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
        request.state.caller = cred.name  # for the access log, refused or not
        rate_limited(limit, f"token {cred.name}")
        if cred.expired():
            raise HTTPException(401, f"token {cred.name!r} expired at {cred.expires}",
                                headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
        if not cred.may(kind):
            raise HTTPException(
                403, f"token {cred.name!r} ({cred.role}) may not {_KIND_TEXT[kind]}"
            )
        _path_patient(request, on_ward)
        pid = None
        if cred.patients is not None and "seq" not in request.path_params:
            pid = request.path_params.get("patient_id")
            route = getattr(request.scope.get("route"), "path", request.url.path)
            if pid is None and route in PATIENT_QUERY_ROUTES:
                # only where the answer is filtered by it: elsewhere ?patient= let a
                # limited token read the whole ward (or send HL7 for any patient)
                pid = request.query_params.get("patient")
            if pid is None:
                raise HTTPException(
                    403, f"token {cred.name!r} is for patients {', '.join(cred.patients)} "
                    "only: ask about one of them (a patient's path, or ?patient=)",
                )  # fmt: skip
            if not cred.covers(pid):
                raise HTTPException(403, f"token {cred.name!r} is not for patient {pid!r}")
        request.state.credential = cred

        def still_allowed(sha: str = cred.sha256, wanted: str | None = pid) -> bool:
            """Whether the token still may (a stream held open checks: a token revoked,
            expired or narrowed since it opened ends it)."""
            now = _current(access(), sha)
            return (now is not None and not now.expired() and now.may(kind)
                    and (now.patients is None or (wanted is not None and now.covers(wanted))))  # fmt: skip

        request.state.still_allowed = still_allowed

    return check


def _path_patient(request: Request, on_ward: Callable[[str], bool] | None = None) -> None:
    """422 when the path's patient id cannot name a patient (a NUL, a control character,
    a blank, thousands of characters) and is not one the ward holds already (``on_ward``):
    it was looked up, or admitted, as it came."""
    pid = request.path_params.get("patient_id")
    if pid is not None and not (on_ward is not None and on_ward(pid)):
        http_call(check_patient_id, pid)


def _current(table: Any, sha256: str) -> Any:
    """The credential of the token with that hash as the token file says now, or None."""
    return next((c for c in table.credentials if c.sha256 == sha256), None)


#: The routes whose answer ``?patient=`` filters: a token limited to patients may use
#: them with one of its own.
PATIENT_QUERY_ROUTES = frozenset({"/events", "/events/stream", "/events/stream/ticket", "/audit"})


def rate_limited(limit: RateLimit | None, caller: str) -> None:
    """429 with ``Retry-After`` when ``caller`` is over ``limit`` (nothing without one)."""
    if limit is None:
        return
    wait = limit.take(caller)
    if wait > 0:
        raise HTTPException(429, f"over {limit.rate:g} requests per second; try again in "
                            f"{wait:.1f} s", headers={"Retry-After": str(max(1, round(wait)))})  # fmt: skip


def unknown_caller(limit: RateLimit | None, request: Request) -> None:
    """429 when the client's address is over ``limit`` with requests whose token is not
    taken (none, unknown, revoked): they were never limited, as the 401 came first, so a
    client guessing tokens or retrying a revoked one in a loop went on at full speed (and
    wrote an access-log row each time)."""
    rate_limited(limit, f"no valid token, {request.client.host if request.client else 'unknown'}")


def event_for(request: Request, patient_id: Any) -> None:
    """403 when the request's token is limited to patients and ``patient_id`` (the patient
    of the event the request is about) is not one of them; the patient is named in the
    access log either way."""
    request.state.audit_patient = None if patient_id is None else str(patient_id)
    cred = request.state.credential
    if cred is not None and cred.patients is not None and patient_id is not None:
        if not cred.covers(str(patient_id)):
            raise HTTPException(403, f"token {cred.name!r} is not for patient {patient_id!r}")


def answered(request: Request, patient_ids: Iterable[Any]) -> None:
    """Name the patients whose data the answer carries (their risk, alarms, values,
    demographics, strips, or only their ids: the ward page, the event log, FHIR risk) in
    the access log: a row for each (:class:`AuditMiddleware`), so that a question about one
    patient finds a read of the whole ward too."""
    request.state.audit_patients = sorted({str(p) for p in patient_ids if p is not None})


def event_patients(events: Iterable[Mapping[str, Any]]) -> set[str]:
    """The patients ``events`` (the ward's event log) name: each event's, and the record
    merged into another (``merged_from``)."""
    return {str(p) for e in events for p in (e.get("patient_id"), e.get("merged_from"))
            if p is not None}  # fmt: skip


def check_merge_target(request: Request, into: str) -> None:
    """403 unless the caller's token covers ``into``, the record a stay is merged into (a
    token limited to patients must cover both records)."""
    cred = request.state.credential
    if cred is not None and cred.patients is not None and not cred.covers(into):
        raise HTTPException(403, f"token {cred.name!r} is not for patient {into!r}")
