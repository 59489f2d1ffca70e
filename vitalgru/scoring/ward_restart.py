"""What a :class:`~vitalgru.scoring.ward.Ward` carries across a gateway restart: taking up
the journal a stopped ward kept (:meth:`WardRestart.restore`: sepsis patients where they
were, ECG feeds with their counts, trends, open technical alarms and what the beat network
had learnt of each patient), and keeping that memory while the ward runs
(:meth:`WardRestart.save_memory`).

:class:`WardRestart` is one of :class:`~vitalgru.scoring.ward.Ward`'s base classes and uses
the ward's monitors, beds, locks and journal; it is not used alone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from vitalgru.scoring.arrhythmia import ArrhythmiaMonitor, PatientMemory
from vitalgru.scoring.patient_ids import patient_id_problem
from vitalgru.scoring.ward_ecg_bed import EcgBed
from vitalgru.scoring.ward_ecg_trend import EARLIER_TRENDS, TREND_KEEP_MINUTES, kept_trends
from vitalgru.scoring.ward_events import _utc_now, merged_ids
from vitalgru.scoring.ward_sepsis import SepsisWard
from vitalgru.scoring.ward_sepsis_bed import SepsisBed
from vitalgru.scoring.ward_state import EcgAdmission, StateDamage, WardState

__all__ = ["MEMORY_EVERY_S", "WardRestart"]

logger = logging.getLogger("vitalgru.scoring.ward")

#: How often (s) the ECG patients' memory is written to the journal while the ward runs
#: (:meth:`Ward.close` writes it too): a crash loses at most this much of what the network
#: learnt, a clean stop nothing.
MEMORY_EVERY_S = 60.0


def _logged_since(event: Mapping[str, Any], admitted_at: str) -> bool:
    """Whether an event was logged at or after an admission (one without a time is not)."""
    if "received_at" not in event:
        return False
    return datetime.fromisoformat(str(event["received_at"])) >= datetime.fromisoformat(admitted_at)


def _open_ecg_alarms(state: WardState) -> dict[tuple[str, str], int]:
    """The lost-feed, poor-signal and pause alarms of the journal's ECG patients that nothing
    ended before the restart: ``{(patient, kind): the alarm's number}``. Only alarms of the
    patient's current stay count (raised at or after the admission; timestamps are to the
    second, so an alarm of an earlier stay in the very second of the readmission would be
    taken up too, and ended by the new stay's signal)."""
    admitted = {a.patient_id: a.admitted_at for a in state.ecg}
    now_id = merged_ids(state.events, "ecg")  # an alarm raised before a merge: the old id
    raised: dict[tuple[str, str], int] = {}
    ended: set[int] = set()
    for e in state.events:
        pid, kind = now_id(e.get("patient_id"), e["seq"]), e.get("kind")
        if e.get("ends") is not None:
            ended.add(int(e["ends"]))
        elif kind in ("feed_lost", "feed_rate", "poor_signal", "pause") and pid in admitted:
            if _logged_since(e, admitted[pid]):
                raised[(pid, str(kind))] = int(e["seq"])
    return {k: seq for k, seq in raised.items() if seq not in ended}


def _stay_ecg_alarms(state: WardState) -> dict[str, list[int]]:
    """The numbers of the alarms and notices the journal's ECG patients' current stays
    raised (logged at or after the admission, under the id the patient has now; ends are
    not among them), oldest first: ``{patient: [seq, ...]}``."""
    admitted = {a.patient_id: a.admitted_at for a in state.ecg}
    now_id = merged_ids(state.events, "ecg")
    out: dict[str, list[int]] = {}
    for e in state.events:
        pid = now_id(e.get("patient_id"), e["seq"])
        if e.get("source") == "ecg" and e.get("ends") is None and pid in admitted:
            if _logged_since(e, admitted[pid]):
                out.setdefault(str(pid), []).append(int(e["seq"]))
    return out


def _resumed_at(a: EcgAdmission, now: datetime, clock: float) -> tuple[datetime, float]:
    """Where a restored ECG feed's stream starts: its time 0 on the wall clock, and when
    the feed's index was there on the monotonic clock (how far ahead its next chunk can be),
    ``now`` being ``clock`` on that one.

    The stream resumes at the feed's index the journal kept (``next_index``), so its time 0
    is when the stream before the restart reached that index (``next_at``, never later
    than ``now``): a chunk sent after the outage at its index lies that much further on, a
    break at the stream's start, and the alarms after it are timed when the device took
    their beats. A feed without an index starts at the restart, ``now``, and so does one
    whose ``next_at`` was not kept (a journal from before it was) or lies before its
    admission (an edit by hand).
    """
    if a.next_index is None or a.next_at is None:
        return now, clock
    at = min(datetime.fromisoformat(a.next_at), now)
    if at < datetime.fromisoformat(a.admitted_at):
        return now, clock
    return at, clock - (now - at).total_seconds()


def _episode_start(risks: Sequence[Any]) -> Any:
    """The first hour of the alarm run the hours end in (:class:`HourRisk`)."""
    i = len(risks) - 1
    while i > 0 and risks[i - 1].alarm:
        i -= 1
    return risks[i]


class WardRestart(SepsisWard):
    """A ward's restarts (the methods of :class:`~vitalgru.scoring.ward.Ward` that are about
    them; the ward holds the state)."""

    # set by Ward.__init__
    ecg: ArrhythmiaMonitor | None
    memory_every_s: float | None
    state_damage: list[StateDamage]
    _memory_saved: float
    _ecg_beds: dict[str, EcgBed]
    _strips: OrderedDict[int, dict[str, Any]]  # by event number
    _queue_lock: threading.Lock

    def restore(self, state: WardState) -> dict[str, int]:
        """Take up the patients and the event log a journal kept (a ward just started,
        before any feed). Sepsis patients' stored hours are scored again, all patients
        together hour by hour, their inputs built once for all
        (:meth:`~vitalgru.scoring.early_warning.EarlyWarningMonitor.push_rounds`: time
        linear in the hours stored), so their risk, alarm state and alarm episodes are
        where they were, to the bit (without logging the onsets again); ECG feeds are admitted with their counts
        and the memory the journal kept of them (when it was kept by this ward's network;
        else afresh), a feed that sends its index at the index kept and on the clock of the
        stream before (:func:`_resumed_at`), and the log says their monitor restarted and
        with what. Patients of a monitor this ward lacks stay in the journal for a ward
        that has it.

        Rows of the state that could not be read (``state.damaged``), and stored hours the
        sepsis model refuses, are left out and said: a ``state_damaged`` event per patient
        they concern and one for the rest (:meth:`_log_damage`), and kept in
        :attr:`state_damage` for :meth:`WardJournal.set_aside`.

        Patients whose id could not be admitted now
        (:func:`~vitalgru.scoring.patient_ids.patient_id_problem`: kept from before ids were
        checked) are taken up all the same, and a warning says so.

        Returns ``{"ecg", "sepsis", "hours", "events", "ecg_memory", "damaged"}`` taken up
        (``ecg_memory``: ECG patients who kept their memory; ``damaged``: rows left out).
        """
        with self._queue_lock:
            if self._ecg_beds or self._sepsis_beds or self._seq:
                raise ValueError("restore() takes up a journal in a new, empty ward")
            self._events.extend(state.events)
            # past every number handed out before: events whose writes failed had theirs
            kept = self.journal.value("seq_reserved", 0) if self.journal is not None else 0
            self._seq = max(state.last_seq, kept if isinstance(kept, int) else 0)
            self._seq_reserved = self._seq
            for seq, strip in state.strips:  # one cut short by the restart stays so
                self._strips[seq] = {**strip, "complete": True}
            self._resume_escalations(state.events)
        for kept, monitor, *what in ((state.sepsis, self.sepsis, "sepsis", "early-warning"),
                                     (state.ecg, self.ecg, "ECG", "arrhythmia")):  # fmt: skip
            if kept and monitor is None:
                logger.warning("ward: %d %s patient(s) in the state file are not taken up: "
                               "this gateway has no %s model", len(kept), *what)  # fmt: skip
        for pid in sorted({a.patient_id for a in (*state.sepsis, *state.ecg)}):
            # admitted before ids were checked: taken up (a patient is not dropped), said
            if (problem := patient_id_problem(pid)) is not None:
                logger.warning("ward: patient id %.80r in the state file %s: taken up, but it "
                               "could not be admitted now; discharge the patient and admit "
                               "them under their proper id", pid, problem)  # fmt: skip
        damaged = list(state.damaged)
        n_hours = self._replay_sepsis(state, damaged) if state.sepsis and self.sepsis else 0
        carried = 0
        if self._shadow_ecg is None and any(a.shadow_memory is not None for a in state.ecg):
            # a shadow's memory not kept up while it is away: it would come back to a
            # patient as it was runs ago, beside a champion that went on
            self._journal("forget_memories", "shadow")
        if state.ecg and self.ecg:
            now, clock = datetime.now(UTC), time.monotonic()
            trends = self.journal.value("ecg_trends", {}) if self.journal is not None else {}
            still_open = _open_ecg_alarms(state)
            of_stay = _stay_ecg_alarms(state)
            logged = {int(e["seq"]): e for e in self._events}  # the log's own: acks mark them
            with self._model_lock, self._queue_lock:
                for a in state.ecg:
                    try:
                        memory, why = self._admit_remembered(a.patient_id, a.fs, a.memory)
                    except ValueError as e:  # a rate the monitor refuses (an edit by hand)
                        damaged.append(StateDamage("ecg_beds", {"patient_id": a.patient_id},
                                                   a.patient_id, "the ECG admission (not "
                                                   "taken up)", str(e)))  # fmt: skip
                        continue
                    carried += memory is not None
                    self._in_shadow(self._shadow_ecg, lambda sh, a=a: self._admit_shadow(sh, a))
                    start, index_at = _resumed_at(a, now, clock)
                    bed = EcgBed(
                        a.fs,
                        datetime.fromisoformat(a.admitted_at),
                        start,
                        last_data=clock,  # the feed is lost once silent that long from now
                        index_at=index_at,
                        received_s=a.received_s,
                        counts=Counter(a.counts),
                        earlier=kept_trends((trends or {}).get(a.patient_id)),
                        # still lost: the first samples end that alarm, none is raised again
                        lost_seq=still_open.get((a.patient_id, "feed_lost")),
                        # still off its rate: ended once the feed is measured at it again
                        rate_seq=still_open.get((a.patient_id, "feed_rate")),
                        # still poor: the signal's next good spell ends it, as it would have
                        poor_seq=still_open.get((a.patient_id, "poor_signal")),
                        # no beat since the pause: the new stream's first R peak ends it
                        pause_seq=still_open.get((a.patient_id, "pause")),
                        # a chunk whose answer the restart lost, sent again, is not taken
                        # twice (any chunk was taken as the first before)
                        next_index=a.next_index,
                    )
                    for seq, take_up in ((bed.poor_seq, "signal_alarm_open"),
                                         (bed.pause_seq, "pause_alarm_open")):  # fmt: skip
                        if seq is None:
                            continue
                        getattr(self.ecg, take_up)(a.patient_id)
                        self._in_shadow(
                            self._shadow_ecg,
                            lambda sh, a=a, f=take_up: getattr(sh.monitor, f)(a.patient_id),
                        )
                    # the stay's alarms back in its list, before the restart's notice: the
                    # ward page's "still going on" and the CDS cards read those going on
                    # there, and a ventricular run a minute before the restart is not lost
                    # from the pages (the list held only the alarms going on before)
                    # from the list's last: those going on first, then the newest others
                    # (with the restart's notice, the list holds no more than it keeps)
                    going = {s for s in bed.open_alarms if s in logged}
                    room = max(0, (bed.alerts.maxlen or 100) - 1 - len(going))
                    others = [s for s in of_stay.get(a.patient_id, ())
                              if s in logged and s not in going]  # fmt: skip
                    bed.taken_up = tuple(sorted({*going, *others[len(others) - room :]}))
                    bed.alerts.extend(logged[s] for s in bed.taken_up)
                    self._ecg_beds[a.patient_id] = bed
                    self._note_polarity(a.patient_id, bed)  # a flag kept in the memory
                    if memory is not None:
                        said = (
                            "beat labelling goes on from what the network had learnt of the "
                            f"patient ({memory.beats} beats, kept at {a.memory_saved_at})"
                        )
                    else:
                        said = f"beat labelling starts afresh ({why})"
                    event = {
                        "source": "ecg",
                        "patient_id": a.patient_id,
                        "kind": "monitor_restarted",
                        "memory": "carried" if memory is not None else why,
                        "memory_saved_at": a.memory_saved_at if memory is not None else None,
                        "message": f"the gateway restarted: {said}; the beat detector starts "
                        "on the next samples, and samples sent while it was down are lost",
                    }
                    bed.alerts.append(self._event(event))
        if damaged:
            self._log_damage(damaged)
            self.state_damage = damaged
        return {
            "ecg": len(self._ecg_beds),
            "sepsis": len(self._sepsis_beds),
            "hours": n_hours,
            "events": len(state.events),
            "ecg_memory": carried,
            "damaged": len(damaged),
        }

    def _log_damage(self, damaged: list[StateDamage]) -> None:
        """Say what of the state file could not be taken up: a ``state_damaged`` event per
        patient it concerns (whether the patient was taken up, and what was lost) and one
        for the rest (events, strips, the models run with), and a warning each."""
        by_patient: dict[str | None, list[StateDamage]] = {}
        for d in damaged:
            by_patient.setdefault(d.patient_id, []).append(d)
        with self._queue_lock:
            for pid, lost in by_patient.items():
                what = "; ".join(d.message for d in lost)
                logger.warning("ward: the state file could not all be read%s: %s",
                               f" for patient {pid}" if pid else "", what)  # fmt: skip
                event: dict[str, Any] = {"source": "ward", "patient_id": pid,
                                         "kind": "state_damaged",
                                         "lost": [d.message for d in lost]}  # fmt: skip
                if pid is None:
                    said = "part of the ward's log could not be read and is left out"
                elif pid in self._ecg_beds or pid in self._sepsis_beds:
                    event["taken_up"] = True
                    said = (f"patient {pid} was taken up, but part of what was kept of them "
                            "could not be read and is left out")  # fmt: skip
                else:
                    event["taken_up"] = False
                    said = (f"patient {pid} could not be taken up: their admission could not "
                            "be read; they are not monitored until admitted again")  # fmt: skip
                event["message"] = f"the gateway restarted and its state file is damaged: {said}"
                self._event(event)

    def _replay_sepsis(self, state: WardState, refused: list[StateDamage]) -> int:
        """Score the stored hours again (see :meth:`restore`); a stored hour the model
        refuses (an edit by hand) is left out, as a damaged row is, and added to
        ``refused``."""
        with self._model_lock:
            beds = {}
            for a in state.sepsis:
                self.sepsis.admit(a.patient_id)
                self._in_shadow(self._shadow_sepsis, lambda sh, a=a: sh.admit(a.patient_id))
                beds[a.patient_id] = SepsisBed(a.admitted_at, dict(a.static))
            kept = {a.patient_id: a for a in state.sepsis}
            rounds = [{a.patient_id: a.hours[k] for a in state.sepsis if k < len(a.hours)}
                      for k in range(max(len(a.hours) for a in state.sepsis))]  # fmt: skip
            # round by round as the live ward pushes hours, the inputs built once for all
            scored = self.sepsis.push_rounds(rounds)
            for k, (rows, (risks, bad)) in enumerate(zip(rounds, scored, strict=True)):
                for pid, e in bad.items():
                    del rows[pid]  # the shadow is not given it either
                    keys = kept[pid].hour_keys
                    hour = keys[k] if k < len(keys) else k + 1
                    refused.append(StateDamage(
                        "sepsis_hours", {"patient_id": pid, "hour": hour}, pid,
                        f"ICU hour {hour} (the model refused it; scored again without it)",
                        str(e)))  # fmt: skip
                for r in risks:
                    bed = beds[r.patient_id]
                    bed.episodes += r.alarm and not bed.in_alarm
                    bed.scored(r, None)
            n = sum(len(risks) for risks, _ in scored)
            self._in_shadow(self._shadow_sepsis, lambda sh: sh.score_rounds(
                rounds, [risks for risks, _ in scored]))  # fmt: skip
            stay = self._stay_onsets(state, beds)
            onsets = {pid: es[-1] for pid, es in stay.items()}
            paged = {pid: e for pid, es in stay.items() for e in es
                     if e.get("kind") == "sepsis_risk"}  # fmt: skip
            for pid, bed in beds.items():  # the episode going on: its logged onset
                if bed.in_alarm:
                    first = _episode_start(bed.risks)
                    bed.onset = onsets.get(pid)
                    if bed.onset is not None and int(bed.onset["hour"]) != int(first.hour):
                        bed.onset = None  # an earlier episode's, ended: not this one's
                    if bed.onset is None:
                        # its onset was never logged (the gateway stopped between writing
                        # the hour and its event): logged now, so it is seen and paged
                        event = {**self._sepsis_alarm_event(pid, first, [], paged.get(pid)),
                                 "recovered": True}  # fmt: skip
                        with self._queue_lock:
                            bed.onset = self._event(event)
                        if bed.onset["kind"] == "sepsis_risk":  # it paged: a lockout's start
                            paged[pid] = bed.onset
                bed.paged = paged.get(pid)  # a lockout goes on across the restart
                for e in stay.get(pid, []):  # what each logged onset said raised the risk
                    bed.drivers[int(e["hour"])] = list(e.get("drivers", []))
                self._end_left_open(pid, stay.get(pid, []), bed.onset, state.events)
            for a in state.sepsis:  # hours being assembled when the gateway stopped
                bed = beds[a.patient_id]
                last = bed.last.hour if bed.last is not None else 0
                bed.pending = {h: v for h, v in a.pending.items() if h > last}
                if a.last_observation is not None:  # empty hours go on being scored
                    bed.last_observation = datetime.fromisoformat(a.last_observation)
                # "nothing came yet" counts from the admission's taking, or, in a file from
                # before it was kept, from now: never a ward marked quiet as it restarts
                bed.taken_at = (self.sepsis_now() if a.taken_at is None
                                else datetime.fromisoformat(a.taken_at))  # fmt: skip
                if a.last_row_at is not None:  # a feed that stopped about the restart
                    bed.last_row_at = datetime.fromisoformat(a.last_row_at)
                bed.restored_at = self.sepsis_now()  # when the file kept neither time
            with self._queue_lock:
                self._sepsis_beds.update(beds)
        return n

    def _end_left_open(
        self,
        pid: str,
        onsets: Sequence[Mapping[str, Any]],
        going_on: Mapping[str, Any] | None,
        events: Sequence[Mapping[str, Any]],
    ) -> None:
        """Log the end of each logged onset of ``pid``'s stay that no event ended and that
        is not the episode going on after the hours were scored again (the gateway stopped
        between an hour and the event that ended its episode, or a model of another alarm
        line scored them again): an ``alarm_ended`` with ``reason`` ``restart``, so that
        whoever shows it as active can clear it."""
        ended = {e.get("ends") for e in events if e.get("kind") == "alarm_ended"}
        for onset in onsets:
            if onset["seq"] in ended or (going_on is not None and going_on["seq"] == onset["seq"]):
                continue
            with self._queue_lock:
                self._event({
                    "source": "ward", "patient_id": pid, "kind": "alarm_ended",
                    "ends": onset["seq"], "alarm_kind": onset.get("kind"), "reason": "restart",
                    "message": f"the alarm episode that began at ICU hour {onset.get('hour')} "
                    "is not going on in the hours scored again after the gateway restarted: "
                    "it ends here",
                })  # fmt: skip

    def _stay_onsets(
        self, state: WardState, beds: Mapping[str, Any]
    ) -> dict[str, list[dict[str, Any]]]:
        """The logged sepsis alarm onsets of each restored bed's current stay, oldest first:
        logged at or after its admission (an earlier stay of the same id, or of an id
        merged into it, is not this one: its lockout and drivers are not this stay's; the
        timestamps are to the second, as for the ECG alarms)."""
        now_id = merged_ids(state.events)  # events logged before a merge: the old id
        out: dict[str, list[dict[str, Any]]] = {}
        for e in state.events:
            if e.get("source") != "sepsis" or "hour" not in e:
                continue
            pid = now_id(e.get("patient_id"), e["seq"])
            bed = beds.get(pid)
            if bed is not None and _logged_since(e, bed.admitted_at):
                out.setdefault(pid, []).append(e)
        return out

    def _admit_remembered(
        self, pid: str, fs: float, kept: bytes | None
    ) -> tuple[PatientMemory | None, str]:
        """Admit a restored ECG patient with the memory the journal kept when it fits this
        monitor's network; else afresh. Returns the memory used and, without one, why."""
        assert self.ecg is not None
        if kept is None:
            why = "no memory was kept"
        else:
            try:
                memory = PatientMemory.from_bytes(kept)
                self.ecg.admit(pid, fs, memory=memory)
                return memory, ""
            except ValueError as e:
                why = ("the memory was kept by another model" if "another network" in str(e)
                       else "the memory kept could not be read")  # fmt: skip
                logger.warning("ward: patient %s starts afresh: %s", pid, e)
        self.ecg.admit(pid, fs)
        return None, why

    def _memory_due(self) -> bool:
        return (self.memory_every_s is not None
                and time.monotonic() - self._memory_saved >= self.memory_every_s)  # fmt: skip

    def save_memory(self) -> int:
        """Write every ECG patient's memory, and each shadow's comparison, to the journal
        now (the caller may hold no lock); returns how many memories (0 without a journal
        or an arrhythmia monitor)."""
        with self._model_lock:
            return self._save_memory()

    def _save_memory(self) -> int:  # the caller holds the model lock
        self._memory_saved = time.monotonic()
        if self.journal is None:
            return 0
        self._save_shadow()
        if self.ecg is None:
            return 0
        with self._queue_lock:
            pids = list(self._ecg_beds)
            # the last day of each stream only: what is kept of it (not all its minutes
            # built, under the lock, every minute)
            trends = {pid: kept_trends([*b.earlier, b.trend(TREND_KEEP_MINUTES)],
                                       EARLIER_TRENDS + 1)
                      for pid, b in self._ecg_beds.items()}  # fmt: skip
        self._journal("set_value", "ecg_trends", trends)
        kept = {pid: self.ecg.memory(pid).to_bytes() for pid in pids}
        at = _utc_now()
        self._journal("ecg_memory", kept, at)
        self._in_shadow(self._shadow_ecg, lambda sh: self._journal(
            "ecg_memory", {p: sh.monitor.memory(p).to_bytes() for p in pids}, at, "shadow"))  # fmt: skip
        return len(kept)
