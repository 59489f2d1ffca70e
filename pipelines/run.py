"""``vitalgru run``: the whole pipeline on embedded defaults, one flow after the other."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prefect import flow

from pipelines.ingest import ingest_flow


@flow(name="vitalgru-run")
def run_all(tasks: Sequence[str] = ("arrhythmia", "early-warning")) -> dict[str, Any]:
    """Run ingest and/or the training flows; returns where every result landed."""
    out: dict[str, Any] = {
        "mlflow_tracking_uri": os.environ.get("MLFLOW_TRACKING_URI")
        or f"sqlite:///{Path.cwd() / 'mlflow.db'}",
        "mlflow_ui": "mlflow ui --backend-store-uri sqlite:///mlflow.db",
    }
    if "ingest" in tasks and "arrhythmia" not in tasks:
        out["ingest"] = ingest_flow()
    if "arrhythmia" in tasks:
        from pipelines.arrhythmia import train_arrhythmia_flow

        out["arrhythmia"] = train_arrhythmia_flow()
    if "early-warning" in tasks:
        from pipelines.early_warning import train_early_warning_flow

        out["early_warning"] = train_early_warning_flow()
    return out
