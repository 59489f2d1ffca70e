"""What the ward's sepsis texts say, in every output they go to: the risk score named as a
score, and printed with the digits that keep it on its side of the alarm line; when the
latest hour was scored, and a feed gone quiet."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from monitor_kit import hovering, restarted_sepsis_ward

from pipelines.hl7_alarms import alarm_message
from vitalgru.reports.early_warning import early_warning_report_html, stay_summary
from vitalgru.reports.fhir_gateway import events_bundle
from vitalgru.reports.ward import ward_page_html
from vitalgru.scoring import EarlyWarningMonitor
from vitalgru.scoring.ward import Ward
from vitalgru.scoring.ward_journal import WardJournal

SAID = re.compile(r"sepsis risk score ([0-9.]+) (reached|fell below) the alarm line ([0-9.]+) ")


def _forget(state: Path, table: str) -> None:
    """Empty a table of the state file, as a file written before it was kept has it."""
    with sqlite3.connect(state) as db:
        db.execute(f"DELETE FROM {table}")
    db.close()


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

    def test_an_alarms_score_in_the_json_is_not_rounded_under_its_line(
        self, sepsis_fit: tuple[Any, dict, list[dict]]
    ) -> None:
        # the event's "risk" was rounded to 4 decimals: a score a hair over the line it
        # reached read under it (0.361816 on a line of 0.361813 as 0.3618) to whoever
        # compared the JSON's figures
        model, preprocessing, rows = sepsis_fit
        mon = EarlyWarningMonitor(model, preprocessing)
        mon.admit("x")
        risks = [mon.push({"x": r})[0].risk for r in rows]
        hour = next(i for i in range(1, len(risks))
                    if round(risks[i], 4) < risks[i] and risks[i - 1] < round(risks[i], 4))  # fmt: skip
        line = (round(risks[hour], 4) + risks[hour]) / 2  # reached, but not at 4 decimals
        ward = Ward(sepsis=EarlyWarningMonitor(model, {**preprocessing, "threshold": line}))
        ward.admit_sepsis("icu-1")
        for row in rows[: hour + 1]:
            ward.add_hour("icu-1", row)
        (onset,) = [e for e in ward.events()["events"] if e["kind"] == "sepsis_risk"
                    and e["hour"] == ward.sepsis_summary("icu-1")["last_hour"]["hour"]]  # fmt: skip
        assert onset["risk"] >= line > round(risks[hour], 4)


class TestQuietFeed:
    def test_a_feed_that_sends_nothing_for_three_hours_is_marked_and_a_row_clears_it(
        self, sepsis_fit: tuple[Any, dict, list[dict]], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The ward showed a patient whose feed died hours ago like any other."""
        model, preprocessing, rows = sepsis_fit
        clock = [datetime(2026, 12, 7, 8, 0, tzinfo=UTC)]
        monkeypatch.setattr("vitalgru.scoring.ward_sepsis_hours._now", lambda: clock[0])
        ward = Ward(sepsis=EarlyWarningMonitor(model, preprocessing))
        ward.admit_sepsis("icu-1", admitted_at=clock[0])
        ward.admit_sepsis("icu-2", admitted_at=clock[0])  # nothing ever comes
        ward.add_hour("icu-1", rows[0])
        s = ward.sepsis_summary("icu-1")
        assert s["last_data_at"] == clock[0].isoformat() and s["no_data_since"] is None
        clock[0] += timedelta(hours=3)  # at the limit: not yet
        assert ward.sepsis_summary("icu-1")["no_data_since"] is None
        clock[0] += timedelta(minutes=1)
        assert ward.sepsis_summary("icu-1")["no_data_since"] == "2026-12-07T08:00:00+00:00"
        assert ward.sepsis_summary("icu-2")["no_data_since"] == "2026-12-07T08:00:00+00:00"
        _, summaries = ward.summaries()
        assert all(p["no_data_since"] for p in summaries)
        page = ward_page_html(*ward.summaries())
        assert "no data since 2026-12-07 08:00 UTC" in page
        stay = ward.sepsis_stay("icu-1")
        assert stay["no_data_since"] == "2026-12-07T08:00:00+00:00" and stay["last_scored_at"]
        ward.add_hour("icu-1", rows[1])  # the feed is back
        assert ward.sepsis_summary("icu-1")["no_data_since"] is None
        # an observation counts as data too
        ward.add_observations("icu-2", 4, {"HR": 88.0})
        assert ward.sepsis_summary("icu-2")["no_data_since"] is None

    def test_a_stay_dated_back_counts_its_silence_from_when_the_gateway_took_it(
        self,
        sepsis_fit: tuple[Any, dict, list[dict]],
        monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path,
    ) -> None:
        """A patient admitted now for a stay that began 5 h ago (an ADT^A01 dated by its
        event time, ``admitted_at=``) was marked "no data since" the stay's start at the
        moment of admission, before the feed could send anything."""
        model, preprocessing, _ = sepsis_fit
        clock = [datetime(2026, 12, 7, 8, 0, tzinfo=UTC)]
        monkeypatch.setattr("vitalgru.scoring.ward_sepsis_hours._now", lambda: clock[0])
        state = tmp_path / "ward-state.sqlite"
        ward = Ward(sepsis=EarlyWarningMonitor(model, preprocessing), journal=WardJournal(state))
        ward.admit_sepsis("icu-9", admitted_at=clock[0] - timedelta(hours=5))
        s = ward.sepsis_summary("icu-9")
        assert s["admitted_at"] == "2026-12-07T03:00:00+00:00" and s["no_data_since"] is None
        assert "no data since 2026" not in ward_page_html(*ward.summaries())
        clock[0] += timedelta(hours=3, minutes=1)  # 3 h after the gateway took it: marked
        assert ward.sepsis_summary("icu-9")["no_data_since"] == "2026-12-07T08:00:00+00:00"
        ward.journal.close()

        restarted = partial(restarted_sepsis_ward, model, preprocessing, state)

        # the time is kept over a restart
        again = restarted()
        assert again.sepsis_summary("icu-9")["no_data_since"] == "2026-12-07T08:00:00+00:00"
        again.journal.close()
        # a file from before it was kept counts from the restart: not marked as it restarts
        _forget(state, "sepsis_taken")
        again = restarted()
        assert again.sepsis_summary("icu-9")["no_data_since"] is None
        clock[0] += timedelta(hours=3, minutes=1)
        assert again.sepsis_summary("icu-9")["no_data_since"] == "2026-12-07T11:01:00+00:00"
        again.journal.close()

    def test_a_feed_of_rows_that_stops_about_a_restart_is_found_quiet(
        self, tmp_path: Path, sepsis_fit: tuple, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # when a feed last sent a row was not kept: after a restart a feed that had sent rows
        # and then stopped was never marked "no data since", however long it stayed quiet
        model, preprocessing, rows = sepsis_fit
        clock = [datetime(2026, 12, 7, 8, 0, tzinfo=UTC)]
        monkeypatch.setattr("vitalgru.scoring.ward_sepsis_hours._now", lambda: clock[0])
        state = tmp_path / "ward-state.sqlite"
        ward = Ward(sepsis=EarlyWarningMonitor(model, preprocessing), journal=WardJournal(state))
        ward.admit_sepsis("icu-3")
        clock[0] += timedelta(minutes=30)
        ward.add_hour("icu-3", rows[0])  # the feed's last row, at 08:30
        ward.journal.close()

        restarted = partial(restarted_sepsis_ward, model, preprocessing, state)

        clock[0] += timedelta(hours=1)  # the gateway restarts at 09:30; the feed stays quiet
        again = restarted()
        assert again.sepsis_summary("icu-3")["last_data_at"] == "2026-12-07T08:30:00+00:00"
        assert again.sepsis_summary("icu-3")["no_data_since"] is None
        clock[0] += timedelta(hours=2, minutes=1)  # more than 3 h after the last row
        assert again.sepsis_summary("icu-3")["no_data_since"] == "2026-12-07T08:30:00+00:00"
        again.journal.close()
        # a file from before the time was kept counts from the restart (11:31 here)
        _forget(state, "sepsis_row_at")
        again = restarted()
        assert again.sepsis_summary("icu-3")["no_data_since"] is None
        clock[0] += timedelta(hours=3, minutes=1)
        assert again.sepsis_summary("icu-3")["no_data_since"] == "2026-12-07T11:31:00+00:00"
        again.journal.close()

    def test_the_stay_page_says_when_its_hour_was_scored_and_that_nothing_came_since(
        self,
    ) -> None:
        s = stay_summary("icu-1", [1, 2], [0.01, 0.02], 0.25, {})
        s.update(last_scored_at="2026-12-07T12:43:53+00:00", no_data_since=None)
        page = early_warning_report_html([s])
        assert "The latest hour was scored at 2026-12-07 12:43 UTC." in page
        assert "No data received" not in page
        s.update(no_data_since="2026-12-07T12:43:50+00:00")
        assert (
            "No data received since 2026-12-07 12:43 UTC (more than 3 h): the feed may have "
            "stopped, and the risk shown is not current." in early_warning_report_html([s])
        )
        replayed = stay_summary("p1", [1, 2], [0.01, 0.02], 0.25, {})  # no wall clock: nothing
        assert "latest hour was scored" not in early_warning_report_html([replayed])

    def test_the_sepsis_times_are_in_the_pages_zone_as_the_ecg_ones_are(self) -> None:
        # they were printed in UTC on a ward page whose ECG times were in the site's zone
        s = stay_summary("icu-1", [1, 2], [0.01, 0.02], 0.25, {})
        s.update(last_scored_at="2026-12-07T12:43:53+00:00", no_data_since="2026-12-07T12:43:50Z")
        tokyo = ZoneInfo("Asia/Tokyo")
        page = early_warning_report_html([s], zone=tokyo)
        assert "The latest hour was scored at 2026-12-07 21:43 JST." in page
        assert "No data received since 2026-12-07 21:43 JST" in page
        row = {"patient_id": "icu-1", "in_alarm": False, "alarm_episodes": 0,
               "last_hour": {"hour": 2, "risk": 0.02, "probability": 0.01},
               "last_scored_at": s["last_scored_at"], "no_data_since": s["no_data_since"]}  # fmt: skip
        ward = ward_page_html([], [row], zone=tokyo)
        assert "2 (scored 2026-12-07 21:43 JST)" in ward
        assert "no data since 2026-12-07 21:43 JST" in ward and " UTC" not in ward
