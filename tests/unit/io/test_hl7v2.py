"""HL7 v2 results (ORU^R01) read into an ICU hour: codes by LOINC (the alternate code too),
units as UCUM with the feeds' unambiguous spellings, statuses that withdraw a value, and
messages that are not results refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from vitalgru.io.fhir_observations import observations_to_hour
from vitalgru.io.fhir_resources import observation_times
from vitalgru.io.hl7v2 import (
    ERROR_CODES,
    Hl7Message,
    ack,
    adt_event,
    escape,
    hl7_time,
    message_bytes,
    oru_observations,
    read_message,
)
from vitalgru.io.hl7v2_text import CLOCK_SKEW

MESSAGE = "\r".join([
    "MSH|^~\\&|MONITOR|ICU4|VITALGRU|HOSP|20261205083000||ORU^R01^ORU_R01|MSG00042|P|2.5",
    "PID|1||MRN-981^^^HOSP^MR~icu-4^^^ICU^PI||Doe^Jane",
    "OBR|1|||28562-7^Vital signs^LN",
    "OBX|1|NM|8867-4^Heart rate^LN||112|/min^^UCUM|||||F",
    "OBX|2|NM|8310-5^Body temperature^LN||101.3|degF|||||F",  # a spelling of [degF]
    "OBX|3|NM|SYS^Systolic^L^8480-6^Systolic blood pressure^LN||96|mmHg|||||F",  # alternate LN
    "OBX|4|SN|9279-1^Respiratory rate^LN||=^24|/min|||||F",
    "OBX|5|NM|2524-7^Lactate^LN||3.1|mmol/L|||||D",  # deleted: withdrawn
    "OBX|6|ST|8867-4^Heart rate^LN||see note||||||F",  # text, not a number
    "OBX|7|NM|2345-7^Glucose^LN||7.0|mmol/L^^99LAB|||||F",  # a local unit system
    "OBX|8|SN|2160-0^Creatinine^LN||<^0.3|mg/dL|||||F",  # a comparator: not a value
    "OBX|9|NM|99999-9^Something else^LN||5|1|||||F",
    "OBX|10|NM|8867-4^Heart rate^LN||108|bpm|||||C",  # corrected: replaces OBX 1's 112
]) + "\r"  # fmt: skip


def test_an_oru_message_reads_as_an_hour_with_every_skip_said() -> None:
    msg = oru_observations(MESSAGE)
    assert msg.control_id == "MSG00042" and msg.message_type == "ORU^R01^ORU_R01"
    assert msg.patient_ids == ["MRN-981", "icu-4"]
    assert len(msg.observations) == 10  # one per OBX, usable or not
    hour = observations_to_hour(msg.observations, 7)
    row = hour.row
    assert row["ICULOS"] == 7.0 and row["hr_bpm"] == 108.0  # (112 + 108) / 2 before
    assert hour.corrected == ["hr_bpm"]
    assert row["temp_c"] == pytest.approx(38.5, abs=1e-9)  # 101.3 degF
    assert row["sbp_mmhg"] == 96.0 and row["resp_per_min"] == 24.0
    assert "lactate_mmol_l" not in row and "glucose_mg_dl" not in row
    assert hour.used == 4 and hour.converted == {"temp_c": ["[degF]"]}
    why = {s["index"]: s["reason"] for s in hour.skipped}
    assert set(why) == {4, 5, 6, 7, 8}  # the OBX segments counted from 0
    assert why[4] == "status 'entered-in-error'"
    assert why[5] == why[7] == "no valueQuantity with a value"
    assert "is not UCUM" in why[6] and "no LOINC code" in why[8]


def test_newlines_mllp_framing_and_other_separators_are_read() -> None:
    framed = "\x0b" + MESSAGE.replace("\r", "\n") + "\x1c\r"
    assert len(oru_observations(framed.encode()).observations) == 10
    other = MESSAGE.replace("|", "#").replace("MSH#^~\\&#", "MSH#^~\\&#", 1)
    assert oru_observations(other).control_id == "MSG00042"
    # an escaped separator in a text is read back
    esc = "\r".join([MESSAGE.split("\r")[0],
                     "OBX|1|NM|8867-4^Heart \\S\\ rate^LN||90|/min|||||F"])  # fmt: skip
    (obs,) = oru_observations(esc).observations
    assert obs["code"]["coding"][0]["display"] == "Heart ^ rate"


@pytest.mark.parametrize("msh2", ["ABCD", "^^^^", "^~ &", "^~\\&#xyz", "^~~&"])
def test_separators_hl7_does_not_allow_are_refused(msh2: str) -> None:
    # letters as separators split the message's own text: MSH-2 'ABCD' read ORU^R01 as a
    # type of one component, and its acknowledgement, echoing them, spelt 'ACKAR01AACK'
    text = MESSAGE.replace("MSH|^~\\&|", f"MSH|{msh2}|", 1)
    with pytest.raises(ValueError, match="separators .* must be different characters"):
        read_message(text)


def test_an_obx_coded_2708_6_alone_is_a_blood_gas() -> None:
    # an OBX has no category to say it is a vital sign: 2708-6 is SaO2, as in a FHIR
    # Observation without one; a monitor's pulse oximetry comes as MDC 150456 or 59408-5
    text = "\r".join([MESSAGE.split("\r")[0],
                      "OBX|1|NM|2708-6^Oxygen saturation in Arterial blood^LN||97|%|||||F",
                      "OBX|2|NM|59408-5^SpO2^LN||91|%|||||F",
                      "OBX|3|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||93|262688^^MDC|||||F"])  # fmt: skip
    row = observations_to_hour(oru_observations(text).observations, 2).row
    assert row == {"ICULOS": 2.0, "sao2_pct": 97.0, "spo2_pct": 92.0}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "first segment must be MSH"),
        ("PID|1||x", "first segment must be MSH"),
        ("MSH|^~\\&|A|B|C|D|20261205||ADT^A01|1|P|2.5\rPID|1||x", "not an observation result"),
    ],
)
def test_what_is_not_a_result_message_is_refused(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        oru_observations(text)


def test_the_acknowledgement_names_the_message() -> None:
    msg = oru_observations(MESSAGE)
    ok = ack(msg).split("\r")
    assert ok[0].startswith("MSH|^~\\&|vitalgru|") and "|ACK^R01^ACK|" in ok[0]
    assert ok[0].split("|")[10:12] == ["P", "2.5"]
    assert ok[1] == "MSA|AA|MSG00042"
    bad = ack(msg, "AE", "unknown | patient").split("\r")
    assert bad[1] == "MSA|AE|MSG00042|unknown \\F\\ patient"


def test_the_reason_of_a_refusal_reads_back_as_it_was_written() -> None:
    # its separators were replaced by spaces: "ADT^A03" read "ADT A03"
    why = "no ADT^A03 for MRN|7 & ward~2 (\\ path)\non two lines"
    for version in ("2.4", "2.5"):
        sent = f"MSH|^~\\&|A|B|C|D|20261205||ORU^R01|M1|P|{version}\rPID|1||p\r"
        back = read_message(ack(read_message(sent), "AE", why, error=204))
        assert back.field("MSA", 3) == why.replace("\n", " "), version
        if version == "2.5":
            assert back.field("ERR", 8) == why.replace("\n", " ")
    odd = read_message("MSH#$*@%#A#B#C#D#20261205##ORU$R01#R2#P#2.5\r")
    back = read_message(ack(odd, "AE", "a#b$c"))
    assert back.field("MSA", 3) == "a#b$c" and back.field("ERR", 8) == "a#b$c"


def test_an_error_says_why_in_err_and_in_msa_3_where_the_version_has_it() -> None:
    # the reason went in MSA-3 alone: withdrawn in v2.7, where an ACK with it is invalid
    def sent(version: str) -> str:
        return f"MSH|^~\\&|A|B|C|D|20261205||ORU^R01|M1|P|{version}\rPID|1||p\r"

    for version in ("2.5", "2.5.1", "2.6"):
        back = read_message(ack(read_message(sent(version)), "AE", "no such patient", error=204))
        assert [s[0] for s in back.segments] == ["MSH", "MSA", "ERR"], version
        assert back.field("MSA", 3) == "no such patient"
        assert back.field("ERR", 3, 1) == "204" and back.field("ERR", 3, 3) == "HL70357"
        assert back.field("ERR", 3, 2) == ERROR_CODES[204] == "Unknown key identifier"
        assert back.field("ERR", 4) == "E" and back.field("ERR", 8) == "no such patient"
    for version in ("2.7", "2.8"):
        back = read_message(ack(read_message(sent(version)), "AR", "not read here", error=200))
        assert len(back.segments[1]) == 3, version  # MSA-1 and MSA-2 only
        assert back.field("ERR", 3) == "200" and back.field("ERR", 8) == "not read here"
    # v2.4 and before: ERR-1 is of another shape; MSA-3 alone
    back = read_message(ack(read_message(sent("2.4")), "AE", "no"))
    assert [s[0] for s in back.segments] == ["MSH", "MSA"] and back.field("MSA", 3) == "no"
    # enhanced mode's CE and CR say why the same way; an accepted message has no ERR
    back = read_message(ack(read_message(sent("2.5")), "CR", "no"))
    assert back.field("ERR", 3) == "207" and back.field("ERR", 8) == "no"  # by default
    for code in ("AA", "CA"):
        assert "\rERR" not in ack(read_message(sent("2.7")), code, "fine")


def test_the_acknowledgement_has_a_control_id_of_its_own_and_its_versions_type() -> None:
    # MSH-10 was "ACK" + the message's id: 23 characters for an id of 20, over the limit of
    # versions before 2.6; MSH-9 had three components, which v2.3 does not have
    def sent(version: str, cid: str = "A" * 20) -> Hl7Message:
        return read_message(f"MSH|^~\\&|A|B|C|D|20261205||ADT^A01|{cid}|P|{version}\r")

    ids = {read_message(ack(sent("2.5"))).control_id for _ in range(200)}
    assert len(ids) == 200 and all(0 < len(i) <= 20 for i in ids)
    assert read_message(ack(sent("2.5"))).field("MSA", 2) == "A" * 20
    for version, kind in (("2.2", "ACK^A01"), ("2.3", "ACK^A01"), ("2.3.1", "ACK^A01^ACK"),
                          ("2.5", "ACK^A01^ACK"), ("2.8", "ACK^A01^ACK")):  # fmt: skip
        assert read_message(ack(sent(version))).message_type == kind, version


def test_the_acknowledgement_is_timed_with_its_utc_offset() -> None:
    # MSH-7 was UTC without an offset, which a receiver reads as its own local time
    sent = read_message(ack(read_message(MESSAGE)))
    assert sent.field("MSH", 7).endswith("+0000") and len(sent.field("MSH", 7)) == 19
    assert abs(hl7_time(sent.field("MSH", 7)) - datetime.now(UTC)) < timedelta(minutes=1)


def test_the_acknowledgement_echoes_the_control_id_escaped_in_the_messages_separators() -> None:
    # MSH-10 "R\F\1" (R|1) came back unescaped: "MSA|AA|R|1", a field of its own
    msg = read_message("MSH|^~\\&|A|B|C|D|20261205||ORU^R01|R\\F\\1|P|2.5\rPID|1||p\r")
    back = read_message(ack(msg, "AE", "no"))
    assert back.field("MSA", 2) == "R|1" and back.field("MSA", 3) == "no"
    assert "|" not in back.control_id and back.control_id != "ACKR|1"
    # other separators: the ACK declares the message's own and escapes with them
    odd = read_message("MSH#$*@%#A#B#C#D#20261205##ORU$R01#R@F@2#P#2.5\r")
    back = read_message(ack(odd, "AA"))
    assert back.encoding == "$*@%" and back.field("MSA", 2) == "R#2"


def test_a_result_without_obx_is_an_hour_with_nothing_measured() -> None:
    msg = oru_observations("MSH|^~\\&|A|B|C|D|20261205||ORU^R01|1|P|2.5\rPID|1||x")
    assert msg.observations == [] and msg.patient_ids == ["x"]
    assert observations_to_hour(msg.observations, 3).row == {"ICULOS": 3.0}


def test_observation_times_come_from_obx_14_or_the_requests_obr_7() -> None:
    assert hl7_time("202612050830+0100") == datetime(2026, 12, 5, 7, 30, tzinfo=UTC)
    assert hl7_time("20261205083015.25-0500") == datetime(2026, 12, 5, 13, 30, 15, tzinfo=UTC)
    for unplaceable in ("202612050830", "20261205+0000", "", "not a time+0100"):
        assert hl7_time(unplaceable) is None, unplaceable
    msg = "\r".join([
        "MSH|^~\\&|M|I|V|H|20261205||ORU^R01|T1|P|2.5",
        "OBR|1||||||202612050800+0000",
        "OBX|1|NM|8867-4^HR^LN||90|/min|||||F|||202612050815+0000",
        "OBX|2|NM|9279-1^Resp^LN||18|/min|||||F",  # the request's time
        "OBR|2",  # a request without a time: none for its results
        "OBX|1|NM|8867-4^HR^LN||91|/min|||||F|||202612050830",  # no offset: as sent
    ])  # fmt: skip
    got = [o.get("effectiveDateTime") for o in oru_observations(msg).observations]
    assert got == ["2026-12-05T08:15:00+00:00", "2026-12-05T08:00:00+00:00", "202612050830"]
    assert observation_times(oru_observations(msg).observations) == [
        datetime(2026, 12, 5, 8, 15, tzinfo=UTC), datetime(2026, 12, 5, 8, tzinfo=UTC)]  # fmt: skip


def test_a_time_to_the_hour_is_the_start_of_it_and_a_date_alone_is_not_the_requests() -> None:
    # YYYYMMDDHH[+ZZZZ] is a valid HL7 TS: it read as no time, so the result took OBR-7's
    # hour, or was pooled into the others'
    assert hl7_time("2026120508+0100") == datetime(2026, 12, 5, 7, tzinfo=UTC)
    assert hl7_time("2026120508", ZoneInfo("Europe/Berlin")) == datetime(2026, 12, 5, 7, tzinfo=UTC)
    for unplaceable in ("2026120508", "20261205", "202612050+0000", "20261205xx+0000"):
        assert hl7_time(unplaceable) is None, unplaceable
    msg = "\r".join([
        "MSH|^~\\&|M|I|V|H|20261205||ORU^R01|T1|P|2.5",
        "OBR|1||||||202612050800+0000",
        "OBX|1|NM|2524-7^Lactate^LN||6.5|mmol/L|||||F|||2026120506+0000",
        "OBX|2|NM|2524-7^Lactate^LN||2.1|mmol/L|||||F|||20261204",  # a date alone: as sent
        "OBR|2||||||20261205",  # the request's date alone is its results'
        "OBX|1|NM|8867-4^HR^LN||91|/min|||||F",
    ])  # fmt: skip
    got = [o.get("effectiveDateTime") for o in oru_observations(msg).observations]
    assert got == ["2026-12-05T06:00:00+00:00", "20261204", "20261205"]
    assert observation_times(oru_observations(msg).observations) == [
        datetime(2026, 12, 5, 6, tzinfo=UTC)]  # fmt: skip
    # the hospital admission (PV1-44) is read by the same clock
    event = adt_event(_adt("PID|1||mrn-1", "2026120314+0000"))
    assert event.static == {"HospAdmTime": -42.83}


def test_escaped_text_reads_back_as_it_was() -> None:
    text = "V run | 3 beats ^ 150 bpm ~ see \\ note & more\nnext line"
    field = escape(text)
    assert all(ch not in field for ch in "|^~&\n")
    msg = read_message(f"MSH|^~\\&|A|B|C|D|20261205||ORU^R01|X|P|2.5\rNTE|1||{field}\r")
    assert msg.field("NTE", 3) == text.replace("\n", " ")


def test_local_times_are_placed_in_the_sites_zone_when_it_is_named() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    assert hl7_time("202612050830", berlin) == datetime(2026, 12, 5, 7, 30, tzinfo=UTC)  # CET
    assert hl7_time("202607050830", berlin) == datetime(2026, 7, 5, 6, 30, tzinfo=UTC)  # CEST
    assert hl7_time("202612050830-0500", berlin) == datetime(2026, 12, 5, 13, 30, tzinfo=UTC)
    assert hl7_time("20261205", berlin) is None  # still no time of day
    # the hour a clock goes back happens twice: the first is taken
    assert hl7_time("202610250230", berlin) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    msg = "MSH|^~\\&|M|I|V|H|20261205||ORU^R01|T1|P|2.5\rOBX|1|NM|8867-4^HR^LN||91|/min|||||F|||202612050830\r"
    (obs,) = oru_observations(msg, berlin).observations
    assert datetime.fromisoformat(obs["effectiveDateTime"]) == datetime(
        2026, 12, 5, 7, 30, tzinfo=UTC
    )


def test_a_local_time_the_clock_shows_twice_is_the_one_before_the_message_arrived() -> None:
    ny = ZoneInfo("America/New_York")  # 1 Nov 2026: 02:00 EDT (06:00 UTC) is 01:00 EST
    first = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT
    second = first + timedelta(hours=1)  # 01:30 EST
    assert hl7_time("202611010130", ny) == first  # not knowing when: the first
    for received, want in (
        (first + timedelta(seconds=30), first),
        (second + timedelta(seconds=30), second),
        (second - CLOCK_SKEW, second),  # the sender's clock a little ahead of ours
        (second + timedelta(hours=3), second),  # both past: the later
        (first - timedelta(hours=1), first),  # both ahead: as without
    ):
        assert hl7_time("202611010130", ny, received) == want, received
    # an hour that happens once is not moved, nor a time with its offset
    assert hl7_time("202611010230", ny, second) == datetime(2026, 11, 1, 7, 30, tzinfo=UTC)
    assert hl7_time("202611010130-0400", ny, second) == first
    # the hour the clock skips (8 Mar 2026, 02:00 EST is 03:00 EDT): with the offset before
    # the change, as a clock not yet moved forward shows it, unless that is still ahead
    skipped = datetime(2026, 3, 8, 7, 30, tzinfo=UTC)  # 02:30 EST, 03:30 EDT
    assert hl7_time("202603080230", ny) == skipped
    assert hl7_time("202603080230", ny, skipped + timedelta(minutes=1)) == skipped
    early = skipped - timedelta(minutes=50)
    assert hl7_time("202603080230", ny, early) == skipped - timedelta(hours=1)
    # a message's times: placed by when it arrived, or offline by its MSH-7 with an offset
    oru = (
        "MSH|^~\\&|M|I|V|H|{}||ORU^R01|T1|P|2.5\rOBR|1|||v|||202611010115\r"
        "OBX|1|NM|8867-4^HR^LN||91|/min|||||F|||202611010145\r"
        "OBX|2|NM|8867-4^HR^LN||92|/min|||||F\r"
    )
    for msh7, received, want in (
        ("202611010150", None, first),
        ("202611010150", second + timedelta(minutes=20), second),
        ("202611010150-0500", None, second),  # sent at 01:50 EST
        ("202611010150-0400", None, first),  # sent at 01:50 EDT
        # made at 01:50 EDT, queued by the engine, arrived in the second hour: its times
        # are not after it was made (they were put an hour after the message before)
        ("202611010150-0400", second + timedelta(minutes=20), first),
    ):
        obs = oru_observations(oru.format(msh7), ny, received).observations
        got = [datetime.fromisoformat(o["effectiveDateTime"]) for o in obs]
        assert got == [want + timedelta(minutes=15), want - timedelta(minutes=15)], msh7
    pv1 = "PV1|1|I" + "|" * 42 + "202611010120"
    adt = read_message(
        "MSH|^~\\&|A|H|V|H|202611010140||ADT^A01|A1|P|2.5\rEVN|A01|202611010135\r"
        f"PID|1||mrn-1||X||19610805|M\r{pv1}\r"
    )
    event = adt_event(adt, ny, received=second + timedelta(minutes=10))
    assert event.occurred_at == second + timedelta(minutes=5)
    assert event.static["HospAdmTime"] == -0.25
    assert adt_event(adt, ny).occurred_at == first + timedelta(minutes=5)


def _adt(pid: str, pv1_44: str = "") -> Hl7Message:
    pv1 = ["PV1", "1", "I", "ICU^1^1"] + [""] * 41
    pv1[44] = pv1_44
    return read_message("\r".join([
        "MSH|^~\\&|ADT|H|V|H|202612050900+0000||ADT^A01^ADT_A01|A1|P|2.5",
        "EVN|A01|202612050905+0000||||202612050850+0000", pid, "|".join(pv1)]))  # fmt: skip


def test_an_admission_gives_the_event_time_and_the_demographics_the_model_takes() -> None:
    event = adt_event(_adt("PID|1||mrn-1^^^H^MR||Doe^J||19610805|M", "202612031450+0000"))
    assert event.trigger == "A01" and event.patient_ids == ["mrn-1"] and event.notes == []
    assert event.occurred_at == datetime(2026, 12, 5, 8, 50, tzinfo=UTC)  # EVN-6 first
    assert event.static == {"Age": 65.0, "Gender": 1.0, "HospAdmTime": -42.0}
    # a birthday not reached yet this year; another sex; what cannot be read is said
    event = adt_event(_adt("PID|1||mrn-2||Doe^J||19611206|U", "yesterday"))
    assert event.static == {"Age": 64.0}
    assert event.notes == ["PV1-44 'yesterday' has no time of day or no UTC offset"]
    event = adt_event(_adt("PID|1||mrn-3||Doe^J||18000101|F"))
    assert event.static == {"Gender": 0.0} and event.notes == [
        "PID-7 gives an age outside 0-120 years"]  # fmt: skip
    assert adt_event(_adt("PID|1||mrn-4||X||1961-08-05")).notes == [
        "PID-7 is not a date (HL7 DT: YYYYMMDD)"]  # fmt: skip
    with pytest.raises(ValueError, match="not an ADT message"):
        adt_event(read_message("MSH|^~\\&|M|I|V|H|20261205||ORU^R01|T1|P|2.5"))


def test_fhir_observation_times_need_a_time_of_day_and_an_offset() -> None:
    obs = [
        {"resourceType": "Observation", "effectiveDateTime": "2026-12-05T08:15:00Z"},
        {"resourceType": "Observation", "effectivePeriod": {"start": "2026-12-05T09:00:00+01:00"}},
        {"resourceType": "Observation", "effectiveInstant": "2026-12-05T08:20:00.5+00:00"},
        {"resourceType": "Observation", "effectiveDateTime": "2026-12-05"},  # a date
        {"resourceType": "Observation", "effectiveDateTime": "2026-12-05T08:15:00"},  # no zone
        {"resourceType": "Observation"},
        {"resourceType": "Patient", "effectiveDateTime": "2026-12-05T08:15:00Z"},
    ]
    assert observation_times(obs) == [
        datetime(2026, 12, 5, 8, 15, tzinfo=UTC), datetime(2026, 12, 5, 8, tzinfo=UTC),
        datetime(2026, 12, 5, 8, 20, 0, 500000, tzinfo=UTC)]  # fmt: skip


def test_a_bedside_monitors_ieee_11073_codes_read_as_the_same_measurements() -> None:
    pcd = "\r".join([
        "MSH|^~\\&|MONITOR^0012^EUI-64|ICU|VITALGRU|HOSP|20261205083000+0100||ORU^R01^ORU_R01|P1|P|2.6",
        "PID|||bed-9",
        "OBR|1|||182777000^monitoring of patient^SNOMED-CT|||20261205083000+0100",
        "OBX|1|NM|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.1|112|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R",
        "OBX|2|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.3.1.1|93|262688^MDC_DIM_PERCENT^MDC|||||R",
        "OBX|3|NM|150344^MDC_TEMP^MDC|1.4.1.1|101.3|266560^MDC_DIM_FAHR^MDC|||||R",
        "OBX|4|NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC|1.2.1.1|96|266016^MDC_DIM_MMHG^MDC|||||R",
        "OBX|5|NM|150022^MDC_PRESS_BLD_NONINV_DIA^MDC|1.2.1.2|52|266016^MDC_DIM_MMHG^MDC|||||R",
        "OBX|6|NM|150039^MDC_PRESS_BLD_ART_ABP_MEAN^MDC|1.2.2.3|64|266016^MDC_DIM_MMHG^MDC|||||R",
        "OBX|7|NM|151562^MDC_RESP_RATE^MDC|1.5.1.1|26|264928^MDC_DIM_RESP_PER_MIN^MDC|||||R",
        "OBX|8|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.3.2.1|8388607|262688^MDC_DIM_PERCENT^MDC|||||R",
        "OBX|9|NM|149530^MDC_PULS_OXIM_PULS_RATE^MDC|1.3.1.2|110|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R",
        "OBX|10|NM|151578^MDC_TTHOR_RESP_RATE^MDC|1.5.2.1|30|999999^MDC_DIM_SOMETHING^MDC|||||R",
    ])  # fmt: skip
    msg = oru_observations(pcd)
    hour = observations_to_hour(msg.observations, 1)
    assert hour.row == pytest.approx({
        "ICULOS": 1.0, "hr_bpm": 112.0, "spo2_pct": 93.0, "temp_c": 38.5, "sbp_mmhg": 96.0,
        "dbp_mmhg": 52.0, "map_mmhg": 64.0, "resp_per_min": 26.0})  # fmt: skip
    assert hour.converted == {"temp_c": ["[degF]"]}
    # the oximeter's "no value", a pulse rate, a unit MDC has but the table does not: skipped
    assert [s["index"] for s in hour.skipped] == [7, 8, 9]
    assert msg.observations[0]["code"]["coding"] == [
        {"system": "urn:iso:std:iso:11073:10101", "code": "147842",
         "display": "MDC_ECG_HEART_RATE"}]  # fmt: skip
    assert msg.observations[0]["valueQuantity"]["system"] == "urn:iso:std:iso:11073:10101"
    assert observation_times(msg.observations)[0] == datetime(2026, 12, 5, 7, 30, tzinfo=UTC)


def test_escapes_are_read_left_to_right() -> None:
    # an escaped escape character is a character, and what follows it is not another
    # sequence (HL7 v2.5 2.7.4): read code by code, "\E\F\" gave "\|"
    msg = read_message("MSH|^~\\&|A|B|C|D|20261205||ORU^R01|X|P|2.5\rNTE|1||a\\E\\F\\b\r")
    assert msg.field("NTE", 3) == "a\\F\\b"
    for text in ("\\F\\ literal", "x\\E\\y", "\\\\|^"):
        field = escape(text)
        msg = read_message(f"MSH|^~\\&|A|B|C|D|20261205||ORU^R01|X|P|2.5\rNTE|1||{field}\r")
        assert msg.field("NTE", 3) == text


def test_line_breaks_hex_bytes_and_highlighting_escapes_are_read() -> None:
    # only the separators' escapes were read: \.br\ and \X0D0A\ reached the value as sent
    head = "MSH|^~\\&|A|B|C|D|20261205||ORU^R01|X|P|2.5||||||{}\rNTE|1||{}\r"
    msg = read_message(head.format("", "a\\.br\\b\\X0D0A\\c \\H\\high\\N\\ \\XC3A9\\"))
    assert msg.field("NTE", 3) == "a\nb\r\nc high é"
    # the bytes are in the message's character set; a sequence that is none stays as sent
    msg = read_message(head.format("8859/1", "G\\XD6\\T \\XZZ\\ \\Q\\"))
    assert msg.field("NTE", 3) == "GÖT \\XZZ\\ \\Q\\"


def test_hex_bytes_in_a_character_set_python_lacks_are_read_as_ascii() -> None:
    # a message naming such a set (ISO IR87) is read when all its bytes are ASCII, but its
    # \Xhh\ were decoded with no codec: a TypeError, and an admission answered AE 500
    msg = read_message("MSH|^~\\&|A|B|C|D|20261205||ADT^A01|X|P|2.5||||||ISO IR87\r"
                       "PID|1||icu\\X2D\\9^^^H^MR||Doe^J\r"
                       "NTE|1||a\\X41\\ \\XB0A1\\\r")  # fmt: skip
    assert msg.patient_ids == ["icu-9"]
    assert msg.field("NTE", 3) == "aA \\XB0A1\\"  # not ASCII: kept as sent


def test_only_a_plain_number_is_an_nm_value() -> None:
    # HL7 v2.5 2.A.47: an optional sign, digits and a decimal point; float() took more
    head = "MSH|^~\\&|A|B|C|D|20261205||ORU^R01|X|P|2.5\rPID|1||p1\r"
    for value, want in (("100", 100.0), ("+99.5", 99.5), ("-.5", -0.5), ("80.", 80.0),
                        ("1_0_0", None), ("1e2", None), ("inf", None), ("nan", None)):  # fmt: skip
        msg = oru_observations(f"{head}OBX|1|NM|8867-4^HR^LN||{value}|/min|||||F\r")
        q = msg.observations[0].get("valueQuantity")
        assert (q["value"] if q else None) == want, value


def test_results_of_several_patients_in_one_message_are_refused() -> None:
    # each OBX belongs to the PID before it; read as one, patient B's lactate was scored
    # for A
    two = MESSAGE.replace("OBX|5|", "PID|2||MRN-777^^^HOSP^MR||Roe^Rick\rOBX|5|")
    with pytest.raises(ValueError, match=r"several patients \(PID-3 MRN-981, icu-4; MRN-777\)"):
        oru_observations(two)
    again = MESSAGE.replace("OBX|5|", "PID|2||icu-4^^^ICU^PI\rOBX|5|")  # the same patient
    assert len(oru_observations(again).observations) == 10


def test_bytes_are_read_in_the_character_set_msh_18_names() -> None:
    # 8859/1 bytes were read as UTF-8 with replacement: GÖT-0001 and GÄT-0001 both became
    # G\ufffdT-0001, one patient
    def adt(pid: str, msh18: str = "8859/1", codec: str = "latin-1") -> bytes:
        return (f"MSH|^~\\&|ADT|H|V|H|202612050900+0000||ADT^A01|Ö1|P|2.5|||AL|NE||{msh18}\r"
                f"PID|1||{pid}^^^H^MR||Müller^Jörg\r").encode(codec)  # fmt: skip

    a, b = read_message(adt("GÖT-0001")), read_message(adt("GÄT-0001"))
    assert (a.patient_ids, b.patient_ids) == (["GÖT-0001"], ["GÄT-0001"])
    assert a.charset == "8859/1" and a.field("PID", 5, 2) == "Jörg"
    # the acknowledgement says the same set and goes in it
    back = ack(a, "AA")
    assert back.split("\r")[0].endswith("|2.5||||||8859/1")
    assert b"MSA|AA|\xd61" in message_bytes(back)
    assert read_message(message_bytes(back)).field("MSA", 2) == "Ö1"
    assert read_message(adt("GÖT-0001", "UNICODE UTF-8", "utf-8")).patient_ids == ["GÖT-0001"]
    # none named: UTF-8 as before, and bytes that are not UTF-8 refused, never replaced
    assert read_message(adt("GÖT-0001", "", "utf-8")).patient_ids == ["GÖT-0001"]
    with pytest.raises(ValueError, match=r"byte 0xD6 at \d+ is not UTF-8 \(MSH-18 names no"):
        read_message(adt("GÖT-0001", ""))
    with pytest.raises(ValueError, match="MSH-18 'ISO IR87' is not a character set"):
        read_message(adt("GÖT-0001", "ISO IR87"))
    # a set this gateway does not read, in a message all ASCII; the names engines write for
    # the sets it reads (all refused before)
    ascii_only = (b"MSH|^~\\&|ADT|H|V|H|202612050900+0000||ADT^A01|O1|P|2.5|||AL|NE||ISO IR87\r"
                  b"PID|1||GOT-0001^^^H^MR||Muller^Jorg\r")  # fmt: skip
    assert read_message(ascii_only).patient_ids == ["GOT-0001"]
    for name, codec in (("UTF-8", "utf-8"), ("UNICODE", "utf-8"), ("ISO-8859-1", "latin-1")):
        assert read_message(adt("GÖT-0001", name, codec)).patient_ids == ["GÖT-0001"], name
    # table 0211's names in any case; of several repetitions, the first is the message's
    for name, codec in (("unicode utf-8", "utf-8"), ("8859/1~UNICODE UTF-8", "latin-1")):
        assert read_message(adt("GÖT-0001", name, codec)).patient_ids == ["GÖT-0001"], name
    plain = ack(read_message(adt("x", "", "utf-8")))
    assert message_bytes(plain) == plain.encode()
