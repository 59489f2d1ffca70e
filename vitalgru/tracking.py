"""MLflow tracking, model logging and the model registry (the only module that imports mlflow).

Where runs go
-------------
``$MLFLOW_TRACKING_URI`` when set (a tracking server, or any store URI MLflow accepts);
otherwise an embedded SQLite store ``sqlite:///<cwd>/mlflow.db`` whose experiments keep their
artifacts in ``<cwd>/mlartifacts/<experiment>`` (an absolute ``file://`` location fixed when
the experiment is created, so later runs from another working directory still find them).

How models are stored
---------------------
A network following :class:`vitalgru.models.base.SequenceModel` is logged as an MLflow
*pyfunc* model whose artifacts are plain data: the ``state_dict`` (``weights.pt``), a
``model_spec.json`` (class path ``"module:qualname"`` and ``config_dict()``), the
preprocessing statistics and the resolved run config. :func:`load_model` rebuilds the
network with ``from_config`` + ``load_state_dict`` (``torch.load(weights_only=True)``,
nothing unpickled), so it accepts sequences of any length; ``mlflow.pyfunc.load_model(uri)``
works too for generic serving. Classes are imported only from allowed packages
(:func:`vitalgru.models.base.build_model`).

Promotion
---------
Registered models are named ``vitalgru-<task>`` and promoted by alias (``champion``,
``challenger``), never by the deprecated stages. :func:`promote_if_better` stores the gate
metrics on the model version as tags and compares them with the current champion's.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import tempfile
import time
import urllib.parse
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path, PurePath
from typing import Any

import mlflow
import mlflow.artifacts
import mlflow.pyfunc
import numpy as np
import torch
import yaml
from matplotlib.figure import Figure
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.models import Model as MlflowModel
from pydantic import BaseModel
from torch import nn

import vitalgru
from vitalgru.errors import ModelLoadError, ServerUnavailableError
from vitalgru.io.download import server_unreachable
from vitalgru.models.base import (
    DEFAULT_ALLOWED_PREFIXES,
    build_model,
    check_model_contract,
    model_class_path,
)

__all__ = [
    "ARRHYTHMIA_MODEL_NAME",
    "EARLY_WARNING_MODEL_NAME",
    "LoadedModel",
    "ModelRef",
    "PromotionDecision",
    "SequenceModelPyfunc",
    "TrackedRun",
    "check_stores",
    "flatten_params",
    "get_alias_version",
    "load_model",
    "log_config",
    "log_confusion_matrix",
    "log_model",
    "alias_history",
    "promote",
    "promote_if_better",
    "registry_uri",
    "registry_versions",
    "rollback",
    "set_alias",
    "start_run",
    "tracking_uri",
]

logger = logging.getLogger(__name__)

#: Registered model names (``vitalgru-<task>``).
ARRHYTHMIA_MODEL_NAME = "vitalgru-arrhythmia"
EARLY_WARNING_MODEL_NAME = "vitalgru-early-warning"

#: Identifies the artifact layout written by :func:`log_model`; bump on incompatible change.
MODEL_FORMAT = "vitalgru.torch-state-dict"
MODEL_FORMAT_VERSION = 1

#: Prefix of the model-version tags that hold gate metrics (``gate.macro_f1`` = ``"0.91"``).
GATE_TAG_PREFIX = "gate."

# MLflow's limits (mlflow/utils/validation.py): 6000 characters per param value, at most
# 100 params and 1000 metrics per log_batch call.
_MAX_PARAM_VALUE_LEN = 6000
_MAX_PARAMS_PER_BATCH = 100
_MAX_METRICS_PER_BATCH = 1000

_ARTIFACT_FILES = {
    "model_spec": "model_spec.json",
    "weights": "weights.pt",
    "preprocessing": "preprocessing.json",
    "config": "config.json",
}


# --------------------------------------------------------------------------- stores


def tracking_uri() -> str:
    """Tracking store URI: ``$MLFLOW_TRACKING_URI``, else ``sqlite:///<cwd>/mlflow.db``.

    The working directory is read at call time.
    """
    env = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if env:
        return env
    return f"sqlite:///{(Path.cwd() / 'mlflow.db').as_posix()}"


def registry_uri() -> str:
    """Model registry URI: ``$MLFLOW_REGISTRY_URI``, else the tracking URI."""
    env = os.environ.get("MLFLOW_REGISTRY_URI", "").strip()
    return env or tracking_uri()


def _local_store_dir(uri: str) -> Path | None:
    """Folder of a local SQLite or file store (where ``mlartifacts`` goes), else None."""
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///") :]).expanduser().resolve().parent
    if uri.startswith("file://"):
        return Path(uri[len("file://") :]).expanduser().resolve()
    if "://" not in uri:  # a bare path is a file store
        return Path(uri).expanduser().resolve()
    return None


def check_stores(attempts: int = 3, wait_s: float = 2.0, timeout_s: float = 5.0) -> None:
    """Fail fast if a tracking or registry *server* does not answer.

    MLflow retries a refused connection seven times with growing waits, so a mistyped
    ``MLFLOW_TRACKING_URI`` or a server that is down costs about four minutes before its
    error. This asks each ``http(s)`` store's ``/health`` up to ``attempts`` times,
    ``wait_s`` apart (a server restarting in those seconds is still found); any HTTP
    answer counts as reachable. Local stores (SQLite, files) are not checked.

    Raises
    ------
    ServerUnavailableError
        Naming the URI, the environment variable it came from and what to do.
    """
    stores = {tracking_uri(): "MLFLOW_TRACKING_URI"}
    stores.setdefault(registry_uri(), "MLFLOW_REGISTRY_URI")
    for uri, var in stores.items():
        if urllib.parse.urlsplit(uri).scheme not in ("http", "https"):
            continue
        reason = server_unreachable(uri.rstrip("/") + "/health", attempts, wait_s, timeout_s)
        if reason is not None:
            remedy = (
                "unset it to use the local SQLite store ./mlflow.db"
                if var == "MLFLOW_TRACKING_URI"
                else "unset it to keep the registry in the tracking store"
            )
            raise ServerUnavailableError.after_tries(
                "MLflow server", uri, var, reason, attempts, wait_s, remedy
            )


def _client() -> MlflowClient:
    """A client for the current stores, with MLflow's fluent API pointed at them too
    (``mlflow.start_run`` and ``mlflow.pyfunc.log_model`` use the fluent API)."""
    t_uri, r_uri = tracking_uri(), registry_uri()
    mlflow.set_tracking_uri(t_uri)
    mlflow.set_registry_uri(r_uri)
    return MlflowClient(tracking_uri=t_uri, registry_uri=r_uri)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "experiment"


def _experiment_id(client: MlflowClient, name: str) -> str:
    """Id of experiment ``name``, created with a local artifact folder if needed."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError("experiment name must be a non-empty string")
    exp = client.get_experiment_by_name(name)
    if exp is None:
        store_dir = _local_store_dir(tracking_uri())
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

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log scalar metrics (``dict[str, float]`` with snake_case keys) at ``step``.

        Raises
        ------
        TypeError
            A value is not a real number.
        """
        ts = int(time.time() * 1000)
        items = []
        for k, v in metrics.items():
            if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
                raise TypeError(f"metric {k!r} must be a real number, got {type(v).__name__}")
            items.append(Metric(k, float(v), ts, int(step or 0)))
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

    The run ends ``FINISHED``, or ``FAILED`` when the block raises. ``nested=True`` opens a
    child of the active run (cross-validation folds).

    Examples
    --------
    >>> with start_run("vitalgru-arrhythmia", run_name="gru-small") as run:  # doctest: +SKIP
    ...     run.log_params({"model": {"hidden_size": 64}})
    ...     run.log_metrics({"macro_f1": 0.81}, step=3)
    """
    client = _client()
    exp_id = _experiment_id(client, experiment)
    run_tags = {"vitalgru.version": vitalgru.__version__, **dict(tags or {})}
    with mlflow.start_run(
        experiment_id=exp_id, run_name=run_name, tags=run_tags, nested=nested
    ) as active:
        logger.info(
            "MLflow run %s in experiment %r (%s)", active.info.run_id, experiment, tracking_uri()
        )
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


# --------------------------------------------------------------------------- models


@dataclass(frozen=True)
class ModelRef:
    """A logged model: ``uri`` loads it (``models:/<name>/<version>`` when registered)."""

    uri: str
    name: str | None
    version: str | None
    model_id: str | None = None
    run_id: str | None = None


@dataclass(frozen=True)
class LoadedModel:
    """A network rebuilt from a logged model.

    Attributes
    ----------
    module : torch.nn.Module
        In eval mode, on the requested device.
    preprocessing : dict
        Statistics and settings the inputs must be prepared with (as logged).
    config : dict
        The resolved run config logged with the model.
    uri : str
        The URI it was loaded from.
    version : str or None
        Registered version, when loaded through the registry.
    """

    module: nn.Module
    preprocessing: dict[str, Any]
    config: dict[str, Any]
    uri: str
    version: str | None
    name: str | None = None
    class_path: str = ""
    model_config: dict[str, Any] = field(default_factory=dict)


def _read_artifacts(model_dir: Path) -> dict[str, Path]:
    """Paths of the vitalgru artifacts inside a downloaded pyfunc model folder."""
    try:
        flavor = MlflowModel.load(str(model_dir)).flavors["python_function"]
    except (MlflowException, OSError, KeyError) as e:
        raise ModelLoadError(f"{model_dir} is not an MLflow pyfunc model: {e}") from e
    arts = flavor.get("artifacts") or {}
    missing = [k for k in _ARTIFACT_FILES if k not in arts]
    if missing:
        raise ModelLoadError(
            f"model at {model_dir} lacks vitalgru artifacts {missing}; it was not logged "
            "with vitalgru.tracking.log_model"
        )
    return {k: model_dir / arts[k]["path"] for k in _ARTIFACT_FILES}


def _rebuild(
    paths: Mapping[str, Path], allowed_prefixes: Sequence[str], map_location: str | torch.device
) -> tuple[nn.Module, dict[str, Any], dict[str, Any], dict[str, Any]]:
    spec = json.loads(Path(paths["model_spec"]).read_text())
    if spec.get("format") != MODEL_FORMAT:
        raise ModelLoadError(
            f"unknown model format {spec.get('format')!r}; expected {MODEL_FORMAT!r}"
        )
    if int(spec.get("format_version", 0)) > MODEL_FORMAT_VERSION:
        raise ModelLoadError(
            f"model format version {spec['format_version']} is newer than this vitalgru "
            f"understands ({MODEL_FORMAT_VERSION}); upgrade vitalgru"
        )
    module = build_model(spec["class_path"], spec["model_config"], allowed_prefixes)
    state = torch.load(Path(paths["weights"]), map_location=map_location, weights_only=True)
    module.load_state_dict(state, strict=True)
    module.to(map_location).eval()
    preprocessing = json.loads(Path(paths["preprocessing"]).read_text())
    config = json.loads(Path(paths["config"]).read_text())
    return module, preprocessing, config, spec


class SequenceModelPyfunc(mlflow.pyfunc.PythonModel):
    """Generic pyfunc face of a vitalgru network (for ``mlflow.pyfunc.load_model``).

    ``predict`` takes model-ready features: an array ``(batch, time, n_features)`` or
    ``(time, n_features)`` of any ``time``, or a dict with ``"x"`` (that array), optional
    ``"h0"`` and further keyword inputs of ``forward``. It returns the logits as a float32
    array (without the batch axis when the input had none). Preprocessing is not applied.

    Loading through ``mlflow.pyfunc`` runs the small code file stored with the model and
    trusts the ``allowed_prefixes`` recorded at logging time; :func:`load_model` does
    neither (it reads only JSON and tensors and takes ``allowed_prefixes`` from its caller).
    """

    # MLflow wraps predict() for type-hint validation unless this is set; inputs here are
    # variable-length arrays that its schema cannot describe (it would only warn).
    _skip_type_hint_validation = True

    def load_context(self, context: Any) -> None:
        paths = {k: Path(context.artifacts[k]) for k in _ARTIFACT_FILES}
        allowed = tuple(
            (context.model_config or {}).get("allowed_prefixes", DEFAULT_ALLOWED_PREFIXES)
        )
        self.module, self.preprocessing, self.config, self.spec = _rebuild(paths, allowed, "cpu")

    def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201
        extra: dict[str, Any] = {}
        if isinstance(model_input, Mapping):
            if "x" not in model_input:
                raise ValueError("dict input needs an 'x' entry (batch, time, n_features)")
            extra = {k: torch.as_tensor(np.asarray(v)) for k, v in model_input.items() if k != "x"}
            x_np = np.asarray(model_input["x"], dtype=np.float32)
        else:
            x_np = np.asarray(model_input, dtype=np.float32)
        unbatched = x_np.ndim == 2
        if unbatched:
            x_np = x_np[None]
        if x_np.ndim != 3:
            raise ValueError(
                f"input must be (batch, time, n_features) or (time, n_features), got {x_np.shape}"
            )
        with torch.inference_mode():
            logits, _ = self.module(torch.from_numpy(x_np), **extra)
        out = logits.float().numpy()
        return out[0] if unbatched else out


# "Models from code" (MLflow >= 2.12): the pyfunc is defined by this small script, stored
# with the model, instead of a cloudpickled object; loading a vitalgru model unpickles nothing.
_PYFUNC_CODE = """\
import mlflow.models

from vitalgru.tracking import SequenceModelPyfunc

mlflow.models.set_model(SequenceModelPyfunc())
"""


def _pip_requirements() -> list[str]:
    # Given explicitly: MLflow would otherwise infer them by importing the model in a
    # subprocess (about 8 s per logged model on these machines).
    return [
        f"vitalgru=={vitalgru.__version__}",
        f"torch=={torch.__version__.split('+')[0]}",
        f"mlflow=={mlflow.__version__}",
        f"numpy=={np.__version__}",
    ]


def _json_mapping(obj: Mapping[str, Any], what: str) -> dict[str, Any]:
    if isinstance(obj, BaseModel):
        obj = obj.model_dump(mode="json")
    if not isinstance(obj, Mapping):
        raise TypeError(f"{what} must be a mapping, got {type(obj).__name__}")
    try:
        return json.loads(json.dumps(dict(obj), default=_json_default))
    except (TypeError, ValueError) as e:
        raise TypeError(f"{what} is not JSON-serialisable: {e}") from e


def _json_default(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, PurePath):
        return o.as_posix()
    if isinstance(o, Enum):
        return o.value
    if isinstance(o, tuple | set | frozenset):
        return list(o)
    raise TypeError(f"{type(o).__name__} is not JSON-serialisable")


def log_model(
    run: TrackedRun,
    model: nn.Module,
    *,
    preprocessing: Mapping[str, Any],
    config: Mapping[str, Any],
    registered_name: str | None = None,
    artifact_path: str = "model",
    allowed_prefixes: Sequence[str] = DEFAULT_ALLOWED_PREFIXES,
    version_tags: Mapping[str, str] | None = None,
    description: str | None = None,
    model_description: str | None = None,
) -> ModelRef:
    """Log a network to ``run`` (and register it under ``registered_name``).

    Parameters
    ----------
    run : TrackedRun
        From :func:`start_run`.
    model : torch.nn.Module
        Follows :class:`~vitalgru.models.base.SequenceModel`; checked first by
        :func:`~vitalgru.models.base.check_model_contract` (a model that could not be
        rebuilt fails here, at training time, not when a scorer loads it).
    preprocessing : mapping
        JSON-serialisable statistics/settings inputs must be prepared with (feature means
        and standard deviations, ``fs``, window lengths, feature names).
    config : mapping
        The resolved run config (``cfg.model_dump(mode="json")``) and dataset manifest.
    registered_name : str, optional
        Registry name (``vitalgru-arrhythmia``); the new version is returned.
    artifact_path : str
        Name of the logged model (MLflow's ``name``).
    allowed_prefixes : sequence of str
        Packages trusted to provide the model class (default ``vitalgru.models``).
    version_tags : mapping, optional
        Extra tags set on the registered version.
    description, model_description : str, optional
        Markdown the registry shows for the new version and for the registered model
        (:mod:`vitalgru.reports.model_card`); the latter replaces the model's description.

    Returns
    -------
    ModelRef
        ``uri`` is ``models:/<name>/<version>`` when registered, else the logged model's URI.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    model_cfg = check_model_contract(model, allowed_prefixes)
    prep = _json_mapping(preprocessing, "preprocessing")
    conf = _json_mapping(config, "config")
    class_path = model_class_path(model)
    spec = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "class_path": class_path,
        "model_config": model_cfg,
        "n_parameters": int(sum(p.numel() for p in model.parameters())),
        "torch_version": torch.__version__,
        "vitalgru_version": vitalgru.__version__,
    }
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vitalgru-model-") as tmp:
        d = Path(tmp)
        paths = {k: d / f for k, f in _ARTIFACT_FILES.items()}
        paths["model_spec"].write_text(json.dumps(spec, indent=2))
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        torch.save(state, paths["weights"])
        paths["preprocessing"].write_text(json.dumps(prep, indent=2))
        paths["config"].write_text(json.dumps(conf, indent=2))
        code = d / "vitalgru_pyfunc.py"
        code.write_text(_PYFUNC_CODE)
        _client()
        with _active(run), _quiet_signature_warnings():
            info = mlflow.pyfunc.log_model(
                name=artifact_path,
                python_model=str(code),
                model_config={"allowed_prefixes": list(allowed_prefixes)},
                artifacts={k: str(p) for k, p in paths.items()},
                pip_requirements=_pip_requirements(),
                registered_model_name=registered_name,
                metadata={"vitalgru_class_path": class_path},
            )
    version: str | None = None
    uri = info.model_uri
    if registered_name is not None:
        version = str(info.registered_model_version)
        uri = f"models:/{registered_name}/{version}"
        client = _client()
        tags = {"vitalgru.class_path": class_path, "vitalgru.run_id": run.run_id}
        tags.update(dict(version_tags or {}))
        for k, v in tags.items():
            client.set_model_version_tag(registered_name, version, k, str(v))
        if description is not None:
            client.update_model_version(registered_name, version, description=description)
        if model_description is not None:
            client.update_registered_model(registered_name, description=model_description)
    logger.info("logged %s as %s in %.2f s", class_path, uri, time.perf_counter() - t0)
    return ModelRef(
        uri=uri, name=registered_name, version=version, model_id=info.model_id, run_id=run.run_id
    )


@contextlib.contextmanager
def _quiet_signature_warnings() -> Iterator[None]:
    """Silence MLflow's advice to add a signature/input example: inputs here are
    variable-length sequences that a fixed signature would misdescribe."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(signature|input example).*")
        yield


def _parse_models_uri(client: MlflowClient, uri: str) -> tuple[str, str | None, str | None]:
    """(download URI pinned to a version, registered name, version) for ``models:/`` URIs."""
    if not uri.startswith("models:/"):
        return uri, None, None
    rest = uri[len("models:/") :].strip("/")
    try:
        if "@" in rest:
            name, alias = rest.rsplit("@", 1)
            mv = client.get_model_version_by_alias(name, alias)
            return f"models:/{name}/{mv.version}", name, str(mv.version)
        if "/" in rest:
            name, ver = rest.rsplit("/", 1)
            if ver.isdigit():
                client.get_model_version(name, ver)
                return f"models:/{name}/{ver}", name, ver
            if ver == "latest":
                versions = client.search_model_versions(f"name = '{name}'")
                if not versions:
                    raise ModelLoadError(f"registered model {name!r} has no versions")
                latest = max(versions, key=lambda v: int(v.version))
                return f"models:/{name}/{latest.version}", name, str(latest.version)
    except MlflowException as e:
        raise ModelLoadError(
            f"cannot resolve {uri} in registry {registry_uri()}: {e.message}"
        ) from e
    return uri, None, None  # models:/<model_id>: a logged model outside the registry


def load_model(
    uri: str,
    *,
    allowed_prefixes: Sequence[str] = DEFAULT_ALLOWED_PREFIXES,
    map_location: str | torch.device = "cpu",
    kinds: tuple[type[nn.Module], ...] = (),
) -> LoadedModel:
    """Rebuild a logged network for inference on sequences of any length.

    Parameters
    ----------
    uri : str
        ``models:/<name>@<alias>``, ``models:/<name>/<version>``, ``models:/<name>/latest``,
        ``models:/<model_id>``, ``runs:/<run_id>/<path>`` or a local model folder. An alias
        is resolved once, so the version returned is the one loaded.
    allowed_prefixes : sequence of str
        Packages trusted to provide the model class.
    map_location : str or torch.device
        Device for the weights.
    kinds : tuple of type, optional
        The model classes the caller can use (e.g. the early-warning ones); a model of
        another class is refused. Empty: any vitalgru model.

    Returns
    -------
    LoadedModel
        The module in eval mode, with its preprocessing and config.

    Raises
    ------
    vitalgru.errors.ModelLoadError
        Unknown name/alias/version, not a vitalgru model, or not one of ``kinds`` (a
        ``ValueError``).
    """
    client = _client()
    pinned, name, version = _parse_models_uri(client, uri)
    with tempfile.TemporaryDirectory(prefix="vitalgru-load-") as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=pinned,
                dst_path=tmp,
                tracking_uri=tracking_uri(),
                registry_uri=registry_uri(),
            )
        except MlflowException as e:
            raise ModelLoadError(f"cannot download model {uri}: {e.message}") from e
        paths = _read_artifacts(Path(local))
        module, prep, conf, spec = _rebuild(paths, allowed_prefixes, map_location)
    if kinds and not isinstance(module, kinds):
        raise ModelLoadError(
            f"{uri} is of model class {type(module).__name__} ({spec['class_path']}), not "
            f"{' or '.join(k.__name__ for k in kinds)}: it is a model for another task"
        )
    return LoadedModel(
        module=module,
        preprocessing=prep,
        config=conf,
        uri=uri,
        version=version,
        name=name,
        class_path=spec["class_path"],
        model_config=spec["model_config"],
    )


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class PromotionDecision:
    """Outcome of :func:`promote_if_better`."""

    promoted: bool
    reason: str
    previous_version: str | None
    comparison: dict[str, tuple[float, float | None]] = field(default_factory=dict)


def _alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def get_alias_version(name: str, alias: str = "champion") -> str | None:
    """Version of registered model ``name`` holding ``alias``, or None (also when the
    model is not registered at all)."""
    return _alias_version(_client(), name, alias)


def set_alias(name: str, version: str, alias: str) -> None:
    """Point ``alias`` of ``name`` at ``version``, unrecorded (tests and migrations; a
    person promoting or rolling back uses :func:`promote` or :func:`rollback`)."""
    _client().set_registered_model_alias(name, alias, str(version))


def _history_tag(alias: str) -> str:
    return f"vitalgru.{alias}.history"


def alias_history(name: str, alias: str = "champion") -> list[dict[str, str]]:
    """Which versions held ``alias`` of ``name``, oldest first: ``[{"version", "at" (UTC,
    ISO 8601), "how" ("gate", "manual" or "rollback"), "reason"}, ...]``, from the
    registered model's ``vitalgru.<alias>.history`` tag ([] when there is none)."""
    client = _client()
    try:
        tags = dict(client.get_registered_model(name).tags or {})
    except MlflowException:
        return []
    try:
        history = json.loads(tags.get(_history_tag(alias), "[]"))
    except json.JSONDecodeError:
        logger.warning("%s: the %s history tag is not JSON; ignored", name, alias)
        return []
    return [h for h in history if isinstance(h, dict) and "version" in h]


def _record_holder(
    client: MlflowClient, name: str, alias: str, version: str, how: str, reason: str
) -> None:
    """Append the new holder of ``alias`` to the model's history tag (oldest entries
    dropped to stay under MLflow's 5,000-character tag limit)."""
    history = alias_history(name, alias)
    history.append(
        {
            "version": str(version),
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "how": how,
            "reason": reason[:300],
        }
    )
    text = json.dumps(history)
    while len(text) > 5000 and len(history) > 1:
        history.pop(0)
        text = json.dumps(history)
    client.set_registered_model_tag(name, _history_tag(alias), text)


def _existing_version(client: MlflowClient, name: str, version: str) -> Any:
    try:
        return client.get_model_version(name, str(version))
    except MlflowException as e:
        raise ValueError(f"registered model {name!r} has no version {version}: {e.message}") from e


def promote(
    name: str, version: str, reason: str, alias: str = "champion", *, how: str = "manual"
) -> PromotionDecision:
    """Give ``version`` the ``alias`` by a person's decision (a reviewed challenger, or a
    rollback after a failed check), and record it: the reason on the version's
    ``vitalgru.promotion`` tag and in the alias history (:func:`alias_history`).

    Raises
    ------
    ValueError
        An empty reason, or an unknown version.
    """
    reason = " ".join(str(reason).split())
    if not reason:
        raise ValueError("a promotion by hand needs a reason (it is kept in the registry)")
    client = _client()
    version = str(version)
    _existing_version(client, name, version)
    prev = _alias_version(client, name, alias)
    if prev == version:
        return PromotionDecision(False, f"version {version} already holds {alias!r}", prev)
    client.set_registered_model_alias(name, alias, version)
    if alias == "champion" and _alias_version(client, name, "challenger") == version:
        client.delete_registered_model_alias(name, "challenger")
    was = f" (was version {prev})" if prev else ""
    text = f"{how}: {alias} of {name} is version {version}{was}: {reason}"
    client.set_model_version_tag(name, version, "vitalgru.promotion", text[:5000])
    _record_holder(client, name, alias, version, how, reason)
    logger.info(text)
    return PromotionDecision(True, text, prev)


def rollback(name: str, reason: str, alias: str = "champion") -> PromotionDecision:
    """Give ``alias`` back to the version that held it before the current one (the newest
    earlier holder in :func:`alias_history` that still exists); recorded as a
    :func:`promote` with ``how="rollback"``.

    Raises
    ------
    ValueError
        No earlier holder is recorded (versions promoted before the history existed, or
        only one ever held the alias), or an empty reason.
    """
    client = _client()
    current = _alias_version(client, name, alias)
    for entry in reversed(alias_history(name, alias)):
        v = str(entry["version"])
        if v == current:
            continue
        try:
            client.get_model_version(name, v)
        except MlflowException:  # deleted since
            continue
        return promote(name, v, reason, alias, how="rollback")
    raise ValueError(
        f"no earlier {alias} of {name} is recorded to roll back to (current: version "
        f"{current}); promote a version by hand instead"
    )


def registry_versions(name: str) -> list[dict[str, Any]]:
    """Every version of registered model ``name``, newest first, with what a person
    deciding about it needs: ``{"version", "created" (UTC, ISO 8601), "aliases", "run_id",
    "gate" ({metric: value}), "gate_decision", "promotion", "monitor" ({"status",
    "checked_at", "reasons", "data"} of the last ``vitalgru monitor`` check)}``; [] when the
    model is not registered."""
    client = _client()
    try:
        aliases = dict(client.get_registered_model(name).aliases or {})
    except MlflowException:
        return []
    by_version: dict[str, list[str]] = {}
    for a, v in aliases.items():
        by_version.setdefault(str(v), []).append(a)
    out = []
    for mv in client.search_model_versions(f"name='{name}'"):
        tags = dict(mv.tags or {})
        out.append(
            {
                "version": str(mv.version),
                "created": time.strftime(
                    "%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(mv.creation_timestamp) / 1000)
                ),
                "aliases": sorted(by_version.get(str(mv.version), [])),
                "run_id": mv.run_id,
                "gate": {
                    k[len(GATE_TAG_PREFIX) :]: float(v)
                    for k, v in sorted(tags.items())
                    if k.startswith(GATE_TAG_PREFIX)
                },
                "gate_decision": tags.get("vitalgru.gate_decision"),
                "promotion": tags.get("vitalgru.promotion"),
                "monitor": {
                    k: tags.get(f"vitalgru.monitor.{k}")
                    for k in ("status", "checked_at", "reasons", "data")
                },
            }
        )
    return sorted(out, key=lambda r: int(r["version"]), reverse=True)


def version_gate_values(
    name: str, version: str, gate_keys: Sequence[str]
) -> dict[str, float | None]:
    """The numbers a registered version was gated on (its ``gate.<key>`` tags, else its
    run's metrics); None for a key it has neither for.

    Raises
    ------
    ValueError
        ``name`` has no version ``version``.
    """
    client = _client()
    return _champion_values(client, _existing_version(client, name, version), gate_keys)


def set_version_tags(name: str, version: str, tags: Mapping[str, Any]) -> None:
    """Set tags on a registered model version (values stringified, at most 5,000
    characters, MLflow's limit)."""
    client = _client()
    for k, v in tags.items():
        client.set_model_version_tag(name, str(version), k, str(v)[:5000])


def _gate_values(metrics: Mapping[str, float], gate_keys: Sequence[str]) -> dict[str, float]:
    if isinstance(gate_keys, str) or not gate_keys:
        raise ValueError("gate_keys must be a non-empty sequence of metric names")
    missing = [k for k in gate_keys if k not in metrics]
    if missing:
        raise ValueError(
            f"gate metrics {missing} missing from the evaluation metrics; available: "
            f"{sorted(metrics)}"
        )
    out: dict[str, float] = {}
    for k in gate_keys:
        v = metrics[k]
        if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
            raise ValueError(f"gate metric {k!r} must be a number, got {v!r}")
        if not math.isfinite(float(v)):
            raise ValueError(
                f"gate metric {k!r} is {v}; a model with undefined metrics cannot be gated"
            )
        out[k] = float(v)
    return out


def _champion_values(
    client: MlflowClient, mv: Any, gate_keys: Sequence[str]
) -> dict[str, float | None]:
    """Gate values of a version: its ``gate.*`` tags, else the metrics of its run."""
    tags = dict(mv.tags or {})
    run_metrics: dict[str, float] | None = None
    out: dict[str, float | None] = {}
    for k in gate_keys:
        if GATE_TAG_PREFIX + k in tags:
            out[k] = float(tags[GATE_TAG_PREFIX + k])
            continue
        if run_metrics is None:
            try:
                run_metrics = dict(client.get_run(mv.run_id).data.metrics) if mv.run_id else {}
            except MlflowException:
                run_metrics = {}
        out[k] = run_metrics.get(k)
    return out


def promote_if_better(
    name: str,
    version: str,
    metrics: Mapping[str, float],
    gate_keys: Sequence[str],
    alias: str = "champion",
    *,
    lower_is_better: Sequence[str] = (),
    challenger_alias: str | None = "challenger",
) -> PromotionDecision:
    """Give ``version`` the ``alias`` if it passes the gate against the current holder.

    The gate: no worse than the current champion on every key in ``gate_keys`` and strictly
    better on at least one (higher is better, except keys in ``lower_is_better``). The first
    version of a model passes. A version that fails gets ``challenger_alias`` (unless None).
    Gate values are stored on the version as tags ``gate.<key>`` so later versions are
    compared with exactly the numbers this one was judged on.

    Parameters
    ----------
    name, version : str
        Registered model and the new version.
    metrics : mapping of str to float
        Evaluation metrics of the new version (on the held-out evaluation set).
    gate_keys : sequence of str
        Metric names that decide.
    alias : str
        Alias to compete for.
    lower_is_better : sequence of str
        Gate keys where smaller is better (Brier score, calibration error).
    challenger_alias : str or None
        Alias given to a version that does not pass.

    Returns
    -------
    PromotionDecision
        ``comparison`` maps each key to ``(new, champion)``.

    Raises
    ------
    ValueError
        Empty ``gate_keys``, a gate key missing from ``metrics`` or not finite, an unknown
        version, or a ``lower_is_better`` key that is not a gate key.
    """
    new = _gate_values(metrics, gate_keys)
    unknown = [k for k in lower_is_better if k not in gate_keys]
    if unknown:
        raise ValueError(f"lower_is_better keys {unknown} are not gate keys {list(gate_keys)}")
    client = _client()
    version = str(version)
    _existing_version(client, name, version)
    for k, v in new.items():
        client.set_model_version_tag(name, version, GATE_TAG_PREFIX + k, repr(v))

    try:
        champ = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        champ = None

    def finish(promoted: bool, reason: str, prev: str | None, cmp: dict) -> PromotionDecision:
        if promoted:
            client.set_registered_model_alias(name, alias, version)
            if challenger_alias and _alias_version(client, name, challenger_alias) == version:
                client.delete_registered_model_alias(name, challenger_alias)
            _record_holder(client, name, alias, version, "gate", reason)
        elif challenger_alias and (prev is None or prev != version):
            client.set_registered_model_alias(name, challenger_alias, version)
        client.set_model_version_tag(name, version, "vitalgru.gate_decision", reason[:5000])
        logger.info("%s v%s: %s", name, version, reason)
        return PromotionDecision(promoted, reason, prev, cmp)

    if champ is None:
        cmp = {k: (v, None) for k, v in new.items()}
        return finish(True, f"first {alias} of {name}: version {version}", None, cmp)
    prev = str(champ.version)
    if prev == version:
        cmp = {k: (v, v) for k, v in new.items()}
        return finish(False, f"version {version} already holds {alias!r}", prev, cmp)

    old = _champion_values(client, champ, gate_keys)
    cmp = {k: (new[k], old[k]) for k in gate_keys}
    missing = [k for k, v in old.items() if v is None]
    if missing:
        return finish(
            False,
            f"{alias} version {prev} has no recorded value for {missing}; not comparable, "
            f"kept version {prev} (promote by hand: vitalgru models promote)",
            prev,
            cmp,
        )
    worse, better = [], []
    for k in gate_keys:
        a, b = new[k], float(old[k])  # type: ignore[arg-type]
        sign = -1.0 if k in lower_is_better else 1.0
        if sign * (a - b) < 0:
            worse.append(f"{k} {a:.4g} vs {b:.4g}")
        elif sign * (a - b) > 0:
            better.append(f"{k} {a:.4g} vs {b:.4g}")
    if worse:
        return finish(False, f"worse than {alias} v{prev} on {', '.join(worse)}", prev, cmp)
    if not better:
        return finish(False, f"no better than {alias} v{prev} on any gate metric", prev, cmp)
    return finish(True, f"beats {alias} v{prev} on {', '.join(better)}", prev, cmp)
