"""The early-warning flow's ``out_dir`` files (``cv/``, ``final/``) after a process killed
while writing one: the file there is the whole one of before, never a half-written one
(``benchmarks/challenge_scorer.py`` reads ``cv/``; ``final/`` is the next step's input)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import pipelines.early_warning as ew


class _Killed(BaseException):
    """Stands for SIGKILL at the point it is raised: the write is cut short there."""


def _cut_short(path: Any) -> None:
    # what a kill part way through a write leaves: the first bytes of the file
    Path(path).write_bytes(b"PAR1\x00\x01")
    raise _Killed


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Linear(2, 1)

    def config_dict(self) -> dict[str, Any]:
        return {}


def _cfg(tmp_path: Path) -> dict[str, Any]:
    return ew.load_early_warning_config(None, {"out_dir": str(tmp_path / "out")}).model_dump(
        mode="json"
    )


class TestOutFilesWholeAfterAKill:
    def test_cross_validation_files(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        cohort = SimpleNamespace(patient_ids=["p1", "p2"], offsets=np.array([0, 2, 3]),
                                 frame=pd.DataFrame({"hour": [0, 1, 0]}),
                                 labels=np.array([0, 1, 0]))  # fmt: skip
        # the registered kind (the blend by default), whose held-out scores the gate pairs
        blend = "gru_d_gbm_blend"
        res = SimpleNamespace(per_fold={blend: [{"fold": 0, "utility": 0.1, "threshold": 0.15}]},
                              summary=lambda: {blend: {"utility_mean": 0.1}},
                              gru_histories={}, oof_scores={blend: np.array([0.1, 0.2, 0.3])})  # fmt: skip
        folds = np.array([0, 0])
        monkeypatch.setattr(ew, "load_dataset", lambda d: (cohort, folds, None))
        monkeypatch.setattr(ew, "cross_validate", lambda *a: res)
        cfg = _cfg(tmp_path)
        cv = Path(ew.run_cross_validation.fn(cfg, "ds")["dir"])
        before = pd.read_parquet(cv / "oof_scores.parquet")
        monkeypatch.setattr(pd.DataFrame, "to_parquet", lambda self, path, **k: _cut_short(path))
        with pytest.raises(_Killed):
            ew.run_cross_validation.fn(cfg, "ds")
        monkeypatch.undo()
        pd.testing.assert_frame_equal(pd.read_parquet(cv / "oof_scores.parquet"), before)
        assert json.loads((cv / "summary.json").read_text()) == {blend: {"utility_mean": 0.1}}

    def test_final_weights(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        net = _Net()
        gru = SimpleNamespace(val_utility=0.1, best_epoch=0, stop_reason="max_epochs",
                              seconds=1.0, history=[])  # fmt: skip
        res = SimpleNamespace(model=net, preprocessing={"threshold": 0.5}, val_utility=0.1,
                              val_auroc=0.6, gru=gru)  # fmt: skip
        monkeypatch.setattr(ew, "load_dataset", lambda d: (None, None, None))
        monkeypatch.setattr(ew, "fit_final", lambda *a, **k: res)
        cfg = _cfg(tmp_path)
        final = Path(ew.train_final.fn(cfg, "ds"))
        monkeypatch.setattr(torch, "save", lambda obj, f, **k: _cut_short(f))
        with pytest.raises(_Killed):
            ew.train_final.fn(cfg, "ds")
        monkeypatch.undo()
        state = torch.load(final / "weights.pt", weights_only=True)
        assert torch.equal(state["w.weight"], net.w.weight.detach())
