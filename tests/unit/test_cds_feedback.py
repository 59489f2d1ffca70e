"""The EHR's feedback on CDS Hooks cards (:mod:`pipelines.cds_feedback`): it acknowledges
only the alarms the service gives cards for, with a reason its cards offer or one the EHR
added."""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from monitor_kit import untrained_monitor

from pipelines.cds_feedback import OVERRIDE_REASONS, apply_feedback, card_uuid
from pipelines.cds_hooks import ecg_cards
from pipelines.cds_tokens import CdsClients, jwk_of, sign_token
from pipelines.gateway import create_app
from vitalgru.scoring.ward import Ward
from vitalgru.scoring.ward_journal import WardJournal

ISS = "https://ehr.example.org"
BASE = "http://testserver"
KEY = ec.generate_private_key(ec.SECP384R1())
LOG = "4f0c9a21e3b84d5f9a6c0d1e2f3a4b5c"  # an event log's id (Ward.log_id)


def _auth(aud: str) -> dict[str, str]:
    now = time.time()
    token = sign_token(KEY, "k1", {"iss": ISS, "aud": aud, "exp": now + 300, "iat": now,
                                   "jti": str(uuid.uuid4())})  # fmt: skip
    return {"Authorization": f"Bearer {token}"}


def test_feedback_acknowledges_only_the_alarms_the_service_carded() -> None:
    ward = Ward(untrained_monitor(), feed_timeout_s=0.01)
    clients = CdsClients.from_spec({"clients": [{"name": "ehr", "iss": ISS, "jwks": {
        "keys": [jwk_of(KEY.public_key(), "k1")]}}]})  # fmt: skip
    app = create_app(ward, tick_s=0, cds_clients=clients, public_url=BASE)
    aud = f"{BASE}/cds-services/vitalgru-ecg"
    with TestClient(app) as c:
        c.post("/ecg/bed-3/admit", json={"fs": 360})
        time.sleep(0.03)
        ward.tick()  # the feed is lost: an alarm, a card
        body = {"hook": "patient-view", "hookInstance": "h", "context": {"patientId": "bed-3"}}
        (card,) = c.post("/cds-services/vitalgru-ecg", json=body, headers=_auth(aud)).json()[
            "cards"
        ]
        assert "overrideReasons" not in card
        c.post("/ecg/bed-3", json={"samples": [0.0] * 36})  # back: an event no card is made for
        (back,) = [e for e in ward.events()["events"] if e["kind"] == "feed_restored"]

        def feedback(*items: dict[str, Any]) -> Any:
            return c.post("/cds-services/vitalgru-ecg/feedback", json={"feedback": list(items)},
                          headers=_auth(f"{aud}/feedback"))  # fmt: skip

        # an informational event's id, worked out from the log: acknowledged before
        got = feedback({"card": card_uuid(back, ward.log_id), "outcome": "accepted"})
        assert got.json() == {"acknowledged": 0, "already": 0, "unknown": 1}
        # the ECG card's alarm, through the sepsis service's feedback: not its card
        sepsis = c.post("/cds-services/vitalgru-sepsis/feedback", json={"feedback": [
            {"card": card["uuid"], "outcome": "accepted"}]},
            headers=_auth(f"{BASE}/cds-services/vitalgru-sepsis/feedback"))  # fmt: skip
        assert sepsis.status_code == 404  # no sepsis monitor here
        # a reason that is not a Coding: malformed, refused, nothing acknowledged
        got = feedback({"card": card["uuid"], "outcome": "overridden",
                        "overrideReason": {"reason": "not-relevant"}})  # fmt: skip
        assert got.status_code == 422 and "Coding" in got.text
        assert not [e for e in ward.events()["events"] if e.get("acknowledged")]
        # overridden with a reason the EHR added (the ECG cards offer none; CDS Hooks lets a
        # client add its own): taken, the note saying whose it was (it was 422, and the
        # alarm went on escalating)
        ehrs = {"reason": {"system": "https://ehr.example.org/cds-override", "code": "not-relevant",
                           "display": "Not relevant to this patient"},
                "userComment": "electrodes re-sited"}  # fmt: skip
        got = feedback({"card": card["uuid"], "outcome": "overridden", "overrideReason": ehrs})
        assert got.status_code == 200
        assert got.json() == {"acknowledged": 1, "already": 0, "unknown": 0}
        (acked,) = [e for e in ward.events()["events"] if e.get("acknowledged")]
        assert acked["kind"] == "feed_lost"
        assert acked["acknowledged"]["note"] == (
            "card overridden in the EHR (the EHR's reason, not one the card offered: "
            "not-relevant: Not relevant to this patient) electrodes re-sited"
        )


def test_a_comment_without_a_reason_is_taken() -> None:
    onset = {"seq": 3, "source": "ecg", "kind": "feed_lost", "patient_id": "bed-3"}
    ward = _Ward()
    item = {"card": card_uuid(onset, LOG), "outcome": "overridden",
            "overrideReason": {"userComment": "lead off, re-sited"}}  # fmt: skip
    assert (
        apply_feedback(ward, [onset], {"feedback": [item]}, "ehr", "ecg", log_id=LOG)[
            "acknowledged"
        ]
        == 1
    )
    assert ward.notes == ["card overridden in the EHR lead off, re-sited"]


class _Ward:
    def __init__(self) -> None:
        self.notes: list[str] = []

    def acknowledge(self, seq: int, by: str, note: str) -> None:
        self.notes.append(note)


def test_a_sepsis_card_is_overridden_with_its_reasons_or_the_ehrs() -> None:
    onset = {"seq": 7, "source": "sepsis", "kind": "sepsis_risk", "patient_id": "icu-1"}
    ended = {"seq": 8, "source": "sepsis", "kind": "alarm_ended", "patient_id": "icu-1"}
    ward = _Ward()
    offered = {**OVERRIDE_REASONS[2], "display": "anything the EHR says"}
    item = {"card": card_uuid(onset, LOG), "outcome": "overridden",
            "overrideReason": {"reason": offered}}  # fmt: skip
    got = apply_feedback(ward, [onset, ended], {"feedback": [item]}, "ehr", "sepsis", log_id=LOG)
    assert got["acknowledged"] == 1
    assert ward.notes == ["card overridden in the EHR (Measurement artefact or error)"]
    # a reason the card did not offer (another system's "known", or one without a system):
    # the EHR's own, which CDS Hooks allows, taken and named so in the note
    for reason, named in (({"system": "urn:x", "code": "known", "display": "Known"}, "known: Known"),
                          ({"code": "known"}, "known")):  # fmt: skip
        ward.notes.clear()
        ehrs = {**item, "overrideReason": {"reason": reason}}
        assert apply_feedback(ward, [onset], {"feedback": [ehrs]}, "ehr", "sepsis", log_id=LOG)[
            "acknowledged"] == 1  # fmt: skip
        assert ward.notes == [
            f"card overridden in the EHR (the EHR's reason, not one the card offered: {named})"
        ]
    # malformed (a reason that is not a Coding with a code, an overrideReason that is not an
    # object): refused, all or nothing
    ward.notes.clear()
    for bad in (
        {"reason": "known"},
        {"reason": {"display": "Known"}},
        {"reason": {"code": 7}},
        "x",
    ):
        with pytest.raises(ValueError, match="Coding|object"):
            apply_feedback(ward, [onset], {"feedback": [item, {**item, "overrideReason": bad}]},
                           "ehr", "sepsis", log_id=LOG)  # fmt: skip
    assert ward.notes == []  # all or nothing
    got = apply_feedback(ward, [ended], {"feedback": [{"card": card_uuid(ended, LOG),
                         "outcome": "accepted"}]}, "ehr", "sepsis", log_id=LOG)  # fmt: skip
    assert got["unknown"] == 1  # an event no card is made for
    got = apply_feedback(ward, [onset], {"feedback": [{"card": card_uuid(onset, LOG),
                         "outcome": "accepted"}]}, "ehr", "ecg", log_id=LOG)  # fmt: skip
    assert got["unknown"] == 1  # another monitor's card


def test_two_gateways_cards_have_their_own_ids() -> None:
    # event numbers begin at 1 in every gateway and state file, and two gateways can log
    # an alarm in the same second: without the log's id both cards had one id, and an EHR
    # sending one's feedback to the other acknowledged an alarm no one had seen
    onset = {"seq": 3, "source": "ecg", "kind": "feed_lost", "patient_id": "bed-3",
             "received_at": "2026-12-05T08:15:00+00:00"}  # fmt: skip
    other = "9d2e" * 8
    assert card_uuid(onset, LOG) != card_uuid(onset, other)
    assert card_uuid(onset, LOG) == card_uuid(dict(onset), LOG)  # the same card, the same id
    ward = _Ward()
    theirs = {"card": card_uuid(onset, other), "outcome": "accepted"}
    got = apply_feedback(ward, [onset], {"feedback": [theirs]}, "ehr", "ecg", log_id=LOG)
    assert got == {"acknowledged": 0, "already": 0, "unknown": 1} and ward.notes == []
    # a card shown before the upgrade, its id made without the log's, is still taken
    before = str(uuid.uuid5(uuid.UUID("5f1c4c55-0a2e-4d0b-9d3e-2b6a7c1e9f40"),
                            f"3/{onset['received_at']}"))  # fmt: skip
    got = apply_feedback(ward, [onset], {"feedback": [{"card": before, "outcome": "accepted"}]},
                         "ehr", "ecg", log_id=LOG)  # fmt: skip
    assert got["acknowledged"] == 1
    with pytest.raises(ValueError, match="log's id"):
        card_uuid(onset, "")


def test_the_gateways_cards_name_its_log() -> None:
    ward = Ward(untrained_monitor(), feed_timeout_s=0.01)
    ward.admit_ecg("bed-3", 360)
    time.sleep(0.03)
    ward.tick()  # the feed is lost: an alarm, a card
    (alarm,) = [e for e in ward.events()["events"] if e["kind"] == "feed_lost"]
    (card,) = ecg_cards(ward.ecg_summary("bed-3"), live=set(ward.alarms_in_progress()),
                        log_id=ward.log_id)  # fmt: skip
    assert card["uuid"] == card_uuid(alarm, ward.log_id)


def test_an_alarm_from_before_the_upgrade_keeps_its_cards_id(tmp_path: Path) -> None:
    # a card a clinician saw before the log had an id: the service gives it the same id
    # after the upgrade (not one naming the log, which the EHR would show as another card),
    # and feedback on it acknowledges the alarm; an alarm raised after it has a card naming
    # the log
    path = tmp_path / "ward.sqlite"
    old = Ward(untrained_monitor(), feed_timeout_s=0.01, journal=WardJournal(path))
    old.admit_ecg("bed-3", 360)
    time.sleep(0.03)
    old.tick()  # the feed is lost: an alarm, a card
    (alarm,) = [e for e in old.events()["events"] if e["kind"] == "feed_lost"]
    old.close()
    with sqlite3.connect(path) as db:  # as a version before log ids left the file
        db.execute("DELETE FROM meta WHERE key = 'value:log_id'")
    before = str(uuid.uuid5(uuid.UUID("5f1c4c55-0a2e-4d0b-9d3e-2b6a7c1e9f40"),
                            f"{alarm['seq']}/{alarm['received_at']}"))  # fmt: skip
    ward = Ward(untrained_monitor(), feed_timeout_s=0.01, journal=WardJournal(path))
    ward.restore(ward.journal.load())
    assert ward.old_ids_up_to == alarm["seq"]
    assert card_uuid(alarm, ward.log_id, ward.old_ids_up_to) == before
    (card,) = ecg_cards({"alarms": [alarm]}, log_id=ward.log_id, live={alarm["seq"]},
                        old_ids_up_to=ward.old_ids_up_to)  # fmt: skip
    assert card["uuid"] == before
    clients = CdsClients.from_spec({"clients": [{"name": "ehr", "iss": ISS, "jwks": {
        "keys": [jwk_of(KEY.public_key(), "k1")]}}]})  # fmt: skip
    app = create_app(ward, tick_s=0, cds_clients=clients, public_url=BASE)
    aud = f"{BASE}/cds-services/vitalgru-ecg"
    with TestClient(app) as c:
        c.post("/ecg/bed-4/admit", json={"fs": 360})
        time.sleep(0.03)
        ward.tick()  # bed-4's feed is lost too: an alarm after the upgrade
        (new,) = [e for e in ward.events()["events"]
                  if e["kind"] == "feed_lost" and e["patient_id"] == "bed-4"]  # fmt: skip

        def cards(pid: str) -> list[str]:
            body = {"hook": "patient-view", "hookInstance": "h", "context": {"patientId": pid}}
            got = c.post("/cds-services/vitalgru-ecg", json=body, headers=_auth(aud))
            return [card["uuid"] for card in got.json()["cards"]]

        assert cards("bed-4") == [card_uuid(new, ward.log_id, ward.old_ids_up_to)] == [
            card_uuid(new, ward.log_id)]  # fmt: skip
        got = c.post("/cds-services/vitalgru-ecg/feedback", headers=_auth(f"{aud}/feedback"),
                     json={"feedback": [{"card": before, "outcome": "accepted"}]})  # fmt: skip
        assert got.json()["acknowledged"] == 1
    ward.close()
