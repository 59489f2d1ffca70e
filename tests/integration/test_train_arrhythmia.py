"""The ``train-arrhythmia`` flow end to end on four real MIT-BIH records (tiny model):
ingest -> train -> evaluate -> register -> promote, then ``evaluate_arrhythmia`` with
the registered champion on a record of the database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.arrhythmia import evaluate_arrhythmia, train_arrhythmia_flow


@pytest.fixture()
def isolated_mlflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)  # artifacts (./mlartifacts) stay in the test folder
    return tmp_path


class TestTrainArrhythmiaFlow:
    def test_flow_registers_promotes_and_evaluates(
        self, isolated_mlflow: Path, physionet_mirror: Path
    ) -> None:
        out_dir = isolated_mlflow / "datasets" / "mitdb"
        overrides = {
            "ingest.physionet.mirror": str(physionet_mirror),
            "ingest.arrhythmia.records": ["106", "119", "223", "233"],
            "ingest.out_dir": str(out_dir),
            "val_records": ["223"],
            "conv_widths": [8, 16],
            "d_beat": 16,
            "hidden": 16,
            "seq_len": 128,
            "batch_size": 8,
            "sequences_per_epoch": 16,
            "max_epochs": 2,
            "min_epochs": 1,
            "num_threads": 1,
        }
        res = train_arrhythmia_flow(overrides=overrides)
        assert res["version"] == "1" and res["promoted"] is True
        assert res["model_uri"] == "models:/vitalgru-arrhythmia/1"
        m = res["metrics"]
        for key in ("test_v_f1", "test_s_f1", "test_accuracy", "val_v_f1"):
            assert key in m
        assert 0.0 <= m["test_accuracy"] <= 1.0
        report = json.loads(Path(res["report_paths"]["json"]).read_text())
        # DS2 here is record 233 alone: 2230 N, 7 S, 831 V, 11 F (MIT-BIH reference labels)
        assert [report["classes"][c]["n"] for c in "NSVFQ"] == [2230, 7, 831, 11, 0]
        assert Path(res["report_paths"]["markdown"]).read_text().startswith("## ")

        ev = evaluate_arrhythmia(
            "models:/vitalgru-arrhythmia@champion",
            str(physionet_mirror / "mitdb"),
            "233",
            str(isolated_mlflow / "eval"),
        )
        assert ev["model_version"] == "1"
        assert set(ev["classes"]) == {"N", "S", "V", "F", "Q"}
        assert set(ev["classes"]["V"]) == {"n", "se", "ppv", "f1", "spec"}
        assert list(ev["records"]) == ["233"]
        # the same model on the same record through the database path gives the same
        # beats and the same predictions as the flow's DS2 evaluation
        assert ev["confusion_matrix"] == report["confusion_matrix"]
        assert (isolated_mlflow / "eval" / "evaluation.md").exists()
