"""``vitalgru replay``: recordings replayed as live bedside feeds through the streaming
monitors (:mod:`vitalgru.scoring`), with a report for the data team (JSON, markdown) and one
for clinicians (HTML).

``replay arrhythmia``: where ``vitalgru evaluate arrhythmia`` classifies the annotators'
beats, this runs what a monitor runs: the detector finds the beats, each patient's state is
carried chunk by chunk, all records advance together as concurrent patients, and alarms are
raised as they would be at the bedside; it is scored beat by beat against the reference
(unannotated recordings, ``annotations=None``: the calls are counted instead).

``replay early-warning``: every stay of a Challenge-2019 folder is fed one ICU hour per tick,
all patients together, with the file's own values (the monitor applies the plausibility
limits and says what it refused); it is scored with the challenge's utility and the alarm
burden, and each alarm episode is listed with the findings when it began.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.arrhythmia_files import load_arrhythmia_config
from pipelines.evaluate import config_lead, folder_metrics, parse_records, unlabelled_folder_metrics
from vitalgru import tracking
from vitalgru.claims import replace_file, replacing
from vitalgru.data.early_warning import check_some_patients, patient_offsets
from vitalgru.dsp.vitals import refused_column_warnings, vitals_plausibility
from vitalgru.dsp.vitals_units import unit_mixup_warnings
from vitalgru.io import open_database
from vitalgru.io.file_names import check_distinct_names
from vitalgru.io.ingest import write_attrition
from vitalgru.io.psv import MEASUREMENT_COLUMNS
from vitalgru.io.psv_folder import read_psv_folder
from vitalgru.io.wfdb_writer import check_annotation_extension, write_beat_labels
from vitalgru.metrics.aami import fallback_lead_lines, report_markdown
from vitalgru.metrics.early_warning import report_markdown as utility_markdown
from vitalgru.metrics.early_warning_unlabelled import unlabelled_report_markdown
from vitalgru.models.tasks import ARRHYTHMIA_KINDS, EARLY_WARNING_KINDS
from vitalgru.reports.early_warning import KEY_MEASURES, early_warning_report_html, stay_summary
from vitalgru.reports.fhir import ecg_bundle, sepsis_bundle
from vitalgru.reports.monitoring import monitoring_report_html, patient_summary
from vitalgru.scoring import (
    AlertRules,
    ArrhythmiaMonitor,
    EarlyWarningMonitor,
    replay_database,
    replay_stays,
)
from vitalgru.scoring.early_warning_stays import LIMITED_COLUMNS
from vitalgru.scoring.ward_sepsis import ALARM_DRIVERS

logger = logging.getLogger(__name__)


def _progress() -> Callable[[int, int], None]:
    """A tick callback that logs each tenth of the replay."""
    step = 1  # next tenth of the ticks to log

    def progress(k: int, n: int) -> None:
        nonlocal step
        if k * 10 >= step * n:
            logger.info("replay: %d of %d ticks", k, n)
            step += 1

    return progress


def _out_paths(out: str, default_stem: str) -> Path:
    """The JSON path of ``--out``: the path itself, or ``<folder>/<default_stem>.json``."""
    o = Path(out)
    path = o if o.suffix == ".json" else o / f"{default_stem}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}"


def _detection_lines(report: Mapping[str, Any], title: str) -> list[str]:
    """The matched beats' AAMI table and the detection against the reference."""
    d = report["detection"]
    return [
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
    ]


def replay_markdown(report: Mapping[str, Any], title: str) -> str:
    """The replay report as markdown: detection and the matched beats' AAMI table (for
    unannotated recordings, the beats called each class), the records monitored on a
    fall-back lead, alarms, latency and throughput."""
    lat, comp = report["latency_s"], report["compute"]
    lines = [
        *(
            _detection_lines(report, title)
            if report["annotated"]
            else [report_markdown(report["calls"], f"{title}: beats called").rstrip()]
        ),
        *fallback_lead_lines(report.get("records") or {}, "Monitored"),
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
    annotations: str | None = "atr",
    write_annotations: str | None = None,
) -> dict[str, Any]:
    """Replay records of a WFDB database through the live monitor and score it.

    Parameters
    ----------
    model_uri : str
        ``models:/vitalgru-arrhythmia@champion``, ``models:/<name>/<version>``, ...
    db : str
        PhysioNet database name or a folder of WFDB records (with beat annotations unless
        ``annotations`` is None).
    records : str or None
        Comma-separated names, ``"DS1"``/``"DS2"``, or ``None``/``"all"``.
    out : str
        A ``.json`` path, or a folder (``replay.json`` inside); beside it the markdown
        report, a clinician's summary page (``.html``, one section per patient) and the
        heart rates and alarms as a FHIR bundle (``.fhir.json``, :mod:`vitalgru.reports.fhir`).
    chunk_s : float
        Seconds of signal per patient per tick.
    margin_s : float, optional
        The monitor's filtering margin (default: the monitor's).
    alert_rules : mapping, optional
        Alarm limits (:class:`vitalgru.scoring.AlertRules` fields).
    config_path : str, optional
        Training config for ``ingest.physionet`` (mirror, cache) and the lead.
    annotations : str or None
        Extension of the reference annotation files; None for recordings nobody
        annotated: they are replayed and reported (calls, alarms, the clinician's page)
        without scores.
    write_annotations : str, optional
        Also write the monitor's beats and labels as WFDB annotation files with this
        extension, ``annotations/<record>.<ext>`` beside the report
        (:mod:`vitalgru.io.wfdb_writer`: ``bxb`` compares them with the reference).

    Returns
    -------
    dict
        The report of :func:`vitalgru.scoring.replay_database` with ``model_uri``,
        ``model_version``, ``database`` and ``paths``.
    """
    if write_annotations is not None:  # before minutes of replay
        check_annotation_extension(write_annotations, annotations)
    cfg = load_arrhythmia_config(config_path)
    rules = AlertRules.from_dict(dict(alert_rules or {}))
    loaded = tracking.load_model(model_uri, kinds=ARRHYTHMIA_KINDS)
    database = open_database(db, cfg.ingest.physionet)
    names = parse_records(records, database.list_records(), database.name)
    if write_annotations is not None:  # one file each: before minutes of replay
        check_distinct_names(names, "records")
    extra = {} if margin_s is None else {"margin_s": margin_s}
    monitor = ArrhythmiaMonitor(loaded.module, loaded.preprocessing, alert_rules=rules, **extra)
    lead = config_lead(cfg, config_path)
    result, report = replay_database(
        monitor, database, names, chunk_s=chunk_s, lead=lead, on_tick=_progress(),
        annotations=annotations,
    )  # fmt: skip
    report = {
        **report,
        "model_uri": model_uri,
        "model_version": loaded.version,
        "database": str(db),
        "margin_s": monitor.margin_s,
        "alert_rules": asdict(rules),
    }
    json_path = _out_paths(out, "replay")
    md = json_path.with_suffix(".md")
    page = json_path.with_suffix(".html")
    fhir = json_path.with_name(f"{json_path.stem}.fhir.json")
    report["paths"] = {
        "json": str(json_path),
        "markdown": str(md),
        "html": str(page),
        "fhir": str(fhir),
    }
    replace_file(md, replay_markdown(report, f"{db}: live replay, model {model_uri}"))
    summaries = [
        patient_summary(
            pid,
            result.stream_s[pid],
            [c.time_s for c in calls],
            [c.label for c in calls],
            [c.signal_ok for c in calls],
            [asdict(a) for a in result.alerts[pid]],
            result.polarity.get(pid),
            lead=report["records"][pid]["signal"],
        )
        for pid, calls in result.calls.items()
    ]
    model = loaded.described(model_uri)
    replace_file(
        page,
        monitoring_report_html(
            summaries,
            title=f"ECG monitoring summary: {db} (replayed)",
            model=model,
            strips=result.strips,
        ),
    )
    replace_file(fhir, json.dumps(ecg_bundle(summaries, model=model), indent=1))
    if write_annotations is not None:
        folder = json_path.parent / "annotations"
        for pid, calls in result.calls.items():
            fs = result.fs[pid]
            write_beat_labels(folder, pid, write_annotations,
                              [c.sample_idx for c in calls],
                              [c.label for c in calls], fs)  # fmt: skip
        report["paths"]["annotations"] = str(folder)
    replace_file(json_path, json.dumps(report, indent=2))
    return report


def replay_early_warning_markdown(report: Mapping[str, Any], title: str) -> str:
    """The early-warning replay as markdown: the challenge's measures, then the alarms and
    what the replay cost."""
    a, comp = report["alarms"], report["compute"]
    measured = {**report["metrics"], **report["data"]}
    d = report["data"]
    outside = (
        [
            f"- {d['n_patients_outside_population']} patients "
            f"({d['n_hours_outside_population']} hours) scored outside the model's training "
            "population (younger than its youngest training patient, or a vital sign beyond "
            "its training patients' range): their risks are extrapolations."
        ]
        if d.get("n_patients_outside_population")
        else []
    )
    lines = [
        (
            utility_markdown(measured, title)
            if report["metrics"].get("labelled", True)
            else unlabelled_report_markdown(measured, title)
        ).rstrip(),
        "",
        "## Alarms at the bedside",
        "",
        f"- {a['patients_alarmed']} of {report['metrics']['n_patients']} patients had an "
        f"alarm; {a['episodes']} alarm episodes (hours in a row at or above the threshold), "
        f"median {a['episode_hours_median']} h long."
        if a["episodes"]
        else "- No alarm was raised.",
        f"- {a['patients_in_alarm_at_end']} patients were in alarm at their last hour.",
        f"- {report['data']['n_refused_values']} values refused as physiologically impossible "
        "(read as missing).",
        *outside,
        "",
        "## Throughput",
        "",
        f"{comp['patients']} patients fed one ICU hour per tick: {comp['ticks']} ticks, p50 "
        f"{comp['tick_ms_p50']:.1f} ms and p99 {comp['tick_ms_p99']:.1f} ms per tick; "
        f"{comp['patient_hours_per_s']:.0f} patient-hours per second of compute."
        if comp["ticks"]
        else "Nothing was replayed.",
        "",
    ]
    return "\n".join(lines)


def replay_early_warning(
    model_uri: str,
    data: str,
    out: str,
    *,
    patients: int | None = None,
) -> dict[str, Any]:
    """Replay the stays of a Challenge-2019 folder through the live sepsis monitor.

    Parameters
    ----------
    model_uri : str
        ``models:/vitalgru-early-warning@champion``, ``models:/<name>/<version>``, ...
    data : str
        Folder of ``.psv`` files (malformed files go to attrition and are listed).
    out : str
        A ``.json`` path, or a folder (``replay.json`` inside); beside it the markdown
        report, the clinician's page (``.html``), every scored hour (``.hours.parquet``:
        patient, hour, risk, alarm, refused columns, reference label), the attrition
        (``.attrition.csv``) and the risks and alarms as a FHIR bundle (``.fhir.json``,
        :mod:`vitalgru.reports.fhir`).
    patients : int, optional
        Replay only the first ``patients`` files (by name).

    Returns
    -------
    dict
        ``metrics`` (:func:`vitalgru.metrics.early_warning.early_warning_metrics` on the live
        risks; measures that need a septic patient are None without one; for a folder
        without ``SepsisLabel``, :func:`pipelines.evaluate.unlabelled_folder_metrics`: no
        accuracy figure, and no label column in the hours), ``alarms``,
        ``data`` (files excluded, values refused, ``implausible_value_warnings``: columns
        of which more than half the measured values were refused, ``unit_warnings``: lab
        columns whose median looks like another unit's, replayed as they are), ``compute``
        (:meth:`~vitalgru.scoring.early_warning_replay.StayReplay.compute_summary`),
        ``patients`` (each patient's :func:`~vitalgru.reports.early_warning.stay_summary`
        without its trajectory), ``excluded``, ``model_uri``, ``model_version``, ``data_dir``
        and ``paths``.

    Raises
    ------
    vitalgru.errors.RecordError
        Not one file could be read (reason ``no_usable_patient``).
    """
    loaded = tracking.load_model(model_uri, kinds=EARLY_WARNING_KINDS)
    psv = read_psv_folder(data, on_error="skip", limit=patients)
    check_some_patients(psv, data)
    frame = psv.frame
    # a column mostly refused (an export's temperatures in °F, a sex coded 1/2) is no
    # artefact: said, as evaluate says it, over the same columns (the monitor refuses each
    # value; only the folder shows the pattern)
    limited = frame[LIMITED_COLUMNS].to_numpy(np.float32)
    refused_whole = refused_column_warnings(
        limited, vitals_plausibility(limited, LIMITED_COLUMNS)[1], LIMITED_COLUMNS
    )
    for text in refused_whole:
        logger.warning("%s: %s; the model sees these values as not measured", data, text)
    values = frame[list(MEASUREMENT_COLUMNS)].to_numpy(np.float32)
    units = unit_mixup_warnings(values, MEASUREMENT_COLUMNS)
    for text in units:  # a glucose in mmol/L passes the limits: only its median tells
        logger.warning("%s: %s", data, text)
    monitor = EarlyWarningMonitor(loaded.module, loaded.preprocessing)
    result = replay_stays(monitor, frame, on_tick=_progress(), explain=ALARM_DRIVERS)
    offsets, ids = patient_offsets(frame)
    thr = monitor.threshold
    # a folder without SepsisLabel: replayed all the same, without accuracy figures
    labels = frame["sepsis_label"].to_numpy(np.int8) if psv.labelled else None
    risks = np.array([r.risk for pid in ids for r in result.risks[pid]], dtype=np.float64)
    hours = frame["hour"].to_numpy(np.int64)
    if labels is None:
        metrics = unlabelled_folder_metrics(risks, offsets, thr, data, hours)
    else:
        metrics = folder_metrics(labels, risks, offsets, thr, data, hours)
    # the findings' measures, and every column a value was refused in (the page shows it)
    refused_in = {c for hr in result.risks.values() for r in hr for c in r.rejected}
    shown = {
        c: frame[c].to_numpy(np.float64)
        for c in frame.columns
        if c in KEY_MEASURES or c in refused_in
    }
    summaries = []
    for i, pid in enumerate(ids):
        a, b = int(offsets[i]), int(offsets[i + 1])
        hr = result.risks[pid]
        summaries.append(
            stay_summary(
                pid,
                [r.hour for r in hr],
                [r.risk for r in hr],
                thr,
                {c: v[a:b] for c, v in shown.items()},
                [r.rejected for r in hr],
                None if labels is None else labels[a:b],
                [r.probability for r in hr],
                {h: [d.as_dict() for d in ds] for h, ds in result.drivers.get(pid, {}).items()},
                [r.outside for r in hr],
            )
        )
    episodes = [ep["hours"] for s in summaries for ep in s["episodes"]]
    refused = [r for s in summaries for r in s["rejected"]]
    report: dict[str, Any] = {
        "model_uri": model_uri,
        "model_version": loaded.version,
        "data_dir": str(data),
        "metrics": metrics,
        "alarms": {
            "patients_alarmed": sum(bool(s["episodes"]) for s in summaries),
            "patients_in_alarm_at_end": sum(s["in_alarm_at_end"] for s in summaries),
            "episodes": len(episodes),
            "episode_hours_median": float(np.median(episodes)) if episodes else None,
        },
        "data": {
            "n_excluded_files": len(psv.attrition),
            "n_non_numeric_values": int(sum(psv.non_numeric_cells.values())),
            "n_refused_values": len(refused),
            # scored outside the model's training population (a child; a vital sign beyond
            # the training patients' range): those risks are extrapolations
            "n_patients_outside_population": sum(
                bool(s["outside_population"]["hours"]) for s in summaries
            ),
            "n_hours_outside_population": sum(s["outside_population"]["hours"] for s in summaries),
            "implausible_value_warnings": refused_whole,
            "unit_warnings": units,
        },
        "compute": result.compute_summary(),
        "excluded": {e.item: {"reason": e.reason, "detail": e.detail} for e in psv.attrition},
        "patients": {
            s["patient_id"]: {k: v for k, v in s.items() if k != "trajectory"} for s in summaries
        },
    }
    json_path = _out_paths(out, "replay")
    paths = {
        "json": json_path,
        "markdown": json_path.with_suffix(".md"),
        "html": json_path.with_suffix(".html"),
        "hours": json_path.with_name(f"{json_path.stem}.hours.parquet"),
        "attrition": json_path.with_name(f"{json_path.stem}.attrition.csv"),
        "fhir": json_path.with_name(f"{json_path.stem}.fhir.json"),
    }
    report["paths"] = {k: str(v) for k, v in paths.items()}
    hours = pd.DataFrame(
        {
            "patient_id": np.repeat(ids, np.diff(offsets)),
            "hour": frame["hour"].to_numpy(),
            "risk": risks.astype(np.float32),
            "alarm": (risks >= thr).astype(np.int8),
            "refused": [",".join(r.rejected) for pid in ids for r in result.risks[pid]],
            **({} if labels is None else {"sepsis_label": labels}),
        }
    )
    with replacing(paths["hours"]) as t:
        hours.to_parquet(t, index=False)
    with replacing(paths["attrition"]) as t:
        write_attrition(psv.attrition, t)
    title = f"{data}: live replay, model {loaded.described(model_uri)}"
    replace_file(paths["markdown"], replay_early_warning_markdown(report, title))
    model = loaded.described(model_uri)
    replace_file(
        paths["html"],
        early_warning_report_html(
            summaries,
            title=f"Sepsis early warning summary: {Path(data).name} (replayed)",
            model=model,
        ),
    )
    replace_file(paths["fhir"], json.dumps(sepsis_bundle(summaries, model=model), indent=1))
    replace_file(json_path, json.dumps(report, indent=2))
    return report
