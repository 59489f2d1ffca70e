"""MLflow experiments and runs: params, metrics, figures.

Runs go to the stores of :mod:`vitalgru.tracking.stores`: ``$MLFLOW_TRACKING_URI`` when set
(a tracking server, or any store URI MLflow accepts); otherwise an embedded SQLite store
``sqlite:///<cwd>/mlflow.db`` whose experiments keep their
artifacts in ``<cwd>/mlartifacts/<experiment>`` (an absolute ``file://`` location fixed when
the experiment is created, so later runs from another working directory still find them;
a store moved with its folder has them pointed at the new one,
:mod:`vitalgru.tracking.relocation`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

import mlflow
import mlflow.artifacts
import mlflow.pyfunc
import numpy as np
import yaml
from matplotlib.figure import Figure
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from pydantic import BaseModel

import vitalgru
from vitalgru.tracking.environment import environment_tags
from vitalgru.tracking.run_owner import OWNER_TAG, end_orphaned_runs, owner_tag
from vitalgru.tracking.source import source_tags
from vitalgru.tracking.stores import local_store_dir, mlflow_client, tracking_uri

if TYPE_CHECKING:
    from vitalgru.tracking.datasets import LoggedDataset

logger = logging.getLogger(__name__)

# MLflow's limits (mlflow/utils/validation.py): 6000 characters per param value, at most
# 100 params and 1000 metrics per log_batch call.
_MAX_PARAM_VALUE_LEN = 6000
_MAX_PARAMS_PER_BATCH = 100
_MAX_METRICS_PER_BATCH = 1000


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "experiment"


def _experiment_id(client: MlflowClient, name: str) -> str:
    """Id of experiment ``name``, created with a local artifact folder if needed."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError("experiment name must be a non-empty string")
    exp = client.get_experiment_by_name(name)
    if exp is None:
        store_dir = local_store_dir(tracking_uri())
        location = (
            (store_dir / "mlartifacts" / _slug(name)).as_uri() if store_dir is not None else None
        )
        try:
            return client.create_experiment(name, artifact_location=location)
        except MlflowException:
            exp = client.get_experiment_by_name(name)  # created concurrently by another run
            if exp is None:
                raise
    if exp.lifecycle_stage != "active":
        raise ValueError(
            f"MLflow experiment {name!r} (id {exp.experiment_id}) is deleted; restore it "
            f"(`mlflow experiments restore --experiment-id {exp.experiment_id}`) or use "
            "another experiment name"
        )
    return exp.experiment_id


def shown_uri(uri: str) -> str:
    """``uri`` as a log line may show it: the password of a user part replaced by ``***``
    (``postgresql://vitalgru:***@db/mlflow``). Log lines are kept where the environment
    that holds the URI is not: a flow run's in Prefect's database, a worker's output."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


# --------------------------------------------------------------------------- params


def _param_value(v: Any) -> str:
    if isinstance(v, str):
        s = v
    elif isinstance(v, Enum):
        s = str(v.value)
    elif isinstance(v, PurePath):
        s = v.as_posix()
    elif v is None or isinstance(v, bool | int | float):
        s = json.dumps(v)  # null / true / 3 / 0.5: unambiguous and parseable
    elif isinstance(v, np.generic):
        s = json.dumps(v.item())
    else:
        s = json.dumps(v, default=str, sort_keys=True)
    if len(s) > _MAX_PARAM_VALUE_LEN:
        logger.warning(
            "param value of %d characters truncated to MLflow's limit of %d",
            len(s),
            _MAX_PARAM_VALUE_LEN,
        )
        s = s[: _MAX_PARAM_VALUE_LEN - 3] + "..."
    return s


def flatten_params(params: Mapping[str, Any], prefix: str = "", sep: str = ".") -> dict[str, str]:
    """Flatten nested mappings into MLflow params (string values, dotted keys).

    Parameters
    ----------
    params : mapping
        Possibly nested; pydantic models are dumped to JSON-compatible dicts first.
    prefix : str
        Prepended to every key (``"model"`` gives ``"model.hidden_size"``).
    sep : str
        Joins nested keys.

    Returns
    -------
    dict of str to str
        Strings and enums as they are, paths in POSIX form, numbers, booleans and ``None``
        as JSON (``3``, ``0.5``, ``true``, ``null``), sequences as JSON arrays; values are
        cut to MLflow's 6000-character limit. Empty mappings produce no key.

    Raises
    ------
    TypeError
        ``params`` is not a mapping, or a key is not a string.
    """
    if isinstance(params, BaseModel):
        params = params.model_dump(mode="json")
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a mapping, got {type(params).__name__}")
    out: dict[str, str] = {}
    for k, v in params.items():
        if not isinstance(k, str):
            raise TypeError(f"param keys must be strings, got {k!r} ({type(k).__name__})")
        key = f"{prefix}{sep}{k}" if prefix else k
        if isinstance(v, BaseModel):
            v = v.model_dump(mode="json")
        if isinstance(v, Mapping):
            out.update(flatten_params(v, key, sep))
        else:
            out[key] = _param_value(v)
    return out


# --------------------------------------------------------------------------- runs


@dataclass
class TrackedRun:
    """Handle on one MLflow run; every method writes to that run by id.

    Attributes
    ----------
    run_id : str
    experiment_id : str
    tracking_uri : str
        Store the run lives in.
    """

    run_id: str
    experiment_id: str
    tracking_uri: str
    _client: MlflowClient = field(repr=False)

    @property
    def artifact_uri(self) -> str:
        """Root URI of the run's artifacts."""
        return self._client.get_run(self.run_id).info.artifact_uri

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log params; nested mappings are flattened with dots (:func:`flatten_params`)."""
        items = [Param(k, v) for k, v in flatten_params(params).items()]
        for i in range(0, len(items), _MAX_PARAMS_PER_BATCH):
            self._client.log_batch(self.run_id, params=items[i : i + _MAX_PARAMS_PER_BATCH])

    def log_metrics(
        self,
        metrics: Mapping[str, float],
        step: int | None = None,
        *,
        model_id: str | None = None,
        dataset: LoggedDataset | None = None,
    ) -> None:
        """Log scalar metrics (``dict[str, float]`` with snake_case keys) at ``step``.

        ``model_id`` (a :class:`~vitalgru.tracking.models.ModelRef`'s) makes them figures of
        that logged model as well, shown on its page; ``dataset`` (from
        :func:`~vitalgru.tracking.datasets.log_dataset`) says what they were measured on.
        (MLflow keeps the dataset of a metric only with a model's: a run's metric has none.)

        Raises
        ------
        TypeError
            A value is not a real number.
        """
        ts = int(time.time() * 1000)
        named = (dataset.name, dataset.digest) if dataset is not None else (None, None)
        items = []
        for k, v in metrics.items():
            if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
                raise TypeError(f"metric {k!r} must be a real number, got {type(v).__name__}")
            items.append(Metric(k, float(v), ts, int(step or 0), model_id, *named))
        for i in range(0, len(items), _MAX_METRICS_PER_BATCH):
            self._client.log_batch(self.run_id, metrics=items[i : i + _MAX_METRICS_PER_BATCH])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set run tags (values stringified)."""
        self._client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_dict(self, obj: Any, artifact_file: str) -> None:
        """Write ``obj`` as JSON or YAML (chosen by the ``artifact_file`` suffix)."""
        self._client.log_dict(self.run_id, obj, artifact_file)

    def log_text(self, text: str, artifact_file: str) -> None:
        """Write ``text`` to ``artifact_file`` (a path inside the run's artifacts)."""
        self._client.log_text(self.run_id, text, artifact_file)

    def log_figure(self, fig: Figure, artifact_file: str) -> None:
        """Save a matplotlib figure as ``artifact_file`` (format from its suffix)."""
        self._client.log_figure(self.run_id, fig, artifact_file)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Copy a local file (or a folder, recursively) into the run's artifacts."""
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"cannot log artifact {p}: no such file or folder")
        if p.is_dir():
            self._client.log_artifacts(self.run_id, str(p), artifact_path)
        else:
            self._client.log_artifact(self.run_id, str(p), artifact_path)


@contextlib.contextmanager
def start_run(
    experiment: str,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
    nested: bool = False,
) -> Iterator[TrackedRun]:
    """Open an MLflow run in ``experiment`` (created if missing) for the ``with`` block.

    The run ends ``FINISHED``, or ``FAILED`` when the block raises; a run of the experiment
    that a process stopped by SIGKILL left ``RUNNING`` is ended ``KILLED`` first
    (:func:`vitalgru.tracking.run_owner.end_orphaned_runs`). ``nested=True`` opens a
    child of the active run (cross-validation folds). It is tagged with the code that made
    it (:func:`vitalgru.tracking.source.source_tags`: the checkout's git commit and whether
    it was dirty, where there is one, and a digest of the source) and with the float
    environment that ran it (:func:`vitalgru.tracking.environment.environment_tags`: CPU
    model, torch's CPU kernels, thread counts, versions of Python and the numerical
    packages); ``tags`` win.

    Examples
    --------
    >>> with start_run("vitalgru-arrhythmia", run_name="gru-small") as run:  # doctest: +SKIP
    ...     run.log_params({"model": {"hidden_size": 64}})
    ...     run.log_metrics({"macro_f1": 0.81}, step=3)
    """
    client = mlflow_client()
    exp_id = _experiment_id(client, experiment)
    # a run a killed process left RUNNING is ended KILLED, not shown running beside this one
    end_orphaned_runs(client, exp_id)
    run_tags = {
        "vitalgru.version": vitalgru.__version__,
        OWNER_TAG: owner_tag(),
        **source_tags(),
        **environment_tags(),
        **dict(tags or {}),
    }
    with mlflow.start_run(
        experiment_id=exp_id, run_name=run_name, tags=run_tags, nested=nested
    ) as active:
        logger.info(
            "MLflow run %s in experiment %r (%s)", active.info.run_id, experiment,
            shown_uri(tracking_uri()),
        )  # fmt: skip
        yield TrackedRun(
            run_id=active.info.run_id,
            experiment_id=exp_id,
            tracking_uri=tracking_uri(),
            _client=client,
        )


@contextlib.contextmanager
def _active(run: TrackedRun) -> Iterator[None]:
    """Make ``run`` MLflow's active run for the block (resumed if it is not)."""
    current = mlflow.active_run()
    if current is not None and current.info.run_id == run.run_id:
        yield
        return
    with mlflow.start_run(run_id=run.run_id, nested=current is not None):
        yield


def log_config(run: TrackedRun, cfg: BaseModel, artifact_file: str = "config.yaml") -> None:
    """Log a resolved pydantic config as flattened params and as a YAML artifact."""
    if not isinstance(cfg, BaseModel):
        raise TypeError(f"cfg must be a pydantic model, got {type(cfg).__name__}")
    data = cfg.model_dump(mode="json")
    run.log_params(data)
    run.log_text(yaml.safe_dump(data, sort_keys=False), artifact_file)


def log_confusion_matrix(
    run: TrackedRun,
    cm: np.ndarray | Sequence[Sequence[int]],
    labels: Sequence[str],
    artifact_file: str = "confusion_matrix.png",
    title: str | None = None,
) -> None:
    """Log a confusion matrix as a figure and as JSON counts beside it.

    Parameters
    ----------
    cm : array_like
        ``(n_classes, n_classes)`` counts; rows are true classes, columns predictions.
    labels : sequence of str
        ``n_classes`` class names in row/column order (``AAMI_CLASSES``).
    artifact_file : str
        Image path inside the run (``.png``/``.svg``/``.pdf``); the counts go to the same
        path with a ``.json`` suffix.

    Notes
    -----
    Cells show counts and the row percentage (per-class sensitivity on the diagonal);
    colour is the row-normalised fraction so rare classes stay visible. Drawn on a bare
    ``matplotlib.figure.Figure`` (Agg rendering, no pyplot, no display).
    """
    m = np.asarray(cm)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"confusion matrix must be square (n, n), got shape {m.shape}")
    if m.shape[0] != len(labels):
        raise ValueError(f"{m.shape[0]}x{m.shape[0]} confusion matrix but {len(labels)} labels")
    if not np.issubdtype(m.dtype, np.number) or np.any(m < 0):
        raise ValueError("confusion matrix entries must be non-negative counts")
    n = m.shape[0]
    rows = m.sum(axis=1, keepdims=True).astype(float)
    frac = np.divide(m, rows, out=np.zeros(m.shape, dtype=float), where=rows > 0)
    size = 1.2 + 0.9 * n
    fig = Figure(figsize=(size + 1.2, size), layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, label="fraction of true class")
    ax.set(
        xticks=range(n),
        yticks=range(n),
        xticklabels=list(labels),
        yticklabels=list(labels),
        xlabel="predicted",
        ylabel="true",
        title=title or "",
    )
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                f"{m[i, j]:g}\n{100 * frac[i, j]:.1f}%",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if frac[i, j] > 0.5 else "black",
            )
    run.log_figure(fig, artifact_file)
    stem = artifact_file.rsplit(".", 1)[0] if "." in PurePath(artifact_file).name else artifact_file
    run.log_dict({"labels": list(labels), "counts": m.tolist()}, stem + ".json")
