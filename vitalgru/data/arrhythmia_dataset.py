"""Beat-sequence datasets for the arrhythmia classifier.

Reads the dataset folder written by ``vitalgru ingest`` (``manifest.json``, ``beats.parquet``,
``windows.npy``), turns each record into per-beat model inputs with *causal* feature
functions (the same functions a streaming scorer applies beat by beat), and serves
sequences of consecutive beats to torch.

The per-beat inputs themselves are computed in :mod:`vitalgru.data.beat_features`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from vitalgru.claims import reading
from vitalgru.config import ArrhythmiaDataConfig, BeatWindowConfig, FilterConfig
from vitalgru.data.beat_features import (
    N_RR_FEATURES,
    RR_MAX_S,
    RR_MIN_S,
    FeatureSettings,
    beat_features,
    causal_mean,
    rr_features,
)
from vitalgru.types import AAMI_CLASSES

logger = logging.getLogger(__name__)

#: Label value ignored by the loss (padding).
IGNORE_LABEL = -100
#: Training label "N or S, not told apart" (scored by the summed probability of the two):
#: supraventricular beats of simulated atrial fibrillation (:func:`simulated_af_record`).
SUPRAVENTRICULAR_LABEL = -2


def data_config_from_preprocessing(
    preprocessing: Mapping[str, Any], lead: str | int | None = None
) -> ArrhythmiaDataConfig:
    """The ingest settings a logged model was trained with (``lead`` overrides the lead).

    Every window setting the model's dataset recorded is used (models logged before the
    quality window and hop were recorded get the defaults, as they were trained with); a
    lead recorded as a string of digits (``"1"``, as an index was once written) is that
    index."""
    win = preprocessing.get("window") or {}
    filt = preprocessing.get("filters") or {}
    kept = preprocessing.get("lead")
    if isinstance(kept, str) and kept.isdigit():
        kept = int(kept)
    try:
        windows = BeatWindowConfig(
            **{
                k: v
                for k, v in win.items()
                if k in BeatWindowConfig.model_fields
                and k not in ("lead", "fs", "before_s", "after_s")
            },
            lead=lead if lead is not None else (kept if kept not in (None, "") else "MLII"),
            fs=float(preprocessing["fs"]),
            before_s=float(win["before_s"]),
            after_s=float(win["after_s"]),
        )
    except KeyError as e:
        raise ValueError(
            f"model preprocessing lacks {e.args[0]!r}; it needs fs, window.before_s and "
            "window.after_s (was the model logged by vitalgru.training.arrhythmia?)"
        ) from e
    filters = FilterConfig(**{k: v for k, v in filt.items() if k in FilterConfig.model_fields})
    return ArrhythmiaDataConfig(filters=filters, windows=windows)


@dataclass
class RecordBeats:
    """Model inputs and labels of one record.

    Attributes
    ----------
    record_id : str
    x : numpy.ndarray
        ``(n, n_features)`` float32 model inputs (:func:`beat_features`).
    labels : numpy.ndarray
        ``(n,)`` int64 AAMI class indices (order of ``AAMI_CLASSES``).
    sample_idx : numpy.ndarray
        ``(n,)`` int64 R-peak positions at the dataset's ``fs``.
    signal_ok : numpy.ndarray or None
        ``(n,)`` bool live signal-quality verdict of each beat (``signal_ok`` of
        :mod:`vitalgru.data.ingest`); None when unknown (every beat trusted).
    """

    record_id: str
    x: np.ndarray
    labels: np.ndarray
    sample_idx: np.ndarray
    signal_ok: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])


#: Class indices a :data:`SUPRAVENTRICULAR_LABEL` beat may take (N first).
SUPRAVENTRICULAR_CLASSES: tuple[int, int] = (AAMI_CLASSES.index("N"), AAMI_CLASSES.index("S"))
_VENTRICULAR = [AAMI_CLASSES.index(c) for c in ("V", "F")]


def simulated_af_record(
    rec: RecordBeats,
    fs: float,
    settings: FeatureSettings,
    rng: np.random.Generator,
    af_share: float = 0.5,
    episode_beats: tuple[int, int] = (60, 600),
) -> RecordBeats:
    """A copy of ``rec`` re-timed so that episodes of it are in simulated atrial fibrillation.

    MIT-BIH has atrial fibrillation in two DS1 patients only, so a classifier trained on
    DS1 learns little of what AF does to the RR features: every AF interval looks
    premature against the running means, and AF beats (annotated N: with no organised
    atrial activity there is no premature atrial beat) get called S. This copy keeps each
    beat's morphology and replaces the beat times inside AF episodes with an "irregularly
    irregular" rhythm: independent intervals ``m exp(sigma z)``, ``z ~ N(0, 1)``, the mean
    ``m`` the record's median interval times U(0.55, 1) (AF is usually faster than the
    sinus rhythm it replaces) and ``sigma`` ~ U(0.1, 0.3), drawn per episode. In an episode
    N and S beats become :data:`SUPRAVENTRICULAR_LABEL` ("N or S"): the copy teaches
    ventricular against supraventricular beats in an irregular rhythm, and nothing about N
    against S. (Labelling them N, MIT-BIH's convention in AF, taught the network that
    premature beats are N and cost half the S sensitivity out of fold; the morphology of
    an S beat, its ectopic P wave, is still there in the copy.) A V or F beat keeps its
    label and its prematurity (the interval before it is the episode's draw times the
    original interval over the original 10-beat mean). Outside the episodes the original
    intervals are kept, so the copy has AF onsets and offsets too. The RR features are
    recomputed from the new times; the morphology columns are the original's.

    Parameters
    ----------
    rec : RecordBeats
        A training record (``sample_idx`` at ``fs``).
    fs : float
        Sampling rate of ``rec.sample_idx`` in Hz.
    settings : FeatureSettings
        The feature settings ``rec.x`` was built with.
    rng : numpy.random.Generator
    af_share : float
        Expected share of the copy's beats inside AF episodes (0 < af_share < 1).
    episode_beats : (int, int)
        Range of episode lengths in beats (uniform); the sinus gaps between episodes are
        drawn from the same range scaled by ``(1 - af_share) / af_share``.

    Returns
    -------
    RecordBeats
        The copy, named ``<record_id>~af``.
    """
    if not 0 < af_share < 1:
        raise ValueError(f"af_share must be in (0, 1), got {af_share}")
    n = len(rec)
    if n < 3:  # no rhythm to redraw: an unchanged copy
        return RecordBeats(f"{rec.record_id}~af", rec.x, rec.labels, rec.sample_idx, rec.signal_ok)
    rr = np.diff(np.asarray(rec.sample_idx, np.float64)) / fs  # rr[k-1]: beat k-1 -> k
    lo, hi = episode_beats
    in_af = np.zeros(n, bool)
    # the episodes and gaps begin well before the record, so that it starts anywhere in
    # their alternation (a first gap drawn shorter than the others put 0.28 of a
    # 2,000-beat record in AF for a share of 0.25, and 0.65 for 0.75)
    pos = -int(rng.integers(0, 20 * hi))
    gap_scale = (1.0 - af_share) / af_share
    while pos < n:
        length = int(rng.integers(lo, hi + 1))
        in_af[max(pos, 0) : max(pos + length, 0)] = True
        pos += length + int(gap_scale * rng.integers(lo, hi + 1))
    new_rr = rr.copy()
    median = float(np.median(rr))
    labels = rec.labels.copy()
    ratio = rr / np.maximum(causal_mean(rr, 10), 1e-6)
    ventricular = np.isin(labels, _VENTRICULAR)
    starts = np.flatnonzero(in_af & ~np.concatenate([[False], in_af[:-1]]))
    for s in starts:
        e = s + int(np.argmin(in_af[s:])) if not in_af[s:].all() else n
        m = median * rng.uniform(0.55, 1.0)
        sigma = rng.uniform(0.1, 0.3)
        k = np.arange(max(s, 1), e)  # beats whose preceding interval is redrawn
        draw = m * np.exp(sigma * rng.standard_normal(k.size))
        v = ventricular[k]
        draw[v] *= np.clip(ratio[k[v] - 1], 0.3, 1.5)
        new_rr[k - 1] = draw
        supra = labels[s:e]
        supra[np.isin(supra, SUPRAVENTRICULAR_CLASSES)] = SUPRAVENTRICULAR_LABEL
    t = np.concatenate([[0.0], np.cumsum(np.clip(new_rr, RR_MIN_S, RR_MAX_S))])
    idx = np.round(t * fs).astype(np.int64) + int(rec.sample_idx[0])
    x = rec.x.copy()
    x[:, -N_RR_FEATURES:] = rr_features(idx, fs, settings)
    return RecordBeats(f"{rec.record_id}~af", x, labels, idx, rec.signal_ok)


@dataclass
class BeatDataset:
    """A dataset folder written by ``vitalgru ingest`` (read-only view)."""

    path: Path
    manifest: dict[str, Any]
    beats: pd.DataFrame
    windows: np.ndarray

    @property
    def fs(self) -> float:
        return float(self.manifest["fs"])

    def split_records(self, split: str) -> list[str]:
        """Records of a named split (``"DS1"``, ``"DS2"``) in manifest order."""
        splits = self.manifest.get("splits", {})
        if split not in splits:
            raise ValueError(f"{self.path}: manifest has no split {split!r}; has {list(splits)}")
        return [str(r) for r in splits[split]]

    def records(self, record_ids: Sequence[str], settings: FeatureSettings) -> list[RecordBeats]:
        """Features and labels of ``record_ids`` (in that order)."""
        out = []
        groups = self.beats.groupby("record_id", sort=False).indices
        for rid in record_ids:
            if rid not in groups:
                raise ValueError(f"{self.path}: no beats for record {rid!r}")
            rows = np.sort(groups[rid])
            sub = self.beats.iloc[rows]
            idx = sub["sample_idx"].to_numpy(np.int64)
            x = beat_features(self.windows[rows], idx, self.fs, settings)
            ok = sub["signal_ok"].to_numpy(bool) if "signal_ok" in sub.columns else None
            out.append(RecordBeats(rid, x, sub["label"].to_numpy(np.int64), idx, ok))
        return out


def load_beat_dataset(path: str | Path) -> BeatDataset:
    """Open a dataset folder (``manifest.json``, ``beats.parquet``, ``windows.npy``).

    Raises
    ------
    FileNotFoundError
        A required file is missing (run ``vitalgru ingest`` first).
    ValueError
        The files disagree (row counts, label range).

    The files are read under a shared claim on the folder (:func:`vitalgru.claims.reading`):
    while an ingest rewrites it, this waits and then reads the new dataset, never half of
    each. The windows stay mapped from the file read, which a later ingest replaces rather
    than overwrites.
    """
    p = Path(path)
    with reading(p, f"the dataset folder {p}", log=logger):
        for name in ("manifest.json", "beats.parquet", "windows.npy"):
            if not (p / name).exists():
                raise FileNotFoundError(
                    f"{p / name} not found: build the dataset with `vitalgru ingest` first"
                )
        manifest = json.loads((p / "manifest.json").read_text())
        beats = pd.read_parquet(p / "beats.parquet")
        windows = np.load(p / "windows.npy", mmap_mode="r")
    beats["record_id"] = beats["record_id"].astype(str)
    if windows.shape[0] != len(beats):
        raise ValueError(
            f"{p}: windows.npy has {windows.shape[0]} rows but beats.parquet {len(beats)}"
        )
    labels = beats["label"].to_numpy()
    if labels.size and (labels.min() < 0 or labels.max() >= len(AAMI_CLASSES)):
        raise ValueError(f"{p}: labels outside 0..{len(AAMI_CLASSES) - 1}")
    return BeatDataset(p, manifest, beats, windows)


class BeatSequenceDataset(Dataset):
    """Sequences of consecutive beats for a GRU.

    In training mode each item is a random crop of ``seq_len`` beats from a record drawn
    with probability proportional to its length (``n_items`` items per epoch); in
    evaluation mode each item is one whole record.

    Items are dicts ``{"x": (T, n_features), "labels": (T,), "sample_idx": (T,),
    "record": str}``.
    """

    def __init__(
        self,
        records: Sequence[RecordBeats],
        seq_len: int | None = None,
        n_items: int | None = None,
        seed: int = 0,
    ) -> None:
        if not records:
            raise ValueError("BeatSequenceDataset needs at least one record")
        if seq_len is not None and seq_len < 1:
            raise ValueError(f"seq_len must be >= 1, got {seq_len}")
        self.records = list(records)
        self.seq_len = seq_len
        lengths = np.array([len(r) for r in self.records], dtype=np.float64)
        self._p = lengths / lengths.sum()
        if n_items is None:
            n_items = (
                len(self.records) if seq_len is None else max(1, int(lengths.sum() // seq_len))
            )
        self.n_items = n_items
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.n_items if self.seq_len is not None else len(self.records)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if self.seq_len is None:
            rec = self.records[i]
            s, e = 0, len(rec)
        else:
            rec = self.records[int(self._rng.choice(len(self.records), p=self._p))]
            n = len(rec)
            if n <= self.seq_len:
                s, e = 0, n
            else:
                s = int(self._rng.integers(0, n - self.seq_len + 1))
                e = s + self.seq_len
        return {
            "x": torch.from_numpy(rec.x[s:e]),
            "labels": torch.from_numpy(rec.labels[s:e]),
            "sample_idx": torch.from_numpy(rec.sample_idx[s:e]),
            "record": rec.record_id,
        }


def collate_beat_sequences(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Pad items to the longest sequence (labels padded with :data:`IGNORE_LABEL`).

    Returns ``{"x": (B, T, n_features), "labels": (B, T), "lengths": (B,),
    "records": list[str]}``, plus ``"sample_idx": (B, T)`` int64 (padded with 0) when
    every item has it.
    """
    t_max = max(int(it["labels"].shape[0]) for it in items)
    b = len(items)
    x0 = items[0]["x"]
    x = torch.zeros((b, t_max, x0.shape[1]), dtype=x0.dtype)
    labels = torch.full((b, t_max), IGNORE_LABEL, dtype=torch.long)
    lengths = torch.zeros(b, dtype=torch.long)
    for i, it in enumerate(items):
        n = int(it["labels"].shape[0])
        x[i, :n] = it["x"]
        labels[i, :n] = it["labels"]
        lengths[i] = n
    out = {
        "x": x,
        "labels": labels,
        "lengths": lengths,
        "records": [it["record"] for it in items],
    }
    if all("sample_idx" in it for it in items):
        idx = torch.zeros((b, t_max), dtype=torch.long)
        for i, it in enumerate(items):
            idx[i, : int(it["labels"].shape[0])] = it["sample_idx"]
        out["sample_idx"] = idx
    return out
