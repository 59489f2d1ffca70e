"""Score any WFDB database using a trained beat classifier.

Records are read through :mod:`vitalgru.io` (any sampling rate, any lead layout), then
resampled, filtered and windowed with the ingest building blocks
(:func:`vitalgru.data.ingest.process_record`) using the *model's* logged preprocessing
(fs, lead, window, filters), so a model sees exactly the kind of input it was trained on.
Reference beat positions come from the database's annotations (AAMI EC57 evaluation
scores the classifier on the reference beats). Records nobody annotated are classified on
the beats the R-peak detector finds, as the live monitor does; their report says what was
called, without scores.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vitalgru.data.arrhythmia_dataset import RecordBeats, data_config_from_preprocessing
from vitalgru.data.beat_features import beat_features, feature_settings_from_preprocessing
from vitalgru.data.drift import beat_inputs
from vitalgru.data.ingest import UNLABELLED, process_record
from vitalgru.io.file_names import check_distinct_names
from vitalgru.io.ingest import attrition_entry, iter_records, no_record_error
from vitalgru.io.physionet import Database
from vitalgru.io.wfdb_writer import check_annotation_extension, write_beat_labels
from vitalgru.metrics.aami import aami_report, calls_report
from vitalgru.metrics.aami_intervals import record_intervals
from vitalgru.models.arrhythmia import ArrhythmiaGRU
from vitalgru.training.arrhythmia_fit import predict_records
from vitalgru.types import AAMI_CLASSES, AttritionEntry

logger = logging.getLogger(__name__)


def signal_summary(facts: Mapping[str, Any]) -> dict[str, Any]:
    """What a reader of a record's scores must know about the signal behind them.

    From the facts :func:`vitalgru.data.ingest.process_record` records: the lead scored
    (``lead_fallback``: not ``lead_wanted``, the model's, nor its limb-lead counterpart,
    which the record lacked: the configured fall-back column), the source sampling rate and the median heart rate it gives, the quality windows
    rejected (and by which flag), the beats that fell in signal the live quality check
    rejected (their V calls pass through the model's quality gate), the beats annotated
    beyond the signal (left out), the share of annotated beats the detector found, and
    which way the QRS points (:mod:`vitalgru.dsp.polarity`).
    """
    n_beats = int(facts.get("n_beats", 0))
    bad = int(facts.get("signal_bad_beats", 0))
    return {
        "lead": facts.get("lead"),
        "lead_wanted": facts.get("lead_wanted"),
        "lead_fallback": facts.get("lead_fallback"),
        "fs_source": facts.get("fs_source"),
        # from the annotated beats at fs_source: a wrong header rate shows here first
        "median_hr_bpm": facts.get("median_hr_bpm"),
        "quality_windows": int(facts.get("quality_windows", 0)),
        "quality_rejected_windows": int(facts.get("quality_flagged_windows", 0)),
        "quality_flags": dict(facts.get("quality_flag_counts", {})),
        "beats_in_rejected_signal": bad,
        "beats_in_rejected_signal_fraction": bad / n_beats if n_beats else None,
        "nan_samples": int(facts.get("nan_samples", 0)),
        "beats_outside_signal": int(facts.get("beats_outside_signal", 0)),
        # reference beats in usable signal on a detected heartbeat (None: too few)
        "annotation_match": facts.get("annotation_match"),
        # which way the QRS points (-1 down, +1 up), and a warning when it points against
        # the lead's usual way (swapped electrodes, or a leftward axis)
        "qrs_polarity": facts.get("qrs_polarity"),
        "polarity_warning": facts.get("polarity_warning"),
    }


@dataclass
class DatabaseScores:
    """Per-beat results of scoring records."""

    record_ids: np.ndarray  # (n,) str
    y_true: np.ndarray  # (n,) int64 AAMI labels
    y_pred: np.ndarray  # (n,) int64 predicted labels
    probs: np.ndarray  # (n, K) float32
    facts: dict[str, dict[str, Any]]
    # (n,) int64 each beat's R-peak sample at its record's own sampling rate (fs_source)
    samples: np.ndarray
    # Records that could not be scored (unreadable, truncated, failing their checksum, an
    # unusable lead, too few beats), in the order asked for; the rest were scored.
    excluded: list[AttritionEntry] = field(default_factory=list)
    # What the beats looked like (heart rate, amplitude, clean signal), as
    # vitalgru.data.drift.beat_inputs gives them, for comparison with the model's reference.
    inputs: dict[str, tuple[np.ndarray, int]] = field(default_factory=dict)

    @property
    def labelled(self) -> bool:
        """Whether the beats carry reference labels (False: unannotated records, beats
        found by the detector)."""
        return bool((self.y_true != UNLABELLED).all())

    def write_annotations(self, folder: str | Path, extension: str) -> list[Path]:
        """Write each record's predicted labels as a WFDB annotation file
        ``<folder>/<record>.<extension>`` at the beats' own samples and the record's own
        rate (:func:`vitalgru.io.wfdb_writer.write_beat_labels`); returns the files.
        ValueError, before any is written, for two records whose names differ only in
        letter case (:func:`~vitalgru.io.file_names.check_distinct_names`)."""
        check_annotation_extension(extension)
        check_distinct_names(dict.fromkeys(self.record_ids.tolist()), "records")
        names = [str(c) for c in AAMI_CLASSES]
        out = []
        for rid in dict.fromkeys(self.record_ids.tolist()):  # in the order scored
            m = self.record_ids == rid
            out.append(write_beat_labels(
                folder, rid, extension, self.samples[m], [names[k] for k in self.y_pred[m]],
                float(self.facts[rid]["fs_source"]),
            ))  # fmt: skip
        return out

    def report(self) -> dict[str, Any]:
        """:func:`vitalgru.metrics.aami.aami_report` of these beats (of unannotated ones:
        :func:`vitalgru.metrics.aami.calls_report`), per record too (each with its
        ``signal``: :func:`signal_summary`), its record-bootstrap ``intervals``
        (:func:`vitalgru.metrics.aami_intervals.record_intervals`; annotated beats only), and
        ``excluded``: ``{record: {"stage", "reason", "detail"}}`` of those not scored."""
        if self.labelled:
            rep = aami_report(self.y_true, self.y_pred, self.record_ids)
            rep["intervals"] = record_intervals(rep["records"])
        else:
            rep = calls_report(self.y_pred, self.record_ids)
        for rid, r in rep.get("records", {}).items():
            r["signal"] = signal_summary(self.facts.get(rid, {}))
        rep["excluded"] = {
            e.item: {k: v for k, v in asdict(e).items() if k not in ("database", "item")}
            for e in self.excluded
        }
        return rep


def score_database(
    model: ArrhythmiaGRU,
    preprocessing: Mapping[str, Any],
    db: Database,
    records: Sequence[str],
    lead: str | int | None = None,
    on_record: Callable[[str], None] | None = None,
    annotations: str | None = "atr",
) -> DatabaseScores:
    """Classify every annotated beat of ``records`` in ``db`` (or, for unannotated records,
    every beat the R-peak detector finds).

    Parameters
    ----------
    model : ArrhythmiaGRU
    preprocessing : mapping
        Logged with the model (fs, lead, window, filters, feature settings).
    db : vitalgru.io.physionet.Database
    records : sequence of str
    lead : str or int, optional
        Lead to use instead of the model's (a name, or a column index).
    on_record : callable, optional
        Called with each record id when done (progress).
    annotations : str or None
        Extension of the reference annotation files (``"atr"``). None: the records are not
        annotated; the beats the detector finds are classified, with ``y_true``
        :data:`vitalgru.data.ingest.UNLABELLED`.

    Returns
    -------
    DatabaseScores
        A record that cannot be scored (see :attr:`DatabaseScores.excluded`) is logged
        and left out; the others are still scored.

    Raises
    ------
    vitalgru.errors.RecordError
        No record could be scored (the message names each and why).
    ValueError
        The model's preprocessing does not match its input size.
    """
    cfg = data_config_from_preprocessing(preprocessing, lead)
    settings = feature_settings_from_preprocessing(preprocessing)
    fs = float(cfg.windows.fs)
    want = model.n_samples
    rids, ys, ps, probs_all, facts, seen, at = [], [], [], [], {}, [], []
    excluded: list[AttritionEntry] = []
    for rec, ann in iter_records(db, records, annotation_extension=annotations, attrition=excluded):
        rid = rec.record_id
        try:
            item = process_record(rec, ann, cfg, "test")
        except ValueError as e:  # no usable lead, or too few beats
            excluded.append(attrition_entry(db.name, rid, e))
            logger.warning("%s/%s not scored (%s): %s", db.name, rid, excluded[-1].reason, e)
            continue
        if item.windows.shape[1] != want:
            raise ValueError(
                f"record {rid}: windows of {item.windows.shape[1]} samples but the model "
                f"expects {want}; the preprocessing settings do not match the model"
            )
        idx = item.beats["sample_idx"].to_numpy(np.int64)
        x = beat_features(item.windows, idx, fs, settings, preprocessing.get("rr_features"))
        labels = item.beats["label"].to_numpy(np.int64)
        ok = item.beats["signal_ok"].to_numpy(bool)
        (p,) = predict_records(model, [RecordBeats(rid, x, labels, idx, ok)])
        rids.append(np.full(labels.shape[0], rid))
        ys.append(labels)
        ps.append(p.argmax(axis=1))
        probs_all.append(p)
        facts[rid] = item.facts
        at.append(item.beats["source_idx"].to_numpy(np.int64))  # as annotated or detected
        seen.append(beat_inputs(item.windows, idx, rids[-1], fs, ok))
        if on_record is not None:
            on_record(rid)
    if not rids:
        raise no_record_error(db.name, excluded, "scored", db=db, extension=annotations)
    return DatabaseScores(
        record_ids=np.concatenate(rids),
        y_true=np.concatenate(ys),
        y_pred=np.concatenate(ps),
        probs=np.concatenate(probs_all),
        facts=facts,
        samples=np.concatenate(at),
        excluded=excluded,
        inputs={
            k: (np.concatenate([d[k][0] for d in seen]), sum(d[k][1] for d in seen))
            for k in seen[0]
        },
    )
