"""Damaged input, generated: real files and messages with bytes changed, cut, inserted or
removed, and JSON of every shape, read by each reader of outside data. Whatever the damage,
a reader answers with its own clear error (a :class:`~vitalgru.errors.RecordError`, or the
ValueError the gateway turns into a 422) or with what it could read, never with whatever a
library underneath happened to raise; and a damaged file in a folder costs only that file.

These found a ``TypeError`` for a FHIR Bundle whose ``entry`` was not a list, a PSV file
whose rows' fields added up though a row's did not (the whole folder failed to read), a
quote in a PSV cell swallowing the pipes after it, and a cell of bytes that are not UTF-8.
(Strategies shared with the gateway's damage tests: ``tests/unit/damage_kit.py``.)"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from damage_kit import EDIT, FUZZ, JSON, edited, replaced
from hypothesis import given
from hypothesis import strategies as st

from vitalgru.errors import RecordError
from vitalgru.io.fhir_observations import observations_to_hour, row_to_observations
from vitalgru.io.fhir_resources import observation_times
from vitalgru.io.hl7v2 import adt_event, oru_observations, read_message
from vitalgru.io.psv import read_psv
from vitalgru.io.psv_folder import read_psv_folder
from vitalgru.io.wfdb_header import read_header
from vitalgru.io.wfdb_reader import read_annotations_file, read_record_files

#: Bytes that mean something to the formats read here, put in more often than chance would.
SIGNIFICANT = st.sampled_from(
    [b"|", b"\n", b"\r", b'"', b"^", b"~", b"\\", b"&", b" ", b"-", b".", b"NaN", b"\xff", b"#"]
)
EDITS = st.lists(st.one_of(EDIT, EDIT, st.tuples(st.floats(0, 1), st.just(0), SIGNIFICANT)),
                 min_size=1, max_size=5)  # fmt: skip


@pytest.fixture(autouse=True)
def _quiet() -> Any:
    logging.disable(logging.WARNING)  # the readers log every cell they skip
    yield
    logging.disable(logging.NOTSET)


def _setA(mirror: Path) -> list[Path]:
    return sorted((mirror / "challenge-2019" / "training_setA").glob("p00000*.psv"))[:5]


#: One edit of a PSV table's cell: (which data row, as a fraction of their number; which
#: column; what to do: put ``text`` in its place, or take the pipe after it away, or put
#: another after it).
CELL_EDIT = st.tuples(
    st.floats(0, 1),
    st.integers(0, 40),
    st.sampled_from(["replace", "replace", "drop_pipe", "add_pipe"]),
    st.one_of(SIGNIFICANT, st.binary(max_size=6), st.sampled_from([b"1,5", b"-3", b"1e400"])),
)


def damaged_table(data: bytes, edits: list[tuple[float, int, str, bytes]]) -> bytes:
    head, _, body = data.partition(b"\n")
    rows = [row.split(b"|") for row in body.rstrip(b"\n").split(b"\n")]
    for where, col, what, text in edits:
        row = rows[int(where * (len(rows) - 1))]
        col = min(col, len(row) - 1)
        if what == "replace":
            row[col] = text
        elif what == "drop_pipe" and col + 1 < len(row):
            row[col : col + 2] = [row[col] + row[col + 1]]
        elif what == "add_pipe":
            row.insert(col + 1, text)
    return head + b"\n" + b"\n".join(b"|".join(row) for row in rows) + b"\n"


@FUZZ
@given(edits=st.lists(CELL_EDIT, min_size=1, max_size=4), which=st.integers(0, 4))
def test_a_damaged_psv_file_is_a_record_error_or_a_table(
    physionet_mirror: Path, edits: list, which: int
) -> None:
    files = _setA(physionet_mirror)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for f in files:
            shutil.copy(f, folder / f.name)
        bad = folder / files[which].name
        bad.write_bytes(damaged_table(bad.read_bytes(), edits))
        try:
            alone = read_psv(bad)
        except RecordError:
            alone = None
        cohort = read_psv_folder(folder)  # on_error="skip": nothing else may be lost
        read = set(cohort.frame["patient_id"].unique())
        assert read == {f.stem for f in files if f.name != bad.name or alone is not None}
        if alone is not None:
            assert alone["hour"].is_monotonic_increasing


@FUZZ
@given(edits=EDITS, part=st.sampled_from(["hea", "dat", "atr"]))
def test_a_damaged_wfdb_record_is_a_record_error_or_a_record(
    mitdb_dir: Path, edits: list, part: str
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # the first 10 s of record 100, so that each example reads in milliseconds
        header = (mitdb_dir / "100.hea").read_bytes().replace(b"650000", b"3600")
        files = {"hea": header, "dat": (mitdb_dir / "100.dat").read_bytes()[: 3 * 3600],
                 "atr": (mitdb_dir / "100.atr").read_bytes()[:400]}  # fmt: skip
        files[part] = edited(files[part], edits)
        for ext, data in files.items():
            (folder / f"100.{ext}").write_bytes(data)
        for read in (read_header, read_record_files, read_annotations_file):
            try:
                read(folder, "100")
            except RecordError:
                pass


ORU = "\r".join([
    "MSH|^~\\&|MONITOR|ICU4|VITALGRU|HOSP|20261205083000||ORU^R01^ORU_R01|MSG00042|P|2.5",
    "PID|1||MRN-981^^^HOSP^MR||Doe^Jane",
    "OBR|1|||28562-7^Vital signs^LN",
    "OBX|1|NM|8867-4^Heart rate^LN||112|/min^^UCUM|||||F|||20261205082500+0000",
    "OBX|2|SN|9279-1^Respiratory rate^LN||=^24|/min|||||F",
]) + "\r"  # fmt: skip
ADT = "\r".join([
    "MSH|^~\\&|ADT|HOSP|VITALGRU|HOSP|20261205083000||ADT^A40^ADT_A39|MSG7|P|2.5",
    "EVN|A40|20261205083000",
    "PID|1||MRN-1^^^HOSP^MR||Doe^Jane||19500101|F",
    "MRG|TMP-2^^^HOSP^MR",
    "PV1|1|I|ICU4^12^1",
]) + "\r"  # fmt: skip


@FUZZ
@given(edits=EDITS, message=st.sampled_from([ORU, ADT]))
def test_a_damaged_hl7_message_is_a_value_error_or_a_message(edits: list, message: str) -> None:
    text = edited(message.encode(), edits).decode("utf-8", "replace")
    try:
        msg = read_message(text)
    except ValueError:
        return
    for read in (lambda: oru_observations(msg), lambda: adt_event(msg)):
        try:
            read()
        except ValueError:
            pass
    try:
        observations_to_hour(oru_observations(msg).observations, 1)
    except ValueError:
        pass


FIELDS = ["resourceType", "status", "code", "coding", "valueQuantity", "value", "component",
          "entry", "resource", "effectiveDateTime", "effectivePeriod", "unit", "system"]  # fmt: skip


#: A real hour's Observations in a Bundle.
BUNDLE = {"resourceType": "Bundle", "type": "collection", "entry": [
    {"resource": o} for o in row_to_observations(
        {"HR": 88, "O2Sat": 97, "SBP": 120, "Temp": 37.2, "Lactate": 2.1})]}  # fmt: skip


@FUZZ
@given(payload=replaced(BUNDLE, FIELDS) | JSON)
def test_fhir_json_of_any_shape_is_a_value_error_or_an_hour(payload: Any) -> None:
    try:
        hour = observations_to_hour(payload, 3)
    except ValueError:
        return
    assert hour.row["ICULOS"] == 3.0
    assert hour.used + len(hour.skipped) >= len([v for v in hour.row if v != "ICULOS"])
    observation_times(payload)  # the same shapes: no error once the hour was read
