"""The MLflow pyfunc form of a vitalgru network: its artifacts, and the network from them.

A logged model's artifacts are plain data: the ``state_dict`` (``weights.pt``), a
``model_spec.json`` (class path ``"module:qualname"`` and ``config_dict()``), the
preprocessing statistics and the resolved run config, laid out as :data:`ARTIFACT_FILES`
names them and versioned by :data:`MODEL_FORMAT` / :data:`MODEL_FORMAT_VERSION`.
:func:`rebuild_network` reads them back (``torch.load(weights_only=True)``, nothing
unpickled). :class:`SequenceModelPyfunc` is the generic face ``mlflow.pyfunc.load_model``
serves, defined by the small code file :data:`PYFUNC_CODE` stored with each model, whose
pinned requirements :func:`pip_requirements` gives. Logging and loading by URI are in
:mod:`vitalgru.tracking.models`.
"""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import torch
from mlflow.exceptions import MlflowException
from mlflow.models import Model as MlflowModel
from torch import nn

import vitalgru
from vitalgru.errors import ModelLoadError
from vitalgru.models.base import DEFAULT_ALLOWED_PREFIXES, build_model

#: Identifies the artifact layout written by :func:`~vitalgru.tracking.models.log_model`;
#: bump on incompatible change.
MODEL_FORMAT = "vitalgru.torch-state-dict"
MODEL_FORMAT_VERSION = 1

#: The artifacts of a logged model, by key, and their file names.
ARTIFACT_FILES = {
    "model_spec": "model_spec.json",
    "weights": "weights.pt",
    "preprocessing": "preprocessing.json",
    "config": "config.json",
}


def read_artifacts(model_dir: Path) -> dict[str, Path]:
    """Paths of the vitalgru artifacts inside a downloaded pyfunc model folder."""
    try:
        flavor = MlflowModel.load(str(model_dir)).flavors["python_function"]
    except (MlflowException, OSError, KeyError) as e:
        raise ModelLoadError(f"{model_dir} is not an MLflow pyfunc model: {e}") from e
    arts = flavor.get("artifacts") or {}
    missing = [k for k in ARTIFACT_FILES if k not in arts]
    if missing:
        raise ModelLoadError(
            f"model at {model_dir} lacks vitalgru artifacts {missing}; it was not logged "
            "with vitalgru.tracking.log_model"
        )
    return {k: model_dir / arts[k]["path"] for k in ARTIFACT_FILES}


def rebuild_network(
    paths: Mapping[str, Path], allowed_prefixes: Sequence[str], map_location: str | torch.device
) -> tuple[nn.Module, dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The network, its preprocessing, its config and its spec from artifact files.

    Parameters
    ----------
    paths : mapping of str to Path
        The files of :data:`ARTIFACT_FILES`, by key (:func:`read_artifacts`).
    allowed_prefixes : sequence of str
        Packages trusted to provide the model class.
    map_location : str or torch.device
        Device for the weights.

    Returns
    -------
    tuple
        ``(module, preprocessing, config, spec)``; the module in eval mode.
    """
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
    # a new network draws its initial weights from torch's global generator; they are
    # replaced by the stored ones, and the caller's random draws stay as they were
    with torch.random.fork_rng(devices=[]):
        module = build_model(spec["class_path"], spec["model_config"], allowed_prefixes)
    state = torch.load(Path(paths["weights"]), map_location=map_location, weights_only=True)
    module.load_state_dict(state, strict=True)
    module.to(map_location).eval()
    preprocessing = json.loads(Path(paths["preprocessing"]).read_text())
    config = json.loads(Path(paths["config"]).read_text())
    return module, preprocessing, config, spec


def _model_dtype(key: str, a: np.ndarray) -> np.ndarray:
    """An extra input as the network takes it: the hidden state ``h0`` and numbers with a
    fraction in float32 (JSON writes a state of zeros as integers, float64 arrives from
    numpy); flags and counts as they are."""
    if key == "h0" or np.issubdtype(a.dtype, np.floating):
        return a.astype(np.float32)
    return a


class SequenceModelPyfunc(mlflow.pyfunc.PythonModel):
    """Generic pyfunc face of a vitalgru network (for ``mlflow.pyfunc.load_model``).

    ``predict`` takes model-ready features: an array ``(batch, time, n_features)`` or
    ``(time, n_features)`` of any ``time``, or a dict with ``"x"`` (that array), optional
    ``"h0"`` and further keyword inputs of ``forward``. It returns the logits as a float32
    array (without the batch axis when the input had none). Preprocessing is not applied.

    Loading through ``mlflow.pyfunc`` runs the small code file stored with the model and
    trusts the ``allowed_prefixes`` recorded at logging time;
    :func:`~vitalgru.tracking.models.load_model` does neither (it reads only JSON and
    tensors and takes ``allowed_prefixes`` from its caller).
    """

    # MLflow wraps predict() for type-hint validation unless this is set; inputs here are
    # variable-length arrays that its schema cannot describe (it would only warn).
    _skip_type_hint_validation = True

    def load_context(self, context: Any) -> None:
        paths = {k: Path(context.artifacts[k]) for k in ARTIFACT_FILES}
        allowed = tuple(
            (context.model_config or {}).get("allowed_prefixes", DEFAULT_ALLOWED_PREFIXES)
        )
        self.module, self.preprocessing, self.config, self.spec = rebuild_network(
            paths, allowed, "cpu"
        )

    def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201
        extra: dict[str, Any] = {}
        if isinstance(model_input, Mapping):
            if "x" not in model_input:
                raise ValueError("dict input needs an 'x' entry (batch, time, n_features)")
            extra = {k: torch.as_tensor(_model_dtype(k, np.asarray(v)))
                     for k, v in model_input.items() if k != "x"}  # fmt: skip
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
PYFUNC_CODE = """\
import mlflow.models

from vitalgru.tracking import SequenceModelPyfunc

mlflow.models.set_model(SequenceModelPyfunc())
"""


#: The numerical packages that loading and scoring a logged model imports (vitalgru's own
#: ``vitalgru.io`` reads WFDB; ``mlflow.pyfunc`` imports scipy and pandas itself), pinned
#: to the versions installed where it was logged. scikit-learn is not among them: a
#: blend's trees are torch buffers once fitted (:mod:`vitalgru.models.trees`).
_LOAD_PACKAGES = ("torch", "mlflow", "numpy", "scipy", "pandas", "wfdb")


def pip_requirements() -> list[str]:
    # Given explicitly: MLflow would otherwise infer them by importing the model in a
    # subprocess (about 8 s per logged model on these machines).
    pins = [f"{name}=={importlib.metadata.version(name).split('+')[0]}" for name in _LOAD_PACKAGES]
    return [f"vitalgru=={vitalgru.__version__}", *pins]
