"""The signed tokens of CDS Hooks calls (:mod:`pipelines.cds_hooks`): the EHRs the gateway
trusts, and the check of each call's JSON Web Token against them.

CDS Hooks requires every call to carry a JWT the EHR signed (``Authorization: Bearer``).
:class:`CdsClients` reads the EHRs trusted from a JSON file (each by its issuer and public
keys: a JWK Set inline, in a file beside it, or at the URL where the EHR publishes it) and
:meth:`CdsClients.verify` takes a token only when its ``kid`` names a key of its issuer's
and its signature verifies (``ES384`` or ``RS384``, the two the specification names; never
``none`` or a shared secret), its ``jku``, when it has one, is the URL the file names for
that issuer (the specification asks services to allow-list it: a token never makes the
gateway fetch keys from where the token says), its ``aud`` is the endpoint called, it has
not expired, was not issued in the future or for longer than an hour, and its ``jti`` has
not been seen before (the tokens seen are kept in memory, so a token issued before the
gateway started is refused too, with no leeway for clocks: each call's token is fresh, and
one from before a restart, even a second before, may have been used; an EHR whose clock is
behind the gateway's has its calls refused for that long after a start; the start is
counted on the clock as it reads now, less the time run on the monotonic clock, so a clock
that started ahead, or stepped back, and was corrected does not refuse every call until a
restart; a token seen is kept until its time left when seen has run on the monotonic clock,
and while the wall clock as it reads would take it, so that a clock stepped forward and
back lets no token be taken twice), a ``nbf`` it has has come, and it asks for no critical
header extension (``crit``).

A JWK Set at a URL (``jwks_url``) is fetched when the gateway starts, again once it is an
hour old, and again when a token names a key id it lacks (the EHR rotated its keys), at most
once a minute whatever tokens arrive. A fetch runs in the background and takes
:data:`~pipelines.cds_jwks.JWKS_TIMEOUT_S` at most in all: a call verifies with the key it
names while its set is fetched again, only a call naming a key id the set lacks waits for
the fetch (that long at most), and so does the gateway's start for the first one. The set
a fetch gets is taken as it is: a key the EHR withdrew stops verifying within the hour, and
a set with no key the gateway can use (empty, or only keys of other types) leaves none, its
calls refused (and logged) until the EHR publishes one. While the set cannot be fetched the keys last fetched stay in use, for
:data:`JWKS_MAX_STALE_S` at most: an EHR whose key server is gone for a day has its calls
refused until it is back, rather than a withdrawn key verifying for ever.

Reading JWKs and fetching JWK Sets is :mod:`pipelines.cds_jwks`'s. :func:`sign_token`
(and :func:`~pipelines.cds_jwks.jwk_of`) are the EHR's side, for trying a deployment by hand
and for the tests.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from pipelines.cds_jwks import (
    JWKS_MAX_BYTES,
    JWKS_TIMEOUT_S,
    _b64,
    _b64e,
    _signing_keys,
    check_jwks_url,
    fetch_jwks,
    jwk_of,
)

__all__ = [
    "ALGORITHMS",
    "JWKS_MAX_BYTES",
    "JWKS_TIMEOUT_S",
    "CdsAuthError",
    "CdsClient",
    "CdsClients",
    "check_jwks_url",
    "fetch_jwks",
    "jwk_of",
    "sign_token",
]

#: Signature algorithms taken (the two CDS Hooks names; no "none", no shared secrets).
ALGORITHMS = {"ES384", "RS384"}
#: Seconds of clock difference allowed between the EHR and the gateway.
LEEWAY_S = 60.0
#: Longest token read (characters): an EHR's tokens are a kilobyte or two.
MAX_TOKEN_CHARS = 16_384
#: Longest lifetime (s) of a token taken: CDS Hooks tokens are meant to live minutes.
MAX_LIFETIME_S = 3600.0
#: Seconds a JWK Set fetched from a client's ``jwks_url`` is used before it is fetched again.
JWKS_MAX_AGE_S = 3600.0
#: Longest time (s) the keys last fetched from a ``jwks_url`` stay in use while the set
#: cannot be fetched again (a key the EHR withdrew meanwhile must stop verifying some day).
JWKS_MAX_STALE_S = 24 * 3600.0
#: Fewest seconds between two fetches of one client's JWK Set (a token naming a key id the
#: client lacks asks for one; forged key ids cannot make the gateway fetch on every call).
JWKS_REFETCH_S = 60.0

logger = logging.getLogger(__name__)


class CdsAuthError(Exception):
    """A CDS Hooks call whose token is not taken: answered 401 naming only ``category``
    (``malformed``; ``untrusted``: an issuer, key or ``jku`` not trusted, or a signature
    that does not verify, all alike, so that an anonymous caller learns neither the issuers
    trusted nor the clients' names; or, the signature verified, what else was wrong); the
    message says why in full, for the gateway's log."""

    def __init__(self, category: str, message: str) -> None:
        super().__init__(message)
        self.category = category


def _time(value: Any) -> TypeGuard[float]:
    """Whether a claim is a NumericDate: a finite number of seconds (not true or false)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class CdsClient:
    """An EHR the gateway trusts: its name (in the access log), issuer, keys by id and,
    when it publishes them, the URL of its JWK Set (the keys are then the last fetched)."""

    name: str
    iss: str
    keys: dict[str, tuple[str, Any]]  # kid -> (kty, public key)
    jwks_url: str | None = None
    fetched_at: float = field(default=float("-inf"), repr=False)  # monotonic, keys read
    tried_at: float = field(default=float("-inf"), repr=False)  # monotonic, last attempt
    fetch_error: str = field(default="", repr=False)  # why the last attempt gave no key


class CdsClients:
    """The EHRs the gateway takes CDS Hooks calls from, read from a JSON file:
    ``{"clients": [{"name": "ehr", "iss": "https://ehr.example.org", "jwks": {"keys":
    [...]}}]}`` (or ``"jwks_file": "ehr-keys.json"``, beside the file, or ``"jwks_url":
    "https://ehr.example.org/jwks.json"``, fetched: see the module's description). ValueError
    for a file that says anything else (no client, a client without keys or with two
    sources of them, an unreadable key, a URL not fetched over HTTPS). A JWK Set URL that
    does not answer when the gateway starts is logged, not fatal: the gateway's other work
    does not wait on the EHR, and its calls are refused until the keys are fetched."""

    def __init__(
        self,
        clients: Sequence[CdsClient],
        fetch: Callable[[str], dict[str, tuple[str, Any]]] = fetch_jwks,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not clients:
            raise ValueError("no CDS client is named")
        self.by_iss = {c.iss: c for c in clients}
        if len(self.by_iss) != len(clients):
            raise ValueError("two CDS clients have the same issuer")
        self._fetch, self._clock = fetch, clock
        # issuer and jti -> when the token is taken on the wall clock (its iat to its exp)
        # and when it expires on the monotonic one (its time left when seen)
        self._seen: dict[str, tuple[float, float, float]] = {}
        # tokens issued before are refused: see verify() (the monotonic clock then too)
        self._started, self._started_clock = time.time(), clock()
        self._pruned = float("-inf")  # when the expired ones were last dropped (monotonic)
        self._lock = threading.Lock()
        self._fetch_lock = threading.Lock()  # held a moment to start a fetch, never during one
        self._running: dict[str, threading.Event] = {}  # issuer -> its fetch's end
        self.fetches: Counter[tuple[str, str]] = Counter()  # (client, "ok"/"failed")
        for c in clients:
            if c.jwks_url is not None:
                self._start_fetch(c)
        self.wait_for_fetches(JWKS_TIMEOUT_S)  # the start waits that long at most

    @classmethod
    def from_file(cls, path: str | Path, **kw: Any) -> CdsClients:
        """The clients a JSON file names (``jwks_file`` read beside it; ``kw`` as the
        constructor's)."""
        p = Path(path)
        try:
            return cls.from_spec(json.loads(p.read_text()), p.parent, **kw)
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{p}: not a CDS client file ({type(e).__name__}: {e}); see "
                             "pipelines/cds_hooks.py") from None  # fmt: skip
        except ValueError as e:
            raise ValueError(f"{p}: {e}") from None

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], folder: str | Path = ".", **kw: Any) -> CdsClients:
        """The clients of a parsed client file (``jwks_file`` read in ``folder``; ``kw`` as
        the constructor's)."""
        try:
            out = []
            for c in spec["clients"]:
                name = str(c.get("name") or c["iss"])
                given = [k for k in ("jwks", "jwks_file", "jwks_url") if k in c]
                if len(given) != 1:
                    raise ValueError(f"client {name!r} must name its keys once: jwks, "
                                     f"jwks_file or jwks_url (it names {given or 'none'})")  # fmt: skip
                if "jwks_url" in c:
                    url = check_jwks_url(str(c["jwks_url"]))
                    out.append(CdsClient(name, str(c["iss"]), {}, jwks_url=url))
                    continue
                jwks = (c["jwks"] if "jwks" in c
                        else json.loads((Path(folder) / c["jwks_file"]).read_text()))  # fmt: skip
                keys = _signing_keys(jwks)
                if not keys:
                    raise ValueError(f"client {name!r} has no signing key")
                out.append(CdsClient(name, str(c["iss"]), keys))
        except (OSError, KeyError, TypeError, AttributeError, json.JSONDecodeError) as e:
            raise ValueError(f"not a CDS client file ({type(e).__name__}: {e}); see "
                             "pipelines/cds_hooks.py") from None  # fmt: skip
        return cls(out, **kw)

    def _start_fetch(self, client: CdsClient) -> threading.Event | None:
        """Fetch ``client``'s JWK Set again, in a thread, unless a fetch of it runs or was
        tried in the last :data:`JWKS_REFETCH_S`: the event set when the fetch running
        ends, or None when none runs."""
        with self._fetch_lock:
            if client.iss in self._running:
                return self._running[client.iss]
            now = self._clock()
            if now - client.tried_at < JWKS_REFETCH_S:
                return None
            client.tried_at = now
            done = self._running[client.iss] = threading.Event()
        threading.Thread(target=self._refresh, args=(client, now, done), daemon=True,
                         name=f"jwks {client.name}").start()  # fmt: skip
        return done

    def wait_for_fetches(self, timeout_s: float) -> bool:
        """Wait for the JWK Set fetches running to end, ``timeout_s`` at most (True: they
        did, or none ran)."""
        deadline = time.monotonic() + timeout_s
        with self._fetch_lock:
            running = list(self._running.values())
        return all(done.wait(max(0.0, deadline - time.monotonic())) for done in running)

    def _refresh(self, client: CdsClient, now: float, done: threading.Event) -> None:
        """Fetch ``client``'s JWK Set (tried at ``now``; ``done`` set at the end). The set
        fetched is taken as it is, even with no key the gateway can use; on failure the
        keys last fetched stay, until they are :data:`JWKS_MAX_STALE_S` old."""
        assert client.jwks_url is not None
        try:
            try:
                keys = self._fetch(client.jwks_url)
            except ValueError as e:
                client.fetch_error = str(e)
                self._count_fetch(client.name, "failed")
                if client.keys and now - client.fetched_at > JWKS_MAX_STALE_S:
                    client.keys = {}  # a withdrawn key must not verify for ever
                    logger.error("CDS client %s: its JWK Set could not be fetched (%s) for "
                                 "%g s: the keys fetched before are dropped, its calls "
                                 "refused until it is", client.name, e, JWKS_MAX_STALE_S)  # fmt: skip
                    return
                logger.warning("CDS client %s: its JWK Set could not be fetched (%s); %s",
                               client.name, e, "the keys fetched before stay in use "
                               f"until they are {JWKS_MAX_STALE_S:g} s old"
                               if client.keys else "its calls are refused until it is")  # fmt: skip
                return
            if set(keys) != set(client.keys):
                logger.info("CDS client %s: key ids %s (were %s)", client.name,
                            sorted(keys), sorted(client.keys))  # fmt: skip
            client.keys, client.fetched_at, client.fetch_error = keys, now, ""
            self._count_fetch(client.name, "ok")
            if not keys:  # the EHR withdrew them all, or publishes only keys of other kinds
                client.fetch_error = f"{client.jwks_url}: no key the gateway can use"
                logger.error("CDS client %s: its JWK Set holds no key the gateway can use "
                             "(ES384 on P-384, RS384): its calls are refused until it does",
                             client.name)  # fmt: skip
        finally:
            with self._fetch_lock:
                del self._running[client.iss]
            done.set()

    def _count_fetch(self, client: str, outcome: str) -> None:
        with self._lock:  # the short lock: a scrape never waits on a fetch
            self.fetches[(client, outcome)] += 1

    def fetch_counts(self) -> dict[tuple[str, str], int]:
        """``{(client, "ok"/"failed"): fetches}`` of the URL-keyed clients' JWK Sets."""
        with self._lock:
            return dict(self.fetches)

    def key_ages(self) -> dict[str, float]:
        """Seconds since each URL-keyed client's keys were fetched (inf: never)."""
        now = self._clock()
        return {c.name: now - c.fetched_at for c in self.by_iss.values() if c.jwks_url}

    def _key(self, client: CdsClient, kid: str) -> tuple[str | None, Any]:
        """The key ``kid`` of ``client``'s (none from a set fetched over
        :data:`JWKS_MAX_STALE_S` ago). A set over :data:`JWKS_MAX_AGE_S` old is fetched
        again in the background, the call verifying with the key in hand; a call whose key
        id the set lacks asks for a fetch (see :meth:`_start_fetch`) and waits for the one
        running, :data:`JWKS_TIMEOUT_S` at most."""
        keys = client.keys
        if client.jwks_url is None:
            return keys.get(kid, (None, None))
        age = self._clock() - client.fetched_at
        if kid in keys and age <= JWKS_MAX_STALE_S:
            if age > JWKS_MAX_AGE_S:
                self._start_fetch(client)
            return keys[kid]
        done = self._start_fetch(client)
        if done is not None:
            done.wait(JWKS_TIMEOUT_S)
        if self._clock() - client.fetched_at > JWKS_MAX_STALE_S:
            return None, None
        return client.keys.get(kid, (None, None))

    def verify(self, token: str, audiences: Sequence[str], now: float | None = None) -> CdsClient:
        """The client whose signed token ``token`` is (see the module's description), for a
        call to one of ``audiences``; CdsAuthError when it is not taken."""
        now = time.time() if now is None else now
        if len(token) > MAX_TOKEN_CHARS:
            raise CdsAuthError(
                "malformed", f"the bearer token is longer than {MAX_TOKEN_CHARS} characters"
            )
        try:
            head_b64, body_b64, sig_b64 = token.split(".")
            head, body = json.loads(_b64(head_b64)), json.loads(_b64(body_b64))
            sig = _b64(sig_b64)
        except (ValueError, TypeError, RecursionError):  # JSON nested past Python's stack
            raise CdsAuthError("malformed", "the bearer token is not a JSON Web Token") from None
        if not isinstance(head, dict) or not isinstance(body, dict):
            raise CdsAuthError("malformed", "the bearer token is not a JSON Web Token")
        alg = head.get("alg")
        if not isinstance(alg, str) or alg not in ALGORITHMS:
            raise CdsAuthError(
                "malformed", f"tokens signed with {alg!r} are not taken (ES384 or RS384)"
            )
        if "crit" in head:  # RFC 7515 4.1.11: extensions not understood must be refused
            raise CdsAuthError("malformed", f"tokens with critical header extensions ({head['crit']!r}) "
                               "are not taken")  # fmt: skip
        client = self.by_iss.get(str(body.get("iss")))
        if client is None:
            raise CdsAuthError(
                "untrusted", f"issuer {body.get('iss')!r} is not a trusted CDS client"
            )
        jku = head.get("jku")
        if jku is not None and jku != client.jwks_url:
            raise CdsAuthError("untrusted", f"{client.name}: the token's jku {jku!r} is not the JWK Set "
                               "URL the client file names")  # fmt: skip
        kty, key = self._key(client, str(head.get("kid")))
        if key is None or kty != ("EC" if alg == "ES384" else "RSA"):
            why = f" (its JWK Set: {client.fetch_error})" if client.fetch_error else ""
            raise CdsAuthError("untrusted", f"{client.name}: no {alg} key {head.get('kid')!r}{why}")
        signed = f"{head_b64}.{body_b64}".encode("ascii")
        try:
            if alg == "ES384":
                if len(sig) != 96:
                    raise InvalidSignature
                der = encode_dss_signature(int.from_bytes(sig[:48], "big"),
                                           int.from_bytes(sig[48:], "big"))  # fmt: skip
                key.verify(der, signed, ec.ECDSA(hashes.SHA384()))
            else:
                key.verify(sig, signed, padding.PKCS1v15(), hashes.SHA384())
        except InvalidSignature:
            raise CdsAuthError(
                "untrusted", f"{client.name}: the token's signature does not verify"
            ) from None
        aud = body.get("aud")
        given = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if not {a.rstrip("/") for a in given if isinstance(a, str)} & {
            a.rstrip("/") for a in audiences
        }:
            raise CdsAuthError(
                "audience", f"{client.name}: the token is for {aud!r}, not this endpoint"
            )
        exp, iat, jti = body.get("exp"), body.get("iat"), body.get("jti")
        if not (_time(exp) and _time(iat) and isinstance(jti, str) and jti):
            raise CdsAuthError("claims", f"{client.name}: the token lacks exp, iat or jti (exp and iat "
                               "in seconds, jti a string)")  # fmt: skip
        if exp < now - LEEWAY_S:
            raise CdsAuthError("expired", f"{client.name}: the token expired")
        if iat > now + LEEWAY_S or exp - iat > MAX_LIFETIME_S:
            raise CdsAuthError("lifetime", f"{client.name}: the token was issued in the future or for "
                               f"longer than {MAX_LIFETIME_S:g} s")  # fmt: skip
        nbf = body.get("nbf", iat)
        if not _time(nbf) or nbf > now + LEEWAY_S:  # RFC 7519 4.1.5
            raise CdsAuthError(
                "not yet valid", f"{client.name}: the token is not valid yet (nbf {nbf!r})"
            )
        # the start on the wall clock as it reads now: one that started ahead (a machine
        # up with a clock a year fast) or stepped back since refused every token until a
        # restart (the earlier of the two: after a step forward, the start as it was read)
        started = min(self._started, now - (self._clock() - self._started_clock))
        if iat < started:
            # its jti may have been used with the process before this one (the tokens seen
            # are kept in memory): an EHR signs a fresh token for every call. No leeway: a
            # token the old process took in its last minute would be taken again
            raise CdsAuthError("issued before the gateway started", f"{client.name}: the token was issued before the gateway "
                               "started")  # fmt: skip
        with self._lock:
            # kept until its time left when seen has run on the monotonic clock, and while
            # the wall clock would take it: by the wall clock alone, a step forward then
            # back let a token be replayed, and a step back stopped pruning for its length
            mono = self._clock()
            if mono - self._pruned >= 1.0:  # at most once a second: the tokens of an hour
                self._seen = {
                    j: (i, e, m) for j, (i, e, m) in self._seen.items()
                    if m >= mono or i - LEEWAY_S <= now <= e + LEEWAY_S
                }  # fmt: skip
                self._pruned = mono
            key_jti = f"{client.iss} {jti}"
            if key_jti in self._seen:
                raise CdsAuthError(
                    "replayed", f"{client.name}: the token (jti {jti!r}) was used before"
                )
            self._seen[key_jti] = (float(iat), float(exp), mono + float(exp) - now + LEEWAY_S)
        return client


def sign_token(
    private_key: Any, kid: str, claims: Mapping[str, Any], jku: str | None = None
) -> str:
    """A JWT of ``claims`` signed with an EC P-384 (ES384) or RSA (RS384) private key, as
    an EHR signs its CDS Hooks calls (``jku``: where it publishes its JWK Set): the EHR's
    side, for trying a deployment by hand and for the tests."""
    alg = "ES384" if isinstance(private_key, ec.EllipticCurvePrivateKey) else "RS384"
    head = {"alg": alg, "typ": "JWT", "kid": kid, **({"jku": jku} if jku else {})}
    signed = f"{_b64e(json.dumps(head).encode())}.{_b64e(json.dumps(dict(claims)).encode())}"
    if alg == "ES384":
        r, s = decode_dss_signature(private_key.sign(signed.encode(), ec.ECDSA(hashes.SHA384())))
        sig = r.to_bytes(48, "big") + s.to_bytes(48, "big")
    else:
        sig = private_key.sign(signed.encode(), padding.PKCS1v15(), hashes.SHA384())
    return f"{signed}.{_b64e(sig)}"
