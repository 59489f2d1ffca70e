"""Local HTTP stand-ins for tests of code that talks to servers: a port nobody listens on,
and a server that answers every GET with one HTTP status."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager


def closed_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago and has nothing listening on it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def status_server(status: int, port: int = 0) -> http.server.HTTPServer:
    """A server on 127.0.0.1 (``port`` 0: any free one) whose every GET gets ``status``;
    not yet serving (see :func:`serving`)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(status)

        def log_message(self, *args: object) -> None:
            pass

    return http.server.HTTPServer(("127.0.0.1", port), Handler)


@contextmanager
def serving(server: http.server.HTTPServer) -> Iterator[http.server.HTTPServer]:
    """Serve ``server`` from a background thread for the block, then shut it down."""
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
