"""Resumable, retrying HTTP downloads with checksum verification.

A file is streamed into ``<dest>.part``; an interrupted transfer leaves the ``.part``
behind and the next attempt (a retry, or a later run) asks only for the missing bytes
with an HTTP ``Range: bytes=<n>-`` request (RFC 9110, section 14.2). A server that
ignores the range (status 200) restarts the file. Only when the whole body arrived and,
where a digest is published, its SHA-256 matches, is the ``.part`` renamed to ``dest``, so
a file under its final name is always complete.

Transient failures (connection errors, time-outs, short bodies, HTTP 408/429/5xx) are
retried with exponential back-off; other HTTP errors (404, 403, ...) are permanent and
raise :class:`vitalgru.errors.DownloadError` at once. Every error names the URL.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import requests

from vitalgru.claims import FOLDER_WAIT_S, hold
from vitalgru.errors import ChecksumError, DownloadError
from vitalgru.io.checksums import sha256_file

logger = logging.getLogger(__name__)

__all__ = ["HttpFetcher", "HttpStatusError", "server_unreachable"]

_CHUNK = 1 << 16
_TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}


def server_unreachable(
    url: str,
    attempts: int = 3,
    wait_s: float = 2.0,
    timeout_s: float = 5.0,
    *,
    transient_is_down: bool = False,
) -> str | None:
    """Why a server gives no answer to a GET of ``url`` in ``attempts`` tries ``wait_s``
    apart (the last try's error), or ``None`` once it answers with any HTTP status.

    With ``transient_is_down``, an answer of a status a client retries (408, 429, 5xx:
    a proxy in front of a server that is down answers 502 or 503) counts as none, and
    its status is the reason: for a server whose clients would retry it for minutes."""
    reason = "not tried"
    for attempt in range(attempts):
        try:
            with requests.get(url, timeout=timeout_s) as r:
                if not (transient_is_down and r.status_code in _TRANSIENT_STATUS):
                    return None
                reason = f"HTTP {r.status_code} {r.reason or ''}".strip()
        except requests.RequestException as e:
            inner = e.args[0] if e.args else e  # urllib3's error, whose reason says why
            reason = str(getattr(inner, "reason", inner))
        if attempt + 1 < attempts:
            time.sleep(wait_s)
    return reason


class HttpStatusError(DownloadError):
    """The server answered with an HTTP error status (``status``); names the URL."""

    def __init__(self, url: str, status: int, attempts: int) -> None:
        self.url = url
        self.status = status
        super().__init__(f"GET {url}: HTTP {status} (after {attempts} attempt(s))")


class _Transient(Exception):
    """A failure worth another attempt."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class HttpFetcher:
    """GET files over HTTP(S) with retries, resume and verification.

    Parameters
    ----------
    retries : int
        Extra attempts after the first for transient failures.
    timeout_s : float
        Connect and read time-out per request, in seconds.
    backoff_s : float
        Wait before the first retry; doubled for every further retry.

    Notes
    -----
    Each thread gets its own ``requests.Session`` (sessions are not documented as
    thread-safe), so one fetcher can serve a pool of download threads.
    """

    def __init__(
        self,
        retries: int = 3,
        timeout_s: float = 60.0,
        backoff_s: float = 1.0,
    ) -> None:
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        if timeout_s <= 0 or backoff_s < 0:
            raise ValueError(
                f"timeout_s must be > 0 and backoff_s >= 0, got {timeout_s}, {backoff_s}"
            )
        self.retries = retries
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()

    @property
    def session(self) -> requests.Session:
        """This thread's session (created on first use)."""
        s = getattr(self._local, "session", None)
        if s is None:
            s = requests.Session()
            s.headers["User-Agent"] = "vitalgru (PhysioNet client)"
            # Byte ranges and Content-Length must refer to the file itself, not to a
            # gzip-encoded representation that requests would silently decode.
            s.headers["Accept-Encoding"] = "identity"
            self._local.session = s
            with self._sessions_lock:
                self._sessions.append(s)
        return s

    def close(self) -> None:
        """Close every session this fetcher opened."""
        with self._sessions_lock:
            for s in self._sessions:
                s.close()
            self._sessions.clear()
        self._local = threading.local()

    def _sleep(self, attempt: int) -> None:
        if self.backoff_s > 0:
            time.sleep(self.backoff_s * (2**attempt))

    def download(self, url: str, dest: str | Path, sha256: str | None = None) -> str:
        """Download ``url`` to ``dest`` (resuming ``dest.part``); return its SHA-256.

        Parameters
        ----------
        url : str
            Source URL.
        dest : str or Path
            Final path; parent folders are created.
        sha256 : str, optional
            Published digest; the file is only moved into place when it matches.

        Raises
        ------
        DownloadError
            Unreachable, permanent HTTP error, or transient failures beyond ``retries``.
        ChecksumError
            The complete file does not match ``sha256`` (it is deleted, and one fresh
            download is tried first when the mismatch followed a resumed transfer).

        One process downloads a file at a time (a claim on ``<dest>.lock``, removed once
        the file is in place); another that asks for it meanwhile waits, then takes the
        file the first one fetched when it verifies.
        """
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        lock = dest.with_name(dest.name + ".lock")
        # One process at a time streams into the .part (two appending to it mix their
        # bytes, and the checksum then sends a good record to attrition); one that waited
        # finds the file the other fetched.
        with hold(lock, f"the download of {dest}", wait_s=FOLDER_WAIT_S, busy="another download",
                  on_wait=lambda pid: logger.info("%s: waiting for process %s, which downloads "
                                                  "it", dest, pid or "?")):  # fmt: skip
            digest = None
            if dest.is_file():
                digest = sha256_file(dest)
                if sha256 is not None and digest != sha256.lower():
                    digest = None
            if digest is None:
                digest = self._download(url, dest, sha256)
            lock.unlink(missing_ok=True)  # whoever opens it next finds dest there
            return digest

    def _download(self, url: str, dest: Path, sha256: str | None) -> str:
        part = dest.with_name(dest.name + ".part")
        last = ""
        fresh_retry_done = False
        attempt = 0
        while attempt <= self.retries:
            if attempt:
                self._sleep(attempt - 1)
            resumed = part.exists() and part.stat().st_size > 0
            try:
                self._fetch_into(url, part, attempt)
            except _Transient as e:
                last = e.message
                logger.info("GET %s failed (attempt %d): %s", url, attempt + 1, last)
                attempt += 1
                continue
            digest = sha256_file(part)
            if sha256 is not None and digest != sha256.lower():
                part.unlink(missing_ok=True)
                if resumed and not fresh_retry_done:
                    # A stale or foreign .part can poison a resume; start over once.
                    logger.warning("%s: checksum mismatch after resume; downloading afresh", url)
                    fresh_retry_done = True
                    continue
                raise ChecksumError(f"{dest} (from {url})", sha256.lower(), digest)
            part.replace(dest)
            return digest
        raise DownloadError(f"GET {url}: {last} (gave up after {self.retries + 1} attempts)")

    def _fetch_into(self, url: str, part: Path, attempt: int) -> None:
        have = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            resp = self.session.get(url, headers=headers, stream=True, timeout=self.timeout_s)
        except requests.RequestException as e:
            raise _Transient(f"{type(e).__name__}: {e}") from e
        with resp:
            status = resp.status_code
            if status == 416 and have:
                # Range not satisfiable: the .part already holds the whole file (or is
                # longer than it); let the checksum decide, or restart without a digest.
                total = _content_range_total(resp.headers.get("Content-Range", ""))
                if total is not None and total == have:
                    return
                part.unlink(missing_ok=True)
                raise _Transient(f"HTTP 416 for a {have}-byte partial file; restarting")
            if status not in (200, 206):
                if status in _TRANSIENT_STATUS:
                    raise _Transient(f"HTTP {status}")
                raise HttpStatusError(url, status, attempt + 1)
            mode = "ab"
            if status == 206:
                start = _content_range_start(resp.headers.get("Content-Range", ""))
                if start != have:
                    part.unlink(missing_ok=True)
                    raise _Transient(f"server resumed at byte {start}, expected {have}")
            else:
                mode, have = "wb", 0
            expected_len = resp.headers.get("Content-Length")
            written = 0
            try:
                with open(part, mode) as f:
                    for chunk in resp.iter_content(chunk_size=_CHUNK):
                        f.write(chunk)
                        written += len(chunk)
            except requests.RequestException as e:
                raise _Transient(f"transfer cut after {have + written} bytes: {e}") from e
            if expected_len is not None and written != int(expected_len):
                raise _Transient(f"transfer cut: got {written} of {expected_len} bytes (resumable)")


def _content_range_start(value: str) -> int | None:
    # "bytes 100-199/200"
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _content_range_total(value: str) -> int | None:
    # "bytes */200"
    try:
        return int(value.rsplit("/", 1)[1])
    except (IndexError, ValueError):
        return None
