"""``vitalgru replay arrhythmia``: recordings replayed as live bedside feeds through the
streaming monitor (:mod:`vitalgru.scoring`), scored beat by beat against the reference.

Where ``vitalgru evaluate arrhythmia`` classifies the annotators' beats, this runs what a
monitor runs: the detector finds the beats, each patient's state is carried chunk by chunk,
all records advance together as concurrent patients, and alarms are raised as they would
be at the bedside.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pipelines.arrhythmia import _parse_records, load_arrhythmia_config
from vitalgru import tracking
from vitalgru.io import open_database
from vitalgru.metrics.aami import report_markdown
from vitalgru.models.arrhythmia import ArrhythmiaEnsemble, ArrhythmiaGRU
from vitalgru.reports.monitoring import monitoring_report_html, patient_summary
from vitalgru.scoring import AlertRules, ArrhythmiaMonitor, replay_database

logger = logging.getLogger(__name__)


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}"


def replay_markdown(report: Mapping[str, Any], title: str) -> str:
    """The replay report as markdown: detection, the matched beats' AAMI table, alarms,
    latency and throughput."""
    d = report["detection"]
    lat, comp = report["latency_s"], report["compute"]
    lines = [
        report_markdown(report["beats"], f"{title}: beats found by the monitor").rstrip(),
        "",
        "## Beat detection (EC57 match window 150 ms)",
        "",
        f"{d['matched']} of {d['reference']} reference beats found (Se {_pct(d['se'])} %), "
        f"{d['detected']} detections (+P {_pct(d['ppv'])} %; detections in ventricular "
        "flutter not counted).",
        "",
        "| class | missed reference beats | extra detections labelled |",
        "|---|---:|---:|",
        *(f"| {c} | {d['missed'][c]} | {d['extra'][c]} |" for c in d["missed"]),
        "",
        "## Alarms",
        "",
        *([f"- {k}: {n}" for k, n in report["alerts"]["counts"].items()] or ["- none raised"]),
        "",
        "## Latency and throughput",
        "",
        f"R peak to label: p50 {lat['p50']:.2f} s, p99 {lat['p99']:.2f} s."
        if lat["p50"] is not None
        else "No beats were labelled.",
        f"{comp['patients']} patients fed {comp['chunk_s']:g} s per tick: "
        f"{comp['ticks']} ticks, p50 {comp['tick_ms_p50']:.1f} ms and p99 "
        f"{comp['tick_ms_p99']:.1f} ms per tick; "
        f"{comp['patient_s_per_s']:.0f} patient-seconds of ECG per second of compute.",
        "",
    ]
    return "\n".join(lines)


def replay_arrhythmia(
    model_uri: str,
    db: str,
    records: str | None,
    out: str,
    *,
    chunk_s: float = 1.0,
    margin_s: float | None = None,
    alert_rules: Mapping[str, Any] | None = None,
    config_path: str | None = None,
) -> dict[str, Any]:
    """Replay records of a WFDB database through the live monitor and score it.

    Parameters
    ----------
    model_uri : str
        ``models:/vitalgru-arrhythmia@champion``, ``models:/<name>/<version>``, ...
    db : str
        PhysioNet database name or a folder of WFDB records with beat annotations.
    records : str or None
        Comma-separated names, ``"DS1"``/``"DS2"``, or ``None``/``"all"``.
    out : str
        A ``.json`` path, or a folder (``replay.json`` inside); beside it the markdown
        report and a clinician's summary page (``.html``, one section per patient).
    chunk_s : float
        Seconds of signal per patient per tick.
    margin_s : float, optional
        The monitor's filtering margin (default: the monitor's).
    alert_rules : mapping, optional
        Alarm limits (:class:`vitalgru.scoring.AlertRules` fields).
    config_path : str, optional
        Training config for ``ingest.physionet`` (mirror, cache) and the lead.

    Returns
    -------
    dict
        The report of :func:`vitalgru.scoring.replay_database` with ``model_uri``,
        ``model_version``, ``database`` and ``paths``.
    """
    cfg = load_arrhythmia_config(config_path)
    rules = AlertRules.from_dict(dict(alert_rules or {}))
    loaded = tracking.load_model(model_uri, kinds=(ArrhythmiaGRU, ArrhythmiaEnsemble))
    database = open_database(db, cfg.ingest.physionet)
    names = _parse_records(records, database.list_records(), database.name)
    extra = {} if margin_s is None else {"margin_s": margin_s}
    monitor = ArrhythmiaMonitor(loaded.module, loaded.preprocessing, alert_rules=rules, **extra)
    lead = cfg.ingest.arrhythmia.windows.lead if config_path is not None else None
    step = 1  # next tenth of the ticks to log

    def progress(k: int, n: int) -> None:
        nonlocal step
        if k * 10 >= step * n:
            logger.info("replay: %d of %d ticks", k, n)
            step += 1

    result, report = replay_database(
        monitor, database, names, chunk_s=chunk_s, lead=lead, on_tick=progress
    )
    report = {
        **report,
        "model_uri": model_uri,
        "model_version": loaded.version,
        "database": str(db),
        "margin_s": monitor.margin_s,
        "alert_rules": asdict(rules),
    }
    o = Path(out)
    json_path = o if o.suffix == ".json" else o / "replay.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    md = json_path.with_suffix(".md")
    page = json_path.with_suffix(".html")
    report["paths"] = {"json": str(json_path), "markdown": str(md), "html": str(page)}
    md.write_text(replay_markdown(report, f"{db}: live replay, model {model_uri}"))
    summaries = [
        patient_summary(
            pid,
            result.stream_s[pid],
            [c.time_s for c in calls],
            [c.label for c in calls],
            [c.signal_ok for c in calls],
            [asdict(a) for a in result.alerts[pid]],
        )
        for pid, calls in result.calls.items()
    ]
    page.write_text(
        monitoring_report_html(
            summaries,
            title=f"ECG monitoring summary: {db} (replayed)",
            model=f"{model_uri} (version {loaded.version})",
        )
    )
    json_path.write_text(json.dumps(report, indent=2))
    return report
