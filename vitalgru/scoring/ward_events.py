"""The event log of a :class:`~vitalgru.scoring.ward.Ward`: every alarm, sepsis episode,
lost feed and acknowledgement, numbered, for the integration engine that polls it; alarms
no one acknowledges in time escalated, level after level; every change written to the state
file.

:class:`WardEvents` is the root of :class:`~vitalgru.scoring.ward.Ward`'s base classes (the
ECG feeds and the sepsis hours both log here) and uses the ward's lock and journal; it is
not used alone.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from vitalgru.errors import ConflictError, ModelMissingError, WardClosedError
from vitalgru.scoring.patient_ids import check_patient_id
from vitalgru.scoring.ward_journal import WardJournal

__all__ = ["INFO_KINDS", "REPEATED_SEPSIS_KIND", "WardEvents", "escalation_delays", "merged_ids"]

logger = logging.getLogger("vitalgru.scoring.ward")

#: Event numbers reserved in the journal at a time: after a crash the log goes on past the
#: reservation, so up to this many events whose writes failed keep their numbers unique.
SEQ_RESERVED = 1000

#: Key in the state file of the event log's id (:attr:`WardEvents.log_id`).
LOG_ID_KEY = "log_id"
#: Key in the state file, beside the log's id, of the last event number the state file had
#: when its log was given an id (:attr:`WardEvents.old_ids_up_to`).
OLD_IDS_KEY = "old_ids_up_to"

#: Kind of a sepsis alarm onset that falls in the lockout after an acknowledged alarm of the
#: same patient (``vitalgru serve --sepsis-lockout-h``): logged and ended like an alarm, it
#: pages no one.
REPEATED_SEPSIS_KIND = "sepsis_risk_repeated"

#: Events that tell, and need no one to acknowledge them (they never escalate).
INFO_KINDS = frozenset(
    {
        "feed_restored",
        "signal_restored",
        "beats_resumed",
        "monitor_restarted",
        "alarm_ended",
        REPEATED_SEPSIS_KIND,
    }
)


def escalation_delays(after_s: float | Sequence[float] | None) -> tuple[float, ...]:
    """The seconds after an alarm at which each level of its escalation falls due while no one
    acknowledges it: one delay (one level), several (an escalation chain: the nurse's phone,
    then the charge nurse, then the physician on call, say) or None (never; an empty tuple).

    ValueError unless every delay is > 0 and finite and each is later than the one before.
    """
    if after_s is None:
        return ()
    delays = (after_s,) if isinstance(after_s, int | float) else tuple(after_s)
    try:
        out = tuple(float(d) for d in delays)
    except (TypeError, ValueError):
        raise ValueError(f"escalate_after_s must be seconds, got {after_s!r}") from None
    if not out or not all(0 < d < float("inf") for d in out):
        raise ValueError(f"escalate_after_s must be > 0 seconds (None: never), got {after_s!r}")
    if any(b <= a for a, b in zip(out, out[1:], strict=False)):
        raise ValueError(
            f"escalate_after_s: each level must come later than the one before, got {after_s!r}"
        )
    return out


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="seconds")


def _iso_ms(t: datetime) -> str:
    """``t`` to the millisecond: the wall time of an ECG sample (an alarm's onset, a strip's
    first sample), which, cut to the second, put a strip's samples up to a second (360 at
    360 Hz) off the time they were taken. Times written before, to the second, read alike."""
    return t.isoformat(timespec="milliseconds")


def _utc_now() -> str:
    return _iso(datetime.now(UTC))


def merged_ids(events: list[dict[str, Any]], monitor: str = "sepsis") -> Callable[..., str]:
    """``(id, seq=None) -> the id its stay goes on under``, following the
    ``patient_merged`` events of ``monitor`` (``sepsis`` or ``ecg``; an event without one is
    a sepsis merge) in the log (a record merged into one that was merged again ends at the
    last). With ``seq``, the number of an event of that id, only merges logged after it are
    followed: an id given to another patient after its merge is that patient's again."""
    into = {str(e.get("merged_from")): (str(e.get("patient_id")), int(e["seq"]))
            for e in events if e.get("kind") == "patient_merged"
            and e.get("monitor", "sepsis") == monitor}  # fmt: skip

    def now_id(pid: Any, seq: int | None = None) -> str:
        pid, seen = str(pid), set()
        while pid in into and pid not in seen and (seq is None or seq < into[pid][1]):
            seen.add(pid)
            pid = into[pid][0]
        return pid

    return now_id


class WardEvents:
    """The ward's numbered event log, acknowledgements and escalations (the methods of
    :class:`~vitalgru.scoring.ward.Ward` that are about them; the ward holds the state)."""

    # set by Ward.__init__
    escalation_s: tuple[float, ...]  # :func:`escalation_delays`; empty: never
    journal: WardJournal | None
    journal_errors: int
    _seq_reserved: int  # event numbers kept as handed out in the journal, up to this
    events_logged: Counter[tuple[str, str]]
    _events: deque[dict[str, Any]]
    _awaiting_ack: dict[int, tuple[float, int]]  # alarm seq -> (when, level) of its next
    _seq: int
    _closed: bool
    _queue_lock: threading.Lock  # queues, beds, the event log
    #: This event log's id (:meth:`_take_log_id`): event numbers are unique within a log, and
    #: with the log's id across gateways and state files (the FHIR identifiers of what the
    #: gateway logged, :func:`vitalgru.reports.fhir.event_identifier`).
    log_id: str
    #: The last event number of the state file when its log was given an id, by an upgrade
    #: from a version that numbered events without one (None: the log had none then, or
    #: there is no state file): the events up to it keep the ids they were sent under
    #: before (:func:`vitalgru.types.event_log_id`).
    old_ids_up_to: int | None

    def _take_log_id(self) -> tuple[str, int | None]:
        """The event log's id kept in the state file, or a new random one (kept there, so
        that the same state file keeps it over restarts; without one, each run is a new
        log with its own numbers, and gets a new id); and :attr:`old_ids_up_to`, kept
        beside it. A state file that already holds events when its log is given an id was
        written before logs had ids: its last event number is kept as the boundary (the
        number its restart goes on after: the newest event, or the numbers reserved ahead
        of it, which events whose writes failed may have used)."""
        if self.journal is None:
            return uuid.uuid4().hex, None
        kept, upto = self.journal.value(LOG_ID_KEY), self.journal.value(OLD_IDS_KEY)
        if isinstance(kept, str) and kept:
            return kept, upto if isinstance(upto, int) and upto > 0 else None
        reserved = self.journal.value("seq_reserved", 0)
        last = max(self.journal.last_event_seq(), reserved if isinstance(reserved, int) else 0)
        new = uuid.uuid4().hex
        with self._together():  # the boundary with the id: a log id without it is a new log's
            if last > 0:
                self._journal("set_value", OLD_IDS_KEY, last)
            self._journal("set_value", LOG_ID_KEY, new)
        return new, last if last > 0 else None

    def _need(self, monitor: object, what: str, change: bool = True) -> None:
        """ValueError unless the ward was started with the model ``what`` needs and, for a
        request that ``change``s it, has not stopped
        (:class:`~vitalgru.errors.WardClosedError`; what it holds can still be read)."""
        if change:
            self._open()
        if monitor is None:
            raise ModelMissingError(f"this ward was started without a {what} model")

    def _open(self) -> None:
        """WardClosedError once :meth:`Ward.close` has run: what the ward took now would be
        answered as taken and lost (the state file is closed)."""
        if self._closed:
            raise WardClosedError("the ward has stopped: it takes nothing more")

    def _journal(self, method: str, *args: Any) -> None:
        """Write to the journal, if any. A failed write (a full disk) is logged and counted
        (:meth:`status`) and the ward goes on: the patients' alarms come before the copy."""
        if self.journal is None:
            return
        try:
            getattr(self.journal, method)(*args)
        except (sqlite3.Error, OSError, OverflowError, ValueError):  # a number SQLite refuses
            self.journal_errors += 1
            logger.exception("ward: could not write %s to %s", method, self.journal.path)

    @property
    def state_write_errors(self) -> int:
        """Writes to the state file that failed: single writes, and groups of them
        (:meth:`_together`) whose transaction failed."""
        return self.journal_errors + (self.journal.errors if self.journal is not None else 0)

    @property
    def state_write_failing(self) -> bool:
        """Whether the latest write to the state file failed (a full disk): what the ward
        takes now is not kept for a restart until a write succeeds again."""
        return self.journal is not None and self.journal.failing

    @contextmanager
    def _together(self) -> Iterator[None]:
        """The journal writes made inside land together or not at all
        (:meth:`~vitalgru.scoring.ward_journal.WardJournal.together`)."""
        if self.journal is None:
            yield
            return
        with self.journal.together():
            yield

    def _event(self, event: dict[str, Any]) -> dict[str, Any]:
        """Append to the log and return the logged event (the caller holds the queue
        lock)."""
        self._seq += 1
        if self.journal is not None and self._seq > self._seq_reserved:
            # numbers handed out are kept ahead of the events written, so a restart after
            # event writes failed (a full disk) does not give their numbers again
            self._seq_reserved = self._seq + SEQ_RESERVED
            self._journal("set_value", "seq_reserved", self._seq_reserved)
        self._events.append({"seq": self._seq, "received_at": _utc_now(), **event})
        self.events_logged[(str(event.get("source")), str(event.get("kind")))] += 1
        if self._escalates(event):
            self._awaiting_ack[self._seq] = (time.monotonic() + self.escalation_s[0], 1)
        self._journal("add_event", self._events[-1])
        return self._events[-1]

    def _merge_checked(
        self, beds: Mapping[str, Any], old: str, new: str, on: str, what: str
    ) -> Any:
        """The bed ``old`` has in ``beds`` (those on ``on``: "ECG monitoring"), once a merge
        of it into ``new`` is allowed (the caller holds the queue lock): ValueError for the
        same id, a ``new`` that cannot name a patient (:func:`check_patient_id`) or one with
        ``what`` ("a stream") of their own, KeyError for an ``old`` not there."""
        check_patient_id(new)
        if old == new:
            raise ValueError(f"patient {old!r} cannot be merged into itself")
        bed = beds.get(old)
        if bed is None:
            raise KeyError(f"patient {old!r} is not on {on}")
        if new in beds:
            raise ConflictError(f"patient {new!r} is already on {on} with {what} of their own; "
                             f"{old!r} was not merged into it (discharge one of the two first)")  # fmt: skip
        return bed

    def _log_merge(self, monitor: str, old: str, new: str, what: str) -> None:
        """Log a ``patient_merged`` event: ``what`` of ``monitor`` ("sepsis", "ecg") goes on
        under ``new`` (the caller holds the queue lock)."""
        self._event({"source": "ward", "patient_id": new, "kind": "patient_merged",
                     "monitor": monitor, "merged_from": old,
                     "message": f"patient {old} merged into {new}: {what} goes on under {new}"})  # fmt: skip

    def _escalates(self, event: Mapping[str, Any]) -> bool:
        """Whether ``event`` is an alarm that escalates when no one acknowledges it."""
        return (
            bool(self.escalation_s)
            and event.get("source") != "ward"
            and event.get("kind") not in INFO_KINDS
            and not event.get("acknowledged")
        )

    def _escalate(self) -> None:
        """Log an ``escalated`` event for each alarm whose time to be acknowledged has run
        out at its next level (``level``: 1, 2, ... of :attr:`escalation_s`), and mark the
        alarm ``escalated`` (``{"at", "seq", "level"}``, the latest) for the summaries, the
        ward page and its FHIR flag (the caller holds the queue lock)."""
        now = time.monotonic()
        due = sorted(seq for seq, (at, _) in self._awaiting_ack.items() if at <= now)
        if not due:
            return
        wanted = set(due)
        kept = {e["seq"]: e for e in self._events if e["seq"] in wanted}
        levels = len(self.escalation_s)
        for seq in due:
            at, level = self._awaiting_ack.pop(seq)
            alarm = kept.get(seq)
            if alarm is None:  # dropped from the log meanwhile
                continue
            if level < levels:  # the next level, counted from the alarm as this one was
                self._awaiting_ack[seq] = (
                    at + self.escalation_s[level] - self.escalation_s[level - 1],
                    level + 1,
                )
            minutes = self.escalation_s[level - 1] / 60
            of = f" (escalation {level} of {levels})" if levels > 1 else ""
            escalation = self._event(
                {
                    "source": "ward",
                    "patient_id": alarm.get("patient_id"),
                    "kind": "escalated",
                    "escalates": seq,
                    "alarm_kind": alarm.get("kind"),
                    "level": level,
                    "message": f"{alarm.get('kind')} of patient {alarm.get('patient_id')} "
                    f"(event {seq}, {alarm.get('received_at')}) has not been acknowledged "
                    f"for {minutes:g} min{of}",
                }
            )
            alarm["escalated"] = {
                "at": escalation["received_at"],
                "seq": escalation["seq"],
                "level": level,
            }
            self._journal("add_event", alarm)  # the stored copy too

    def _resume_escalations(self, events: Sequence[Mapping[str, Any]]) -> None:
        """After a restart: the alarms in ``events`` still waiting for someone get their next
        level of escalation, counted from when they were raised (a level that fell due while
        the gateway was down falls due at once, the ones after it a tick apart; a level
        logged is not logged again, nor one past this ward's last). The caller holds the
        queue lock."""
        done: dict[int, int] = {}  # alarm seq -> highest level logged
        for e in events:
            if e.get("kind") == "escalated" and isinstance(e.get("escalates"), int):
                seq = e["escalates"]
                done[seq] = max(done.get(seq, 0), int(e.get("level") or 1))
        now, wall = time.monotonic(), datetime.now(UTC)
        for e in events:  # alarms still waiting for someone, as long as they waited
            if not self._escalates(e):
                continue
            marked = e.get("escalated")
            level = max(done.get(e["seq"], 0),
                        int(marked.get("level") or 1) if isinstance(marked, Mapping) else 0)  # fmt: skip
            if level >= len(self.escalation_s):
                continue
            try:
                age = (wall - datetime.fromisoformat(e["received_at"])).total_seconds()
            except (KeyError, TypeError, ValueError):  # no time kept: wait it all
                age = 0.0
            self._awaiting_ack[e["seq"]] = (
                now + self.escalation_s[level] - max(age, 0.0),
                level + 1,
            )

    def acknowledge(
        self, seq: int, by: str, note: str = "", via: str | None = None
    ) -> dict[str, Any]:
        """Record that a clinician has seen event ``seq`` (an alarm, a feed lost): the event
        gets ``acknowledged`` (``{"by", "at", "note"}``), which the summaries, the ward page
        and :meth:`events` (``unacknowledged``) show, and the log gets an ``acknowledged``
        event of its own for the integration engine. Returns the acknowledged event.

        ``via``: the name of the access token the acknowledgement came with (the gateway's
        record of who was signed in, beside the name they typed), kept in both.

        KeyError for an event not in the log (never logged, or dropped as old); ValueError
        for one already acknowledged, an acknowledgement, or an empty or overlong name.
        """
        self._open()
        who = str(by).strip()
        if not 1 <= len(who) <= 100:
            raise ValueError("say who acknowledges (1 to 100 characters)")
        if len(note) > 500:
            raise ValueError("a note is at most 500 characters")
        with self._queue_lock:
            event = next((e for e in self._events if e["seq"] == seq), None)
            if event is None:
                raise KeyError(f"event {seq} is not in the log (never logged, or dropped as old)")
            if event.get("source") == "ward":
                raise ValueError(f"event {seq} is an acknowledgement itself")
            done = event.get("acknowledged")
            if done:
                raise ConflictError(
                    f"event {seq} was already acknowledged by {done['by']} at {done['at']}"
                )
            event["acknowledged"] = {"by": who, "at": _utc_now(), "note": note}
            self._awaiting_ack.pop(seq, None)
            if via is not None:
                event["acknowledged"]["via"] = via
            pid = event.get("patient_id")
            with self._together():  # the stored copy and the acknowledgement, or neither
                self._journal("add_event", event)
                self._event({
                    "source": "ward",
                    "patient_id": pid,
                    "kind": "acknowledged",
                    "acknowledges": seq,
                    "by": who,
                    "note": note,
                    **({"via": via} if via is not None else {}),
                    "message": f"{who} acknowledged event {seq} ({event.get('kind')} of "
                    f"patient {pid})" + (f": {note}" if note else ""),
                })  # fmt: skip
            return dict(event)

    def alarms_ended(self, seqs: Iterable[int]) -> dict[int, str]:
        """``{seq: when it ended}`` of those of the alarms ``seqs`` whose end the log
        holds: the ``ended_at`` (an ECG condition's end on the stream's clock, the one its
        ``onset_at`` is on), else the ``received_at``, of the event that ``ends`` it
        (``alarm_ended``, ``feed_restored``, ...; an alarm with no such event, momentary or
        going on, is left out)."""
        wanted = {int(s) for s in seqs}
        with self._queue_lock:
            return {int(e["ends"]): str(e.get("ended_at") or e["received_at"]) for e in self._events
                    if e.get("ends") is not None and int(e["ends"]) in wanted}  # fmt: skip

    def events(
        self,
        since: int = 0,
        limit: int = 500,
        unacknowledged: bool = False,
        patient_id: str | None = None,
        source: str | None = None,
    ) -> dict[str, Any]:
        """Events numbered after ``since``, oldest first, at most ``limit``; with
        ``unacknowledged``, only those no one has acknowledged (acknowledgements left out),
        with ``patient_id`` or ``source`` (``ecg``, ``sepsis``, ``ward``) only that
        patient's or source's. Returns ``{"events", "last_seq" (pass it as ``since`` next
        time: the newest event looked at, so events a filter left out are not looked at
        again), "dropped" (events after ``since`` no longer kept, of any patient)}``, and
        ``"reset": True`` when ``since`` is past the newest event (the log began again, a new
        state file: its events are given from the start; the cursor was kept before and the
        first alarms never came)."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        with self._queue_lock:
            reset = since > self._seq
            if reset:  # a cursor of a log begun again (a new state file): from its start
                since = 0
            kept = [
                e
                for e in self._events
                if e["seq"] > since
                and not (unacknowledged and (e.get("acknowledged") or e.get("source") == "ward"))
                and (patient_id is None or e.get("patient_id") == patient_id)
                and (source is None or e.get("source") == source)
            ]
            first_kept = self._events[0]["seq"] if self._events else self._seq + 1
            dropped = max(0, first_kept - since - 1) if self._seq > since else 0
            out = [dict(e) for e in kept[:limit]]  # copies: acknowledge() adds to the log's
            got = {
                "events": out,
                "last_seq": out[-1]["seq"] if len(kept) > limit else max(since, self._seq),
                "dropped": dropped,
            }
            return {**got, "reset": True} if reset else got

    @property
    def last_seq(self) -> int:
        """The number of the newest event logged (0 before the first)."""
        return self._seq
