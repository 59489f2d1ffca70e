"""Who may do what at the bedside gateway: named bearer tokens, each with a role.

One shared token (``VITALGRU_GATEWAY_TOKEN``) lets whoever holds it do everything: a
bedside feed could read every patient's summary and acknowledge alarms, and an
acknowledgement says only the name typed into it. A token file
(``vitalgru serve --tokens FILE``, made with ``vitalgru serve-token``) gives each feed,
screen and clinician a token of their own, with only the role it needs:

==========  ===============================================================================
role        may
==========  ===============================================================================
feed        admit and discharge patients, send ECG samples and hours of vital signs
reader      read: summaries, events (and their stream), FHIR, the ward page, ``/shadow``
clinician   what a reader may, and acknowledge events (the acknowledgement names the token)
admin       all of it, and read the access log (``GET /audit``, :mod:`pipelines.audit`)
==========  ===============================================================================

The file keeps each token's SHA-256, never the token: ``{"tokens": [{"name", "role",
"sha256"}]}``, written readable by its owner only. ``/health`` and ``/metrics`` stay open
(counts, no identifiers).

A token may also carry:

- ``expires``: an ISO 8601 time after which it is refused (``serve-token --expires-days``),
  so a token lent to a contractor or a loan device lapses without anyone remembering it;
- ``patients``: the patient ids (shell-style patterns, ``bed-4``, ``icu-2-*``) it may act
  on (``serve-token --patients``): a bedside feed sends for its own bed only, and a screen
  reads its own patients. Such a token may make only requests about one patient (a path
  with the patient, or ``?patient=`` on the event log and its stream).

A token is revoked by removing it from the file (``serve-token NAME --revoke``); a running
gateway reads the file again when it changes (:class:`TokenFile`), and keeps the tokens it
had when the new file is not right, saying why in its log.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from vitalgru.claims import ClaimBusy, hold, replace_file

__all__ = [
    "ROLES", "Credential", "RateLimit", "StreamTickets", "TokenFile", "TokenTable", "new_token",
    "revoke_token",
]  # fmt: skip

logger = logging.getLogger(__name__)

#: Role -> the kinds of request it may make.
ROLES: dict[str, frozenset[str]] = {
    "feed": frozenset({"feed"}),
    "reader": frozenset({"read"}),
    "clinician": frozenset({"read", "ack"}),
    "admin": frozenset({"feed", "read", "ack", "audit"}),
}
#: Shortest token taken (characters): the single shared token's rule.
MIN_TOKEN_CHARS = 16
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_PATIENT_PATTERN = re.compile(r"[A-Za-z0-9._:*?\[\]-]{1,64}")
_KEYS = {"name", "role", "sha256"}
_OPTIONAL = {"expires", "patients"}


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Credential:
    name: str
    role: str
    sha256: str
    expires: str | None = None  # ISO 8601 with its offset; None: never
    patients: tuple[str, ...] | None = None  # patterns of patient ids; None: every patient

    def may(self, kind: str) -> bool:
        return kind in ROLES[self.role]

    def expired(self, now: datetime | None = None) -> bool:
        if self.expires is None:
            return False
        return (now or datetime.now(UTC)) >= datetime.fromisoformat(self.expires)

    def covers(self, patient_id: str) -> bool:
        """Whether the token may act on ``patient_id``."""
        if self.patients is None:
            return True
        return any(fnmatch.fnmatchcase(patient_id, pat) for pat in self.patients)

    def entry(self) -> dict[str, Any]:
        """The token file's entry."""
        e: dict[str, Any] = {"name": self.name, "role": self.role, "sha256": self.sha256}
        if self.expires is not None:
            e["expires"] = self.expires
        if self.patients is not None:
            e["patients"] = list(self.patients)
        return e


def _entry(p: Path, i: int, e: Any) -> Credential:
    """One entry of a token file, checked; ValueError naming what is wrong."""
    if not isinstance(e, dict) or not _KEYS <= set(e) <= _KEYS | _OPTIONAL:
        raise ValueError(
            f"{p}: entry {i} must have name, role and sha256 (and may have expires, patients)"
        )
    if not (isinstance(e["name"], str) and _NAME.fullmatch(e["name"])):
        raise ValueError(f"{p}: entry {i}: name {e['name']!r} is not a plain name")
    if not isinstance(e["role"], str) or e["role"] not in ROLES:
        raise ValueError(f"{p}: entry {i}: role {e['role']!r} is not one of {sorted(ROLES)}")
    if not (isinstance(e["sha256"], str) and _HEX64.fullmatch(e["sha256"])):
        raise ValueError(f"{p}: entry {i}: sha256 must be 64 lowercase hex digits")
    expires = e.get("expires")
    if expires is not None:
        try:
            when = datetime.fromisoformat(expires) if isinstance(expires, str) else None
        except ValueError:
            when = None
        if when is None or when.tzinfo is None:
            raise ValueError(
                f"{p}: entry {i}: expires {expires!r} is not an ISO 8601 time with its offset"
            )
    patients = e.get("patients")
    if patients is not None:
        if not (isinstance(patients, list) and patients and all(
                isinstance(x, str) and _PATIENT_PATTERN.fullmatch(x) for x in patients)):  # fmt: skip
            raise ValueError(
                f"{p}: entry {i}: patients must be a non-empty list of patient ids or "
                "patterns (letters, digits, ._:- and * ? [ ])"
            )
        patients = tuple(patients)
    return Credential(e["name"], e["role"], e["sha256"], expires, patients)


class TokenTable:
    """The tokens a gateway accepts (see the module's description)."""

    def __init__(self, credentials: list[Credential]) -> None:
        names = [c.name for c in credentials]
        if len(set(names)) != len(names):
            raise ValueError("token names must be unique")
        if len({c.sha256 for c in credentials}) != len(credentials):
            raise ValueError("two entries have the same token")
        self.credentials = list(credentials)

    @classmethod
    def single(cls, token: str, name: str = "shared token") -> TokenTable:
        """One token that may do everything (``VITALGRU_GATEWAY_TOKEN``), without the
        whitespace around it: a token read from a secret file ends in a newline, and a
        presented token is taken stripped (everyone was refused)."""
        token = token.strip()
        if len(token) < MIN_TOKEN_CHARS:
            raise ValueError(f"the gateway token must be at least {MIN_TOKEN_CHARS} characters")
        return cls([Credential(name, "admin", _sha256(token))])

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> TokenTable:
        """Read a token file; ValueError naming what is wrong with it."""
        p = Path(path)
        try:
            data = json.loads(p.read_text())
        except FileNotFoundError:
            raise ValueError(
                f"{p}: no such token file (make one with vitalgru serve-token)"
            ) from None
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{p}: not a token file ({e})") from None
        entries = data.get("tokens") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise ValueError(f'{p}: expected {{"tokens": [{{"name", "role", "sha256"}}, ...]}}')
        out = [_entry(p, i, e) for i, e in enumerate(entries)]
        try:
            return cls(out)
        except ValueError as e:
            raise ValueError(f"{p}: {e}") from None

    def who(self, token: str) -> Credential | None:
        """The credential of ``token``, or None (every entry compared in constant time)."""
        digest = _sha256(token)
        found = None
        for c in self.credentials:
            if hmac.compare_digest(digest, c.sha256):
                found = c
        return found

    def merged(self, other: TokenTable | None) -> TokenTable:
        return self if other is None else TokenTable([*self.credentials, *other.credentials])


@contextlib.contextmanager
def _editing(p: Path) -> Iterator[None]:
    """One edit of the token file at a time (``<file>.lock`` beside the file itself, or
    beside the name given when the file's folder is read-only): two ``serve-token``
    commands at once each wrote back what they read, so a revoked token came back or an
    added one (already handed out) was lost."""
    what, busy = f"the token file {p}", "another serve-token"
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(hold(f"{os.path.realpath(p)}.lock", what, wait_s=10.0, busy=busy))
        except ClaimBusy:
            raise
        except OSError:  # a link into a folder this user cannot write: the name's own folder
            stack.enter_context(hold(f"{p}.lock", what, wait_s=10.0, busy=busy))
        yield


def _write(p: Path, credentials: Sequence[Credential]) -> None:
    """The token file, replaced in one step and readable by its owner only."""
    body = json.dumps({"tokens": [c.entry() for c in credentials]}, indent=2) + "\n"
    replace_file(p, body, mode=0o600)


def new_token(
    path: str | os.PathLike,
    name: str,
    role: str,
    *,
    expires_days: float | None = None,
    patients: Sequence[str] | None = None,
) -> str:
    """Add a fresh token for ``name`` with ``role`` to the file at ``path`` (made if absent,
    readable by its owner only) and return it; it is shown once and kept only as its
    hash. It lapses after ``expires_days`` (None: never) and acts only on the patients
    matching ``patients`` (None: every patient). ValueError for a name already there, an
    unknown role, a bad limit or a malformed file."""
    if role not in ROLES:
        raise ValueError(f"role {role!r} is not one of {sorted(ROLES)}")
    if not _NAME.fullmatch(name):
        raise ValueError(f"name {name!r} is not a plain name (letters, digits, ' ._@-')")
    expires = None
    if expires_days is not None:
        if not (0 < expires_days < 36_500):
            raise ValueError(f"a token expires after more than 0 days, got {expires_days!r}")
        when = datetime.now(UTC) + timedelta(days=expires_days)
        expires = when.isoformat(timespec="seconds")
    p = Path(path)
    with _editing(p):
        table = TokenTable.from_file(p) if p.exists() else TokenTable([])
        if any(c.name == name for c in table.credentials):
            raise ValueError(f"{p}: there is already a token named {name!r}")
        token = secrets.token_urlsafe(32)
        cred = Credential(name, role, _sha256(token), expires,
                          None if patients is None else tuple(patients))  # fmt: skip
        _entry(p, len(table.credentials), cred.entry())  # the limits, checked as the file is
        _write(p, [*table.credentials, cred])
    return token


def revoke_token(path: str | os.PathLike, name: str) -> Credential:
    """Remove the token named ``name`` from the file at ``path`` and return what it was; a
    gateway serving the file refuses it from its next look at the file (about a second).
    ValueError when there is no such token or the file is malformed."""
    p = Path(path)
    with _editing(p):
        table = TokenTable.from_file(p)
        gone = [c for c in table.credentials if c.name == name]
        if not gone:
            raise ValueError(f"{p}: no token named {name!r}")
        _write(p, [c for c in table.credentials if c.name != name])
    return gone[0]


class TokenFile:
    """A token file as a running gateway reads it: again whenever it changed (its size or
    modification time, looked at no more often than every ``check_s`` seconds), so a
    token added, revoked or limited takes effect without a restart. A file that can no
    longer be read, or is not right, leaves the tokens read last in force; the reason is
    logged once per change and counted in ``errors``.

    Raises
    ------
    ValueError
        The file is not right when the gateway starts.
    """

    def __init__(self, path: str | os.PathLike, check_s: float = 1.0) -> None:
        self.path = Path(path)
        self.check_s = float(check_s)
        self.errors = 0
        self.reloads = 0
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self.table = TokenTable.from_file(self.path)
        self._checked = time.monotonic()

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def current(self) -> TokenTable:
        """The tokens in force now."""
        now = time.monotonic()
        if now - self._checked < self.check_s:
            return self.table
        with self._lock:
            self._checked = now
            stamp = self._stat()
            if stamp == self._stamp:
                return self.table
            self._stamp = stamp
            try:
                self.table = TokenTable.from_file(self.path)
            except ValueError as e:
                self.errors += 1
                logger.error("gateway: %s; the %d token(s) read before stay in force",
                             e, len(self.table.credentials))  # fmt: skip
            else:
                self.reloads += 1
                logger.info("gateway: token file %s read again: %d token(s)", self.path,
                            len(self.table.credentials))  # fmt: skip
            return self.table


class StreamTickets:
    """One-use, short-lived tickets that stand for a token on the event stream.

    A browser's ``EventSource`` cannot send an ``Authorization`` header, and a token in a URL
    ends up in proxy logs and browser history. So a page asks for a ticket with its token
    (``POST /events/stream/ticket``) and opens ``/events/stream?ticket=...``: the ticket is
    good once, for ``ttl_s`` seconds, for the token it was issued to (with that token's role
    and patient limits, and only while the token is still in force).
    """

    def __init__(self, ttl_s: float = 60.0) -> None:
        self.ttl_s = float(ttl_s)
        self._lock = threading.Lock()
        self._tickets: dict[str, tuple[Credential, float]] = {}

    def issue(self, credential: Credential) -> str:
        ticket = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            self._tickets = {t: v for t, v in self._tickets.items() if v[1] > now}
            self._tickets[ticket] = (credential, now + self.ttl_s)
        return ticket

    def redeem(self, ticket: str) -> Credential | None:
        """The credential a ticket was issued to, once; None for one unknown, used or
        expired."""
        with self._lock:
            got = self._tickets.pop(ticket, None)
        if got is None or got[1] < time.monotonic():
            return None
        return got[0]


class RateLimit:
    """Requests per second each caller (a token's name, or a client address on an open
    gateway) may make, as a token bucket: ``rate`` a second on average, ``burst`` at once.
    A client that runs away (a screen reloading in a loop, an engine retrying without a
    pause) is answered 429 instead of taking the time the ward's clock needs for the
    patients' alarms."""

    #: Callers kept before those whose buckets are full again (as a new caller's is) are
    #: forgotten.
    MAX_CALLERS = 10_000

    def __init__(self, rate: float, burst: float | None = None) -> None:
        if not rate > 0:
            raise ValueError(f"a rate limit must be > 0 requests per second, got {rate!r}")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(2 * rate, 10.0))
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # caller -> (tokens, when)
        # callers kept before the ones whose buckets are full again are forgotten: twice
        # those still kept after each such pass, so the passes cost O(1) a request
        self._prune_at = self.MAX_CALLERS
        self.refused = 0

    def take(self, caller: str) -> float:
        """Take one request for ``caller``: 0 when it may go on, else the seconds until it
        may (the request is refused and counted)."""
        now = time.monotonic()
        with self._lock:
            if len(self._buckets) > self._prune_at:  # forget callers whose buckets are full
                self._buckets = {k: (tokens, then) for k, (tokens, then) in self._buckets.items()
                                 if tokens + (now - then) * self.rate < self.burst}  # fmt: skip
                self._prune_at = max(self.MAX_CALLERS, 2 * len(self._buckets))
            tokens, then = self._buckets.get(caller, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.rate)
            if tokens >= 1:
                self._buckets[caller] = (tokens - 1, now)
                return 0.0
            self._buckets[caller] = (tokens, now)
            self.refused += 1
            return (1 - tokens) / self.rate
