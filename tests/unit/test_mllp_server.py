"""The MLLP listener's transport: message size, unfinished messages, idle and dead
connections, connections held, the allow-list on a dual-stack socket. A real inbox and ward
(without models) answer."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import stat
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from monitor_kit import untrained_monitor

from pipelines import mllp_server
from pipelines.gateway_metrics import IntakeCollector
from pipelines.hl7_inbox import Hl7Inbox
from pipelines.mllp_server import _allowed, start_mllp
from pipelines.serve_claims import bind_port
from vitalgru.io.hl7v2 import read_message
from vitalgru.scoring.ward import Ward

ADT = "MSH|^~\\&|ENGINE|HOSP|VG||20261205||ADT^A08|{cid}|P|2.5\rPID|1||p-1\r"


class _Listener:
    """``start_mllp`` on its own event loop in a thread, on a free port."""

    def __init__(self, host: str = "127.0.0.1", **kw: Any) -> None:
        self.inbox = Hl7Inbox(Ward(untrained_monitor()), IntakeCollector())
        sock = bind_port(host, 0, "--mllp-port")  # as the gateway binds it
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            start_mllp(self.inbox, sock=sock, **kw), self.loop
        ).result(10)
        self.port = self.server.sockets[0].getsockname()[1]

    def close(self) -> None:
        async def shut() -> None:
            self.server.close()

        asyncio.run_coroutine_threadsafe(shut(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture()
def listener(request: pytest.FixtureRequest) -> Iterator[_Listener]:
    lst = _Listener(**getattr(request, "param", {}))
    yield lst
    lst.close()


def _read_frame(s: socket.socket) -> bytes:
    """One framed answer, or b"" when the connection was closed first."""
    buf = b""
    while not buf.endswith(b"\x1c\x0d"):
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            return b""
        if not chunk:
            return b""
        buf += chunk
    return buf[1:-2]


def _closed(s: socket.socket) -> bool:
    try:
        return s.recv(1024) == b""
    except ConnectionResetError:
        return True


@pytest.mark.parametrize("listener", [{"max_bytes": 1000}], indirect=True)
def test_a_message_over_the_limit_is_refused_by_its_id_however_it_arrives(
    listener: _Listener,
) -> None:
    big = ADT.format(cid="BIG") + "NTE|1||" + "x" * 1200 + "\r"
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as s:
        s.sendall(b"\x0b" + big.encode() + b"\x1c\x0d")  # whole, in one read
        ack = read_message(_read_frame(s))
        assert (ack.field("MSA", 1), ack.field("MSA", 2)) == ("AR", "BIG")  # MSA-2 was empty
        assert _closed(s)
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as s:
        frame = b"\x0b" + big.encode() + b"\x1c\x0d"
        s.sendall(frame[:900])  # under the limit so far: the end comes with the rest
        time.sleep(0.2)
        s.sendall(frame[900:])
        ack = read_message(_read_frame(s))
        assert ack.field("MSA", 1) == "AR"  # it was taken whole before
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as s:
        s.sendall(b"\x0b" + ADT.format(cid="OK").encode() + b"\x1c\x0d")
        assert read_message(_read_frame(s)).field("MSA", 2) == "OK"
    # exactly at the limit: taken, whether its end comes with it or later (the start byte
    # counted against it when the end came in a later read)
    msg = ADT.format(cid="EDGE")
    edge = (msg + "NTE|1||" + "x" * (1000 - len(msg) - 8) + "\r").encode()
    assert len(edge) == 1000
    for parts in ([edge + b"\x1c\x0d"], [edge, b"\x1c\x0d"]):
        with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as s:
            s.sendall(b"\x0b" + parts[0])
            for rest in parts[1:]:
                time.sleep(0.2)
                s.sendall(rest)
            ack = read_message(_read_frame(s))
            assert (ack.field("MSA", 1), ack.field("MSA", 2)) == ("AA", "EDGE")


@pytest.mark.parametrize("listener", [{"frame_timeout_s": 0.3}], indirect=True)
def test_a_message_left_unfinished_closes_its_connection_an_idle_one_stays(
    listener: _Listener,
) -> None:
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as s:
        s.sendall(b"\x0b" + ADT.format(cid="HALF").encode()[:30])
        time.sleep(0.6)
        assert _closed(s)  # was held for ever, with its buffer
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as s:
        s.sendall(b"\x0bMSH|")
        cut = False
        for _ in range(30):  # a byte every 0.1 s: each read in time, the message not
            time.sleep(0.1)
            try:
                s.sendall(b"x")
            except OSError:
                cut = True
                break
        assert cut  # closed while it trickled (each read in time kept it open before)
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as s:
        time.sleep(0.6)  # nothing started: an engine keeps its connection open
        s.sendall(b"\x0b" + ADT.format(cid="LATER").encode() + b"\x1c\x0d")
        assert read_message(_read_frame(s)).field("MSA", 2) == "LATER"


@pytest.mark.parametrize("listener", [{"idle_timeout_s": 0.5}], indirect=True)
def test_a_connection_with_no_message_for_the_idle_limit_is_closed(listener: _Listener) -> None:
    # a sender gone without closing (host rebooted, idle flow dropped) held its slot for ever
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as s:
        s.sendall(b"\x0b" + ADT.format(cid="A").encode() + b"\x1c\x0d")
        assert read_message(_read_frame(s)).field("MSA", 2) == "A"
        time.sleep(0.3)
        s.sendall(b"\x0b" + ADT.format(cid="B").encode() + b"\x1c\x0d")  # in time: the
        assert read_message(_read_frame(s)).field("MSA", 2) == "B"  # limit starts anew
        t0 = time.monotonic()
        assert _closed(s) and 0.3 < time.monotonic() - t0 < 5
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as s:
        t0 = time.monotonic()  # opened, nothing ever sent
        assert _closed(s) and 0.3 < time.monotonic() - t0 < 5


@pytest.mark.parametrize("listener", [{"max_connections": 2}], indirect=True)
def test_a_full_table_closes_the_connection_idle_longest_for_a_new_one(
    listener: _Listener,
) -> None:
    def send(s: socket.socket, cid: str) -> str:
        s.sendall(b"\x0b" + ADT.format(cid=cid).encode() + b"\x1c\x0d")
        frame = _read_frame(s)
        return read_message(frame).field("MSA", 2) if frame else "closed unanswered"

    a = socket.create_connection(("127.0.0.1", listener.port), timeout=10)
    b = socket.create_connection(("127.0.0.1", listener.port), timeout=10)
    try:
        assert send(a, "A1") == "A1"
        time.sleep(0.1)
        assert send(b, "B1") == "B1"  # a idle longest now
        with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as c:
            assert send(c, "C1") == "C1"  # was closed unanswered while two were held
            assert _closed(a)
            assert send(b, "B2") == "B2"
            # the table full and none idle (each in the middle of a message): refused
            b.sendall(b"\x0b" + ADT.format(cid="B3").encode()[:20])
            c.sendall(b"\x0b" + ADT.format(cid="C2").encode()[:20])
            time.sleep(0.2)
            with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as d:
                assert send(d, "D") == "closed unanswered"
            b.sendall(ADT.format(cid="B3").encode()[20:] + b"\x1c\x0d")
            assert read_message(_read_frame(b)).field("MSA", 2) == "B3"
    finally:
        a.close()
        b.close()


def _server_end(client: socket.socket) -> socket.socket:
    """The listener's end of ``client``'s connection (a copy of its descriptor: the listener
    runs in this process)."""
    want = (client.getpeername(), client.getsockname())
    for fd in range(3, 4096):
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            s = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        try:
            if (s.getsockname(), s.getpeername()) == want:
                return s
        except OSError:
            pass
        s.close()
    raise AssertionError("the listener's end of the connection was not found")


def test_connections_taken_have_tcp_keepalive(listener: _Listener) -> None:
    # without it a peer gone without closing is never noticed by the system
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as s:
        s.sendall(b"\x0b" + ADT.format(cid="K").encode() + b"\x1c\x0d")
        assert read_message(_read_frame(s)).field("MSA", 2) == "K"  # taken by now
        with _server_end(s) as end:
            assert end.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
            idle_s, interval_s, count = mllp_server.KEEPALIVE_S
            # and data unacknowledged that long closes it (no probes while an ACK is in flight)
            user_ms = 1000 * (idle_s + interval_s * count)
            for name, value in (("TCP_KEEPIDLE", idle_s), ("TCP_KEEPINTVL", interval_s),
                                ("TCP_KEEPCNT", count), ("TCP_USER_TIMEOUT", user_ms)):  # fmt: skip
                if hasattr(socket, name):
                    assert end.getsockopt(socket.IPPROTO_TCP, getattr(socket, name)) == value


def test_an_ipv4_sender_on_a_dual_stack_listener_is_matched_as_ipv4() -> None:
    nets = [ipaddress.ip_network("127.0.0.1")]
    assert _allowed(("::ffff:127.0.0.1", 5000, 0, 0), nets)  # refused before
    assert not _allowed(("::ffff:10.0.0.1", 5000, 0, 0), nets)
    assert _allowed(("127.0.0.1", 5000), nets)
    if not socket.has_dualstack_ipv6():
        return
    try:
        lst = _Listener("::", allow=["127.0.0.1"])
    except OSError:  # no IPv6 on this machine
        return
    try:
        with socket.create_connection(("127.0.0.1", lst.port), timeout=10) as s:
            s.sendall(b"\x0b" + ADT.format(cid="V4").encode() + b"\x1c\x0d")
            assert read_message(_read_frame(s)).field("MSA", 2) == "V4"
    finally:
        lst.close()


def test_the_acknowledgement_is_addressed_back_to_the_sender() -> None:
    inbox = Hl7Inbox(Ward(untrained_monitor()), IntakeCollector())
    msg = "MSH|^~\\&|ENGINE|HOSP^1.2.3^ISO|VG||20261205||ADT^A08|T9|T|2.3\rPID|1||p-1\r"
    ack = read_message(inbox.handle(msg).ack)
    assert [ack.field("MSH", n) for n in (5, 6, 11, 12)] == ["ENGINE", "HOSP", "T", "2.3"]
    assert "HOSP^1.2.3^ISO" in inbox.handle(msg).ack.split("\r")[0]


def test_enhanced_mode_is_answered_with_commit_acknowledgements_when_asked(
    listener: _Listener,
) -> None:
    # MSH-15/MSH-16 were not read: every message got an original-mode AA/AE/AR, and one
    # that asked for no acknowledgement (NE) got one all the same
    def adt(cid: str, accept: str, kind: str = "ADT^A08") -> bytes:
        text = (
            ADT.replace("ADT^A08", kind).format(cid=cid).replace("|2.5\r", f"|2.5|||{accept}|NE\r")
        )
        return b"\x0b" + text.encode() + b"\x1c\x0d"

    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as s:
        s.sendall(adt("E1", "NE") + adt("E2", "SU", "XYZ^Q01") + adt("E3", "ER") + adt("E4", "AL"))
        s.sendall(adt("E5", "ER", "XYZ^Q01") + adt("E6", "SU"))
        buf = b""  # the three answers may come in one read
        while buf.count(b"\x1c\x0d") < 3:
            chunk = s.recv(65536)
            assert chunk, "the connection was closed"
            buf += chunk
        got = [read_message(f + b"\x1c\x0d") for f in buf.split(b"\x1c\x0d")[:3]]
        assert [(m.field("MSA", 1), m.field("MSA", 2)) for m in got] == [
            ("CA", "E4"), ("CR", "E5"), ("CA", "E6")]  # fmt: skip
        s.settimeout(0.3)
        with pytest.raises(TimeoutError):
            s.recv(1024)  # nothing for E1 (never), E2 (success only), E3 (errors only)
