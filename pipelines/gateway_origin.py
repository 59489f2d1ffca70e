"""Requests a web page could make the bedside gateway take (:mod:`pipelines.gateway`): an
ASGI middleware that refuses request bodies of a type a browser sends without asking the
server first, and, on a gateway without tokens, requests from another site or addressed
to a name that is not the gateway's.

A page on any site, open in a browser on the gateway's machine or network, may send a
``text/plain``, form or body-less POST to ``localhost:8000`` without a CORS preflight:
on a gateway without tokens it discharged a patient with an HL7 ``ADT^A03`` or admitted
one. And a page whose DNS name is made to point at the gateway (DNS rebinding) reads
its answers as its own. So bodies must be JSON, FHIR JSON or HL7 v2 (which a browser
sends cross-site only after a preflight the gateway never answers), and an open gateway
refuses a request a browser marks as cross-origin (``Sec-Fetch-Site``, ``Origin``) and
one whose ``Host`` is not a name of this gateway. A gateway with tokens needs neither
check: a page has no token to send.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from vitalgru.io.hl7v2 import HL7_MEDIA_TYPE

__all__ = ["BODY_TYPES", "RequestOrigin"]

#: The media types a request body may have: JSON, FHIR's JSON, and HL7 v2 ER7 as the
#: interface engines name it (the first, ``x-application/hl7-v2+er7``, is the gateway's).
BODY_TYPES = frozenset({
    "application/json", "application/fhir+json", HL7_MEDIA_TYPE, "application/hl7-v2",
    "application/hl7-v2+er7", "x-application/hl7-v2", "application/x-hl7",
})  # fmt: skip
#: Open to anyone whatever the Host (counts, no identifiers: a scraper names the gateway
#: as its service discovery does).
_ANY_HOST = frozenset({"/health", "/metrics"})
_LOCAL = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


def _hostname(host: str) -> str:
    """The name in a ``Host`` header (or an origin's netloc), without the port."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class RequestOrigin:
    """ASGI middleware: 415 for a request body of a type not in :data:`BODY_TYPES`; with
    ``open_`` (no tokens), 403 for a request that changes something (not ``GET``, ``HEAD``
    or ``OPTIONS``: a link from the intranet to a page is followed) a browser sent from
    another origin
    (``Sec-Fetch-Site`` ``cross-site`` or ``same-site``, or an ``Origin`` other than the
    ``Host`` and ``public_url``) and, given ``hosts`` (the address it listens on), for a
    ``Host`` that names neither this machine (localhost, its host names, ``hosts``) nor
    ``public_url`` (an IP address is taken: a DNS rebinding needs a name)."""

    def __init__(self, app: Any, *, open_: bool, public_url: str | None = None,
                 hosts: Sequence[str] | None = None) -> None:  # fmt: skip
        self.app, self.open = app, open_
        public = urlsplit(public_url) if public_url else None
        self.public_origin = f"{public.scheme}://{public.netloc}".lower() if public else None
        self.names: frozenset[str] | None = None  # None: any Host (an app served by its caller)
        if hosts is not None:
            given = (socket.gethostname(), socket.getfqdn(), public and public.hostname, *hosts)
            self.names = _LOCAL | {n.lower() for n in given if n}

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers") or []}  # fmt: skip
        refused = self._refused(scope["method"], scope.get("path", ""), headers)
        if refused is None:
            return await self.app(scope, receive, send)
        body = json.dumps({"detail": refused[1]}).encode()
        await send({"type": "http.response.start", "status": refused[0],
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    def _refused(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, str] | None:
        has_body = headers.get("content-length", "0").strip() not in ("", "0") or (
            "transfer-encoding" in headers)  # fmt: skip
        if method in ("POST", "PUT", "PATCH") and has_body:
            kind = headers.get("content-type", "").split(";")[0].strip().lower()
            if kind not in BODY_TYPES:
                return 415, (f"a request body of type {kind or '(none given)'} is not taken: "
                             "send application/json (FHIR: application/fhir+json; HL7 v2: "
                             f"{HL7_MEDIA_TYPE})")  # fmt: skip
        if not self.open:
            return None
        host = headers.get("host", "")
        name = _hostname(host)
        if (
            self.names is not None
            and path not in _ANY_HOST
            and not (name in self.names or name.endswith(".localhost") or _is_ip(name))
        ):
            return 403, (f"Host {host!r} is not a name of this gateway (localhost, this "
                         "machine's name, an IP address or --public-url's)")  # fmt: skip
        if method in ("GET", "HEAD", "OPTIONS"):
            # a link followed, a page read: it changes nothing, and another site's page
            # cannot read the answer (the Host check above stops a rebinding)
            return None
        site = headers.get("sec-fetch-site", "").lower()
        if site in ("cross-site", "same-site"):
            return 403, f"a request from another site ({site}) to a gateway without tokens"
        origin = headers.get("origin")
        if origin is not None:
            o = origin.strip().lower()
            if o == "null" or (urlsplit(o).netloc != host.strip().lower()
                               and o != self.public_origin):  # fmt: skip
                return 403, f"a request from another origin ({origin}) to a gateway without tokens"
        return None
