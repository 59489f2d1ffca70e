"""Beat-sequence datasets for the arrhythmia classifier.

Reads the dataset folder written by ``vitalgru ingest`` (``manifest.json``, ``beats.parquet``,
``windows.npy``), turns each record into per-beat model inputs with *causal* feature
functions (the same functions a streaming scorer applies beat by beat), and serves
sequences of consecutive beats to torch.

Per-beat inputs
---------------
One feature vector per beat, ``(2 * n_samples + N_RR_FEATURES,)`` float32: the flattened
morphology channels followed by the RR features (the layout ``ArrhythmiaGRU`` splits).

morphology : ``(2, n_samples)`` float32
    Channel 0 is the beat window divided by the record's running amplitude scale;
    channel 1 is the window minus the record's running median beat (the template),
    divided by the same scale. Running statistics use the current beat and the
    ``template_beats - 1`` beats before it only (causal). Subtracting a patient's own
    template is what lets a model trained on other patients see "this beat differs from
    this patient's usual beat" (de Chazal et al. 2004 and later inter-patient work
    stress patient-relative features; cf. Mondéjar-Guerra et al. 2019).
rr : ``(N_RR_FEATURES,)`` float32
    Logarithms of RR intervals and of their ratios to the patient's running averages
    (Llamedo & Martínez 2011; Mar et al. 2011 use RR relative to the local average).
    ``rr_next`` needs the next beat, so the feature set has a look-ahead of one beat.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from numpy.lib.stride_tricks import sliding_window_view
from torch.utils.data import Dataset

from vitalgru.config import ArrhythmiaDataConfig, BeatWindowConfig, FilterConfig
from vitalgru.types import AAMI_CLASSES

logger = logging.getLogger(__name__)

#: Names of the RR features, in column order.
RR_FEATURES: tuple[str, ...] = (
    "log_rr_prev",
    "log_rr_next",
    "log_rr_prev_over_local",
    "log_rr_next_over_local",
    "log_rr_prev_over_long",
    "log_rr_next_over_long",
    "log_rr_next_over_prev",
    "log_rr_local_over_long",
    "rr_irregularity_local",
    "rr_irregularity_long",
    "rhythm_rr_entropy",
    "rhythm_rr_nrmssd",
)
N_RR_FEATURES = len(RR_FEATURES)
#: Beats of look-ahead the features need (``rr_next``).
LOOKAHEAD_BEATS = 1
#: Label value ignored by the loss (padding).
IGNORE_LABEL = -100
#: Training label "N or S, not told apart" (scored by the summed probability of the two):
#: supraventricular beats of simulated atrial fibrillation (:func:`simulated_af_record`).
SUPRAVENTRICULAR_LABEL = -2

# RR intervals outside 0.15-3 s (400-20 bpm) are detection gaps or artefacts; clip
# them so one missed beat does not dominate a log ratio.
_RR_MIN_S, _RR_MAX_S = 0.15, 3.0
# Smallest amplitude scale (mV) used for normalisation: below this the template is
# noise (flat line or lead-off) and dividing by it would blow the beat up.
_MIN_SCALE_MV = 0.05


@dataclass(frozen=True)
class FeatureSettings:
    """Settings of :func:`beat_features` (logged with the model as preprocessing).

    Attributes
    ----------
    template_beats : int
        Beats in the running median template (current beat included).
    local_rr_beats : int
        Beats in the local RR average (current interval included).
    long_rr_beats : int
        Beats in the long RR average (the patient's own rhythm).
    rhythm_beats : int
        RR intervals in the window of the rhythm features (``rhythm_rr_entropy``,
        ``rhythm_rr_nrmssd``) that tell atrial fibrillation from ectopy.
    """

    template_beats: int = 32
    local_rr_beats: int = 10
    long_rr_beats: int = 300
    rhythm_beats: int = 64

    def __post_init__(self) -> None:
        for name in ("template_beats", "local_rr_beats", "long_rr_beats", "rhythm_beats"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def as_dict(self) -> dict[str, int]:
        return {
            "template_beats": self.template_beats,
            "local_rr_beats": self.local_rr_beats,
            "long_rr_beats": self.long_rr_beats,
            "rhythm_beats": self.rhythm_beats,
        }


def feature_settings_from_preprocessing(preprocessing: Mapping[str, Any]) -> FeatureSettings:
    """The feature settings logged with a model (its preprocessing ``normalisation``)."""
    norm = preprocessing.get("normalisation") or {}
    keys = ("template_beats", "local_rr_beats", "long_rr_beats", "rhythm_beats")
    return FeatureSettings(**{k: int(norm[k]) for k in keys if k in norm})


def data_config_from_preprocessing(
    preprocessing: Mapping[str, Any], lead: str | int | None = None
) -> ArrhythmiaDataConfig:
    """The ingest settings a logged model was trained with (``lead`` overrides the lead)."""
    win = preprocessing.get("window") or {}
    filt = preprocessing.get("filters") or {}
    try:
        windows = BeatWindowConfig(
            lead=lead if lead is not None else (preprocessing.get("lead") or "MLII"),
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


def _causal_mean(x: np.ndarray, n: int) -> np.ndarray:
    """Mean of ``x[max(0, k-n+1) : k+1]`` for every k; ``x`` is ``(m,)``."""
    c = np.concatenate([[0.0], np.cumsum(x, dtype=np.float64)])
    k = np.arange(1, x.shape[0] + 1)
    lo = np.maximum(0, k - n)
    return (c[k] - c[lo]) / (k - lo)


def running_median_template(windows: np.ndarray, n_beats: int) -> np.ndarray:
    """Causal running median beat.

    Parameters
    ----------
    windows : numpy.ndarray
        ``(n, n_samples)`` beat windows of one record, in time order.
    n_beats : int
        Beats in the median (the current one and the ``n_beats - 1`` before it; fewer at
        the start of the record).

    Returns
    -------
    numpy.ndarray
        ``(n, n_samples)`` float32 templates; row k depends on rows ``<= k`` only.
    """
    if windows.ndim != 2:
        raise ValueError(f"windows must be (n_beats, n_samples), got shape {windows.shape}")
    n, length = windows.shape
    if n == 0:
        return np.zeros((0, length), np.float32)
    pad = np.full((n_beats - 1, length), np.nan, np.float32)
    padded = np.concatenate([pad, windows.astype(np.float32)])
    out = np.empty((n, length), np.float32)
    step = 512  # bounded memory: (step, length, n_beats) floats per chunk
    for s in range(0, n, step):
        e = min(n, s + step)
        view = sliding_window_view(padded[s : e + n_beats - 1], n_beats, axis=0)
        if s >= n_beats - 1:  # no padding rows in this chunk
            out[s:e] = np.median(view, axis=-1)
        else:
            out[s:e] = np.nanmedian(view, axis=-1)
    return out


#: Fewest intervals a rhythm window needs before its features are defined (0 before).
_RHYTHM_MIN_BEATS = 8
_RHYTHM_BINS = 16


def rhythm_features(rr_prev: np.ndarray, n_beats: int) -> tuple[np.ndarray, np.ndarray]:
    """Causal RR-rhythm descriptors that separate atrial fibrillation from ectopy.

    Over the last ``n_beats`` intervals (the current one included):

    * **entropy**: Shannon entropy of the intervals' histogram (16 equal bins between the
      window's extremes, the single shortest and longest interval dropped), divided by
      ``log 16``. AF spreads intervals evenly (about 0.85 on MIT-BIH); ectopy clusters
      them in two or three groups (record 232's bradycardia with frequent APCs: 0.3).
    * **nrmssd**: root mean square of successive differences over the mean interval.
      High for both AF and frequent ectopy, near 0.03-0.1 for sinus rhythm.

    AF needs both high (Dash et al., Ann Biomed Eng 37:1701, 2009, combine the same
    two with a turning-point test). In AF there is no organised atrial activity, so
    MIT-BIH's annotators call its beats N, never S; these features let a model (and
    :func:`vitalgru.models.arrhythmia.apply_rhythm_gate`) stop calling irregular AF beats
    premature.

    Returns
    -------
    entropy, nrmssd : numpy.ndarray
        ``(n,)`` float64 each; 0 while fewer than 8 intervals are available.
    """
    rr = np.asarray(rr_prev, np.float64)
    n = rr.shape[0]
    ent = np.zeros(n)
    nrm = np.zeros(n)
    if n < _RHYTHM_MIN_BEATS:
        return ent, nrm
    w = int(max(n_beats, _RHYTHM_MIN_BEATS))
    pad = np.full(w - 1, np.nan)
    view = sliding_window_view(np.concatenate([pad, rr]), w)  # (n, w), row k ends at k
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the first rows are mostly padding
        d = np.diff(view, axis=1)
        nrm = np.sqrt(np.nanmean(d**2, axis=1)) / np.nanmean(view, axis=1)
        srt = np.sort(view, axis=1)  # NaN (padding) sorts last
        count = np.sum(np.isfinite(view), axis=1)
        # Drop the shortest and the longest interval of each window.
        col = np.arange(w)[None, :]
        keep = (col >= 1) & (col < (count - 1)[:, None])
        lo = srt[:, 1]
        hi = np.take_along_axis(srt, np.maximum(count - 2, 1)[:, None], axis=1)[:, 0]
        span = np.where(hi > lo, hi - lo, 1.0)
        rel = np.nan_to_num((srt - lo[:, None]) / span[:, None])
        b = np.clip(np.floor(rel * _RHYTHM_BINS), 0, _RHYTHM_BINS - 1).astype(np.int64)
        hist = np.zeros((n, _RHYTHM_BINS))
        np.add.at(hist, (np.repeat(np.arange(n), w)[keep.ravel()], b.ravel()[keep.ravel()]), 1.0)
        prob = hist / np.maximum(hist.sum(axis=1, keepdims=True), 1.0)
        ent = -np.sum(np.where(prob > 0, prob * np.log(np.where(prob > 0, prob, 1.0)), 0.0), axis=1)
        ent = ent / np.log(_RHYTHM_BINS)
    short = count < _RHYTHM_MIN_BEATS
    ent[short] = 0.0
    nrm[short] = 0.0
    return np.nan_to_num(ent), np.nan_to_num(nrm)


def rr_features(sample_idx: np.ndarray, fs: float, settings: FeatureSettings) -> np.ndarray:
    """RR features of one record's beats.

    Parameters
    ----------
    sample_idx : numpy.ndarray
        ``(n,)`` increasing R-peak sample indices at ``fs``.
    fs : float
        Sampling rate of ``sample_idx`` in Hz.
    settings : FeatureSettings
        Averaging lengths.

    Returns
    -------
    numpy.ndarray
        ``(n, N_RR_FEATURES)`` float32, columns named by :data:`RR_FEATURES`. Row k uses
        beats ``<= k + 1`` (one beat of look-ahead for ``rr_next``).
    """
    if not fs > 0:
        raise ValueError(f"fs must be > 0 Hz, got {fs}")
    t = np.asarray(sample_idx, dtype=np.float64) / fs
    n = t.shape[0]
    if n == 0:
        return np.zeros((0, N_RR_FEATURES), np.float32)
    if n == 1:
        rr = np.array([1.0])
    else:
        if np.any(np.diff(t) <= 0):
            raise ValueError("sample_idx must be strictly increasing")
        rr = np.diff(t)
    rr = np.clip(rr, _RR_MIN_S, _RR_MAX_S)
    # rr_prev[k] = t[k] - t[k-1]; the first beat borrows its successor's interval.
    rr_prev = np.concatenate([rr[:1], rr]) if n > 1 else rr
    rr_next = np.concatenate([rr, rr[-1:]]) if n > 1 else rr
    local = _causal_mean(rr_prev, settings.local_rr_beats)
    long = _causal_mean(rr_prev, settings.long_rr_beats)
    # Irregularity: spread of log successive-RR changes. In atrial fibrillation every
    # interval is "premature" relative to the mean, so prematurity alone would call
    # ordinary AF beats S; irregularity tells the two apart (cf. RR-variability
    # features of Llamedo & Martinez 2011).
    d = np.abs(np.diff(np.log(rr_prev), prepend=np.log(rr_prev[0])))
    irr_local = _causal_mean(d, settings.local_rr_beats)
    irr_long = _causal_mean(d, 5 * settings.local_rr_beats)
    rhythm_ent, rhythm_nrm = rhythm_features(rr_prev, settings.rhythm_beats)
    feats = np.stack(
        [
            np.log(rr_prev),
            np.log(rr_next),
            np.log(rr_prev / local),
            np.log(rr_next / local),
            np.log(rr_prev / long),
            np.log(rr_next / long),
            np.log(rr_next / rr_prev),
            np.log(local / long),
            irr_local,
            irr_long,
            rhythm_ent,
            rhythm_nrm,
        ],
        axis=1,
    )
    return feats.astype(np.float32)


def morphology_features(windows: np.ndarray, settings: FeatureSettings) -> np.ndarray:
    """Template-relative, amplitude-normalised beat windows (see module docstring).

    Parameters
    ----------
    windows : numpy.ndarray
        ``(n, n_samples)`` filtered beat windows (mV) of one record, in time order.

    Returns
    -------
    numpy.ndarray
        ``(n, 2, n_samples)`` float32: [window / scale, (window - template) / scale].
    """
    w = np.asarray(windows, dtype=np.float32)
    template = running_median_template(w, settings.template_beats)
    scale = np.maximum(np.abs(template).max(axis=1), _MIN_SCALE_MV)[:, None]
    return np.stack([w / scale, (w - template) / scale], axis=1).astype(np.float32)


def latest_morphology(windows: np.ndarray, settings: FeatureSettings) -> np.ndarray:
    """Row ``-1`` of :func:`morphology_features` of ``windows``, computed for that beat alone.

    Parameters
    ----------
    windows : numpy.ndarray
        ``(m, n_samples)`` filtered beat windows ending with the beat to describe; only the
        last ``settings.template_beats`` are used (the beat's running template).

    Returns
    -------
    numpy.ndarray
        ``(2, n_samples)`` float32.
    """
    w = np.asarray(windows, dtype=np.float32)[-settings.template_beats :]
    if w.ndim != 2 or w.shape[0] == 0:
        raise ValueError(f"windows must be (n_beats >= 1, n_samples), got shape {w.shape}")
    template = np.median(w, axis=0)
    scale = max(float(np.abs(template).max()), _MIN_SCALE_MV)
    return np.stack([w[-1] / scale, (w[-1] - template) / scale]).astype(np.float32)


def beat_features(
    windows: np.ndarray,
    sample_idx: np.ndarray,
    fs: float,
    settings: FeatureSettings,
    rr_columns: Sequence[str] | None = None,
) -> np.ndarray:
    """Model inputs of one record's beats, in time order.

    Parameters
    ----------
    windows : numpy.ndarray
        ``(n, L)`` filtered beat windows (mV) centred on the R peaks.
    sample_idx : numpy.ndarray
        ``(n,)`` R-peak sample indices at ``fs``.
    fs : float
        Sampling rate in Hz.
    settings : FeatureSettings
    rr_columns : sequence of str, optional
        The RR features to keep, by name and in this order (what a stored model was
        trained with, from its preprocessing ``rr_features``); default all of
        :data:`RR_FEATURES`.

    Returns
    -------
    numpy.ndarray
        ``(n, 2 * L + n_rr)`` float32: morphology channels 0 and 1 flattened,
        then the RR features. Row k depends on beats ``<= k + LOOKAHEAD_BEATS``.
    """
    w = np.asarray(windows)
    if w.ndim != 2:
        raise ValueError(f"windows must be (n_beats, n_samples), got shape {w.shape}")
    if w.shape[0] != np.asarray(sample_idx).shape[0]:
        raise ValueError(
            f"{w.shape[0]} windows but {np.asarray(sample_idx).shape[0]} beat positions"
        )
    morph = morphology_features(w, settings).reshape(w.shape[0], -1)
    rr = select_rr_columns(rr_features(sample_idx, fs, settings), rr_columns)
    return np.concatenate([morph, rr], axis=1)


def select_rr_columns(rr: np.ndarray, rr_columns: Sequence[str] | None) -> np.ndarray:
    """The columns ``rr_columns`` (names of :data:`RR_FEATURES`, in that order) of
    :func:`rr_features` output ``(n, N_RR_FEATURES)``; all of them for None."""
    if rr_columns is None or list(rr_columns) == list(RR_FEATURES):
        return rr
    unknown = [c for c in rr_columns if c not in RR_FEATURES]
    if unknown:
        raise ValueError(f"unknown RR feature(s) {unknown}; this vitalgru has {RR_FEATURES}")
    return rr[:, [RR_FEATURES.index(c) for c in rr_columns]]


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
    pos = int(rng.integers(0, hi))  # random phase: the record may start inside a gap
    gap_scale = (1.0 - af_share) / af_share
    while pos < n:
        length = int(rng.integers(lo, hi + 1))
        in_af[pos : pos + length] = True
        pos += length + int(gap_scale * rng.integers(lo, hi + 1))
    new_rr = rr.copy()
    median = float(np.median(rr))
    labels = rec.labels.copy()
    ratio = rr / np.maximum(_causal_mean(rr, 10), 1e-6)
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
    t = np.concatenate([[0.0], np.cumsum(np.clip(new_rr, _RR_MIN_S, _RR_MAX_S))])
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
    """
    p = Path(path)
    for name in ("manifest.json", "beats.parquet", "windows.npy"):
        if not (p / name).exists():
            raise FileNotFoundError(
                f"{p / name} not found: build the dataset with `vitalgru ingest` first"
            )
    manifest = json.loads((p / "manifest.json").read_text())
    beats = pd.read_parquet(p / "beats.parquet")
    beats["record_id"] = beats["record_id"].astype(str)
    windows = np.load(p / "windows.npy", mmap_mode="r")
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
