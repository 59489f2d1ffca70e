"""Alarms sent on to the hospital's interface engine as HL7 v2 ``ORU^R40`` messages over
MLLP (``vitalgru serve --forward-alarms HOST:PORT``).

Polling ``/events`` or reading its stream needs someone to write that client. Interface
engines and alarm-management systems (the ones that page a nurse's phone) take HL7 v2
alarms over MLLP, so the gateway sends each alarm there itself, as the ``ORU^R40`` message
of :mod:`pipelines.hl7_alarms` (IHE PCD's Report Alert, PCD-04).

Delivery: the forwarder reads the ward's event log from where it stopped and sends the
alarms and escalations in order, one at a time, each when the previous one was
acknowledged. ``AA`` (or ``CA``) moves on; ``AE``/``AR`` (the receiver will not take it) is
logged and counted and moves on, and ``/health`` is ``degraded`` until an alarm is taken
again (a receiver that refuses every alarm, misconfigured, pages no one); no answer (refused connection, timeout, a failed TLS handshake) is tried again,
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
from typing import Any

from pipelines.hl7_alarms import ALARM_CLASSES, alarm_id, alarm_message, control_id
from pipelines.mllp_server import tls_file
from vitalgru.io.hl7v2 import MLLP_END, MLLP_START, message_bytes, read_message
from vitalgru.scoring.ward import Ward

__all__ = ["AlarmForwarder", "alarm_id", "alarm_message", "client_tls", "control_id"]

logger = logging.getLogger(__name__)

#: The state file's key for the number of the last event handled.
CURSOR_KEY = "hl7_forward_seq"
#: Longest wait (s) between tries while the receiver does not answer.
MAX_RETRY_S = 60.0


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


def _names_alarm(event: dict[str, Any]) -> bool:
    """Whether ``event`` escalates or ends an alarm that may have been forwarded: one whose
    kind it does not say, or says is forwarded."""
    if event.get("kind") != "escalated" and event.get("ends") is None:
        return False
    kind = event.get("alarm_kind")
    return not kind or kind in ALARM_CLASSES


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
        self.refusing = False  # the latest alarm acknowledged was refused (AE/AR)
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
            self.refusing = code not in ("AA", "CA")
            if not self.refusing:
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
