"""The monitoring checks behind ``vitalgru monitor`` (:mod:`pipelines.monitor`): score new
data with a registered model and compare with what the model was trained and gated on.

:func:`check_early_warning` scores a Challenge-2019-format folder of ICU stays with the
sepsis model; :func:`check_arrhythmia` scores the records of a WFDB database with the beat
classifier: the annotated beats, or for unannotated records (a hospital's own recordings)
the beats the R-peak detector finds, as the live monitor does. Each then checks

1. **drift**: the new data's inputs and the model's outputs against the reference stored
   with the model at training time (:mod:`vitalgru.data.drift`): for the sepsis model the
   population stability index of every input column (missing and refused values are
   buckets of their own, so a lab no longer measured or a sign in other units shows up),
   of the length of stay and of the risks, and the alarm burden; for the beat classifier
   the heart rate, the beat amplitude (gain and unit errors, another lead), the share of
   beats in clean signal and the class mix of its calls;
2. **performance**, where the data has labels: utility and AUROC, or DS2 S and V F1,
   against the values the version was gated on, with a tolerated drop; a folder of stays
   without ``SepsisLabel`` (a hospital's own export) gets the drift check alone, its
   performance marked not judged (:data:`UNLABELLED_PERFORMANCE`), as unannotated records do;

and writes the report with its verdict (:mod:`pipelines.monitor_verdict`) as
``monitoring.json`` and ``monitoring.md``. Nothing here touches Prefect or logs to MLflow:
the flows in :mod:`pipelines.monitor` do.
"""

from __future__ import annotations

import json
import logging
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.evaluate import score_folder, score_records
from pipelines.monitor_verdict import performance_against_gate, polarity_note, verdict
from vitalgru import tracking
from vitalgru.claims import replace_file
from vitalgru.data.drift import (
    MIN_RECORDS_FOR_DRIFT,
    arrhythmia_drift,
    early_warning_drift,
)
from vitalgru.data.early_warning import build_cohort, resolve_data_dir
from vitalgru.io.sources import resolve_source
from vitalgru.models.tasks import ARRHYTHMIA_KINDS, EARLY_WARNING_KINDS
from vitalgru.reports.model_monitoring import monitoring_markdown
from vitalgru.training.early_warning import score_cohort

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "models:/vitalgru-early-warning@champion"
#: A folder, or a path under the PhysioNet mirror; a hospital points it at its own export.
DEFAULT_DATA = "challenge-2019/training_setA"
DEFAULT_OUT = "vitalgru-out/monitoring/early-warning"
DEFAULT_ARRHYTHMIA_MODEL = "models:/vitalgru-arrhythmia@champion"
DEFAULT_ARRHYTHMIA_OUT = "vitalgru-out/monitoring/arrhythmia"
#: Tolerated drops below the cross-validated values before a version is called degraded:
#: about twice the fold-to-fold standard deviation of the registered blend (utility sd
#: 0.022, AUROC sd 0.014 over the five folds; benchmarks/results/early_warning.md). A
#: folder much smaller than a fold (about 3,500 patients) varies more than that.
MAX_UTILITY_DROP = 0.05
MAX_AUROC_DROP = 0.03
#: Tolerated drop of S and V F1 below the DS2 values the arrhythmia version was gated on
#: (retrains with other seeds moved DS2 S F1 by a few points:
#: benchmarks/results/arrhythmia_experiments.md). Another database's patients and
#: annotators move it more; a drop there says "look", not "broken".
MAX_F1_DROP = 0.05


#: The records a check of MIT-BIH scores when none are named: DS2, the records the version
#: was gated on and never trained on. Any other database or folder (a hospital's own
#: recordings) is scored whole, as ``vitalgru evaluate`` scores it.
MITDB_RECORDS = "DS2"


def database_name(db: str) -> str:
    """The database ``db`` names: ``mitdb`` for ``mitdb``, ``mitdb/1.0.0`` and a folder
    ``.../mitdb`` (or ``.../mitdb/1.0.0``, as a mirror may hold it)."""
    parts = Path(str(db)).parts
    if len(parts) > 1 and parts[-1][:1].isdigit():  # <db>/<version>
        return parts[-2]
    return parts[-1] if parts else str(db)


def default_records(db: str, records: str | None) -> str | None:
    """The records a check scores: those named, else (None or blank) :data:`MITDB_RECORDS`
    on MIT-BIH and None (every record, :func:`pipelines.evaluate.parse_records`) on any
    other database."""
    # a field cleared in a deployment's run form comes as "": it is not named, as None is
    # (to parse_records "" is every record, and MIT-BIH's 48 are DS1, the records the
    # version was trained on, and the paced ones: F1 figures that hide a drop)
    if records is not None and not records.strip():
        records = None
    if records is None and database_name(db) == "mitdb":
        return MITDB_RECORDS
    return records


#: Why an unlabelled folder's performance is not judged (``performance["why"]``).
UNLABELLED_PERFORMANCE = (
    "not judged: unlabelled (no file has a SepsisLabel column, so the utility and AUROC "
    "cannot be measured)"
)


def _check_drops(**drops: float) -> None:
    for name, v in drops.items():
        if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
            raise ValueError(f"{name} must be a number >= 0, got {v!r}")


_NO_REFERENCE = (
    "the model was stored without a reference profile (trained before monitoring "
    "existed); retrain it to compare drift"
)


def _drift_reference(loaded: tracking.LoadedModel, notes: list[str]) -> tuple[Any, str]:
    """The reference profile stored with the model and why drift is not checked (``""``
    when it is); a model stored without a reference says so in ``notes`` too."""
    reference = loaded.preprocessing.get("reference")
    if reference is None:
        notes.append(_NO_REFERENCE)
        return None, _NO_REFERENCE
    return reference, ""


def _finish(report: dict[str, Any], out_dir: Path, eval_path: str) -> dict[str, Any]:
    """Status, timestamp and files: ``monitoring.json`` and ``monitoring.md`` in ``out_dir``."""
    report["status"], report["reasons"] = verdict(report["drift"], report["performance"])
    report["checked_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    json_path, md_path = out_dir / "monitoring.json", out_dir / "monitoring.md"
    report["paths"] = {"json": str(json_path), "markdown": str(md_path), "evaluation": eval_path}
    out_dir.mkdir(parents=True, exist_ok=True)
    replace_file(json_path, json.dumps(report, indent=2))
    replace_file(md_path, monitoring_markdown(report))
    logger.info("monitoring %s v%s: %s", report["model_name"], report["model_version"],
                report["status"])  # fmt: skip
    return report


def check_early_warning(
    model_uri: str = DEFAULT_MODEL,
    data: str = DEFAULT_DATA,
    out: str = DEFAULT_OUT,
    max_utility_drop: float = MAX_UTILITY_DROP,
    max_auroc_drop: float = MAX_AUROC_DROP,
) -> dict[str, Any]:
    """Score ``data`` with a sepsis model and compare with the model's reference.

    Writes under ``out``: ``evaluation.json`` (and what
    :func:`pipelines.evaluate.evaluate_early_warning` writes beside it),
    ``monitoring.json`` and ``monitoring.md``. Returns the monitoring report: ``status``,
    ``reasons``, ``notes``, ``performance``, ``drift`` (None for a model stored without a
    reference, with ``drift_why``), ``evaluation`` (the metrics) and ``paths``.
    """
    _check_drops(max_utility_drop=max_utility_drop, max_auroc_drop=max_auroc_drop)
    folder = resolve_data_dir(data, resolve_source().mirror)
    loaded = tracking.load_model(model_uri, kinds=EARLY_WARNING_KINDS)
    cohort = build_cohort(folder)
    out_dir = Path(out)
    metrics, scores, eval_path = score_folder(
        loaded, cohort, str(folder), str(out_dir / "evaluation.json")
    )
    notes: list[str] = []
    if not cohort.labelled:  # said beside the status too: "ok" is of the drift alone
        notes.append("performance not judged: the stays are unlabelled; drift is checked")
    reference, drift_why = _drift_reference(loaded, notes)
    drift = None
    if reference is not None:
        # the reference was profiled on the training stays on the hourly grid the model
        # scores (skipped hours filled in): so are these (rows as read, an export with a
        # row every other hour drifted from its own training data)
        grid, grid_scores = cohort, scores
        if cohort.skipped_hours():
            grid, _ = cohort.on_hourly_grid()
            grid_scores = score_cohort(loaded.module, loaded.preprocessing, grid)
        drift = early_warning_drift(
            reference, grid, grid_scores, float(loaded.preprocessing["threshold"])
        )
    source = str(loaded.config.get("manifest", {}).get("source", ""))
    if source and Path(source).resolve() == folder.resolve():
        notes.append(
            "this folder is the one the model was trained on: its performance here is "
            "not a test on new patients"
        )
    why_not = None
    if not cohort.labelled:
        why_not = UNLABELLED_PERFORMANCE
    elif not metrics.get("n_septic_patients"):
        why_not = "no septic patient in the data (no labels, or none positive)"
    perf = performance_against_gate(
        loaded,
        {k: metrics.get(k) for k in ("utility", "auroc")},
        {"utility": float(max_utility_drop), "auroc": float(max_auroc_drop)},
        why_not,
        {k: [iv.get("low"), iv.get("high")]
         for k, iv in (metrics.get("intervals") or {}).items() if isinstance(iv, dict)},
    )  # fmt: skip
    report: dict[str, Any] = {
        "task": "early-warning",
        "notes": notes,
        "model_uri": model_uri,
        "model_name": loaded.name,
        "model_version": loaded.version,
        "data": str(folder),
        "data_summary": f"`{folder}`, {cohort.n_patients} patients"
        + ("" if cohort.labelled else " (unlabelled)"),
        "n_patients": cohort.n_patients,
        "performance": perf,
        "drift": drift,
        "drift_why": drift_why,
        "evaluation": {k: v for k, v in metrics.items() if k != "paths"},
    }
    return _finish(report, out_dir, str(eval_path))


def check_arrhythmia(
    model_uri: str = DEFAULT_ARRHYTHMIA_MODEL,
    db: str = "mitdb",
    records: str | None = None,
    out: str = DEFAULT_ARRHYTHMIA_OUT,
    max_f1_drop: float = MAX_F1_DROP,
    config_path: str | None = None,
    annotations: str | None = "atr",
) -> dict[str, Any]:
    """Score a database's records with a beat classifier and compare with the model's
    reference.

    ``db``, ``records`` and ``config_path`` are those of ``vitalgru evaluate arrhythmia``;
    ``records`` None is DS2 on MIT-BIH and every record elsewhere (:func:`default_records`).
    ``annotations`` is the extension of the reference annotation files; None for
    unannotated records, whose detected beats are classified: drift is then checked and
    performance is not. Writes under ``out``: ``evaluation.json`` and ``.md``,
    ``monitoring.json`` and ``monitoring.md``; returns the report as
    :func:`check_early_warning` does, with ``evaluation`` holding the accuracy and each
    class's n, Se, +P and F1 (unannotated: the number of beats called each class).
    """
    _check_drops(max_f1_drop=max_f1_drop)
    loaded = tracking.load_model(model_uri, kinds=ARRHYTHMIA_KINDS)
    out_dir = Path(out)
    records = default_records(db, records)
    ev, scores = score_records(
        loaded, db, records, str(out_dir / "evaluation.json"), config_path, annotations
    )
    scored = sorted(scores.facts)
    notes: list[str] = []
    reference, drift_why = _drift_reference(loaded, notes)
    drift = None
    if reference is not None:
        drift = arrhythmia_drift(reference, scores.inputs, scores.y_pred, len(scored))
        if drift["too_few_records"]:
            notes.append(
                f"only {len(scored)} records (fewer than {MIN_RECORDS_FOR_DRIFT}): the "
                "drift figures mostly describe these patients"
            )
    upside_down = polarity_note(scores.facts)
    if upside_down is not None:
        notes.append(upside_down)
    manifest = loaded.config.get("dataset_manifest", {})
    trained = set(map(str, manifest.get("splits", {}).get("DS1", [])))
    if database_name(db) == manifest.get("database", "mitdb") and trained & set(scored):
        notes.append(
            f"{len(trained & set(scored))} of these records are among the model's training "
            "records: its performance on them is not a test"
        )
    classes = ev.get("classes", {})
    has_sv = any((classes.get(c) or {}).get("n") for c in ("S", "V"))
    if not scores.labelled:
        why_not = "the records are not annotated: the beats are the detector's, unlabelled"
    else:
        why_not = None if has_sv else "no S or V beat annotated in these records"
    perf = performance_against_gate(
        loaded,
        # a class no beat of is annotated has no F1 to judge (one false call made it 0,
        # "degraded", on records without S beats)
        {
            k: (classes.get(c) or {}).get("f1") if (classes.get(c) or {}).get("n") else None
            for k, c in (("test_s_f1", "S"), ("test_v_f1", "V"))
        },  # fmt: skip
        {"test_s_f1": float(max_f1_drop), "test_v_f1": float(max_f1_drop)},
        why_not,
        {k: ((ev.get("intervals") or {}).get("classes", {}).get(c) or {}).get("f1")
         for k, c in (("test_s_f1", "S"), ("test_v_f1", "V"))},
    )  # fmt: skip
    evaluation: dict[str, Any] = {
        "accuracy": ev.get("accuracy"),
        "n_beats": int(scores.y_true.size),
        "n_records": len(scored),
        "n_excluded_records": len(ev.get("excluded", {})),
        "annotated": scores.labelled,
    }
    for c, st in classes.items():
        for k in ("n", "se", "ppv", "f1"):
            evaluation[f"{c.lower()}_{k}"] = st.get(k)
    for c, n in ev.get("calls", {}).items():
        evaluation[f"{c.lower()}_called"] = n
    report: dict[str, Any] = {
        "task": "arrhythmia",
        "notes": notes,
        "model_uri": model_uri,
        "model_name": loaded.name,
        "model_version": loaded.version,
        "data": f"{db}:{records or 'all'}",
        "data_summary": f"`{db}` records {records or 'all'}, {len(scored)} records, "
        f"{scores.y_true.size} beats" + ("" if scores.labelled else " (detected, unannotated)"),
        "n_records": len(scored),
        "performance": perf,
        "drift": drift,
        "drift_why": drift_why,
        "evaluation": evaluation,
    }
    return _finish(report, out_dir, ev["paths"]["json"])
