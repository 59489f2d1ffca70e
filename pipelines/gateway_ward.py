"""The bedside gateway's routes over the whole ward: its page for clinicians (``/ward``),
the patients on each monitor (``/patients``), the challengers' comparison (``/shadow``) and
each sepsis patient's latest hour as FHIR (``/fhir/risk``). Added to
:func:`pipelines.gateway.create_app`'s reading router, whose token checks they keep.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from pipelines.gateway_errors import FhirJSONResponse
from pipelines.gateway_http import answered
from vitalgru.reports.fhir_gateway import risk_bundle
from vitalgru.reports.ward import ward_page_html
from vitalgru.scoring.ward import Ward

__all__ = ["WARD_PAGE_REFRESH_S", "add_ward_routes"]

#: Seconds between reloads of the ward page (``GET /ward?refresh=N``; 0: never): a screen
#: on the ward's wall shows a new alarm within this long.
WARD_PAGE_REFRESH_S = 10


def add_ward_routes(
    reads: APIRouter,
    ward: Ward,
    models: dict | None,
    zone: tzinfo,
    patient_system: str | None,
) -> None:
    """Add the ward's routes to ``reads`` (:func:`pipelines.gateway.create_app`'s router of
    reads): ``models`` names the models served, ``zone`` the page's times, and
    ``patient_system`` the patients' identifier system in FHIR."""

    @reads.get("/ward", response_class=HTMLResponse)
    def ward_page(
        request: Request,
        refresh: int = Query(WARD_PAGE_REFRESH_S, ge=0, le=3600,
                             description="seconds between reloads of the page (0: never)"),
    ) -> str:  # fmt: skip
        ecg, sepsis = ward.summaries()
        answered(request, (s["patient_id"] for s in ecg + sepsis))  # every one on the page
        names = ", ".join(f"{k}: {v}" for k, v in (models or {}).items()) or None
        line = None if ward.sepsis is None else ward.sepsis.threshold
        return ward_page_html(
            ecg, sepsis, model=names, refresh_s=refresh or None, zone=zone, threshold=line
        )

    @reads.get("/patients")
    def patients(request: Request) -> dict[str, list[str]]:
        out = ward.patients()
        answered(request, (p for ids in out.values() for p in ids))  # their ids are theirs too
        return out

    @reads.get("/shadow")
    def shadow() -> dict[str, Any]:
        try:
            report = ward.shadow_report()
        except ValueError as e:
            raise HTTPException(404, str(e)) from None
        names = {k: v for k, v in (models or {}).items() if k.startswith("shadow")}
        return {"models": names, **report}

    @reads.get("/fhir/risk", response_class=FhirJSONResponse)
    def fhir_risk(request: Request) -> dict[str, Any]:
        """Every sepsis patient's latest hour as a FHIR ``RiskAssessment`` (a Bundle)."""
        if ward.sepsis is None:
            raise HTTPException(503, "this ward was started without an early-warning model")
        _, sepsis = ward.summaries()
        answered(request, (s["patient_id"] for s in sepsis if s.get("last_hour")))  # scored
        return risk_bundle(
            sepsis, model=(models or {}).get("early-warning", "early-warning model"),
            threshold=ward.sepsis.threshold, patient_system=patient_system,
            generated=datetime.now(UTC),
        )  # fmt: skip
