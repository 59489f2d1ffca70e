"""The training flows' ingest step: a dataset is reused only when this config and this
processing code made it."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

import pipelines.arrhythmia as arr
from vitalgru.config import ArrhythmiaTrainConfig, config_hash
from vitalgru.data.dataset_files import processing_digest


def test_a_dataset_made_by_other_processing_code_is_remade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = tmp_path / "datasets" / "mitdb"
    ds.mkdir(parents=True)
    cfg = ArrhythmiaTrainConfig.model_validate({"ingest": {"out_dir": str(ds)}})
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(arr, "get_run_logger", lambda: logging.getLogger("test"))
    monkeypatch.setattr(arr, "ingest_flow",
                        lambda **kw: calls.append(kw) or {"dataset": kw["out_dir"]})  # fmt: skip
    same = {"config_hash": config_hash(cfg.ingest.arrhythmia)}
    for digest, remade in (("0123456789abcdef", True), (processing_digest(), False)):
        (ds / "manifest.json").write_text(json.dumps({**same, "processing_digest": digest}))
        calls.clear()
        assert arr.ingest_task.fn(cfg.model_dump(mode="json")) == str(ds.resolve())
        # the config hash alone was compared before: other code's dataset was reused
        assert bool(calls) is remade, digest
