"""Alarms sent on to the hospital's interface engine as HL7 v2 ``ORU^R40`` messages over
MLLP (``vitalgru serve --forward-alarms HOST:PORT``).

Polling ``/events`` or reading its stream needs someone to write that client. Interface
engines and alarm-management systems (the ones that page a nurse's phone) take HL7 v2
alarms over MLLP, so the gateway sends each alarm there itself, shaped after IHE PCD's
Report Alert (PCD-04, ``ORU^R40``) with its facets and their MDC codes:

- ``OBR``: the alarm's id as placer and filler id (:func:`alarm_id`: the event log's id and
  the alarm's event number, unique across gateways and state files; an escalation carries
  the id of the alarm it escalates or ends, so the receiver ties them together), ``OBR-4``
  ``196616^MDC_EVT_ALARM^MDC``, ``OBR-7`` when it was raised;
- ``OBX`` facets under sub-ids ``1.0.0.0.n``: the event (``MDC_EVT_ALARM``, its value the
  alarm's kind as a local code, ``99VGR``: MDC has no term for a sepsis-risk or a
  ventricular-run alarm of this kind; priority and type in ``OBX-8``), its source (``ecg``
  or ``sepsis``), phase (``start``; ``continue`` for an escalation; ``end`` when a sepsis
  alarm episode is over, a lost ECG feed is back, a feed sends at its admitted rate again,
  a poor signal is good again or a heartbeat ends a pause), state
  (``active``; ``inactive`` at the end),
  priority (``PH`` for runs and pauses and escalations, ``PM`` for other physiological
  alarms, ``PL`` for technical ones) and type (``SP`` physiological, ``ST`` technical);
- ``NTE`` right after ``OBR``, a note on the alarm: its text (what it was, and for a
  sepsis alarm what raised the risk).

The bytes are UTF-8, and ``MSH-18`` says so (:data:`CHARSET`) in every message.

``MSH-10`` (the control id) is the :func:`control_id` of the event sent. Event numbers
begin at 1 in every gateway and in a new state file: the bare number, as it was sent before,
gave the alarms of two gateways the same order and control ids at a receiver that takes
both. The events a state file held when an upgrade gave its log an id keep the ids they
had before (``<seq>^VITALGRU``, ``VG<seq>``; :func:`vitalgru.types.event_log_id`): an
alarm forwarded before the upgrade and still open is ended, or escalated, under the id the
receiver knows it by.

This is the message's shape, not a claim of conformance: no IHE test tool has seen it.

Delivery: the forwarder reads the ward's event log from where it stopped and sends the
alarms and escalations in order, one at a time, each when the previous one was
acknowledged. ``AA`` (or ``CA``) moves on; ``AE``/``AR`` (the receiver will not take it) is
logged and counted and moves on; no answer (refused connection, timeout, a failed TLS handshake) is tried again,
with a growing wait (up to a minute), and nothing after it is sent meanwhile. Where it
stopped is kept in the ward's state file, so after a restart it goes on from there (an
alarm whose acknowledgement was lost with the connection is sent again: at least once, in
order). Started on a state file for the first time, it begins with the alarms raised from
then on, not the whole log. The ward's log keeps the newest events only
(:data:`~vitalgru.scoring.ward.MAX_EVENTS`): after an outage long enough for the events
after the cursor to be gone, they are logged as an error with their number, counted
(:attr:`AlarmForwarder.lost`, on ``/metrics`` and ``/health``) and passed over; the
alarms among them are not sent.

An escalation or an end says the kind of the alarm it names (``alarm_kind``), so that it
is sent even when that alarm is no longer in the log nor seen since a restart (the end
message needs only the alarm's id and kind; ``OBR-7``, when it was raised, is then left
empty): without it the receiver kept the alarm active. One that does not say it (logged
by an earlier version) and whose alarm cannot be found is logged as an error and counted
(:attr:`AlarmForwarder.unmatched`, on ``/metrics`` and ``/health``).
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from datetime import UTC, datetime
from typing import Any

from pipelines.mllp_server import tls_file
from vitalgru.io.hl7v2 import MLLP_END, MLLP_START, escape, message_bytes, read_message
from vitalgru.scoring.ward import Ward
from vitalgru.types import event_log_id

__all__ = ["AlarmForwarder", "alarm_id", "alarm_message", "client_tls", "control_id"]

logger = logging.getLogger(__name__)

#: The state file's key for the number of the last event handled.
CURSOR_KEY = "hl7_forward_seq"
#: The kinds forwarded, with their priority and type (IHE PCD's PH/PM/PL, SP/ST).
ALARM_CLASSES: dict[str, tuple[str, str]] = {
    "ventricular_run": ("PH", "SP"),
    "pause": ("PH", "SP"),
    "supraventricular_run": ("PM", "SP"),
    "frequent_ventricular_ectopy": ("PM", "SP"),
    "sepsis_risk": ("PM", "SP"),
    "poor_signal": ("PL", "ST"),
    "feed_lost": ("PL", "ST"),
    "feed_rate": ("PL", "ST"),
}
#: ``MSH-18`` of every message sent: its bytes are UTF-8. HL7 reads an empty ``MSH-18`` as
#: ASCII, and engines that default to 8859/1 misread a patient id or a facility with a
#: letter beyond it (``MÜLLER-0042``, ``Hôpital``), so the alarm matched no patient. Named
#: always, not only when a message needs it: an engine that cannot take UTF-8 says so on
#: the first alarm, while it is set up, not on the first patient with an accent.
CHARSET = "UNICODE UTF-8"
#: Longest wait (s) between tries while the receiver does not answer.
MAX_RETRY_S = 60.0
#: Characters of the event log's id in :func:`alarm_id`: the ids are kept within 20
#: characters in ``MSH-10`` (ST) and 22 in ``OBR-2``/``OBR-3`` (EI), the lengths of HL7
#: versions before 2.6 that many engines still apply; 8 hex digits (32 bits:
#: two logs share them once in 4 billion) and a dash leave 11 digits for the event number
#: (the ``OBR`` ids go without a namespace, ``^VITALGRU``, which would not fit; ``MSH-3``
#: names the sender).
LOG_ID_CHARS = 8


def alarm_id(log_id: str, seq: int, old_ids_up_to: int | None = None) -> str:
    """The id of alarm ``seq`` of the event log ``log_id`` in HL7 (``OBR-2``, ``OBR-3``):
    ``<first 8 characters of the log id>-<seq>``, unique across gateways and state files
    (:attr:`vitalgru.scoring.ward.Ward.log_id`, kept in the state file) where the bare
    number was not, and within the lengths of :data:`LOG_ID_CHARS`; ``<seq>^VITALGRU``, as
    before logs had ids, for an alarm numbered up to ``old_ids_up_to``
    (:attr:`vitalgru.scoring.ward.Ward.old_ids_up_to`, :func:`vitalgru.types.event_log_id`):
    one the receiver may hold open under that id."""
    named = event_log_id(log_id, old_ids_up_to, seq)
    if named is None:
        return f"{int(seq)}^VITALGRU"
    return f"{named[:LOG_ID_CHARS]}-{int(seq)}"


def control_id(log_id: str, seq: int, old_ids_up_to: int | None = None) -> str:
    """``MSH-10`` of the message of event ``seq``: its :func:`alarm_id`, or ``VG<seq>``, as
    before logs had ids, for an event numbered up to ``old_ids_up_to``."""
    named = event_log_id(log_id, old_ids_up_to, seq)
    if named is None:
        return f"VG{int(seq)}"
    return alarm_id(named, seq)


def client_tls(
    ca: str | None = None, cert: str | None = None, key: str | None = None
) -> ssl.SSLContext:
    """A TLS context for sending to the receiver: its certificate checked against ``ca``
    (PEM; None: the system's CAs) and its host name; with ``cert`` and ``key``, this
    gateway's certificate for a receiver that asks for one."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # host name and certificate checked
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca:  # only that CA, as create_default_context(cafile=ca) trusts
        tls_file("--forward-alarms-ca", ca, ctx.load_verify_locations, ca)
    else:
        ctx.load_default_certs()
    if cert:
        tls_file("--mllp-tls-cert/--mllp-tls-key", f"{cert} / {key}", ctx.load_cert_chain,
                 cert, key)  # fmt: skip
    return ctx


def _ts(iso: str | None) -> str:
    t = datetime.fromisoformat(iso) if iso else datetime.now(UTC)
    return t.astimezone(UTC).strftime("%Y%m%d%H%M%S+0000")


def _named_alarm(event: dict[str, Any]) -> dict[str, Any] | None:
    """The alarm an escalation or an end names, from what the event carries itself (its
    number and ``alarm_kind``) when the alarm is no longer at hand: its time raised
    unknown. None when the event does not say the alarm's kind (logged before it did)."""
    seq = event.get("escalates") or event.get("ends")
    kind = event.get("alarm_kind")
    if seq is None or not kind:
        return None
    source = "sepsis" if str(kind).startswith("sepsis") else "ecg"
    return {"seq": int(seq), "kind": kind, "source": source, "received_at": None}


def _names_alarm(event: dict[str, Any]) -> bool:
    """Whether ``event`` escalates or ends an alarm that may have been forwarded: one whose
    kind it does not say, or says is forwarded."""
    if event.get("kind") != "escalated" and event.get("ends") is None:
        return False
    kind = event.get("alarm_kind")
    return not kind or kind in ALARM_CLASSES


def alarm_message(
    event: dict[str, Any],
    alarm: dict[str, Any] | None = None,
    *,
    log_id: str,
    old_ids_up_to: int | None = None,
    facility: str = "",
    receiver: str = "",
    authority: str = "",
) -> str | None:
    """The ``ORU^R40`` message of a logged event (see the module's description): an alarm,
    an escalation, the end of a sepsis alarm episode, a pause, poor signal or a lost feed
    (``alarm``: the event it escalates or ends, when the log still has it; else the kind
    the event carries, ``alarm_kind``, and ``OBR-7`` is left empty), its ids those of the
    event log ``log_id`` (:func:`alarm_id`, :func:`control_id`; those of the events up to
    ``old_ids_up_to`` as they were before logs had ids). None for an event that is not forwarded
    (information, acknowledgements), and for an escalation or end whose alarm is not at
    hand and whose kind it does not carry."""
    kind = event.get("kind")
    # an event that ends an alarm names it (alarm_ended, feed_restored, signal_restored,
    # beats_resumed)
    escalation, ended = kind == "escalated", event.get("ends") is not None
    base = (alarm or _named_alarm(event)) if escalation or ended else event
    if base is None or base.get("kind") not in ALARM_CLASSES:
        return None
    priority, alert_type = ALARM_CLASSES[str(base["kind"])]
    if escalation:
        priority = "PH"
    order = alarm_id(log_id, int(base["seq"]), old_ids_up_to)
    raised = _ts(base["received_at"]) if base.get("received_at") else ""  # "": not known
    now = _ts(event.get("received_at"))
    pid = escape(str(event.get("patient_id") or base.get("patient_id") or ""))
    label = str(base["kind"]).replace("_", " ")
    text = escape(str(event.get("message") or base.get("message") or label))
    facets = [
        ("CWE", "196616^MDC_EVT_ALARM^MDC", f"{base['kind']}^{label}^99VGR",
         f"{priority}~{alert_type}"),
        ("ST", "68480^MDC_ATTR_ALERT_SOURCE^MDC", str(base.get("source", "")), ""),
        ("ST", "68481^MDC_ATTR_EVENT_PHASE^MDC",
         "end" if ended else "continue" if escalation else "start", ""),
        ("ST", "68482^MDC_ATTR_ALARM_STATE^MDC", "inactive" if ended else "active", ""),
        ("ST", "68484^MDC_ATTR_ALARM_PRIORITY^MDC", priority, ""),
        ("ST", "68485^MDC_ATTR_ALERT_TYPE^MDC", alert_type, ""),
    ]  # fmt: skip
    segments = [
        f"MSH|^~\\&|VITALGRU|{escape(facility)}|{escape(receiver)}||{now}||ORU^R40^ORU_R40|"
        f"{control_id(log_id, int(event['seq']), old_ids_up_to)}|P|2.6|||AL|NE||{CHARSET}",
        # PID-5 (required from v2.6): the name is not known here, an empty one of type U
        f"PID|||{pid}^^^{escape(authority)}^MR||^^^^^^U" if authority else f"PID|||{pid}||^^^^^^U",
        f"OBR|1|{order}|{order}|196616^MDC_EVT_ALARM^MDC|||{raised}",
        # the alarm's text is a note on the request (OBR [{NTE}] {OBX [{NTE}]}): after the
        # last OBX it was read as a note on the alert-type facet
        f"NTE|1||{text}",
    ]
    for i, (vt, code, value, flags) in enumerate(facets, 1):
        sub = f"1.0.0.0.{i if i < 5 else i + 1}"  # facet 5 (inactivation state) not sent
        when = f"|||{raised}" if i == 1 and raised else ""
        segments.append(f"OBX|{i}|{vt}|{code}|{sub}|{value}|||{flags}|||F{when}")
    return "\r".join(segments) + "\r"


class AlarmForwarder:
    """Sends the ward's alarms to an MLLP receiver (see the module's description), in a
    thread: :meth:`start`, :meth:`stop`.

    Parameters
    ----------
    ward : Ward
        Its event log is read, and its state file keeps where the forwarder stopped.
    host, port : str, int
        The receiver (the interface engine's MLLP listener).
    facility, receiver, authority : str
        ``MSH-4``, ``MSH-5``, and the assigning authority of the patient ids in ``PID-3``.
    timeout_s : float
        Seconds to wait for a connection and for each acknowledgement.
    poll_s : float
        Seconds between looks at the event log when there is nothing to send.
    tls : ssl.SSLContext, optional
        MLLP over TLS with this client context (:func:`client_tls`).
    """

    def __init__(
        self,
        ward: Ward,
        host: str,
        port: int,
        *,
        facility: str = "",
        receiver: str = "",
        authority: str = "",
        timeout_s: float = 10.0,
        poll_s: float = 0.2,
        retry_s: float = 1.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.ward, self.host, self.port = ward, host, int(port)
        self.options = {"facility": facility, "receiver": receiver, "authority": authority}
        self.timeout_s, self.poll_s, self.retry_s = timeout_s, poll_s, retry_s
        self.tls = tls
        journal = ward.journal
        kept = None if journal is None else journal.value(CURSOR_KEY)
        self.cursor = int(kept) if kept is not None else ward.last_seq
        if journal is not None and kept is None:  # kept at once: alarms raised before the
            try:  # first delivery are still sent after a restart, not skipped
                journal.set_value(CURSOR_KEY, self.cursor)
            except Exception:
                logger.exception("alarms: could not keep the cursor")
        self.sent = self.rejected = self.failures = 0
        self.lost = 0  # events gone from the ward's log before they were handled
        self.unmatched = 0  # escalations and ends not sent: their alarm could not be found
        self.failing = False  # the latest try got no acknowledgement
        self._sock: socket.socket | None = None
        self._buf = b""  # bytes read after the last acknowledgement, on this connection
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alarm-forwarder", daemon=True)
        self._alarms: dict[int, dict[str, Any]] = {}  # seq -> alarm, for escalations

    @property
    def lag(self) -> int:
        """Events logged that the forwarder has not handled yet."""
        return max(0, self.ward.last_seq - self.cursor)

    def start(self) -> None:
        self._thread.start()
        logger.info("alarms: forwarding to %s:%d from event %d", self.host, self.port,
                    self.cursor)  # fmt: skip

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.timeout_s + 5)
        self._close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                moved = self.step()
            except Exception:  # a bug here must not end the forwarding for good
                logger.exception("alarms: forwarding failed")
                moved = False
            if not moved:
                self._stop.wait(self.poll_s)

    def step(self) -> bool:
        """Handle the events after the cursor, in order, until one cannot be delivered or
        the log is read; True when the cursor moved."""
        got = self.ward.events(since=self.cursor, limit=100)
        moved = False
        if got.get("reset"):  # a log begun again (a new state file): from its start
            logger.warning("alarms: the ward's event log began again (event %d was handled, "
                           "the log's newest is %d); going on from its start", self.cursor,
                           self.ward.last_seq)  # fmt: skip
            self._moved_to(0)
            moved = True
        if got.get("dropped"):
            # the log keeps the newest events only: after a long outage the ones after the
            # cursor were gone, and their alarms were passed over without a word
            lost = int(got["dropped"])
            self.lost += lost
            logger.error("alarms: %d events after event %d were no longer in the ward's log "
                         "when the forwarder came to them (the receiver was unreachable too "
                         "long); any alarms among them were not sent", lost, self.cursor)  # fmt: skip
            self._moved_to(self.cursor + lost)
            moved = True
        for event in got["events"]:
            if event.get("kind") in ALARM_CLASSES:
                self._alarms[int(event["seq"])] = event
                if len(self._alarms) > 10_000:
                    self._alarms.pop(min(self._alarms))
            alarm = self._alarm(int(event.get("escalates") or event.get("ends") or 0))
            message = alarm_message(event, alarm, log_id=self.ward.log_id,
                                    old_ids_up_to=self.ward.old_ids_up_to, **self.options)  # fmt: skip
            if message is None and alarm is None and _names_alarm(event):
                # an end (or escalation) of an alarm neither seen in this process nor still
                # in the log, logged before events said the alarm's kind: the receiver
                # keeps showing that alarm active unless someone is told
                self.unmatched += 1
                logger.error("alarms: event %d (%s) names alarm %s, which is no longer in the "
                             "ward's log and whose kind it does not say: not sent; the "
                             "receiver may still show that alarm active", int(event["seq"]),
                             event.get("kind"),
                             event.get("escalates") or event.get("ends"))  # fmt: skip
            if message is not None and not self._deliver(message, int(event["seq"])):
                return moved
            self._moved_to(int(event["seq"]))
            moved = True
        return moved

    def _moved_to(self, seq: int) -> None:
        """The events up to ``seq`` are handled: the cursor, kept in the state file."""
        self.cursor = seq
        if self.ward.journal is not None:
            try:
                self.ward.journal.set_value(CURSOR_KEY, self.cursor)
            except Exception:
                logger.exception("alarms: could not keep the cursor")

    def _alarm(self, seq: int) -> dict[str, Any] | None:
        """The alarm event ``seq`` (an escalation's), from those seen or from the log."""
        if not seq:
            return None
        if seq not in self._alarms:
            got = self.ward.events(since=seq - 1, limit=1)["events"]
            if got and int(got[0]["seq"]) == seq:
                self._alarms[seq] = got[0]
        return self._alarms.get(seq)

    def _deliver(self, message: str, seq: int) -> bool:
        """Send until acknowledged (True), rejected (True: counted, moved past) or stopped
        (False)."""
        wait = self.retry_s
        while not self._stop.is_set():
            try:
                code, text = self._send(message)
            except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
                self.failures += 1
                self.failing = True
                self._close()
                if self.failures == 1 or self.failures % 20 == 0:
                    logger.warning("alarms: %s:%d did not take event %d (%s); trying again "
                                   "in %.0f s", self.host, self.port, seq, e, wait)  # fmt: skip
                self._stop.wait(wait)
                wait = min(wait * 2, MAX_RETRY_S)
                continue
            self.failing = False
            if code in ("AA", "CA"):
                self.sent += 1
            else:
                self.rejected += 1
                logger.error("alarms: %s:%d refused event %d (%s %s); not sent again",
                             self.host, self.port, seq, code, text)  # fmt: skip
            return True
        return False

    def _send(self, message: str) -> tuple[str, str]:
        if self._sock is None:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
            if self.tls is not None:
                try:
                    sock = self.tls.wrap_socket(sock, server_hostname=self.host)
                except OSError:
                    sock.close()
                    raise
            self._sock = sock
        self._sock.sendall(MLLP_START + message_bytes(message) + MLLP_END)
        control_id = read_message(message).control_id
        deadline = time.monotonic() + self.timeout_s
        while True:  # the acknowledgement of this message (MSA-2): a late or repeated one
            while MLLP_END not in self._buf:  # of an earlier message is passed over
                if time.monotonic() > deadline:
                    raise TimeoutError("no acknowledgement")
                chunk = self._sock.recv(65536)
                if not chunk:
                    raise ConnectionError("the receiver closed the connection")
                self._buf += chunk
            frame, self._buf = self._buf.split(MLLP_END, 1)
            ack = read_message(frame.lstrip(MLLP_START))  # ValueError: not HL7
            if ack.field("MSA", 2) == control_id:
                # why, from v2.7 on in ERR-8 only (MSA-3 withdrawn)
                return ack.field("MSA", 1).upper(), ack.field("MSA", 3) or ack.field("ERR", 8)
            logger.warning("alarms: %s:%d acknowledged %r while %r was awaited; passed over",
                           self.host, self.port, ack.field("MSA", 2), control_id)  # fmt: skip

    def _close(self) -> None:
        self._buf = b""
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None
