"""What a patient's identifier may be, checked wherever a patient enters the ward: an
admission, the record a stay or stream is merged into, a gateway's path, an HL7 ``PID-3``.

An identifier goes into URL paths (``/vitals/{id}``), HL7 v2 messages framed by MLLP (an
``ORU^R40`` alarm names its patient) and FHIR resources. One with a ``/`` could not be
reached over HTTP again, a control character (``\\x1c``, MLLP's end of frame) cut the
forwarded alarm message short, and a blank or a huge one named no one usefully; so an
identifier is printable text without ``/``, not blank, without whitespace around it, not
``.`` or ``..`` (a path segment of its own), and at most :data:`MAX_PATIENT_ID_CHARS`
characters.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_PATIENT_ID_CHARS", "check_patient_id", "patient_id_problem"]

#: Longest identifier taken: a FHIR resource id's limit, and the token files' patient
#: patterns'; hospital medical record numbers are far shorter (HL7 v2.5 gives CX-1 15).
MAX_PATIENT_ID_CHARS = 64


def patient_id_problem(patient_id: Any) -> str | None:
    """What is wrong with ``patient_id`` as a patient's identifier; None when nothing is."""
    if not isinstance(patient_id, str):
        return f"is not text ({type(patient_id).__name__})"
    if not patient_id.strip():
        return "is blank"
    if len(patient_id) > MAX_PATIENT_ID_CHARS:
        return f"is {len(patient_id)} characters long (at most {MAX_PATIENT_ID_CHARS})"
    if not patient_id.isprintable():
        bad = next(c for c in patient_id if not c.isprintable())
        return f"holds a control or unprintable character ({bad!r})"
    if "/" in patient_id:
        return "holds a '/' (it could not be a URL's path segment)"
    if patient_id in (".", ".."):
        return "is a path segment of its own ('.' or '..')"
    if patient_id != patient_id.strip():
        return "begins or ends with whitespace"
    return None


def check_patient_id(patient_id: Any) -> str:
    """``patient_id`` when it may name a patient; ValueError saying why not."""
    problem = patient_id_problem(patient_id)
    if problem is not None:
        shown = repr(patient_id)
        shown = shown if len(shown) <= 80 else f"{shown[:60]}...{shown[-10:]}"
        raise ValueError(f"patient id {shown} {problem}")
    return patient_id
