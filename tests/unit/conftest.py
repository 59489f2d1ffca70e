"""Fixtures shared by the gateway's tests: a small sepsis model fitted once."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from vitalgru.data.early_warning import build_cohort
from vitalgru.io.psv import PSV_COLUMNS
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
