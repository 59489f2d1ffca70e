"""``vitalgru monitor``: is a registered model still fit for the patients it now scores?

Two Prefect flows, each scheduled in ``prefect.yaml``:

* ``monitor-early-warning`` scores a Challenge-2019-format folder of ICU stays with the
  sepsis model (the champion by default);
* ``monitor-arrhythmia`` scores the records of a WFDB database with the beat classifier:
  the annotated beats, or for unannotated records (a hospital's own recordings) the beats
  the R-peak detector finds, as the live monitor does.

Each then checks

1. **drift**: the new data's inputs and the model's outputs against the reference stored
   with the model at training time (:mod:`vitalgru.data.drift`): for the sepsis model the
   population stability index of every input column (missing and refused values are
   buckets of their own, so a lab no longer measured or a sign in other units shows up),
   of the length of stay and of the risks, and the alarm burden; for the beat classifier
   the heart rate, the beat amplitude (gain and unit errors, another lead), the share of
   beats in clean signal and the class mix of its calls;
2. **performance**, where the data has labels: utility and AUROC, or DS2 S and V F1,
   against the values the version was gated on, with a tolerated drop;

and records the check as an MLflow run in experiment ``vitalgru-monitoring`` and on the
model version's tags (``vitalgru.monitor.*``), so that the registry shows when a version was
last checked and how it fared. The status is ``ok``, ``watch`` (moderate drift), ``drift``
(major drift) or ``degraded`` (performance below the tolerance); drift that could not be
judged at all (too few patients or values) is a reason of its own, ``drift not judged``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, task

from pipelines.evaluate import score_folder, score_records
from vitalgru import tracking
from vitalgru.claims import replace_file
from vitalgru.data.drift import (
    MIN_RECORDS_FOR_DRIFT,
    arrhythmia_drift,
    early_warning_drift,
)
from vitalgru.data.early_warning import build_cohort, resolve_data_dir
from vitalgru.io.sources import resolve_source
from vitalgru.metrics.drift import MIN_EXPECTED_MEASURED, MIN_VALUES_FOR_PSI
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
EXPERIMENT = "vitalgru-monitoring"
#: Status levels, mildest first (``--fail-on`` compares against this order).
STATUSES = ("ok", "watch", "drift", "degraded")
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


def polarity_note(facts: Mapping[str, Mapping[str, Any]]) -> str | None:
    """A note naming the records whose QRS pointed against the lead's usual way
    (``polarity_warning`` in their facts; :mod:`vitalgru.dsp.polarity`), None when none did:
    a hospital's feeds with swapped electrodes show here, and the model was trained on
    upright beats."""
    flagged = sorted(r for r, f in facts.items() if f.get("polarity_warning"))
    if not flagged:
        return None
    names = ", ".join(flagged[:10]) + (", ..." if len(flagged) > 10 else "")
    return (
        f"{len(flagged)} of {len(facts)} records have a QRS pointing against the lead's usual "
        f"way ({names}): swapped electrodes (an inverted lead, on which the model loses its "
        "fusion beats), or a leftward axis; check their leads"
    )


def _performance(
    loaded: tracking.LoadedModel,
    now: Mapping[str, float | None],
    max_drop: Mapping[str, float],
    why_not: str | None,
) -> dict[str, Any]:
    """Measures now against the values the version was gated on."""
    if why_not is None and not (loaded.name and loaded.version):
        why_not = "the model was not loaded from the registry: no gated values to compare"
    if why_not is not None:
        return {"checked": False, "why": why_not, "now": dict(now)}
    ref = tracking.version_gate_values(loaded.name, loaded.version, list(max_drop))
    rows = {}
    for k, limit in max_drop.items():
        r, n = ref.get(k), now.get(k)
        drop = None if r is None or n is None else float(r) - float(n)
        rows[k] = {
            "reference": r,
            "now": n,
            "drop": drop,
            "max_drop": limit,
            "degraded": drop is not None and drop > limit,
        }
    return {"checked": True, "measures": rows}


def _unjudged(drift: Mapping[str, Any]) -> str | None:
    """Why no input nor the output could be judged (every level ``unknown``), None when
    some could."""
    output = drift.get("risk") or drift.get("predicted")
    if any(r["level"] != "unknown" for r in [*drift["inputs"], *([output] if output else [])]):
        return None
    return drift.get("unjudged_why") or (
        f"too few values on every input and output (a PSI needs {MIN_VALUES_FOR_PSI} a side, "
        f"a change of the share measured {MIN_EXPECTED_MEASURED} expected)"
    )


def _status(drift: dict[str, Any] | None, perf: dict[str, Any]) -> tuple[str, list[str]]:
    """The verdict and its reasons. Drift that could not be judged at all leaves the status
    as it is but is a reason of its own, so that it does not read as no drift."""
    reasons: list[str] = []
    status = "ok"
    if perf.get("checked"):
        for k, r in perf["measures"].items():
            if r["degraded"]:
                reasons.append(
                    f"{k} {r['now']:.3f} is {r['drop']:.3f} below the gated "
                    f"{r['reference']:.3f} (tolerated drop {r['max_drop']})"
                )
                status = "degraded"
    if drift is not None:
        if (why := _unjudged(drift)) is not None:
            reasons.append(f"drift not judged: {why}")
        if drift["major"]:
            reasons.append(f"major drift: {', '.join(drift['major'])}")
            status = status if status == "degraded" else "drift"
        if drift["moderate"]:
            reasons.append(f"moderate drift: {', '.join(drift['moderate'])}")
            status = status if status != "ok" else "watch"
    return status, reasons


def _check_drops(**drops: float) -> None:
    for name, v in drops.items():
        if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
            raise ValueError(f"{name} must be a number >= 0, got {v!r}")


_NO_REFERENCE = (
    "the model was stored without a reference profile (trained before monitoring "
    "existed); retrain it to compare drift"
)


def _finish(report: dict[str, Any], out_dir: Path, eval_path: str) -> dict[str, Any]:
    """Status, timestamp and files: ``monitoring.json`` and ``monitoring.md`` in ``out_dir``."""
    report["status"], report["reasons"] = _status(report["drift"], report["performance"])
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
    reference = loaded.preprocessing.get("reference")
    notes: list[str] = []
    drift, drift_why = None, ""
    if reference is None:
        drift_why = _NO_REFERENCE
        notes.append(drift_why)
    else:
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
    perf = _performance(
        loaded,
        {k: metrics.get(k) for k in ("utility", "auroc")},
        {"utility": float(max_utility_drop), "auroc": float(max_auroc_drop)},
        None
        if metrics.get("n_septic_patients")
        else "no septic patient in the data (no labels, or none positive)",
    )
    report: dict[str, Any] = {
        "task": "early-warning",
        "notes": notes,
        "model_uri": model_uri,
        "model_name": loaded.name,
        "model_version": loaded.version,
        "data": str(folder),
        "data_summary": f"`{folder}`, {cohort.n_patients} patients",
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
    records: str | None = "DS2",
    out: str = DEFAULT_ARRHYTHMIA_OUT,
    max_f1_drop: float = MAX_F1_DROP,
    config_path: str | None = None,
    annotations: str | None = "atr",
) -> dict[str, Any]:
    """Score a database's records with a beat classifier and compare with the model's
    reference.

    ``db``, ``records`` and ``config_path`` are those of ``vitalgru evaluate arrhythmia``.
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
    ev, scores = score_records(
        loaded, db, records, str(out_dir / "evaluation.json"), config_path, annotations
    )
    scored = sorted(scores.facts)
    reference = loaded.preprocessing.get("reference")
    notes: list[str] = []
    drift, drift_why = None, ""
    if reference is None:
        drift_why = _NO_REFERENCE
        notes.append(drift_why)
    else:
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
    if Path(str(db)).name == manifest.get("database", "mitdb") and trained & set(scored):
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
    perf = _performance(
        loaded,
        # a class no beat of is annotated has no F1 to judge (one false call made it 0,
        # "degraded", on records without S beats)
        {
            k: (classes.get(c) or {}).get("f1") if (classes.get(c) or {}).get("n") else None
            for k, c in (("test_s_f1", "S"), ("test_v_f1", "V"))
        },  # fmt: skip
        {"test_s_f1": float(max_f1_drop), "test_v_f1": float(max_f1_drop)},
        why_not,
    )
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


def monitoring_metrics(report: dict[str, Any]) -> dict[str, float]:
    """The check's numbers as flat MLflow metrics (undefined ones left out)."""
    out: dict[str, Any] = {
        k: v for k, v in report["evaluation"].items() if not isinstance(v, dict | list)
    }
    drift = report["drift"]
    if drift is not None:
        psis = [x["psi"] for x in drift["inputs"] if x["psi"] is not None]
        output = drift.get("risk") or drift.get("predicted")
        out["risk_psi" if "risk" in drift else "predicted_class_psi"] = output["psi"]
        out["max_input_psi"] = max(psis) if psis else None
        out["n_inputs_major_drift"] = sum(x["level"] == "major" for x in drift["inputs"])
        out["n_inputs_moderate_drift"] = sum(x["level"] == "moderate" for x in drift["inputs"])
    out["status_level"] = STATUSES.index(report["status"])
    return {
        k: float(v)
        for k, v in out.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))
    }


#: The checks as the flows' first tasks.
check_task = task(check_early_warning, name="check-early-warning")
check_arrhythmia_task = task(check_arrhythmia, name="check-arrhythmia")


def log_task(report: dict[str, Any]) -> str:
    """One MLflow run for the check (:func:`log_run_task`, not retried: a retry after the
    run was logged logged a second run of one check) and the version's
    ``vitalgru.monitor.*`` tags (:func:`tag_version_task`, retried: the same tags again)."""
    run_id = log_run_task(report)
    name, version = report["model_name"], report["model_version"]
    if name and version:
        tag_version_task(report, run_id)
    return run_id


@task(name="log-monitoring")
def log_run_task(report: dict[str, Any]) -> str:
    """One MLflow run for the check."""
    name, version = report["model_name"], report["model_version"]
    tags = {
        "vitalgru.monitor.status": report["status"],
        "vitalgru.model_uri": report["model_uri"],
        "vitalgru.data": report["data"],
        "task": report["task"],
    }
    if name and version:
        tags |= {"vitalgru.model_name": name, "vitalgru.model_version": str(version)}
    with tracking.start_run(EXPERIMENT, run_name=f"monitor {name or 'model'} v{version}") as run:
        run.set_tags(tags)
        run.log_metrics(monitoring_metrics(report))
        for p in report["paths"].values():
            run.log_artifact(p, "monitoring")
    return run.run_id


@task(name="tag-monitored-version", retries=2, retry_delay_seconds=5)
def tag_version_task(report: dict[str, Any], run_id: str) -> None:
    """The checked version's ``vitalgru.monitor.*`` tags (the same again on a retry)."""
    tracking.set_version_tags(
        report["model_name"],
        str(report["model_version"]),
        {
            "vitalgru.monitor.status": report["status"],
            "vitalgru.monitor.checked_at": report["checked_at"],
            "vitalgru.monitor.run_id": run_id,
            "vitalgru.monitor.data": report["data"],
            "vitalgru.monitor.reasons": "; ".join(report["reasons"]) or "none",
        },
    )


def _recorded(report: dict[str, Any]) -> dict[str, Any]:
    """Log the check (:func:`log_task`) and answer with what a flow returns: the status,
    reasons, notes, model version, MLflow run id and the files written."""
    run_id = log_task(report)
    return {
        "status": report["status"],
        "reasons": report["reasons"],
        "notes": report["notes"],
        "model_version": report["model_version"],
        "mlflow_run_id": run_id,
        "paths": report["paths"],
    }


@flow(name="monitor-early-warning")
def monitor_early_warning_flow(
    model_uri: str = DEFAULT_MODEL,
    data: str = DEFAULT_DATA,
    out: str = DEFAULT_OUT,
    max_utility_drop: float = MAX_UTILITY_DROP,
    max_auroc_drop: float = MAX_AUROC_DROP,
) -> dict[str, Any]:
    """Check a registered early-warning model on a folder of stays; record it in MLflow."""
    report = check_task(model_uri, data, out, max_utility_drop, max_auroc_drop)
    return _recorded(report)


@flow(name="monitor-arrhythmia")
def monitor_arrhythmia_flow(
    model_uri: str = DEFAULT_ARRHYTHMIA_MODEL,
    db: str = "mitdb",
    records: str | None = "DS2",
    out: str = DEFAULT_ARRHYTHMIA_OUT,
    max_f1_drop: float = MAX_F1_DROP,
    config_path: str | None = None,
    annotations: str | None = "atr",
) -> dict[str, Any]:
    """Check a registered arrhythmia model on a database's records (``annotations`` None:
    unannotated ones, drift only); record it in MLflow."""
    report = check_arrhythmia_task(
        model_uri, db, records, out, max_f1_drop, config_path, annotations
    )
    return _recorded(report)
