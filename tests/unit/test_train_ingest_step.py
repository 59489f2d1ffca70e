"""The training flows' ingest step: a dataset is reused only when this config and this
processing code made it, from this source as it is now."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

import pipelines.arrhythmia as arr
from pipelines.ingest import fetch_database
from vitalgru.config import ArrhythmiaTrainConfig, config_hash
from vitalgru.data.dataset_files import processing_digest


def test_a_dataset_made_by_other_processing_code_is_remade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, physionet_mirror: Path
) -> None:
    ds = tmp_path / "datasets" / "mitdb"
    ds.mkdir(parents=True)
    cfg = ArrhythmiaTrainConfig.model_validate(
        {"ingest": {"out_dir": str(ds), "physionet": {"mirror": str(physionet_mirror)}}}
    )
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(arr, "get_run_logger", lambda: logging.getLogger("test"))
    monkeypatch.setattr(arr, "ingest_flow",
                        lambda **kw: calls.append(kw) or {"dataset": kw["out_dir"]})  # fmt: skip
    same = {"config_hash": config_hash(cfg.ingest.arrhythmia), **_source_facts(cfg)}
    for digest, remade in (("0123456789abcdef", True), (processing_digest(), False)):
        (ds / "manifest.json").write_text(json.dumps({**same, "processing_digest": digest}))
        calls.clear()
        assert arr.ingest_task.fn(cfg.model_dump(mode="json")) == str(ds.resolve())
        # the config hash alone was compared before: other code's dataset was reused
        assert bool(calls) is remade, digest


def _source_facts(cfg: ArrhythmiaTrainConfig) -> dict[str, Any]:
    """What an ingest of ``cfg`` writes in the manifest about its source."""
    physionet = cfg.ingest.physionet.model_dump(mode="json")
    data = cfg.ingest.arrhythmia
    src = fetch_database.fn(data.database, physionet, list(data.records or []) or None)
    return {"config": {"physionet": physionet}, "source_root": src["root"],
            "source_checksums": src["checksums"]}  # fmt: skip


def test_a_dataset_made_from_another_source_is_remade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, physionet_mirror: Path
) -> None:
    # only the config hash and processing code were compared: a revised 233.atr, or
    # another mirror, never reached training, and the run's params named a source it had
    # not read
    ds = tmp_path / "datasets" / "mitdb"
    ds.mkdir(parents=True)
    mirror = tmp_path / "mirror"  # another mirror holding the same files
    (mirror / "mitdb").mkdir(parents=True)
    for f in (physionet_mirror / "mitdb").iterdir():
        (mirror / "mitdb" / f.name).symlink_to(f)
    cfg, other = (ArrhythmiaTrainConfig.model_validate(
        {"ingest": {"out_dir": str(ds), "arrhythmia": {"records": ["106", "119", "223", "233"]},
                    "physionet": {"mirror": str(m)}}}
    ) for m in (physionet_mirror, mirror))  # fmt: skip
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(arr, "get_run_logger", lambda: logging.getLogger("test"))
    monkeypatch.setattr(arr, "ingest_flow",
                        lambda **kw: calls.append(kw) or {"dataset": kw["out_dir"]})  # fmt: skip
    made = {"config_hash": config_hash(cfg.ingest.arrhythmia),
            "processing_digest": processing_digest(), **_source_facts(cfg)}  # fmt: skip
    revised = json.loads(json.dumps(made))
    revised["source_checksums"]["233.atr"] = "0" * 64  # the annotations revised since
    for facts, c, remade in ((made, cfg, False), (made, other, True), (revised, cfg, True)):
        (ds / "manifest.json").write_text(json.dumps(facts))
        calls.clear()
        assert arr.ingest_task.fn(c.model_dump(mode="json")) == str(ds.resolve())
        assert bool(calls) is remade


def test_the_refit_on_all_of_ds1_is_not_labelled_a_fold_of_its_own() -> None:
    from pipelines.arrhythmia import _MlflowEpochs

    class Run:  # what the callback logs, in place of an MLflow run
        def __init__(self) -> None:
            self.logged: list[dict] = []

        def log_metrics(self, metrics: dict, step: int) -> None:
            self.logged.append(metrics)

    run = Run()
    epochs = _MlflowEpochs(run, fits_per_fold=1)  # type: ignore[arg-type]
    epochs.on_fit_start(3, 1)
    epochs.on_epoch_end(0, {"val_sv_f1": 0.5})
    epochs.on_fit_start(1, 1)  # refit_full: its epochs count refit_epoch
    epochs.on_epoch_end(0, {"refit_epoch": 1.0})
    got = [(m["epoch.fold"], m["epoch.refit"]) for m in run.logged]
    assert got == [(0.0, 0.0), (0.0, 1.0)]  # the refit was fold 1 before
