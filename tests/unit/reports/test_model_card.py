"""Model cards: the registry's descriptions carry the evaluation's numbers, correctly
rounded, in a size MLflow's stores accept."""

from __future__ import annotations

import math

import numpy as np

from vitalgru.metrics.aami import aami_report
from vitalgru.metrics.aami_intervals import record_intervals
from vitalgru.reports.model_card import (
    ARRHYTHMIA_MODEL_DESCRIPTION,
    EARLY_WARNING_MODEL_DESCRIPTION,
    MAX_DESCRIPTION_CHARS,
    arrhythmia_version_card,
    challenge_cohort,
    early_warning_version_card,
)


def _rows(card: str) -> dict[str, list[str]]:
    table = [line for line in card.splitlines() if line.startswith("| ")][1:]
    return {r.split("|")[1].strip(): [c.strip() for c in r.split("|")[2:-1]] for r in table}


class TestArrhythmiaCard:
    def test_numbers_come_from_the_report(self) -> None:
        # 10 beats on two records: S has 2 true beats, called S once, and one N is called S,
        # so S Se = +P = 1/2 and F1 = 0.5.
        y = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2, 2])
        p = np.array([0, 0, 0, 0, 0, 1, 1, 0, 2, 2])
        report = aami_report(y, p, np.array(["100"] * 5 + ["201"] * 5))
        card = arrhythmia_version_card(
            report, train_records=["101", "106", "108"], run_id="r123",
            model_facts={"parameters": "1,000", "networks averaged": 12},
        )  # fmt: skip
        rows = _rows(card)
        # each Se and +P with its 95 % Wilson interval (5 of 6 N beats: 43.6 to 97.0 %)
        assert rows["N"] == ["6", "83.3 [43.6, 97.0]", "83.3 [43.6, 97.0]", "83.3"]
        assert rows["S"] == ["2", "50.0 [9.5, 90.5]", "50.0 [9.5, 90.5]", "50.0"]
        assert rows["V"] == ["2", "100.0 [34.2, 100.0]", "100.0 [34.2, 100.0]", "100.0"]
        assert rows["F"][1] == "-"  # no F beat: sensitivity undefined, not 0, no interval
        assert "Wilson 95 % over beats" in card and "come from 2 records:" in card
        assert "2 records and 10 beats" in card and "3 DS1 records" in card
        assert "Accuracy 80.0 %" in card and "networks averaged 12" in card
        assert "`r123`" in card
        assert "record bootstrap" not in card  # a report without intervals: none shown

    def test_f1_carries_the_record_bootstrap_interval_of_the_report(self) -> None:
        # records 100 (S 1 of 2 found, one N called S) and 201 (no S): S F1 is 1/2 with both
        # drawn or 100 alone, undefined with 201 alone, so its interval is [50, 50]
        y = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2, 2])
        p = np.array([0, 0, 0, 0, 0, 1, 1, 0, 2, 2])
        report = aami_report(y, p, np.array(["100"] * 8 + ["201"] * 2))
        report["intervals"] = record_intervals(report["records"])
        card = arrhythmia_version_card(report, train_records=["101"], run_id="r", model_facts={})
        rows = _rows(card)
        assert "| F1 % [95 % CI, records] |" in card
        assert rows["S"][3] == "50.0 [50.0, 50.0]" and rows["F"][3] == "-"
        assert "95 % record bootstrap (2 records resampled with replacement" in card
        report["intervals"] = record_intervals({"100": report["records"]["100"]})
        card = arrhythmia_version_card(report, train_records=["101"], run_id="r", model_facts={})
        assert (
            _rows(card)["S"][3] == "50.0" and "No record-bootstrap interval on F1 (1 record" in card
        )


class TestEarlyWarningCard:
    SUMMARY = {
        "gbm": {"utility_mean": 0.41, "utility_sd": 0.02, "auroc_mean": 0.82},
        "gru_d_gbm_blend": {"utility_mean": 0.4316, "utility_sd": 0.0214, "auroc_mean": 0.8295,
                            "auprc_mean": 0.1154, "alarms_per_patient_day_mean": 0.5336,
                            "septic_detected_fraction_mean": 0.8656},
        "qsofa": {"utility_mean": 0.018, "utility_sd": 0.009, "auroc_mean": math.nan},
    }  # fmt: skip

    def test_the_registered_model_leads_and_missing_values_show_as_such(self) -> None:
        card = early_warning_version_card(
            self.SUMMARY, registered_kind="gru_d_gbm_blend", n_patients=17652, n_folds=5,
            threshold=0.08454, run_id="r9",
        )  # fmt: skip
        rows = _rows(card)
        names = list(rows)
        assert names == ["**GRU-D + trees blend (this model)**", "gradient-boosted trees",
                         "qSOFA (bedside score)"]  # fmt: skip
        assert rows[names[0]] == ["0.432 ± 0.021", "0.830", "0.115", "0.53", "86.6"]
        assert rows["qSOFA (bedside score)"][1] == "-"  # NaN AUROC
        assert rows["gradient-boosted trees"][2] == "-"  # not in the summary
        assert "5-fold" in card and "17,652 patients" in card and "0.0845" in card

    def test_the_pooled_held_out_utility_comes_with_its_interval(self) -> None:
        pooled = {"n_resamples": 5000, "utility": {"estimate": 0.4342, "low": 0.4139,
                                                   "high": 0.4551, "n_defined": 5000}}  # fmt: skip
        card = " ".join(early_warning_version_card(
            self.SUMMARY, registered_kind="gru_d_gbm_blend", n_patients=17652, n_folds=5,
            threshold=0.08454, run_id="r9", pooled=pooled,
        ).split())  # fmt: skip
        assert "The ± is the spread between folds." in card
        assert "this model's utility is 0.434, 95 % interval 0.414-0.455 by resampling whole " \
               "patients (5000 resamples;" in card  # fmt: skip
        # none given, or none defined: no sentence
        for none in (None, {"n_resamples": 5000, "utility": {"estimate": None, "low": None}}):
            card = early_warning_version_card(
                self.SUMMARY, registered_kind="gbm", n_patients=10, n_folds=2, threshold=0.5,
                run_id="r", pooled=none,
            )  # fmt: skip
            assert "Pooled over" not in card

    def test_a_version_that_raises_no_alarm_says_so(self) -> None:
        # the threshold is inf where never alarming scored best on the validation share:
        # the card said "its alarm threshold, inf, was chosen on a validation share"
        card = early_warning_version_card(
            self.SUMMARY, registered_kind="gbm", n_patients=160, n_folds=2,
            threshold=math.inf, run_id="r",
        )  # fmt: skip
        assert "threshold, inf" not in card and "**It raises no alarm**" in card

    def test_the_card_names_the_hospital_system_it_was_trained_on(self) -> None:
        # every card said "patients of hospital system A", also for a training on set B
        src = "/mirror/challenge-2019/training_setB"
        card = early_warning_version_card(
            self.SUMMARY, registered_kind="gbm", n_patients=160, n_folds=2, threshold=0.5,
            run_id="r", cohort=challenge_cohort(src),
        )  # fmt: skip
        assert "on 160 patients of hospital system B." in card and "system A" not in card
        assert challenge_cohort("challenge-2019/training_setA/") == "hospital system A"
        assert challenge_cohort("/data/ward4") == "the folder `ward4`"
        assert "set A by default" in EARLY_WARNING_MODEL_DESCRIPTION

    def test_any_registered_kind_is_marked(self) -> None:
        card = early_warning_version_card(
            self.SUMMARY, registered_kind="gbm", n_patients=10, n_folds=2, threshold=0.5,
            run_id="r",
        )  # fmt: skip
        assert next(iter(_rows(card))) == "**gradient-boosted trees (this model)**"


def test_every_text_fits_the_registry() -> None:
    # The largest cards the flows write: five classes with 44,259-beat counts, five models.
    classes = {c: {"n": 44259, "se": 0.123, "ppv": 0.456, "f1": 0.789} for c in "NSVFQ"}
    report = {"n_beats": 49712, "accuracy": 0.935, "classes": classes,
              "records": {str(i): {} for i in range(22)},
              "ec57": {"veb": {"f1": 0.9}, "sveb": {"f1": 0.6}}}  # fmt: skip
    facts = {"parameters": "1,000,000", "AF rhythm gate": '{"entropy": 0.85, "nrmssd": 0.15}'}
    arr = arrhythmia_version_card(
        report, train_records=["x"] * 22, run_id="0" * 32, model_facts=facts
    )
    kinds = ["gru_d_gbm_blend", "gru_d", "gbm", "news2", "qsofa"]
    stats = {"utility_mean": -0.123, "utility_sd": 0.1, "auroc_mean": 0.5}
    ew = early_warning_version_card(
        {k: stats for k in kinds}, registered_kind="gru_d", n_patients=10**6, n_folds=10,
        threshold=0.1, run_id="0" * 32,
    )  # fmt: skip
    for text in (arr, ew, ARRHYTHMIA_MODEL_DESCRIPTION, EARLY_WARNING_MODEL_DESCRIPTION):
        assert 200 < len(text) <= MAX_DESCRIPTION_CHARS
