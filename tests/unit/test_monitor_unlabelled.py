"""The daily early-warning check (``monitor-early-warning``'s task) on a folder of stays
without ``SepsisLabel``: drift of the inputs and the risks is checked, the performance is
marked "not judged: unlabelled", and the check's numbers are what the flow logs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import pipelines.monitor_checks as checks_mod
from pipelines.monitor import monitoring_metrics
from pipelines.monitor_checks import UNLABELLED_PERFORMANCE, check_early_warning
from vitalgru.io.psv_folder import list_psv
from vitalgru.tracking import LoadedModel


@pytest.fixture
def check(sepsis_fit: tuple[Any, dict, list[dict]], monkeypatch: pytest.MonkeyPatch) -> Any:
    """``check_early_warning`` with the small fitted model (its reference profile with it)
    for the registry's."""
    model, preprocessing, _ = sepsis_fit
    assert preprocessing.get("reference") is not None
    monkeypatch.setattr(checks_mod.tracking, "load_model",
                        lambda uri, kinds=(): LoadedModel(model, preprocessing, {}, uri, "3"))  # fmt: skip
    return lambda data, out: check_early_warning(data=str(data), out=str(out))


def test_an_unlabelled_folder_is_checked_for_drift_and_its_performance_not_judged(
    check: Any, physionet_mirror: Path, tmp_path: Path
) -> None:
    # the check read no patient (every file "lacks column(s) ['SepsisLabel']") and failed
    labelled, unlabelled = tmp_path / "labelled", tmp_path / "unlabelled"
    labelled.mkdir()
    unlabelled.mkdir()
    for src in list_psv(physionet_mirror / "challenge-2019" / "training_setA")[100:130]:
        (labelled / src.name).write_bytes(src.read_bytes())
        rows = [line.rsplit("|", 1)[0] for line in src.read_text().splitlines()]
        (unlabelled / src.name).write_text("\n".join(rows) + "\n")
    ref = check(labelled, tmp_path / "mon-labelled")
    report = check(unlabelled, tmp_path / "mon")
    perf = report["performance"]
    assert perf == {"checked": False, "why": UNLABELLED_PERFORMANCE,
                    "now": {"utility": None, "auroc": None}}  # fmt: skip
    assert perf["why"].startswith("not judged: unlabelled")
    assert "performance not judged: the stays are unlabelled; drift is checked" in report["notes"]
    # the drift of the inputs and of the risks is that of the same stays with labels
    assert report["drift"] is not None and report["drift"] == ref["drift"]
    assert report["drift"]["risk"]["alarm_hour_fraction_now"] is not None
    assert (report["status"], report["reasons"]) == (ref["status"], ref["reasons"])
    assert report["evaluation"]["labelled"] is False and report["evaluation"]["utility"] is None
    assert report["data_summary"].endswith("30 patients (unlabelled)")
    md = (tmp_path / "mon" / "monitoring.md").read_text()
    assert "Not judged: unlabelled (no file has a SepsisLabel column" in md
    assert "## Drift (population stability index" in md and "Not checked" not in md
    # what the flow logs to MLflow: the drift and burden, no accuracy figure
    logged = monitoring_metrics(report)
    assert "risk_psi" in logged and "alarms_per_patient_day" in logged
    assert logged["n_patients"] == 30
    assert not {"utility", "auroc", "auprc", "n_septic_patients"} & set(logged)
    ref_logged = monitoring_metrics(ref)
    shared = set(logged) & set(ref_logged)
    assert {"risk_psi", "max_input_psi", "alarm_hour_fraction", "status_level"} <= shared
    assert {k: logged[k] for k in shared} == {k: ref_logged[k] for k in shared}
