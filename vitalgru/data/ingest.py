"""Beat datasets: from a record and its annotations to the beats, windows and facts of a
dataset (:func:`process_record`); the dataset folder they are written to is
:mod:`vitalgru.data.dataset_files`'s.

Windows sit on the *reference* annotations so every labelled beat is kept (the beat
counts match the published ones); the detector is still run and scored on every record so
that a dataset states how well the automatic front end finds the same beats.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from vitalgru.config import ArrhythmiaDataConfig, FilterConfig
from vitalgru.data.labels import AAMI_MAP, CLASS_INDEX, is_beat
from vitalgru.dsp.beats import RR_FEATURES, beat_windows, rr_features
from vitalgru.dsp.filters import ecg_clean, interpolate_nonfinite
from vitalgru.dsp.polarity import polarity_warning, qrs_polarity
from vitalgru.dsp.quality import ecg_quality, units_hint
from vitalgru.dsp.quality_result import QualityResult
from vitalgru.dsp.quality_stream import ecg_quality_trailing
from vitalgru.dsp.resample import map_indices, resample
from vitalgru.dsp.rpeaks import ecg_rpeaks
from vitalgru.errors import AnnotationMismatchError, SignalError
from vitalgru.metrics.detection import (
    MATCH_WINDOW_S,
    detection_counts,
    match_beats,
    vf_episodes,
)
from vitalgru.types import Annotations, Record

logger = logging.getLogger(__name__)

#: ``label`` of a beat nobody annotated (windows on detected R peaks; ``process_record``).
UNLABELLED = -1

BEAT_COLUMNS: tuple[str, ...] = (
    "record_id",
    "patient_id",
    "split",
    "beat_idx",
    "sample_idx",
    "source_idx",
    "symbol",
    "aami",
    "label",
    *RR_FEATURES,
    "quality_ok",
    "signal_ok",
    "detected",
)


@dataclass
class RecordBeats:
    """Everything the dataset keeps of one record."""

    record_id: str
    patient_id: str
    split: str
    beats: pd.DataFrame
    windows: np.ndarray  # (n_beats, n_window) float32
    signal: np.ndarray  # (n_samples,) float32 filtered lead at the dataset fs
    facts: dict[str, Any] = field(default_factory=dict)


# Modified limb leads (electrodes on the torso, Mason & Likar 1966, as on Holter and monitor
# recordings such as MIT-BIH's MLII) view the heart along nearly the same axis as the
# standard limb lead of the same number, so a record that lacks one is read from the other:
# a 12-lead database (INCART: I, II, ..., V6) gives an MLII model its lead II.
_LEAD_EQUIVALENTS = {
    "MLI": "I", "MLII": "II", "MLIII": "III", "I": "MLI", "II": "MLII", "III": "MLIII",
}  # fmt: skip


def _bare_lead(name: str) -> str:
    """A lead's name without what databases put around it: "ECG II", "Lead II", "ECG-II"
    and "ii" are all "II" (a channel called "ECG1" stays "1": a number, not a lead)."""
    bare = re.sub(r"^(ECG|EKG|LEAD)[\s_:.-]*", "", name.strip().upper())
    return re.sub(r"\s+", "", bare) or name.strip().upper()


def select_lead(record: Record, lead: str | int, fallback: int) -> int:
    """Column of the configured lead (:func:`choose_lead`)."""
    return choose_lead(record, lead, fallback)[0]


def choose_lead(record: Record, lead: str | int, fallback: int) -> tuple[int, bool]:
    """Column of the configured lead, and whether it is the fall-back.

    By name (case-insensitive, and without a prefix such as "ECG " or "Lead ": "ECG II" is
    lead II) if the record has it; else its modified or standard limb
    lead counterpart (MLII and II, ...); else column ``fallback`` (True), with a warning,
    since a model then reads a lead it was not trained on. An index is taken as given.
    """
    try:
        return record.channel_index(lead), False
    except ValueError:
        if isinstance(lead, int):
            raise
    names = [_bare_lead(c) for c in record.channels]
    want = _bare_lead(lead)
    if want in names:  # named with a prefix or spaces ("ECG II", "Lead V1")
        return names.index(want), False
    twin = _LEAD_EQUIVALENTS.get(want)
    if twin is not None and twin in names:
        col = names.index(twin)
        logger.info(
            "record %s has no lead %r; using %s, its limb-lead counterpart",
            record.record_id, lead, record.channels[col],
        )  # fmt: skip
        return col, False
    col = record.channel_index(fallback)
    logger.warning(
        "record %s has no lead %r%s (leads %s); using column %d (%s) instead",
        record.record_id,
        lead,
        f" nor {twin!r}" if twin is not None else "",
        record.channels,
        fallback,
        record.channels[col],
    )
    return col, True


def dataset_filter(x: np.ndarray, fs: float, f: FilterConfig) -> np.ndarray:
    """The dataset's ECG filter (:func:`vitalgru.dsp.filters.ecg_clean`) at the dataset
    rate ``fs``, its low-pass and notch kept below the Nyquist limit. Anything mixed into
    the windows later (recorded noise in training) must pass through the same filter."""
    notch = f.notch_hz if (f.notch_hz is not None and f.notch_hz < 0.45 * fs) else None
    return ecg_clean(
        x,
        fs,
        baseline_hz=f.baseline_hz,
        lowpass_hz=min(f.lowpass_hz, 0.45 * fs),
        notch_hz=notch,
        order=f.order,
    )


#: Below this share of reference beats (in usable signal) on a detected heartbeat, within
#: MATCH_WINDOW_S, the annotations are taken for another recording's. Measured with this
#: detector and the default config: every MIT-BIH record's own annotations match 98.6 % or
#: more, nstdb 118e00 (0 dB SNR) 97.1 %; the annotations of records 100, 208 and 232 laid
#: on records 101, 105, 118, 203, 207, 222 and 231 match 12-25 % (chance alignment).
MIN_ANNOTATION_MATCH = 0.5
#: Fewer reference beats than this are too few to judge the match on.
MIN_BEATS_TO_JUDGE = 20
#: A whole record's median heart rate outside this range (bpm) is more likely a wrong
#: sampling rate in its header than physiology; it is warned about, not refused.
PLAUSIBLE_MEDIAN_HR = (30.0, 200.0)


def reference_beats(
    record: Record, ann: Annotations, n_samples: int
) -> tuple[np.ndarray, np.ndarray, int, float]:
    """The annotated beats of a record, in time order, one per sample, inside the signal.

    Returns ``(sample_idx, symbols, n_outside, median_hr_bpm)``: beats annotated beyond the
    signal (an annotation file from a longer recording) are left out with a warning and
    counted; a median heart rate outside :data:`PLAUSIBLE_MEDIAN_HR` is warned about as a
    likely wrong header rate. ValueError when fewer than two beats remain.
    """
    keep = is_beat(ann.symbol)
    ref = np.asarray(ann.sample_idx[keep], dtype=np.int64)
    symbols = np.asarray(ann.symbol[keep]).astype(str)
    order = np.argsort(ref, kind="stable")
    ref, symbols = ref[order], symbols[order]
    inside = (ref >= 0) & (ref < n_samples)
    n_outside = int((~inside).sum())
    if n_outside:
        logger.warning(
            "record %s: %d of %d beat annotations lie outside its %d samples and are left "
            "out (is the annotation file from a longer recording?)",
            record.record_id, n_outside, inside.size, n_samples,
        )  # fmt: skip
        ref, symbols = ref[inside], symbols[inside]
    # WFDB annotation files occasionally hold two beats on one sample; keep the first.
    uniq = np.ones(ref.size, dtype=bool)  # (an empty array when there are none)
    uniq[1:] = np.diff(ref) > 0
    ref, symbols = ref[uniq], symbols[uniq]
    if ref.size < 2:
        raise ValueError(f"record {record.record_id}: fewer than two annotated beats")
    return ref, symbols, n_outside, _median_hr(record, ref, "annotated")


def _median_hr(record: Record, beats: np.ndarray, whose: str) -> float:
    """Median heart rate (bpm) of ``beats`` at the header's rate, warned about when it is
    outside :data:`PLAUSIBLE_MEDIAN_HR` (a likely wrong header rate)."""
    median_hr = 60.0 * record.fs / float(np.median(np.diff(beats)))
    if not PLAUSIBLE_MEDIAN_HR[0] <= median_hr <= PLAUSIBLE_MEDIAN_HR[1]:
        logger.warning(
            "record %s: the %s beats give a median heart rate of %.0f bpm at the "
            "header's %g Hz; if that is not this patient's, the header's sampling rate is "
            "wrong (RR features and windows scale with it)",
            record.record_id, whose, median_hr, record.fs,
        )  # fmt: skip
    return median_hr


def detected_beats(record: Record, det: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, float]:
    """The detector's beats of an unannotated record, in the form of :func:`reference_beats`
    (symbols empty: nobody labelled them). ValueError when fewer than two were found."""
    ref = np.unique(np.asarray(det, dtype=np.int64))
    if ref.size < 2:
        raise ValueError(
            f"record {record.record_id}: the detector found fewer than two beats (no "
            "annotations to fall back on)"
        )
    return ref, np.full(ref.size, ""), 0, _median_hr(record, ref, "detected")


def _check_annotations_fit(record: Record, ref_hit: np.ndarray) -> float | None:
    """The share of reference beats on a detected heartbeat (None: too few to judge);
    raise :class:`AnnotationMismatchError` when it is under :data:`MIN_ANNOTATION_MATCH`.
    ``ref_hit`` holds the beats in usable signal only: where the lead is off or noisy, a
    missed beat says nothing about the annotations."""
    if ref_hit.size < MIN_BEATS_TO_JUDGE:
        return None
    share = float(ref_hit.mean())
    if share < MIN_ANNOTATION_MATCH:
        raise AnnotationMismatchError(
            record.record_id,
            f"only {100 * share:.0f} % of its {ref_hit.size} annotated beats in usable "
            "signal lie on a heartbeat detected there (a record's own annotations: over 97 % "
            "even at 0 dB SNR); the annotation file seems to belong to another recording, "
            "or to be shifted in time",
            share=share,
            n_beats=int(ref_hit.size),
        )
    return share


def _check_some_ecg(record: Record, col: int, q: QualityResult) -> None:
    """Raise :class:`SignalError` when every quality window of lead ``col`` has a hard
    flag: such a record has no signal to score, and scoring it would report labels drawn
    from RR timing alone as if the ECG had been read."""
    if q.n_windows == 0 or not q.hard_flagged.all():
        return
    counts = {k: int(getattr(q, k).sum()) for k in q.HARD_FLAGS}
    flags = ", ".join(f"{k} {n}" for k, n in counts.items() if n)
    others = [c for i, c in enumerate(record.channels) if i != col]
    hint = (
        f"; its other leads are {', '.join(others)}: if one of those is usable, choose it "
        "with the config's arrhythmia windows.lead"
        if others
        else ""
    )
    raise SignalError(
        record.record_id,
        f"lead {record.channels[col]} holds no ECG: all {q.n_windows} quality windows are "
        f"rejected ({flags}){units_hint(q.amplitude)}{hint}",
    )


def process_record(
    record: Record, ann: Annotations | None, cfg: ArrhythmiaDataConfig, split: str
) -> RecordBeats:
    """Clean, resample, quality-check, detect and window one record.

    Parameters
    ----------
    record : Record
        The record at its own sampling rate and lead layout.
    ann : Annotations or None
        Its reference annotations (beat and non-beat; non-beats are dropped here). None
        for a recording nobody annotated: the windows then sit on the detected R peaks,
        as a monitor's do, with ``symbol`` and ``aami`` empty and ``label``
        :data:`UNLABELLED`; the facts' ``annotation_match`` and ``rpeaks`` are None.
    cfg : ArrhythmiaDataConfig
        Lead, target fs, filters and window settings.
    split : str
        Split the record belongs to (``"DS1"``, ``"DS2"``, ...).

    Returns
    -------
    RecordBeats

    Raises
    ------
    SignalError
        The lead holds no ECG: all NaN, or every quality window is flat, clipped, off or
        non-finite (a ``ValueError``; its ``reason`` is ``"unusable_lead"``). Windows that
        are only noisy do not count: a noisy record is still scored, its beats flagged.
    AnnotationMismatchError
        Under half of the annotated beats in usable signal lie on a detected heartbeat:
        the annotations are another recording's, or shifted (a ``ValueError``; its
        ``reason`` is ``"annotations_mismatch"``).
    ValueError
        The record has fewer than two beats.
    """
    w = cfg.windows
    f = cfg.filters
    col, fell_back = choose_lead(record, w.lead, w.fallback_lead)
    lead_raw = record.signal[:, col].astype(np.float64)
    if not np.isfinite(lead_raw).any():
        raise SignalError(record.record_id, f"lead {record.channels[col]} is all NaN")
    filled, nan_mask = interpolate_nonfinite(lead_raw)

    # Detection and quality at the source rate, on the raw lead (NaN gaps are flagged by
    # quality; the detector sees them interpolated).
    det = ecg_rpeaks(filled, record.fs)
    # the checks take the lead already bridged: a day at 1000 Hz is 0.7 GB a copy
    q = ecg_quality(lead_raw, record.fs, window_s=w.quality_window_s, peaks=det, filled=filled)
    _check_some_ecg(record, col, q)
    if ann is None:
        ref_src, symbols, n_outside, median_hr = detected_beats(record, det)
        ref_hit = np.ones(ref_src.size, dtype=bool)
        rpeak_counts = annotation_match = None
    else:
        ref_src, symbols, n_outside, median_hr = reference_beats(record, ann, filled.size)
        ref_hit, _ = match_beats(ref_src, det, record.fs, MATCH_WINDOW_S)
        vf = vf_episodes(np.asarray(ann.symbol).astype(str), ann.sample_idx, filled.size)
        rpeak_counts = detection_counts(ref_src, det, record.fs, MATCH_WINDOW_S, exclude=vf)
    win_of_beat = np.clip(np.searchsorted(q.start_idx, ref_src, side="right") - 1, 0, None)
    quality_ok = q.usable[win_of_beat]
    if ann is not None:
        annotation_match = _check_annotations_fit(record, ref_hit[quality_ok])
    live = ecg_quality_trailing(
        lead_raw, record.fs, window_s=w.quality_window_s, hop_s=w.quality_hop_s, peaks=det
    )
    del lead_raw  # not read again; freed before the resampling and filtering below
    signal_ok = live.usable_at(ref_src + int(round(w.after_s * record.fs)))

    fs = float(w.fs)
    if record.fs != fs:
        x = resample(filled, record.fs, fs)
        ref = map_indices(ref_src, record.fs, fs, n_out=x.size)
        # Beats closer than one target sample would collide; physiologically impossible
        # (>= 200 ms refractory), but keep the data consistent if an annotator did it.
        uniq = np.concatenate([[True], np.diff(ref) > 0])
        ref, ref_src, symbols, quality_ok, signal_ok, ref_hit = (
            ref[uniq],
            ref_src[uniq],
            symbols[uniq],
            quality_ok[uniq],
            signal_ok[uniq],
            ref_hit[uniq],
        )
    else:
        x, ref = filled, ref_src
    clean = dataset_filter(x, fs, f).astype(np.float32)

    windows, _inside = beat_windows(clean, ref, fs, w.before_s, w.after_s)
    polarity = qrs_polarity(windows, fs, w.before_s, ok=quality_ok)
    upside_down = polarity_warning(polarity, record.channels[col])
    if upside_down is not None:
        logger.warning("record %s: %s", record.record_id, upside_down)
    rr = rr_features(ref, fs, local_beats=w.local_rr_beats)
    aami = np.array([str(AAMI_MAP[s]) if s else "" for s in symbols])
    labels = np.array(
        [CLASS_INDEX[AAMI_MAP[s]] if s else UNLABELLED for s in symbols], dtype=np.int8
    )
    beats = pd.DataFrame(
        {
            "record_id": record.record_id,
            "patient_id": record.patient_id,
            "split": split,
            "beat_idx": np.arange(ref.size, dtype=np.int32),
            "sample_idx": ref,
            "source_idx": np.asarray(ref_src, np.int64),  # the same beat at the record's rate
            "symbol": symbols,
            "aami": aami,
            "label": labels,
            **{name: rr[:, i] for i, name in enumerate(RR_FEATURES)},
            "quality_ok": quality_ok,
            "signal_ok": signal_ok,
            "detected": ref_hit,
        }
    )
    facts = {
        "patient_id": record.patient_id,
        "split": split,
        "fs_source": float(record.fs),
        "lead": record.channels[col],
        # the lead the model wants, and whether the record lacked it and its counterpart
        "lead_wanted": w.lead,
        "lead_fallback": fell_back,
        "n_samples": int(clean.size),
        "n_beats": int(ref.size),
        "nan_samples": int(nan_mask.sum()),
        "beats_outside_signal": n_outside,
        "median_hr_bpm": median_hr,
        # share of the reference beats in usable signal that the detector found
        "annotation_match": annotation_match,
        "quality_windows": q.n_windows,
        "quality_flagged_windows": int((~q.usable).sum()),
        "signal_bad_beats": int((~signal_ok).sum()),
        "quality_flag_counts": {
            k: int(getattr(q, k).sum())
            for k in ("nonfinite", "flat", "clipped", "lead_off", "noisy")
        },
        # EC57 scoring of the detector against the reference (VF episodes excluded)
        "rpeaks": rpeak_counts,
        # which way the median beat's QRS points (-1 down to +1 up; None: too few beats),
        # and what to check when it points against the lead's usual way
        "qrs_polarity": round(polarity, 3) if math.isfinite(polarity) else None,
        "polarity_warning": upside_down,
    }
    return RecordBeats(record.record_id, record.patient_id, split, beats, windows, clean, facts)
