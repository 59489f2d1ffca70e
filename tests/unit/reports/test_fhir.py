"""The FHIR export: every bundle validates against the FHIR R4B resource models, and says
what the pages say (risk, alarms, heart rate), with absolute times only when given."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation

from vitalgru.reports.early_warning import stay_summary
from vitalgru.reports.fhir import ecg_bundle, risk_assessment, sepsis_bundle
from vitalgru.reports.fhir_gateway import events_bundle, risk_bundle, strip_observation
from vitalgru.reports.monitoring import patient_summary

NAN = float("nan")
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def _stays():
    hours = list(range(1, 11))
    risk = [0.1, 0.2, 0.6, 0.7, 0.4, 0.3, 0.2, 0.55, 0.9, 0.8]  # alarms at 3-4 and 8-10
    prob = [r / 10 for r in risk]  # a recalibrated model's probabilities
    why = {8: [{"text": "Resp 31 /min (now; risk 0.62 had it been typical, 18.8)"}]}
    alarmed = stay_summary(
        "p1", hours, risk, 0.5, {"hr_bpm": [90.0] * 10}, None, [0] * 10, prob, why
    )
    calm = stay_summary("p2", [1, 2], [0.1, 0.2], 0.5, {}, None, [0, 0])  # no recalibration
    return [alarmed, calm]


def _by_type(bundle: dict, kind: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


class TestSepsisBundle:
    @pytest.mark.parametrize(
        ("in_alarm", "probability", "code"),
        [(True, 0.039, "moderate"), (True, None, "moderate"), (True, 0.7, "high"),
         (False, 0.01, "low"), (False, None, "low")],
    )  # fmt: skip
    def test_the_likelihood_follows_the_alarm_and_is_high_only_past_one_half(
        self, in_alarm: bool, probability: float | None, code: str
    ) -> None:
        r = risk_assessment(
            {"identifier": {"value": "p"}}, "m", last_hour=3, risk_last=0.4,
            probability=probability, in_alarm=in_alarm, threshold=0.25, risk_max=0.4,
            risk_max_hour=3, when=None,
        )  # fmt: skip
        assert r["prediction"][0]["qualitativeRisk"]["coding"][0]["code"] == code

    def test_valid_fhir_with_risk_and_one_flag_per_episode(self) -> None:
        b = sepsis_bundle(_stays(), model="models:/m/3", starts={"p1": T0}, generated=T0)
        Bundle.model_validate(b)  # raises on a misshapen resource
        json.dumps(b)
        risks = _by_type(b, "RiskAssessment")
        assert [r["subject"]["identifier"]["value"] for r in risks] == ["p1", "p2"]
        pred = risks[0]["prediction"][0]
        assert pred["outcome"]["coding"][0]["code"] == "91302008"
        assert pred["probabilityDecimal"] == 0.08  # the probability, not the risk score 0.8
        assert pred["qualitativeRisk"]["coding"][0] == {
            "system": "http://terminology.hl7.org/CodeSystem/risk-probability",
            "code": "moderate",  # in alarm at a probability of 8 %: not "more likely than not"
            "display": "Moderate likelihood",
        }
        calm = risks[1]["prediction"][0]
        assert calm["qualitativeRisk"]["coding"][0]["code"] == "low"
        # a score without a recalibration is not passed off as a probability
        assert "probabilityDecimal" not in calm
        assert risks[1]["note"][0]["text"] == (
            "ICU hour 2: risk score 0.200 (a score, not a probability), alarm line 0.500 (not "
            "in alarm); highest risk score of the stay 0.200 at ICU hour 2; the model has no "
            "recalibration: no probability"
        )
        # the latest hour (10) of a stay whose hour 0 was T0
        assert risks[0]["occurrenceDateTime"] == (T0 + timedelta(hours=10)).isoformat()
        assert "occurrenceDateTime" not in risks[1]  # no start time for p2
        flags = _by_type(b, "Flag")
        assert [f["status"] for f in flags] == ["inactive", "active"]  # 3-4 over; 8-10 going on
        assert flags[0]["period"] == {
            "start": (T0 + timedelta(hours=3)).isoformat(),
            "end": (T0 + timedelta(hours=5)).isoformat(),
        }
        assert "end" not in flags[1]["period"]
        assert "from ICU hour 8 to 10" in flags[1]["code"]["text"]
        assert flags[1]["code"]["text"].endswith(
            "; raised most by Resp 31 /min (now; risk 0.62 had it been typical, 18.8)"
        )
        assert "raised most" not in flags[0]["code"]["text"]  # the onset at 3 not explained

    def test_same_report_same_bundle_and_no_times_without_a_start(self) -> None:
        a = sepsis_bundle(_stays(), model="m", patient_system="urn:oid:1.2.3")
        assert a == sepsis_bundle(_stays(), model="m", patient_system="urn:oid:1.2.3")
        Bundle.model_validate(a)
        assert "timestamp" not in a
        text = json.dumps(a)
        assert "DateTime" not in text and '"period"' not in text
        assert a["entry"][0]["resource"]["subject"]["identifier"]["system"] == "urn:oid:1.2.3"
        assert len({e["fullUrl"] for e in a["entry"]}) == len(a["entry"])

    def test_a_start_without_time_zone_is_refused(self) -> None:
        with pytest.raises(ValueError, match="time zone"):
            sepsis_bundle(_stays(), model="m", starts={"p1": datetime(2026, 3, 1, 8)})
        with pytest.raises(ValueError, match="generated .* has no time zone"):  # an instant
            sepsis_bundle(_stays(), model="m", generated=datetime(2026, 3, 1, 8))

    def test_times_across_a_daylight_saving_change_are_elapsed_time(self) -> None:
        # admitted at midnight in Paris on the night clocks go forward: the risk of ICU
        # hour 10 is 10 h later (it came out 9 h later, the wall clock moved instead)
        start = datetime(2026, 3, 29, 0, 0, tzinfo=ZoneInfo("Europe/Paris"))
        b = sepsis_bundle(_stays(), model="m", starts={"p1": start})
        when = datetime.fromisoformat(_by_type(b, "RiskAssessment")[0]["occurrenceDateTime"])
        assert when - start == timedelta(hours=10) and when.utcoffset() == timedelta(hours=2)


class TestEcgBundle:
    def test_heart_rate_and_alarms(self) -> None:
        t = [0.8 * k for k in range(150)]
        alarm = {"kind": "ventricular_run", "onset_s": 30.0, "message": "3 V beats at 150 bpm"}
        p = patient_summary("bed-4", 121.0, t, ["N"] * 150, [True] * 150, [alarm])
        none = patient_summary("bed-5", 10.0, [], [], [], [])
        b = ecg_bundle([p, none], model="models:/a/1", starts={"bed-4": T0})
        Bundle.model_validate(b)
        (obs,) = _by_type(b, "Observation")
        assert obs["code"]["coding"][0]["code"] == "8867-4"
        assert obs["valueQuantity"] == {"value": 75.0, "unit": "/min",
                                        "system": "http://unitsofmeasure.org", "code": "/min"}  # fmt: skip
        assert obs["effectivePeriod"]["end"] == (T0 + timedelta(seconds=121)).isoformat()
        (flag,) = _by_type(b, "Flag")
        assert flag["period"] == {"start": (T0 + timedelta(seconds=30)).isoformat()}
        assert flag["code"]["text"].startswith("Ventricular run at 30 s")
        assert obs["category"][0]["coding"][0]["code"] == "vital-signs"

    def test_a_heart_rate_without_a_time_claims_no_vital_sign_profile(self) -> None:
        """R4's vital-signs profile, which the vital-signs category claims, requires
        effective[x]: a replay without a start time gave a vital sign without one."""
        t = [0.8 * k for k in range(150)]
        p = patient_summary("bed-4", 121.0, t, ["N"] * 150, [True] * 150, [])
        b = ecg_bundle([p], model="models:/a/1")
        Bundle.model_validate(b)
        (obs,) = _by_type(b, "Observation")
        assert "effectivePeriod" not in obs and "category" not in obs
        assert obs["code"]["coding"][0]["code"] == "8867-4"


def test_an_alarm_strip_is_an_observation_of_sampled_data() -> None:
    strip = {"seq": 7, "patient_id": "bed-4", "kind": "ventricular_run",
             "message": "ventricular run: 4 beats at 160 bpm", "fs": 250.0, "start_s": 95.0,
             "start_at": "2026-12-05T08:01:35+00:00", "onset_s": 100.0, "raised_at_s": 103.0,
             "beats": [{"time_s": 96.0, "label": "N", "signal_ok": True},
                       {"time_s": 100.0, "label": "V", "signal_ok": False}],
             "samples": [0.0, 1.2345, None, -0.5]}  # fmt: skip
    obs = strip_observation(strip, log_id="4f0c", patient_system="urn:oid:1.2.3")
    Observation.model_validate(obs)
    sd = obs["valueSampledData"]
    assert sd["data"] == "0 1234 E -500" or sd["data"] == "0 1235 E -500"
    assert sd["period"] == 4.0 and sd["factor"] == 0.001 and sd["origin"]["value"] == 0
    assert obs["effectivePeriod"] == {"start": "2026-12-05T08:01:35+00:00",
                                      "end": "2026-12-05T08:01:35.016000+00:00"}  # fmt: skip
    assert obs["code"]["coding"][0] == {"system": "urn:iso:std:iso:11073:10101",  # R4's URI
                                        "code": "131328", "display": "MDC_ECG_ELEC_POTL"}  # fmt: skip
    assert obs["subject"]["identifier"] == {"system": "urn:oid:1.2.3", "value": "bed-4"}
    note = obs["note"][0]["text"]
    assert note.startswith("Ventricular run: ventricular run: 4 beats at 160 bpm; onset 5.00 s")
    assert "1.00 s N, 5.00 s V (signal rejected)" in note


def test_a_strip_is_identified_by_its_gateways_log_and_its_flag_points_at_it() -> None:
    # event numbers start at 1 in every gateway (and in a new state file): two patients'
    # strips numbered alike must not share the identifier an engine updates on
    strip = {"seq": 1, "patient_id": "bed-4", "kind": "pause", "message": "pause of 3.2 s",
             "fs": 250.0, "start_s": 95.0, "start_at": "2026-12-05T08:01:35.250000+00:00",
             "onset_s": 100.0, "raised_at_s": 103.0, "beats": [], "samples": [0.0, 0.1]}  # fmt: skip
    event = {"seq": 1, "source": "ecg", "patient_id": "bed-4", "kind": "pause",
             "message": "pause of 3.2 s", "received_at": "2026-12-05T08:01:48+00:00",
             "onset_at": "2026-12-05T08:01:40.250000+00:00", "strip_s": 13.0}  # fmt: skip
    ids = []
    for log in ("9d1e0c7a", "51b2f3e8"):  # two gateways' (or state files') logs
        obs = strip_observation(strip, log_id=log)
        (flag,) = _by_type(events_bundle([event], log_id=log), "Flag")
        ref = flag["extension"][0]["valueReference"]["identifier"]
        assert obs["identifier"] == [ref]  # the flag points at its own log's strip
        ids.append(ref)
    assert ids[0] != ids[1]
    assert ids[0] == {"system": "urn:vitalgru:gateway-event", "value": "9d1e0c7a/1"}


def test_a_strip_from_before_the_upgrade_keeps_its_bare_number() -> None:
    # a strip an engine took before the log had an id, identified by its number alone: the
    # same identifier after the upgrade, or an engine updating on it made a second copy
    strip = {"seq": 4, "patient_id": "bed-4", "kind": "pause", "message": "pause of 3.2 s",
             "fs": 250.0, "start_s": 95.0, "start_at": "2026-12-05T08:01:35.250000+00:00",
             "onset_s": 100.0, "raised_at_s": 103.0, "beats": [], "samples": [0.0, 0.1]}  # fmt: skip
    event = {"seq": 4, "source": "ecg", "patient_id": "bed-4", "kind": "pause",
             "message": "pause of 3.2 s", "received_at": "2026-12-05T08:01:48+00:00",
             "onset_at": "2026-12-05T08:01:40.250000+00:00", "strip_s": 13.0}  # fmt: skip
    for upto, value in ((4, "4"), (3, "9d1e0c7a/4"), (None, "9d1e0c7a/4")):
        obs = strip_observation(strip, log_id="9d1e0c7a", old_ids_up_to=upto)
        bundle = events_bundle([event], log_id="9d1e0c7a", old_ids_up_to=upto)
        (flag,) = _by_type(bundle, "Flag")
        ref = flag["extension"][0]["valueReference"]["identifier"]
        assert obs["identifier"] == [ref] == [{"system": "urn:vitalgru:gateway-event",
                                               "value": value}]  # fmt: skip


def test_an_alarm_whose_end_was_logged_has_its_flag_period_closed() -> None:
    # R4: Flag.period runs from activation to inactivation
    def ev(seq: int, kind: str, at: str, **more: object) -> dict:
        return {"seq": seq, "source": "ecg", "patient_id": "bed-4", "kind": kind,
                "message": kind, "received_at": at, **more}  # fmt: skip

    events = [
        ev(1, "feed_lost", "2026-12-05T08:00:10+00:00"),
        ev(2, "pause", "2026-12-05T08:00:20+00:00", onset_at="2026-12-05T08:00:16.250+00:00"),
        ev(3, "feed_restored", "2026-12-05T08:00:30+00:00", ends=1),
        ev(4, "poor_signal", "2026-12-05T08:00:40+00:00"),  # still going on
        ev(5, "ventricular_run", "2026-12-05T08:00:41+00:00",
           onset_at="2026-12-05T08:00:41.500+00:00"),  # momentary
        ev(6, "pause", "2026-12-05T08:00:50+00:00", onset_at="2026-12-05T08:00:50.750+00:00"),
    ]  # fmt: skip
    # the pause's end logged after this page (beats_resumed, seq 7): told by ``ended``; the
    # second pause ended within the second of its onset
    ended = {2: "2026-12-05T08:01:00+00:00", 6: "2026-12-05T08:00:50+00:00"}
    b = events_bundle(events, log_id="l", active=[4], ended=ended)
    Bundle.model_validate(b)
    period = [f["period"] for f in _by_type(b, "Flag")]
    assert period == [
        {"start": "2026-12-05T08:00:10+00:00", "end": "2026-12-05T08:00:30+00:00"},
        {"start": "2026-12-05T08:00:16.250+00:00", "end": "2026-12-05T08:01:00+00:00"},
        {"start": "2026-12-05T08:00:30+00:00"},
        {"start": "2026-12-05T08:00:40+00:00"},
        {"start": "2026-12-05T08:00:41.500+00:00"},
        {"start": "2026-12-05T08:00:50.750+00:00", "end": "2026-12-05T08:00:50.750+00:00"},
    ]


def test_a_bundle_of_nothing_has_no_empty_entry_array() -> None:
    # FHIR's JSON has no empty arrays: "entry": [] was sent, which a validating engine refuses
    for bundle in (sepsis_bundle([], model="m"), ecg_bundle([], model="m"),
                   events_bundle([], log_id="L"), risk_bundle([], model="m", threshold=0.5)):  # fmt: skip
        assert bundle == {"resourceType": "Bundle", "type": "collection"}
        Bundle.model_validate(bundle)
