"""Hourly risks written as the PhysioNet/CinC Challenge 2019 wanted predictions: one
pipe-separated file per patient, named as the patient's input file, with a row for each of
its rows::

    PredictedProbability|PredictedLabel
    0.0123450021|0
    0.731002212|1

The Challenge's own scorer (``evaluate_sepsis_score.py labels predictions``, from the
Challenge's evaluation repository) pairs each prediction file with the label file of the
same name and computes the normalized utility, AUROC and AUPRC from them, so a figure this
project reports can be checked with the code that ranked the Challenge. The label files it
pairs them with are written too (:func:`write_challenge_labels`: ``SepsisLabel``, a row for
each row scored), since the scorer reads only canonical tables. Risks are written
as the shortest text that reads back as the same number (a float32 risk in at most nine
significant digits), so that writing neither ties nor reorders them; note that
the scorer drops its lowest threshold when it is exactly 0, so for scores that are often
exactly 0 its AUROC and AUPRC leave out the last stretch of the curves (``risks`` from
vitalgru's networks are not 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vitalgru.claims import replacing
from vitalgru.io.file_names import check_distinct_names

__all__ = [
    "LABEL_HEADER", "PREDICTION_HEADER", "write_challenge_labels", "write_challenge_predictions",
]  # fmt: skip

#: The header of a prediction file, as the Challenge's scorer reads it.
PREDICTION_HEADER = "PredictedProbability|PredictedLabel"
#: The header of a label file, as the Challenge's scorer reads it: the scorer finds its
#: column by this exact name, and splits every line after the header (a blank line, which
#: vitalgru's reader skips, stops it).
LABEL_HEADER = "SepsisLabel"


def write_challenge_predictions(
    folder: str | Path,
    patient_ids: Sequence[str],
    offsets: np.ndarray,
    risks: np.ndarray,
    alarms: np.ndarray,
) -> list[Path]:
    """Write ``<folder>/<patient>.psv`` for each patient.

    Parameters
    ----------
    folder : path
        Created if missing; ``.psv`` files of other patients already in it are removed (the
        scorer pairs every file of the folder with a label file).
    patient_ids : sequence of str
        The input files' stems (``p000001``).
    offsets : numpy.ndarray
        ``(n_patients + 1,)`` row offsets of each patient in ``risks``/``alarms``.
    risks : numpy.ndarray
        ``(n_rows,)`` each row's risk in [0, 1] (the probability column).
    alarms : numpy.ndarray
        ``(n_rows,)`` 0/1, the risk at or over the alarm threshold (the label column).

    Returns
    -------
    list of Path
        The files written, in patient order.

    Raises
    ------
    ValueError
        Offsets that do not cover the rows, risks outside [0, 1] or not finite, alarms
        that are not 0/1, or a patient named twice (one file would hold the last one's),
        or two whose names differ only in letter case (one file on macOS or Windows).
    """
    off = np.asarray(offsets, dtype=np.int64)
    given = np.asarray(risks)
    # written at their own precision: a float32 risk's shortest text is its own, not that
    # of its float64 widening (0.1234567 and not 0.12345670163631439)
    shown = given if given.dtype in (np.float32, np.float64) else given.astype(np.float64)
    r = shown.astype(np.float64)
    a = np.asarray(alarms)
    if r.size != a.size:
        raise ValueError("offsets must run from 0 to the number of rows, one step a patient")
    _check_offsets(off, len(patient_ids), r.size)
    if not np.all(np.isfinite(r)) or np.any((r < 0) | (r > 1)):
        raise ValueError("risks must be finite and within [0, 1]")
    if not np.isin(a, (0, 1)).all():
        raise ValueError("alarms must be 0 or 1")
    lines = [f"{_text(p)}|{int(b)}" for p, b in zip(shown, a, strict=True)]
    return _write_tables(folder, patient_ids, off, PREDICTION_HEADER, lines)


def write_challenge_labels(
    folder: str | Path, patient_ids: Sequence[str], offsets: np.ndarray, labels: np.ndarray
) -> list[Path]:
    """Write ``<folder>/<patient>.psv`` for each patient: the ``SepsisLabel`` of each row
    scored, under :data:`LABEL_HEADER`, beside :func:`write_challenge_predictions`' files.

    The scorer's labels are written rather than the input files linked: an input vitalgru
    reads (a header in lower case, a blank line among the rows, a ``.psv.gz``) is one the
    scorer cannot, and these hold a row for each prediction row by construction.

    Parameters
    ----------
    folder : path
        Created if missing; ``.psv`` files of other patients already in it are removed, a
        link there (an earlier version linked the input files) replaced, never written
        through.
    patient_ids : sequence of str
    offsets : numpy.ndarray
        ``(n_patients + 1,)`` row offsets of each patient in ``labels``.
    labels : numpy.ndarray
        ``(n_rows,)`` 0/1.

    Returns
    -------
    list of Path
        The files written, in patient order.

    Raises
    ------
    ValueError
        Offsets that do not cover the rows, labels that are not 0/1, a patient named twice
        or two whose names differ only in letter case.
    """
    off = np.asarray(offsets, dtype=np.int64)
    y = np.asarray(labels)
    _check_offsets(off, len(patient_ids), y.size)
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    return _write_tables(folder, patient_ids, off, LABEL_HEADER, [str(int(v)) for v in y])


def _check_offsets(off: np.ndarray, n_patients: int, n_rows: int) -> None:
    """ValueError unless ``off`` runs from 0 to ``n_rows`` in ``n_patients`` steps, none
    going back."""
    if off.size != n_patients + 1 or off[0] != 0 or off[-1] != n_rows:
        raise ValueError("offsets must run from 0 to the number of rows, one step a patient")
    if np.any(np.diff(off) < 0):
        raise ValueError("offsets must not decrease")


def _write_tables(
    folder: str | Path, patient_ids: Sequence[str], off: np.ndarray, header: str, lines: list[str]
) -> list[Path]:
    """``<folder>/<patient>.psv``: ``header`` and the patient's ``lines`` (rows
    ``off[k]:off[k + 1]``), each file whole or not at all; other ``.psv`` files removed."""
    if len(set(patient_ids)) != len(patient_ids):
        twice = sorted({p for p in patient_ids if list(patient_ids).count(p) > 1})
        raise ValueError(f"patients named more than once: {twice[:5]}")
    check_distinct_names(patient_ids, "patients")  # one file where the case is not told
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    wanted = {f"{pid}.psv" for pid in patient_ids}
    for stale in out.glob("*.psv"):  # an earlier evaluation's, of other patients
        if stale.name not in wanted:
            stale.unlink()
    paths = []
    for k, pid in enumerate(patient_ids):
        path = out / f"{pid}.psv"
        with replacing(path) as tmp:  # a scorer reading the folder never sees half a file
            tmp.write_text("\n".join([header, *lines[off[k] : off[k + 1]]]) + "\n")
        paths.append(path)
    return paths


def _text(p: np.floating) -> str:
    """The shortest text that reads back as ``p`` at its precision (``0.1``, ``3.2e-09``);
    ``0`` and ``1`` without a decimal point."""
    t = str(p)
    return t[:-2] if t.endswith(".0") else t
