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

from vitalgru.tracking.models import (
    MODEL_FORMAT,
    MODEL_FORMAT_VERSION,
    LoadedModel,
    ModelRef,
    SequenceModelPyfunc,
    load_model,
    log_model,
)
from vitalgru.tracking.registry import (
    ARRHYTHMIA_MODEL_NAME,
    EARLY_WARNING_MODEL_NAME,
    GATE_TAG_PREFIX,
    PromotionDecision,
    alias_history,
    get_alias_version,
    promote,
    promote_if_better,
    registry_versions,
    rollback,
    set_alias,
    set_version_tags,
    version_gate_values,
)
from vitalgru.tracking.runs import (
    TrackedRun,
    check_stores,
    flatten_params,
    log_config,
    log_confusion_matrix,
    registry_uri,
    start_run,
    tracking_uri,
)

__all__ = [
    "ARRHYTHMIA_MODEL_NAME",
    "EARLY_WARNING_MODEL_NAME",
    "GATE_TAG_PREFIX",
    "MODEL_FORMAT",
    "MODEL_FORMAT_VERSION",
    "LoadedModel",
    "ModelRef",
    "PromotionDecision",
    "SequenceModelPyfunc",
    "TrackedRun",
    "alias_history",
    "check_stores",
    "flatten_params",
    "get_alias_version",
    "load_model",
    "log_config",
    "log_confusion_matrix",
    "log_model",
    "promote",
    "promote_if_better",
    "registry_uri",
    "registry_versions",
    "rollback",
    "set_alias",
    "set_version_tags",
    "start_run",
    "tracking_uri",
    "version_gate_values",
]
