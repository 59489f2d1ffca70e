"""Patients outside the sepsis model's training population (adult ICU stays): a child's or a
neonate's hours are scored, and flagged wherever the risk is read."""

from __future__ import annotations

from typing import Any

from vitalgru.population import ADULT_AGE_YEARS, SepsisPopulation
from vitalgru.reports.early_warning import early_warning_report_html, stay_summary
from vitalgru.reports.ward import ward_page_html
from vitalgru.scoring import EarlyWarningMonitor
from vitalgru.scoring.ward import Ward

#: A neonate's hour: normal for a neonate, beyond the adult training patients' vital signs.
NEONATE = {"Age": 0.05, "HR": 180.0, "Resp": 60.0}


class TestSepsisPopulation:
    def test_a_model_stored_without_its_population_covers_adults_only(self) -> None:
        pop = SepsisPopulation.from_stats({})
        assert pop.age_min == ADULT_AGE_YEARS == 18.0
        (said,) = pop.outside({"age_years": 0.05, "hr_bpm": 180.0})
        assert said.startswith("age 0.05 y: below the youngest training patient (18 y)")
        assert pop.outside({"age_years": 45.0, "hr_bpm": 180.0}) == ()

    def test_a_fitted_model_keeps_who_its_training_patients_were(
        self, sepsis_fit: tuple[Any, dict, list[dict]]
    ) -> None:
        pop = sepsis_fit[1]["norm_stats"]["extra"]["population"]
        assert 18.0 <= pop["age_min"] < pop["age_max"] <= 100.0
        lo, hi = pop["ranges"]["hr_bpm"]
        assert 20.0 <= lo < 100.0 < hi < 180.0
        lo, hi = pop["ranges"]["resp_per_min"]
        assert lo < 20.0 < hi < 60.0
        assert "lactate_mmol_l" not in pop["ranges"]  # vital signs only


class TestChildOnTheMonitor:
    def test_a_neonates_hours_are_scored_and_flagged_an_adults_not(
        self, sepsis_fit: tuple[Any, dict, list[dict]]
    ) -> None:
        model, preprocessing, rows = sepsis_fit
        mon = EarlyWarningMonitor(model, preprocessing)
        mon.admit("adult")
        mon.admit("neonate")
        for i, row in enumerate(rows[:6]):
            # the age comes with the first row only: later hours are flagged all the same
            child = {**row, **NEONATE} if i == 0 else {**row, "Age": None}
            adult, neonate = mon.push({"adult": row, "neonate": child})
            assert 0.0 <= neonate.risk <= 1.0
            assert not any(p.startswith("age") for p in adult.outside)
            assert neonate.outside[0].startswith("age 0.05 y: below the youngest training")

    def test_the_vital_signs_beyond_the_training_range_are_named(
        self, sepsis_fit: tuple[Any, dict, list[dict]]
    ) -> None:
        model, preprocessing, rows = sepsis_fit
        mon = EarlyWarningMonitor(model, preprocessing)
        mon.admit("neonate")
        (risk,) = mon.push({"neonate": {**rows[0], **NEONATE}})
        said = "; ".join(risk.outside)
        assert "HR 180 bpm: outside the central 99.8 % of the training patients' values" in said
        assert "Resp 60" in said
        # an impossible value is refused (read as missing), not called a rare one
        (risk,) = mon.push({"neonate": {**rows[1], "HR": 0.0}})
        assert "hr_bpm" in risk.rejected and not any(p.startswith("HR") for p in risk.outside)


class TestChildOnTheWard:
    def test_the_summary_the_alarm_and_the_page_say_so(
        self, sepsis_fit: tuple[Any, dict, list[dict]]
    ) -> None:
        model, preprocessing, rows = sepsis_fit
        # an alarm line every hour reaches, so that the alarm's text is seen
        ward = Ward(sepsis=EarlyWarningMonitor(model, {**preprocessing, "threshold": 0.0}))
        ward.admit_sepsis("cot-1", static={"Age": 0.05})
        ward.admit_sepsis("bed-2")
        for row in rows[:4]:
            hour = ward.add_hour("cot-1", {**row, "Age": None})
            ward.add_hour("bed-2", row)
        assert hour["outside"][0].startswith("age 0.05 y: below the youngest")
        assert ward.sepsis_summary("cot-1")["hours_outside_population"] == 4
        assert ward.sepsis_summary("bed-2")["hours_outside_population"] == 0
        (onset,) = [
            e for e in ward.events()["events"]
            if e["kind"] == "sepsis_risk" and e["patient_id"] == "cot-1"
        ]  # fmt: skip
        assert "outside the model's training population: age 0.05 y" in onset["message"]
        st = ward.sepsis_stay("cot-1")
        summary = stay_summary(
            st["patient_id"], st["hours"], st["risks"], st["threshold"], st["values"],
            st["rejected"], outside=st["outside"],
        )  # fmt: skip
        assert summary["outside_population"]["hours"] == 4
        page = early_warning_report_html([summary])
        assert "Outside the model's training population in 4 of 4 hours scored" in page
        adult = ward.sepsis_stay("bed-2")
        calm = stay_summary(
            adult["patient_id"], adult["hours"], adult["risks"], adult["threshold"],
            adult["values"], adult["rejected"], outside=adult["outside"],
        )  # fmt: skip
        assert "training population" not in early_warning_report_html([calm])
        overview = ward_page_html([], [ward.sepsis_summary(p) for p in ("cot-1", "bed-2")])
        assert overview.count("(outside the training population)") == 1

    def test_a_child_without_an_alarm_is_marked_in_the_quiet_table(self) -> None:
        """A page over many stays shows those without an alarm in one table: a child's
        row there says so too."""
        stays = [
            stay_summary(pid, [1, 2], [0.01, 0.02], 0.5, {}, outside=outside)
            for pid, outside in (("cot-1", [["age 4 y"], ["age 4 y"]]), ("bed-2", [[], []]),
                                 ("bed-3", None))
        ]  # fmt: skip
        page = early_warning_report_html(stays)
        assert page.count("(outside the training population: 2 h)") == 1
