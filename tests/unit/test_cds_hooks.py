"""The gateway as a CDS Hooks service: tokens the EHR signed, cards for the alarms going on,
and the EHR's feedback acknowledging them."""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient
from http_testkit import JsonServer, closed_port, serving
from monitor_kit import untrained_monitor

from pipelines.audit import AuditLog
from pipelines.cds_hooks import DISCHARGE_NOTE, PrefetchMissing, patient_of, sepsis_cards
from pipelines.cds_tokens import (
    JWKS_MAX_AGE_S,
    JWKS_MAX_BYTES,
    JWKS_REFETCH_S,
    CdsAuthError,
    CdsClients,
    fetch_jwks,
    jwk_of,
    sign_token,
)
from pipelines.cli import main
from pipelines.gateway import create_app
from vitalgru.scoring import EarlyWarningMonitor
from vitalgru.scoring.ward import Ward
from vitalgru.sepsis_display import risk_and_line

ISS = "https://ehr.example.org"
BASE = "http://testserver"
MRN = "urn:oid:1.2.3.4.5"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Ehr:
    """An EHR with an EC P-384 key and an RSA key, signing its CDS Hooks tokens."""

    def __init__(self) -> None:
        self.ec = ec.generate_private_key(ec.SECP384R1())
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.jwks = {"keys": [jwk_of(self.ec.public_key(), "ec-1"),
                              jwk_of(self.rsa.public_key(), "rsa-1")]}  # fmt: skip

    def clients(self, tmp_path: Path) -> Path:
        (tmp_path / "ehr-keys.json").write_text(json.dumps(self.jwks))
        path = tmp_path / "cds-clients.json"
        path.write_text(json.dumps({"clients": [
            {"name": "ehr", "iss": ISS, "jwks_file": "ehr-keys.json"}]}))  # fmt: skip
        return path

    def token(self, aud: str, alg: str = "ES384", kid: str | None = None, **claims: Any) -> str:
        now = time.time()
        body = {"iss": ISS, "aud": aud, "exp": now + 300, "iat": now,
                "jti": str(uuid.uuid4()), **claims}  # fmt: skip
        key = self.ec if alg == "ES384" else self.rsa
        return sign_token(key, kid or ("ec-1" if alg == "ES384" else "rsa-1"), body)


@pytest.fixture(scope="module")
def ehr() -> Ehr:
    return Ehr()


def test_a_token_is_taken_only_when_everything_about_it_holds(ehr: Ehr, tmp_path: Path) -> None:
    clients = CdsClients.from_file(ehr.clients(tmp_path))
    aud = f"{BASE}/cds-services/vitalgru-sepsis"
    assert clients.verify(ehr.token(aud), [aud]).name == "ehr"
    assert clients.verify(ehr.token(aud, "RS384"), [aud]).name == "ehr"
    assert clients.verify(ehr.token([aud, "x"]), [aud + "/"]).name == "ehr"  # type: ignore[arg-type]
    good = ehr.token(aud)
    head, body, sig = good.split(".")
    forged = json.loads(base64.urlsafe_b64decode(body + "=="))
    forged["iss"] = ISS
    forged["aud"] = f"{BASE}/cds-services/vitalgru-ecg"
    now = time.time()
    refused = {
        "signature does not verify": f"{head}.{_b64(json.dumps(forged).encode())}.{sig}",
        "not this endpoint": ehr.token(f"{BASE}/cds-services/other"),
        "expired": ehr.token(aud, exp=now - 120, iat=now - 400),
        "issued in the future": ehr.token(aud, iat=now + 600, exp=now + 900),
        "longer than": ehr.token(aud, exp=now + 7200),
        "lacks exp, iat or jti": ehr.token(aud, jti=""),
        "are not taken": ehr.token(aud).replace(head, _b64(b'{"alg":"HS256","kid":"ec-1"}')),
        "not a JSON Web Token": "not-a-jwt",
    }
    for why, token in refused.items():
        with pytest.raises(CdsAuthError, match=why):
            clients.verify(token, [aud])
    # signed, but claims of the wrong kind: a token that would never expire, a jti that is
    # no string, a time that is true; an audience of objects and an alg in a list raised a
    # TypeError (a 500) before
    for wrong in ({"exp": float("nan")}, {"jti": {"id": 1}}, {"iat": True}):
        with pytest.raises(CdsAuthError, match="lacks exp, iat or jti"):
            clients.verify(ehr.token(aud, **wrong), [aud])
    with pytest.raises(CdsAuthError, match="not this endpoint"):
        clients.verify(ehr.token([{"aud": aud}, aud + "x"]), [aud])  # type: ignore[list-item]
    listed = ehr.token(aud).replace(head, _b64(b'{"alg":["ES384"],"kid":"ec-1"}'))
    with pytest.raises(CdsAuthError, match="are not taken"):
        clients.verify(listed, [aud])
    assert clients.verify(good, [aud]).name == "ehr"
    with pytest.raises(CdsAuthError, match="used before"):  # the same token again
        clients.verify(good, [aud])
    none = _b64(b'{"alg":"none","typ":"JWT"}')
    with pytest.raises(CdsAuthError, match="'none' are not taken"):
        clients.verify(f"{none}.{body}.", [aud])
    (tmp_path / "bad.json").write_text('{"clients": [{"iss": "x", "jwks": {"keys": []}}]}')
    with pytest.raises(ValueError, match="no signing key"):
        CdsClients.from_file(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="not a CDS client file"):
        CdsClients.from_file(tmp_path / "ehr-keys.json")


def test_a_token_seen_stays_seen_through_steps_of_the_wall_clock(ehr: Ehr, tmp_path: Path) -> None:
    """The tokens seen were kept by the wall clock: a step forward past a token's expiry
    dropped it, and one back within its lifetime let it be taken again; after a step back
    nothing was dropped for the step's length."""
    mono = [5000.0]
    clients = CdsClients.from_file(ehr.clients(tmp_path), clock=lambda: mono[0])
    aud = f"{BASE}/cds-services/vitalgru-sepsis"
    wall = time.time()
    good = ehr.token(aud, iat=wall, exp=wall + 300)
    assert clients.verify(good, [aud], now=wall).name == "ehr"
    mono[0] += 2
    ahead = ehr.token(aud, iat=wall + 3600, exp=wall + 3900)  # the clock stepped an hour on
    clients.verify(ahead, [aud], now=wall + 3600)
    mono[0] += 2  # ... and back: the token has 296 s to live as the gateway's clock reads
    with pytest.raises(CdsAuthError, match="used before"):
        clients.verify(good, [aud], now=wall + 4)
    # stepped back a day: the tokens whose time is up on the monotonic clock and by the
    # wall clock are still dropped, at once, not a day later
    mono[0] += 400
    clients.verify(ehr.token(aud, iat=wall - 86400, exp=wall - 86400 + 300), [aud],
                   now=wall - 86400 + 10)  # fmt: skip
    assert len(clients._seen) == 1
    # a token past its time on the monotonic clock that the wall clock, stepped back, still
    # takes is kept: dropped, it could be taken again
    late = ehr.token(aud, iat=wall - 86400, exp=wall - 86400 + 300)
    clients.verify(late, [aud], now=wall - 86400 + 20)
    mono[0] += 600
    with pytest.raises(CdsAuthError, match="used before"):
        clients.verify(late, [aud], now=wall - 86400 + 30)


def test_keys_published_at_a_url_are_fetched_again_when_the_ehr_rotates_them(
    ehr: Ehr, caplog: pytest.LogCaptureFixture
) -> None:
    aud = f"{BASE}/cds-services/vitalgru-ecg"
    ec_2 = ec.generate_private_key(ec.SECP384R1())
    served: list[Any] = [500]  # the EHR's key server is down when the gateway starts
    t = [1000.0]
    with serving(JsonServer(lambda: served[0])) as server:
        spec = {"clients": [{"name": "ehr", "iss": ISS, "jwks_url": server.url}]}
        caplog.set_level("INFO", logger="pipelines.cds_tokens")
        clients = CdsClients.from_spec(spec, clock=lambda: t[0])
        assert "its calls are refused until it is" in caplog.text and server.gets == 1
        with pytest.raises(CdsAuthError, match="no ES384 key 'ec-1' \\(its JWK Set: .*500"):
            clients.verify(ehr.token(aud), [aud])  # too soon to try again
        served[0] = ehr.jwks
        t[0] += JWKS_REFETCH_S
        assert clients.verify(ehr.token(aud), [aud]).name == "ehr" and server.gets == 2
        jku = sign_token(ehr.ec, "ec-1", {"iss": ISS, "aud": aud, "exp": time.time() + 60,
                                          "iat": time.time(), "jti": "j1"}, jku=server.url)  # fmt: skip
        assert clients.verify(jku, [aud]).name == "ehr"  # the allow-listed jku
        elsewhere = sign_token(ehr.ec, "ec-1", {"iss": ISS, "aud": aud, "exp": time.time() + 60,
                               "iat": time.time(), "jti": "j2"}, jku="https://evil.example/k")  # fmt: skip
        with pytest.raises(CdsAuthError, match="jku 'https://evil.example/k' is not"):
            clients.verify(elsewhere, [aud])
        # the EHR rotates: a new key signs, the old one is withdrawn
        served[0] = {"keys": [jwk_of(ec_2.public_key(), "ec-2")]}
        rotated = {"iss": ISS, "aud": aud, "exp": time.time() + 60, "iat": time.time()}
        for n in range(5):  # unknown key ids: at most one fetch a minute, whatever comes
            with pytest.raises(CdsAuthError, match="no ES384 key 'ec-9'"):
                clients.verify(sign_token(ehr.ec, "ec-9", {**rotated, "jti": f"f{n}"}), [aud])
        assert server.gets == 2
        t[0] += JWKS_REFETCH_S
        assert clients.verify(sign_token(ec_2, "ec-2", {**rotated, "jti": "r1"}), [aud])
        assert server.gets == 3 and "key ids ['ec-2'] (were ['ec-1', 'rsa-1'])" in caplog.text
        with pytest.raises(CdsAuthError, match="no ES384 key 'ec-1'"):
            clients.verify(ehr.token(aud), [aud])  # withdrawn
        # an old set is fetched again; a fetch that fails keeps the keys it had
        served[0] = 503
        t[0] += JWKS_MAX_AGE_S + 1
        assert clients.verify(sign_token(ec_2, "ec-2", {**rotated, "jti": "r2"}), [aud])
        assert clients.wait_for_fetches(5)  # fetched in the background, the key in hand used
        assert server.gets == 4 and "the keys fetched before stay in use" in caplog.text
        with TestClient(create_app(Ward(untrained_monitor()), tick_s=0, cds_clients=clients,
                                   public_url=BASE)) as c:  # fmt: skip
            metrics = c.get("/metrics").text  # an operator sees the fetches failing
        for line in ('vitalgru_cds_jwks_fetches_total{client="ehr",outcome="ok"} 2.0',
                     'vitalgru_cds_jwks_fetches_total{client="ehr",outcome="failed"} 2.0',
                     f'vitalgru_cds_jwks_age_seconds{{client="ehr"}} {JWKS_MAX_AGE_S + 1}'):  # fmt: skip
            assert line in metrics
    for bad, why in (({"jwks_url": "http://ehr.example.org/k"}, "HTTPS only"),
                     ({"jwks_url": "https://ehr.example.org/k", "jwks": ehr.jwks}, "once")):  # fmt: skip
        with pytest.raises(ValueError, match=why):
            CdsClients.from_spec({"clients": [{"name": "ehr", "iss": ISS, **bad}]})


def test_a_jwk_set_url_that_answers_anything_else_says_what_it_answered(ehr: Ehr) -> None:
    for answer, why in (({"keys": "no"}, "not a JWK Set"), ([1, 2], "not a JWK Set"),
                        ({"keys": [], "pad": "x" * JWKS_MAX_BYTES}, "larger than"),
                        (404, "HTTP Error 404")):  # fmt: skip
        with serving(JsonServer(lambda a=answer: a)) as server:
            with pytest.raises(ValueError, match=why):
                fetch_jwks(server.url)
    with serving(JsonServer(lambda: ehr.jwks)) as server:
        assert set(fetch_jwks(server.url)) == {"ec-1", "rsa-1"}


def test_the_patient_is_the_prefetched_record_number_when_there_is_one() -> None:
    call = {"context": {"patientId": "fhir-77"},
            "prefetch": {"patient": {"resourceType": "Patient", "id": "fhir-77", "identifier": [
                {"system": "urn:other", "value": "x"}, {"system": MRN, "value": "MRN-0042"}]}}}  # fmt: skip
    assert patient_of(call, MRN) == "MRN-0042"
    assert patient_of(call, None) == "fhir-77"
    # with a record number system, the FHIR id is never taken for one: no patient, no card
    assert patient_of(call, "urn:none") is None
    # the key left out (the EHR could not prefetch it): not "no patient" but a 412
    for missing in ({}, {"prefetch": None}, {"prefetch": {}}, {"prefetch": {"user": {}}}):
        with pytest.raises(PrefetchMissing):
            patient_of({"context": {"patientId": "f"}, **missing}, MRN)
    assert patient_of({"context": {"patientId": "f"}}, None) == "f"  # no prefetch needed
    # null: the EHR has no such Patient
    assert patient_of({"context": {"patientId": "f"}, "prefetch": {"patient": None}}, MRN) is None
    # not an object, or a patient neither a resource nor null: the EHR sent what the spec
    # does not allow (answered "no card" before, which reads as no alarm): a 422
    for odd_prefetch in (["odd"], "Patient/f", {"patient": "Patient/f"}, {"patient": [{}]}):
        with pytest.raises(ValueError, match="prefetch is a"):
            patient_of({"context": {"patientId": "f"}, "prefetch": odd_prefetch}, MRN)
    odd = {"patient": {"resourceType": "Patient", "id": "f", "identifier": 7}}
    assert patient_of({"context": {"patientId": "f"}, "prefetch": odd}, MRN) is None  # no TypeError
    with pytest.raises(ValueError, match="no patientId"):
        patient_of({"context": {}}, MRN)


def test_a_prefetch_that_is_not_the_hooks_patient_names_no_one(ehr: Ehr, tmp_path: Path) -> None:
    # the chart of fhir-A with another Patient prefetched (or not a Patient at all) showed
    # that patient's alarm cards
    ward = Ward(untrained_monitor(), feed_timeout_s=0.01)
    app = create_app(ward, tick_s=0, patient_system=MRN, public_url=BASE,
                     cds_clients=CdsClients.from_file(ehr.clients(tmp_path)))  # fmt: skip
    aud = f"{BASE}/cds-services/vitalgru-ecg"
    mrn_b = [{"system": MRN, "value": "mrn-B"}]
    with TestClient(app) as c:
        c.post("/ecg/mrn-B/admit", json={"fs": 360})
        time.sleep(0.03)
        ward.tick()  # mrn-B's feed is lost: an alarm

        def cards(pid: str, patient: Any = None) -> list:
            body = {"hook": "patient-view", "hookInstance": "h", "context": {"patientId": pid},
                    **({} if patient is None else {"prefetch": {"patient": patient}})}  # fmt: skip
            got = c.post("/cds-services/vitalgru-ecg", json=body,
                         headers={"Authorization": f"Bearer {ehr.token(aud)}"})  # fmt: skip
            assert got.status_code == 200
            return got.json()["cards"]

        assert len(cards("fhir-B", {"resourceType": "Patient", "id": "fhir-B",
                                    "identifier": mrn_b})) == 1  # fmt: skip
        other = {"resourceType": "Patient", "id": "fhir-B", "identifier": mrn_b}
        assert cards("fhir-A", other) == []
        assert cards("fhir-A", {"resourceType": "Patient", "identifier": mrn_b}) == []
        assert cards("fhir-A", {"resourceType": "OperationOutcome", "id": "fhir-A",
                                "identifier": mrn_b}) == []  # fmt: skip
        assert cards("mrn-B", {"resourceType": "Patient", "id": "mrn-B"}) == []  # no record
        # number in the prefetch: a FHIR id is not one
        metrics = c.get("/metrics").text
    assert 'vitalgru_cds_calls_total{outcome="none",service="vitalgru-ecg"} 4.0' in metrics


def test_a_call_without_the_patient_prefetch_is_412_not_an_empty_answer(
    ehr: Ehr, tmp_path: Path
) -> None:
    # an EHR whose own prefetch failed leaves the key out (CDS Hooks 2.0); answered 200 with
    # no card, the chart showed "no guidance" while mrn-B's alarm went on
    ward = Ward(untrained_monitor(), feed_timeout_s=0.01)
    clients = CdsClients.from_file(ehr.clients(tmp_path))
    aud = f"{BASE}/cds-services/vitalgru-ecg"
    patient = {"resourceType": "Patient", "id": "fhir-B",
               "identifier": [{"system": MRN, "value": "mrn-B"}]}  # fmt: skip
    base = {"hook": "patient-view", "hookInstance": "h", "fhirServer": "https://ehr.example/fhir",
            "context": {"patientId": "fhir-B"}}  # fmt: skip
    with TestClient(create_app(ward, tick_s=0, patient_system=MRN, public_url=BASE,
                               cds_clients=clients)) as c:  # fmt: skip
        c.post("/ecg/mrn-B/admit", json={"fs": 360})
        time.sleep(0.03)
        ward.tick()  # mrn-B's feed is lost: an alarm

        def call(**extra: Any) -> Any:
            return c.post("/cds-services/vitalgru-ecg", json={**base, **extra},
                          headers={"Authorization": f"Bearer {ehr.token(aud)}"})  # fmt: skip

        assert len(call(prefetch={"patient": patient}).json()["cards"]) == 1
        for sent in ({}, {"prefetch": {}}, {"prefetch": {"other": patient}}):
            got = call(**sent)
            assert got.status_code == 412, sent
            assert "prefetch" in got.json()["detail"]
        # null: the EHR has no such Patient, said so: no card, not a 412
        got = call(prefetch={"patient": None})
        assert got.status_code == 200 and got.json() == {"cards": []}
        # a prefetch the spec does not allow: 422, not "no card" (no alarm) as before
        for sent in (["odd"], {"patient": "Patient/fhir-B"}):
            got = call(prefetch=sent)
            assert got.status_code == 422 and "prefetch is a" in got.json()["detail"], sent
        metrics = c.get("/metrics").text
    assert 'vitalgru_cds_calls_total{outcome="no_prefetch",service="vitalgru-ecg"} 3.0' in metrics
    assert 'vitalgru_cds_calls_total{outcome="invalid",service="vitalgru-ecg"} 2.0' in metrics
    # without --patient-system the context's id is the ward's: no prefetch needed, as before
    ward = Ward(untrained_monitor(), feed_timeout_s=0.01)
    with TestClient(create_app(ward, tick_s=0, public_url=BASE, cds_clients=clients)) as c:
        c.post("/ecg/bed-2/admit", json={"fs": 360})
        time.sleep(0.03)
        ward.tick()
        got = c.post("/cds-services/vitalgru-ecg",
                     json={**base, "context": {"patientId": "bed-2"}},
                     headers={"Authorization": f"Bearer {ehr.token(aud)}"})  # fmt: skip
        assert got.status_code == 200 and len(got.json()["cards"]) == 1


def test_the_ehr_gets_a_card_while_the_patient_is_in_alarm_and_its_feedback_acknowledges(
    ehr: Ehr, sepsis_fit: tuple[Any, dict, list[dict]], tmp_path: Path
) -> None:
    model, preprocessing, rows = sepsis_fit
    ward = Ward(sepsis=EarlyWarningMonitor(model, preprocessing))
    audit = AuditLog(tmp_path / "audit.sqlite")
    app = create_app(ward, tick_s=0, patient_system=MRN, audit=audit, token="gateway-secret-0123456789",
                     cds_clients=CdsClients.from_file(ehr.clients(tmp_path)),
                     public_url="https://gw.example.org/")  # fmt: skip
    sepsis = "https://gw.example.org/cds-services/vitalgru-sepsis"

    def call(pid: str, aud: str = sepsis) -> Any:
        body = {"hook": "patient-view", "hookInstance": str(uuid.uuid4()),
                "context": {"userId": "Practitioner/9", "patientId": f"fhir-{pid}"},
                "prefetch": {"patient": {"resourceType": "Patient", "id": f"fhir-{pid}",
                                         "identifier": [
                    {"system": MRN, "value": pid}]}}}  # fmt: skip
        return c.post("/cds-services/vitalgru-sepsis", json=body,
                      headers={"Authorization": f"Bearer {ehr.token(aud)}"})  # fmt: skip

    with TestClient(app) as c:
        gw = {"Authorization": "Bearer gateway-secret-0123456789"}
        found = c.get("/cds-services", headers={
            "Authorization": f"Bearer {ehr.token('https://gw.example.org/cds-services')}"})  # fmt: skip
        assert [(s["id"], s["hook"]) for s in found.json()["services"]] == [
            ("vitalgru-sepsis", "patient-view"),
            ("vitalgru-sepsis-discharge", "encounter-discharge"),
        ]  # fmt: skip (no ECG monitor, no ECG service)
        assert found.json()["services"][0]["prefetch"] == {
            "patient": "Patient/{{context.patientId}}"
        }
        assert c.get("/cds-services").status_code == 401  # the EHR's signed token, always
        assert c.get("/cds-services", headers=gw).status_code == 401  # not a gateway token
        assert call("icu-1", aud=f"{BASE}/cds-services/vitalgru-sepsis").status_code == 401
        assert call("MRN-0001").json() == {"cards": []}  # not on monitoring: no guidance
        c.post("/vitals/MRN-0001/admit", headers=gw)
        assert call("MRN-0001").json() == {"cards": []}  # no alarm: no card
        for row in rows:
            if c.post("/vitals/MRN-0001", json=row, headers=gw).json()["alarm_started"]:
                break
        (card,) = call("MRN-0001").json()["cards"]
        summary = c.get("/vitals/MRN-0001", headers=gw).json()
        risk = summary["last_hour"]["risk"]
        assert card["indicator"] == "warning" and len(card["summary"]) < 140
        score, line = risk_and_line(risk, ward.sepsis.threshold)
        assert card["summary"].startswith(
            f"Sepsis alarm: risk score {score} (alarm line {line}) at ICU hour"
        )
        assert "**Not acknowledged** yet." in card["detail"]
        assert card["links"] == [{"label": "The stay's risk, hour by hour", "type": "absolute",
                                  "url": "https://gw.example.org/vitals/MRN-0001/page"}]  # fmt: skip
        assert card["source"]["label"] == "vitalgru sepsis early warning"
        assert call("MRN-0001").json()["cards"][0]["uuid"] == card["uuid"]  # the same alarm
        # the discharge signed in the EHR: the alarm's card again, saying so first
        out = f"{sepsis}-discharge"
        leaving = {"hook": "encounter-discharge", "hookInstance": str(uuid.uuid4()),
                   "context": {"userId": "Practitioner/9", "patientId": "fhir-MRN-0001",
                               "encounterId": "enc-1"},
                   "prefetch": {"patient": {"resourceType": "Patient", "id": "fhir-MRN-0001",
                                            "identifier": [{"system": MRN, "value": "MRN-0001"}]}}}  # fmt: skip
        (at_discharge,) = c.post("/cds-services/vitalgru-sepsis-discharge", json=leaving,
                                 headers={"Authorization": f"Bearer {ehr.token(out)}"}
                                 ).json()["cards"]  # fmt: skip
        assert at_discharge["uuid"] == card["uuid"]  # its feedback acknowledges the same alarm
        assert at_discharge["detail"] == f"{DISCHARGE_NOTE}\n\n{card['detail']}"
        assert at_discharge["source"]["label"] == "vitalgru sepsis alarm at discharge"
        viewed = c.post("/cds-services/vitalgru-sepsis-discharge", json={**leaving,
                        "hook": "patient-view"}, headers={"Authorization": f"Bearer {ehr.token(out)}"})  # fmt: skip
        assert viewed.status_code == 422 and "encounter-discharge hook" in viewed.text
        # the EHR says the clinician overrode it, with a reason: the alarm is acknowledged
        feedback = {"feedback": [{"card": card["uuid"], "outcome": "overridden",
                                  "outcomeTimestamp": "2026-12-05T10:00:00Z",
                                  "overrideReason": {"reason": card["overrideReasons"][1],
                                                     "userComment": "on antibiotics"}}]}  # fmt: skip
        fb = f"{sepsis}/feedback"
        got = c.post("/cds-services/vitalgru-sepsis/feedback", json=feedback,
                     headers={"Authorization": f"Bearer {ehr.token(fb)}"})  # fmt: skip
        assert got.json() == {"acknowledged": 1, "already": 0, "unknown": 0}
        ack = c.get("/vitals/MRN-0001", headers=gw).json()["alarm_acknowledged"]
        assert ack["by"] == "CDS Hooks (ehr)"
        assert ack["note"] == "card overridden in the EHR (Known and being treated) on antibiotics"
        assert "Acknowledged by CDS Hooks (ehr)" in call("MRN-0001").json()["cards"][0]["detail"]
        again = c.post("/cds-services/vitalgru-sepsis/feedback", json={"feedback": [
            {"card": card["uuid"], "outcome": "accepted", "outcomeTimestamp": "x"},
            {"card": str(uuid.uuid4()), "outcome": "accepted", "outcomeTimestamp": "x"}]},
            headers={"Authorization": f"Bearer {ehr.token(sepsis)}"})  # fmt: skip
        assert again.json() == {"acknowledged": 0, "already": 1, "unknown": 1}
        bad = c.post("/cds-services/vitalgru-sepsis/feedback", json={"cards": []},
                     headers={"Authorization": f"Bearer {ehr.token(fb)}"})  # fmt: skip
        assert bad.status_code == 422
        other = c.post("/cds-services/vitalgru-ecg", json={"hook": "patient-view"},
                       headers={"Authorization": f"Bearer {ehr.token(BASE)}"})  # fmt: skip
        assert other.status_code == 401  # the audience is checked before anything
        ecg = "https://gw.example.org/cds-services/vitalgru-ecg"
        assert (
            c.post(
                "/cds-services/vitalgru-ecg",
                json={"hook": "patient-view"},
                headers={"Authorization": f"Bearer {ehr.token(ecg)}"},
            ).status_code
            == 404
        )
        metrics = c.get("/metrics").text
    for line in ('vitalgru_cds_calls_total{outcome="card",service="vitalgru-sepsis"} 3.0',
                 'vitalgru_cds_calls_total{outcome="none",service="vitalgru-sepsis"} 2.0',
                 'vitalgru_cds_calls_total{outcome="refused",service="vitalgru-sepsis"} 1.0',
                 'vitalgru_cds_calls_total{outcome="refused",service="discovery"} 2.0',
                 'vitalgru_cds_calls_total{outcome="taken",service="vitalgru-sepsis/feedback"} 2.0',
                 'vitalgru_cds_calls_total{outcome="invalid",service="vitalgru-sepsis/feedback"} 1.0',
                 'vitalgru_cds_cards_total{service="vitalgru-sepsis"} 3.0',
                 'vitalgru_cds_feedback_total{outcome="acknowledged"} 1.0',
                 'vitalgru_cds_feedback_total{outcome="already"} 1.0',
                 'vitalgru_cds_feedback_total{outcome="unknown"} 1.0'):  # fmt: skip
        assert line in metrics, line
    rows_ = [(r["caller"], r["action"], r["patient_id"], r["status"]) for r in audit.rows()]
    assert ("cds ehr", "POST /cds-services/{service_id}", "MRN-0001", 200) in rows_
    # the feedback's row names the patient whose alarm it acknowledged (None before)
    assert ("cds ehr", "POST /cds-services/{service_id}/feedback", "MRN-0001", 200) in rows_
    assert ("cds (refused)", "GET /cds-services", None, 401) in rows_


def test_unacknowledged_ecg_alarms_are_cards_of_their_own(ehr: Ehr, tmp_path: Path) -> None:
    ward = Ward(untrained_monitor(), feed_timeout_s=0.01)
    app = create_app(ward, tick_s=0, cds_clients=CdsClients.from_file(ehr.clients(tmp_path)),
                     public_url=BASE)  # fmt: skip
    aud = f"{BASE}/cds-services/vitalgru-ecg"
    with TestClient(app) as c:
        c.post("/ecg/bed-3/admit", json={"fs": 360})
        time.sleep(0.03)
        ward.tick()  # the feed is lost: an alarm
        body = {"hook": "patient-view", "hookInstance": "h", "context": {"patientId": "bed-3"}}
        (card,) = c.post("/cds-services/vitalgru-ecg", json=body,
                         headers={"Authorization": f"Bearer {ehr.token(aud)}"}).json()["cards"]  # fmt: skip
        assert card["summary"].startswith("ECG alarm: ECG feed lost at ")
        assert card["indicator"] == "warning"
        assert card["links"][0]["url"] == f"{BASE}/ecg/bed-3/page"
        out = f"{BASE}/cds-services/vitalgru-ecg-discharge"
        (leaving,) = c.post("/cds-services/vitalgru-ecg-discharge",
                            json={**body, "hook": "encounter-discharge"},
                            headers={"Authorization": f"Bearer {ehr.token(out)}"}).json()["cards"]  # fmt: skip
        assert leaving["uuid"] == card["uuid"] and leaving["detail"].startswith(DISCHARGE_NOTE)
        (lost,) = ward.events()["events"]
        c.post("/ecg/bed-3", json={"samples": [0.0] * 36})  # back: a technical alarm ends
        assert c.post("/cds-services/vitalgru-ecg", json=body,
                      headers={"Authorization": f"Bearer {ehr.token(aud)}"}).json() == {"cards": []}  # fmt: skip
        for _ in range(2):  # the samples pushed, then silence: lost again, and acknowledged
            time.sleep(0.03)
            ward.tick()
        (lost,) = [e for e in ward.events()["events"] if e["kind"] == "feed_lost"][1:]
        ward.acknowledge(lost["seq"], "RN Diaz")
        assert c.post("/cds-services/vitalgru-ecg", json=body,
                      headers={"Authorization": f"Bearer {ehr.token(aud)}"}).json() == {"cards": []}  # fmt: skip
        wrong = c.post("/cds-services/vitalgru-ecg", json={**body, "hook": "order-sign"},
                       headers={"Authorization": f"Bearer {ehr.token(aud)}"})  # fmt: skip
        assert wrong.status_code == 422 and "patient-view" in wrong.json()["detail"]


def test_serve_reads_the_cds_options(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{}")
    # on a free port: the ports are bound before the file is read, and 8000 may be taken
    with pytest.raises(SystemExit, match="not a CDS client file"):
        main(["serve", "--arrhythmia-model", "none", "--early-warning-model", "m",
              "--cds-clients", str(tmp_path / "bad.json"), "--state", "none",
              "--audit", "none", "--public-url", "https://gw.example.org",
              "--port", str(closed_port())])  # fmt: skip


def test_cds_hooks_need_the_public_url_the_tokens_audience_is_checked_against(
    ehr: Ehr, tmp_path: Path
) -> None:
    clients = CdsClients.from_file(ehr.clients(tmp_path))
    with pytest.raises(ValueError, match="public URL"):  # the Host header was taken before
        create_app(Ward(untrained_monitor()), tick_s=0, cds_clients=clients)
    with pytest.raises(SystemExit, match="--cds-clients needs --public-url"):
        main(["serve", "--arrhythmia-model", "none", "--early-warning-model", "m",
              "--cds-clients", str(ehr.clients(tmp_path)), "--state", "none",
              "--audit", "none"])  # fmt: skip
    app = create_app(Ward(untrained_monitor()), tick_s=0, cds_clients=clients,
                     public_url="https://gw-a.example.org")  # fmt: skip
    other = "https://gw-b.example.org/cds-services/vitalgru-ecg"  # signed for another gateway
    body = {"hook": "patient-view", "hookInstance": "h", "context": {"patientId": "bed-1"}}
    with TestClient(app, base_url="https://gw-b.example.org") as c:
        sent = c.post("/cds-services/vitalgru-ecg", json=body,
                      headers={"Authorization": f"Bearer {ehr.token(other)}"})  # fmt: skip
        assert sent.status_code == 401 and sent.json()["detail"] == "invalid token (audience)"


def test_a_token_is_refused_before_its_nbf_with_crit_or_from_before_the_start(
    ehr: Ehr, tmp_path: Path
) -> None:
    clients = CdsClients.from_file(ehr.clients(tmp_path))
    aud = f"{BASE}/cds-services/vitalgru-sepsis"
    now = time.time()
    with pytest.raises(CdsAuthError, match="not valid yet"):
        clients.verify(ehr.token(aud, nbf=now + 600), [aud])
    with pytest.raises(CdsAuthError, match="not valid yet"):
        clients.verify(ehr.token(aud, nbf="soon"), [aud])
    assert clients.verify(ehr.token(aud, nbf=now - 5), [aud]).name == "ehr"
    crit = sign_token(ehr.ec, "ec-1", {"iss": ISS, "aud": aud, "exp": now + 60, "iat": now,
                                       "jti": "c1"})  # fmt: skip
    head, body, sig = crit.split(".")
    # a header naming an extension this gateway does not know (the signature aside: the
    # header is refused before it is looked at)
    marked = _b64(json.dumps({"alg": "ES384", "kid": "ec-1", "crit": ["exp-x"],
                              "exp-x": 1}).encode())  # fmt: skip
    with pytest.raises(CdsAuthError, match="critical header extensions"):
        clients.verify(f"{marked}.{body}.{sig}", [aud])
    # a token used with the gateway before it restarted: its jti is no longer known, and
    # it was issued before this one started
    before = ehr.token(aud, iat=now - 300, exp=now + 300)
    with pytest.raises(CdsAuthError, match="issued before the gateway started"):
        CdsClients.from_file(ehr.clients(tmp_path)).verify(before, [aud])
    # one used a second before the restart (within the clocks' leeway, taken again before)
    time.sleep(0.01)
    just_before = ehr.token(aud)
    assert clients.verify(just_before, [aud]).name == "ehr"
    time.sleep(0.01)
    with pytest.raises(CdsAuthError, match="issued before the gateway started"):
        CdsClients.from_file(ehr.clients(tmp_path)).verify(just_before, [aud])


def test_a_gateway_clock_stepped_back_after_the_start_refuses_no_fresh_token(
    ehr: Ehr, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the start was kept as the wall clock read it: a machine up with its clock a year
    # ahead, corrected by NTP, refused every EHR call as "issued before the gateway
    # started" until the gateway was restarted; a clock stepped back 10 min, for 10 min
    aud = f"{BASE}/cds-services/vitalgru-sepsis"
    real = time.time()
    monkeypatch.setattr(time, "time", lambda: real + 365 * 86400.0)
    ahead = CdsClients.from_file(ehr.clients(tmp_path))  # started on a clock a year fast
    monkeypatch.undo()  # corrected
    assert ahead.verify(ehr.token(aud), [aud]).name == "ehr"
    clients = CdsClients.from_file(ehr.clients(tmp_path))
    back = time.time() - 600  # the clock stepped back 10 min: the EHR's agrees with it
    fresh = ehr.token(aud, iat=back, exp=back + 300)
    assert clients.verify(fresh, [aud], now=back).name == "ehr"
    # one issued before the start, on the clock as it reads now, is still refused
    old = ehr.token(aud, iat=back - 60, exp=back + 300)
    with pytest.raises(CdsAuthError, match="issued before the gateway started"):
        clients.verify(old, [aud], now=back)


def test_a_key_the_gateway_cannot_use_does_not_lock_out_the_ehrs_others(
    ehr: Ehr, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    aud = f"{BASE}/cds-services/vitalgru-sepsis"
    p256 = jwk_of(ehr.ec.public_key(), "ec-p256")
    p256["crv"] = "P-256"
    okp = {
        "kty": "OKP",
        "crv": "Ed25519",
        "kid": "ed-1",
        "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
    }
    nokid = {k: v for k, v in jwk_of(ehr.rsa.public_key(), "x").items() if k != "kid"}
    for extra in (p256, okp, nokid):
        jwks = {"keys": [*ehr.jwks["keys"], extra]}
        with serving(JsonServer(lambda j=jwks: j)) as server:
            clients = CdsClients.from_spec({"clients": [
                {"name": "ehr", "iss": ISS, "jwks_url": server.url}]})  # fmt: skip
            assert clients.verify(ehr.token(aud, "RS384"), [aud]).name == "ehr"
        inline = CdsClients.from_spec({"clients": [{"name": "ehr", "iss": ISS, "jwks": jwks}]})
        assert inline.verify(ehr.token(aud), [aud]).name == "ehr"
    assert "key 'ed-1' skipped" in caplog.text
    with pytest.raises(ValueError, match="no signing key"):  # none usable: refused
        CdsClients.from_spec({"clients": [{"name": "ehr", "iss": ISS,
                                           "jwks": {"keys": [okp, nokid]}}]})  # fmt: skip


def test_a_sepsis_card_lasts_as_long_as_its_episode_and_feedback_is_all_or_nothing(
    ehr: Ehr, sepsis_fit: tuple[Any, dict, list[dict]], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setattr("vitalgru.scoring.ward.MAX_EVENTS", 3)  # a busy ward's log, small
    model, preprocessing, rows = sepsis_fit
    ward = Ward(untrained_monitor(), sepsis=EarlyWarningMonitor(model, preprocessing),
                feed_timeout_s=0.01)  # fmt: skip
    app = create_app(ward, tick_s=0, cds_clients=CdsClients.from_file(ehr.clients(tmp_path)),
                     public_url=BASE)  # fmt: skip
    aud = f"{BASE}/cds-services/vitalgru-sepsis"
    body = {"hook": "patient-view", "hookInstance": "h", "context": {"patientId": "icu-1"}}

    def post(path: str, sent: Any, token: str | None = None) -> Any:
        head = {} if token is None else {"Authorization": f"Bearer {token}"}
        return c.post(path, content=sent if isinstance(sent, str) else json.dumps(sent),
                      headers={"Content-Type": "application/json", **head})  # fmt: skip

    with TestClient(app) as c:
        c.post("/vitals/icu-1/admit")
        for row in rows:
            if c.post("/vitals/icu-1", json=row).json()["alarm_started"]:
                break
        (card,) = post("/cds-services/vitalgru-sepsis", body, ehr.token(aud)).json()["cards"]
        onset = ward.sepsis_summary("icu-1")["alarm_seq"]
        for n in range(4):  # other beds' events push the onset out of the log
            c.post(f"/ecg/bed-{n}/admit", json={"fs": 360})
        time.sleep(0.03)
        ward.tick()
        assert ward.events()["events"][0]["seq"] > onset
        (still,) = post("/cds-services/vitalgru-sepsis", body, ehr.token(aud)).json()["cards"]
        assert still == card  # no card before, the episode still going on
        # feedback with one bad item: refused, and the good one before it taken back
        fb = f"{aud}/feedback"
        mixed = {"feedback": [{"card": card["uuid"], "outcome": "accepted"}, {"card": "x"}]}
        assert post("/cds-services/vitalgru-sepsis/feedback", mixed,
                    ehr.token(fb)).status_code == 422  # fmt: skip
        assert ward.sepsis_summary("icu-1")["alarm_acknowledged"] is None
        # a broken body: 401 without a token (422 was answered before the token was looked
        # at), 422 counted as invalid with one
        assert post("/cds-services/vitalgru-sepsis", "{not json").status_code == 401
        assert post("/cds-services/vitalgru-sepsis", "{not json",
                    ehr.token(aud)).status_code == 422  # fmt: skip
        for n in range(3):  # made-up services, anonymously: one series, not three
            assert post(f"/cds-services/made-up-{n}", body).status_code == 401
        metrics = c.get("/metrics").text
    assert 'vitalgru_cds_calls_total{outcome="invalid",service="vitalgru-sepsis"} 1.0' in metrics
    assert 'vitalgru_cds_calls_total{outcome="refused",service="unknown"} 3.0' in metrics
    assert "made-up" not in metrics


@pytest.mark.parametrize(("probability", "said"), [(0.004, "0.4 %"), (0.0, "<0.1 %")])
def test_the_sepsis_card_gives_a_small_probability_as_it_is(probability: float, said: str) -> None:
    """Whole percent gave 0.4 % as "0 %", and a probability of 0 was left out altogether."""
    summary = {
        "in_alarm": True,
        "last_hour": {"hour": 36, "risk": 0.38, "probability": probability},
    }
    onset = {"seq": 7, "hour": 36, "risk": 0.38, "kind": "sepsis_risk", "drivers": []}
    (card,) = sepsis_cards(summary, onset, 0.246, log_id="log")
    assert card["summary"].endswith(f"estimated probability of sepsis now or within 6 hours {said}")
    assert len(card["summary"]) < 140
