"""What raised a patient's sepsis risk: each measurement set to its typical value, and the
risk scored again.

:meth:`vitalgru.scoring.early_warning.EarlyWarningMonitor.explain` asks this for the hour an
alarm starts; each answer is a :class:`RiskDriver`, a counterfactual of the model (not a
cause in the patient) that the ward, the CDS cards and the reports show in words.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from vitalgru.data.gru_d_inputs import NormStats, gru_d_arrays
from vitalgru.dsp.vitals import vitals_plausibility
from vitalgru.io.psv import MEASUREMENT_COLUMNS, MEASUREMENT_UNITS, PSV_COLUMNS
from vitalgru.scoring.early_warning_stays import (
    LIMITED_COLUMNS,
    LIMITED_IDX,
    ROW_COLUMNS,
    Stay,
    stays_cohort,
)

__all__ = ["RiskDriver", "risk_drivers"]

_CHALLENGE_NAMES = {v: k for k, v in PSV_COLUMNS.items()}


@dataclass(frozen=True)
class RiskDriver:
    """A measurement that raised a patient's sepsis risk
    (:meth:`~vitalgru.scoring.early_warning.EarlyWarningMonitor.explain`).

    The model is scored again on the patient's stay with every accepted value of this one
    measurement replaced by its mean over the training patients (``typical``), measured at
    the same hours; ``risk - risk_if_typical`` is how much of the risk this hour owes to
    the measurement not being typical. A counterfactual of the model, not a cause in the
    patient: correlated measurements (the three blood pressures) share their credit.

    Attributes
    ----------
    column : str
        vitalgru column name (``lactate_mmol_l``).
    value : float
        Its latest accepted value in the stay.
    hours_ago : int
        Hours between that value and the hour explained.
    typical : float
        The training patients' mean of the measurement.
    risk : float
        The hour's risk, scored from the start of the stay (the live risk, to float error).
    risk_if_typical : float
    """

    column: str
    value: float
    hours_ago: int
    typical: float
    risk: float
    risk_if_typical: float

    @property
    def risk_drop(self) -> float:
        return self.risk - self.risk_if_typical

    def describe(self) -> str:
        """For a clinician: ``Resp 31 /min (now; risk score 0.110 had it been typical,
        18.8)``."""
        unit = MEASUREMENT_UNITS.get(self.column, "")
        when = "now" if self.hours_ago == 0 else f"{self.hours_ago} h ago"
        return (
            f"{_CHALLENGE_NAMES.get(self.column, self.column)} {self.value:.3g}"
            f"{' ' + unit if unit else ''} ({when}; risk score {self.risk_if_typical:.3f} had it "
            f"been typical, {self.typical:.3g})"
        )

    def as_dict(self) -> dict[str, Any]:
        """The fields, the drop and the description, for JSON."""
        return {**asdict(self), "risk_drop": self.risk_drop, "text": self.describe()}


@torch.no_grad()
def risk_drivers(
    model: nn.Module,
    st: Stay,
    stats: NormStats,
    tree_features: list[str] | None,
    hidden: int,
    top: int = 3,
) -> list[RiskDriver]:
    """The measurements that raised the risk of a stay's latest hour the most, largest drop
    first (at most ``top``; fewer when fewer lowered it).

    Each measurement observed in the stay is replaced, in a copy of the stay, by its
    training mean (``stats``) at the hours it was measured; the copies and the stay itself
    are scored from admission in one batched call of ``model`` (``hidden`` units), its
    inputs built as the monitor builds them (``tree_features``). Costs one forward pass over
    the stay per measurement observed.
    """
    if st.n == 0 or top < 1:
        return []
    rows = st.values.copy()
    rows[:, LIMITED_IDX], _ = vitals_plausibility(rows[:, LIMITED_IDX], LIMITED_COLUMNS)
    typical = dict(zip(stats.columns, stats.mean, strict=True))
    hours = rows[:, 0]
    found = []  # (column, latest value, hours ago, typical value)
    variants = [rows]
    for c in MEASUREMENT_COLUMNS:
        j = ROW_COLUMNS.index(c)
        seen = np.flatnonzero(np.isfinite(rows[:, j]))
        if c not in typical or seen.size == 0:
            continue
        v = rows.copy()
        v[seen, j] = typical[c]
        variants.append(v)
        found.append((c, float(rows[seen[-1], j]), int(hours[-1] - hours[seen[-1]]), typical[c]))
    if not found:
        return []
    copies = []
    for k, v in enumerate(variants):
        copy = Stay(f"{st.pid}#{k}", hidden)
        copy._buf, copy.n = v, len(v)
        copies.append(copy)
    cohort, _, _ = stays_cohort(copies)
    x = gru_d_arrays(cohort, stats, tree_features).x
    x = x.reshape(len(copies), int(cohort.offsets[1]), x.shape[1])
    h0 = torch.zeros(1, len(copies), hidden)
    logits, _ = model(torch.from_numpy(x), h0, last_only=True)
    p = torch.sigmoid(logits[:, -1, 0]).numpy().astype(np.float64)
    drivers = [
        RiskDriver(c, value, ago, float(t), float(p[0]), float(q))
        for (c, value, ago, t), q in zip(found, p[1:], strict=True)
        if q < p[0]
    ]
    return sorted(drivers, key=lambda d: -d.risk_drop)[:top]
