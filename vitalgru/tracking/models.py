"""Networks logged as MLflow pyfunc models and rebuilt from them.

A network following :class:`vitalgru.models.base.SequenceModel` is logged by
:func:`log_model` as an MLflow *pyfunc* model whose artifacts are plain data: the
``state_dict`` (``weights.pt``), a ``model_spec.json`` (class path ``"module:qualname"`` and
``config_dict()``), the preprocessing statistics and the resolved run config (their layout
and the pyfunc face in :mod:`vitalgru.tracking.pyfunc`). :func:`load_model` rebuilds the
network with ``from_config`` + ``load_state_dict`` (``torch.load(weights_only=True)``,
nothing unpickled), so it accepts sequences of any length; ``mlflow.pyfunc.load_model(uri)``
works too for generic serving. Classes are imported only from allowed packages
(:func:`vitalgru.models.base.build_model`). Which version a ``models:/`` URI names is
asked of the registry first (:mod:`vitalgru.tracking.model_uris`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import pickle
import tempfile
import time
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
from mlflow.exceptions import MlflowException
from pydantic import BaseModel
from torch import nn

import vitalgru
from vitalgru.errors import ModelLoadError
from vitalgru.models.base import DEFAULT_ALLOWED_PREFIXES, check_model_contract, model_class_path
from vitalgru.tracking.model_uris import pin_model_uri
from vitalgru.tracking.model_uris import resolve_model_uri as resolve_model_uri  # its old home
from vitalgru.tracking.pyfunc import (
    ARTIFACT_FILES,
    MODEL_FORMAT,
    MODEL_FORMAT_VERSION,
    PYFUNC_CODE,
    pip_requirements,
    read_artifacts,
    rebuild_network,
)
from vitalgru.tracking.relocation import missing_files
from vitalgru.tracking.runs import TrackedRun, _active
from vitalgru.tracking.stores import mlflow_client, registry_uri, tracking_uri

logger = logging.getLogger(__name__)


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

    def described(self, uri: str | None = None) -> str:
        """``<uri> (version N)`` for pages and titles; the URI alone for a model loaded
        outside the registry (a run's or a folder's: it has no version)."""
        shown = self.uri if uri is None else uri
        return shown if self.version is None else f"{shown} (version {self.version})"


#: What reading a model's damaged artifacts raises (weights that do not unpickle or do not
#: fit the network, a JSON file cut short, a file gone).
_DAMAGED = (
    OSError,
    RuntimeError,
    ValueError,
    KeyError,
    TypeError,
    EOFError,
    pickle.UnpicklingError,
)


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
        paths = {k: d / f for k, f in ARTIFACT_FILES.items()}
        paths["model_spec"].write_text(json.dumps(spec, indent=2))
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        torch.save(state, paths["weights"])
        paths["preprocessing"].write_text(json.dumps(prep, indent=2))
        paths["config"].write_text(json.dumps(conf, indent=2))
        code = d / "vitalgru_pyfunc.py"
        code.write_text(PYFUNC_CODE)
        mlflow_client()
        with _active(run), _quiet_signature_warnings():
            info = mlflow.pyfunc.log_model(
                name=artifact_path,
                python_model=str(code),
                model_config={"allowed_prefixes": list(allowed_prefixes)},
                artifacts={k: str(p) for k, p in paths.items()},
                pip_requirements=pip_requirements(),
                registered_model_name=registered_name,
                metadata={"vitalgru_class_path": class_path},
            )
    version: str | None = None
    uri = info.model_uri
    if registered_name is not None:
        version = str(info.registered_model_version)
        uri = f"models:/{registered_name}/{version}"
        client = mlflow_client()
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
        The model classes the caller can use (a task's, from
        :data:`vitalgru.models.tasks.TASK_KINDS`); a model of another class is refused.
        Empty: any vitalgru model.

    Returns
    -------
    LoadedModel
        The module in eval mode, with its preprocessing and config.

    Raises
    ------
    vitalgru.errors.ModelLoadError
        No store to read it from (:func:`~vitalgru.tracking.stores.missing_store`), unknown
        name/alias/version, not a vitalgru model, or not one of ``kinds`` (a
        ``ValueError``).
    vitalgru.errors.ServerUnavailableError
        For a ``models:/`` or ``runs:/`` URI, an MLflow tracking or registry server that
        does not answer two tries a second apart, 5 s each (:func:`check_stores`), or
        refuses the name it is reached by: said within about 11 s (an ``OSError``).
    """
    pinned, name, version = pin_model_uri(uri)
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
        # a registered version (the stores are open already) whose files did not come
        gone = None if name is None else missing_files(mlflow_client(), Path(local), name, version)
        if gone is not None:
            raise ModelLoadError(f"cannot load {uri} (version {version}): {gone}")
        try:
            paths = read_artifacts(Path(local))
            module, prep, conf, spec = rebuild_network(paths, allowed_prefixes, map_location)
        except ModelLoadError:
            raise
        except _DAMAGED as e:
            # said as a ModelLoadError naming the model, not a torch or json traceback
            # (the trust refusal, a ValueError, keeps its words)
            what = uri if version is None else f"{uri} (version {version})"
            first = (str(e).strip().splitlines() or [""])[0][:200]
            raise ModelLoadError(f"cannot load {what}: {type(e).__name__}: {first}") from e
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
