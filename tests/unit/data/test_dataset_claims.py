"""Dataset folders are written under a claim and read under a shared one: a reader that
comes while an ingest rewrites the folder waits and reads the new dataset whole, and a
write that fails part way leaves a folder that says it is no dataset."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vitalgru.claims import writing
from vitalgru.data import dataset_files, early_warning_files
from vitalgru.data.arrhythmia_dataset import load_beat_dataset
from vitalgru.data.dataset_files import write_dataset
from vitalgru.data.early_warning import build_cohort
from vitalgru.data.early_warning_files import load_dataset
from vitalgru.data.early_warning_files import write_dataset as write_ew_dataset
from vitalgru.data.ingest import RecordBeats
from vitalgru.dsp.beats import RR_FEATURES
from vitalgru.types import AAMI_CLASSES


def _item(record: str, n: int, level: float) -> RecordBeats:
    beats = pd.DataFrame({"record_id": record, "patient_id": record, "split": "DS1",
                          "sample_idx": np.arange(n) * 300, "aami": "N",
                          "label": AAMI_CLASSES.index("N"),
                          **{f: np.full(n, 0.8) for f in RR_FEATURES}})  # fmt: skip
    windows = np.full((n, 8), level, np.float32)
    return RecordBeats(record, record, "DS1", beats, windows, np.zeros(64, np.float32), {})


def _write(out: Path, n: int, level: float, config_hash: str) -> None:
    write_dataset(out, [_item("100", n, level)], [], {"config_hash": config_hash})


def _rewrite_while_held(out: Path, write, started: threading.Event) -> threading.Thread:
    """Another ingest: claims the folder, then writes the new dataset slowly."""

    def ingest() -> None:
        with writing(out, "the dataset folder"):
            started.set()
            time.sleep(0.8)
            write()

    t = threading.Thread(target=ingest)
    t.start()
    assert started.wait(10)
    return t


def test_a_reader_waits_for_the_ingest_writing_the_folder(tmp_path: Path) -> None:
    out = tmp_path / "mitdb"
    _write(out, 10, 1.0, "old")
    t = _rewrite_while_held(out, lambda: _write(out, 12, 2.0, "new"), threading.Event())
    ds = load_beat_dataset(out)  # comes while the other holds the folder
    t.join()
    # The new dataset whole: without the claim, the old one (or half of each) is read.
    assert ds.manifest["config_hash"] == "new" and len(ds.beats) == 12
    assert ds.windows.shape == (12, 8) and float(ds.windows[0, 0]) == 2.0


def test_a_write_that_fails_part_way_leaves_no_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "mitdb"
    _write(out, 10, 1.0, "old")

    def broken(*a: object, **k: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(dataset_files.pd.DataFrame, "to_parquet", broken)
    with pytest.raises(OSError, match="No space left"):
        _write(out, 10, 2.0, "new")  # windows.npy already replaced when beats fail
    # The old manifest over the new windows (the same records under another filter: as
    # many rows) read as the old dataset; now the folder says it is none, and the
    # training's ingest step builds it again.
    with pytest.raises(FileNotFoundError, match="manifest.json not found"):
        load_beat_dataset(out)


def test_the_early_warning_dataset_too(
    tmp_path: Path, physionet_mirror: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cohort = build_cohort(physionet_mirror / "challenge-2019" / "training_setA", limit=40)
    out = tmp_path / "ds"
    write_ew_dataset(cohort, np.zeros(40, np.int64), out, extra_manifest={"run": "old"})
    started, write_files = threading.Event(), early_warning_files._write_files

    def slow(*a: object) -> None:  # runs under the writer's claim
        started.set()
        time.sleep(0.8)
        write_files(*a)

    monkeypatch.setattr(early_warning_files, "_write_files", slow)
    folds = np.arange(40) % 2
    t = threading.Thread(
        target=write_ew_dataset,
        args=(cohort, folds, out),
        kwargs={"extra_manifest": {"run": "new"}},
    )
    t.start()
    assert started.wait(30)
    _, got, manifest = load_dataset(out)
    t.join()
    assert manifest["run"] == "new"
    np.testing.assert_array_equal(got, folds)


def test_out_of_memory_in_the_statistics_leaves_the_last_dataset_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under prlimit --as the MIT-BIH ingest ran out of memory in the normalisation
    # statistics, after windows, beats and signals had been replaced and the manifest taken
    # away: the last dataset was gone. They are worked out before the folder is touched now.
    out = tmp_path / "mitdb"
    _write(out, 10, 1.0, "old")
    before = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def out_of_memory(*a: object, **k: object) -> None:
        np.empty(2**62, dtype=np.uint8)  # numpy's own MemoryError

    monkeypatch.setattr(dataset_files, "normalisation_stats", out_of_memory)
    with pytest.raises(MemoryError):
        _write(out, 12, 2.0, "new")
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    ds = load_beat_dataset(out)
    assert ds.manifest["config_hash"] == "old" and len(ds.beats) == 10
