"""CDS Hooks calls of every shape, generated. Tokens: headers and claims of any JSON, signed
by the trusted EHR or not, and good tokens with characters changed; a token is either taken,
and then every claim the gateway relies on holds, or refused with a
:class:`~pipelines.cds_tokens.CdsAuthError` (a 401, the reason logged), never another exception (a
500 for whoever sends it, signed or not). Hook calls and feedback of any JSON: the patient
named, or a ValueError (a 422), or with a record number system and no ``patient``
prefetch key, :class:`~pipelines.cds_hooks.PrefetchMissing` (a 412)."""

from __future__ import annotations

import base64
import json
import math
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from damage_kit import FUZZ, JSON, replaced
from fastapi.testclient import TestClient
from http_testkit import closed_port
from hypothesis import given
from hypothesis import strategies as st
from monitor_kit import untrained_monitor

from pipelines.cds_hooks import PrefetchMissing, apply_feedback, patient_of
from pipelines.cds_tokens import MAX_TOKEN_CHARS, CdsAuthError, CdsClients, jwk_of, sign_token
from pipelines.gateway import create_app
from vitalgru.scoring.ward import Ward

ISS = "https://ehr.example.org"
AUD = "http://testserver/cds-services/vitalgru-sepsis"
KEY = ec.generate_private_key(ec.SECP384R1())


@pytest.fixture(scope="module")
def clients(tmp_path_factory: pytest.TempPathFactory) -> CdsClients:
    folder: Path = tmp_path_factory.mktemp("cds")
    (folder / "clients.json").write_text(json.dumps({"clients": [
        {"name": "ehr", "iss": ISS, "jwks": {"keys": [jwk_of(KEY.public_key(), "k1")]}}]}))  # fmt: skip
    return CdsClients.from_file(folder / "clients.json")


def _good_claims() -> dict[str, Any]:
    now = time.time()
    return {"iss": ISS, "aud": AUD, "exp": now + 300, "iat": now, "jti": str(uuid.uuid4())}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _taken_or_refused(clients: CdsClients, token: str) -> bool:
    try:
        clients.verify(token, [AUD])
    except CdsAuthError:
        return False
    return True


@FUZZ
@given(header=JSON, fields=st.dictionaries(st.sampled_from(["alg", "kid", "jku", "typ"]), JSON))
def test_a_header_of_any_shape_is_refused_with_the_reason(
    clients: CdsClients, header: Any, fields: dict
) -> None:
    good = sign_token(KEY, "k1", _good_claims())
    _, body, sig = good.split(".")
    for head in (header, {"alg": "ES384", "kid": "k1", **fields}):
        token = f"{_b64(json.dumps(head).encode())}.{body}.{sig}"
        taken = _taken_or_refused(clients, token)
        # only the header the EHR signed is taken (the signature covers it)
        assert not taken or token == good


@FUZZ
@given(claims=st.dictionaries(st.sampled_from(["iss", "aud", "exp", "iat", "jti"]), JSON),
       keep=st.sets(st.sampled_from(["iss", "aud", "exp", "iat", "jti"])))  # fmt: skip
def test_signed_claims_of_any_shape_are_taken_only_when_each_holds(
    clients: CdsClients, claims: dict, keep: set
) -> None:
    body = {k: v for k, v in _good_claims().items() if k in keep} | claims
    token = sign_token(KEY, "k1", body)
    if not _taken_or_refused(clients, token):
        return
    aud = body["aud"] if isinstance(body["aud"], list) else [body["aud"]]
    assert body["iss"] == ISS and AUD in aud
    for t in (body["exp"], body["iat"]):
        assert isinstance(t, int | float) and not isinstance(t, bool) and math.isfinite(t)
    assert isinstance(body["jti"], str) and body["jti"]


@FUZZ
@given(edits=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 3), st.text(max_size=3)),
                      min_size=1, max_size=3))  # fmt: skip
def test_a_good_token_with_characters_changed_is_refused(clients: CdsClients, edits: list) -> None:
    token = sign_token(KEY, "k1", _good_claims())
    damaged = token
    for where, cut, insert in edits:
        i = int(where * len(damaged))
        damaged = damaged[:i] + insert + damaged[i + cut :]
    # taken only if the damage left the token as it was (base64's spare bits aside)
    assert not _taken_or_refused(clients, damaged) or damaged.split(".")[:2] == token.split(".")[:2]


CALL = {"hook": "patient-view", "context": {"patientId": "icu-4", "userId": "Practitioner/1"},
        "prefetch": {"patient": {"resourceType": "Patient", "id": "icu-4", "identifier": [
            {"system": "urn:oid:1.2.3", "value": "MRN-1"}]}}}  # fmt: skip


@FUZZ
@given(call=replaced(CALL) | JSON, system=st.sampled_from([None, "urn:oid:1.2.3"]))
def test_a_hook_call_of_any_shape_names_a_patient_or_is_refused(call: Any, system: Any) -> None:
    try:
        pid = patient_of(call if isinstance(call, dict) else {"context": call}, system)
    except ValueError:
        return
    except PrefetchMissing:  # a 412: only where a prefetch is needed and its key is absent
        assert system is not None
        return
    assert isinstance(pid, str) and pid or pid is None and system is not None


@FUZZ
@given(body=replaced({"feedback": [{"card": "c-1", "outcome": "overridden",
                                        "overrideReason": {"reason": {"code": "x"},
                                                           "userComment": "seen"}}]}) | JSON)  # fmt: skip
def test_feedback_of_any_shape_is_counted_or_refused(body: Any) -> None:
    try:
        got = apply_feedback(
            None, [], body, "ehr", "sepsis", log_id="l"
        )  # no alarm logged: all unknown
    except ValueError:
        return
    assert got["acknowledged"] == got["already"] == 0 and got["unknown"] == len(body["feedback"])


def test_json_nested_past_the_stack_is_refused_not_a_500(clients: CdsClients) -> None:
    # a header or a body of 1,000 brackets raised a RecursionError: a 500 for anyone
    nested = f"{_b64(b'[' * 1000)}.{_b64(b'{}')}.AAAA"
    for token in (nested, f"{_b64(b'{}')}.{_b64(b'[' * 1000)}.AAAA",
                  f"{_b64(b'{}')}.{'A' * MAX_TOKEN_CHARS}.AAAA"):  # fmt: skip
        with pytest.raises(CdsAuthError):
            clients.verify(token, [AUD])
    app = create_app(Ward(untrained_monitor()), tick_s=0, cds_clients=clients,
                     public_url="http://testserver")  # fmt: skip
    with TestClient(app) as c:
        assert (
            c.get("/cds-services", headers={"Authorization": f"Bearer {nested}"}).status_code == 401
        )
        signed = sign_token(KEY, "k1", {**_good_claims(), "aud": AUD.replace("sepsis", "ecg")})
        got = c.post("/cds-services/vitalgru-ecg", content=b"[" * 1000,
                     headers={"Authorization": f"Bearer {signed}",
                              "Content-Type": "application/json"})  # fmt: skip
        assert got.status_code == 422


def test_a_refused_token_is_answered_without_the_gateways_internals(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # the 401 named the issuers trusted, the client's name, its JWK Set URL and the
    # network error of its last fetch, to a caller with no key at all
    url = f"http://127.0.0.1:{closed_port()}/internal/ehr-keys.json"
    clients = CdsClients.from_spec({"clients": [{"name": "epic-prod-ward4", "iss": ISS,
                                                 "jwks_url": url}]})  # fmt: skip
    app = create_app(Ward(untrained_monitor()), tick_s=0, cds_clients=clients,
                     public_url="http://testserver")  # fmt: skip
    with TestClient(app) as c:
        for iss in ("https://not-trusted.example", ISS):
            head = _b64(json.dumps({"alg": "RS384", "kid": "guess"}).encode())
            token = f"{head}.{_b64(json.dumps({'iss': iss}).encode())}.AAAA"
            got = c.get("/cds-services", headers={"Authorization": f"Bearer {token}"})
            assert got.status_code == 401
            assert got.json() == {"detail": "invalid token (untrusted)"}  # the same for both
    for said in ("not-trusted.example", "epic-prod-ward4", "internal/ehr-keys.json"):
        assert said in caplog.text  # the reason in full is the gateway's log's
