"""Local HTTP stand-ins for tests of code that talks to servers: a port nobody listens on,
a server that answers every GET with one HTTP status, and one that answers with JSON."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def closed_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago and has nothing listening on it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def silent_server() -> Iterator[str]:
    """The URL of a server on 127.0.0.1 that takes connections and never answers (they
    queue in its backlog): a server stopped with SIGSTOP, or stuck on a lock."""
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(8)
        yield f"http://127.0.0.1:{listening.getsockname()[1]}"


def status_server(status: int, port: int = 0) -> http.server.HTTPServer:
    """A server on 127.0.0.1 (``port`` 0: any free one) whose every GET gets ``status``;
    not yet serving (see :func:`serving`)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(status)

        def log_message(self, *args: object) -> None:
            pass

    return http.server.HTTPServer(("127.0.0.1", port), Handler)


class JsonServer(http.server.HTTPServer):
    """A server on 127.0.0.1 whose every GET gets ``answer()`` as JSON (an int: that HTTP
    error instead), counting the GETs in ``gets``; not yet serving (see :func:`serving`)."""

    def __init__(self, answer: Callable[[], object]) -> None:
        self.answer, self.gets = answer, 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.gets += 1
                got = outer.answer()
                if isinstance(got, int):
                    self.send_error(got)
                    return
                body = json.dumps(got).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/jwks.json"


@contextmanager
def serving(server: http.server.HTTPServer) -> Iterator[http.server.HTTPServer]:
    """Serve ``server`` from a background thread for the block, then shut it down."""
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
