"""A beat dataset folder on disk, written by the ingest flow and read by training.

A dataset folder holds (the contract between the ingest flow and training):

``manifest.json``
    fs, lead, window, filters, splits, ``class_counts`` per split, per-record facts
    (source fs, lead used, beats, quality, R-peak detection against the reference),
    normalisation statistics fitted on the training split only, the config hash,
    source checksums, the package version and the processing code's digest.
``beats.parquet``
    One row per annotated beat, sorted by ``(record_id, sample_idx)``: ids, split,
    ``beat_idx``, ``sample_idx`` (at the dataset fs), WFDB ``symbol``, ``aami`` class and
    integer ``label`` (order of :data:`vitalgru.types.AAMI_CLASSES`), the RR features of
    :data:`vitalgru.dsp.beats.RR_FEATURES` (descriptive: ``rr_avg_s`` and its ratios use
    the whole record, and no model reads these columns; training recomputes causal RR
    features from ``sample_idx``), ``quality_ok`` (the beat's signal-quality
    window was clean), ``signal_ok`` (the latest trailing quality window that had ended by
    the end of the beat's window was clean: what a live monitor knows, see
    :func:`vitalgru.dsp.quality_stream.ecg_quality_trailing`) and ``detected`` (the R-peak
    detector found the beat within the AAMI EC57 150 ms match window).
``windows.npy``
    ``(n_beats, n_window)`` float32 filtered windows around the reference R peak, rows
    aligned with ``beats.parquet``.
``signals/<record>.npy``
    The filtered lead at the dataset fs, for other windowings and streaming replays.
``attrition.csv``
    What was excluded and why (unreadable file, bad checksum, unusable lead, ...).

Files are written under temporary names and renamed, by an ingest holding the folder's claim
(:func:`vitalgru.claims.writing`, the lock file ``.lock``); training opens the folder with
:func:`vitalgru.data.arrhythmia_dataset.load_beat_dataset`, under a shared claim. A
processed record between two flow steps is a *part* (:func:`save_part`, :func:`load_part`);
the ingest keeps parts from one run to the next, keyed by the record's files, the config and
:func:`processing_digest`, and prunes those made by other processing code
(:func:`prune_parts`): no key of this code can name them again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vitalgru.claims import replace_file, replacing
from vitalgru.data.ingest import RecordBeats
from vitalgru.dsp.beats import RR_FEATURES
from vitalgru.io.ingest import write_attrition
from vitalgru.types import AAMI_CLASSES, AttritionEntry

__all__ = [
    "class_counts",
    "load_part",
    "normalisation_stats",
    "processing_digest",
    "prune_parts",
    "save_part",
    "write_dataset",
]


def class_counts(beats: pd.DataFrame) -> dict[str, dict[str, int]]:
    """``{split: {N: n, S: n, V: n, F: n, Q: n}}`` from a beats table."""
    out: dict[str, dict[str, int]] = {}
    for split, grp in beats.groupby("split", sort=True):
        vc = grp["aami"].value_counts()
        out[str(split)] = {str(c): int(vc.get(str(c), 0)) for c in AAMI_CLASSES}
    return out


def normalisation_stats(beats: pd.DataFrame, windows: np.ndarray, fit_split: str) -> dict:
    """Mean and standard deviation of windows and RR features over ``fit_split`` only."""
    m = (beats["split"] == fit_split).to_numpy()
    if not m.any():
        raise ValueError(f"no beats in split {fit_split!r} to fit normalisation on")
    wsel = windows[m]
    rr = beats.loc[m, list(RR_FEATURES)].to_numpy(np.float64)
    return {
        "fit_split": fit_split,
        "window_mean": float(wsel.mean()),
        "window_std": float(wsel.std()),
        "rr_mean": dict(zip(RR_FEATURES, rr.mean(0).tolist(), strict=True)),
        "rr_std": dict(zip(RR_FEATURES, rr.std(0).tolist(), strict=True)),
    }


def write_dataset(
    out_dir: str | Path,
    items: Sequence[RecordBeats],
    attrition: Sequence[AttritionEntry],
    meta: dict[str, Any],
    fit_split: str = "DS1",
) -> Path:
    """Write a dataset folder; returns the path of its ``manifest.json``.

    ``meta`` is merged into the manifest (database, config, config hash, checksums).
    Files are written under temporary names and renamed, and the manifest is taken away
    first and written last, so a crash never leaves a manifest describing files that are
    not there or are another write's.

    Raises
    ------
    ValueError
        No record in ``items``: ``attrition.csv`` is written first (saying why each was
        excluded) and an older dataset's manifest taken away, so the folder reads as no
        dataset rather than as the last one beside this run's attrition.
    """
    out = Path(out_dir)
    (out / "signals").mkdir(parents=True, exist_ok=True)
    items = sorted(items, key=lambda r: r.record_id)
    if not items:
        (out / "manifest.json").unlink(missing_ok=True)
        with replacing(out / "attrition.csv") as t:
            write_attrition(attrition, t)
        raise ValueError(
            f"no record survived ingestion ({len(attrition)} excluded); "
            f"see {out / 'attrition.csv'} for why"
        )
    beats = pd.concat([r.beats for r in items], ignore_index=True)
    windows = np.concatenate([r.windows for r in items], axis=0)
    splits: dict[str, list[str]] = {}
    for r in items:
        splits.setdefault(r.split, []).append(r.record_id)
    # Worked out before the folder is touched: run out of memory here (the statistics
    # take a copy of the windows: 49 MiB for MIT-BIH) and the last dataset stays whole.
    counts = class_counts(beats)
    # from the training split only: none without one (never from the test records)
    norm = normalisation_stats(beats, windows, fit_split) if fit_split in splits else None
    # No manifest while the files change: a crash part way leaves a folder that says it is
    # no dataset (and is ingested again), never one manifest over another write's files.
    (out / "manifest.json").unlink(missing_ok=True)
    signals = (out / "signals").resolve()
    for r in items:
        path = (signals / f"{r.record_id}.npy").resolve()
        if not path.is_relative_to(signals):
            raise ValueError(f"record id {r.record_id!r} leads outside the dataset folder")
        path.parent.mkdir(parents=True, exist_ok=True)  # a record in a sub-folder (p00/100)
        with replacing(path) as t, open(t, "wb") as f:
            np.save(f, r.signal)
    with replacing(out / "windows.npy") as t, open(t, "wb") as f:
        np.save(f, windows)
    with replacing(out / "beats.parquet") as t:
        beats.to_parquet(t, index=False)
    with replacing(out / "attrition.csv") as t:
        write_attrition(attrition, t)
    manifest = {
        **meta,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "n_beats": len(beats),
        "window": {**meta.get("window", {}), "n_samples": int(windows.shape[1])},
        "splits": splits,
        "class_counts": counts,
        "records": {r.record_id: r.facts for r in items},
        "normalisation": norm,
        "attrition": len({e.item for e in attrition}),  # items excluded, not their files
        "files": {
            "beats": "beats.parquet",
            "windows": "windows.npy",
            "signals": "signals/",
            "attrition": "attrition.csv",
        },
    }
    replace_file(out / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True))
    return out / "manifest.json"


def save_part(item: RecordBeats, path: str | Path, digest: str | None = None) -> Path:
    """Persist one processed record (a flow step's output: tasks pass paths, not arrays),
    with the digest of the code that made it (default :func:`processing_digest`)."""
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    with replacing(p / "beats.parquet") as t:  # each whole, and an error names it
        item.beats.to_parquet(t, index=False)
    for name, array in (("windows.npy", item.windows), ("signal.npy", item.signal)):
        with replacing(p / name) as t, open(t, "wb") as f:
            np.save(f, array)
    meta = {
        "record_id": item.record_id,
        "patient_id": item.patient_id,
        "split": item.split,
        "facts": item.facts,
        "processing_digest": digest or processing_digest(),
    }
    # facts.json last: its presence marks a complete part.
    replace_file(p / "facts.json", json.dumps(meta, indent=1, sort_keys=True))
    return p


def load_part(path: str | Path) -> RecordBeats:
    """Inverse of :func:`save_part`."""
    p = Path(path)
    meta = json.loads((p / "facts.json").read_text())
    return RecordBeats(
        record_id=meta["record_id"],
        patient_id=meta["patient_id"],
        split=meta["split"],
        beats=pd.read_parquet(p / "beats.parquet"),
        windows=np.load(p / "windows.npy"),
        signal=np.load(p / "signal.npy"),
        facts=meta["facts"],
    )


#: The code that makes a part: reading and checking records (``io``), filters, detection,
#: quality, polarity and windows (``dsp``), labels and the ingest itself (``data``), the
#: beat matching that checks detection against the annotations (``metrics``), and the
#: settings, types and claims they share. A test holds it to what the ingest imports.
_PROCESSING_CODE = (
    "io", "dsp", "data", "metrics", "config.py", "config_checks.py", "config_ingest.py",
    "config_files.py", "claims.py", "types.py", "errors.py",
)  # fmt: skip


@functools.lru_cache(maxsize=1)
def processing_digest() -> str:
    """A digest (16 hex digits) of the source of the code that processes a record into a
    part (:data:`_PROCESSING_CODE`): a part made by other code is stale, whatever the
    package's version says (a fix to the quality check between releases changes every
    part's flags)."""
    return code_digest(Path(__file__).resolve().parent.parent)


def code_digest(root: Path) -> str:
    """:func:`processing_digest` of the package whose folder is ``root``."""
    files: list[Path] = []
    for name in _PROCESSING_CODE:
        p = root / name
        files += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def prune_parts(parts_dir: str | Path, digest: str) -> tuple[int, int]:
    """Delete the complete parts under ``parts_dir`` made by processing code other than
    ``digest`` (or before parts recorded theirs): a part's key holds the digest, so this
    code never asks for them again. Parts of this code under other configs or source files
    stay, and so does a part still being written (no ``facts.json`` yet). Returns the
    number of parts and bytes removed."""
    removed = freed = 0
    root = Path(parts_dir)
    if not root.is_dir():
        return 0, 0
    for part in sorted(root.iterdir()):
        facts = part / "facts.json"
        if not part.is_dir() or not facts.is_file():
            continue
        try:
            made_by = json.loads(facts.read_text()).get("processing_digest")
        except (OSError, ValueError, AttributeError):
            continue  # unreadable: not ours to judge
        if made_by == digest:
            continue
        size = sum(f.stat().st_size for f in part.rglob("*") if f.is_file())
        shutil.rmtree(part, ignore_errors=True)
        removed, freed = removed + 1, freed + size
    return removed, freed
