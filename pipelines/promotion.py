"""Prefect task ``promote``: the champion gate (:func:`vitalgru.tracking.promote_if_better`)
as the last step of the training flows (:mod:`pipelines.arrhythmia`,
:mod:`pipelines.early_warning`)."""

from __future__ import annotations

from typing import Any

from prefect import task

from vitalgru import tracking

__all__ = ["promote_task"]


# No retries: a registry that fails part way fails the flow, which says so. (A retry once
# found the version "already" champion and left its promotion out of the alias history; the
# gate now records a promotion cut short when it is run again on the version.)
@task(name="promote")
def promote_task(
    name: str,
    version: str,
    metrics: dict[str, float],
    gate_keys: list[str],
    evaluated_on: str | None = None,
    record_report: str | None = None,
    heldout_scores: str | None = None,
) -> dict[str, Any]:
    """Give a registered version the ``champion`` alias if it passes the gate.

    Parameters
    ----------
    name, version : str
        The registered model and its new version.
    metrics : dict of str to float
        The version's figures; ``gate_keys`` of them are compared with the champion's.
    gate_keys : list of str
        The figures the version must beat the champion on, every one.
    evaluated_on : str, optional
        What the figures were measured on (the arrhythmia flow's DS2 beats, the
        early-warning flow's cohort and folds); they are compared only with a champion's
        measured on the same.
    record_report : str, optional
        The run artifact holding each record's confusion matrix (the arrhythmia flow's
        ``evaluation/ds2.json``): the gate puts the difference from the champion beside a
        paired record-bootstrap interval where both runs logged it.
    heldout_scores : str, optional
        The run artifact holding the cross-validation's held-out scores (the early-warning
        flow's ``cv/heldout_scores.parquet``): the same for the utility, patient by patient.

    Returns
    -------
    dict
        ``promoted`` (bool), ``reason``, ``previous_version`` and ``paired`` (the paired
        comparison, or None) of the gate's decision.
    """
    d = tracking.promote_if_better(name, version, metrics, gate_keys, evaluated_on=evaluated_on,
                                   record_report=record_report,
                                   heldout_scores=heldout_scores)  # fmt: skip
    return {"promoted": d.promoted, "reason": d.reason, "previous_version": d.previous_version,
            "paired": d.paired}  # fmt: skip
