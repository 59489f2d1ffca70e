"""The bedside gateway's routes for ECG feeds (``/ecg/...``): admissions, chunks of
samples, a feed's summary and the clinician's page of it, merges and discharges. Added to
:func:`pipelines.gateway.create_app`'s routers, whose token checks they keep.
"""

from __future__ import annotations

from datetime import tzinfo
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field, Strict

from pipelines.gateway_http import answered, check_merge_target, feed_answer, http_call
from vitalgru.reports.ward import PAGE_STRIPS, ecg_patient_page_html
from vitalgru.scoring.ward import Ward

__all__ = ["EcgAdmission", "EcgChunk", "add_ecg_routes"]


#: A JSON number and nothing else: ``true`` or ``"0.5"`` were taken as 1.0 and 0.5 mV (a
#: feed's bug in its serialiser read as signal), ``fs: true`` as 1 Hz.
Number = Annotated[float, Strict()]


class EcgAdmission(BaseModel):
    fs: Number = Field(gt=0, le=10_000, description="sampling rate of the feed (Hz)")


class EcgChunk(BaseModel):
    samples: list[Number | None] = Field(
        description="the next samples of the feed's one lead, in mV; null for a gap"
    )
    start: int | None = Field(
        None,
        ge=0,
        le=2**53,  # a count a journal (and JSON) holds exactly: 2**63 broke every tick
        description="the feed's index of the first sample (samples it sent before this "
        "chunk): a chunk sent again is not taken twice, the samples after a gap (a "
        "lost chunk, an outage) keep their time instead of closing the stream up, and a "
        "feed that restarted its count (from 0 again) is told by its samples from a resend",
    )


def add_ecg_routes(
    feeds: APIRouter,
    reads: APIRouter,
    ward: Ward,
    models: dict[str, str] | None,
    zone: tzinfo | None = None,
) -> None:
    """Add the ECG routes to ``feeds`` (what feeds send: admissions, samples, merges,
    discharges) and ``reads`` (a feed's summary and page) for ``ward``; ``models``: the
    names shown on the page, ``zone`` the zone of its times (None: UTC)."""

    @feeds.post("/ecg/{patient_id}/admit", status_code=201)
    def ecg_admit(patient_id: str, body: EcgAdmission) -> dict[str, Any]:
        http_call(ward.admit_ecg, patient_id, body.fs)
        return {"patient_id": patient_id, "fs": body.fs}

    @feeds.post("/ecg/{patient_id}", status_code=202)
    def ecg_samples(patient_id: str, body: EcgChunk) -> dict[str, Any]:
        queued = http_call(ward.add_ecg, patient_id, body.samples, body.start)
        return {"patient_id": patient_id, "queued_samples": queued}

    @reads.get("/ecg/{patient_id}")
    def ecg_summary(patient_id: str) -> dict[str, Any]:
        return http_call(ward.ecg_summary, patient_id)

    @reads.get("/ecg/{patient_id}/page", response_class=HTMLResponse)
    def ecg_page(patient_id: str) -> str:
        """The patient's ECG for a clinician: beats by class, heart rate and its trend by
        minute, every alarm kept with a link to its strip, and the newest strips drawn."""
        summary = http_call(ward.ecg_summary, patient_id)
        strips: list[dict[str, Any]] = []
        for a in reversed(summary["alarms"]):
            if a.get("strip_s") and len(strips) < PAGE_STRIPS:
                try:
                    strips.append(ward.strip(a["seq"]))
                except KeyError:  # older than the strips kept
                    continue
        trend = http_call(ward.ecg_trend, patient_id)  # 404, not 500, when discharged since
        return ecg_patient_page_html(summary, strips, trend,
                                     model=(models or {}).get("arrhythmia"), zone=zone)  # fmt: skip

    @feeds.delete("/ecg/{patient_id}")
    def ecg_discharge(patient_id: str, request: Request) -> dict[str, Any]:
        return feed_answer(request, http_call(ward.discharge_ecg, patient_id),
                           "patient_id", "discharged")  # fmt: skip

    @feeds.post("/ecg/{patient_id}/merge")
    def ecg_merge(
        patient_id: str,
        request: Request,
        into: Annotated[str, Query(min_length=1, description="the identifier the stream goes "
                                   "on under (the patient's own record)")],
    ) -> dict[str, Any]:  # fmt: skip
        """Two records of one patient merged by the hospital: the ECG stream goes on under
        ``into`` (send its samples there from now on), the network's state and the alarms
        going on included; 409 when ``into`` is on ECG monitoring already, 403 when the
        token is limited to patients and ``into`` is not one of them. The summary under
        ``into`` to a caller that may read it, else ``{"patient_id"}``."""
        check_merge_target(request, into)
        out = feed_answer(request, http_call(ward.merge_ecg, patient_id, into), "patient_id")
        answered(request, [into])  # the record the stream goes on under, and its summary
        return out
