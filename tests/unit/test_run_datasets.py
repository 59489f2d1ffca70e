"""Training and evaluation data as MLflow datasets (vitalgru.tracking.datasets and the
flows' pipelines.run_datasets), against a real embedded store, and the logged model's
figures naming the dataset they were measured on."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from pipelines.run_datasets import (
    log_arrhythmia_datasets,
    log_early_warning_datasets,
    records_digest,
)
from vitalgru import tracking
from vitalgru.models.arrhythmia import ArrhythmiaGRU
from vitalgru.tracking import log_dataset, log_model, start_run, tracking_uri


def _client() -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri(), registry_uri=tracking_uri())


def _inputs(run_id: str) -> dict[str, Any]:
    """The run's datasets by context: name, digest, source, rows, columns, tags."""
    out = {}
    for d in _client().get_run(run_id).inputs.dataset_inputs:
        tags = {t.key: t.value for t in d.tags}
        out[tags.pop("mlflow.data.context")] = {
            "name": d.dataset.name,
            "digest": d.dataset.digest,
            "source": json.loads(d.dataset.source)["uri"],
            "rows": json.loads(d.dataset.profile)["num_rows"],
            "columns": [c["name"] for c in json.loads(d.dataset.schema)["mlflow_colspec"]],
            "tags": tags,
        }
    return out


def _beats(records: dict[str, int]) -> pd.DataFrame:
    rows = [(r, i % 3) for r, n in records.items() for i in range(n)]
    return pd.DataFrame(
        {
            "record_id": [r for r, _ in rows],
            "sample_idx": np.arange(len(rows), dtype=np.int64),
            "aami": ["NSV"[k] for _, k in rows],
            "label": np.array([k for _, k in rows], dtype=np.int8),
        }
    )


MANIFEST = {
    "database": "mitdb",
    "config_hash": "c0ffee",
    "processing_digest": "beef",
    "source_checksums": {
        "101.atr": "a1", "101.dat": "d1", "101.hea": "h1",
        "1010.atr": "x", "233.atr": "a2", "233.dat": "d2", "233.hea": "h2",
    },
}  # fmt: skip


class TestLogDataset:
    def test_datasets_are_run_inputs_with_context_digest_rows_and_tags(self, store: Path) -> None:
        # runs had no inputs: MLflow's "Datasets used" was empty, the data named only in
        # the run's dataset/manifest.json artifact
        beats = _beats({"101": 5, "233": 4})
        with start_run("exp") as run:
            got = log_dataset(
                run, beats[beats.record_id == "101"], name="mitdb DS1", digest="abc",
                source=store / "data", context="training", targets="aami",
                tags={"records": "101", "beats": 5},
            )  # fmt: skip
            log_dataset(run, beats[beats.record_id == "233"], name="mitdb DS2", digest="def",
                        source=store / "data", context="evaluation")  # fmt: skip
        assert got == tracking.LoggedDataset("mitdb DS1", "abc", "training")
        shown = _inputs(run.run_id)
        assert shown["training"] == {
            "name": "mitdb DS1", "digest": "abc", "source": (store / "data").as_posix(),
            "rows": 5, "columns": ["record_id", "sample_idx", "aami", "label"],
            "tags": {"records": "101", "beats": "5"},
        }  # fmt: skip
        assert (shown["evaluation"]["name"], shown["evaluation"]["rows"]) == ("mitdb DS2", 4)

    @pytest.mark.parametrize(
        ("kw", "match"),
        [
            ({"digest": "x" * 37}, "1 to 36 characters"),
            ({"digest": ""}, "1 to 36 characters"),
            ({"name": " "}, "dataset name"),
            ({"context": "testing"}, "context must be one of"),
            ({"targets": "sepsis_label"}, "not a column"),
        ],
    )
    def test_what_mlflow_would_refuse_is_refused_with_a_message(
        self, store: Path, kw: dict[str, Any], match: str
    ) -> None:
        args = {"name": "n", "digest": "d", "source": store, "context": "training", **kw}
        with start_run("exp") as run, pytest.raises(ValueError, match=match):
            log_dataset(run, _beats({"101": 2}), **args)

    def test_the_models_figures_name_the_dataset_they_were_measured_on(self, store: Path) -> None:
        # the logged model's page showed every figure without the data it was measured on
        model = ArrhythmiaGRU(conv_widths=[4], d_beat=8, hidden=8)
        with start_run("exp") as run:
            data = log_dataset(run, _beats({"233": 3}), name="mitdb DS2", digest="def",
                               source=store, context="evaluation")  # fmt: skip
            run.log_metrics({"train_seconds": 2.0})
            ref = log_model(run, model, preprocessing={}, config={})
            run.log_metrics({"test_v_f1": 0.75}, model_id=ref.model_id, dataset=data)
        shown = {m.key: (m.value, m.dataset_name, m.dataset_digest)
                 for m in _client().get_logged_model(ref.model_id).metrics}  # fmt: skip
        assert shown["test_v_f1"] == (0.75, "mitdb DS2", "def")
        assert shown["train_seconds"] == (2.0, None, None)  # copied by MLflow as it was
        assert _client().get_run(run.run_id).data.metrics["test_v_f1"] == 0.75
        found = mlflow.search_logged_models(
            experiment_ids=[run.experiment_id], filter_string="metrics.test_v_f1 > 0.5",
            output_format="list",
        )  # fmt: skip
        assert [m.model_id for m in found] == [ref.model_id]


class TestRecordsDigest:
    def test_the_records_source_files_and_processing_decide_it(self) -> None:
        d = records_digest(MANIFEST, ["233", "101"])
        assert len(d) == 32 and d == records_digest(MANIFEST, ["101", "233"])
        assert d != records_digest(MANIFEST, ["101"])
        # record 1010's file is not record 101's
        assert records_digest(MANIFEST, ["101"]) == records_digest(
            {**MANIFEST, "source_checksums": {
                k: v for k, v in MANIFEST["source_checksums"].items() if k != "1010.atr"}},
            ["101"],
        )  # fmt: skip
        changed = {**MANIFEST["source_checksums"], "101.atr": "revised"}
        assert d != records_digest({**MANIFEST, "source_checksums": changed}, ["101", "233"])
        assert d != records_digest({**MANIFEST, "processing_digest": "other"}, ["101", "233"])
        assert d != records_digest({**MANIFEST, "config_hash": "other"}, ["101", "233"])
        # a record without checksums is still named, and told apart from none
        assert records_digest(MANIFEST, ["101", "999"]) != records_digest(MANIFEST, ["101"])


class TestFlowDatasets:
    def test_arrhythmia_training_and_evaluation_records(self, store: Path) -> None:
        ds = SimpleNamespace(manifest=MANIFEST, beats=_beats({"101": 5, "106": 2, "233": 4}),
                             path=store / "mitdb")  # fmt: skip
        with start_run("exp") as run:
            train, test = log_arrhythmia_datasets(
                run, ds, fit_records=["101"], val_records=["106"], eval_records=["233"]
            )
        assert test == tracking.LoggedDataset(
            "mitdb DS2", records_digest(MANIFEST, ["233"]), "evaluation"
        )
        shown = _inputs(run.run_id)
        # the validation records chose the epochs and the gates: training data too
        assert shown["training"]["digest"] == records_digest(MANIFEST, ["101", "106"])
        assert shown["training"]["rows"] == 7 and shown["evaluation"]["rows"] == 4
        assert shown["training"]["tags"]["records"] == "101,106"
        assert shown["training"]["tags"]["fit_records"] == "101"
        assert shown["training"]["tags"]["validation_records"] == "106"
        assert shown["evaluation"]["tags"]["records"] == "233"
        assert train.name == "mitdb DS1"

    def test_early_warning_cohort_and_its_cross_validation(self, store: Path) -> None:
        folder = store / "dataset"
        folder.mkdir()
        hours = pd.DataFrame({"patient_id": ["p1", "p1", "p2"], "hour": [0, 1, 0],
                              "hr_bpm": [80.0, 90.0, np.nan], "sepsis_label": [0, 1, 0]})  # fmt: skip
        hours.to_parquet(folder / "hourly.parquet", index=False)
        manifest = {"dataset": "challenge-2019", "source": "/mirror/challenge-2019/training_setA",
                    "n_patients": 2, "n_septic_patients": 1, "n_patient_hours": 3,
                    "source_files": 2, "n_folds": 2, "source_digest": "ab" * 32,
                    "cohort_digest": "0123456789abcdef"}  # fmt: skip
        with start_run("exp") as run:
            train, cv = log_early_warning_datasets(run, folder, manifest, seed=7)
        assert train == tracking.LoggedDataset(
            "challenge-2019 training_setA", "ab" * 16, "training"
        )
        assert cv == tracking.LoggedDataset(
            "challenge-2019 training_setA 2-fold CV", "0123456789abcdef", "evaluation"
        )
        shown = _inputs(run.run_id)
        assert shown["training"]["rows"] == 3 and shown["training"]["tags"]["patients"] == "2"
        assert shown["evaluation"]["tags"]["seed"] == "7"
        assert "sepsis_label" in shown["evaluation"]["columns"]


class TestModelsShow:
    def test_a_version_from_its_run_data_code_figures_and_gate(
        self, store: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        # `vitalgru models list` gave aliases and gate values; the run, the commit, the data
        # and what the gate judged on took four MLflow pages and the code to find
        from pipelines.cli import main

        name = "vitalgru-arrhythmia-review"
        model = ArrhythmiaGRU(conv_widths=[4], d_beat=8, hidden=8)
        ds = SimpleNamespace(manifest=MANIFEST, beats=_beats({"101": 5, "233": 4}),
                             path=store / "mitdb")  # fmt: skip
        with start_run("exp") as run:
            _, test = log_arrhythmia_datasets(
                run, ds, fit_records=["101"], val_records=[], eval_records=["233"]
            )
            run.log_params({"seed": 1})
            run.log_text("seed: 1\n", "config.yaml")
            ref = log_model(run, model, preprocessing={}, config={}, registered_name=name,
                            description="**DS2** card")  # fmt: skip
            run.log_metrics({"test_v_f1": 0.5}, model_id=ref.model_id, dataset=test)
        tracking.promote_if_better(name, "1", {"test_v_f1": 0.5}, ["test_v_f1"],
                                   evaluated_on="mitdb DS2: 1 records")  # fmt: skip
        with start_run("exp") as old:  # a version trained before datasets were logged
            log_model(old, model, preprocessing={}, config={}, registered_name=name)

        got = tracking.version_provenance(name, "1")
        assert got["run"]["id"] == run.run_id and got["model_id"] == ref.model_id
        assert got["run"]["git_commit"] == _client().get_run(run.run_id).data.tags.get(
            "mlflow.source.git.commit")  # fmt: skip
        assert got["run"]["artifacts"] == ["config.yaml"]
        assert [(d["context"], d["name"], d["digest"]) for d in got["datasets"]] == [
            ("training", "mitdb DS1", records_digest(MANIFEST, ["101"])),
            ("evaluation", "mitdb DS2", test.digest),
        ]
        assert got["figures"] == {
            "test_v_f1": {"value": 0.5, "dataset": "mitdb DS2", "digest": test.digest}
        }
        assert got["gate"] == {"test_v_f1": 0.5} and got["aliases"] == ["champion"]
        assert got["gate_evaluated_on"] == "mitdb DS2: 1 records"
        assert got["description"] == "**DS2** card"

        capsys.readouterr()
        assert main(["models", "show", name, "1"]) == 0
        text = capsys.readouterr().out
        assert text.startswith(f"{name} version 1 (champion), registered ")
        assert f"  run        {run.run_id} (FINISHED; experiment exp;" in text
        assert f"  evaluation mitdb DS2: digest {test.digest}, 4 rows, records 233" in text
        assert f"  figures    on mitdb DS2 ({test.digest}): test_v_f1 0.5" in text
        assert "  gate       test_v_f1 0.5; judged on mitdb DS2: 1 records" in text
        assert "  decision   first champion" in text and text.endswith("  **DS2** card\n")
        assert main(["models", "show", name, "2", "--json"]) == 0
        second = json.loads(capsys.readouterr().out)
        assert second["datasets"] == [] and second["figures"] == {}
        assert main(["models", "show", name, "2"]) == 0
        assert "  data       no datasets logged with the run" in capsys.readouterr().out
        with pytest.raises(SystemExit, match="has no version 9"):
            main(["models", "show", name, "9"])
