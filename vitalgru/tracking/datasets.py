"""The data a run trained and was evaluated on, as MLflow datasets.

A dataset is logged with ``mlflow.data.from_pandas`` and ``mlflow.log_input``: its name,
a digest that says which data it was (computed by the caller from what identifies it:
source files' checksums, processing code, patients and labels), where it lies, the table's
schema and row count, and a context (``"training"``, ``"evaluation"``). MLflow's UI lists
them under a run's "Datasets used"; metrics logged with the :class:`LoggedDataset`
(:meth:`~vitalgru.tracking.runs.TrackedRun.log_metrics`) are shown beside the dataset they
were measured on, on the run's and on the logged model's page.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import mlflow
import mlflow.data
import pandas as pd
from mlflow.data.sources import LocalArtifactDatasetSource

from vitalgru.tracking.runs import TrackedRun, _active

logger = logging.getLogger(__name__)

__all__ = ["DATASET_CONTEXTS", "LoggedDataset", "log_dataset"]

#: The contexts a vitalgru run logs its datasets with.
DATASET_CONTEXTS = ("training", "evaluation")

# MLflow's limits (mlflow/utils/validation.py): a dataset's digest at most 36 characters,
# its name 500, an input tag's value 500.
_MAX_DIGEST_LEN = 36
_MAX_NAME_LEN = 500
_MAX_TAG_VALUE_LEN = 500


@dataclass(frozen=True)
class LoggedDataset:
    """A dataset logged to a run: what a metric names to say what it was measured on."""

    name: str
    digest: str
    context: str


def log_dataset(
    run: TrackedRun,
    frame: pd.DataFrame,
    *,
    name: str,
    digest: str,
    source: str | Path,
    context: str,
    targets: str | None = None,
    tags: Mapping[str, object] | None = None,
) -> LoggedDataset:
    """Log ``frame`` as an input of ``run`` (an MLflow dataset; the rows are not stored).

    Parameters
    ----------
    run : TrackedRun
        From :func:`~vitalgru.tracking.runs.start_run`.
    frame : pandas.DataFrame
        The rows used (beats, patient-hours); MLflow keeps its schema and row count.
    name : str
        The same for the same data from run to run (``mitdb DS2``); the digest tells
        versions of it apart.
    digest : str
        At most 36 characters: what identifies the data (not computed from ``frame``).
    source : str or Path
        The folder the data was read from.
    context : str
        One of :data:`DATASET_CONTEXTS`.
    targets : str, optional
        The column holding the labels.
    tags : mapping, optional
        Facts shown with the dataset on the run (the records, the patients' counts);
        values are stringified and cut to MLflow's 500 characters.

    Returns
    -------
    LoggedDataset

    Raises
    ------
    ValueError
        An empty name or digest, a digest longer than 36 characters, a context not in
        :data:`DATASET_CONTEXTS`, or ``targets`` not a column of ``frame``.
    """
    if not isinstance(name, str) or not name.strip() or len(name) > _MAX_NAME_LEN:
        raise ValueError(f"a dataset name is 1 to {_MAX_NAME_LEN} characters, got {name!r}")
    if not isinstance(digest, str) or not digest or len(digest) > _MAX_DIGEST_LEN:
        raise ValueError(
            f"a dataset digest is 1 to {_MAX_DIGEST_LEN} characters (MLflow's limit), "
            f"got {digest!r}"
        )
    if context not in DATASET_CONTEXTS:
        raise ValueError(f"context must be one of {DATASET_CONTEXTS}, got {context!r}")
    if targets is not None and targets not in frame.columns:
        raise ValueError(f"targets {targets!r} is not a column of the dataset ({name})")
    # the source named by its class: a bare path is read by two registered sources, and
    # MLflow warns that it picked one
    where = LocalArtifactDatasetSource(Path(source).resolve().as_posix())
    shown = {str(k): str(v)[:_MAX_TAG_VALUE_LEN] for k, v in (tags or {}).items()}
    ds = mlflow.data.from_pandas(frame, source=where, targets=targets, name=name, digest=digest)
    with _active(run), warnings.catch_warnings():
        # (the schema is inferred here) advice for a model's input schema, on integer
        # columns and missing values at inference; this one describes a table that was read
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        mlflow.log_input(ds, context=context, tags=shown or None)
    logger.info("run %s %s data: %s (digest %s, %d rows)", run.run_id, context, name, digest,
                len(frame))  # fmt: skip
    return LoggedDataset(name=name, digest=digest, context=context)
