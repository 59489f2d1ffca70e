"""``vitalgru monitor early-warning``: is the registered sepsis model still fit for the
patients it now scores?

Prefect flow ``monitor-early-warning`` (scheduled daily in ``prefect.yaml``): score a
Challenge-2019-format folder with a registered model (the champion by default), then

1. **drift**: compare the folder's inputs and the model's risks with the reference stored
   with the model at training time (:mod:`vitalgru.data.drift`): the population stability
   index of every input column (missing and refused values are buckets of their own, so a
   lab no longer measured or a sign in other units shows up), of the length of stay and of
   the risks, and the alarm burden against the validation patients';
2. **performance**, where the folder has outcome labels: utility and AUROC against the
   cross-validated values the version was gated on, with a tolerated drop;

and record the check as an MLflow run in experiment ``vitalgru-monitoring`` and on the model
version's tags (``vitalgru.monitor.*``), so that the registry shows when a version was last
checked and how it fared. The status is ``ok``, ``watch`` (moderate drift), ``drift`` (major
drift) or ``degraded`` (performance below the tolerance).
"""

from __future__ import annotations

import json
import logging
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, task

from pipelines.early_warning import score_folder
from vitalgru import tracking
from vitalgru.data.drift import MIN_PATIENTS_FOR_DRIFT, early_warning_drift
from vitalgru.data.early_warning import build_cohort, resolve_data_dir
from vitalgru.io.physionet import resolve_source
from vitalgru.models.early_warning import GRUDEarlyWarning, SepsisBlend

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "models:/vitalgru-early-warning@champion"
#: A folder, or a path under the PhysioNet mirror; a hospital points it at its own export.
DEFAULT_DATA = "challenge-2019/training_setA"
DEFAULT_OUT = "vitalgru-out/monitoring/early-warning"
EXPERIMENT = "vitalgru-monitoring"
#: Status levels, mildest first (``--fail-on`` compares against this order).
STATUSES = ("ok", "watch", "drift", "degraded")
#: Tolerated drops below the cross-validated values before a version is called degraded:
#: about twice the fold-to-fold standard deviation of the registered blend (utility sd
#: 0.022, AUROC sd 0.014 over the five folds; benchmarks/results/early_warning.md). A
#: folder much smaller than a fold (about 3,500 patients) varies more than that.
MAX_UTILITY_DROP = 0.05
MAX_AUROC_DROP = 0.03


def _performance(
    loaded: tracking.LoadedModel,
    metrics: dict[str, Any],
    max_drop: dict[str, float],
) -> dict[str, Any]:
    """Utility and AUROC now against the values the version was gated on."""
    now = {k: metrics.get(k) for k in max_drop}
    if not metrics.get("n_septic_patients"):
        return {
            "checked": False,
            "why": "no septic patient in the data (no labels, or none positive)",
            "now": now,
        }
    if not (loaded.name and loaded.version):
        return {
            "checked": False,
            "why": "the model was not loaded from the registry: no gated values to compare",
            "now": now,
        }
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


def _status(drift: dict[str, Any] | None, perf: dict[str, Any]) -> tuple[str, list[str]]:
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
        if drift["major"]:
            reasons.append(f"major drift: {', '.join(drift['major'])}")
            status = status if status == "degraded" else "drift"
        if drift["moderate"]:
            reasons.append(f"moderate drift: {', '.join(drift['moderate'])}")
            status = status if status != "ok" else "watch"
    return status, reasons


def _num(v: Any, fmt: str = ".3f") -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, fmt)


def monitoring_markdown(report: dict[str, Any]) -> str:
    """The check as markdown: status and reasons, performance, risks, the inputs that moved."""
    lines = [
        f"# Monitoring: {report['model_uri']} (version {report['model_version']})",
        "",
        f"Data: `{report['data']}`, {report['n_patients']} patients; checked "
        f"{report['checked_at']}.",
        "",
        f"**Status: {report['status']}**",
        "",
    ]
    lines += [f"- {r}" for r in report["reasons"]] or ["- nothing outside the limits"]
    for note in report["notes"]:
        lines.append(f"- note: {note}")
    perf = report["performance"]
    lines += ["", "## Performance", ""]
    if perf["checked"]:
        lines += [
            "| measure | gated (cross-validated) | now | drop | tolerated |",
            "|---|---:|---:|---:|---:|",
        ]
        for k, r in perf["measures"].items():
            lines.append(
                f"| {k} | {_num(r['reference'])} | {_num(r['now'])} | {_num(r['drop'])} | "
                f"{r['max_drop']} |"
            )
    else:
        lines.append(f"Not checked: {perf['why']}.")
    drift = report["drift"]
    lines += ["", "## Drift (population stability index against the model's reference)", ""]
    if drift is None:
        lines.append(f"Not checked: {report['drift_why']}.")
        return "\n".join(lines) + "\n"
    r = drift["risk"]
    lines += [
        "| | reference | now |",
        "|---|---:|---:|",
        f"| risk PSI | | {_num(r['psi'])} ({r['level']}) |",
        f"| median risk | {_num(r['median_ref'])} | {_num(r['median_now'])} |",
        f"| hours in alarm | {_num(100 * r['alarm_hour_fraction_ref'], '.1f')} % | "
        f"{_num(100 * r['alarm_hour_fraction_now'], '.1f')} % |",
        f"| alarms per patient-day | {_num(r['alarms_per_patient_day_ref'], '.2f')} | "
        f"{_num(r['alarms_per_patient_day_now'], '.2f')} |",
        "",
        "Inputs, most shifted first. PSI: of the whole column, missing and refused values "
        "as buckets of their own; of values: of the values present only. Shares are of "
        "patient-hours; refused: outside the plausibility limits. The level is the worst of "
        "the two PSIs and of the change in the share measured (halved or doubled: major).",
        "",
        "| input | level | PSI | PSI of values | measured ref / now | refused ref / now "
        "| median ref / now |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    shown = [x for x in drift["inputs"] if x["level"] != "stable"] or drift["inputs"][:5]
    for x in shown:
        lines.append(
            f"| {x['column']} | {x['level']} | {_num(x['psi'])} | {_num(x['psi_values'])} | "
            f"{_num(100 * x['measured_ref'], '.1f')} / {_num(100 * x['measured_now'], '.1f')} % | "
            f"{_num(100 * x['refused_ref'], '.2f')} / {_num(100 * x['refused_now'], '.2f')} % | "
            f"{_num(x['median_ref'], '.4g')} / {_num(x['median_now'], '.4g')} |"
        )
    rest = len(drift["inputs"]) - len(shown)
    if rest > 0:
        lines += ["", f"{rest} more inputs, none shifted: see the JSON."]
    return "\n".join(lines) + "\n"


def check_early_warning(
    model_uri: str = DEFAULT_MODEL,
    data: str = DEFAULT_DATA,
    out: str = DEFAULT_OUT,
    max_utility_drop: float = MAX_UTILITY_DROP,
    max_auroc_drop: float = MAX_AUROC_DROP,
) -> dict[str, Any]:
    """Score ``data`` with ``model_uri`` and compare with the model's reference.

    Writes under ``out``: ``evaluation.json`` (and what
    :func:`pipelines.early_warning.evaluate_early_warning` writes beside it),
    ``monitoring.json`` and ``monitoring.md``. Returns the monitoring report: ``status``,
    ``reasons``, ``notes``, ``performance``, ``drift`` (None for a model stored without a
    reference, with ``drift_why``), ``evaluation`` (the metrics) and ``paths``.
    """
    for name, v in (("max_utility_drop", max_utility_drop), ("max_auroc_drop", max_auroc_drop)):
        if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
            raise ValueError(f"{name} must be a number >= 0, got {v!r}")
    folder = resolve_data_dir(data, resolve_source().mirror)
    loaded = tracking.load_model(model_uri, kinds=(SepsisBlend, GRUDEarlyWarning))
    cohort = build_cohort(folder)
    out_dir = Path(out)
    metrics, scores, eval_path = score_folder(
        loaded, cohort, str(folder), str(out_dir / "evaluation.json")
    )
    threshold = float(loaded.preprocessing["threshold"])
    reference = loaded.preprocessing.get("reference")
    notes: list[str] = []
    drift, drift_why = None, ""
    if reference is None:
        drift_why = (
            "the model was stored without a reference profile (trained before monitoring "
            "existed); retrain it to compare drift"
        )
        notes.append(drift_why)
    else:
        drift = early_warning_drift(reference, cohort, scores, threshold)
        if drift["too_few_patients"]:
            notes.append(
                f"only {cohort.n_patients} patients (fewer than {MIN_PATIENTS_FOR_DRIFT}): "
                "the drift figures are mostly sampling noise"
            )
    source = str(loaded.config.get("manifest", {}).get("source", ""))
    if source and Path(source).resolve() == folder.resolve():
        notes.append(
            "this folder is the one the model was trained on: its performance here is "
            "not a test on new patients"
        )
    perf = _performance(
        loaded, metrics, {"utility": float(max_utility_drop), "auroc": float(max_auroc_drop)}
    )
    status, reasons = _status(drift, perf)
    report: dict[str, Any] = {
        "status": status,
        "reasons": reasons,
        "notes": notes,
        "model_uri": model_uri,
        "model_name": loaded.name,
        "model_version": loaded.version,
        "data": str(folder),
        "n_patients": cohort.n_patients,
        "checked_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "performance": perf,
        "drift": drift,
        "drift_why": drift_why,
        "evaluation": {k: v for k, v in metrics.items() if k != "paths"},
    }
    json_path = out_dir / "monitoring.json"
    md_path = out_dir / "monitoring.md"
    report["paths"] = {
        "json": str(json_path),
        "markdown": str(md_path),
        "evaluation": str(eval_path),
    }
    json_path.write_text(json.dumps(report, indent=2))
    md_path.write_text(monitoring_markdown(report))
    logger.info("monitoring %s v%s: %s", loaded.name, loaded.version, status)
    return report


def monitoring_metrics(report: dict[str, Any]) -> dict[str, float]:
    """The check's numbers as flat MLflow metrics (undefined ones left out)."""
    ev = report["evaluation"]
    out: dict[str, Any] = {
        "n_patients": report["n_patients"],
        **{k: ev.get(k) for k in ("utility", "auroc", "auprc", "alarms_per_patient_day")},
    }
    drift = report["drift"]
    if drift is not None:
        psis = [x["psi"] for x in drift["inputs"] if math.isfinite(x["psi"])]
        out["risk_psi"] = drift["risk"]["psi"]
        out["max_input_psi"] = max(psis) if psis else None
        out["n_inputs_major_drift"] = sum(x["level"] == "major" for x in drift["inputs"])
        out["n_inputs_moderate_drift"] = sum(x["level"] == "moderate" for x in drift["inputs"])
    out["status_level"] = STATUSES.index(report["status"])
    return {
        k: float(v)
        for k, v in out.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))
    }


@task(name="check-early-warning")
def check_task(
    model_uri: str, data: str, out: str, max_utility_drop: float, max_auroc_drop: float
) -> dict[str, Any]:
    return check_early_warning(model_uri, data, out, max_utility_drop, max_auroc_drop)


@task(name="log-monitoring", retries=2, retry_delay_seconds=5)
def log_task(report: dict[str, Any]) -> str:
    """One MLflow run for the check; the version's ``vitalgru.monitor.*`` tags."""
    name, version = report["model_name"], report["model_version"]
    tags = {
        "vitalgru.monitor.status": report["status"],
        "vitalgru.model_uri": report["model_uri"],
        "vitalgru.data": report["data"],
    }
    if name and version:
        tags |= {"vitalgru.model_name": name, "vitalgru.model_version": str(version)}
    with tracking.start_run(EXPERIMENT, run_name=f"monitor {name or 'model'} v{version}") as run:
        run.set_tags(tags)
        run.log_metrics(monitoring_metrics(report))
        for p in report["paths"].values():
            run.log_artifact(p, "monitoring")
    if name and version:
        tracking.set_version_tags(
            name,
            str(version),
            {
                "vitalgru.monitor.status": report["status"],
                "vitalgru.monitor.checked_at": report["checked_at"],
                "vitalgru.monitor.run_id": run.run_id,
                "vitalgru.monitor.data": report["data"],
                "vitalgru.monitor.reasons": "; ".join(report["reasons"]) or "none",
            },
        )
    return run.run_id


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
    run_id = log_task(report)
    return {
        "status": report["status"],
        "reasons": report["reasons"],
        "notes": report["notes"],
        "model_version": report["model_version"],
        "mlflow_run_id": run_id,
        "paths": report["paths"],
    }
