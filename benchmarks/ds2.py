"""The MIT-BIH DS2 records as live feeds, with the reference beats to score them against:
what the benchmarks that drive a monitor or a ward with DS2 share."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from common import default_mirror

from vitalgru import tracking
from vitalgru.config import BeatWindowConfig, PhysioNetConfig
from vitalgru.data.ingest import reference_beats, select_lead
from vitalgru.data.labels import AAMI_MAP, CLASS_INDEX
from vitalgru.data.splits import DECHAZAL_DS2
from vitalgru.io import open_database
from vitalgru.metrics.detection import vf_episodes
from vitalgru.scoring import ArrhythmiaMonitor


def ds2_monitor(
    model_uri: str, minutes: float = 0.0
) -> tuple[
    tracking.LoadedModel, ArrhythmiaMonitor, dict[str, tuple[np.ndarray, float]], dict[str, Any]
]:
    """The registered model ``model_uri``, a monitor over it, and DS2 as :func:`ds2_feeds`
    gives it for that monitor's lead: what the benchmarks that replay DS2 through one
    monitor start from."""
    loaded = tracking.load_model(model_uri)
    monitor = ArrhythmiaMonitor(loaded.module, loaded.preprocessing)
    signals, reference = ds2_feeds(monitor.windows, minutes)
    return loaded, monitor, signals, reference


def ds2_feeds(
    windows: BeatWindowConfig, minutes: float = 0.0
) -> tuple[dict[str, tuple[np.ndarray, float]], dict[str, Any]]:
    """``({record: (lead samples, fs)}, {record: (sample_idx, labels, vf, fs)})``: each DS2
    record's lead that ``windows`` names (or its fallback), whole or its first ``minutes``,
    and its reference beats inside that stretch as
    :func:`vitalgru.scoring.replay.live_report` reads them. The beats past a cut are left
    out without the warning ingest gives for each record."""
    ingest_log = logging.getLogger("vitalgru.data.ingest")
    level = ingest_log.level
    ingest_log.setLevel(logging.ERROR)  # "beat annotations lie outside its samples": the cut
    try:
        return _read(windows, minutes)
    finally:
        ingest_log.setLevel(level)


def _read(
    windows: BeatWindowConfig, minutes: float
) -> tuple[dict[str, tuple[np.ndarray, float]], dict[str, Any]]:
    db = open_database("mitdb", PhysioNetConfig(mirror=default_mirror()))
    signals, reference = {}, {}
    for name in DECHAZAL_DS2:
        rec = db.read_record(name)
        ann = db.read_annotations(name, "atr")
        col = select_lead(rec, windows.lead, windows.fallback_lead)
        n = rec.signal.shape[0]
        if minutes > 0:
            n = min(n, int(minutes * 60 * rec.fs))
        x = rec.signal[:n, col].astype(np.float64)
        ref, symbols, _, _ = reference_beats(rec, ann, n)  # the beats inside the cut
        labels = np.array([CLASS_INDEX[AAMI_MAP[s]] for s in symbols], dtype=np.int64)
        vf = vf_episodes(np.asarray(ann.symbol).astype(str), ann.sample_idx, n)
        signals[name] = (x, float(rec.fs))
        reference[name] = (ref, labels, vf, float(rec.fs))
    return signals, reference
