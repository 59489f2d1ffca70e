"""Replay recordings as live bedside feeds through an :class:`ArrhythmiaMonitor`, and score
the monitor the way AAMI EC57 scores a device: beat by beat against the reference.

Offline evaluation (:func:`vitalgru.training.arrhythmia_eval.score_database`) classifies the
annotators' beats; a monitor must find the beats itself. Here every detected beat is
matched to a reference beat within EC57's 150 ms window: matched beats give the class
confusion (the usual AAMI table), reference beats never detected are counted as missed and
detections with no reference beat as extra, per class. Detections inside ventricular
flutter episodes are not counted as extra (EC57 leaves flutter out of beat detection).
Recordings nobody annotated are replayed the same way and reported by what was called.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from vitalgru.data.ingest import choose_lead, reference_beats
from vitalgru.data.labels import AAMI_MAP, CLASS_INDEX, is_beat
from vitalgru.io.ingest import iter_records, no_record_error
from vitalgru.io.physionet import Database
from vitalgru.metrics.aami import aami_report, calls_report
from vitalgru.metrics.aami_intervals import record_intervals
from vitalgru.metrics.detection import MATCH_WINDOW_S, match_pairs, vf_episodes
from vitalgru.scoring.alarm_strips import STRIP_LABEL_WAIT_S, alarm_strip, strip_bounds
from vitalgru.scoring.alert_types import Alert
from vitalgru.scoring.arrhythmia import ArrhythmiaMonitor
from vitalgru.scoring.ecg_labels import BeatCall
from vitalgru.types import AAMI_CLASSES, AttritionEntry

logger = logging.getLogger(__name__)

__all__ = ["ReplayResult", "live_report", "replay", "replay_database", "tick_summary"]

_NAMES = [str(c) for c in AAMI_CLASSES]


def tick_summary(tick_compute_s: np.ndarray) -> dict[str, Any]:
    """How long a replay's ticks took: ``ticks``, ``compute_s`` (their sum) and
    ``tick_ms_p50`` / ``tick_ms_p99`` / ``tick_ms_max`` (None without ticks)."""
    t = np.asarray(tick_compute_s, dtype=np.float64)
    return {
        "ticks": int(t.size),
        "compute_s": float(t.sum()),
        "tick_ms_p50": float(np.percentile(t, 50) * 1e3) if t.size else None,
        "tick_ms_p99": float(np.percentile(t, 99) * 1e3) if t.size else None,
        "tick_ms_max": float(t.max() * 1e3) if t.size else None,
    }


@dataclass
class ReplayResult:
    """What a replay produced, per patient, and what it cost."""

    calls: dict[str, list[BeatCall]]
    alerts: dict[str, list[Alert]]
    stream_s: dict[str, float]  # seconds of signal replayed per patient
    tick_compute_s: np.ndarray  # (n_ticks,) wall seconds each push took
    chunk_s: float
    excluded: list[AttritionEntry] = field(default_factory=list)
    # per patient, the ECG strips of the first alarms of each kind (see :func:`replay`)
    strips: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    fs: dict[str, float] = field(default_factory=dict)  # each patient's sampling rate
    # per patient, which way the QRS pointed at the end and what to check when it pointed
    # against the model's lead's usual way (ArrhythmiaMonitor.qrs_polarity)
    polarity: dict[str, tuple[float, str | None]] = field(default_factory=dict)

    def compute_summary(self) -> dict[str, Any]:
        """Throughput of the replay: patient-seconds of signal per wall second, and the
        time one tick (every patient's next ``chunk_s``) took."""
        ticks = tick_summary(self.tick_compute_s)
        signal = float(sum(self.stream_s.values()))
        total = ticks["compute_s"]
        return {
            "patients": len(self.stream_s),
            "chunk_s": self.chunk_s,
            **ticks,
            "signal_s": signal,
            "patient_s_per_s": signal / total if total > 0 else None,
        }


def replay(
    monitor: ArrhythmiaMonitor,
    feeds: Mapping[str, tuple[np.ndarray, float]],
    chunk_s: float = 1.0,
    on_tick: Callable[[int, int], None] | None = None,
    strips_per_kind: int = 1,
) -> ReplayResult:
    """Feed every patient's signal in ``chunk_s`` pieces, all patients each tick.

    Parameters
    ----------
    monitor : ArrhythmiaMonitor
    feeds : mapping
        ``{patient_id: ((n,) samples in mV, fs in Hz)}``.
    chunk_s : float
        Seconds of signal per patient per tick (a bedside feed sends about 0.25-1 s).
    on_tick : callable, optional
        Called with ``(tick, n_ticks)`` after each tick (progress).
    strips_per_kind : int
        ECG strips kept per patient and alarm kind, the first ones
        (:func:`~vitalgru.scoring.alarm_strips.alarm_strip`, as the gateway keeps them).

    Returns
    -------
    ReplayResult
        A patient is discharged at the tick its signal ends.
    """
    if not (chunk_s > 0 and np.isfinite(chunk_s)):
        raise ValueError(f"chunk_s must be a positive number of seconds, got {chunk_s!r}")
    for pid, (_, fs) in feeds.items():
        monitor.admit(pid, fs)
    bounds = {pid: np.round(np.arange(0, x.size / fs + chunk_s, chunk_s) * fs).astype(np.int64)
              for pid, (x, fs) in feeds.items()}  # fmt: skip
    # a feed's ticks: up to the chunk its signal ends in (its boundaries' count was one
    # more, so the progress never reached its end)
    n_ticks = max((int(np.searchsorted(b[1:], feeds[pid][0].size)) + 1
                   for pid, b in bounds.items()), default=0)  # fmt: skip
    calls: dict[str, list[BeatCall]] = {pid: [] for pid in feeds}
    alerts: dict[str, list[Alert]] = {pid: [] for pid in feeds}
    strip_of: dict[str, list[Alert]] = {pid: [] for pid in feeds}  # alarms to keep a strip of
    polarity: dict[str, tuple[float, str | None]] = {}
    live = set(feeds)
    times = []
    for k in range(n_ticks):
        chunks = {}
        ending = []
        for pid in list(live):
            x, _ = feeds[pid]
            b = bounds[pid]
            lo, hi = (int(b[k]), int(b[k + 1])) if k + 1 < b.size else (x.size, x.size)
            chunks[pid] = x[min(lo, x.size) : min(hi, x.size)]
            if hi >= x.size:
                ending.append(pid)
        t0 = time.perf_counter()
        tick = monitor.push(chunks)
        polarity.update({pid: monitor.qrs_polarity(pid) for pid in ending})
        done = [monitor.discharge(pid) for pid in ending]
        times.append(time.perf_counter() - t0)
        for t in (tick, *done):
            for c in t.calls:
                calls[c.patient_id].append(c)
            for a in t.alerts:
                alerts[a.patient_id].append(a)
                if sum(x.kind == a.kind for x in strip_of[a.patient_id]) < strips_per_kind:
                    strip_of[a.patient_id].append(a)
        live.difference_update(ending)
        if on_tick is not None:
            on_tick(k + 1, n_ticks)
        if not live:
            break
    return ReplayResult(
        calls=calls,
        # in time order, whatever the chunks (a tick's alarms came pauses first)
        alerts={pid: sorted(al, key=lambda a: (a.onset_s, a.raised_at_s))
                for pid, al in alerts.items()},  # fmt: skip
        stream_s={pid: x.size / fs for pid, (x, fs) in feeds.items()},
        fs={pid: float(fs) for pid, (_, fs) in feeds.items()},
        polarity=polarity,
        tick_compute_s=np.asarray(times),
        chunk_s=float(chunk_s),
        strips={pid: [_strip(a, feeds[pid], calls[pid], chunk_s) for a in al]
                for pid, al in strip_of.items() if al},
    )  # fmt: skip


def _strip(a: Alert, feed: tuple[np.ndarray, float], calls: list[BeatCall],
           chunk_s: float) -> dict[str, Any]:  # fmt: skip
    """The strip as the gateway completes it, ticking every ``chunk_s``: with the beats
    labelled by the first tick :data:`~vitalgru.scoring.alarm_strips.STRIP_LABEL_WAIT_S` after
    its end (or the end of the recording)."""
    x, fs = feed
    wait = strip_bounds(a)[1] + STRIP_LABEL_WAIT_S
    done = min(math.ceil(wait / chunk_s - 1e-9) * chunk_s, x.size / fs)
    return alarm_strip(a, fs, x, 0, calls, complete=True, labelled_by=done + 1e-9)


def live_report(
    calls: Mapping[str, Sequence[BeatCall]],
    reference: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray, float]],
) -> dict[str, Any]:
    """EC57 beat-by-beat scores of a monitor's calls against reference beats, over whole
    records: the monitor's first minutes are scored too (EC57 and ``bxb`` leave out a
    5-minute learning period by default; ``bxb -f 0`` compares the same beats as this).

    Parameters
    ----------
    calls : mapping
        ``{record: [BeatCall, ...]}`` from :func:`replay`.
    reference : mapping
        ``{record: (sample_idx, labels, vf, fs)}``: reference beat positions at the
        record's input rate, their AAMI class indices, ``(k, 2)`` ventricular flutter
        episodes (:func:`vitalgru.metrics.detection.vf_episodes`) and the rate in Hz.

    Returns
    -------
    dict
        ``{"beats": aami_report of the matched beats (per record too, with its
        record-bootstrap ``intervals``: :func:`vitalgru.metrics.aami_intervals.record_intervals`),
        "detection": {"reference", "detected", "matched", "se", "ppv", "missed": {class: n},
        "extra": {class: n}, "records": {...}}}``.
    """
    ys, ps, rids = [], [], []
    gross: Counter[str] = Counter()
    missed: Counter[str] = Counter()
    extra: Counter[str] = Counter()
    per_record = {}
    for rid, (ref_idx, ref_lab, vf, fs) in reference.items():
        cs = list(calls.get(rid, []))
        det = np.asarray([c.sample_idx for c in cs], dtype=np.int64)
        pred = np.asarray([CLASS_INDEX[c.label] for c in cs], dtype=np.int64)
        ri, di = match_pairs(ref_idx, det, fs, MATCH_WINDOW_S) if det.size else ([], [])
        ri, di = np.asarray(ri, np.int64), np.asarray(di, np.int64)
        ys.append(ref_lab[ri])
        ps.append(pred[di])
        rids.append(np.full(ri.size, rid))
        hit_r = np.zeros(ref_idx.size, bool)
        hit_r[ri] = True
        hit_d = np.zeros(det.size, bool)
        hit_d[di] = True
        in_vf = np.zeros(det.size, bool)
        for a, b in np.asarray(vf, dtype=np.int64).reshape(-1, 2):
            in_vf |= (det >= a) & (det <= b)
        m = Counter(_NAMES[int(v)] for v in ref_lab[~hit_r])
        e = Counter(_NAMES[int(v)] for v in pred[~hit_d & ~in_vf])
        missed += m
        extra += e
        rec = {
            "reference": int(ref_idx.size),
            "detected": int(det.size - (in_vf & ~hit_d).sum()),
            "matched": int(ri.size),
        }
        gross.update(rec)
        per_record[rid] = {**rec, **_se_ppv(rec), "missed": dict(m), "extra": dict(e)}
    y = np.concatenate(ys) if ys else np.zeros(0, np.int64)
    p = np.concatenate(ps) if ps else np.zeros(0, np.int64)
    r = np.concatenate(rids) if rids else np.zeros(0, str)
    g = dict(gross)
    beats = aami_report(y, p, r)
    beats["intervals"] = record_intervals(beats["records"])
    return {
        "beats": beats,
        "detection": {
            **g,
            **_se_ppv(g),
            "missed": {k: missed.get(k, 0) for k in _NAMES},
            "extra": {k: extra.get(k, 0) for k in _NAMES},
            "records": per_record,
        },
    }


def _se_ppv(c: Mapping[str, int]) -> dict[str, float | None]:
    ref, det, tp = c.get("reference", 0), c.get("detected", 0), c.get("matched", 0)
    return {"se": tp / ref if ref else None, "ppv": tp / det if det else None}


def replay_database(
    monitor: ArrhythmiaMonitor,
    db: Database,
    records: Sequence[str],
    *,
    chunk_s: float = 1.0,
    lead: str | int | None = None,
    on_tick: Callable[[int, int], None] | None = None,
    annotations: str | None = "atr",
) -> tuple[ReplayResult, dict[str, Any]]:
    """Replay ``records`` of ``db`` together, as concurrent patients, and score the calls.

    Parameters
    ----------
    monitor : ArrhythmiaMonitor
    db : vitalgru.io.physionet.Database
        A WFDB database, with beat annotations unless ``annotations`` is None.
    records : sequence of str
    chunk_s : float
        Seconds per patient per tick.
    lead : str or int, optional
        Lead to monitor (default: the model's, chosen as ingest chooses it).
    on_tick : callable, optional
        Progress, as in :func:`replay`.
    annotations : str or None
        Extension of the reference annotation files; None for unannotated recordings,
        which are replayed and reported without scores.

    Returns
    -------
    result : ReplayResult
    report : dict
        ``"annotated"``; :func:`live_report` when annotated; ``"calls"`` (the beats called
        each class, per record too: :func:`vitalgru.metrics.aami.calls_report`);
        ``"alerts"`` (per record, and counts by kind),
        ``"latency_s"`` (R peak to label), ``"compute"`` (:meth:`ReplayResult.compute_summary`),
        ``"records"`` (``{record: {"signal": {"lead", "lead_wanted", "lead_fallback"}}}``: the
        lead monitored, the one wanted and whether the record lacked it and its limb-lead
        counterpart, as :func:`vitalgru.data.ingest.choose_lead` chose) and ``"excluded"``
        (records that could not be read).

    Raises
    ------
    vitalgru.errors.RecordError
        No record could be read.
    """
    excluded: list[AttritionEntry] = []
    feeds: dict[str, tuple[np.ndarray, float]] = {}
    reference = {}
    leads: dict[str, dict[str, Any]] = {}  # the lead each record was monitored on
    want = lead if lead is not None else monitor.windows.lead
    for rec, ann in iter_records(db, records, annotation_extension=annotations,
                                 attrition=excluded):  # fmt: skip
        col, fell_back = choose_lead(rec, want, monitor.windows.fallback_lead)
        leads[rec.record_id] = {"lead": rec.channels[col], "lead_wanted": want,
                                "lead_fallback": fell_back}  # fmt: skip
        x = rec.signal[:, col].astype(np.float64)
        if ann is None:  # nothing to score against: the monitor's calls are the report
            feeds[rec.record_id] = (x, float(rec.fs))
            continue
        try:  # the annotated beats as ingest and evaluate take them
            ref, symbols, _, _ = reference_beats(rec, ann, x.size)
        except ValueError as e:  # fewer than two beats: an asystole, a strip all VF
            # replayed all the same (its alarms are what matter most), its calls scored
            # against the beats there are: Se undefined, calls outside VF are extra
            logger.warning("%s/%s: %s; replayed and scored against them", db.name,
                           rec.record_id, e)  # fmt: skip
            keep = is_beat(ann.symbol)
            at = np.asarray(ann.sample_idx[keep], dtype=np.int64)
            inside = (at >= 0) & (at < x.size)
            ref, symbols = at[inside][:1], np.asarray(ann.symbol[keep]).astype(str)[inside][:1]
        labels = np.array([CLASS_INDEX[AAMI_MAP[s]] for s in symbols], dtype=np.int64)
        vf = vf_episodes(np.asarray(ann.symbol).astype(str), ann.sample_idx, x.size)
        feeds[rec.record_id] = (x, float(rec.fs))
        reference[rec.record_id] = (ref, labels, vf, float(rec.fs))
    if not feeds:
        raise no_record_error(db.name, excluded, "read", db=db, extension=annotations)
    result = replay(monitor, feeds, chunk_s, on_tick)
    result.excluded = excluded
    report: dict[str, Any] = {"annotated": annotations is not None}
    if annotations is not None:
        report |= live_report(result.calls, reference)
    report["calls"] = calls_report(
        np.asarray([CLASS_INDEX[c.label] for cs in result.calls.values() for c in cs], np.int64),
        np.asarray([rid for rid, cs in result.calls.items() for _ in cs], dtype=str),
        list(result.calls),  # a record without a beat called has its row of zeros
    )
    lat = np.asarray([c.latency_s for cs in result.calls.values() for c in cs])
    kinds = Counter(a.kind for al in result.alerts.values() for a in al)
    report["alerts"] = {
        "counts": dict(sorted(kinds.items())),
        "records": {rid: [asdict(a) for a in al] for rid, al in result.alerts.items()},
    }
    report["latency_s"] = {
        "p50": float(np.percentile(lat, 50)) if lat.size else None,
        "p99": float(np.percentile(lat, 99)) if lat.size else None,
        "max": float(lat.max()) if lat.size else None,
    }
    report["compute"] = result.compute_summary()
    # as evaluate reports them: a record without the lead nor its counterpart is monitored on
    # the configured fall-back column, a lead the model was not trained on
    report["records"] = {rid: {"signal": leads[rid]} for rid in feeds}
    report["excluded"] = {
        e.item: {k: v for k, v in asdict(e).items() if k not in ("database", "item")}
        for e in excluded
    }
    return result, report
