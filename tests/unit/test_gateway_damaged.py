"""The gateway fed damaged input, generated (the readers' own damage tests are in
``tests/unit/io/test_damaged_input.py``, the strategies in ``tests/unit/damage_kit.py``):
HL7 v2 messages with bytes changed, cut or inserted, FHIR JSON of any shape, rows,
demographics and ECG chunks of any JSON. Every answer is the gateway's own (2xx, or 4xx
with the reason), never a 500, and the ward goes on scoring a good hour afterwards."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from damage_kit import EDIT, FUZZ, JSON, edited, replaced
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from monitor_kit import untrained_monitor

from pipelines.gateway import create_app
from vitalgru.io.fhir_observations import row_to_observations
from vitalgru.io.hl7v2 import HL7_MEDIA_TYPE
from vitalgru.scoring import EarlyWarningMonitor
from vitalgru.scoring.ward import Ward

PATIENTS = itertools.count()

#: An edit of an HL7 v2 message: any bytes, or its separators and an invalid byte.
HL7_EDIT = st.one_of(EDIT, st.tuples(st.floats(0, 1), st.integers(0, 2), st.sampled_from(
    [b"|", b"^", b"\r", b"~", b"\\", b"\xff"])))  # fmt: skip

ADMIT = "\r".join([
    "MSH|^~\\&|ADT|HOSP|VITALGRU|HOSP|20261205083000||ADT^A01^ADT_A01|MSG1|P|2.5",
    "EVN|A01|20261205083000",
    "PID|1||FZ-{n}^^^HOSP^MR||Doe^Jane||19500101|F",
    "PV1|1|I|ICU4^12^1||||||||||||||||V1|||||||||||||||||||||||||20261205080000",
]) + "\r"  # fmt: skip
RESULT = "\r".join([
    "MSH|^~\\&|MONITOR|ICU4|VITALGRU|HOSP|20261205083000||ORU^R01^ORU_R01|MSG{n}|P|2.5",
    "PID|1||FZ-1^^^HOSP^MR||Doe^Jane",
    "OBR|1|||28562-7^Vital signs^LN",
    "OBX|1|NM|8867-4^Heart rate^LN||112|/min^^UCUM|||||F",
    "OBX|2|SN|9279-1^Respiratory rate^LN||=^24|/min|||||F",
]) + "\r"  # fmt: skip
MERGE = ADMIT.replace("ADT^A01^ADT_A01", "ADT^A40^ADT_A39").replace(
    "PV1|", "MRG|FZ-2^^^HOSP^MR\rPV1|"
)


@pytest.fixture()
def gateway(sepsis: tuple[EarlyWarningMonitor, list[dict]]) -> Any:
    ward = Ward(untrained_monitor(), sepsis[0])
    with TestClient(create_app(ward, tick_s=0), raise_server_exceptions=False) as c:
        yield c, sepsis[1]
    for pid in list(sepsis[0].patients):  # the monitor is shared by the tests
        sepsis[0].discharge(pid)


def _bundle(row: dict) -> dict:
    return {"resourceType": "Bundle", "entry": [{"resource": o} for o in row_to_observations(row)]}


def _still_scores(client: TestClient, rows: list[dict]) -> None:
    """A good hour of a new patient is scored after whatever came before."""
    pid = f"check-{len(client.get('/patients').json()['sepsis'])}"
    assert client.post(f"/vitals/{pid}/admit").status_code == 201
    got = client.post(f"/vitals/{pid}", json=rows[0])
    assert got.status_code == 200 and math.isfinite(got.json()["risk"])


@FUZZ
@given(template=st.sampled_from([ADMIT, RESULT, MERGE]), edits=st.lists(HL7_EDIT, max_size=4),
       n=st.integers(0, 10**6))  # fmt: skip
def test_damaged_hl7_messages_get_an_acknowledgement_not_a_500(
    gateway: Any, template: str, edits: list, n: int
) -> None:
    client, rows = gateway
    body = edited(template.format(n=n).encode(), edits)
    r = client.post("/hl7", content=body, headers={"content-type": HL7_MEDIA_TYPE})
    assert r.status_code < 500, r.text
    r = client.post("/vitals/FZ-9/hl7", params={"iculos": 1}, content=body,
                    headers={"content-type": HL7_MEDIA_TYPE})  # fmt: skip
    assert r.status_code < 500, r.text
    _still_scores(client, rows)


@FUZZ
@given(data=st.data())
def test_damaged_json_bodies_are_answered_not_a_500(gateway: Any, data: st.DataObject) -> None:
    client, rows = gateway
    n = next(PATIENTS)  # patients of their own, so that hour 1 is each one's next hour
    for pid in (f"FZ-R{n}", f"FZ-F{n}", f"FZ-S{n}"):
        assert client.post(f"/vitals/{pid}/admit").status_code == 201
    assert client.post(f"/ecg/FZ-E{n}/admit", json={"fs": 250}).status_code == 201
    row = dict(rows[0])
    for key in data.draw(st.lists(st.sampled_from(sorted(row)), max_size=3)):
        row[key] = data.draw(JSON)
    calls = [
        (f"/vitals/FZ-F{n}/fhir", {"iculos": data.draw(st.sampled_from([1, 1, 1, 0, -1, 400]))},
         data.draw(replaced(_bundle(rows[0])) | JSON)),
        (f"/vitals/FZ-R{n}", {}, row if data.draw(st.booleans()) else data.draw(JSON)),
        (f"/vitals/FZ-S{n}/static", {}, data.draw(JSON | st.dictionaries(
            st.sampled_from(["Age", "Gender", "Unit1", "HospAdmTime"]), JSON))),
        (f"/ecg/FZ-E{n}", {}, data.draw(JSON | st.fixed_dictionaries(
            {"samples": st.lists(JSON | st.floats(), max_size=20)}))),
    ]  # fmt: skip
    for path, params, body in calls:
        try:
            r = client.post(path, params=params, json=body)
        except ValueError:  # not JSON at all (NaN, inf): a client cannot send it
            continue
        assert r.status_code < 500, (path, body, r.text)
    _still_scores(client, rows)
