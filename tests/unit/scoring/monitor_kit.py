"""An arrhythmia monitor with untrained, seeded networks, for tests of what surrounds the
monitor (replays, the ward, the gateway): its labels are arbitrary but reproducible."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from vitalgru.data.beat_features import RR_FEATURES
from vitalgru.models.arrhythmia import ArrhythmiaEnsemble, ArrhythmiaGRU
from vitalgru.scoring import ArrhythmiaMonitor, EarlyWarningMonitor
from vitalgru.scoring.ward import Ward
from vitalgru.scoring.ward_journal import WardJournal

#: Preprocessing as logged with a model trained at MIT-BIH's 360 Hz on MLII.
PREPROCESSING = {
    "fs": 360.0,
    "lead": "MLII",
    "window": {"before_s": 0.25, "after_s": 0.45},
    "normalisation": {"template_beats": 8, "local_rr_beats": 5, "long_rr_beats": 40,
                      "rhythm_beats": 16},
    "rr_features": list(RR_FEATURES),
}  # fmt: skip


def untrained_monitor() -> ArrhythmiaMonitor:
    """A monitor over two seeded, untrained networks (the same weights every call)."""
    torch.manual_seed(0)
    nets = [ArrhythmiaGRU(n_rr=len(RR_FEATURES), output_delay=1) for _ in range(2)]
    return ArrhythmiaMonitor(ArrhythmiaEnsemble.of(nets, quality_gate=0.9).eval(), PREPROCESSING)


def hovering(sepsis_fit: tuple[Any, dict, list[dict]]) -> tuple[dict, list[dict]]:
    """The test sepsis model's preprocessing with the alarm line drawn where its risks on
    the stay cross it most often (a patient hovering at the line), and the stay's rows."""
    model, preprocessing, rows = sepsis_fit
    mon = EarlyWarningMonitor(model, preprocessing)
    mon.admit("x")
    risks = np.array([mon.push({"x": r})[0].risk for r in rows])

    def onsets(thr: float) -> int:
        a = risks >= thr
        return int((a & ~np.concatenate([[False], a[:-1]])).sum())

    line = max(np.quantile(risks, np.linspace(0.05, 0.95, 37)), key=onsets)
    assert onsets(line) >= 3, "the stay must alarm at least three times for this test"
    return {**preprocessing, "threshold": float(line)}, rows


def restarted_sepsis_ward(model: Any, preprocessing: dict, state: Path) -> Ward:
    """A sepsis ward restarted on the state file ``state`` (taken up from it)."""
    again = Ward(sepsis=EarlyWarningMonitor(model, preprocessing), journal=WardJournal(state))
    again.restore(again.journal.load())
    return again
