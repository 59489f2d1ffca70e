"""HL7 version 2 observation results (``ORU^R01``) as the Observations
:func:`vitalgru.io.fhir_observations.observations_to_hour` reads.

Most bedside monitors and interface engines send vital signs and laboratory results as HL7
v2 messages, not FHIR. :func:`oru_observations` parses one message (ER7, the pipe-and-hat
text, segments ended by carriage returns or newlines, with the separators its ``MSH``
declares) and turns each ``OBX`` segment into a FHIR-shaped Observation, so that codes,
units and conversions are decided in one place:

- the code is ``OBX-3``: its identifier triplet and the alternate one, a triplet whose
  coding system is ``LN`` (or ``LOINC``) giving a LOINC coding, so a local code with the
  LOINC code as its alternate is read;
- the value is ``OBX-5`` when ``OBX-2`` says it is numeric (``NM``, or ``SN`` without a
  comparator or a range), in the unit of ``OBX-6``, which must be UCUM (``OBX-6.3`` is
  ``UCUM`` or empty). Spellings that HL7 v2 feeds use for UCUM codes and that cannot mean
  anything else are read as those codes (:data:`UNIT_SPELLINGS`: ``mmHg`` is ``mm[Hg]``,
  ``degF`` is ``[degF]``, ``bpm`` is ``/min``, ...); nothing else is guessed;
- the result status ``OBX-11``: ``D`` and ``W`` (deleted, wrong) and ``X`` (could not be
  obtained) withdraw the value, ``I`` (in process) has none; every other status is a result;
- the time ``OBX-14`` (else the ``OBR-7`` of its request), when it has a time of day and a
  UTC offset, as the Observation's ``effectiveDateTime``: from it a caller can tell the ICU
  hour (a time without an offset is not guessed at).

Nothing is dropped silently: an ``OBX`` that gives no usable value is kept as an
Observation without one, and the hour's reading lists it with the reason, by its position
among the message's ``OBX`` segments. The message's patient identifiers (``PID-3``) and
control id (``MSH-10``) come back with it: a caller can refuse a message about another
patient and acknowledge this one (:func:`ack`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from vitalgru.io.fhir_observations import LOINC_SYSTEM, UCUM_SYSTEM

__all__ = ["HL7_MEDIA_TYPE", "UNIT_SPELLINGS", "OruMessage", "ack", "hl7_time", "oru_observations"]

#: The media type of ER7 over HTTP (HL7's "HL7 over HTTP" profile).
HL7_MEDIA_TYPE = "x-application/hl7-v2+er7"

#: HL7 v2 unit spellings read as the UCUM code they can only mean.
UNIT_SPELLINGS = {
    "mmHg": "mm[Hg]", "mm Hg": "mm[Hg]", "degF": "[degF]", "F": "[degF]", "degC": "Cel",
    "C": "Cel", "bpm": "/min", "beats/min": "/min", "breaths/min": "/min",
    "mEq/l": "mEq/L", "mmol/l": "mmol/L", "mg/dl": "mg/dL", "g/dl": "g/dL", "ng/ml": "ng/mL",
    "umol/l": "umol/L", "u/l": "U/L", "IU/L": "[IU]/L", "pH": "[pH]", "sec": "s",
}  # fmt: skip
#: ``OBX-11`` result statuses that withdraw a value or have none, as FHIR statuses.
_STATUS = {"D": "entered-in-error", "W": "entered-in-error", "X": "cancelled",
           "I": "registered", "P": "preliminary", "C": "corrected", "A": "amended"}  # fmt: skip
_LOINC_SYSTEMS = {"LN", "LOINC", LOINC_SYSTEM}
_NUMERIC = {"NM", "SN"}


@dataclass
class OruMessage:
    """What :func:`oru_observations` read from a message."""

    observations: list[dict[str, Any]]  # one per OBX, in order (FHIR-shaped)
    control_id: str
    message_type: str
    patient_ids: list[str] = field(default_factory=list)  # every PID-3 identifier
    field_sep: str = "|"
    components: str = "^"


def _unescape(text: str, field_sep: str, enc: str) -> str:
    comp, rep, esc, sub = enc[0], enc[1], enc[2], enc[3] if len(enc) > 3 else "&"
    if esc not in text:
        return text
    for code, ch in (("F", field_sep), ("S", comp), ("T", sub), ("R", rep), ("E", esc)):
        text = text.replace(f"{esc}{code}{esc}", ch)
    return text


def _coding(parts: list[str]) -> dict[str, str] | None:
    """A FHIR coding from an identifier triplet (code, text, coding system)."""
    code = parts[0].strip() if parts else ""
    if not code:
        return None
    system = parts[2].strip() if len(parts) > 2 else ""
    out = {"system": LOINC_SYSTEM if system in _LOINC_SYSTEMS else system or "unknown",
           "code": code}  # fmt: skip
    if len(parts) > 1 and parts[1].strip():
        out["display"] = parts[1].strip()
    return out


def _number(value_type: str, text: str, comp: str) -> float | None:
    if value_type == "NM":
        raw = text
    else:  # SN: comparator ^ number ^ separator/suffix ^ number; only a plain number is one
        sn = text.split(comp) + ["", "", "", ""]
        if sn[0].strip() not in ("", "=") or sn[2].strip() or sn[3].strip():
            return None
        raw = sn[1]
    try:
        return float(raw.strip())
    except ValueError:
        return None


def hl7_time(ts: str) -> datetime | None:
    """An HL7 v2 time stamp (``YYYYMMDDHHMM[SS[.S]][+/-ZZZZ]``) with its UTC offset as a
    datetime; None for one without a time of day or an offset (it cannot be placed)."""
    ts = ts.split("^")[0].strip()
    if len(ts) < 12:
        return None
    sign = next((i for i, ch in enumerate(ts) if ch in "+-" and i >= 12), None)
    if sign is None:
        return None
    body, zone = ts[:sign], ts[sign:]
    body = body.split(".")[0]
    try:
        t = datetime.strptime(body, "%Y%m%d%H%M%S" if len(body) == 14 else "%Y%m%d%H%M")
        z = datetime.strptime(zone[1:5], "%H%M")
    except ValueError:
        return None
    offset = timedelta(hours=z.hour, minutes=z.minute) * (1 if zone[0] == "+" else -1)
    return t.replace(tzinfo=timezone(offset))


def _observation(
    fields: list[str], comp: str, rep: str, unescape: Any, obr_time: datetime | None
) -> dict[str, Any]:
    def get(i: int) -> str:  # a field as sent (split it, then unescape the parts)
        return fields[i] if i < len(fields) else ""

    def parts(i: int) -> list[str]:
        return [unescape(x) for x in get(i).split(comp)]

    ident = parts(3)
    codings = [c for c in (_coding(ident[:3]), _coding(ident[3:6])) if c is not None]
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "status": _STATUS.get(unescape(get(11)).strip().upper(), "final"),
        "code": {"coding": codings},
    }
    value_type = unescape(get(2)).strip().upper()
    value = get(5).split(rep)[0]  # a repeated value: the first
    x = _number(value_type, value, comp) if value_type in _NUMERIC else None
    if x is not None:
        unit = parts(6)
        code = unit[0].strip() if unit else ""
        system = unit[2].strip() if len(unit) > 2 else ""
        quantity: dict[str, Any] = {"value": x, "code": UNIT_SPELLINGS.get(code, code)}
        if system and system.upper() != "UCUM":
            quantity["system"] = system  # not UCUM: the reader says so
        else:
            quantity["system"] = UCUM_SYSTEM
        obs["valueQuantity"] = quantity
    elif value.strip():
        obs["valueString"] = unescape(value)  # kept, and skipped as not a quantity
    when = hl7_time(get(14)) or obr_time  # OBX-14, else the request's OBR-7
    if when is not None:
        obs["effectiveDateTime"] = when.isoformat()
    return obs


def oru_observations(text: str | bytes) -> OruMessage:
    """Read an HL7 v2 ``ORU`` message (see the module's description).

    Raises
    ------
    ValueError
        Not an HL7 v2 message (no ``MSH`` first), or not an observation result (``MSH-9``
        other than ``ORU``). A result without ``OBX`` segments is an hour with nothing
        measured, as an empty FHIR Bundle is.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    lines = [s for s in text.replace("\r\n", "\r").replace("\n", "\r").split("\r") if s.strip()]
    lines = [s.lstrip("\x0b").rstrip("\x1c") for s in lines]  # MLLP framing, if left on
    if not lines or not lines[0].startswith("MSH") or len(lines[0]) < 8:
        raise ValueError("not an HL7 v2 message: the first segment must be MSH")
    field_sep = lines[0][3]
    msh = lines[0].split(field_sep)
    enc = msh[1] if len(msh) > 1 and len(msh[1]) >= 3 else "^~\\&"
    comp = enc[0]

    def unescape(s: str) -> str:
        return _unescape(s, field_sep, enc)

    # MSH-n is msh[n - 1]: MSH-1 is the separator itself
    message_type = comp.join(unescape(x) for x in msh[8].split(comp)) if len(msh) > 8 else ""
    if message_type.split(comp)[0].strip().upper() != "ORU":
        raise ValueError(
            f"an HL7 v2 {message_type or 'message without a type'!r} is not an observation "
            "result; send ORU^R01"
        )
    control_id = unescape(msh[9]).strip() if len(msh) > 9 else ""
    patient_ids: list[str] = []
    observations = []
    obr_time = None
    for line in lines[1:]:
        fields = line.split(field_sep)
        if fields[0] == "OBR":
            obr_time = hl7_time(fields[7]) if len(fields) > 7 else None
        elif fields[0] == "PID" and len(fields) > 3:
            patient_ids += [unescape(r.split(comp)[0]).strip()
                            for r in fields[3].split(enc[1]) if r.split(comp)[0].strip()]  # fmt: skip
        elif fields[0] == "OBX":
            observations.append(_observation(fields, comp, enc[1], unescape, obr_time))
    return OruMessage(observations, control_id, message_type, patient_ids, field_sep, comp)


def ack(message: OruMessage, code: str = "AA", text: str = "", app: str = "vitalgru") -> str:
    """An HL7 v2 acknowledgement (``ACK``) of ``message``: ``AA`` accepted, ``AE`` error,
    ``AR`` rejected, with ``text`` for the sender's log."""
    f, c = message.field_sep, message.components
    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    safe = text.replace(f, " ").replace(c, " ").replace("\r", " ").replace("\n", " ")
    return "\r".join([
        f"MSH{f}{c}~\\&{f}{app}{f}{f}{f}{f}{now}{f}{f}ACK{c}R01{c}ACK{f}ACK{message.control_id}"
        f"{f}P{f}2.5",
        f"MSA{f}{code}{f}{message.control_id}" + (f"{f}{safe}" if safe else ""),
    ]) + "\r"  # fmt: skip
