"""The MLLP listener of the bedside gateway (``vitalgru serve --mllp-port``): HL7 v2 messages
over the framing hospital interface engines speak on a TCP port, each handed to an
:class:`~pipelines.hl7_inbox.Hl7Inbox` and answered with its acknowledgement (none when the
message's ``MSH-15`` asks for none of that outcome: enhanced acknowledgement mode).

Each message is framed as ``0x0B`` message ``0x1C 0x0D``; on one connection messages are
taken in order, each answered before the next is read. MLLP has no credentials of its own:
the listener is bound to this machine unless told otherwise, takes connections only from the
addresses it is given (``--mllp-allow``), and speaks TLS when given a certificate
(``--mllp-tls-cert/--mllp-tls-key``; with ``--mllp-tls-client-ca`` only senders with a
certificate from that CA get in).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
from collections.abc import Sequence
from typing import Any

from pipelines.hl7_inbox import Hl7Inbox
from vitalgru.io.hl7v2 import MLLP_END, MLLP_START, Hl7Message, message_bytes, read_message
from vitalgru.io.hl7v2 import ack as hl7_ack

__all__ = [
    "FRAME_TIMEOUT_S",
    "IDLE_TIMEOUT_S",
    "KEEPALIVE_S",
    "MAX_CONNECTIONS",
    "MAX_MLLP_BYTES",
    "server_tls",
    "start_mllp",
    "tls_file",
]

logger = logging.getLogger(__name__)

#: Largest MLLP message taken (bytes); a larger frame is rejected and the connection closed.
MAX_MLLP_BYTES = 2**20
#: Seconds a sender may take to finish a message it has started; then the connection is
#: closed.
FRAME_TIMEOUT_S = 60.0
#: Seconds a connection may stay open with no message; then it is closed. Engines keep a
#: connection open between messages, often for long (a quiet night), and open another when
#: they have something to send: this only frees what a sender that vanished without closing
#: (its host rebooted or failed over, a firewall dropped the idle flow) would hold for ever.
IDLE_TIMEOUT_S = 3600.0
#: TCP keepalive on each connection taken, in seconds: first probe after this long with
#: nothing received, probes this far apart, closed after this many unanswered (a peer that
#: is gone is found in about 2 minutes; one that is there answers from its kernel).
KEEPALIVE_S = (60, 10, 5)
#: Connections held at once (each may buffer up to :data:`MAX_MLLP_BYTES`); a sender beyond
#: them takes the place of the one idle longest, or is closed at once when none is idle.
MAX_CONNECTIONS = 64


def tls_file(what: str, path: str, load: Any, *args: Any) -> None:
    """``load(*args)``, a TLS file's loading; ValueError naming the option and the file
    (``--tls-cert gw.pem: No such file or directory``) for one that is missing or is not
    what the option wants (ssl's own message names neither: several options take files)."""
    try:
        load(*args)
    except (OSError, ssl.SSLError) as e:  # ssl.SSLError is an OSError too
        reason = getattr(e, "strerror", None) or getattr(e, "reason", None) or str(e)
        if isinstance(e, ssl.SSLError):
            reason = f"not a PEM file this option takes, or a key that does not match ({reason})"
        raise ValueError(f"{what} {path}: {reason}") from None


def server_tls(
    cert: str,
    key: str,
    client_ca: str | None = None,
    names: tuple[str, str, str] = ("--mllp-tls-cert", "--mllp-tls-key", "--mllp-tls-client-ca"),
) -> ssl.SSLContext:
    """A TLS context for the MLLP listener: this server's certificate chain and key (PEM);
    with ``client_ca``, only senders presenting a certificate that CA signed may connect
    (mutual TLS). ValueError naming the option (``names``: of the certificate, the key and
    the CA) and the file for one that is missing or not what it should be."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    tls_file(f"{names[0]}/{names[1]}", f"{cert} / {key}", ctx.load_cert_chain, cert, key)
    if client_ca:
        tls_file(names[2], client_ca, ctx.load_verify_locations, client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def _allowed(peer: Any, allow: Sequence[Any] | None) -> bool:
    if allow is None:
        return True
    try:
        ip = ipaddress.ip_address(str(peer[0]).split("%")[0])
    except (ValueError, TypeError, IndexError):
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # an IPv4 sender on a dual-stack listener ("::")
    return any(ip in net for net in allow)


def _keep_alive(sock: Any, idle_s: int, interval_s: int, count: int) -> None:
    """TCP keepalive on ``sock``, with the probe timing where the platform lets it be set
    (Linux: ``TCP_KEEPIDLE``; macOS: ``TCP_KEEPALIVE``); the system's own timing elsewhere.
    Where there is ``TCP_USER_TIMEOUT`` (Linux), data sent and not acknowledged for as long
    as the probes take closes the connection too: keepalive does not probe while an
    acknowledgement is unacknowledged, and a peer gone then held it for the system's
    retransmission limit, about 15 minutes."""
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        idle_opt = getattr(socket, "TCP_KEEPIDLE", getattr(socket, "TCP_KEEPALIVE", None))
        for opt, value in ((idle_opt, idle_s),
                           (getattr(socket, "TCP_KEEPINTVL", None), interval_s),
                           (getattr(socket, "TCP_KEEPCNT", None), count),
                           (getattr(socket, "TCP_USER_TIMEOUT", None),
                            1000 * (idle_s + interval_s * count))):  # fmt: skip
            if opt is not None:
                sock.setsockopt(socket.IPPROTO_TCP, opt, value)
    except OSError as e:  # not TCP (a test's socketpair), or an option the system refuses
        logger.debug("mllp: TCP keepalive not set: %s", e)


def _too_large(frame: bytes, max_bytes: int) -> bytes:
    """The framed ``AR`` for a message over ``max_bytes``, naming it (``MSA-2``) when its
    header can be read."""
    text = f"a message over {max_bytes} bytes is not taken"
    header = bytes(frame[:4096]).split(b"\r", 1)[0]
    try:
        msg = read_message(header) if header.startswith(b"MSH") else Hl7Message([["MSH"]])
    except ValueError:
        msg = Hl7Message([["MSH"]])
    return MLLP_START + message_bytes(hl7_ack(msg, "AR", text)) + MLLP_END


async def start_mllp(
    inbox: Hl7Inbox,
    host: str = "127.0.0.1",
    port: int = 2575,
    allow: Sequence[str] | None = None,
    max_bytes: int = MAX_MLLP_BYTES,
    tls: ssl.SSLContext | None = None,
    sock: socket.socket | None = None,
    frame_timeout_s: float = FRAME_TIMEOUT_S,
    max_connections: int = MAX_CONNECTIONS,
    idle_timeout_s: float = IDLE_TIMEOUT_S,
) -> asyncio.Server:
    """Listen for MLLP connections on ``host:port`` (0: any free port; the server's
    ``sockets`` say which) and answer each message with :meth:`Hl7Inbox.handle`'s
    acknowledgement. ``allow``: addresses or networks (``10.1.2.3``, ``10.1.0.0/16``)
    that may connect; others are closed at once (None: any that can reach the port).
    ``sock``: a socket already bound (by the caller, who holds the port) to listen on
    instead of ``host:port``.
    ``tls``: MLLP over TLS with this server context (:func:`server_tls`). A message over
    ``max_bytes`` is answered ``AR`` and the connection closed; so is a connection that
    leaves a message unfinished for ``frame_timeout_s``, and one with no message for
    ``idle_timeout_s``. Each connection has TCP keepalive (:data:`KEEPALIVE_S`), so one
    whose peer is gone is closed by the system. One beyond ``max_connections`` held at once
    takes the place of the one idle longest (a new connection from the engine is far more
    likely alive), or is closed unanswered when all are in the middle of a message.
    ValueError for an address that is not one."""
    nets = None if allow is None else [ipaddress.ip_network(a.strip(), strict=False)
                                       for a in allow if a.strip()]  # fmt: skip

    # the connections held: when each became idle (its last message answered, or opened),
    # None while one is in the middle of a message
    held: dict[asyncio.StreamWriter, float | None] = {}

    def make_room(peer: Any) -> bool:
        """Close the connection idle longest for ``peer``'s; False when none is idle."""
        idle = [(since, w) for w, since in held.items() if since is not None]
        if not idle:
            return False
        since, oldest = min(idle, key=lambda x: x[0])
        del held[oldest]
        oldest.transport.abort()  # likely a dead peer: no goodbye to wait for
        logger.warning("mllp: %d connections held; the one from %s, idle %.0f s, closed for "
                       "a new one from %s", max_connections, oldest.get_extra_info("peername"),
                       asyncio.get_running_loop().time() - since, peer)  # fmt: skip
        return True

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if not _allowed(peer, nets):
            logger.warning("mllp: connection from %s refused (not in --mllp-allow)", peer)
            writer.close()
            return
        if len(held) >= max_connections and not make_room(peer):
            logger.warning("mllp: connection from %s refused (%d held already, each in the "
                           "middle of a message)", peer, len(held))  # fmt: skip
            writer.close()
            return
        clock = asyncio.get_running_loop()
        held[writer] = clock.time()
        _keep_alive(writer.get_extra_info("socket"), *KEEPALIVE_S)
        host = str(peer[0]) if peer else "unknown"
        buf = bytearray()
        deadline: float | None = None  # when the message begun must be finished
        try:
            while True:
                # a message started must be finished in time, however its bytes trickle in;
                # between messages, the idle limit from the last one answered
                now = clock.time()
                if not buf.strip(b"\r\n\t "):
                    deadline = None
                    since = held[writer]
                    if since is None:
                        held[writer] = since = now
                    wait = max(0.0, since + idle_timeout_s - now)
                else:
                    if deadline is None:
                        deadline = now + frame_timeout_s
                    wait = max(0.0, deadline - now)
                try:
                    data = await asyncio.wait_for(reader.read(65536), wait)
                except TimeoutError:
                    if deadline is None:
                        logger.info("mllp: %s sent no message for %g s; connection closed",
                                    peer, idle_timeout_s)  # fmt: skip
                    else:
                        logger.warning("mllp: %s left a message unfinished for %g s; "
                                       "connection closed", peer, frame_timeout_s)  # fmt: skip
                    break
                if not data or writer not in held:  # closed, or made room for another
                    break
                held[writer] = None  # heard from: not idle, not to be closed for another
                buf += data
                while (end := buf.find(MLLP_END)) >= 0:
                    start = buf.rfind(MLLP_START, 0, end)
                    frame = bytes(buf[start + 1 : end])  # bytes before a start byte: noise
                    del buf[: end + len(MLLP_END)]
                    deadline = None  # the next message's time starts with its bytes
                    if len(frame) > max_bytes:  # whole in one read, or finished by one
                        break
                    reply = await asyncio.to_thread(
                        inbox.handle, frame, "mllp", f"mllp {host}", host
                    )
                    if reply.send:  # enhanced mode: MSH-15 may ask for no answer
                        writer.write(MLLP_START + message_bytes(reply.ack) + MLLP_END)
                        await writer.drain()
                else:
                    frame = bytes(buf[buf.rfind(MLLP_START) + 1 :])
                # the message's own bytes decide, however they arrive; noise around it is
                # bounded apart (twice the limit)
                if len(frame) > max_bytes or len(buf) > 2 * max_bytes:
                    writer.write(_too_large(frame, max_bytes))
                    await writer.drain()
                    logger.warning("mllp: %s sent a message over %d bytes; connection closed",
                                   peer, max_bytes)  # fmt: skip
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            held.pop(writer, None)
            writer.close()

    if sock is not None:
        server = await asyncio.start_server(connection, sock=sock, ssl=tls)
    else:
        server = await asyncio.start_server(connection, host, port, ssl=tls)
    bound = ", ".join(str(s.getsockname()) for s in server.sockets)
    logger.info("mllp: listening for HL7 v2 on %s (%s)", bound,
                "any address" if nets is None else ", ".join(map(str, nets)))  # fmt: skip
    return server
