"""Frozen value types shared by every layer (the in-memory contracts between stages)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np


class AAMIClass(StrEnum):
    """AAMI EC57 heartbeat classes (ANSI/AAMI EC57:2012, section 4.2)."""

    N = "N"  # normal and bundle-branch-block beats, atrial/nodal escape
    S = "S"  # supraventricular ectopic
    V = "V"  # ventricular ectopic
    F = "F"  # fusion of ventricular and normal
    Q = "Q"  # paced, fusion of paced and normal, unclassifiable


#: Class order used for integer labels everywhere (model outputs, confusion matrices).
AAMI_CLASSES: tuple[AAMIClass, ...] = (
    AAMIClass.N,
    AAMIClass.S,
    AAMIClass.V,
    AAMIClass.F,
    AAMIClass.Q,
)

#: Per-class statistics of an AAMI evaluation report (``vitalgru.metrics.aami``): beat
#: count, sensitivity, positive predictivity, F1, specificity.
AAMI_CLASS_STATS: tuple[str, ...] = ("n", "se", "ppv", "f1", "spec")
#: Whole-set figures of an AAMI evaluation report.
AAMI_SUMMARY_STATS: tuple[str, ...] = ("accuracy", "kappa", "j_index", "jk_index")


def aami_metric_names(prefix: str, stats: tuple[str, ...] = AAMI_CLASS_STATS) -> tuple[str, ...]:
    """Flat metric names of an AAMI evaluation report as logged (``{prefix}_accuracy``,
    ``{prefix}_v_f1``): the whole-set figures, then ``stats`` of each class."""
    return (
        *(f"{prefix}_{k}" for k in AAMI_SUMMARY_STATS),
        *(f"{prefix}_{c.lower()}_{s}" for c in AAMI_CLASSES for s in stats),
    )


def event_log_id(log_id: str, old_ids_up_to: int | None, seq: int) -> str | None:
    """The event log's id that the identifiers of event ``seq`` name (its HL7 alarm ids, its
    FHIR identifier, its CDS card id), or None where they keep the form they had before
    event logs had ids: the event was numbered at or below ``old_ids_up_to``, the last event
    number of a state file when its log was given an id (an upgrade; None for a log that
    had no events then, or no state file). An alarm forwarded before the upgrade and still
    open is so ended under the id it was raised with: under a new one, the receiving alarm
    manager matched no alarm to the end, and the alarm stayed active on nurses' phones.

    Called by every form of an event's id, so that all take the same choice. ValueError
    without ``log_id``.
    """
    if not log_id:
        raise ValueError("an event's ids need the event log's id")
    if old_ids_up_to is not None and int(seq) <= int(old_ids_up_to):
        return None
    return log_id


class Split(StrEnum):
    """Named patient-level splits."""

    DS1 = "DS1"  # de Chazal et al. 2004 training set
    DS2 = "DS2"  # de Chazal et al. 2004 test set
    TRAIN = "train"
    VALID = "valid"
    TEST = "test"


@dataclass(frozen=True, slots=True)
class Record:
    """One multi-lead physiological recording.

    Attributes
    ----------
    record_id : str
        Record name inside its database (``"100"``).
    patient_id : str
        Patient the record belongs to; splits are made on this.
    signal : numpy.ndarray
        ``(n_samples, n_channels)`` float32, physical units (``units``).
    fs : float
        Sampling frequency in Hz.
    channels : tuple of str
        Lead / signal names, one per column (``"MLII"``, ``"V5"``).
    units : tuple of str
        Physical unit of each column (``"mV"``).
    database : str
        Database the record came from (``"mitdb"``) or a folder name.
    """

    record_id: str
    patient_id: str
    signal: np.ndarray
    fs: float
    channels: tuple[str, ...]
    units: tuple[str, ...]
    database: str = ""

    def __post_init__(self) -> None:
        if self.signal.ndim != 2:
            raise ValueError(
                f"record {self.record_id}: signal must be (n_samples, n_channels), "
                f"got shape {self.signal.shape}"
            )
        if self.signal.shape[1] != len(self.channels):
            raise ValueError(
                f"record {self.record_id}: {self.signal.shape[1]} signal columns but "
                f"{len(self.channels)} channel names"
            )
        if not self.fs > 0:
            raise ValueError(f"record {self.record_id}: sampling rate must be > 0, got {self.fs}")

    @property
    def n_samples(self) -> int:
        return int(self.signal.shape[0])

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.fs

    def channel_index(self, lead: str | int) -> int:
        """Column of ``lead`` given by name (case-insensitive) or by index."""
        if isinstance(lead, int):
            if not -len(self.channels) <= lead < len(self.channels):
                raise ValueError(
                    f"record {self.record_id}: lead index {lead} out of range for "
                    f"{len(self.channels)} channels {self.channels}"
                )
            return lead % len(self.channels)
        names = [c.upper() for c in self.channels]
        if lead.upper() not in names:
            raise ValueError(
                f"record {self.record_id}: no lead named {lead!r}; leads are {self.channels}"
            )
        return names.index(lead.upper())


@dataclass(frozen=True, slots=True)
class Annotations:
    """Annotation labels of one record.

    Attributes
    ----------
    sample_idx : numpy.ndarray
        ``(n,)`` int64 sample indices at the record's own ``fs``.
    symbol : numpy.ndarray
        ``(n,)`` str annotation symbols (WFDB mnemonics, ``"N"``, ``"V"``, ``"+"``).
    fs : float
        Sampling frequency the indices refer to, in Hz.
    aux_note : tuple of str
        Auxiliary text per annotation (rhythm changes such as ``"(AFIB"``); may be empty.
    """

    sample_idx: np.ndarray
    symbol: np.ndarray
    fs: float
    aux_note: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.sample_idx.shape != self.symbol.shape:
            raise ValueError(
                f"annotations: {self.sample_idx.shape[0]} sample indices but "
                f"{self.symbol.shape[0]} symbols"
            )

    def __len__(self) -> int:
        return int(self.sample_idx.shape[0])


@dataclass(frozen=True, slots=True)
class AttritionEntry:
    """One item excluded from a dataset, and why (written to ``attrition.csv``)."""

    database: str
    item: str  # record id, patient id or file name
    stage: str  # "download", "verify", "read", "quality", "window", ...
    reason: str  # short machine-readable reason: "checksum_mismatch", "truncated_dat", ...
    detail: str = ""  # human-readable message
