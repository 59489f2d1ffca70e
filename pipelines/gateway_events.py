"""The bedside gateway's event log routes (``/events``, its stream and acknowledgements, the
alarms' ECG strips, ``/fhir/events``), added to the :func:`pipelines.gateway.create_app`
application's routers, whose dependencies check the caller's token and role."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, tzinfo
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from pipelines.access import StreamTickets
from pipelines.gateway_errors import FhirJSONResponse
from pipelines.gateway_http import answered, event_for, event_patients, http_call
from vitalgru.reports.fhir_gateway import events_bundle, strip_observation
from vitalgru.reports.html import shown_at
from vitalgru.reports.strip import strip_svg
from vitalgru.scoring.ward import Ward
from vitalgru.scoring.ward_journal_file import event_json

__all__ = ["STREAM_KEEPALIVE_S", "STREAM_POLL_S", "add_event_routes"]

#: How often an event stream looks for new events (s): a fifth of a tick, so an alarm
#: reaches the stream's reader within about 0.2 s of being logged.
STREAM_POLL_S = 0.2
#: Seconds of silence after which an event stream sends a comment line, so that a proxy
#: does not close a connection that is only waiting for the next alarm.
STREAM_KEEPALIVE_S = 15.0

#: Where an event comes from (the ``source`` filter of ``/events``).
Source = Literal["ecg", "sepsis", "ward"]


class Acknowledgement(BaseModel):
    by: str = Field(min_length=1, max_length=100, description="who saw it (name or staff id)")
    note: str = Field("", max_length=500, description="what was done, if anything")


def add_event_routes(
    reads: APIRouter,
    acks: APIRouter,
    ward: Ward,
    tickets: StreamTickets,
    stopping: Callable[[], bool],
    patient_system: str | None,
    zone: tzinfo | None = None,
) -> None:
    """Add the event log's routes to ``reads`` (reading it) and ``acks`` (acknowledging)
    for ``ward``: ``tickets`` open the stream for a browser's EventSource, streams end once
    ``stopping()`` is true, FHIR resources name patients in ``patient_system``, a strip's
    drawing says when it starts in ``zone`` (None: UTC)."""

    @reads.get("/events")
    def events(
        request: Request,
        since: int = Query(0, ge=0, description="the last event number already seen"),
        limit: int = Query(500, ge=1, le=10_000),
        unacknowledged: bool = Query(False, description="only events no one has acknowledged"),
        patient: str | None = Query(None, description="only this patient's events"),
        source: Annotated[Source | None, Query(description="only events of this source")] = None,
    ) -> dict[str, Any]:
        got = ward.events(since, limit, unacknowledged, patient, source)
        answered(request, event_patients(got["events"]))
        return got

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
        request: Request,
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
        if last_event_id is not None:
            # a reconnecting EventSource sends its URL again (with the since= it opened
            # with) and where it got to: the header is the newer position (since=0 before
            # replayed the whole log on every reconnect)
            try:
                since = max(since or 0, int(last_event_id))
            except ValueError:
                raise HTTPException(422, "Last-Event-ID must be an event number") from None
        start = ward.last_seq if since is None else since
        # the access log's rows for the patients whose events go out (none: no access log)
        audit_sent = getattr(request.state, "audit_sent", None)
        allowed = request.state.still_allowed
        return StreamingResponse(
            _sse(ward, start, limit, stopping, patient, source, allowed, audit_sent),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @acks.post("/events/{seq}/ack")
    def acknowledge(seq: int, body: Acknowledgement, request: Request) -> dict[str, Any]:
        # the event's patient: checked against a limited token, and named in the access log
        # (on an open gateway too, where it was left out)
        found = ward.events(max(seq - 1, 0), 1)["events"]
        if found and found[0]["seq"] == seq:
            event_for(request, found[0].get("patient_id"))
        return http_call(ward.acknowledge, seq, body.by, body.note, request.state.caller)

    @reads.get("/events/{seq}/strip")
    def event_strip(seq: int, request: Request) -> dict[str, Any]:
        """The ECG strip of an arrhythmia alarm: the samples (mV, the feed's rate) from
        5 s before its onset to 5 s after it was raised (at most 25 s), and the beats
        labelled in it."""
        strip = http_call(ward.strip, seq)
        event_for(request, strip["patient_id"])
        return strip

    @reads.get("/fhir/strips/{seq}", response_class=FhirJSONResponse)
    def fhir_strip(seq: int, request: Request) -> dict[str, Any]:
        """An ECG alarm's strip as a FHIR ``Observation`` with ``valueSampledData``."""
        strip = http_call(ward.strip, seq)
        event_for(request, strip["patient_id"])
        return strip_observation(strip, log_id=ward.log_id, old_ids_up_to=ward.old_ids_up_to,
                                 patient_system=patient_system)  # fmt: skip

    @reads.get("/events/{seq}/strip.svg")
    def event_strip_svg(seq: int, request: Request) -> Response:
        """The strip drawn on ECG paper (25 mm/s, 10 mm/mV), beats labelled, onset marked."""
        strip = http_call(ward.strip, seq)
        event_for(request, strip["patient_id"])
        title = (f"{strip['patient_id']} · {strip['message']} · strip from "
                 f"{shown_at(strip['start_at'], zone, unit='ms')}")  # fmt: skip
        svg = strip_svg(strip["samples"], strip["fs"], start_s=strip["start_s"],
                        beats=strip["beats"], onset_s=strip["onset_s"], title=title)  # fmt: skip
        return Response(svg, media_type="image/svg+xml")

    @reads.get("/fhir/events", response_class=FhirJSONResponse)
    def fhir_events(
        request: Request,
        since: int = Query(0, ge=0, description="the last event number already seen"),
        limit: int = Query(500, ge=1, le=10_000),
    ) -> dict[str, Any]:
        got = ward.events(since, limit)
        # the patients of the flags (an acknowledgement or a merge gets none)
        answered(request, event_patients(e for e in got["events"] if e.get("source") != "ward"))
        return events_bundle(
            got["events"], log_id=ward.log_id, old_ids_up_to=ward.old_ids_up_to,
            active=ward.alarms_in_progress(),
            ended=ward.alarms_ended(e["seq"] for e in got["events"]),
            patient_system=patient_system,
            generated=datetime.now(UTC),
        )  # fmt: skip


async def _sse(
    ward: Ward,
    since: int,
    limit: int | None,
    stopping: Callable[[], bool],
    patient: str | None = None,
    source: str | None = None,
    allowed: Callable[[], bool] = lambda: True,
    audit_sent: Callable[[set[str]], None] | None = None,
) -> AsyncIterator[str]:
    """Server-Sent Events of the ward's log after event ``since`` (only ``patient``'s and
    ``source``'s when given), until ``limit`` have been sent (None: until the client goes
    or ``stopping()``, or ``allowed()`` turns false: the token that opened it was revoked,
    expired or narrowed). A ``since`` past the log's end (a log begun again: a new state
    file) gets an ``event: reset`` and the log from its start. ``audit_sent`` is told the
    patients of each batch of events before they are sent (the access log's rows: the
    stream's own row was written when it opened, before any patient's event)."""
    sent = 0
    quiet_since = time.monotonic()
    checked = time.monotonic()
    yield "retry: 2000\n\n"  # a client that loses the connection tries again after 2 s
    if since > ward.last_seq:
        yield f"event: reset\ndata: {event_json({'since': since, 'last_seq': ward.last_seq})}\n\n"
        since = 0
    while not stopping():
        if time.monotonic() - checked >= 1.0:  # the token, once a second
            if not allowed():
                yield "event: unauthorized\ndata: {}\n\n"
                return
            checked = time.monotonic()
        if ward.last_seq > since:
            got = ward.events(since, 500, patient_id=patient, source=source)
            if got["dropped"]:
                yield f"event: dropped\ndata: {event_json({'dropped': got['dropped']})}\n\n"
            batch = got["events"] if limit is None else got["events"][: limit - sent]
            if audit_sent is not None and batch:  # a SQLite write: off the event loop
                await run_in_threadpool(audit_sent, event_patients(batch))
            for e in batch:
                yield f"id: {e['seq']}\ndata: {event_json(e)}\n\n"
                sent += 1
            if limit is not None and sent >= limit:
                return
            since = got["last_seq"]
            if got["events"] or got["dropped"]:  # only what this stream sent: a stream of
                quiet_since = time.monotonic()  # one patient on a busy ward is quiet too
            if ward.last_seq > since:
                continue  # more than one batch was waiting
        if time.monotonic() - quiet_since >= STREAM_KEEPALIVE_S:
            yield ": keep-alive\n\n"
            quiet_since = time.monotonic()
        await asyncio.sleep(STREAM_POLL_S)
