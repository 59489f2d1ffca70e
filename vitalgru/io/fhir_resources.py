"""What a FHIR payload holds around its Observations: its resources (a Bundle's entries, a
list, or one resource), when each Observation was made, and which patient a resource is about.

:func:`vitalgru.io.fhir_observations.observations_to_hour` reads the values; the gateway
(``pipelines/ward_requests.py``) uses these to place them in time and check the patient.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

__all__ = [
    "observation_times",
    "payload_resources",
    "says_when",
    "subject_patient",
    "timed_resources",
]


def payload_resources(payload: Any) -> list[Any]:
    """The Observations of a Bundle, of a list, or a single one."""
    if isinstance(payload, Mapping) and payload.get("resourceType") == "Bundle":
        entries = payload.get("entry") or []
        if not isinstance(entries, list):
            raise ValueError(f"a Bundle's entry must be a list, got {type(entries).__name__}")
        return [e.get("resource") if isinstance(e, Mapping) else e for e in entries]
    if isinstance(payload, list):
        return payload
    if isinstance(payload, Mapping):
        return [payload]
    raise ValueError("expected a FHIR Bundle, an Observation or a list of Observations")


def observation_times(payload: Any) -> list[datetime]:
    """When each Observation was made, for those that say so with a time and its UTC offset
    (``effectiveDateTime``, ``effectiveInstant`` or ``effectivePeriod.start``; a date
    alone or a time without an offset says nothing usable). ValueError for a payload that
    is not a Bundle, a list or an Observation."""
    return [t for t in timed_resources(payload)[1] if t is not None]


def _given_time(resource: Any) -> Any:
    """What an Observation gives as its time (``effectiveDateTime``, ``effectiveInstant`` or
    ``effectivePeriod.start``), as given; None for other resources and when none is."""
    if not isinstance(resource, Mapping) or resource.get("resourceType") != "Observation":
        return None
    period = resource.get("effectivePeriod")
    return (resource.get("effectiveDateTime") or resource.get("effectiveInstant")
            or (period.get("start") if isinstance(period, Mapping) else None))  # fmt: skip


def says_when(resource: Any) -> bool:
    """Whether an Observation gives a time at all, usable or not: one whose time
    :func:`timed_resources` cannot read (no UTC offset, a date alone) is not one without."""
    return bool(_given_time(resource))


def subject_patient(resource: Any, patient_system: str | None = None) -> str | None:
    """The patient a resource's ``subject`` names, or None when it names none that can be
    told: with ``patient_system`` (the hospital's identifiers, e.g. its medical record
    numbers), the value of an ``identifier`` of that system; without, the id of a
    ``Patient/<id>`` reference (relative, absolute or versioned). A reference's id is the
    FHIR server's own, another namespace than a ``patient_system``'s, so it is not compared
    there; a subject that is a group, a device or a location names no patient."""
    subject = resource.get("subject") if isinstance(resource, Mapping) else None
    if not isinstance(subject, Mapping):
        return None
    if patient_system is not None:
        ident = subject.get("identifier")
        if isinstance(ident, Mapping) and ident.get("system") == patient_system:
            value = ident.get("value")
            return value if isinstance(value, str) else None
        return None
    ref = subject.get("reference")
    if not isinstance(ref, str):
        return None
    parts = ref.split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    return parts[-1] if len(parts) >= 2 and parts[-2] == "Patient" and parts[-1] else None


def timed_resources(payload: Any) -> tuple[list[Any], list[datetime | None]]:
    """The payload's resources (a Bundle's entries, a list, or one) and, for each, when it
    was made, as :func:`observation_times` reads it (None: not an Observation, or no time
    with its offset). ValueError as :func:`observation_times`."""
    resources = payload_resources(payload)
    times: list[datetime | None] = []
    for res in resources:
        t = None
        raw = _given_time(res)
        if isinstance(raw, str) and "T" in raw:
            try:
                t = datetime.fromisoformat(raw)
            except ValueError:
                t = None
            if t is not None and t.tzinfo is None:
                t = None
        times.append(t)
    return resources, times
