"""``vitalgru monitor``: is a registered model still fit for the patients it now scores?

Two Prefect flows, each scheduled in ``prefect.yaml``:

* ``monitor-early-warning`` scores a Challenge-2019-format folder of ICU stays with the
  sepsis model (the champion by default);
* ``monitor-arrhythmia`` scores the records of a WFDB database with the beat classifier:
  the annotated beats, or for unannotated records (a hospital's own recordings) the beats
  the R-peak detector finds, as the live monitor does.

Each runs its check (:mod:`pipelines.monitor_checks`: drift of the inputs and outputs
against the reference stored with the model, and performance against the values the
version was gated on, where the data has labels: a folder of stays without
``SepsisLabel`` is checked for drift, its performance "not judged: unlabelled") and
records it as an MLflow run in
experiment ``vitalgru-monitoring`` and on the model version's tags
(``vitalgru.monitor.*``), so that the registry shows when a version was last checked and
how it fared. The status is ``ok``, ``watch`` (moderate drift), ``drift`` (major drift) or
``degraded`` (performance below the tolerance); drift that could not be judged at all (too
few patients or values) is a reason of its own, ``drift not judged``
(:mod:`pipelines.monitor_verdict`).
"""

from __future__ import annotations

import math
from typing import Any

from prefect import flow, task

from pipelines.monitor_checks import (
    DEFAULT_ARRHYTHMIA_MODEL,
    DEFAULT_ARRHYTHMIA_OUT,
    DEFAULT_DATA,
    DEFAULT_MODEL,
    DEFAULT_OUT,
    MAX_AUROC_DROP,
    MAX_F1_DROP,
    MAX_UTILITY_DROP,
    check_arrhythmia,
    check_early_warning,
)
from pipelines.monitor_verdict import STATUSES
from pipelines.prefect_server import stop_with_this_process
from pipelines.run_logs import send_to_run_logs
from vitalgru import tracking

EXPERIMENT = "vitalgru-monitoring"


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
    stop_with_this_process()  # a kill leaves no temporary server
    send_to_run_logs()  # the library's lines in the run's logs in Prefect
    report = check_task(model_uri, data, out, max_utility_drop, max_auroc_drop)
    return _recorded(report)


@flow(name="monitor-arrhythmia")
def monitor_arrhythmia_flow(
    model_uri: str = DEFAULT_ARRHYTHMIA_MODEL,
    db: str = "mitdb",
    records: str | None = None,
    out: str = DEFAULT_ARRHYTHMIA_OUT,
    max_f1_drop: float = MAX_F1_DROP,
    config_path: str | None = None,
    annotations: str | None = "atr",
) -> dict[str, Any]:
    """Check a registered arrhythmia model on a database's records (``records`` None: DS2
    on MIT-BIH, every record of any other database or folder; ``annotations`` None:
    unannotated ones, drift only); record it in MLflow."""
    stop_with_this_process()  # a kill leaves no temporary server
    send_to_run_logs()  # the library's lines in the run's logs in Prefect
    report = check_arrhythmia_task(
        model_uri, db, records, out, max_f1_drop, config_path, annotations
    )
    return _recorded(report)
