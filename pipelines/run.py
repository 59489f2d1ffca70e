"""``vitalgru run``: the whole pipeline on embedded defaults, one flow after the other."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prefect import flow

from pipelines.arrhythmia import train_arrhythmia_flow
from pipelines.early_warning import train_early_warning_flow
from pipelines.ingest import ingest_flow
from pipelines.prefect_server import stop_with_this_process
from pipelines.run_logs import send_to_run_logs
from vitalgru import tracking

TASKS = ("ingest", "arrhythmia", "early-warning")


@flow(name="vitalgru-run")
def run_all(tasks: Sequence[str] = ("arrhythmia", "early-warning")) -> dict[str, Any]:
    """Run ingest and/or the training flows; returns where every result landed.

    Raises
    ------
    ValueError
        No task, or one that is not among :data:`TASKS` (a deployment's or the UI's
        parameters are not checked by the command line's ``choices``).
    """
    stop_with_this_process()  # a kill leaves no temporary server
    send_to_run_logs()  # the library's lines in the run's logs in Prefect
    names = [tasks] if isinstance(tasks, str) else list(tasks)
    unknown = sorted({str(t) for t in names} - set(TASKS))
    if unknown or not names:
        what = f"unknown task(s) {', '.join(map(repr, unknown))}" if unknown else "no task"
        raise ValueError(f"{what}; tasks are one or more of {', '.join(TASKS)}")
    tasks = names
    uri = tracking.tracking_uri()
    out: dict[str, Any] = {
        "mlflow_tracking_uri": uri,
        "mlflow_ui": f"mlflow ui --backend-store-uri {uri}",
    }
    if "ingest" in tasks and "arrhythmia" not in tasks:
        out["ingest"] = ingest_flow()
    if "arrhythmia" in tasks:
        out["arrhythmia"] = train_arrhythmia_flow()
    if "early-warning" in tasks:
        out["early_warning"] = train_early_warning_flow()
    return out
