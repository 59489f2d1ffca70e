"""The JWK Sets CDS Hooks clients publish at a URL (:mod:`pipelines.cds_tokens`,
:mod:`pipelines.cds_jwks`): the set a fetch gets is the set in use, keys that cannot be
fetched again do not verify for ever, and a slow key server holds up nothing for long."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
import uuid
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from http_testkit import JsonServer, serving

from pipelines import cds_jwks, cds_tokens
from pipelines.cds_tokens import (
    JWKS_MAX_AGE_S,
    JWKS_MAX_STALE_S,
    CdsAuthError,
    CdsClients,
    _signing_keys,
    fetch_jwks,
    jwk_of,
    sign_token,
)

ISS = "https://ehr.example.org"
AUD = "http://testserver/cds-services/vitalgru-ecg"
URL = "https://ehr.example.org/jwks.json"
KEY = ec.generate_private_key(ec.SECP384R1())
JWKS = {"keys": [jwk_of(KEY.public_key(), "ec-1")]}


def _token() -> str:
    now = time.time()
    return sign_token(KEY, "ec-1", {"iss": ISS, "aud": AUD, "exp": now + 300, "iat": now,
                                    "jti": str(uuid.uuid4())})  # fmt: skip


class KeyServer:
    """The EHR's key server, answering the set it publishes (an int: that HTTP error)."""

    def __init__(self) -> None:
        self.served: Any = JWKS
        self.gets = 0

    def __call__(self, url: str) -> dict[str, tuple[str, Any]]:
        self.gets += 1
        if isinstance(self.served, int):
            raise ValueError(f"{url}: HTTPError: HTTP Error {self.served}")
        return _signing_keys(self.served)


def _clients(server: KeyServer, t: list[float]) -> CdsClients:
    spec = {"clients": [{"name": "ehr", "iss": ISS, "jwks_url": URL}]}
    return CdsClients.from_spec(spec, fetch=server, clock=lambda: t[0])


def _taken(clients: CdsClients) -> bool:
    try:
        clients.verify(_token(), [AUD])
    except CdsAuthError:
        return False
    return True


@pytest.mark.parametrize("published", [
    {"keys": []},
    {"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "ed-1", "x": "AA"}]},
])  # fmt: skip
def test_a_set_with_no_usable_key_is_taken_as_it_is(
    published: dict, caplog: pytest.LogCaptureFixture
) -> None:
    # the EHR withdrew its key (compromised) and publishes none the gateway can use: the
    # old key kept verifying for ever, the fetch counted as failed
    server, t = KeyServer(), [1000.0]
    clients = _clients(server, t)
    assert _taken(clients)
    server.served = published
    t[0] += JWKS_MAX_AGE_S + 1
    _taken(clients)  # the set is an hour old: fetched again (in the background)
    assert clients.wait_for_fetches(5)
    assert server.gets == 2 and not _taken(clients)
    assert clients.fetch_counts() == {("ehr", "ok"): 2}
    assert "holds no key the gateway can use" in caplog.text
    server.served = JWKS  # published again: taken once a key id it lacks is asked for
    t[0] += 60
    assert _taken(clients)


def test_keys_that_cannot_be_fetched_again_lapse_after_a_day(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, t = KeyServer(), [1000.0]
    clients = _clients(server, t)
    server.served = 500  # the EHR's key server is gone
    for hours in (2, 12, JWKS_MAX_STALE_S / 3600):
        t[0] = 1000.0 + hours * 3600
        assert _taken(clients), hours  # the keys fetched before stay in use a while
    t[0] += 120
    assert not _taken(clients) and not _taken(clients)  # not for ever
    assert "the keys fetched before are dropped" in caplog.text
    server.served = JWKS
    t[0] += 60
    assert _taken(clients)  # back once the set can be fetched


def test_a_key_server_that_trickles_its_answer_is_given_up_on_in_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a byte at a time, each within the socket timeout: the fetch ran as long as the server
    # liked (the timeout was per read)
    monkeypatch.setattr(cds_jwks, "JWKS_TIMEOUT_S", 0.5)
    body = json.dumps(JWKS).encode()
    stop = threading.Event()

    def trickle(conn: socket.socket) -> None:
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body))  # fmt: skip
            for i in range(len(body)):
                if stop.wait(0.1):
                    return
                conn.sendall(body[i : i + 1])

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        url = f"http://127.0.0.1:{server.getsockname()[1]}/jwks.json"
        serve = threading.Thread(target=lambda: trickle(server.accept()[0]), daemon=True)
        serve.start()
        start = time.monotonic()
        try:
            with pytest.raises(ValueError, match="no whole answer within 0.5 s"):
                fetch_jwks(url)
            assert time.monotonic() - start < 1.5
        finally:
            stop.set()
            serve.join(5)


def test_a_slow_key_server_holds_up_neither_the_start_nor_calls_with_their_key_in_hand(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cds_tokens, "JWKS_TIMEOUT_S", 0.3)
    server, t = KeyServer(), [1000.0]
    hanging, released = threading.Event(), threading.Event()

    def fetch(url: str) -> dict[str, tuple[str, Any]]:
        if hanging.is_set():
            released.wait(10)  # a fetch that has not given up yet
        return server(url)

    def timed(call: Any) -> float:
        start = time.monotonic()
        call()
        return time.monotonic() - start

    spec = {"clients": [{"name": "ehr", "iss": ISS, "jwks_url": URL}]}
    try:
        hanging.set()  # at start: the gateway starts all the same, its calls refused
        assert timed(lambda: CdsClients.from_spec(spec, fetch=fetch, clock=lambda: t[0])) < 1
        hanging.clear()
        clients = CdsClients.from_spec(spec, fetch=fetch, clock=lambda: t[0])
        assert _taken(clients)
        hanging.set()
        t[0] += JWKS_MAX_AGE_S + 1  # an old set: fetched again, and that fetch hangs
        # the key in hand verifies while the fetch runs (each call waited on it before)
        assert timed(lambda: _taken(clients)) < 0.2 and timed(lambda: _taken(clients)) < 0.2
        unknown = sign_token(KEY, "ec-9", {"iss": ISS, "aud": AUD, "exp": time.time() + 60,
                                           "iat": time.time(), "jti": "u1"})  # fmt: skip
        start = time.monotonic()
        with pytest.raises(CdsAuthError):  # a key id it lacks waits for the fetch, not long
            clients.verify(unknown, [AUD])
        assert time.monotonic() - start < 1
    finally:
        released.set()
    assert clients.wait_for_fetches(5) and clients.fetch_counts() == {("ehr", "ok"): 2}


def test_a_jwk_set_url_that_redirects_is_refused() -> None:
    # check_jwks_url passed the URL the file names, and urllib followed its redirect
    # anywhere: plain HTTP to another machine, a host the file never named
    with serving(JsonServer(lambda: JWKS)) as elsewhere:

        class Redirect(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(302)
                self.send_header("Location", elsewhere.url)  # type: ignore[attr-defined]
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        with serving(http.server.HTTPServer(("127.0.0.1", 0), Redirect)) as server:
            url = f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
            with pytest.raises(ValueError, match="a redirect .* not followed"):
                fetch_jwks(url)
            clients = CdsClients.from_spec(
                {"clients": [{"name": "ehr", "iss": ISS, "jwks_url": url}]}
            )
            assert clients.by_iss[ISS].keys == {}
        assert elsewhere.gets == 0  # type: ignore[attr-defined]
