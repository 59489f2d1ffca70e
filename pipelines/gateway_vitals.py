"""The bedside gateway's routes for hourly sepsis scoring (``/vitals/...``) and HL7 v2
messages (``POST /hl7``): admissions, hours sent whole or as FHIR Observations or an
``ORU^R01`` message, demographics, merges, discharges, and the clinician's page of a stay.
Added to :func:`pipelines.gateway.create_app`'s routers, whose token checks they keep.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from pipelines.gateway_http import answered, check_merge_target, feed_answer, http_call, may_read
from pipelines.gateway_metrics import IntakeCollector
from pipelines.hl7_inbox import Hl7Inbox
from pipelines.ward_requests import hl7_error_of, score_observations, skipped_note
from vitalgru.errors import Hl7ReadError
from vitalgru.io.hl7v2 import (
    HL7_MEDIA_TYPE,
    Hl7Message,
    OruMessage,
    message_bytes,
    oru_observations,
    read_message,
)
from vitalgru.io.hl7v2 import ack as hl7_ack
from vitalgru.reports.early_warning import early_warning_report_html, stay_summary
from vitalgru.scoring.ward import Ward
from vitalgru.scoring.ward_sepsis_bed import static_columns

__all__ = ["ICULOS_HELP", "add_vitals_routes"]

#: The ``iculos`` parameter of the FHIR and HL7 v2 inputs.
ICULOS_HELP = (
    "the ICU hour these observations belong to (1: the first hour of the stay); without "
    "it, the hour their times fall in, counted from the admission"
)


def add_vitals_routes(
    feeds: APIRouter,
    reads: APIRouter,
    ward: Ward,
    intake: IntakeCollector,
    inbox: Hl7Inbox,
    *,
    open_: bool,
    hl7_timezone: tzinfo | None,
    models: dict[str, str],
    patient_system: str | None = None,
    zone: tzinfo | None = None,
) -> None:
    """Add the sepsis and HL7 v2 routes to ``feeds`` (what feeds send) and ``reads``
    (summaries and pages) for ``ward``: FHIR and HL7 v2 intake counted in ``intake``,
    messages to ``POST /hl7`` handled by ``inbox``; ``open_``: the gateway takes no token
    (its caller is logged as ``open``); ``hl7_timezone``: the site's zone for HL7 times
    without an offset; ``models``: the names shown on the pages; ``patient_system``: the
    identifier system a FHIR ``subject`` names the gateway's patients in; ``zone``: the
    zone of the times on the patient's page (None: UTC)."""

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
        http_call(ward.admit_sepsis, patient_id, static, admitted_at)
        # what was admitted, not read back: a discharge in between made the read a 500
        return {"patient_id": patient_id, "static": static_columns(static or {})}

    @feeds.post("/vitals/{patient_id}")
    def vitals_hour(patient_id: str, row: dict[str, float | str | None]) -> dict[str, Any]:
        return http_call(ward.add_hour, patient_id, row)

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
        converted and skipped (:mod:`vitalgru.io.fhir_observations`). Refused (422) when an
        Observation's ``subject`` names another patient (a ``Patient/<id>`` reference, or
        with ``--patient-system`` an identifier of that system); one without is taken."""
        try:
            return _score_observations(patient_id, payload, iculos, "fhir")
        except HTTPException:
            intake.count("fhir", "hours", "refused")
            raise

    def _score_observations(
        patient_id: str, payload: Any, iculos: int | None, source: str
    ) -> dict[str, Any]:
        return http_call(score_observations, ward, intake, patient_id, payload, iculos, source,
                         patient_system)  # fmt: skip

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
        read: Hl7Message | OruMessage = msg  # what the acknowledgement names
        try:
            read = read_message(await request.body())
            msg = oru_observations(read, hl7_timezone, ward.sepsis_now())
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
            if er7:  # rejected (not a result we read) or an error (this one not taken);
                # a message read but not a result is named by its own control id and event
                code = "AR" if not msg.message_type else "AE"
                named = msg if msg.message_type else read
                # why, as HL7 table 0357 says it: not read (as read_message says: 100 no
                # MSH first, 102 bytes or separators it cannot read; all were sent as
                # 100), not a result (200), a result not taken (the ward's refusal)
                error = (hl7_error_of(status) if msg.message_type
                         else e.hl7_error if isinstance(e, Hl7ReadError)
                         else 100 if not isinstance(read, Hl7Message)
                         else 200 if read.kind[0] != "ORU" else 207)  # fmt: skip
                return Response(message_bytes(hl7_ack(named, code, text, error=error)), status,
                                media_type=HL7_MEDIA_TYPE)  # fmt: skip
            raise HTTPException(status, text) from None
        acknowledgement = hl7_ack(msg, "AA", skipped_note(out["observations"]))
        if er7:
            return Response(message_bytes(acknowledgement), media_type=HL7_MEDIA_TYPE)
        return {**out, "hl7": {"control_id": msg.control_id, "message_type": msg.message_type,
                               "ack": acknowledgement}}  # fmt: skip

    @feeds.post("/vitals/{patient_id}/static")
    def vitals_static(
        patient_id: str,
        request: Request,
        static: Annotated[dict[str, float | None], Body(
            description="the demographics to change, as at admission (Age, Gender, Unit1, "
            "Unit2, HospAdmTime); those not given are kept")],
    ) -> dict[str, Any]:  # fmt: skip
        """Correct a sepsis patient's demographics (a wrong birth date or sex at admission):
        used for the hours scored from now on; hours already scored keep their risks.
        Answers the patient's summary to a caller that may read it, else (a ``feed``
        token) ``{"patient_id", "static"}`` with the values it changed."""
        summary = http_call(ward.update_sepsis_static, patient_id, static)
        if may_read(request):
            return summary
        return {"patient_id": patient_id, "static": static_columns(static)}

    @feeds.post("/vitals/{patient_id}/merge")
    def vitals_merge(
        patient_id: str,
        request: Request,
        into: Annotated[str, Query(min_length=1, description="the identifier the stay goes "
                                   "on under (the patient's own record)")],
    ) -> dict[str, Any]:  # fmt: skip
        """Two records of one patient merged by the hospital (a temporary number into the
        patient's own): the sepsis stay goes on under ``into``, hours, network state and
        alarm episode included; 409 when ``into`` has a stay of their own, 403 when the
        token is limited to patients and ``into`` is not one of them. Answers the summary
        under ``into`` to a caller that may read it, else ``{"patient_id"}``."""
        check_merge_target(request, into)
        out = feed_answer(request, http_call(ward.merge_sepsis, patient_id, into), "patient_id")
        answered(request, [into])  # the record the stay goes on under, and its summary
        return out

    @feeds.post("/vitals/{patient_id}/close")
    def vitals_close(patient_id: str) -> dict[str, Any]:
        """Score the patient's ICU hours being assembled from observations now, without
        waiting until they close (a sender that has sent a whole hour, or a stay being
        loaded after the fact): their risks, in order."""
        return {"patient_id": patient_id, "scored": http_call(ward.close_hours, patient_id)}

    @feeds.post(
        "/hl7",
        openapi_extra={"requestBody": {"content": {HL7_MEDIA_TYPE: {
            "schema": {"type": "string"}}}, "required": True}},
    )  # fmt: skip
    async def hl7_message(request: Request) -> Response:
        """Any HL7 v2 message an interface engine forwards (ER7; :mod:`pipelines.hl7_inbox`):
        ``ADT^A01`` admits to sepsis scoring, ``A03``/``A11`` discharge, ``A08`` updates
        the demographics, ``A40`` merges a record into the patient's own, ``ORU^R01`` adds
        its observations to the ICU hour their times fall in, for its ``PID-3`` patient.
        The body of the answer is the acknowledgement (``AA``, or ``AE``/``AR`` with the
        reason, and the same HTTP status; in enhanced mode, ``MSH-15`` given, the commit
        acknowledgement ``CA``/``CE``/``CR``, sent even where ``MSH-15`` asks for none over
        MLLP: an HTTP request is answered); a resent message (same ``MSH-10``) is not
        taken twice."""
        caller = request.state.caller or ("open" if open_ else None)
        client = request.client.host if request.client else None
        reply = await run_in_threadpool(inbox.handle, await request.body(), "http", caller, client)
        return Response(message_bytes(reply.ack), reply.status, media_type=HL7_MEDIA_TYPE)

    @reads.get("/vitals/{patient_id}")
    def vitals_summary(patient_id: str) -> dict[str, Any]:
        return http_call(ward.sepsis_summary, patient_id)

    @reads.get("/vitals/{patient_id}/page", response_class=HTMLResponse)
    def vitals_page(patient_id: str) -> str:
        """The patient's stay so far for a clinician: the risk over the ICU hours, each
        alarm episode with the measurements at its start and what raised the risk, the
        values refused as impossible (the page ``vitalgru replay early-warning`` writes)."""
        st = http_call(ward.sepsis_stay, patient_id)
        summary = stay_summary(
            st["patient_id"], st["hours"], st["risks"], st["threshold"],
            st["values"], st["rejected"],
            probabilities=st["probabilities"], drivers=st["drivers"], outside=st["outside"],
        )  # fmt: skip
        # when its latest hour was scored, and whether the feed has gone quiet since
        summary.update(last_scored_at=st["last_scored_at"], no_data_since=st["no_data_since"])
        model = models.get("early-warning")
        return early_warning_report_html(
            [summary], title=f"Sepsis early warning: patient {patient_id} (live)", model=model,
            zone=zone,
        )  # fmt: skip

    @feeds.delete("/vitals/{patient_id}")
    def vitals_discharge(patient_id: str, request: Request) -> dict[str, Any]:
        """Stop scoring the patient: the final summary to a caller that may read it, else
        ``{"patient_id", "discharged"}``."""
        return feed_answer(request, http_call(ward.discharge_sepsis, patient_id),
                           "patient_id", "discharged")  # fmt: skip
