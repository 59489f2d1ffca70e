"""The model registry: the champion gate, promotions by hand, rollbacks, what each
version was judged on.

Registered models are named ``vitalgru-<task>`` and promoted by alias (``champion``,
``challenger``), never by the deprecated stages. :func:`promote_if_better` stores the gate
metrics on the model version as tags and compares them with the current champion's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from vitalgru.claims import ClaimBusy, hold
from vitalgru.tracking.runs import _client, _sqlite_file, registry_uri

logger = logging.getLogger(__name__)

#: Registered model names (``vitalgru-<task>``).
ARRHYTHMIA_MODEL_NAME = "vitalgru-arrhythmia"
EARLY_WARNING_MODEL_NAME = "vitalgru-early-warning"

#: Prefix of the model-version tags that hold gate metrics (``gate.macro_f1`` = ``"0.91"``).
GATE_TAG_PREFIX = "gate."
#: Tag of a version saying what its gate values were measured on (``evaluated_on``).
EVALUATED_ON_TAG = "vitalgru.gate_evaluated_on"


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class PromotionDecision:
    """Outcome of :func:`promote_if_better`."""

    promoted: bool
    reason: str
    previous_version: str | None
    comparison: dict[str, tuple[float, float | None]] = field(default_factory=dict)


def _not_found(e: MlflowException) -> bool:
    """Whether MLflow refused because the model, version or alias is not there (any other
    refusal, a locked store or a server's 5xx, is not an answer and is raised: taken for
    "no champion", it promoted a version without comparing it)."""
    code = getattr(e, "error_code", "")
    return code == "RESOURCE_DOES_NOT_EXIST" or (
        code == "INVALID_PARAMETER_VALUE" and "not found" in str(e.message)
    )


def _alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as e:
        if not _not_found(e):
            raise
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
    except MlflowException as e:
        if not _not_found(e):
            raise
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


#: How long a promotion waits for another one on the same registry (seconds).
ALIAS_WAIT_S = 600.0


def _alias_lock() -> Path:
    """The lock file of the registry's aliases: beside a local SQLite store's file
    (``mlflow.db.aliases.lock``), else in the cache folder, named by the registry URI."""
    uri = registry_uri()
    if (db := _sqlite_file(uri)) is not None:
        db = db.resolve()
        return db.with_name(f"{db.name}.aliases.lock")
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    key = hashlib.sha256(uri.encode()).hexdigest()[:16]
    return Path(cache) / "vitalgru" / "locks" / f"registry-{key}.lock"


@contextlib.contextmanager
def _changing_aliases(name: str) -> Iterator[None]:
    """Hold the registry's aliases while a promotion reads the holder and moves the alias:
    two trainings finishing together both read the old champion, both passed the gate
    against it, and the later write won, however it compared with the other; the alias
    history, read and written back, lost an entry. A claim on this machine (processes
    promoting into one registry from several machines are not kept apart)."""
    lock = _alias_lock()
    with contextlib.ExitStack() as claim:
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            claim.enter_context(hold(
                lock, f"the aliases of {name}", wait_s=ALIAS_WAIT_S, busy="another promotion",
                on_wait=lambda pid: logger.info("%s: waiting for process %s, which is "
                                                "promoting", name, pid or "?")))  # fmt: skip
        except ClaimBusy:
            raise
        except OSError as e:  # no writable place for the lock: promote as before, unclaimed
            logger.warning("%s: aliases changed without a claim (%s)", name, e)
        yield


def _existing_version(client: MlflowClient, name: str, version: str) -> Any:
    try:
        return client.get_model_version(name, str(version))
    except MlflowException as e:
        raise ValueError(f"registered model {name!r} has no version {version}: {e.message}") from e


def _check_alias(alias: str) -> str:
    """``alias`` if MLflow lets a person set it: not empty, not ``latest``, not ``v<N>``
    (which name versions in a model URI); MLflow's own refusal otherwise raised its
    exception, not a message."""
    a = str(alias)
    if not a.strip() or a.lower() == "latest" or re.fullmatch(r"[vV]\d+", a):
        raise ValueError(
            f"{alias!r} cannot be an alias (empty, 'latest' and 'v<N>' name versions in a "
            "model URI); use a name such as 'champion' or 'challenger'"
        )
    if not re.fullmatch(r"[\w-]+", a):  # MLflow's own rule, refused here with a message
        raise ValueError(f"{alias!r} cannot be an alias: letters, digits, _ and - only")
    return a


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
    alias = _check_alias(alias)
    with _changing_aliases(name):
        return _promote(name, str(version), reason, alias, how)


def _promote(name: str, version: str, reason: str, alias: str, how: str) -> PromotionDecision:
    client = _client()
    # the version as the registry numbers it: "01" is version 1, not another one
    version = str(_existing_version(client, name, version).version)
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
    reason = " ".join(str(reason).split())
    if not reason:
        raise ValueError("a rollback needs a reason (it is kept in the registry)")
    alias = _check_alias(alias)
    with _changing_aliases(name):
        client = _client()
        current = _alias_version(client, name, alias)
        for entry in reversed(alias_history(name, alias)):
            v = str(entry["version"])
            if v == current:
                continue
            try:
                client.get_model_version(name, v)
            except MlflowException as e:
                if not _not_found(e):
                    raise
                continue  # deleted since
            return _promote(name, v, reason, alias, "rollback")
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
    except MlflowException as e:
        if not _not_found(e):
            raise
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
    evaluated_on: str | None = None,
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
    evaluated_on : str, optional
        What the metrics were measured on (a cohort's size and folds), kept on the version
        (tag ``vitalgru.gate_evaluated_on``): a champion judged on something else is not
        compared with (figures of another cohort, or of a small noisy one, are not the
        same measure); the version is left as challenger, to be promoted by hand. A
        champion without the tag (logged before it was kept) is compared.

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
    with _changing_aliases(name):
        return _gate(name, str(version), new, gate_keys, alias, lower_is_better,
                     challenger_alias, evaluated_on)  # fmt: skip


def _gate(
    name: str,
    version: str,
    new: dict[str, float],
    gate_keys: Sequence[str],
    alias: str,
    lower_is_better: Sequence[str],
    challenger_alias: str | None,
    evaluated_on: str | None = None,
) -> PromotionDecision:
    client = _client()
    _existing_version(client, name, version)
    for k, v in new.items():
        client.set_model_version_tag(name, version, GATE_TAG_PREFIX + k, repr(v))
    if evaluated_on is not None:
        client.set_model_version_tag(name, version, EVALUATED_ON_TAG, evaluated_on[:5000])

    try:
        champ = client.get_model_version_by_alias(name, alias)
    except MlflowException as e:
        if not _not_found(e):
            raise
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
    # a NaN (a metric undefined on the champion's evaluation) compares as neither better nor
    # worse, so it counts as no value, like a missing one
    missing = [k for k, v in old.items() if v is None or not math.isfinite(v)]
    if missing:
        return finish(
            False,
            f"{alias} version {prev} has no recorded value for {missing}; not comparable, "
            f"kept version {prev} (promote by hand: vitalgru models promote)",
            prev,
            cmp,
        )
    theirs = dict(champ.tags or {}).get(EVALUATED_ON_TAG)
    if evaluated_on is not None and theirs is not None and theirs != evaluated_on[:5000]:
        return finish(
            False,
            f"{alias} version {prev} was judged on {theirs}, this one on {evaluated_on}; not "
            f"comparable, kept version {prev} (promote by hand: vitalgru models promote)",
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
