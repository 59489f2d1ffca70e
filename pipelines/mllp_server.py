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
#: closed (an idle connection between messages stays open, as MLLP senders keep them).
FRAME_TIMEOUT_S = 60.0
#: Connections held at once; a sender beyond them is closed at once (each may buffer up to
#: :data:`MAX_MLLP_BYTES`).
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
) -> asyncio.Server:
    """Listen for MLLP connections on ``host:port`` (0: any free port; the server's
    ``sockets`` say which) and answer each message with :meth:`Hl7Inbox.handle`'s
    acknowledgement. ``allow``: addresses or networks (``10.1.2.3``, ``10.1.0.0/16``)
    that may connect; others are closed at once (None: any that can reach the port).
    ``sock``: a socket already bound (by the caller, who holds the port) to listen on
    instead of ``host:port``.
    ``tls``: MLLP over TLS with this server context (:func:`server_tls`). A message over
    ``max_bytes`` is answered ``AR`` and the connection closed; so is a connection that
    leaves a message unfinished for ``frame_timeout_s``, and one beyond ``max_connections``
    held at once is closed unanswered. ValueError for an address that is not one."""
    nets = None if allow is None else [ipaddress.ip_network(a.strip(), strict=False)
                                       for a in allow if a.strip()]  # fmt: skip

    held = 0  # connections open now

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal held
        peer = writer.get_extra_info("peername")
        if not _allowed(peer, nets):
            logger.warning("mllp: connection from %s refused (not in --mllp-allow)", peer)
            writer.close()
            return
        if held >= max_connections:
            logger.warning("mllp: connection from %s refused (%d held already)", peer, held)
            writer.close()
            return
        held += 1
        host = str(peer[0]) if peer else "unknown"
        buf = bytearray()
        clock = asyncio.get_running_loop()
        deadline: float | None = None  # when the message begun must be finished
        try:
            while True:
                # a message started must be finished in time, however its bytes trickle in;
                # between messages, no limit
                if not buf.strip(b"\r\n\t "):
                    deadline = None
                elif deadline is None:
                    deadline = clock.time() + frame_timeout_s
                wait = None if deadline is None else max(0.0, deadline - clock.time())
                try:
                    data = await asyncio.wait_for(reader.read(65536), wait)
                except TimeoutError:
                    logger.warning("mllp: %s left a message unfinished for %g s; connection "
                                   "closed", peer, frame_timeout_s)  # fmt: skip
                    break
                if not data:
                    break
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
            held -= 1
            writer.close()

    if sock is not None:
        server = await asyncio.start_server(connection, sock=sock, ssl=tls)
    else:
        server = await asyncio.start_server(connection, host, port, ssl=tls)
    bound = ", ".join(str(s.getsockname()) for s in server.sockets)
    logger.info("mllp: listening for HL7 v2 on %s (%s)", bound,
                "any address" if nets is None else ", ".join(map(str, nets)))  # fmt: skip
    return server
