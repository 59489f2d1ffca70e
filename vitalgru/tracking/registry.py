"""The model registry: aliases and their history, promotions by hand, rollbacks, each
version's tags.

Registered models are named ``vitalgru-<task>`` and promoted by alias (``champion``,
``challenger``), never by the deprecated stages; the gate that promotes a new version on
its evaluation is :mod:`vitalgru.tracking.gate`'s, under the same alias claim.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from vitalgru.claims import ClaimBusy, hold
from vitalgru.errors import RegistryError
from vitalgru.models.base import resolve_model_class
from vitalgru.models.tasks import TASK_KINDS
from vitalgru.tracking.gate_paired import paired_from_tags
from vitalgru.tracking.stores import mlflow_client, registry_uri, sqlite_file

logger = logging.getLogger(__name__)

#: Registered model names (``vitalgru-<task>``).
ARRHYTHMIA_MODEL_NAME = "vitalgru-arrhythmia"
EARLY_WARNING_MODEL_NAME = "vitalgru-early-warning"

#: Prefix of the model-version tags that hold gate metrics (``gate.macro_f1`` = ``"0.91"``).
GATE_TAG_PREFIX = "gate."

#: The task of each registered model name (a key of :data:`vitalgru.models.tasks.TASK_KINDS`).
_TASK_OF_NAME = {ARRHYTHMIA_MODEL_NAME: "arrhythmia", EARLY_WARNING_MODEL_NAME: "early-warning"}


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class PromotionDecision:
    """Outcome of :func:`promote_if_better`; ``paired``: the gate's paired record (or
    patient) bootstrap against the champion
    (:func:`~vitalgru.tracking.gate_paired.paired_comparison`,
    :func:`~vitalgru.tracking.gate_paired.paired_utility_comparison`), None where it made
    none."""

    promoted: bool
    reason: str
    previous_version: str | None
    comparison: dict[str, tuple[float, float | None]] = field(default_factory=dict)
    paired: dict[str, Any] | None = None


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
    return _alias_version(mlflow_client(), name, alias)


def set_alias(name: str, version: str, alias: str) -> None:
    """Point ``alias`` of ``name`` at ``version``, unrecorded (tests and migrations; a
    person promoting or rolling back uses :func:`promote` or :func:`rollback`)."""
    mlflow_client().set_registered_model_alias(name, alias, str(version))


def earlier_holders(name: str, version: str, alias: str = "champion") -> list[str]:
    """The versions of ``name`` that held ``alias`` before ``version`` (its
    :func:`alias_history`) and are older than it, newest first: what a server may fall
    back to when ``version`` cannot be loaded. Only versions that once held the alias (a
    version the gate kept from it scored worse), older ones (a newer one is not taken
    before its time), and none the alias was ever moved away from to an older version (a
    rollback, or a person putting an older one back by hand: it was withdrawn, and was
    served again when the next champion broke). [] when the history names none."""
    now = int(version)
    history = [int(h["version"]) for h in alias_history(name, alias)
               if str(h["version"]).isdigit()]  # fmt: skip
    withdrawn = {a for a, b in zip(history, history[1:], strict=False) if b < a}
    held = set(history) - withdrawn
    return [str(v) for v in sorted(held, reverse=True) if v < now]


def _history_tag(alias: str) -> str:
    return f"vitalgru.{alias}.history"


def alias_history(name: str, alias: str = "champion") -> list[dict[str, str]]:
    """Which versions held ``alias`` of ``name``, oldest first: ``[{"version", "at" (UTC,
    ISO 8601), "how" ("gate", "manual" or "rollback"), "reason"}, ...]``, from the
    registered model's ``vitalgru.<alias>.history`` tag ([] when there is none)."""
    client = mlflow_client()
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


def _last_recorded(name: str, alias: str) -> str | None:
    """The version the alias history names last as holder of ``alias`` (None: none)."""
    history = alias_history(name, alias)
    return str(history[-1]["version"]) if history else None


def _record_holder(
    client: MlflowClient, name: str, alias: str, version: str, how: str, reason: str,
    paired: str | None = None,
) -> None:  # fmt: skip
    """Append the new holder of ``alias`` to the model's history tag (oldest entries
    dropped to stay under MLflow's 5,000-character tag limit); ``paired``: the gate's
    paired interval against the holder before, in words."""
    history = alias_history(name, alias)
    entry = {
        "version": str(version),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "how": how,
        "reason": reason[:300],
    }
    history.append(entry if paired is None else {**entry, "paired": paired[:600]})
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
    if (db := sqlite_file(uri)) is not None:
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


def _registered_task(name: str) -> str | None:
    """The task whose networks registered model ``name`` holds: ``vitalgru-<task>``, alone
    or with a suffix (``vitalgru-arrhythmia-ward4``); None for another name."""
    for base, task in _TASK_OF_NAME.items():
        if name == base or name.startswith(base + "-"):
            return task
    return None


def _check_task(name: str, mv: Any) -> None:
    """Refuse to give an alias to a version whose network is not of its registered model's
    task (its ``vitalgru.class_path`` tag, set by
    :func:`~vitalgru.tracking.models.log_model`, outside the task's
    :data:`~vitalgru.models.tasks.TASK_KINDS`): an early-warning network registered under
    ``vitalgru-arrhythmia`` was made champion, and the gateway, which loads a champion only
    as its task's classes, then could not load it. Not checked: a model named for no task,
    or a version without the tag (not logged by vitalgru)."""
    task = _registered_task(name)
    class_path = dict(mv.tags or {}).get("vitalgru.class_path")
    if task is None or class_path is None:
        return
    kinds = TASK_KINDS[task]
    wanted = " or ".join(k.__name__ for k in kinds)
    try:
        cls = resolve_model_class(class_path)
    except (ValueError, TypeError) as e:
        raise ValueError(
            f"version {mv.version} of {name} cannot be loaded as a {task} model ({wanted}): {e}"
        ) from e
    if not issubclass(cls, kinds):
        raise ValueError(
            f"version {mv.version} of {name} is a {cls.__name__} ({class_path}), not "
            f"{wanted}: a model for another task, which no {task} scorer loads; it is "
            "given no alias"
        )


#: The longest alias: MLflow's limit on a registered model's tag key (250 characters) less
#: the ``vitalgru.`` and ``.history`` of the alias's history tag around it (MLflow's own
#: limit on an alias, 255, is longer: an alias it took moved, and its history's tag failed).
MAX_ALIAS_LENGTH = 250 - len(_history_tag(""))


def _check_alias(alias: str) -> str:
    """``alias`` if MLflow lets a person set it: not empty, not ``latest``, not ``v<N>``
    (which name versions in a model URI), letters, digits, ``_`` and ``-``, at most
    :data:`MAX_ALIAS_LENGTH` characters; MLflow's own refusal otherwise raised its
    exception, not a message."""
    a = str(alias)
    if not a.strip() or a.lower() == "latest" or re.fullmatch(r"[vV]\d+", a):
        raise ValueError(
            f"{alias!r} cannot be an alias (empty, 'latest' and 'v<N>' name versions in a "
            "model URI); use a name such as 'champion' or 'challenger'"
        )
    if not re.fullmatch(r"[\w-]+", a):  # MLflow's own rule, refused here with a message
        raise ValueError(f"{alias!r} cannot be an alias: letters, digits, _ and - only")
    if len(a) > MAX_ALIAS_LENGTH:
        raise ValueError(
            f"{a[:20]!r}... cannot be an alias: {len(a)} characters, at most "
            f"{MAX_ALIAS_LENGTH} (the registry's limit on the tag that keeps its history)"
        )
    return a


def promote(
    name: str, version: str, reason: str, alias: str = "champion", *, how: str = "manual"
) -> PromotionDecision:
    """Give ``version`` the ``alias`` by a person's decision (a reviewed challenger, or a
    rollback after a failed check), and record it: the reason on the version's
    ``vitalgru.promotion`` tag and in the alias history (:func:`alias_history`). A version
    that holds the alias already is left as it is, unless the history does not say so (a
    promotion cut short after the alias moved): then its promotion is recorded now.

    Raises
    ------
    vitalgru.errors.RegistryError
        The registry failed part way (a locked store): run it again to finish.
    ValueError
        An empty reason, an unknown version, the champion given ``challenger``, or a
        version whose network is of another task than the registered model's
        (``vitalgru-arrhythmia``, ``vitalgru-early-warning`` and names beginning with them
        followed by ``-``).
    """
    reason = " ".join(str(reason).split())
    if not reason:
        raise ValueError("a promotion by hand needs a reason (it is kept in the registry)")
    alias = _check_alias(alias)
    with _changing_aliases(name), _finished_by_running_again(name, alias):
        return _promote(name, str(version), reason, alias, how)


@contextlib.contextmanager
def _finished_by_running_again(name: str, alias: str) -> Iterator[None]:
    """A registry that fails part way through a change by hand (a locked store) as a
    :class:`~vitalgru.errors.RegistryError` saying that running it again finishes it (the
    command line showed MLflow's exception and its traceback)."""
    try:
        yield
    except MlflowException as e:
        raise RegistryError(
            f"the registry failed while the {alias} alias of {name} was being changed "
            f"({e.message}); run the command again: what was left undone is finished and "
            "recorded"
        ) from e


def _promote(name: str, version: str, reason: str, alias: str, how: str) -> PromotionDecision:
    client = mlflow_client()
    # the version as the registry numbers it: "01" is version 1, not another one
    mv = _existing_version(client, name, version)
    version = str(mv.version)
    _check_task(name, mv)
    if alias == "challenger" and _alias_version(client, name, "champion") == version:
        # one version both: the gate and a promotion to champion never leave it so, and the
        # shadow would be compared with itself
        raise ValueError(
            f"version {version} is the champion of {name}; the challenger is another version "
            "(promote another version to champion first, or roll the champion back)"
        )
    prev = _alias_version(client, name, alias)
    if prev == version:
        last = _last_recorded(name, alias)
        if last == version:
            return PromotionDecision(False, f"version {version} already holds {alias!r}", prev)
        # the alias moved, the history was not written (a promotion cut short: a locked
        # store): a retry said "already holds" and the change was never recorded
        prev = last
    was = f" (was version {prev})" if prev else ""
    text = f"{how}: {alias} of {name} is version {version}{was}: {reason}"
    # the version's tag first and the history last: a change cut short is finished and
    # recorded when it is made again (above); the history never names a version that did
    # not hold the alias
    client.set_model_version_tag(name, version, "vitalgru.promotion", text[:5000])
    client.set_registered_model_alias(name, alias, version)
    if alias == "champion" and _alias_version(client, name, "challenger") == version:
        client.delete_registered_model_alias(name, "challenger")
    _record_holder(client, name, alias, version, how, reason)
    logger.info(text)
    return PromotionDecision(True, text, prev)


def rollback(name: str, reason: str, alias: str = "champion") -> PromotionDecision:
    """Give ``alias`` back to the version that held it before the current one (the newest
    earlier holder in :func:`alias_history` that still exists); recorded as a
    :func:`promote` with ``how="rollback"``. Run again after a rollback cut short (the
    alias moved, the history not written), it records that rollback instead of going one
    step further back.

    Raises
    ------
    vitalgru.errors.RegistryError
        The registry failed part way (a locked store): run it again to finish.
    ValueError
        No earlier holder is recorded (versions promoted before the history existed, or
        only one ever held the alias), an empty reason, or the earlier holder's network is
        of another task (as :func:`promote` refuses).
    """
    reason = " ".join(str(reason).split())
    if not reason:
        raise ValueError("a rollback needs a reason (it is kept in the registry)")
    alias = _check_alias(alias)
    with _changing_aliases(name), _finished_by_running_again(name, alias):
        client = mlflow_client()
        current = _alias_version(client, name, alias)
        if current is not None and _last_recorded(name, alias) != current:
            # a rollback cut short after the alias moved (its tag says one was begun): run
            # again, it is finished and recorded, not taken for one more step back
            said = dict(client.get_model_version(name, current).tags or {})
            began = f"rollback: {alias} of {name} is version {current}"
            if said.get("vitalgru.promotion", "").startswith((began + " ", began + ":")):
                return _promote(name, current, reason, alias, "rollback")
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
    "gate" ({metric: value}), "gate_decision", "gate_paired" (the gate's paired interval
    against the champion, :data:`~vitalgru.tracking.gate_paired.PAIRED_TAG`; None without
    one), "promotion", "monitor" ({"status",
    "checked_at", "reasons", "data"} of the last ``vitalgru monitor`` check)}``; [] when the
    model is not registered."""
    client = mlflow_client()
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
                "gate_paired": paired_from_tags(tags),
                "promotion": tags.get("vitalgru.promotion"),
                "monitor": {
                    k: tags.get(f"vitalgru.monitor.{k}")
                    for k in ("status", "checked_at", "reasons", "data")
                },
            }
        )
    return sorted(out, key=lambda r: int(r["version"]), reverse=True)


def set_version_tags(name: str, version: str, tags: Mapping[str, Any]) -> None:
    """Set tags on a registered model version (values stringified, at most 5,000
    characters, MLflow's limit)."""
    client = mlflow_client()
    for k, v in tags.items():
        client.set_model_version_tag(name, str(version), k, str(v)[:5000])
