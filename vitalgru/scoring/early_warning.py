"""Live sepsis early warning: one row of vital signs and labs per patient-hour in, a risk and
an alarm out, for many patients at once.

:class:`EarlyWarningMonitor` scores a registered early-warning model (``vitalgru-early-
warning``) as hours arrive. Each patient's rows so far are kept (an ICU stay is at most a
few hundred hours); on every :meth:`~EarlyWarningMonitor.push` the inputs of the new hours
are built for all pushed patients together by the same function training and evaluation
use (:func:`vitalgru.data.gru_d_inputs.gru_d_arrays`: plausibility limits, last observation
and time since it, engineered summaries over 6-24 hours), and the network advances each
patient's GRU-D state by those hours only, batched across patients. Building the inputs
over the stay so far costs more as the stay grows; :meth:`~EarlyWarningMonitor.push_rounds`
takes many hours at once (a restarted gateway's stored hours), builds their inputs once and
advances the network as pushing them hour by hour would, to the bit.

How a row is checked and kept, and how the stays become the cohort the inputs are built
from, is :mod:`vitalgru.scoring.early_warning_stays`; what raised a patient's risk
(:meth:`~EarlyWarningMonitor.explain`) is :mod:`vitalgru.scoring.early_warning_drivers`.

Every input is a causal function of the patient's own rows, so the risks equal those of
scoring the whole stay at once (:func:`vitalgru.training.early_warning.score_cohort`; tested).
A skipped ICU hour is scored as an hour with nothing measured, as evaluation does.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from vitalgru.data.gru_d_inputs import NormStats, gru_d_arrays
from vitalgru.errors import ConflictError
from vitalgru.metrics.calibration import model_probability
from vitalgru.population import SepsisPopulation
from vitalgru.scoring.early_warning_drivers import RiskDriver, risk_drivers
from vitalgru.scoring.early_warning_stays import (
    LIMITED_COLUMNS,
    ROW_COLUMNS,
    Stay,
    checked_row,
    hour_values,
    stays_cohort,
)

logger = logging.getLogger(__name__)

__all__ = ["EarlyWarningMonitor", "HourRisk", "RiskDriver"]


@dataclass(frozen=True)
class HourRisk:
    """The risk of one patient-hour.

    Attributes
    ----------
    patient_id : str
    hour : int
        ICU hour (``ICULOS``).
    risk : float
        Probability-like score in [0, 1].
    alarm : bool
        ``risk`` reached the model's alarm threshold (chosen on training patients).
    rejected : tuple of str
        Columns whose value this hour was physiologically impossible and was treated as
        missing (e.g. ``hr_bpm`` 0).
    probability : float or None
        The risk recalibrated to the probability that the hour is labelled septic (from
        6 h before onset), with the map stored with the model
        (:func:`vitalgru.metrics.calibration.model_probability`); None for a model stored
        without one. The risk decides the alarm; this is the number to read as a chance.
    outside : tuple of str
        What puts the hour outside the model's training population (an age below the
        youngest training patient's, a value beyond the training patients' range), one
        phrase each (:meth:`vitalgru.population.SepsisPopulation.outside`); the risk
        is scored all the same, but it is an extrapolation.
    """

    patient_id: str
    hour: int
    risk: float
    alarm: bool
    rejected: tuple[str, ...] = ()
    probability: float | None = None
    outside: tuple[str, ...] = ()


class EarlyWarningMonitor:
    """Hourly sepsis risk for many patients with one registered model.

    Parameters
    ----------
    model : torch.nn.Module
        A :class:`~vitalgru.models.early_warning.GRUDEarlyWarning` or
        :class:`~vitalgru.models.early_warning.SepsisBlend` (the ``module`` of
        :func:`vitalgru.tracking.load_model` for ``models:/vitalgru-early-warning@champion``).
    preprocessing : mapping
        The preprocessing logged with it (normalisation statistics, alarm threshold,
        tree features).
    """

    def __init__(self, model: nn.Module, preprocessing: Mapping[str, Any]) -> None:
        if "norm_stats" not in preprocessing:
            raise ValueError("preprocessing lacks 'norm_stats': not an early-warning model")
        self.model = model.eval()
        self.stats = NormStats.from_dict(preprocessing["norm_stats"])
        self.tree_features = list(preprocessing.get("tree_features") or []) or None
        self.threshold = float(preprocessing["threshold"])
        self.recalibration = preprocessing.get("recalibration")
        self.population = SepsisPopulation.from_stats(self.stats.extra)
        gru = getattr(model, "gru", model)
        self.hidden = int(gru.hidden_size)
        self._stays: dict[str, Stay] = {}

    @property
    def patients(self) -> list[str]:
        return list(self._stays)

    def admit(self, patient_id: str) -> None:
        """Start scoring a patient."""
        pid = str(patient_id)
        if pid in self._stays:
            raise ConflictError(f"patient {pid!r} is already being monitored")
        self._stays[pid] = Stay(pid, self.hidden)

    def stay_values(self, patient_id: str) -> dict[str, np.ndarray]:
        """Every value pushed for a patient so far, by vitalgru column (``hour`` first; NaN
        where not measured), one entry per hour pushed. KeyError for a patient not
        monitored."""
        st = self._stays.get(str(patient_id))
        if st is None:
            raise KeyError(f"patient {patient_id!r} is not being monitored")
        v = st.values
        return {c: v[:, i].copy() for i, c in enumerate(ROW_COLUMNS)}

    def discharge(self, patient_id: str) -> None:
        """Stop scoring a patient and forget their rows."""
        if self._stays.pop(str(patient_id), None) is None:
            raise KeyError(f"patient {patient_id!r} is not being monitored")

    def rename(self, patient_id: str, new_id: str) -> None:
        """Go on with a patient's stay under another identifier (two records of one patient
        merged by the hospital): the rows and the network's state carry over. KeyError for a
        patient not monitored; ValueError when ``new_id`` is being monitored already."""
        old, new = str(patient_id), str(new_id)
        if old not in self._stays:
            raise KeyError(f"patient {old!r} is not being monitored")
        if new in self._stays:
            raise ConflictError(f"patient {new!r} is already being monitored")
        stay = self._stays.pop(old)
        stay.pid = new
        self._stays[new] = stay

    def row_hour(self, patient_id: str, row: Mapping[str, Any]) -> int:
        """The ICU hour of ``row``, after the checks :meth:`push` makes of a row but its
        order (names, numbers, ``ICULOS`` a whole number in range), so that a caller can
        refuse a row before it changes anything. ValueError as :meth:`push` raises it."""
        return int(checked_row(str(patient_id), row, None)["hour"])

    @torch.no_grad()
    def push(self, rows: Mapping[str, Mapping[str, Any]]) -> list[HourRisk]:
        """Score each patient's next hour.

        Parameters
        ----------
        rows : mapping
            ``{patient_id: {column: value}}``: one hour per patient, columns by their
            Challenge-2019 names (``HR``, ``O2Sat``, ..., ``Age``, ``ICULOS``) or vitalgru's;
            missing or NaN where not measured. ``ICULOS`` is required and must increase.

        Returns
        -------
        list of HourRisk
            One per patient pushed, in the order given.
        """
        batch = []
        for pid, row in rows.items():
            st = self._monitored(pid)
            batch.append((st, checked_row(st.pid, row, st.last_hour)))
        for st, r in batch:  # only once every row has passed its checks
            st.append(r)
        return self._score([batch])[0]

    @torch.no_grad()
    def push_rounds(
        self, rounds: Sequence[Mapping[str, Mapping[str, Any]]]
    ) -> list[tuple[list[HourRisk], dict[str, ValueError]]]:
        """Score many hours at once: what :meth:`push` of each round in turn gives, a round
        it refuses pushed one patient at a time instead (the rows it refuses left out).

        The inputs of every row are built in one go, not again at each round (a ward taking
        up its stored hours at a restart: :meth:`push` builds them over each patient's whole
        stay so far, so pushing a stay hour by hour costs its length squared); the network
        advances round by round, each round's patients batched as :meth:`push` batches
        them, so the risks and states are those of pushing the rounds, to the bit.

        Parameters
        ----------
        rounds : sequence of mapping
            Each as :meth:`push` takes it (``{patient_id: row}``).

        Returns
        -------
        list of (list of HourRisk, dict)
            Per round, the risks of the rows taken, in the order given, and the rows
            refused (``{patient_id: the ValueError push raised}``).

        KeyError, before anything is scored, for a patient not monitored.
        """
        for rows in rounds:
            for pid in rows:
                self._monitored(pid)
        batches, taken = [], []  # taken: per round, its batches and the rows refused
        for rows in rounds:
            checked, bad = [], {}
            for pid, row in rows.items():
                st = self._stays[str(pid)]
                try:
                    checked.append((st, checked_row(st.pid, row, st.last_hour)))
                except ValueError as e:
                    bad[pid] = e
                    continue
                st.append(checked[-1][1])
            # push refuses a round whole: it is pushed again one patient at a time
            batches += [[c] for c in checked] if bad else [checked]
            taken.append((len(checked) if bad else 1, bad))
        scored = iter(self._score(batches))
        return [([r for _ in range(n) for r in next(scored)], bad) for n, bad in taken]

    def _monitored(self, pid: Any) -> Stay:
        st = self._stays.get(str(pid))
        if st is None:
            raise KeyError(f"patient {pid!r} is not being monitored; admit() them first")
        return st

    def _score(self, batches: list[list[tuple[Stay, dict[str, float]]]]) -> list[list[HourRisk]]:
        """The risks of rows already appended to their stays (each stay's not yet scored,
        in order), batch after batch: the inputs of all of them built at once, then the
        network run over each batch's patients together (each from its state to the row)."""
        stays = list({id(st): st for batch in batches for st, _ in batch}.values())
        if not stays:
            return [[] for _ in batches]
        cohort, where, implausible = stays_cohort(stays)
        x = gru_d_arrays(cohort, self.stats, self.tree_features).x
        index = {id(st): i for i, st in enumerate(stays)}
        # each stay's rows to score are its last ones; the next (a row of the cohort), and
        # where the stay's grid rows not yet run through the network begin
        count = Counter(id(st) for batch in batches for st, _ in batch)
        ends = np.cumsum([st.n for st in stays])
        row = [int(ends[i]) - count[id(st)] for i, st in enumerate(stays)]
        upto = [int(cohort.offsets[i]) + st.grid_rows for i, st in enumerate(stays)]
        out = []
        for batch in batches:
            at, rows = [], []  # each row's end on the grid, and the row
            for st, _ in batch:
                i = index[id(st)]
                rows.append(row[i])
                at.append(int(where[row[i]]) + 1)
                row[i] += 1
            # each patient's hours not yet run (the row's, and any skipped hours before it)
            groups: dict[int, list[int]] = {}
            for b, (st, _) in enumerate(batch):
                groups.setdefault(at[b] - upto[index[id(st)]], []).append(b)
            risk = np.empty(len(batch))
            for n_new, idx in groups.items():
                xs = np.stack([x[at[b] - n_new : at[b]] for b in idx])
                h0 = torch.cat([batch[b][0].h for b in idx], dim=1)
                logits, h_n = self.model(torch.from_numpy(xs), h0)
                p = torch.sigmoid(logits[:, -1, 0]).numpy().astype(np.float64)
                for k, b in enumerate(idx):
                    st = batch[b][0]
                    st.h = h_n[:, k : k + 1].clone()
                    st.grid_rows += n_new
                    upto[index[id(st)]] = at[b]
                    risk[b] = p[k]
            prob = model_probability({"recalibration": self.recalibration}, risk)
            out.append([
                HourRisk(
                    st.pid,
                    int(r["hour"]),
                    float(risk[b]),
                    bool(risk[b] >= self.threshold),
                    tuple(c for c, bad in zip(LIMITED_COLUMNS, implausible[rows[b]], strict=True)
                          if bad),
                    None if prob is None else float(prob[b]),
                    self.population.outside(hour_values(st, r, implausible[rows[b]])),
                )
                for b, (st, r) in enumerate(batch)
            ])  # fmt: skip
        return out

    @torch.no_grad()
    def explain(self, patient_id: str, top: int = 3) -> list[RiskDriver]:
        """The measurements that raised a patient's risk at their latest hour the most.

        Each measurement observed in the stay is replaced, in a copy of the stay, by its
        training mean at the hours it was measured (see :class:`RiskDriver`); the copies
        and the stay itself are scored from admission in one batched call. Returns the
        ``top`` measurements whose replacement lowered the risk, largest drop first (fewer
        when fewer lowered it). Costs one forward pass over the stay per measurement
        observed: meant for the hours an alarm starts, not every hour.

        KeyError for a patient not monitored.
        """
        st = self._stays.get(str(patient_id))
        if st is None:
            raise KeyError(f"patient {patient_id!r} is not being monitored")
        return risk_drivers(self.model, st, self.stats, self.tree_features, self.hidden, top)
