"""The training flows and their folders: one early-warning training per output folder, and
an arrhythmia training that finds its dataset rewritten under another config stops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from claim_kit import folder_held_by_another_process

from pipelines.arrhythmia import train_task
from pipelines.cli import main as cli
from pipelines.early_warning import train_early_warning_flow
from vitalgru import claims
from vitalgru.claims import ClaimBusy
from vitalgru.config import ArrhythmiaTrainConfig, config_hash
from vitalgru.data.dataset_files import write_dataset
from vitalgru.data.ingest import RecordBeats
from vitalgru.dsp.beats import RR_FEATURES


def test_one_early_warning_training_per_output_folder(
    isolated_mlflow: Path, physionet_mirror: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = isolated_mlflow / "out"
    overrides = {"physionet.mirror": str(physionet_mirror), "limit_patients": 40,
                 "out_dir": str(out)}  # fmt: skip
    monkeypatch.setattr(claims, "FOLDER_WAIT_S", 0.5)
    with folder_held_by_another_process(out, seconds=60) as pid:
        with pytest.raises(ClaimBusy, match=rf"output folder .*process {pid}, holding"):
            train_early_warning_flow(overrides=overrides)
    # Refused before anything was written: the other training's files are its own.
    assert sorted(p.name for p in out.iterdir()) == [claims.FOLDER_LOCK]


def test_a_dataset_rewritten_under_another_config_is_not_trained_on(tmp_path: Path) -> None:
    cfg = ArrhythmiaTrainConfig()
    n = 4
    beats = pd.DataFrame({"record_id": "100", "patient_id": "100", "split": "DS1",
                          "sample_idx": np.arange(n) * 300, "aami": "N", "label": 0,
                          **{f: np.full(n, 0.8) for f in RR_FEATURES}})  # fmt: skip
    item = RecordBeats("100", "100", "DS1", beats, np.zeros((n, 8), np.float32),
                       np.zeros(64, np.float32), {})  # fmt: skip
    write_dataset(tmp_path, [item], [], {"config_hash": "0" * 16})
    want = config_hash(cfg.ingest.arrhythmia)
    with pytest.raises(ValueError, match=rf"rewritten under another config \(hash 0+, this "
                                         rf"training's {want}\)"):  # fmt: skip
        train_task.fn(cfg.model_dump(mode="json"), str(tmp_path))


def test_the_command_line_says_who_holds_the_folder(
    tmp_path: Path,
    physionet_mirror: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("VITALGRU_PHYSIONET_MIRROR", str(physionet_mirror))
    monkeypatch.setattr(claims, "FOLDER_WAIT_S", 0.3)
    out = tmp_path / "ds"
    with folder_held_by_another_process(out, seconds=60) as pid:
        code = cli(["ingest", "--out", str(out), "--set", 'arrhythmia.records=["100"]'])
    # One line and exit status 2, as for any other error a user can act on (a traceback
    # through the failed flow before).
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"vitalgru: error: the dataset folder {out} is in use by another process (process "
        f"{pid}, holding {out / claims.FOLDER_LOCK}) after waiting 0.3 s"
    )
