"""The JSON Web Keys of CDS Hooks clients (:mod:`pipelines.cds_tokens`): the public keys of a
JWK Set the gateway can verify tokens with, and fetching a set from the URL where an EHR
publishes it (over HTTPS only, no redirect followed, in bounded time and size).
:func:`jwk_of` is the EHR's side, for a client file's ``jwks`` when trying a deployment by
hand and for the tests."""

from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa

__all__ = ["JWKS_MAX_BYTES", "JWKS_TIMEOUT_S", "check_jwks_url", "fetch_jwks", "jwk_of"]

#: Largest JWK Set read from a URL, and how long a fetch may take in all (connection,
#: answer and body: a key server that trickles its answer is given up on).
JWKS_MAX_BYTES = 1 << 20
JWKS_TIMEOUT_S = 5.0

logger = logging.getLogger(__name__)


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int(text: str) -> int:
    return int.from_bytes(_b64(text), "big")


def _public_key(jwk: Mapping[str, Any]) -> Any:
    """The public key of a JWK (``RSA``, or ``EC`` on P-384); ValueError otherwise."""
    kty = jwk.get("kty")
    if kty == "RSA":
        return rsa.RSAPublicNumbers(_int(jwk["e"]), _int(jwk["n"])).public_key()
    if kty == "EC" and jwk.get("crv") == "P-384":
        return ec.EllipticCurvePublicNumbers(
            _int(jwk["x"]), _int(jwk["y"]), ec.SECP384R1()
        ).public_key()
    raise ValueError(f"key {jwk.get('kid')!r}: a {kty} key on {jwk.get('crv')} is not taken "
                     "(RSA for RS384, EC P-384 for ES384)")  # fmt: skip


def _signing_keys(jwks: Any) -> dict[str, tuple[str, Any]]:
    """``{kid: (kty, public key)}`` of a JWK Set's signing keys (KeyError, TypeError or
    AttributeError for one that is not a JWK Set). A key the gateway cannot use (another
    type or curve, no ``kid``, a damaged number) is logged and skipped, as RFC 7517 section 5
    asks: an EHR publishing an Ed25519 key beside its RSA one is not locked out."""
    keys = {}
    for k in jwks["keys"]:
        if k.get("use", "sig") != "sig":
            continue
        try:
            if not isinstance(k.get("kid"), str) or not k["kid"]:
                raise ValueError("a key without a kid cannot be named by a token")
            keys[k["kid"]] = (str(k["kty"]), _public_key(k))
        except (ValueError, KeyError, TypeError) as e:
            logger.warning("JWK Set: key %r skipped (%s: %s)", k.get("kid"),
                           type(e).__name__, e)  # fmt: skip
    return keys


def check_jwks_url(url: str) -> str:
    """``url`` when a JWK Set may be fetched from it: HTTPS, or HTTP to this machine only
    (ValueError otherwise: keys fetched in the clear could be anyone's)."""
    u = urllib.parse.urlsplit(url)
    host = (u.hostname or "").lower()
    try:
        local = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = False
    if u.scheme == "https" and host or u.scheme == "http" and local:
        return url
    raise ValueError(f"jwks_url {url!r}: keys are fetched over HTTPS only (HTTP only from "
                     "this machine)")  # fmt: skip


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects refused: :func:`check_jwks_url` passed the URL the client file names, not
    where it redirects (plain HTTP to another machine, a host the file never named)."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> None:  # fmt: skip
        raise urllib.error.HTTPError(req.full_url, code, f"{msg}: a redirect (to {newurl!r}), "
                                     "not followed: name the JWK Set's own URL", headers, fp)  # fmt: skip


_OPENER = urllib.request.build_opener(_NoRedirect)


def _get_jwks(url: str, deadline: float) -> bytes:
    """The body at ``url``, read in pieces until ``deadline`` (monotonic) at most."""
    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    with _OPENER.open(req, timeout=JWKS_TIMEOUT_S) as r:
        body = b""
        while len(body) <= JWKS_MAX_BYTES:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no whole answer within {JWKS_TIMEOUT_S:g} s")
            piece = r.read1(JWKS_MAX_BYTES + 1 - len(body))
            if not piece:
                break
            body += piece
    return body


def fetch_jwks(url: str) -> dict[str, tuple[str, Any]]:
    """The signing keys of the JWK Set at ``url``, fetched within :data:`JWKS_TIMEOUT_S` in
    all (ValueError saying why when it cannot be fetched or read in time). The request runs
    in a thread of its own, left to end by itself when it overruns (a key server can hold a
    read past any socket timeout by sending a byte at a time): it stops reading the body at
    the deadline, and each read waits :data:`JWKS_TIMEOUT_S` at most."""
    got: list[Any] = []

    def get() -> None:
        try:
            got.append(_get_jwks(url, time.monotonic() + JWKS_TIMEOUT_S))
        except Exception as e:  # handed to the caller, which says why
            got.append(e)

    worker = threading.Thread(target=get, daemon=True, name="jwks fetch")
    worker.start()
    worker.join(JWKS_TIMEOUT_S)
    if not got:
        raise ValueError(f"{url}: no whole answer within {JWKS_TIMEOUT_S:g} s")
    try:
        if isinstance(got[0], Exception):
            raise got[0]
        if len(got[0]) > JWKS_MAX_BYTES:
            raise ValueError(f"larger than {JWKS_MAX_BYTES} bytes")
        return _signing_keys(json.loads(got[0]))
    except (OSError, http.client.HTTPException) as e:  # URLError, HTTPError, timeouts
        raise ValueError(f"{url}: {type(e).__name__}: {e}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"{url}: not a JWK Set ({type(e).__name__}: {e})") from None


def jwk_of(public_key: Any, kid: str) -> dict[str, Any]:
    """The JWK of an EC P-384 or RSA public key (for a client file's ``jwks``): the EHR's
    side, for trying a deployment by hand and for the tests."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        n = public_key.public_numbers()
        return {"kty": "EC", "crv": "P-384", "kid": kid, "use": "sig",
                "x": _b64e(n.x.to_bytes(48, "big")), "y": _b64e(n.y.to_bytes(48, "big"))}  # fmt: skip
    n = public_key.public_numbers()
    size = (n.n.bit_length() + 7) // 8
    return {"kty": "RSA", "kid": kid, "use": "sig", "n": _b64e(n.n.to_bytes(size, "big")),
            "e": _b64e(n.e.to_bytes((n.e.bit_length() + 7) // 8, "big"))}  # fmt: skip


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
