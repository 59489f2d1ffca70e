"""MLflow tracking, model logging and the model registry (the only package that imports
mlflow).

- :mod:`vitalgru.tracking.stores`: where the stores are (``$MLFLOW_TRACKING_URI``, else an
  embedded SQLite store ``./mlflow.db``), whether they are there, and a client for them;
- :mod:`vitalgru.tracking.relocation`: a local store moved, copied or restored under another
  path, its artifact locations pointed at the folder it is in now;
- :mod:`vitalgru.tracking.runs`: experiments (artifacts of the embedded store in
  ``./mlartifacts``), runs, params, metrics and figures.
- :mod:`vitalgru.tracking.datasets`: the data a run trained and was evaluated on, logged as
  MLflow datasets (name, digest, source, schema, context), which metrics can name;
- :mod:`vitalgru.tracking.models`: networks logged as MLflow pyfunc models whose artifacts
  are plain data, rebuilt by :func:`load_model` without unpickling anything;
- :mod:`vitalgru.tracking.model_uris`: the version a ``models:/`` URI names now
  (:func:`resolve_model_uri`), and what the registry lacks when it names none;
- :mod:`vitalgru.tracking.pyfunc`: those artifacts' layout and format version, the network
  rebuilt from them, and the pyfunc face ``mlflow.pyfunc.load_model`` serves;
- :mod:`vitalgru.tracking.source`: the tags naming the code of a run (the checkout's git
  commit and dirty flag, a digest of the source), which :func:`start_run` sets;
- :mod:`vitalgru.tracking.environment`: the tags naming the float environment of a run
  (CPU model, torch's CPU kernels, thread counts, package versions), set there too;
- :mod:`vitalgru.tracking.gate`: the champion gate (:func:`promote_if_better`);
- :mod:`vitalgru.tracking.gate_paired`: the gate's difference from the champion beside a
  paired record- (or patient-) bootstrap interval (:func:`paired_text` says it in one line);
- :mod:`vitalgru.tracking.provenance`: where a registered version came from, in one
  place (:func:`version_provenance`: run, code, data, figures, gate, card);
- :mod:`vitalgru.tracking.registry`: models named ``vitalgru-<task>``, promoted by alias
  (``champion``, ``challenger``) through the gate of :func:`promote_if_better`, by hand
  (:func:`promote`) or back (:func:`rollback`).

Everything a caller uses is importable from here.
"""

from vitalgru.tracking.datasets import DATASET_CONTEXTS, LoggedDataset, log_dataset
from vitalgru.tracking.gate import promote_if_better, version_gate_values
from vitalgru.tracking.gate_paired import PAIRED_TAG, paired_brief, paired_text
from vitalgru.tracking.model_uris import resolve_model_uri
from vitalgru.tracking.models import LoadedModel, ModelRef, load_model, log_model
from vitalgru.tracking.provenance import version_provenance
from vitalgru.tracking.pyfunc import MODEL_FORMAT, MODEL_FORMAT_VERSION, SequenceModelPyfunc
from vitalgru.tracking.registry import (
    ARRHYTHMIA_MODEL_NAME,
    EARLY_WARNING_MODEL_NAME,
    GATE_TAG_PREFIX,
    PromotionDecision,
    alias_history,
    earlier_holders,
    get_alias_version,
    promote,
    registry_versions,
    rollback,
    set_alias,
    set_version_tags,
)
from vitalgru.tracking.runs import (
    TrackedRun,
    flatten_params,
    log_config,
    log_confusion_matrix,
    start_run,
)
from vitalgru.tracking.stores import (
    check_stores,
    missing_store,
    registry_uri,
    tracking_uri,
    unwritable_store,
)

__all__ = [
    "ARRHYTHMIA_MODEL_NAME",
    "DATASET_CONTEXTS",
    "EARLY_WARNING_MODEL_NAME",
    "GATE_TAG_PREFIX",
    "MODEL_FORMAT",
    "MODEL_FORMAT_VERSION",
    "PAIRED_TAG",
    "LoadedModel",
    "LoggedDataset",
    "ModelRef",
    "PromotionDecision",
    "SequenceModelPyfunc",
    "TrackedRun",
    "alias_history",
    "check_stores",
    "earlier_holders",
    "flatten_params",
    "get_alias_version",
    "load_model",
    "log_config",
    "log_confusion_matrix",
    "log_dataset",
    "log_model",
    "missing_store",
    "paired_brief",
    "paired_text",
    "promote",
    "promote_if_better",
    "registry_uri",
    "registry_versions",
    "resolve_model_uri",
    "rollback",
    "set_alias",
    "set_version_tags",
    "start_run",
    "tracking_uri",
    "unwritable_store",
    "version_gate_values",
    "version_provenance",
]
