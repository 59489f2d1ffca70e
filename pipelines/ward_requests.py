"""Requests to the ward from the gateway: a ward method's errors as refusals with an HTTP
status (:func:`ward_call`), and vital-sign observations, FHIR-shaped whether they came as
FHIR (``POST /sepsis/{id}/observations``) or as an HL7 ``ORU^R01``
(:class:`~pipelines.hl7_inbox.Hl7Inbox`), into the ICU hours they belong to
(:func:`score_observations`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from vitalgru.errors import ConflictError, ModelMissingError
from vitalgru.io.fhir_observations import observations_to_hour
from vitalgru.io.fhir_resources import says_when, subject_patient, timed_resources
from vitalgru.scoring.ward import Ward

__all__ = ["Refused", "hl7_error_of", "score_observations", "ward_call"]


class Refused(Exception):
    """A request the ward did not take: an HTTP status and the reason; ``hl7_error``, the
    code of HL7 table 0357 an acknowledgement says it with (by the status when not given:
    :func:`hl7_error`)."""

    def __init__(self, status: int, detail: str, hl7_error: int | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail
        self.hl7_error = hl7_error if hl7_error is not None else hl7_error_of(status)


#: HTTP statuses of a refusal as HL7 table 0357 codes (``ERR-3``): a patient not admitted
#: is an unknown key, one admitted twice a duplicate key; any other an application error.
_HL7_ERRORS = {404: 204, 409: 205, 423: 206}


def hl7_error_of(status: int) -> int:
    """The HL7 table 0357 code (``ERR-3``) of a refusal with this HTTP status: 204 unknown
    key (404), 205 duplicate key (409), 206 record locked (423), else 207 application
    internal error."""
    return _HL7_ERRORS.get(status, 207)


def ward_call(fn: Callable[..., Any], *args: Any) -> Any:
    """Run a ward method, turning its errors into :class:`Refused`: 404 for a patient not
    admitted, 409 for one admitted twice, 503 for a model the ward lacks, 422 otherwise."""
    try:
        return fn(*args)
    except KeyError as e:
        raise Refused(404, str(e.args[0]) if e.args else "not found") from None
    except ModelMissingError as e:
        raise Refused(503, str(e)) from None
    except ConflictError as e:
        raise Refused(409, str(e)) from None
    except ValueError as e:  # by the error's type: words in a patient's id chose it before
        raise Refused(422, str(e)) from None


def _hours_of(
    ward: Ward, patient_id: str, times: list[datetime | None], admitted_at: str
) -> list[int | None]:
    """The ICU hour of each time in the stay from ``admitted_at`` (None stays None);
    :class:`Refused` when none is placed (409 when the stay is another by now)."""
    if not any(t is not None for t in times):
        raise Refused(
            422, "no ?iculos= and no observation time with its UTC offset to tell the ICU "
            "hour from (effectiveDateTime; OBX-14 or OBR-7 with +ZZZZ, or the site's time "
            "zone given to the gateway)",
        )  # fmt: skip
    return [None if t is None else ward_call(ward.sepsis_hour_at, patient_id, t, admitted_at)
            for t in times]  # fmt: skip


def skipped_note(observations: dict[str, Any], limit: int = 5) -> str:
    """What an acknowledgement says of the results left out of an accepted message (an
    HL7 sender sees only the acknowledgement): ``"2 skipped: OBX 3 (why); OBX 5 (why)"``,
    the first ``limit`` named, counted from 1 as HL7's ``OBX-1``; "" when none was."""
    skipped = observations.get("skipped") or []
    if not skipped:
        return ""
    named = "; ".join(f"OBX {s['index'] + 1} ({s['reason']})" for s in skipped[:limit])
    more = f"; {len(skipped) - limit} more" if len(skipped) > limit else ""
    return f"{len(skipped)} skipped: {named}{more}"


def score_observations(
    ward: Ward,
    intake: Any,
    patient_id: str,
    payload: Any,
    iculos: int | None,
    source: str,
    patient_system: str | None = None,
) -> dict[str, Any]:
    """Score the hour FHIR-shaped Observations make (``iculos``: the sender says which
    and that it is whole), or, without ``iculos``, add them to the ICU hours their times
    fall in, each scored when it closes (:meth:`Ward.add_observations`). :class:`Refused`
    (422) when a resource's ``subject`` names another patient than ``patient_id``
    (:func:`~vitalgru.io.fhir_resources.subject_patient`, by ``patient_system``), when
    they name no hour, when they fall in several and some Observation has no time, or when
    none of them is usable. What was used and skipped is counted in
    ``intake`` (:class:`~pipelines.gateway_metrics.IntakeCollector`) under ``source``.

    Returns the hour's risk (with ``iculos``), or what was held: one hour's
    :meth:`Ward.add_observations` answer, or, for observations of several hours,
    ``{"patient_id", "pending": True, "hours": [each hour's answer, without its
    ``scored``], "scored": [every earlier hour they closed]}``; with ``observations``
    (``used``, ``converted``, ``skipped`` with the positions in the payload)."""
    try:
        resources, times = timed_resources(payload)
    except ValueError as e:
        raise Refused(422, str(e)) from None
    others = {i: p for i, r in enumerate(resources)
              if (p := subject_patient(r, patient_system)) not in (None, patient_id)}  # fmt: skip
    if others:  # another patient's results scored under this one: HL7's PID-3 is checked
        raise Refused(
            422, f"the observations at {list(others)[:5]} are about patient "
            f"{', '.join(sorted(set(others.values()))[:5])} (subject), not {patient_id}; "
            "nothing was scored",
        )  # fmt: skip
    stay = None  # the stay the hours are counted in: the same when they are added
    unplaced: list[dict[str, Any]] = []  # a time given that cannot place it: skipped, said
    if iculos is not None:
        groups = {iculos: list(range(len(resources)))}
    else:
        stay = ward_call(ward.sepsis_admitted_at, patient_id)
        hours = _hours_of(ward, patient_id, times, stay)
        for i, (h, r) in enumerate(zip(hours, resources, strict=True)):
            if h is None and says_when(r):  # pooled into the others' hour before, silently
                hours[i] = -1
                unplaced.append({"index": i, "code": None, "reason": "its time has no UTC "
                                 "offset, is a date alone or is not a time: it cannot be "
                                 "placed in an hour of the stay"})  # fmt: skip
        placed = sorted({h for h in hours if h is not None and h >= 0})
        untimed = [i for i, (h, r) in enumerate(zip(hours, resources, strict=True))
                   if h is None and isinstance(r, dict) and r.get("resourceType") == "Observation"]  # fmt: skip
        if len(placed) > 1 and untimed:
            raise Refused(
                422, f"the observations fall in ICU hours {placed[0]} to {placed[-1]} of the "
                f"stay, and {len(untimed)} (at {untimed[:5]}) have no time to place them by: "
                "give each its time, or send one hour per message",
            )  # fmt: skip
        groups = {h: [i for i, g in enumerate(hours) if g == h or (g is None and h == placed[0])]
                  for h in placed}  # fmt: skip
    read = {}
    try:
        for h, idx in groups.items():
            read[h] = observations_to_hour([resources[i] for i in idx], h)
            for s in read[h].skipped:  # positions in the payload, not in the hour's share
                s["index"] = idx[s["index"]]
    except ValueError as e:
        raise Refused(422, str(e)) from None
    used = sum(r.used for r in read.values())
    skipped = sorted([*(s for r in read.values() for s in r.skipped), *unplaced],
                     key=lambda s: s["index"])  # fmt: skip
    converted: dict[str, list[str]] = {}
    for r in read.values():
        for c, units in r.converted.items():
            converted.setdefault(c, []).extend(u for u in units if u not in converted.get(c, []))
    intake.count(source, "observations", "used", used)
    intake.count(source, "observations", "skipped", len(skipped))
    if used == 0 and skipped:
        reasons = "; ".join(sorted({s["reason"] for s in skipped}))
        raise Refused(
            422, f"nothing in it gave a measurement the model uses ({len(skipped)} "
            f"skipped: {reasons}); nothing was scored",
        )  # fmt: skip
    seen = {"used": used, "converted": converted, "skipped": skipped}
    if iculos is not None:
        risk = ward_call(ward.add_hour, patient_id, read[iculos].row)
        intake.count(source, "hours", "scored")
        return {**risk, "observations": seen}
    held = []
    for h, r in sorted(read.items()):  # in order: an earlier hour is never closed by a later
        if r.used or len(read) == 1:
            held.append(ward_call(ward.add_observations, patient_id, h, r.values, r.corrected,
                                  stay, r.preliminary))  # fmt: skip
            intake.count(source, "hours", "held")
    if len(held) == 1:
        return {**held[0], "observations": seen}
    scored = [x for h in held for x in h.pop("scored")]
    return {"patient_id": patient_id, "pending": True, "hours": held, "scored": scored,
            "observations": seen}  # fmt: skip
