"""Sepsis early-warning cohort: cleaned hourly tables and patient folds. The dataset on disk
(parquet + manifest + attrition) is :mod:`vitalgru.data.early_warning_files`'s; what the
network reads of a cohort (normalisation statistics, GRU-D input arrays) is
:mod:`vitalgru.data.gru_d_inputs`'s.

Rows are kept grouped by patient, hours ascending; ``offsets`` (``(n_patients + 1,)``)
delimit the patients in every array. Folds are by patient, stratified on whether the
patient ever has ``SepsisLabel = 1``; nothing here is fitted on more than the patients it
is given, so a caller fits :class:`~vitalgru.data.gru_d_inputs.NormStats` on training folds only.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from vitalgru.dsp.vitals import (
    refused_column_warnings,
    vitals_plausibility,
)
from vitalgru.dsp.vitals_units import unit_mixup_warnings
from vitalgru.errors import RecordError
from vitalgru.io.psv import MEASUREMENT_COLUMNS, STATIC_COLUMNS
from vitalgru.io.psv_folder import PsvCohort, read_psv_folder
from vitalgru.types import AttritionEntry

logger = logging.getLogger(__name__)


@dataclass
class EarlyWarningCohort:
    """A cleaned Challenge-2019 cohort.

    Attributes
    ----------
    frame : pandas.DataFrame
        As :attr:`vitalgru.io.psv_folder.PsvCohort.frame`, implausible values set to NaN;
        without ``sepsis_label`` for an unlabelled folder (:attr:`labelled`).
    offsets : numpy.ndarray
        ``(n_patients + 1,)`` int64 row offsets.
    patient_ids : numpy.ndarray
        ``(n_patients,)`` str.
    implausible_counts : dict
        Column -> number of values rejected by the plausibility limits.
    attrition : list of AttritionEntry
    source : str
        The folder read.
    non_numeric_counts : dict
        Column -> cells that held text instead of a number, read as missing
        (:attr:`vitalgru.io.psv_folder.PsvCohort.non_numeric_cells`).
    implausible_warnings : list of str
        For each column of which the limits refused more than half of the measured values,
        a sentence saying so, with the unit the values look like where they do
        (:func:`vitalgru.dsp.vitals.refused_column_warnings`; logged as warnings).
    unit_warnings : list of str
        For each laboratory column whose median over the folder looks like another unit's
        (a glucose in mmol/L, a PaCO2 in kPa), a sentence saying so: its values are taken
        as they are (:func:`vitalgru.dsp.vitals_units.unit_mixup_warnings`; logged).
    """

    frame: pd.DataFrame
    offsets: np.ndarray
    patient_ids: np.ndarray
    implausible_counts: dict[str, int]
    attrition: list[AttritionEntry]
    source: str = ""
    non_numeric_counts: dict[str, int] = field(default_factory=dict)
    implausible_warnings: list[str] = field(default_factory=list)
    unit_warnings: list[str] = field(default_factory=list)

    @property
    def n_patients(self) -> int:
        return int(self.patient_ids.size)

    @property
    def labelled(self) -> bool:
        """Whether the stays carry ``SepsisLabel``: False for a folder whose files have no
        such column (:func:`vitalgru.io.psv_folder.read_psv_folder`)."""
        return "sepsis_label" in self.frame.columns

    @property
    def labels(self) -> np.ndarray:
        """``(n_rows,)`` int8 SepsisLabel; ValueError for an unlabelled cohort (its stays
        are not negative, only not labelled)."""
        if not self.labelled:
            raise ValueError(
                f"{self.source or 'the cohort'} is unlabelled (its files have no SepsisLabel "
                "column): it can be scored, but not trained on nor measured for accuracy"
            )
        return self.frame["sepsis_label"].to_numpy(np.int8)

    def skipped_hours(self) -> dict[str, int]:
        """Patient id -> ICU hours its rows skip (``ICULOS`` 3 then 6 skips 2), only for
        patients with any. Challenge-2019 tables hold one row per hour and the windowed
        summaries count rows: scoring fills such hours in (:meth:`on_hourly_grid`)."""
        return self._per_patient(np.diff(self.frame["hour"].to_numpy(np.int64)) - 1)

    def label_reversals(self) -> dict[str, int]:
        """Patient id -> times its ``SepsisLabel`` falls from 1 back to 0, only for patients
        with any. The challenge's label stays 1 from six hours before onset; the utility
        (like the official scorer) dates onset from the first 1 and ignores the rest, but
        the hourly AUROC/AUPRC and training take every hour's label as given. Empty for an
        unlabelled cohort."""
        if not self.labelled:
            return {}
        return self._per_patient((np.diff(self.labels.astype(np.int64)) < 0).astype(np.int64))

    def _per_patient(self, step: np.ndarray) -> dict[str, int]:
        """Sum per patient of a ``(n_rows - 1,)`` count between consecutive rows (those
        between two patients left out), as patient id -> sum for the positive ones."""
        if step.size == 0:
            return {}
        step = step.copy()
        step[self.offsets[1:-1] - 1] = 0  # no step across patients
        per = np.add.reduceat(np.r_[step, 0], self.offsets[:-1])
        return {str(p): int(n) for p, n in zip(self.patient_ids, per, strict=True) if n > 0}

    def on_hourly_grid(self) -> tuple[EarlyWarningCohort, np.ndarray]:
        """The cohort with a row for every ICU hour between each patient's first and last,
        and where each original row lies in it.

        A skipped hour becomes a row with nothing measured (how the models already see an
        hour without observations); the patient's descriptors and ``sepsis_label`` are
        carried from the row before. Scoring on this grid makes every windowed summary
        span the hours it says; the risks of the original rows are ``scores[rows]``.

        Returns
        -------
        (EarlyWarningCohort, numpy.ndarray)
            The gridded cohort, and ``(n_rows,)`` int64 indices of the original rows in it.
        """
        hours = self.frame["hour"].to_numpy(np.int64)
        lengths = np.diff(self.offsets)
        first = hours[self.offsets[:-1]] if self.n_patients else np.zeros(0, np.int64)
        last = hours[self.offsets[1:] - 1] if self.n_patients else np.zeros(0, np.int64)
        span = last - first + 1
        grid_off = np.r_[0, np.cumsum(span)].astype(np.int64)
        rows = np.repeat(grid_off[:-1] - first, lengths) + hours
        filled = np.zeros(int(grid_off[-1]), bool)
        filled[rows] = True
        # each grid row takes the last original row at or before it (a forward fill)
        src = np.maximum.accumulate(np.where(filled, np.cumsum(filled) - 1, 0))
        frame = self.frame.iloc[src].reset_index(drop=True)
        frame.loc[~filled, list(MEASUREMENT_COLUMNS)] = np.nan
        frame["hour"] = (np.arange(grid_off[-1]) - np.repeat(grid_off[:-1] - first, span)).astype(
            self.frame["hour"].dtype
        )
        return dataclasses.replace(self, frame=frame, offsets=grid_off), rows

    def septic(self) -> np.ndarray:
        """``(n_patients,)`` bool: the patient has label 1 at some hour."""
        return (
            np.maximum.reduceat(self.labels, self.offsets[:-1]).astype(bool)
            if self.n_patients
            else np.zeros(0, bool)
        )

    def subset(self, patient_idx: np.ndarray) -> EarlyWarningCohort:
        """The cohort restricted to patients ``patient_idx`` (kept in the given order)."""
        idx = np.asarray(patient_idx, dtype=np.int64)
        lengths = np.diff(self.offsets)
        rows = (
            np.concatenate([np.arange(self.offsets[i], self.offsets[i + 1]) for i in idx])
            if idx.size
            else np.zeros(0, np.int64)
        )
        off = np.r_[0, np.cumsum(lengths[idx])].astype(np.int64)
        return EarlyWarningCohort(
            frame=self.frame.iloc[rows].reset_index(drop=True),
            offsets=off,
            patient_ids=self.patient_ids[idx],
            implausible_counts=dict(self.implausible_counts),
            attrition=list(self.attrition),
            source=self.source,
            non_numeric_counts=dict(self.non_numeric_counts),
            implausible_warnings=list(self.implausible_warnings),
            unit_warnings=list(self.unit_warnings),
        )


#: Age bands (years) of :func:`patient_groups`: lower bound inclusive, upper exclusive.
AGE_BANDS: tuple[tuple[str, float, float], ...] = (
    ("age < 45", 0.0, 45.0),
    ("age 45-64", 45.0, 65.0),
    ("age 65-79", 65.0, 80.0),
    ("age >= 80", 80.0, math.inf),
)


#: The patient group of children (under 18), outside every Challenge-2019 training cohort.
CHILDREN = "age < 18 (outside the adult training population)"


def patient_groups(cohort: EarlyWarningCohort) -> dict[str, np.ndarray]:
    """The patient groups results are broken down by: ICU type, sex, age band, and
    :data:`CHILDREN` (patients under 18, outside the adult training population).

    Each is a ``(n_patients,)`` bool mask, from the patient's first row (the descriptors
    are constant over a stay). A patient whose ICU type, sex or age is not recorded is in
    ``"ICU type not recorded"`` or in no group of that kind.
    """
    first = cohort.offsets[:-1]
    f = cohort.frame

    def at_first(col: str) -> np.ndarray:
        return f[col].to_numpy(np.float64)[first] if len(f) else np.zeros(0)

    micu, sicu = at_first("unit_micu"), at_first("unit_sicu")
    male, age = at_first("gender_male"), at_first("age_years")
    groups = {
        "medical ICU": micu == 1,
        "surgical ICU": sicu == 1,
        "ICU type not recorded": ~((micu == 1) | (sicu == 1)),
        "female": male == 0,
        "male": male == 1,
    }
    for name, lo, hi in AGE_BANDS:
        groups[name] = (age >= lo) & (age < hi)
    # children, whom no Challenge-2019 cohort holds (set A's youngest: 18.11 years): a result
    # on them is outside the training population, and counted apart (empty groups are not
    # reported)
    groups[CHILDREN] = age < 18.0
    return groups


def patient_offsets(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Row offsets ``(n_patients + 1,)`` and ids of a frame whose rows are grouped by
    ``patient_id``.

    Raises
    ------
    ValueError
        A patient's rows are not contiguous.
    """
    pid = frame["patient_id"].to_numpy()
    if pid.size == 0:
        return np.zeros(1, np.int64), np.zeros(0, dtype=str)
    change = np.flatnonzero(pid[1:] != pid[:-1]) + 1
    offsets = np.r_[0, change, pid.size].astype(np.int64)
    ids = pid[offsets[:-1]].astype(str)
    if len(set(ids.tolist())) != ids.size:
        raise ValueError("rows of a patient must be contiguous (each patient id once)")
    return offsets, ids


def clean_cohort(psv: PsvCohort, source: str = "") -> EarlyWarningCohort:
    """Apply the plausibility limits and index the patients of a parsed folder."""
    frame = psv.frame.copy()
    cols = list(MEASUREMENT_COLUMNS) + list(STATIC_COLUMNS)
    values = frame[cols].to_numpy(np.float32)
    cleaned, bad = vitals_plausibility(values, cols)
    frame[cols] = cleaned
    counts = {c: int(n) for c, n in zip(cols, bad.sum(axis=0), strict=True)}
    offsets, ids = patient_offsets(frame)
    logger.info("plausibility limits rejected %d values (%s)", int(bad.sum()),
                ", ".join(f"{c} {n}" for c, n in counts.items() if n) or "none")  # fmt: skip
    # a column refused whole (an export's temperatures in °F) is no artefact: said aloud
    warnings = refused_column_warnings(values, bad, cols)
    for text in warnings:
        logger.warning("%s: %s; the model sees these values as not measured",
                       source or "the cohort", text)  # fmt: skip
    # a column in another unit whose values pass the limits (glucose in mmol/L): said aloud
    units = unit_mixup_warnings(values, cols)
    for text in units:
        logger.warning("%s: %s", source or "the cohort", text)
    cohort = EarlyWarningCohort(
        frame, offsets, ids, counts, list(psv.attrition), source, dict(psv.non_numeric_cells),
        warnings, units,
    )  # fmt: skip
    if skipped := cohort.skipped_hours():
        first = ", ".join(f"{p} ({n} h)" for p, n in list(skipped.items())[:3])
        logger.warning(
            "%d patient(s) have rows that skip ICU hours (%d hours in all, e.g. %s); "
            "training and scoring fill them in as hours with nothing measured",
            len(skipped),
            sum(skipped.values()),
            first,
        )
    if reversed_ := cohort.label_reversals():
        logger.warning(
            "%d patient(s) have a SepsisLabel that falls from 1 back to 0 (e.g. %s); the "
            "utility dates onset from the first 1, hourly AUROC/AUPRC take the labels as given",
            len(reversed_),
            ", ".join(list(reversed_)[:3]),
        )
    return cohort


# How many excluded files the "no patient could be read" message names.
_SHOWN_EXCLUDED = 5


def build_cohort(
    folder: str | Path, *, cache_dir: str | Path | None = None, limit: int | None = None
) -> EarlyWarningCohort:
    """Read (with the parquet cache) and clean a Challenge-2019 folder.

    Malformed files go to the cohort's attrition and the rest are read.

    Raises
    ------
    RecordError
        Not one patient file could be read (reason ``no_usable_patient``); the message
        names the first files left out and why.
    """
    psv = read_psv_folder(folder, on_error="skip", cache_dir=cache_dir, limit=limit)
    check_some_patients(psv, folder)
    return clean_cohort(psv, source=str(folder))


def check_some_patients(psv: PsvCohort, folder: str | Path) -> None:
    """Raise :class:`~vitalgru.errors.RecordError` (reason ``no_usable_patient``) when not
    one file of ``folder`` could be read; the message names the first ones and why."""
    if len(psv.frame):
        return
    shown = "; ".join(e.detail for e in psv.attrition[:_SHOWN_EXCLUDED])
    more = len(psv.attrition) - _SHOWN_EXCLUDED
    raise RecordError(
        folder,
        f"no patient could be read: all {psv.source_files} .psv files were left out "
        f"({shown}{f'; and {more} more' if more > 0 else ''})",
        reason="no_usable_patient",
    )


def patient_folds(septic: np.ndarray, n_folds: int, seed: int = 0) -> np.ndarray:
    """Assign each patient to one of ``n_folds`` folds, stratified on sepsis.

    Parameters
    ----------
    septic : numpy.ndarray
        ``(n_patients,)`` bool.
    n_folds : int
    seed : int

    Returns
    -------
    numpy.ndarray
        ``(n_patients,)`` int fold index in ``[0, n_folds)``.
    """
    s = np.asarray(septic, dtype=bool)
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    if s.size < n_folds:
        raise ValueError(f"{s.size} patients cannot fill {n_folds} folds")
    if 0 < s.sum() < n_folds:
        # a fold without a septic patient has no utility (NaN), and the mean over folds
        # is then over the others only
        logger.warning("%d septic patients for %d folds: %d fold(s) will hold none, and "
                       "their utility is undefined", int(s.sum()), n_folds,
                       n_folds - int(s.sum()))  # fmt: skip
    rng = np.random.default_rng(seed)
    fold = np.empty(s.size, dtype=np.int64)
    for group in (np.flatnonzero(s), np.flatnonzero(~s)):
        perm = rng.permutation(group)
        fold[perm] = np.arange(perm.size) % n_folds
    return fold


def resolve_data_dir(data_dir: str | Path, mirror: str | Path | None) -> Path:
    """The Challenge-2019 folder: ``data_dir`` itself when it is a folder, else
    ``<mirror>/<data_dir>``.

    Raises
    ------
    FileNotFoundError
        Neither exists; the message says how to point at the data.
    ValueError
        ``data_dir`` is empty or blank.
    """
    if not str(data_dir).strip():
        # Path("") is the working folder: a monitoring run whose data field was cleared in
        # a deployment's form read whatever .psv files lay there (none: an evaluation of
        # no stays)
        raise ValueError(
            "the Challenge-2019 folder is empty text: name a folder of .psv files, or a "
            "path under the PhysioNet mirror (challenge-2019/training_setA)"
        )
    p = Path(data_dir).expanduser()
    if p.is_dir():
        return p
    if mirror is not None and (Path(mirror) / p).is_dir():
        return Path(mirror) / p
    raise FileNotFoundError(
        f"Challenge-2019 folder {data_dir!r} not found (mirror: {mirror}); set "
        "VITALGRU_PHYSIONET_MIRROR or physionet.mirror to a folder holding "
        "challenge-2019/training_setA, or data_dir to the folder of .psv files"
    )
