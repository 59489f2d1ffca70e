"""How the bedside gateway answers a refusal.

Everywhere but ``/fhir/*`` a refusal is FastAPI's JSON: ``{"detail": ...}``. A FHIR client
(an EHR, an integration engine reading ``/fhir/events``) expects what the FHIR RESTful API
specifies instead: an ``OperationOutcome`` whose issue says what went wrong, as
``application/fhir+json``, the media type the resources themselves are answered as
(:class:`FhirJSONResponse`). Before, a ``/fhir/*`` refusal (an unknown strip, a missing
token, a rate limit, a bad ``since``) came as ``{"detail": ...}``, which a FHIR client
reads as an unknown resource type.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from pipelines.gateway_http import error_json

__all__ = ["FHIR_JSON", "FhirJSONResponse", "add_error_handlers", "operation_outcome"]

#: FHIR's JSON media type (R4, http.html#mime-type).
FHIR_JSON = "application/fhir+json"

#: The issue type (R4 value set ``issue-type``) of each refusal's status; a status not
#: named is ``exception`` from 500 up, ``invalid`` below.
_ISSUE_TYPES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    409: "conflict",
    413: "too-long",
    422: "invalid",
    429: "throttled",
    503: "transient",
    504: "timeout",
}


class FhirJSONResponse(JSONResponse):
    """JSON answered as ``application/fhir+json``."""

    media_type = FHIR_JSON


def operation_outcome(status: int, detail: Any) -> dict[str, Any]:
    """The ``OperationOutcome`` of a refusal with HTTP ``status``: one issue, of severity
    ``error``, whose ``diagnostics`` is ``detail`` (a text as it is, anything else as
    JSON)."""
    text = detail if isinstance(detail, str) else json.dumps(detail, ensure_ascii=False)
    code = _ISSUE_TYPES.get(status, "exception" if status >= 500 else "invalid")
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": text}],
    }


def _fhir(request: Request) -> bool:
    return request.url.path.startswith("/fhir/")


def add_error_handlers(app: FastAPI) -> None:
    """Answer refusals on ``app``: an ``OperationOutcome`` under ``/fhir/``, FastAPI's
    JSON elsewhere; a request's validation errors (422) with what was wrong, a NaN or an
    infinity the body held named as text (FastAPI's own answer echoed it back, which JSON
    cannot hold: a 500)."""

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        detail = error_json(exc.errors())
        if _fhir(request):
            return FhirJSONResponse(operation_outcome(422, detail), status_code=422)
        return JSONResponse(status_code=422, content={"detail": detail})

    @app.exception_handler(StarletteHTTPException)
    async def refused(request: Request, exc: StarletteHTTPException) -> Response:
        if _fhir(request):  # the headers kept: a 401's WWW-Authenticate, a 429's Retry-After
            return FhirJSONResponse(operation_outcome(exc.status_code, exc.detail),
                                    status_code=exc.status_code, headers=exc.headers)  # fmt: skip
        return await http_exception_handler(request, exc)
