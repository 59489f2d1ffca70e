"""The training flows' gate step: figures are compared only with a champion's measured on
the same evaluation (the same DS2 beats, the same cohort and folds)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import pipelines.arrhythmia as arr
from vitalgru.data.arrhythmia_dataset import RecordBeats


def _rec(rid: str, labels: list[int]) -> RecordBeats:
    n = len(labels)
    return RecordBeats(rid, np.zeros((n, 2), np.float32), np.asarray(labels, np.int64),
                       np.arange(n, dtype=np.int64) * 300, None)  # fmt: skip


def test_ds2_figures_name_the_records_and_beats_they_were_measured_on() -> None:
    both = [_rec("233", [0, 0, 2, 1]), _rec("232", [0, 1, 1])]
    on = arr.ds2_evaluated_on(both, "mitdb")
    assert on.startswith("mitdb DS2: 2 records, 7 beats (record:beats 232:3 233:4)")
    assert arr.ds2_evaluated_on(both[::-1], "mitdb") == on  # the order scored does not count
    assert arr.ds2_evaluated_on(both[:1], "mitdb") != on  # fewer records
    relabelled = [_rec("233", [0, 0, 2, 2]), both[1]]  # a revised .atr: same counts
    assert arr.ds2_evaluated_on(relabelled, "mitdb") != on


def test_the_arrhythmia_flow_gates_on_what_ds2_was_measured_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the flow never passed evaluated_on: a version scored on DS2 record 233 alone was
    # compared with (and displaced) a champion scored on 232 and 233, with the same weights
    gated: list[dict[str, Any]] = []
    on = "mitdb DS2: 1 records, 2 beats (record:beats 233:2), labels sha256 0123"
    trained = {"run_id": "r", "model_uri": "models:/m/2", "version": "2", "report": {},
               "metrics": {"test_s_f1": 0.5, "test_v_f1": 0.9}, "evaluated_on": on}  # fmt: skip
    monkeypatch.setattr(arr, "ingest_task", lambda cfg: str(tmp_path / "ds"))
    monkeypatch.setattr(arr, "train_task", lambda cfg, data: trained)
    monkeypatch.setattr(arr, "write_report", lambda *a: {})
    monkeypatch.setattr(arr, "promote_task", arr.promote_task.fn)

    class Decision:
        promoted, reason, previous_version, paired = False, "not comparable", "1", None

    def gate(*args: Any, **kw: Any) -> Decision:
        gated.append(kw)
        return Decision()

    monkeypatch.setattr(arr.tracking, "promote_if_better", gate)
    res = arr.train_arrhythmia_flow.fn(overrides={"report_dir": str(tmp_path)})
    assert [g.get("evaluated_on") for g in gated] == [on]
    # the per-record DS2 report the run logged, for the gate's paired interval
    assert [g.get("record_report") for g in gated] == ["evaluation/ds2.json"]
    assert res["promotion_reason"] == "not comparable"


def test_early_warning_cohorts_of_the_same_size_are_told_apart(
    physionet_mirror: Path, tmp_path: Path
) -> None:
    # cohort B swaps one stay of A for another as long (the same stay under another id):
    # the same patients, septic patients, hours and folds by count, so the gate compared
    # their figures as one cohort's
    from pipelines.early_warning import build_dataset, cohort_evaluated_on
    from vitalgru.config import EarlyWarningConfig
    from vitalgru.io.psv_folder import list_psv

    files = list_psv(physionet_mirror / "challenge-2019" / "training_setA")[:12]
    on: dict[str, str] = {}
    for name in ("a", "b", "a_again"):
        data = tmp_path / name
        data.mkdir()
        for f in files:
            swapped = name == "b" and f == files[-1]
            shutil.copy(f, data / ("p999999.psv" if swapped else f.name))
        cfg = EarlyWarningConfig.model_validate(
            {"data_dir": str(data), "n_folds": 2, "out_dir": str(tmp_path / f"out_{name}"),
             "cache_dir": str(tmp_path / "cache")}
        )  # fmt: skip
        ds = Path(build_dataset.fn(cfg.model_dump(mode="json")))
        manifest = json.loads((ds / "manifest.json").read_text())
        on[name] = cohort_evaluated_on(manifest, cfg.n_folds, cfg.seed)
    counts = {k: v.split(";")[0] for k, v in on.items()}
    assert counts["a"] == counts["b"]  # all the old text said
    assert on["a"] != on["b"] and on["a"] == on["a_again"]


def test_the_early_warning_dataset_records_its_source_files(
    physionet_mirror: Path, tmp_path: Path
) -> None:
    # the manifest named the folder only: a file revised in place, or another copy of the
    # set, left no trace in the run
    import hashlib

    import pandas as pd

    from pipelines.early_warning import SOURCE_SUMS, build_dataset
    from vitalgru.config import EarlyWarningConfig
    from vitalgru.io.psv_folder import list_psv

    data = tmp_path / "data"
    data.mkdir()
    for f in list_psv(physionet_mirror / "challenge-2019" / "training_setA")[:6]:
        shutil.copy(f, data / f.name)
    (data / "p999999.psv").write_text("HR|O2Sat\n1|2\n")  # unreadable: still a source file
    cfg = EarlyWarningConfig.model_validate(
        {"data_dir": str(data), "n_folds": 2, "out_dir": str(tmp_path / "out"),
         "cache_dir": str(tmp_path / "cache")}
    )  # fmt: skip
    ds = Path(build_dataset.fn(cfg.model_dump(mode="json")))
    manifest = json.loads((ds / "manifest.json").read_text())
    sums = pd.read_csv(ds / SOURCE_SUMS, dtype=str)
    files = sorted(data.glob("*.psv"))
    assert sums["file"].tolist() == [f.name for f in files] and manifest["source_files"] == 7
    assert sums["sha256"].tolist() == [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]
    lines = "".join(f"{n}:{d}\n" for n, d in zip(sums["file"], sums["sha256"], strict=True))
    assert manifest["source_digest"] == hashlib.sha256(lines.encode()).hexdigest()


def test_the_early_warning_flow_gates_with_its_held_out_scores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the flow's runs logged no per-patient held-out scores and the gate had no paired
    # interval: a version that gained 0.003 of utility was promoted with nothing saying
    # that is within noise (set A's blend minus trees: +0.004 [-0.002, +0.010])
    import pipelines.early_warning as ew

    gated: list[dict[str, Any]] = []
    logged = {"run_id": "r", "model_uri": "models:/m/2", "version": "2",
              "metrics": {"utility": 0.43, "auroc": 0.85}, "evaluated_on": "set A"}  # fmt: skip
    monkeypatch.setattr(ew, "build_dataset", lambda cfg: str(tmp_path / "ds"))
    monkeypatch.setattr(ew, "run_cross_validation",
                        lambda cfg, ds: {"dir": str(tmp_path / "cv"), "summary": {}})  # fmt: skip
    monkeypatch.setattr(ew, "train_final", lambda cfg, ds: str(tmp_path / "final"))
    monkeypatch.setattr(ew, "log_and_register", lambda *a: logged)
    monkeypatch.setattr(ew, "promote_task", ew.promote_task.fn)
    monkeypatch.setattr(ew, "get_run_logger", lambda: logging.getLogger("test"))
    paired = {"against": "1", "artifact": ew.HELDOUT_SCORES, "missing": "why"}

    class Decision:
        promoted, reason, previous_version = True, "beats champion v1", "1"

    def gate(*args: Any, **kw: Any) -> Decision:
        gated.append(kw)
        d = Decision()
        d.paired = paired  # type: ignore[attr-defined]
        return d

    monkeypatch.setattr(ew.tracking, "promote_if_better", gate)
    res = ew.train_early_warning_flow.fn(overrides={"out_dir": str(tmp_path / "out")})
    assert [g.get("heldout_scores") for g in gated] == ["cv/heldout_scores.parquet"]
    assert [g.get("evaluated_on") for g in gated] == ["set A"]
    assert res["promotion_paired"] == paired
