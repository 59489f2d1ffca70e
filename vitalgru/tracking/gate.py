"""The champion gate: a new version is promoted only when it is no worse than the champion
on every gated measure and better on one, judged on the same kind of evaluation.

The values a version was judged on are kept on it as tags (``gate.<key>``, and what they
were measured on), so later versions are compared with exactly those numbers. Where both
versions' runs logged a per-record evaluation (or per-patient held-out scores), the
difference is also put beside the noise of which patients were tested
(:mod:`vitalgru.tracking.gate_paired`); the rule is the same.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from vitalgru.errors import RegistryError
from vitalgru.tracking.gate_paired import (
    PAIRED_TAG,
    paired_brief,
    paired_comparison,
    paired_from_tags,
    paired_text,
    paired_utility_comparison,
)
from vitalgru.tracking.registry import (
    GATE_TAG_PREFIX,
    PromotionDecision,
    _alias_version,
    _changing_aliases,
    _check_task,
    _existing_version,
    _last_recorded,
    _not_found,
    _record_holder,
    logger,
)
from vitalgru.tracking.stores import mlflow_client

__all__ = ["EVALUATED_ON_TAG", "promote_if_better", "version_gate_values"]

#: Tag of a version saying what its gate values were measured on (``evaluated_on``).
EVALUATED_ON_TAG = "vitalgru.gate_evaluated_on"


def version_gate_values(
    name: str, version: str, gate_keys: Sequence[str]
) -> dict[str, float | None]:
    """The numbers a registered version was gated on (its ``gate.<key>`` tags, else its
    run's metrics); None for a key it has neither for.

    Raises
    ------
    ValueError
        ``name`` has no version ``version``.
    RegistryError
        The version has no ``gate.<key>`` tag for a key and its run's metrics could not
        be read (a server's error, a connection lost).
    """
    client = mlflow_client()
    return _champion_values(client, _existing_version(client, name, version), gate_keys)


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
    """Gate values of a version: its ``gate.*`` tags, else the metrics of its run (None
    for a key it has neither for, or whose run is gone).

    Raises
    ------
    RegistryError
        The run's metrics could not be read (a server's error or a connection lost):
        not an answer, so not "no value". Read as none, the monitor judged a version
        against nothing and said ``ok``, and the gate told to promote by hand a version
        worse than the champion it could not read.
    """
    tags = dict(mv.tags or {})
    run_metrics: dict[str, float] | None = None
    out: dict[str, float | None] = {}
    for k in gate_keys:
        if GATE_TAG_PREFIX + k in tags:
            out[k] = float(tags[GATE_TAG_PREFIX + k])
            continue
        if run_metrics is None:
            run_metrics = _run_metrics(client, mv)
        out[k] = run_metrics.get(k)
    return out


def _run_metrics(client: MlflowClient, mv: Any) -> dict[str, float]:
    """The metrics of version ``mv``'s run; empty for a version without a run, or whose
    run is no longer in the store (deleted for good)."""
    if not mv.run_id:
        return {}
    try:
        return dict(client.get_run(mv.run_id).data.metrics)
    except MlflowException as e:
        if _not_found(e):
            return {}
        why = e.message
    except requests.RequestException as e:
        why = str(e)
    raise RegistryError(
        f"could not read the metrics of {mv.name} version {mv.version}'s run {mv.run_id} "
        f"({why[:300]})"
    )


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
    record_report: str | None = None,
    heldout_scores: str | None = None,
) -> PromotionDecision:
    """Give ``version`` the ``alias`` if it passes the gate against the current holder.

    The gate: no worse than the current champion on every key in ``gate_keys`` and strictly
    better on at least one (higher is better, except keys in ``lower_is_better``). The first
    version of a model passes, if its network is of the model's task. A version that fails
    gets ``challenger_alias`` (unless None).
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
        What the metrics were measured on (the DS2 records and beats scored, a cohort's
        patients and folds), kept on the version (tag ``vitalgru.gate_evaluated_on``): a
        champion judged on something else is not compared with (figures of another
        cohort, of fewer records, or of a small noisy cohort are not the same measure);
        the version is left as challenger, to be promoted by hand. So is one facing a
        champion without the tag (gated before its flow recorded it, or by a caller that
        said nothing): what it was measured on is unknown, so the first version gated with
        ``evaluated_on`` is promoted by hand once. Without ``evaluated_on`` the figures
        are compared.
    record_report : str, optional
        Run artifact of an AAMI evaluation report with each record's confusion matrix
        (the arrhythmia flow's ``evaluation/ds2.json``). Where both this version's run and
        the champion's have it, on the same records and beats, each gate key that is a
        class's F1 gets a paired record-bootstrap 95 % interval of the difference (new
        minus champion) and the share of resamples where the new version is better:
        logged in one line, kept on the version (tag ``vitalgru.gate_paired``, with the
        champion version and records it was measured on) and returned as ``paired``.
        Where either lacks it, one line says so. It never changes the decision.
    heldout_scores : str, optional
        Run artifact of the cross-validation's held-out scores
        (:mod:`vitalgru.data.heldout_scores`; the early-warning flow's
        ``cv/heldout_scores.parquet``): as ``record_report``, for the ``utility`` gate key,
        a paired patient bootstrap of the two versions' held-out alarms, where both were
        cross-validated on the same patients, hours and labels. Not with ``record_report``.

    Returns
    -------
    PromotionDecision
        ``comparison`` maps each key to ``(new, champion)``; ``paired`` the paired
        comparison (None where none was tried).

    Raises
    ------
    ValueError
        Empty ``gate_keys``, a gate key missing from ``metrics`` or not finite, an unknown
        version, a ``lower_is_better`` key that is not a gate key, both ``record_report``
        and ``heldout_scores``, or a version whose
        network is of another task than the registered model's (given no alias, as
        :func:`~vitalgru.tracking.registry.promote` refuses it).
    """
    new = _gate_values(metrics, gate_keys)
    unknown = [k for k in lower_is_better if k not in gate_keys]
    if unknown:
        raise ValueError(f"lower_is_better keys {unknown} are not gate keys {list(gate_keys)}")
    if record_report is not None and heldout_scores is not None:
        raise ValueError("give record_report or heldout_scores, not both: the gate keeps one "
                         "paired comparison")  # fmt: skip
    paired_from: _PairedFrom = None
    if record_report is not None:
        paired_from = (paired_comparison, record_report)
    elif heldout_scores is not None:
        paired_from = (paired_utility_comparison, heldout_scores)
    with _changing_aliases(name):
        return _gate(name, str(version), new, gate_keys, alias, lower_is_better,
                     challenger_alias, evaluated_on, paired_from)  # fmt: skip


def _record_unrecorded_gate(client: MlflowClient, name: str, alias: str, champ: Any) -> None:
    """Record the gate's promotion of ``champ`` (the current holder of ``alias``) where a
    process stopped after the alias moved and before the history was written (SIGKILL: no
    ``finally`` ran). Its training run again gates a new version, not this one, so the
    change was otherwise never recorded, and a rollback after a later promotion went back
    past it. Only a holder the gate itself promoted (its decision tag says so, and no
    promotion by hand or rollback is tagged on it since) is recorded."""
    if _last_recorded(name, alias) == str(champ.version):
        return
    tags = dict(champ.tags or {})
    decided = tags.get("vitalgru.gate_decision", "")
    if "vitalgru.promotion" in tags or not decided.startswith(("first ", "beats ")):
        return
    logger.warning("%s v%s holds %r without being in its history (a promotion cut short); "
                   "recorded now", name, champ.version, alias)  # fmt: skip
    _record_holder(client, name, alias, str(champ.version), "gate", decided,
                   _history_paired(paired_from_tags(tags)))  # fmt: skip


def _history_paired(paired: dict[str, Any] | None) -> str | None:
    """The paired interval as the alias history says it, briefly: only one that was
    measured."""
    return paired_brief(paired) if paired and "keys" in paired else None


#: How the paired comparison is made and from which run artifact: (paired_comparison,
#: record report) or (paired_utility_comparison, held-out scores).
_PairedFrom = tuple[Callable[..., dict[str, Any] | None], str] | None


def _paired(
    client: MlflowClient, mv: Any, champ: Any, gate_keys: Sequence[str], paired_from: _PairedFrom
) -> dict[str, Any] | None:
    """The paired bootstrap of ``mv`` against ``champ``, said in one line and kept on
    ``mv`` (:data:`~vitalgru.tracking.gate_paired.PAIRED_TAG`); None without an artifact
    or a gate key it measures. A run without the artifact is said, not raised."""
    if paired_from is None:
        return None
    compare, artifact = paired_from
    found = compare(client, mv, champ, gate_keys, artifact)
    if found is None:
        return None
    text = json.dumps(found)
    if len(text) > 5000:  # MLflow's limit on a tag; only with dozens of gate keys
        found = {k: found[k] for k in ("against", "artifact")} | {"missing": "too many keys"}
        text = json.dumps(found)
    client.set_model_version_tag(mv.name, str(mv.version), PAIRED_TAG, text)
    logger.info("%s v%s %s", mv.name, mv.version, paired_text(found))
    return found


def _gate(
    name: str,
    version: str,
    new: dict[str, float],
    gate_keys: Sequence[str],
    alias: str,
    lower_is_better: Sequence[str],
    challenger_alias: str | None,
    evaluated_on: str | None = None,
    paired_from: _PairedFrom = None,
) -> PromotionDecision:
    client = mlflow_client()
    mv = _existing_version(client, name, version)
    _check_task(name, mv)
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
    paired: dict[str, Any] | None = None  # measured once the figures are compared

    def finish(promoted: bool, reason: str, prev: str | None, cmp: dict) -> PromotionDecision:
        # the decision first and the history last: a gate run again on a version whose
        # promotion was cut short after the alias moved (a locked store) finds the decision
        # and records it (below); the history never names a version that did not hold it
        client.set_model_version_tag(name, version, "vitalgru.gate_decision", reason[:5000])
        if promoted:
            client.set_registered_model_alias(name, alias, version)
            if challenger_alias and _alias_version(client, name, challenger_alias) == version:
                client.delete_registered_model_alias(name, challenger_alias)
            _record_holder(client, name, alias, version, "gate", reason, _history_paired(paired))
        elif challenger_alias and (prev is None or prev != version):
            client.set_registered_model_alias(name, challenger_alias, version)
        logger.info("%s v%s: %s", name, version, reason)
        return PromotionDecision(promoted, reason, prev, cmp, paired)

    if champ is None:
        cmp: dict[str, tuple[float, float | None]] = {k: (v, None) for k, v in new.items()}
        return finish(True, f"first {alias} of {name}: version {version}", None, cmp)
    prev = str(champ.version)
    if prev != version:
        _record_unrecorded_gate(client, name, alias, champ)
    if prev == version:
        cmp = {k: (v, v) for k, v in new.items()}
        decided = dict(champ.tags or {}).get("vitalgru.gate_decision", "")
        last = _last_recorded(name, alias)
        if last != version and decided.startswith(("first ", "beats ")):
            # promoted by the gate, cut short before the history was written: recorded now
            # (it said "already holds", and the change was never recorded), with the
            # paired interval the version keeps from that gate
            paired = paired_from_tags(dict(champ.tags or {}))
            return finish(True, decided, last, cmp)
        return finish(False, f"version {version} already holds {alias!r}", prev, cmp)

    try:
        old = _champion_values(client, champ, gate_keys)
    except RegistryError as e:  # not "no value": a version is never promoted over it
        cmp = {k: (v, None) for k, v in new.items()}
        return finish(
            False,
            f"{alias} version {prev}'s gate values are unknown: {e}; not compared, kept "
            f"version {prev} (compare them when the store answers, before promoting by hand)",
            prev,
            cmp,
        )
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
    if evaluated_on is not None and theirs != evaluated_on[:5000]:
        said = "an evaluation it did not record" if theirs is None else theirs
        return finish(
            False,
            f"{alias} version {prev} was judged on {said}, this one on {evaluated_on}; not "
            f"comparable, kept version {prev} (promote by hand: vitalgru models promote)",
            prev,
            cmp,
        )
    paired = _paired(client, mv, champ, gate_keys, paired_from)
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
