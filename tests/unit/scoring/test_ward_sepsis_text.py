"""What the ward's sepsis alarm texts say, in every output they go to: the risk score named
as a score, and printed with the digits that keep it on its side of the alarm line."""

from __future__ import annotations

import re
from typing import Any

from monitor_kit import hovering

from pipelines.hl7_forward import alarm_message
from vitalgru.reports.fhir_gateway import events_bundle
from vitalgru.scoring import EarlyWarningMonitor
from vitalgru.scoring.ward import Ward

SAID = re.compile(r"sepsis risk score ([0-9.]+) (reached|fell below) the alarm line ([0-9.]+) ")


class TestAlarmTexts:
    def test_a_score_hovering_at_the_line_is_never_printed_on_it(
        self, sepsis_fit: tuple[Any, dict, list[dict]]
    ) -> None:
        """With 2 decimals, a score of 0.3474 "fell below the alarm threshold 0.35", and
        0.3507 "reached" the same 0.35."""
        preprocessing, rows = hovering(sepsis_fit)
        ward = Ward(sepsis=EarlyWarningMonitor(sepsis_fit[0], preprocessing))
        ward.admit_sepsis("icu-1")
        for row in rows:
            ward.add_hour("icu-1", row)
        events = [e for e in ward.events()["events"] if e["kind"] in ("sepsis_risk", "alarm_ended")]
        assert len(events) >= 4  # the stay crosses the line again and again
        line = preprocessing["threshold"]
        by_seq = {e["seq"]: e for e in events}
        flags = {
            f["resource"]["code"]["text"]
            for f in events_bundle(events, log_id=ward.log_id)["entry"]
        }  # fmt: skip
        for e in events:
            score, verb, printed_line = SAID.match(e["message"]).groups()  # type: ignore[union-attr]
            assert (
                (float(score) >= float(printed_line)) == (verb == "reached") == (e["risk"] >= line)
            )
            assert len(score.split(".")[1]) == len(printed_line.split(".")[1]) >= 3
            # the same text in HL7 (the note on the alarm) and in the FHIR flag
            hl7 = alarm_message(e, by_seq.get(e.get("ends")), log_id=ward.log_id)
            assert hl7 is not None and f"score {score} {verb} the alarm line {printed_line}" in hl7
            if e["kind"] == "sepsis_risk":
                assert any(e["message"] in text for text in flags)
