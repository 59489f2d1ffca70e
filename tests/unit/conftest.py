"""Fixtures shared by the unit tests: a small sepsis model fitted once, set-A stays
exported with lab columns in SI units or temperatures in °F, and an embedded MLflow store."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from vitalgru.data.early_warning import build_cohort
from vitalgru.io.psv import PSV_COLUMNS
from vitalgru.io.psv_folder import list_psv
from vitalgru.scoring import EarlyWarningMonitor
from vitalgru.training.early_warning import CVSettings, fit_final
from vitalgru.training.gru_d import GRUTrainParams

CHALLENGE = {v: k for k, v in PSV_COLUMNS.items()}


@pytest.fixture(scope="session")
def sepsis_fit(physionet_mirror: Path) -> tuple[Any, dict, list[dict]]:
    """A small GRU-D fitted on 80 set-A stays (network, preprocessing), and the next stay's
    rows as a feed sends them (Challenge names, no label)."""
    torch.set_num_threads(1)
    cohort = build_cohort(physionet_mirror / "challenge-2019" / "training_setA", limit=81)
    settings = CVSettings(val_fraction=0.3, gru=GRUTrainParams(hidden_size=8, max_epochs=1))
    fit = fit_final(cohort.subset(np.arange(80)), settings)
    stay = cohort.subset(np.arange(80, 81)).frame
    cols = [c for c in stay.columns if c in CHALLENGE and c != "sepsis_label"]
    rows = [
        {CHALLENGE[c]: (None if math.isnan(v) else float(v)) for c in cols
         for v in [stay.iloc[i][c]]}
        for i in range(len(stay))
    ]  # fmt: skip
    return fit.model, fit.preprocessing, rows


@pytest.fixture(scope="session")
def sepsis(sepsis_fit: tuple[Any, dict, list[dict]]) -> tuple[EarlyWarningMonitor, list[dict]]:
    """A monitor of the fitted model, shared by the tests, and the stay's rows."""
    model, preprocessing, rows = sepsis_fit
    return EarlyWarningMonitor(model, preprocessing), rows


#: Columns of a Challenge file and the factor that takes them out of the Challenge's unit
#: into the one an export may use: glucose in mmol/L, PaCO2 in kPa, haemoglobin in mmol/L.
SI_UNITS = {"Glucose": 18.016, "PaCO2": 7.50062, "Hgb": 1.611}


@pytest.fixture
def si_units_folder(physionet_mirror: Path, tmp_path: Path) -> Path:
    """The first 30 set-A stays with :data:`SI_UNITS`' columns in those units."""
    data = tmp_path / "si_units"
    data.mkdir()
    for src in list_psv(physionet_mirror / "challenge-2019" / "training_setA")[:30]:
        head, *rows = src.read_text().splitlines()
        at = {head.split("|").index(c): k for c, k in SI_UNITS.items()}
        out = [head]
        for row in rows:
            cells = row.split("|")
            for j, k in at.items():
                if cells[j] != "NaN":
                    cells[j] = f"{float(cells[j]) / k:.2f}"
            out.append("|".join(cells))
        (data / src.name).write_text("\n".join(out) + "\n")
    return data


def write_in_fahrenheit(sources: list[Path], data: Path) -> int:
    """Copy the ``.psv`` files ``sources`` into ``data`` (made) with every temperature in
    °F, as an export may give it; the number of temperatures measured."""
    data.mkdir()
    measured = 0
    for src in sources:
        head, *rows = src.read_text().splitlines()
        t = head.split("|").index("Temp")
        out = [head]
        for row in rows:
            cells = row.split("|")
            if cells[t] != "NaN":
                cells[t] = f"{float(cells[t]) * 9 / 5 + 32:.1f}"
                measured += 1
            out.append("|".join(cells))
        (data / src.name).write_text("\n".join(out) + "\n")
    return measured


@pytest.fixture
def in_fahrenheit() -> Any:
    """:func:`write_in_fahrenheit`."""
    return write_in_fahrenheit


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, fully migrated MLflow SQLite database. Creating one runs MLflow's schema
    migrations (seconds); each test copies this file instead."""
    from mlflow import MlflowClient  # here, not at the top: most unit tests never need it

    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path.as_posix()}").search_experiments()
    return path


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_db: Path) -> Path:
    """A fresh embedded MLflow store in a fresh working directory."""
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(empty_db, tmp_path / "mlflow.db")
    yield tmp_path
    while mlflow.active_run() is not None:
        mlflow.end_run()
