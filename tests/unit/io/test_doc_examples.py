"""docs/examples/: the files the README's and docs/gateway.md's gateway quick start posts,
read with the readers the gateway reads them with, so that the commands keep working as
printed (they named files the project did not have, for a patient never admitted)."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vitalgru.io.fhir_observations import observations_to_hour
from vitalgru.io.hl7v2 import adt_event, oru_observations, read_message

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "docs" / "examples"


def _quick_start(doc: str) -> list[str]:
    """The ``curl`` lines of a document's gateway quick start."""
    text = (ROOT / doc).read_text()
    start = text.index("```bash\nvitalgru serve --port 8000")
    return [line for line in text[start : text.index("\n```", start)].splitlines()
            if line.startswith("curl ") or "| curl " in line]  # fmt: skip


def test_the_fhir_hour_reads_whole() -> None:
    hour = observations_to_hour(json.loads((EXAMPLES / "hour.json").read_text()), 1)
    assert hour.skipped == [] and hour.used == 4
    assert hour.row["hr_bpm"] == 112 and hour.row["temp_c"] == pytest.approx(38.39, abs=0.01)
    assert hour.converted == {"temp_c": ["[degF]"]}  # converted, not taken as Celsius


def test_the_oru_message_reads_whole_for_the_patient_it_is_posted_for() -> None:
    oru = oru_observations((EXAMPLES / "oru.hl7").read_bytes())
    assert oru.message_type == "ORU^R01" and oru.patient_ids == ["icu-8"]
    hour = observations_to_hour(oru.observations, 2)
    assert hour.skipped == [] and hour.used == 4
    assert hour.row == {"ICULOS": 2.0, "hr_bpm": 115.0, "temp_c": 38.6, "sbp_mmhg": 96.0,
                        "resp_per_min": 26.0}  # fmt: skip


def test_the_adt_message_admits_with_its_demographics() -> None:
    event = adt_event(read_message((EXAMPLES / "adt-a01.hl7").read_bytes()))
    assert event.trigger == "A01" and event.patient_ids[0] == "icu-9" and event.notes == []
    assert event.occurred_at == datetime(2026, 12, 7, 7, 20, tzinfo=UTC)
    assert event.static == {"Age": 71.0, "Gender": 0.0, "HospAdmTime": -12.83}


@pytest.mark.parametrize("doc", ["README.md", "docs/gateway.md"])
def test_the_quick_start_posts_files_that_exist_for_patients_it_admitted(doc: str) -> None:
    lines = _quick_start(doc)
    posted = [f for line in lines for f in re.findall(r"(?:@|\s)(docs/examples/\S+)", line)]
    assert posted and all((ROOT / f).is_file() for f in posted), posted
    admitted: set[str] = set()
    for line in lines:
        if m := re.search(r"/vitals/([\w-]+)/admit\b", line):
            admitted.add(m.group(1))
        elif "-X POST" in line and (m := re.search(r"/vitals/([\w-]+)\b", line)):
            # an hour for a patient never admitted is refused (404 "admit them first")
            assert m.group(1) in admitted, line


@pytest.mark.parametrize("doc", ["README.md", "docs/gateway.md"])
def test_the_quick_starts_admission_is_made_now(doc: str) -> None:
    # its times were fixed (2026-12-07): from March 2027 the gateway refuses an admission
    # more than 90 days old, and the quick start's patient was never admitted
    (line,) = [line for line in _quick_start(doc) if "adt-a01.hl7" in line]
    made = subprocess.run(["bash", "-c", line.split(" | curl ")[0]], cwd=ROOT, check=True,
                          capture_output=True).stdout  # fmt: skip
    event = adt_event(read_message(made))
    assert event.trigger == "A01" and event.patient_ids[0] == "icu-9" and event.notes == []
    assert abs(event.occurred_at - datetime.now(UTC)) < timedelta(minutes=1)
    assert event.static == {"Age": event.static["Age"], "Gender": 0.0, "HospAdmTime": 0.0}


def test_the_mllp_examples_are_sent_with_the_time_they_are_run() -> None:
    # they were dated 2026-12-05: refused as an admission over 90 days old from March 2027
    from zoneinfo import ZoneInfo

    text = (ROOT / "docs" / "gateway.md").read_text()
    start = text.index("mllp() {")
    block = text[start : text.index("\ncurl localhost:8000/vitals/mrn-7", start)]
    shell = block.split("\n", 1)[1].replace(
        "mllp ", "printf '%s\\0' "
    )  # each message, ended by NUL
    sent = subprocess.run(["bash", "-c", shell], check=True, capture_output=True).stdout
    adt, oru = (read_message(m) for m in sent.split(b"\0")[:2])
    berlin = ZoneInfo("Europe/Berlin")
    admitted = adt_event(adt, berlin).occurred_at
    assert abs(admitted - datetime.now(UTC)) < timedelta(minutes=1)
    (hr,) = oru_observations(oru, berlin).observations
    assert hr["valueQuantity"]["value"] == 112.0
    assert abs(datetime.fromisoformat(hr["effectiveDateTime"]) - admitted) < timedelta(minutes=1)
