"""HL7 version 2 observation results (``ORU^R01``) as the Observations
:func:`vitalgru.io.fhir_observations.observations_to_hour` reads.

Most bedside monitors and interface engines send vital signs and laboratory results as HL7
v2 messages, not FHIR. :func:`oru_observations` parses one message (ER7, the pipe-and-hat
text, segments ended by carriage returns or newlines, with the separators its ``MSH``
declares; bytes in the character set its ``MSH-18`` names, UTF-8 when none, and refused
rather than read with replacement characters when they are not of it) and turns each ``OBX`` segment into a FHIR-shaped Observation, so that codes,
units and conversions are decided in one place:

- the code is ``OBX-3``: its identifier triplet and the alternate one, a triplet whose
  coding system is ``LN`` (or ``LOINC``) giving a LOINC coding, so a local code with the
  LOINC code as its alternate is read; bedside monitors speaking IHE PCD-01 send IEEE 11073
  (``MDC``) codes, passed on as such for the reader, which knows those of the vital signs
  the model takes and their units (:data:`vitalgru.io.observation_codes.MDC_LOINC`), and
  a device's "no value" codes (:data:`MDC_NO_VALUE`) are no value. An ``OBX`` has no
  FHIR category, so LOINC 2708-6 alone is read as a blood gas's ``SaO2``, as in an
  Observation without one: pulse oximetry comes as MDC 150456 or LOINC 59408-5;
- the value is ``OBX-5`` when ``OBX-2`` says it is numeric (``NM``, or ``SN`` without a
  comparator or a range), in the unit of ``OBX-6``, which must be UCUM (``OBX-6.3`` is
  ``UCUM`` or empty), or coded in HL7 v2's own ``ISO+`` or ``ANSI+`` with an identifier
  spelt as a unit the table takes (``mmol/L^^ISO+``). Spellings that HL7 v2 feeds use for
  UCUM codes and that cannot mean anything else are read as those codes
  (:data:`UNIT_SPELLINGS`: ``mmHg`` is ``mm[Hg]``, ``degF`` is ``[degF]``, ``bpm`` is
  ``/min``, ``K/uL`` is ``10*3/uL``, ``µmol/l`` is ``umol/L``, ...); nothing else is
  guessed (:func:`~vitalgru.io.observation_codes.hl7_unit_system`);
- the result status ``OBX-11``: ``D`` and ``W`` (deleted, wrong) and ``X`` (could not be
  obtained) withdraw the value, ``I`` (in process) has none; ``P``, ``R`` and ``S``
  (preliminary, not verified, partial) are preliminary results, which a final one
  replaces, and ``C``/``A`` corrections; every other status is a final result;
- the time ``OBX-14`` (else the ``OBR-7`` of its request), when it has a time of day (to
  the hour at least: one to the hour or the minute is the start of it), as the
  Observation's ``effectiveDateTime``: from it a caller can tell the ICU hour. A time
  without a UTC offset (many feeds send local time) is placed only in the time zone the
  caller names (``tz``, the site's: a ``zoneinfo`` key such as ``Europe/Berlin``), never
  guessed at. In the hour a clock goes back a local time names two times: the later one
  that is not after the message arrived (``received``, the caller's clock) nor after it
  was made (its ``MSH-7``, when that carries an offset) is taken, with
  :data:`~vitalgru.io.hl7v2_text.CLOCK_SKEW` of leeway, else the first; a time in the hour
  a clock skips is read with the offset before the change (:func:`hl7_time`). A time
  given that cannot be placed (a date alone, no offset and no ``tz``) is passed on as
  sent, for the reader to skip the observation with that reason: not the request's time
  in its place, nor no time (pooled with the others).

Nothing is dropped silently: an ``OBX`` that gives no usable value is kept as an
Observation without one, and the hour's reading lists it with the reason, by its position
among the message's ``OBX`` segments. The message's patient identifiers (``PID-3``) and
control id (``MSH-10``) come back with it: a caller can refuse a message about another
patient and acknowledge this one (:func:`ack`, in :mod:`vitalgru.io.hl7v2_ack`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from functools import cached_property
from typing import Any

from vitalgru.errors import Hl7ReadError
from vitalgru.io.hl7v2_ack import ERROR_CODES, ack
from vitalgru.io.hl7v2_text import (
    CHARSETS,
    _codec,
    _decode,
    _unescape,
    check_separators,
    escape,
    hl7_time,
    message_bytes,
)
from vitalgru.io.observation_codes import (
    LOINC_SYSTEM,
    MDC_SYSTEM,
    UNIT_SPELLINGS,
    hl7_unit,
    hl7_unit_system,
)

__all__ = [
    "CHARSETS", "ERROR_CODES", "HL7_MEDIA_TYPE", "MDC_NO_VALUE", "MLLP_END", "MLLP_START", "UNIT_SPELLINGS", "AdtEvent", "Hl7Message", "OruMessage", "ack",
    "adt_event", "escape", "hl7_time", "message_bytes", "oru_observations", "read_message",
]  # fmt: skip

#: The media type of ER7 over HTTP (HL7's "HL7 over HTTP" profile).
HL7_MEDIA_TYPE = "x-application/hl7-v2+er7"

#: The bytes that frame a message over MLLP (HL7's Minimal Lower Layer Protocol): ``0x0B``
#: before it, ``0x1C 0x0D`` after it.
MLLP_START, MLLP_END = b"\x0b", b"\x1c\x0d"

#: Values an IEEE 11073 device sends for "no value" (NaN 0x7FFFFF, NRes 0x800000, +INF
#: 0x7FFFFE; -INF as -0x7FFFFE), read as no measurement rather than a heart rate of 8 million.
MDC_NO_VALUE = frozenset({8388606.0, 8388607.0, 8388608.0})
#: ``OBX-11`` result statuses that withdraw a value or have none, as FHIR statuses.
_STATUS = {"D": "entered-in-error", "W": "entered-in-error", "X": "cancelled",
           "I": "registered", "P": "preliminary", "R": "preliminary", "S": "preliminary",
           "C": "corrected", "A": "amended"}  # fmt: skip
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
    encoding: str = "^~\\&"  # MSH-2: component, repetition, escape, subcomponent
    charset: str = ""  # MSH-18, the character set its bytes were read in ("": UTF-8)


def _coding(parts: list[str]) -> dict[str, str] | None:
    """A FHIR coding from an identifier triplet (code, text, coding system)."""
    code = parts[0].strip() if parts else ""
    if not code:
        return None
    system = parts[2].strip() if len(parts) > 2 else ""
    out = {"system": LOINC_SYSTEM if system in _LOINC_SYSTEMS
           else MDC_SYSTEM if system.upper() == "MDC" else system or "unknown", "code": code}  # fmt: skip
    if len(parts) > 1 and parts[1].strip():
        out["display"] = parts[1].strip()
    return out


#: An NM value (HL7 v2.5 2.A.47): an optional sign, digits, an optional decimal point.
_NM = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)")


def _number(value_type: str, text: str, comp: str) -> float | None:
    if value_type == "NM":
        raw = text
    else:  # SN: comparator ^ number ^ separator/suffix ^ number; only a plain number is one
        sn = text.split(comp) + ["", "", "", ""]
        if sn[0].strip() not in ("", "=") or sn[2].strip() or sn[3].strip():
            return None
        raw = sn[1]
    raw = raw.strip()
    if not _NM.fullmatch(raw):  # float() also took "1_0_0", "1e2", "inf", "nan"
        return None
    return float(raw)


def _observation(
    fields: list[str],
    comp: str,
    rep: str,
    unescape: Any,
    obr_time: datetime | str | None,
    tz: tzinfo | None = None,
    received: datetime | None = None,
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
    if x is not None and abs(x) in MDC_NO_VALUE:
        x = None  # a device's "no value" (IEEE 11073 NaN, NRes, +-INF): not a measurement
        value = ""
    if x is not None:
        unit = parts(6)
        code = hl7_unit(unit[0] if unit else "")
        system = hl7_unit_system(code, unit[2] if len(unit) > 2 else "")
        obs["valueQuantity"] = {"value": x, "code": code, "system": system}
    elif value.strip():
        obs["valueString"] = unescape(value)  # kept, and skipped as not a quantity
    # OBX-14, else the request's OBR-7 (``obr_time``: as sent when it cannot be read). A
    # time given that cannot be placed (a date alone, no UTC offset) is kept as sent, for
    # the reader to skip the observation and say why: the request's time instead, or none,
    # put it in another hour or pooled it silently
    given = get(14).split(comp)[0].strip()
    when = (hl7_time(given, tz, received) or unescape(given)) if given else obr_time
    if when:
        obs["effectiveDateTime"] = when.isoformat() if isinstance(when, datetime) else when
    return obs


@dataclass
class Hl7Message:
    """An HL7 v2 message split into segments and fields (ER7: segments ended by carriage
    returns or newlines, MLLP framing tolerated, the separators its ``MSH`` declares)."""

    segments: list[list[str]]  # each segment's fields as sent (not unescaped); [0]: its name
    field_sep: str = "|"
    encoding: str = "^~\\&"

    @property
    def components(self) -> str:
        return self.encoding[0]

    def unescape(self, text: str) -> str:
        return _unescape(text, self.field_sep, self.encoding, self._codec)

    @cached_property
    def _codec(self) -> str:
        """The codec of ``MSH-18`` as sent, for ``\\Xhh\\`` (UTF-8 when none). ASCII for a
        set Python does not know (``ISO IR87``), as the message itself is read: its other
        bytes stay escaped (decoded with None, such a message failed with a TypeError)."""
        msh = self.segments[0] if self.segments else []
        try:
            return _codec(msh[17].split(self.encoding[1])[0] if len(msh) > 17 else "") or "ascii"
        except ValueError:
            return "utf-8"

    @property
    def charset(self) -> str:
        """``MSH-18``, the character set the message was sent in ("": none named)."""
        return self.field("MSH", 18)

    def field(self, segment: str, n: int, component: int = 1) -> str:
        """``SEG-n.component`` of the first such segment, unescaped and stripped ("" when
        absent; the first repetition). ``MSH-n`` counts the field separator as ``MSH-1``."""
        seg = next((f for f in self.segments if f[0] == segment), None)
        i = n - 1 if segment == "MSH" else n
        if seg is None or i >= len(seg):
            return ""
        parts = seg[i].split(self.encoding[1])[0].split(self.components)
        return self.unescape(parts[component - 1]).strip() if component <= len(parts) else ""

    @property
    def message_type(self) -> str:
        """``MSH-9`` as sent, e.g. ``ORU^R01^ORU_R01``."""
        seg = self.segments[0]
        return self.components.join(self.unescape(x) for x in seg[8].split(self.components)) if (
            len(seg) > 8) else ""  # fmt: skip

    @property
    def kind(self) -> tuple[str, str]:
        """(message code, trigger event) of ``MSH-9`` in capitals: ``("ADT", "A01")``."""
        return (self.field("MSH", 9, 1).upper(), self.field("MSH", 9, 2).upper())

    @property
    def control_id(self) -> str:
        return self.field("MSH", 10)

    @property
    def patient_ids(self) -> list[str]:
        """Every identifier of ``PID-3`` (each repetition's ID number), in order."""
        return self._identifiers("PID", 3)

    @property
    def prior_patient_ids(self) -> list[str]:
        """Every identifier of ``MRG-1``, the record merged away (``ADT^A40``), in order."""
        return self._identifiers("MRG", 1)

    def _identifiers(self, segment: str, n: int) -> list[str]:
        out = []
        for seg in self.segments:
            if seg[0] == segment and len(seg) > n:
                out += [self.unescape(r.split(self.components)[0]).strip()
                        for r in seg[n].split(self.encoding[1])
                        if r.split(self.components)[0].strip()]  # fmt: skip
        return out


def read_message(text: str | bytes) -> Hl7Message:
    """Split an HL7 v2 message; bytes are read in the character set its ``MSH-18`` names
    (:data:`CHARSETS`; UTF-8 when none). :class:`~vitalgru.errors.Hl7ReadError` (a
    ValueError carrying the ``ERR-3`` code of HL7 table 0357) when it does not begin with
    ``MSH`` (100), or its bytes are not of that set (or the set is not one of those), or its
    separators are not distinct characters other than letters, digits and spaces
    (:func:`check_separators`) (102)."""
    if isinstance(text, bytes):
        text = _decode(text)
    lines = [s for s in text.replace("\r\n", "\r").replace("\n", "\r").split("\r") if s.strip()]
    lines = [s.lstrip("\x0b").rstrip("\x1c") for s in lines]  # MLLP framing, if left on
    lines = [s for s in lines if s.strip()]
    if not lines or not lines[0].startswith("MSH") or len(lines[0]) < 8:
        raise Hl7ReadError("not an HL7 v2 message: the first segment must be MSH", 100)
    field_sep = lines[0][3]
    msh = lines[0].split(field_sep)
    enc = msh[1] if len(msh) > 1 and len(msh[1]) >= 3 else "^~\\&"
    check_separators(field_sep, enc)
    return Hl7Message([line.split(field_sep) for line in lines], field_sep, enc)


def _received(msg: Hl7Message, received: datetime | None) -> datetime | None:
    """The latest a message's times can be, which places its local times in the hour a
    clock goes back: the earlier of ``received`` (when the caller knows it) and the
    message's ``MSH-7`` when that carries a UTC offset (when it was made: one queued by an
    interface engine arrives later, and its times are not after it; an ``MSH-7`` in local
    time names two times as well), else None."""
    made = hl7_time(msg.field("MSH", 7))
    if made is None or received is None:
        return received if made is None else made
    return min(received, made)


def oru_observations(
    text: str | bytes | Hl7Message, tz: tzinfo | None = None, received: datetime | None = None
) -> OruMessage:
    """Read an HL7 v2 ``ORU`` message (see the module's description); times without a UTC
    offset are in ``tz`` when given (else they are not placed); ``received``: when the
    message arrived (with its UTC offset), which tells which of the two times a local
    time names in the hour the clock goes back is meant (:func:`hl7_time`).

    Raises
    ------
    ValueError
        Not an HL7 v2 message (no ``MSH`` first), or not an observation result (``MSH-9``
        other than ``ORU``). A result without ``OBX`` segments is an hour with nothing
        measured, as an empty FHIR Bundle is.
    """
    msg = text if isinstance(text, Hl7Message) else read_message(text)
    message_type = msg.message_type
    if msg.kind[0] != "ORU":
        raise ValueError(
            f"an HL7 v2 {message_type or 'message without a type'!r} is not an observation "
            "result; send ORU^R01"
        )
    comp = msg.components
    received = _received(msg, received)
    observations = []
    obr_time = None
    patients: list[list[str]] = []  # each PID's identifiers, in order
    for fields in msg.segments[1:]:
        if fields[0] == "PID":
            ids = Hl7Message([fields], msg.field_sep, msg.encoding).patient_ids
            if ids and not any(set(ids) & set(p) for p in patients):
                patients.append(ids)
        if fields[0] == "OBR":
            raw = fields[7].split(comp)[0].strip() if len(fields) > 7 else ""
            obr_time = (hl7_time(raw, tz, received) or msg.unescape(raw)) if raw else None
        elif fields[0] == "OBX":
            observations.append(
                _observation(fields, comp, msg.encoding[1], msg.unescape, obr_time, tz, received)
            )
    if len(patients) > 1:
        # the results after each PID are that patient's (the ORU_R01 PATIENT_RESULT group
        # repeats): read as one, every OBX was the first matching patient's
        raise ValueError(
            "the message holds results of several patients (PID-3 "
            + "; ".join(", ".join(p) for p in patients)
            + "): send one patient's results per message; nothing was scored"
        )
    return OruMessage(observations, msg.control_id, message_type, msg.patient_ids,
                      msg.field_sep, comp, msg.encoding, msg.charset)  # fmt: skip


@dataclass(frozen=True)
class AdtEvent:
    """What :func:`adt_event` read from an ``ADT`` message."""

    trigger: str  # A01 admit, A03 discharge, A11 cancel admit, ...
    patient_ids: list[str]  # PID-3
    occurred_at: datetime | None  # EVN-6, else EVN-2, else MSH-7 (None: not placeable)
    static: dict[str, float]  # Age, Gender, HospAdmTime as the Challenge names them
    notes: list[str]  # what could not be read, for the acknowledgement


def adt_event(
    msg: Hl7Message,
    tz: tzinfo | None = None,
    as_of: datetime | None = None,
    received: datetime | None = None,
) -> AdtEvent:
    """An ``ADT`` message's event and the demographics the sepsis model takes from it:
    ``Age`` in whole years at the event from the birth date ``PID-7``, ``Gender`` from the
    administrative sex ``PID-8`` (``F`` 0, ``M`` 1; another or none: not given), and
    ``HospAdmTime``, the hours from the hospital admission ``PV1-44`` to the event
    (negative, as in the Challenge's data). ``as_of``: the time the age and the hours are
    counted to instead of the event's (an update, ``A08``, describes a stay that began
    before it); ``received``: when the message arrived, for local times in the hour a
    clock goes back (:func:`oru_observations`). ValueError for a message that is not
    ``ADT``."""
    if msg.kind[0] != "ADT":
        raise ValueError(f"an HL7 v2 {msg.message_type!r} is not an ADT message")
    trigger = msg.kind[1] or msg.field("EVN", 1).upper()
    notes: list[str] = []
    received = _received(msg, received)
    when = None
    for seg, n in (("EVN", 6), ("EVN", 2), ("MSH", 7)):
        raw = msg.field(seg, n)
        if raw:
            when = hl7_time(raw, tz, received)
            if when is None:
                notes.append(f"{seg}-{n} {raw!r} has no time of day or no UTC offset")
            else:
                break
    static: dict[str, float] = {}
    stay = when if as_of is None else as_of  # what the demographics are counted to
    born = msg.field("PID", 7)
    if born and stay is not None:
        try:
            b = datetime.strptime(born[:8], "%Y%m%d")
            on = stay.date()
            age = on.year - b.year - ((on.month, on.day) < (b.month, b.day))
            if 0 <= age <= 120:
                static["Age"] = float(age)
            else:
                notes.append("PID-7 gives an age outside 0-120 years")
        except ValueError:  # the value is not repeated: a birth date in another format
            # (1961-08-05) would be kept in the state file's acknowledgements and returned
            notes.append("PID-7 is not a date (HL7 DT: YYYYMMDD)")
    sex = msg.field("PID", 8).upper()
    if sex in ("F", "M"):
        static["Gender"] = 0.0 if sex == "F" else 1.0
    hospital = msg.field("PV1", 44)
    if hospital and stay is not None:
        t = hl7_time(hospital, tz, received)
        if t is None:
            notes.append(f"PV1-44 {hospital!r} has no time of day or no UTC offset")
        else:
            static["HospAdmTime"] = round((t - stay).total_seconds() / 3600, 2)
    return AdtEvent(trigger, msg.patient_ids, when, static, notes)
