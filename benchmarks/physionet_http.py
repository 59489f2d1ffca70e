"""A local HTTP server in PhysioNet's URL layout, for download tests and ingest benchmarks.

Serves ``http://127.0.0.1:<port>/<db>/<version>/<file>`` either from a folder laid out
exactly like that (:class:`PhysioNetHTTPServer`) or from a local mirror laid out as
``<mirror>/<db>/<file>`` (:meth:`PhysioNetHTTPServer.for_mirror`). Unlike the standard
library's ``SimpleHTTPRequestHandler`` it honours ``Range: bytes=<a>-[<b>]`` (RFC 9110
section 14), so resumed downloads can be exercised, and it can inject faults: cut a
response short, or answer with an error status a number of times. Every request is
logged for assertions (``server.requests``).

Run it stand-alone to serve a mirror::

    python benchmarks/physionet_http.py --mirror ../shared/data/physionet --port 8765
    # then PhysioNetConfig(base_url="http://127.0.0.1:8765/", mirror=None, ...)
"""

from __future__ import annotations

import argparse
import os
import shutil
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

__all__ = ["LoggedRequest", "PhysioNetHTTPServer", "build_physionet_tree"]

_CHUNK = 1 << 16


@dataclass(frozen=True)
class LoggedRequest:
    """One request the server answered."""

    method: str
    path: str  # URL path without the leading "/"
    range: str | None  # the Range header, if any
    status: int
    accept_encoding: str | None = None  # the Accept-Encoding header, if any


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: requests are recorded in server.requests

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _reply_status(self, status: int, rel: str, rng: str | None, body: bool) -> None:
        msg = f"{status}\n".encode()
        self.server.log(
            LoggedRequest(self.command, rel, rng, status, self.headers.get("Accept-Encoding"))
        )  # before the client can see it
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(msg)))
        self.end_headers()
        if body:
            self.wfile.write(msg)

    def _serve(self, body: bool) -> None:
        rel = unquote(urlsplit(self.path).path).lstrip("/")
        rng = self.headers.get("Range")
        forced = self.server.take_status(rel)
        if forced is not None:
            self._reply_status(forced, rel, rng, body)
            return
        path = self.server.resolve(rel)
        if path is None or not path.is_file():
            self._reply_status(404, rel, rng, body)
            return
        size = path.stat().st_size
        start, end, status = 0, size - 1, 200
        if rng:
            parsed = _parse_range(rng, size)
            if parsed is None:
                self.server.log(
                    LoggedRequest(self.command, rel, rng, 416, self.headers.get("Accept-Encoding"))
                )
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start, end = parsed
            status = 206
        length = max(end - start + 1, 0)
        self.server.log(
            LoggedRequest(self.command, rel, rng, status, self.headers.get("Accept-Encoding"))
        )
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(length))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        cut = self.server.take_cut(rel)
        if cut is not None:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if not body:
            return
        remaining = length if cut is None else min(cut, length)
        with open(path, "rb") as f:
            f.seek(start)
            while remaining > 0:
                chunk = f.read(min(_CHUNK, remaining))
                if not chunk:
                    break
                self.wfile.write(chunk)
                remaining -= len(chunk)
        if cut is not None:
            self.wfile.flush()
            self.connection.shutdown(2)  # drop the connection mid-body


def _parse_range(value: str, size: int) -> tuple[int, int] | None:
    """``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` -> inclusive (start, end); None if
    unsatisfiable (RFC 9110 section 14.1.2); multiple ranges are not supported."""
    unit, _, spec = value.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None
    a, _, b = spec.strip().partition("-")
    try:
        if a == "":
            n = int(b)
            start, end = max(size - n, 0), size - 1
        else:
            start = int(a)
            end = int(b) if b else size - 1
    except ValueError:
        return None
    end = min(end, size - 1)
    if start >= size or start > end:
        return None
    return start, end


def _safe_join(base: Path, parts: list[str]) -> Path | None:
    """``base/parts`` unless a part would climb out of ``base`` (symlinks are followed
    when the file is opened, so a tree of links into a mirror works)."""
    if any(p in ("", ".", "..") or "\\" in p for p in parts):
        return None
    return base.joinpath(*parts)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr: tuple[str, int], resolve: Callable[[str], Path | None]) -> None:
        super().__init__(addr, _Handler)
        self.resolve = resolve
        self.requests: list[LoggedRequest] = []
        self._lock = threading.Lock()
        self._cuts: dict[str, list[int]] = {}
        self._statuses: dict[str, list[int]] = {}

    def log(self, req: LoggedRequest) -> None:
        with self._lock:
            self.requests.append(req)

    def take_cut(self, rel: str) -> int | None:
        with self._lock:
            q = self._cuts.get(rel)
            return q.pop(0) if q else None

    def take_status(self, rel: str) -> int | None:
        with self._lock:
            q = self._statuses.get(rel)
            return q.pop(0) if q else None


class PhysioNetHTTPServer:
    """Threaded HTTP server on 127.0.0.1 serving ``root/<url path>``; a context manager.

    Parameters
    ----------
    root : Path
        Folder laid out as ``<root>/<db>/<version>/<file>``.
    port : int
        0 picks a free port.
    """

    def __init__(
        self,
        root: Path | None = None,
        port: int = 0,
        resolve: Callable[[str], Path | None] | None = None,
    ) -> None:
        if (root is None) == (resolve is None):
            raise ValueError("give exactly one of root or resolve")
        if root is not None:
            base = Path(root).resolve()

            def _under_root(rel: str) -> Path | None:
                return _safe_join(base, rel.split("/"))

            resolve = _under_root
        if resolve is None:  # unreachable: checked above; keeps type checkers informed
            raise ValueError("no resolver")
        self._server = _Server(("127.0.0.1", port), resolve)
        self._thread: threading.Thread | None = None

    @classmethod
    def for_mirror(
        cls, mirror: Path, versions: Mapping[str, str] | None = None, port: int = 0
    ) -> PhysioNetHTTPServer:
        """Serve a mirror laid out ``<mirror>/<db>/<file>`` as ``/<db>/<version>/<file>``.

        ``versions`` restricts the version accepted per database (default: any)."""
        base = Path(mirror).resolve()

        def resolve(rel: str) -> Path | None:
            parts = rel.split("/")
            if len(parts) < 3:
                return None
            db, version, rest = parts[0], parts[1], parts[2:]
            if versions is not None and versions.get(db) != version:
                return None
            return _safe_join(base, [db, *rest])

        return cls(port=port, resolve=resolve)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    @property
    def requests(self) -> list[LoggedRequest]:
        """Requests answered so far (a copy)."""
        with self._server._lock:
            return list(self._server.requests)

    def clear_log(self) -> None:
        with self._server._lock:
            self._server.requests.clear()

    def cut_next(self, path: str, n_bytes: int, times: int = 1) -> None:
        """The next ``times`` GETs of ``path`` send only ``n_bytes`` of the body, then drop."""
        with self._server._lock:
            self._server._cuts.setdefault(path, []).extend([n_bytes] * times)

    def fail_next(self, path: str, status: int, times: int = 1) -> None:
        """The next ``times`` requests of ``path`` are answered with ``status``."""
        with self._server._lock:
            self._server._statuses.setdefault(path, []).extend([status] * times)

    def start(self) -> PhysioNetHTTPServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> PhysioNetHTTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def build_physionet_tree(
    mirror_db: Path,
    dest_root: Path,
    db: str,
    version: str,
    records: Iterable[str],
    extensions: Iterable[str] = ("hea", "dat", "atr"),
    copy: bool = False,
) -> Path:
    """Lay out ``dest_root/<db>/<version>/`` with some records of a mirrored database.

    Files are symlinked (``copy=False``) or copied; ``RECORDS`` lists the chosen records
    and ``SHA256SUMS.txt`` keeps the mirror's lines for the files placed (when the mirror
    has one). Returns the version folder.
    """
    out = Path(dest_root) / db / version
    out.mkdir(parents=True, exist_ok=True)
    records = list(records)
    placed: list[str] = []
    for rec in records:
        for ext in extensions:
            src = Path(mirror_db) / f"{rec}.{ext}"
            if not src.is_file():
                continue
            dst = out / src.name
            if copy:
                shutil.copyfile(src, dst)
            else:
                os.symlink(src.resolve(), dst)
            placed.append(src.name)
    (out / "RECORDS").write_text("".join(f"{r}\n" for r in records))
    sums = Path(mirror_db) / "SHA256SUMS.txt"
    if sums.is_file():
        keep = set(placed)
        lines = [
            ln for ln in sums.read_text().splitlines() if ln.split()[-1:] and ln.split()[-1] in keep
        ]
        (out / "SHA256SUMS.txt").write_text("".join(f"{ln}\n" for ln in lines))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    default = os.environ.get("VITALGRU_PHYSIONET_MIRROR") or str(
        Path(__file__).resolve().parents[1].parent / "shared" / "data" / "physionet"
    )
    ap.add_argument("--mirror", default=default, help="mirror root (<mirror>/<db>/<files>)")
    ap.add_argument("--port", type=int, default=8765)
    args = ap.parse_args()
    server = PhysioNetHTTPServer.for_mirror(Path(args.mirror), port=args.port)
    print(f"serving {args.mirror} at {server.base_url}<db>/<version>/<file>  (Ctrl-C stops)")
    with server:
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
