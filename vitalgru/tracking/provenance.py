"""Where a registered version came from, in one place: the run that trained it, the code
(git commit, dirty flag, source digest), the data it was trained and evaluated on (the
run's MLflow datasets), the figures of its logged model with the data they were measured
on, the gate's verdict and what it was judged on, promotions and the last monitoring
check, its model card, and the run's artifacts (config, manifest, evaluation reports).

What a reviewer read from four MLflow pages (version, run, datasets, logged model) and
the artifacts; ``vitalgru models show`` prints it.
"""

from __future__ import annotations

import json
import time
from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from vitalgru.tracking.gate import EVALUATED_ON_TAG
from vitalgru.tracking.gate_paired import paired_from_tags
from vitalgru.tracking.registry import GATE_TAG_PREFIX, _existing_version, _not_found
from vitalgru.tracking.source import GIT_COMMIT_TAG, GIT_DIRTY_TAG, SOURCE_DIGEST_TAG
from vitalgru.tracking.stores import mlflow_client

__all__ = ["version_provenance"]

_CONTEXT_TAG = "mlflow.data.context"


def _utc(ms: int | None) -> str | None:
    return None if ms is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def _model_id(mv: Any) -> str | None:
    """The logged model a version was registered from (its ``models:/<model_id>`` source;
    MLflow's own ``model_id`` field where it sets one)."""
    if getattr(mv, "model_id", None):
        return str(mv.model_id)
    src = str(mv.source or "")
    return src.split("/", 1)[1] if src.startswith("models:/m-") else None


def _datasets(run: Any) -> list[dict[str, Any]]:
    out = []
    for d in run.inputs.dataset_inputs if run.inputs is not None else []:
        tags = {t.key: t.value for t in d.tags}
        try:
            rows = json.loads(d.dataset.profile or "{}").get("num_rows")
        except (ValueError, AttributeError):
            rows = None
        out.append(
            {
                "context": tags.pop(_CONTEXT_TAG, None),
                "name": d.dataset.name,
                "digest": d.dataset.digest,
                "rows": rows,
                "source": d.dataset.source,
                "tags": tags,
            }
        )
    return out


def _run_facts(client: MlflowClient, run_id: str | None) -> tuple[dict[str, Any], Any]:
    if not run_id:
        return {"id": None}, None
    try:
        run = client.get_run(run_id)
    except MlflowException as e:
        if not _not_found(e):
            raise
        return {"id": run_id, "status": "not found (deleted?)"}, None
    tags = run.data.tags
    exp = client.get_experiment(run.info.experiment_id)
    facts = {
        "id": run_id,
        "status": run.info.status,
        "experiment": exp.name if exp is not None else run.info.experiment_id,
        "started": _utc(run.info.start_time),
        "git_commit": tags.get(GIT_COMMIT_TAG),
        "git_dirty": tags.get(GIT_DIRTY_TAG),
        "source_digest": tags.get(SOURCE_DIGEST_TAG),
        "vitalgru_version": tags.get("vitalgru.version"),
        "artifacts": sorted(
            a.path + ("/" if a.is_dir else "") for a in client.list_artifacts(run_id)
        ),
    }
    return facts, run


def _figures(client: MlflowClient, model_id: str | None) -> dict[str, dict[str, Any]]:
    """The logged model's figures that name the dataset they were measured on."""
    if model_id is None:
        return {}
    try:
        metrics = client.get_logged_model(model_id).metrics or []
    except MlflowException as e:
        if not _not_found(e):
            raise
        return {}
    return {
        m.key: {"value": m.value, "dataset": m.dataset_name, "digest": m.dataset_digest}
        for m in sorted(metrics, key=lambda m: m.key)
        if m.dataset_name
    }


def version_provenance(name: str, version: str) -> dict[str, Any]:
    """Everything the registry, the run and the logged model hold about one version.

    Returns
    -------
    dict
        ``name``, ``version``, ``created`` (UTC), ``aliases``, ``run`` (``id``,
        ``status``, ``experiment``, ``started``, ``git_commit``, ``git_dirty``,
        ``source_digest``, ``vitalgru_version``, ``artifacts``: the run's top-level
        files and folders), ``model_id``, ``datasets`` (``context``, ``name``, ``digest``,
        ``rows``, ``source``, ``tags``; empty for a run logged before vitalgru logged
        them), ``figures`` (the logged model's metrics that name their dataset), ``gate``
        ({key: value}), ``gate_evaluated_on``, ``gate_decision``, ``gate_paired`` (the
        gate's paired record- or patient-bootstrap comparison with the champion, or None),
        ``promotion``,
        ``monitor`` ({``status``, ``checked_at``, ``reasons``}) and ``description`` (the
        version's model card).

    Raises
    ------
    ValueError
        ``name`` has no version ``version``.
    """
    client = mlflow_client()
    mv = _existing_version(client, name, version)
    tags = dict(mv.tags or {})
    try:
        aliases = dict(client.get_registered_model(name).aliases or {})
    except MlflowException:
        aliases = {}
    run, run_obj = _run_facts(client, mv.run_id)
    model_id = _model_id(mv)
    return {
        "name": name,
        "version": str(mv.version),
        "created": _utc(int(mv.creation_timestamp)),
        "aliases": sorted(a for a, v in aliases.items() if str(v) == str(mv.version)),
        "run": run,
        "model_id": model_id,
        "datasets": _datasets(run_obj) if run_obj is not None else [],
        "figures": _figures(client, model_id),
        "gate": {
            k[len(GATE_TAG_PREFIX) :]: float(v)
            for k, v in sorted(tags.items())
            if k.startswith(GATE_TAG_PREFIX)
        },
        "gate_evaluated_on": tags.get(EVALUATED_ON_TAG),
        "gate_decision": tags.get("vitalgru.gate_decision"),
        "gate_paired": paired_from_tags(tags),
        "promotion": tags.get("vitalgru.promotion"),
        "monitor": {
            k: tags.get(f"vitalgru.monitor.{k}") for k in ("status", "checked_at", "reasons")
        },
        "description": mv.description or "",
    }
