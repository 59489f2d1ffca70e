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
admin       all of it
==========  ===============================================================================

The file keeps each token's SHA-256, never the token: ``{"tokens": [{"name", "role",
"sha256"}]}``, written readable by its owner only. ``/health`` and ``/metrics`` stay open
(counts, no identifiers).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["ROLES", "Credential", "TokenTable", "new_token"]

#: Role -> the kinds of request it may make.
ROLES: dict[str, frozenset[str]] = {
    "feed": frozenset({"feed"}),
    "reader": frozenset({"read"}),
    "clinician": frozenset({"read", "ack"}),
    "admin": frozenset({"feed", "read", "ack"}),
}
#: Shortest token taken (characters): the single shared token's rule.
MIN_TOKEN_CHARS = 16
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Credential:
    name: str
    role: str
    sha256: str

    def may(self, kind: str) -> bool:
        return kind in ROLES[self.role]


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
        """One token that may do everything (``VITALGRU_GATEWAY_TOKEN``)."""
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
        if not isinstance(entries, list) or not entries:
            raise ValueError(f'{p}: expected {{"tokens": [{{"name", "role", "sha256"}}, ...]}}')
        out = []
        for i, e in enumerate(entries):
            if not isinstance(e, dict) or set(e) != {"name", "role", "sha256"}:
                raise ValueError(f"{p}: entry {i} must have exactly name, role and sha256")
            if not (isinstance(e["name"], str) and _NAME.fullmatch(e["name"])):
                raise ValueError(f"{p}: entry {i}: name {e['name']!r} is not a plain name")
            if e["role"] not in ROLES:
                raise ValueError(
                    f"{p}: entry {i}: role {e['role']!r} is not one of {sorted(ROLES)}"
                )
            if not (isinstance(e["sha256"], str) and _HEX64.fullmatch(e["sha256"])):
                raise ValueError(f"{p}: entry {i}: sha256 must be 64 lowercase hex digits")
            out.append(Credential(e["name"], e["role"], e["sha256"]))
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


def new_token(path: str | os.PathLike, name: str, role: str) -> str:
    """Add a fresh token for ``name`` with ``role`` to the file at ``path`` (made if absent,
    readable by its owner only) and return it; it is shown once and kept only as its
    hash. ValueError for a name already there, an unknown role or a malformed file."""
    if role not in ROLES:
        raise ValueError(f"role {role!r} is not one of {sorted(ROLES)}")
    if not _NAME.fullmatch(name):
        raise ValueError(f"name {name!r} is not a plain name (letters, digits, ' ._@-')")
    p = Path(path)
    table = TokenTable.from_file(p) if p.exists() else TokenTable([])
    if any(c.name == name for c in table.credentials):
        raise ValueError(f"{p}: there is already a token named {name!r}")
    token = secrets.token_urlsafe(32)
    entries = [*table.credentials, Credential(name, role, _sha256(token))]
    body = json.dumps({"tokens": [asdict(c) for c in entries]}, indent=2) + "\n"
    tmp = p.with_name(p.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(body)
    os.replace(tmp, p)
    return token
