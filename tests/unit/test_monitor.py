"""The monitor's verdict, report and MLflow numbers from hand-made check results."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipelines.monitor import monitoring_metrics
from pipelines.monitor_verdict import polarity_note, verdict
from vitalgru.data.drift import arrhythmia_drift, arrhythmia_reference, beat_inputs
from vitalgru.reports.model_monitoring import monitoring_markdown


def _beats(rng: np.random.Generator, n: int, per_record: int, gain=1.0, rr_s=0.8) -> dict:
    """Beat inputs of synthetic records of ``per_record`` beats."""
    t = np.linspace(-1, 1, 64)
    windows = gain * rng.normal(1.2, 0.15, n)[:, None] * np.exp(-((t / 0.1) ** 2))[None, :]
    idx = np.cumsum(rng.normal(rr_s, 0.03, n) * 360).astype(np.int64)
    return beat_inputs(windows, idx, (np.arange(n) // per_record).astype(str), 360.0,
                       np.ones(n, bool))  # fmt: skip


def _row(column: str, level: str, psi: float | None) -> dict:
    return {
        "column": column,
        "level": level,
        "psi": psi,
        "psi_values": psi,
        "measured_ratio": 1.0,
        "measured_ref": 0.5,
        "measured_now": 0.5,
        "refused_ref": 0.0,
        "refused_now": 0.0,
        "median_ref": 37.0,
        "median_now": 37.1,
    }


def _drift(major=(), moderate=()) -> dict:
    rows = [_row(c, "major", 1.0) for c in major] + [_row(c, "moderate", 0.15) for c in moderate]
    rows.append(_row("hr_bpm", "stable", 0.01))
    risk = {
        **_row("risk", "stable", 0.02),
        "alarm_hour_fraction_ref": 0.2,
        "alarm_hour_fraction_now": 0.21,
        "alarms_per_patient_day_ref": 0.5,
        "alarms_per_patient_day_now": 0.55,
    }
    return {"inputs": rows, "risk": risk, "major": list(major), "moderate": list(moderate)}


def _perf(drop: float) -> dict:
    m = {"reference": 0.43, "now": 0.43 - drop, "drop": drop, "max_drop": 0.05}
    return {"checked": True, "measures": {"utility": {**m, "degraded": drop > 0.05}}}


class TestStatus:
    def test_levels(self) -> None:
        assert verdict(_drift(), _perf(0.01)) == ("ok", [])
        status, why = verdict(_drift(moderate=["lactate_mmol_l"]), _perf(0.0))
        assert status == "watch" and why == ["moderate drift: lactate_mmol_l"]
        status, why = verdict(_drift(["temp_c"], ["lactate_mmol_l"]), {"checked": False})
        assert status == "drift" and why[0] == "major drift: temp_c"

    def test_performance_outranks_drift(self) -> None:
        status, why = verdict(_drift(["temp_c"]), _perf(0.08))
        assert status == "degraded"
        assert why[0] == "utility 0.350 is 0.080 below the gated 0.430 (tolerated drop 0.05)"

    def test_a_drop_is_read_against_the_interval_of_the_patients_checked(self) -> None:
        perf = _perf(0.08)
        row = perf["measures"]["utility"]
        status, why = verdict(None, {**perf, "measures": {"utility": {
            **row, "now_interval": [0.21, 0.47]}}})  # fmt: skip
        assert status == "degraded"
        assert why == ["utility 0.350 is 0.080 below the gated 0.430 (tolerated drop 0.05); "
                       "its 95 % interval on these patients is 0.210-0.470, which holds the "
                       "gated value: a drop this size may be chance"]  # fmt: skip
        _, why = verdict(None, {**perf, "measures": {"utility": {
            **row, "now_interval": [0.30, 0.41]}}})  # fmt: skip
        assert why[0].endswith("is 0.300-0.410, all of it below the gated value")

    def test_the_gate_comparison_keeps_each_measures_interval(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from pipelines.monitor_verdict import performance_against_gate
        from vitalgru.tracking.models import LoadedModel

        monkeypatch.setattr("vitalgru.tracking.version_gate_values",
                            lambda name, version, keys: {"utility": 0.43, "auroc": 0.83})  # fmt: skip
        loaded = LoadedModel(None, {}, {}, "models:/m/2", "2", name="m")
        perf = performance_against_gate(
            loaded,
            {"utility": 0.35, "auroc": None},
            {"utility": 0.05, "auroc": 0.05},
            None,
            {"utility": [0.21, 0.47], "auroc": [0.7, 0.9]},
        )
        assert perf["measures"]["utility"]["now_interval"] == [0.21, 0.47]
        assert perf["measures"]["auroc"]["now_interval"] is None  # no value now, no interval

    def test_no_reference_and_no_labels_is_ok_with_nothing_to_say(self) -> None:
        assert verdict(None, {"checked": False}) == ("ok", [])

    def test_drift_that_could_not_be_judged_is_said_not_read_as_none(self) -> None:
        # five records, 450 beats at 2.5 times the gain and twice the heart rate, every
        # call V: too few beats for any PSI, every level unknown, and the verdict read
        # "ok, nothing outside the limits"
        rng = np.random.default_rng(0)
        ref = arrhythmia_reference(_beats(rng, 5000, 2300), np.zeros(5000), 3)
        d = arrhythmia_drift(ref, _beats(rng, 450, 90, gain=2.5, rr_s=0.4), np.full(450, 2), 5)
        assert {r["level"] for r in [*d["inputs"], d["predicted"]]} == {"unknown"}
        status, why = verdict(d, {"checked": False})
        assert status == "ok" and len(why) == 1
        assert why[0].startswith("drift not judged: too few values on every input and output")
        md = monitoring_markdown({**_report(d, {"checked": False, "why": "x"}),
                                  "task": "arrhythmia"})  # fmt: skip
        assert "- drift not judged: too few values" in md
        assert "nothing outside the limits" not in md
        # said with the drift result's own reason where it has one (too few patients)
        few = {**_drift(), "unjudged_why": "only 30 patients (fewer than 100): ..."}
        for r in [*few["inputs"], few["risk"]]:
            r["level"] = "unknown"
        status, why = verdict(few, _perf(0.08))
        assert status == "degraded"
        assert why[1] == "drift not judged: only 30 patients (fewer than 100): ..."
        # one row judged and stable: drift was judged, nothing to say
        few["inputs"][0]["level"] = "stable"
        assert verdict(few, _perf(0.0)) == ("ok", [])


def _report(drift: dict | None, perf: dict) -> dict:
    status, reasons = verdict(drift, perf)
    return {
        "task": "early-warning",
        "status": status,
        "reasons": reasons,
        "notes": ["only 30 patients"],
        "data_summary": "`/data/ward`, 30 patients",
        "model_uri": "models:/vitalgru-early-warning@champion",
        "model_version": "3",
        "data": "/data/ward",
        "n_patients": 30,
        "checked_at": "2026-12-05T06:00:00+00:00",
        "performance": perf,
        "drift": drift,
        "drift_why": "no reference",
        "evaluation": {"utility": 0.41, "auroc": 0.8, "auprc": None, "alarms_per_patient_day": 0.6},
    }


class TestReport:
    def test_markdown_names_status_reasons_and_shifted_inputs(self) -> None:
        md = monitoring_markdown(_report(_drift(["temp_c"]), _perf(0.0)))
        assert "**Status: drift**" in md and "- major drift: temp_c" in md
        assert "- note: only 30 patients" in md
        assert "| temp_c | major | 1.000 | 1.000 | 50.0 / 50.0 % |" in md
        assert "| hr_bpm |" not in md and "1 more inputs, none shifted" in md
        assert "| utility | 0.430 | 0.430 | - | 0.000 | 0.05 |" in md
        perf = _perf(0.0)
        perf["measures"]["utility"]["now_interval"] = [0.39, 0.47]
        md = monitoring_markdown(_report(_drift(), perf))
        assert "| measure | gated | now | now, 95 % interval | drop | tolerated |" in md
        assert "| utility | 0.430 | 0.430 | 0.390-0.470 | 0.000 | 0.05 |" in md

    def test_a_model_without_a_version_is_named_by_its_uri_alone(self) -> None:
        # a runs:/ or folder URI has no registry version: "(version None)" was printed
        report = {**_report(None, _perf(0.0)), "model_uri": "runs:/abc/model"}
        assert "# Monitoring: runs:/abc/model (version 3)" in monitoring_markdown(report)
        md = monitoring_markdown({**report, "model_version": None})
        assert "# Monitoring: runs:/abc/model\n" in md and "None" not in md.split("\n")[0]
        from vitalgru.tracking import LoadedModel

        assert LoadedModel(None, {}, {}, "runs:/abc/model", None).described() == "runs:/abc/model"
        named = LoadedModel(None, {}, {}, "models:/m/3", "3")
        assert named.described("models:/m@champion") == "models:/m@champion (version 3)"

    def test_markdown_without_reference_or_labels(self) -> None:
        md = monitoring_markdown(_report(None, {"checked": False, "why": "no septic patient"}))
        assert "Not checked: no septic patient." in md and "Not checked: no reference." in md

    def test_metrics_are_finite_numbers(self) -> None:
        m = monitoring_metrics(_report(_drift(["temp_c"], ["lactate_mmol_l"]), _perf(0.0)))
        assert m["n_inputs_major_drift"] == 1 and m["n_inputs_moderate_drift"] == 1
        assert m["max_input_psi"] == 1.0 and m["risk_psi"] == 0.02
        assert m["status_level"] == 2 and "auprc" not in m  # undefined: left out
        assert all(math.isfinite(v) for v in m.values())


def test_records_with_an_upside_down_lead_are_named_in_a_note() -> None:
    upright = {"qrs_polarity": 0.8, "polarity_warning": None}
    down = {"qrs_polarity": -0.8, "polarity_warning": "the QRS of lead MLII points down"}
    assert polarity_note({"100": upright, "101": upright}) is None
    assert polarity_note({"100": {}}) is None  # facts from before the polarity was measured
    note = polarity_note({"100": upright, "207": down, "105": down})
    assert note is not None and note.startswith("2 of 3 records have a QRS pointing against")
    assert "(105, 207)" in note and "swapped electrodes" in note
    many = polarity_note({str(i): down for i in range(12)})
    assert many is not None and "12 of 12" in many and ", ...)" in many


def test_a_class_no_beat_of_is_annotated_is_not_judged(
    tmp_path,
    monkeypatch,
) -> None:
    import numpy as np

    import pipelines.monitor_checks as mon
    from vitalgru.tracking.models import LoadedModel
    from vitalgru.training.arrhythmia_eval import DatabaseScores

    y_true = np.r_[np.zeros(2000), np.full(300, 2)].astype(np.int64)  # N and V, no S
    y_pred = y_true.copy()
    y_pred[[10, 500, 1500]] = 1  # three N beats called S
    scores = DatabaseScores(
        record_ids=np.repeat(["105", "119"], 1150), y_true=y_true, y_pred=y_pred,
        probs=np.zeros((y_true.size, 5), np.float32), facts={"105": {}, "119": {}},
        samples=np.arange(y_true.size),
    )  # fmt: skip
    monkeypatch.setattr(mon, "score_records",
                        lambda loaded, db, records, out, *a: ({**scores.report(),
                                                               "paths": {"json": out}}, scores))  # fmt: skip
    monkeypatch.setattr(mon.tracking, "load_model", lambda uri, kinds: LoadedModel(
        module=None, preprocessing={}, config={}, uri=uri, version="3",
        name="vitalgru-arrhythmia"))  # fmt: skip
    monkeypatch.setattr(mon.tracking, "version_gate_values",
                        lambda name, version, keys: {"test_s_f1": 0.665, "test_v_f1": 0.933})  # fmt: skip
    rep = mon.check_arrhythmia("models:/vitalgru-arrhythmia@champion", db="mitdb",
                               records="105,119", out=str(tmp_path))  # fmt: skip
    # S F1 was 0 with no S beat to find, and the version "degraded" against its DS2 0.665
    assert rep["status"] == "ok" and rep["reasons"] == []
    assert rep["performance"]["measures"]["test_s_f1"]["now"] is None
    assert rep["performance"]["measures"]["test_v_f1"]["now"] == 1.0
    # with its interval over these records (V beats in one of the two: every resample
    # that has them finds them all); none for a measure not judged
    assert rep["performance"]["measures"]["test_v_f1"]["now_interval"] == [1.0, 1.0]
    assert rep["performance"]["measures"]["test_s_f1"]["now_interval"] is None


def test_records_left_out_are_ds2_on_mitdb_and_every_record_of_another_database(
    tmp_path,
    monkeypatch,
) -> None:
    import inspect
    from pathlib import Path

    import pytest
    import yaml

    import pipelines.monitor_checks as mon
    from pipelines.monitor import monitor_arrhythmia_flow
    from pipelines.monitor_checks import default_records

    # as `vitalgru evaluate` scores a folder: every record (parse_records' None); DS2 on
    # MIT-BIH alone, the records the version was gated on (a hospital's folder was
    # refused: it has no record "DS2", and the weekly check failed on it)
    assert default_records("mitdb", None) == "DS2"
    assert default_records("mitdb/1.0.0", None) == "DS2"
    assert default_records(str(tmp_path / "physionet" / "mitdb"), None) == "DS2"
    assert default_records(str(tmp_path / "ward4rec"), None) is None
    assert default_records("incartdb", None) is None
    assert default_records(str(tmp_path / "ward4rec"), "bed1") == "bed1"
    assert default_records("mitdb", "all") == "all"
    assert inspect.signature(monitor_arrhythmia_flow.fn).parameters["records"].default is None

    asked: list[tuple[str, str | None]] = []

    def score_records(loaded, db, records, out, *a):
        asked.append((db, records))
        raise RuntimeError("scored")  # what it was asked is all this test needs

    monkeypatch.setattr(mon, "score_records", score_records)
    monkeypatch.setattr(mon.tracking, "load_model", lambda uri, kinds: None)
    for db in ("mitdb", str(tmp_path / "ward4rec")):
        with pytest.raises(RuntimeError, match="scored"):
            mon.check_arrhythmia(db=db, out=str(tmp_path / "out"), annotations=None)
    assert asked == [("mitdb", "DS2"), (str(tmp_path / "ward4rec"), None)]

    # the weekly deployment leaves records to that default: DS2 on its MIT-BIH, every
    # record once `db` is pointed at the hospital's folder
    root = Path(__file__).resolve().parents[2]
    spec = yaml.safe_load((root / "prefect.yaml").read_text())
    dep = next(d for d in spec["deployments"] if d["name"] == "monitor-arrhythmia-weekly")
    assert dep["parameters"]["db"] == "mitdb" and "records" not in dep["parameters"]
