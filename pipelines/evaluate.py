"""``vitalgru evaluate``: a registered model scored on data it was not trained on, its report
written beside the scores.

- :func:`evaluate_arrhythmia`: every annotated beat of any WFDB database (a PhysioNet name
  or a folder), at any sampling rate and lead layout, the AAMI EC57 report per class and
  per record (JSON and a markdown table), and the labels as WFDB annotation files if asked;
- :func:`evaluate_early_warning`: any Challenge-2019-format folder, the utility, AUROC,
  AUPRC, alarm burden, calibration and subgroups, the hourly risks, and the Challenge's
  wanted predictions if asked; a folder without ``SepsisLabel`` (unlabelled) gets the
  risks, alarms and alarm burden, and says that no accuracy figure can be given.

:func:`score_records` and :func:`score_folder` do the work for an already loaded model:
``vitalgru monitor`` (:mod:`pipelines.monitor_checks`) calls them too.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.arrhythmia_files import load_arrhythmia_config, write_report
from vitalgru import tracking
from vitalgru.claims import replace_file, replacing
from vitalgru.config import ArrhythmiaTrainConfig
from vitalgru.data.early_warning import EarlyWarningCohort, build_cohort, patient_groups
from vitalgru.data.splits import DECHAZAL_DS1, DECHAZAL_DS2
from vitalgru.errors import UnknownRecordError
from vitalgru.io import open_database
from vitalgru.io.file_names import check_distinct_names
from vitalgru.io.ingest import write_attrition
from vitalgru.io.psv_writer import write_challenge_labels, write_challenge_predictions
from vitalgru.io.wfdb_writer import check_annotation_extension
from vitalgru.metrics.calibration import (
    calibration_metrics,
    calibration_table,
    model_probability,
)
from vitalgru.metrics.early_warning import (
    early_warning_metrics,
    report_markdown,
    subgroup_intervals,
    subgroup_metrics,
)
from vitalgru.metrics.early_warning_intervals import early_warning_intervals
from vitalgru.metrics.early_warning_unlabelled import (
    UNLABELLED_NOTE,
    unlabelled_metrics,
    unlabelled_report_markdown,
    unlabelled_subgroup_metrics,
)
from vitalgru.models.tasks import ARRHYTHMIA_KINDS, EARLY_WARNING_KINDS
from vitalgru.training.arrhythmia_eval import DatabaseScores, score_database
from vitalgru.training.early_warning import score_cohort

__all__ = [
    "evaluate_arrhythmia", "evaluate_early_warning", "folder_metrics", "folder_metrics_json",
    "parse_records", "score_folder", "score_records",
]  # fmt: skip

logger = logging.getLogger(__name__)


def parse_records(records: str | None, all_records: list[str], database: str) -> list[str]:
    """The records ``--records`` names: all (None, "" or "all"), MIT-BIH's DS1 or DS2 (those
    of them the database holds), or a comma-separated list; UnknownRecordError for a name
    the database does not hold."""
    if records is None or records.strip() == "" or records.strip().lower() == "all":
        return all_records
    key = records.strip().upper()
    if key in ("DS1", "DS2"):
        wanted = DECHAZAL_DS1 if key == "DS1" else DECHAZAL_DS2
        found = [r for r in wanted if r in all_records]
        if not found:  # DS1/DS2 name MIT-BIH records
            raise UnknownRecordError(database, f"{key} (MIT-BIH's {key} records)", all_records)
        if len(found) < len(wanted):  # its figures are not comparable with a whole DS2's
            missing = [r for r in wanted if r not in found]
            logger.warning(
                "%s: only %d of the %d %s records are here; missing %s",
                database, len(found), len(wanted), key, ", ".join(missing),
            )  # fmt: skip
        return found
    named = [r.strip() for r in records.split(",") if r.strip()]
    out = list(dict.fromkeys(named))  # a record named twice is scored once
    if len(out) < len(named):
        twice = sorted({r for r in named if named.count(r) > 1})
        logger.warning("%s: %s named more than once; scored once", database, ", ".join(twice))
    missing = [r for r in out if r not in all_records]
    if missing:
        raise UnknownRecordError(database, ", ".join(missing), all_records)
    return out


def evaluate_arrhythmia(
    model_uri: str,
    db: str,
    records: str | None,
    out: str,
    config_path: str | None = None,
    write_annotations: str | None = None,
    annotations: str | None = "atr",
) -> dict[str, Any]:
    """Score every annotated beat of a WFDB database with a logged model.

    Parameters
    ----------
    model_uri : str
        ``models:/vitalgru-arrhythmia@champion``, ``models:/<name>/<version>``, ...
    db : str
        PhysioNet database name (``"mitdb"``, ``"incartdb"``) or a folder of WFDB records.
    records : str or None
        Comma-separated record names, ``"DS1"``/``"DS2"`` (MIT-BIH de Chazal split), or
        ``None``/``"all"`` for every record the database lists.
    out : str
        A ``.json`` path, or a folder (``evaluation.json`` inside); the markdown table is
        written beside it with a ``.md`` suffix.
    config_path : str, optional
        Training config whose ``ingest.physionet`` (mirror, cache) and, where it sets one,
        ``ingest.arrhythmia.windows.lead`` (else the model's lead) are used.
    write_annotations : str, optional
        Also write the model's label of each beat as a WFDB annotation file with this
        extension, ``annotations/<record>.<ext>`` beside the report
        (:mod:`vitalgru.io.wfdb_writer`: for ``bxb``, WAVE, ``wfdb.rdann``).
    annotations : str or None
        Extension of the reference beat annotations; None: unannotated recordings (the
        detector's beats are classified, the report counts the calls).

    Returns
    -------
    dict
        ``{"accuracy", "kappa", "j_index", "jk_index", "confusion_matrix", "classes":
        {"N": {"n", "se", "ppv", "f1", "spec"}, ...}, "records": {...}, "intervals",
        "model_uri", "model_version", "database", "paths"}``; ``intervals``: record-bootstrap
        95 % intervals of the figures (:func:`vitalgru.metrics.aami_intervals.record_intervals`),
        none with fewer than two records.
    """
    if write_annotations is not None:  # before minutes of scoring; as replay checks it
        check_annotation_extension(write_annotations, annotations)
    loaded = tracking.load_model(model_uri, kinds=ARRHYTHMIA_KINDS)
    report, _ = score_records(loaded, db, records, out, config_path, annotations,
                              write_annotations=write_annotations)  # fmt: skip
    return report


def config_lead(cfg: ArrhythmiaTrainConfig, config_path: str | None) -> str | int | None:
    """The lead the config file given to ``evaluate`` or ``replay`` names, or None (the
    model's lead; also without a file). Only a file that sets
    ``ingest.arrhythmia.windows.lead`` names one: one that sets the mirror or the cache
    alone would otherwise replace the model's lead with the field's default (MLII)."""
    windows = cfg.ingest.arrhythmia.windows
    named = config_path is not None and "lead" in windows.model_fields_set
    return windows.lead if named else None  # a name, or an index taken as given


def score_records(
    loaded: tracking.LoadedModel,
    db: str,
    records: str | None,
    out: str,
    config_path: str | None = None,
    annotations: str | None = "atr",
    write_annotations: str | None = None,
) -> tuple[dict[str, Any], DatabaseScores]:
    """Score a database's records with a loaded model and write what
    :func:`evaluate_arrhythmia` writes; returns ``(report, per-beat scores)``. With
    ``annotations`` None the records are taken as unannotated: the detector's beats are
    classified and the report counts the calls (:func:`vitalgru.metrics.aami.calls_report`).
    ``write_annotations``: the extension of the WFDB annotation files the labels are also
    written to (``annotations/`` beside the report)."""
    cfg = load_arrhythmia_config(config_path)
    database = open_database(db, cfg.ingest.physionet)
    names = parse_records(records, database.list_records(), database.name)
    if write_annotations is not None:  # one file each: before minutes of scoring
        check_distinct_names(names, "records")
    lead = config_lead(cfg, config_path)
    scores = score_database(
        loaded.module, loaded.preprocessing, database, names, lead=lead, annotations=annotations
    )
    report = scores.report()
    report = {
        **report,
        "model_uri": loaded.uri,
        "model_version": loaded.version,
        "database": str(db),
    }
    o = Path(out)
    json_path = o if o.suffix == ".json" else o / "evaluation.json"
    report["paths"] = write_report(report, json_path, f"{db}: model {loaded.described()}")
    if write_annotations is not None:
        folder = json_path.parent / "annotations"
        for stale in folder.glob(f"**/*.{write_annotations}"):  # an earlier evaluation's
            stale.unlink()
        scores.write_annotations(folder, write_annotations)
        report["paths"]["annotations"] = str(folder)
    replace_file(json_path, json.dumps(report, indent=2))
    return report, scores


def folder_metrics(
    labels: np.ndarray,
    scores: np.ndarray,
    offsets: np.ndarray,
    threshold: float,
    data: str,
    hours: np.ndarray | None = None,
) -> dict[str, Any]:
    """:func:`~vitalgru.metrics.early_warning.early_warning_metrics` of a scored folder as JSON
    wants them: counts as integers, undefined measures as None; the alarm statistics in ICU
    hours when ``hours`` (each row's ICULOS) are given. Without a septic patient a warning
    says which measures are undefined and why."""
    metrics = folder_metrics_json(
        early_warning_metrics(labels, scores, offsets, threshold, hours=hours)
    )
    if metrics["n_septic_patients"] == 0:
        logger.warning(
            "no septic patient among the %d scored from %s: utility, auroc, auprc, "
            "septic_detected_fraction and median_lead_time_h are undefined (null); the alarm "
            "burden (alarms_per_patient_day, false_alarm_patient_fraction) is still measured",
            metrics["n_patients"], data,
        )  # fmt: skip
    return metrics


def folder_metrics_json(metrics: dict[str, float]) -> dict[str, Any]:
    """Metrics as JSON wants them: counts as integers, undefined measures as None (the
    septic patients of unlabelled stays among them)."""
    out: dict[str, Any] = dict(metrics)
    for count in ("n_patients", "n_patient_hours", "n_septic_patients"):
        if np.isfinite(out[count]):
            out[count] = int(out[count])
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in out.items()}


def evaluate_early_warning(
    model_uri: str, data: str, out: str, write_predictions: bool = False
) -> dict[str, Any]:
    """Score a Challenge-2019 folder with a logged model and write ``metrics.json``.

    Parameters
    ----------
    model_uri : str
        ``models:/vitalgru-early-warning@champion``, ``models:/<name>/<version>``, a run
        URI, anything :func:`vitalgru.tracking.load_model` takes.
    data : str
        Folder of ``.psv`` files, in any case, or ``.psv.gz`` (malformed files go to
        attrition; files in its sub-folders are not read, but warned about and listed
        there, :func:`vitalgru.io.psv_folder.read_psv_folder`).
    out : str
        A ``.json`` path for the metrics (``<stem>.md``, ``<stem>.scores.parquet`` and
        ``<stem>.attrition.csv`` are written beside it), or a folder that gets
        ``metrics.json``, ``metrics.md``, ``scores.parquet`` and ``attrition.csv``.
    write_predictions : bool
        Also write the hourly risks as the Challenge wanted predictions,
        ``challenge/predictions/<patient>.psv`` beside the JSON, with
        ``challenge/labels/<patient>.psv`` holding the ``SepsisLabel`` of each row scored
        (written, not linked: the scorer reads only canonical tables), so that the
        Challenge's scorer (``evaluate_sepsis_score.py challenge/labels
        challenge/predictions``) can check the utility (:mod:`vitalgru.io.psv_writer`);
        for an unlabelled folder, the predictions alone (an earlier run's label files
        there are removed).

    Returns
    -------
    dict
        ``utility``, ``auroc``, ``auprc``, ``n_patients``, alarm statistics, threshold,
        ``model_uri``, ``model_version``, ``n_excluded_files``, and the values read as
        missing: ``n_implausible_values`` (by column: ``implausible_values_by_column``,
        the columns with any; ``implausible_value_warnings``: a sentence for each column of
        which more than half the measured values were refused, with the unit they look
        like, e.g. °F), ``n_non_numeric_values``; ``unit_warnings``: a sentence for each
        laboratory column whose median looks like another unit's (a glucose in mmol/L,
        taken as it is; :func:`vitalgru.dsp.vitals_units.unit_mixup_warnings`); stays whose rows skip
        ICU hours: ``n_patients_with_skipped_hours``, ``n_skipped_hours``; patients whose
        label falls from 1 back to 0: ``n_patients_with_label_reversals``; ``calibration``:
        the reliability table of the hourly risks
        (:func:`vitalgru.metrics.calibration.calibration_table`); for a model stored with a
        recalibration, ``probability_calibration``: the calibration measures and table of
        the probabilities it gives; ``subgroups``:
        the same measures by ICU type, sex and age band
        (:func:`vitalgru.data.early_warning.patient_groups`), each labelled group with the
        patient-bootstrap interval of its utility in its own ``intervals``
        (:func:`vitalgru.metrics.early_warning.subgroup_intervals`); ``intervals``: the
        patient-bootstrap 95 % intervals of the utility, AUROC and AUPRC, the threshold
        held fixed (:func:`vitalgru.metrics.early_warning_intervals.early_warning_intervals`;
        labelled folders only); ``paths`` of
        the files written (the JSON, a markdown summary beside it, the hourly scores and
        the attrition). Measures that need a septic patient are ``None`` when there is
        none (with a warning).

        A folder whose files have no ``SepsisLabel`` column (:mod:`vitalgru.io.psv_labels`)
        is scored all the same, with ``labelled`` False and ``unlabelled_note`` saying why
        no accuracy figure is given: every measure that needs labels is ``None``
        (:data:`~vitalgru.metrics.early_warning_unlabelled.LABELLED_ONLY`, and no
        ``calibration`` nor ``probability_calibration`` table, nor label reversals); the
        threshold, counts, alarm burden, ``alarmed_patient_fraction``, ``mean_risk``,
        ``mean_probability`` (a model with a recalibration), the data counts and the
        ``subgroups`` (of those measures) are given, and the scores have no
        ``sepsis_label`` column (:func:`unlabelled_folder_metrics`). A folder mixing
        files with and without the column is refused (``RecordError``, ``mixed_labels``).
    """
    loaded = tracking.load_model(model_uri, kinds=EARLY_WARNING_KINDS)
    metrics, _, _ = score_folder(loaded, build_cohort(data), data, out, write_predictions)
    return metrics


def score_folder(
    loaded: tracking.LoadedModel,
    cohort: EarlyWarningCohort,
    data: str,
    out: str,
    write_predictions: bool = False,
) -> tuple[dict[str, Any], np.ndarray, Path]:
    """Score a read folder with a loaded model and write what
    :func:`evaluate_early_warning` writes; returns ``(metrics, hourly risks, JSON path)``."""
    model_uri = loaded.uri
    if write_predictions:  # a file each: refused before the scoring, not after it
        check_distinct_names(cohort.patient_ids.tolist(), "patients")
    scores = score_cohort(loaded.module, loaded.preprocessing, cohort)
    thr = float(loaded.preprocessing["threshold"])
    hours = cohort.frame["hour"].to_numpy(np.int64)
    labelled = cohort.labelled
    if labelled:
        metrics = folder_metrics(cohort.labels, scores, cohort.offsets, thr, data, hours)
    else:
        metrics = unlabelled_folder_metrics(scores, cohort.offsets, thr, data, hours)
    metrics["model_uri"] = model_uri
    metrics["model_version"] = loaded.version
    metrics["n_excluded_files"] = len(cohort.attrition)
    # values read as missing: outside the plausibility limits, or text instead of a number
    metrics["n_implausible_values"] = int(sum(cohort.implausible_counts.values()))
    metrics["implausible_values_by_column"] = {
        c: int(n) for c, n in cohort.implausible_counts.items() if n
    }
    # a column refused whole (temperatures in °F): the model was scored without it
    metrics["implausible_value_warnings"] = list(cohort.implausible_warnings)
    # a lab column whose median looks like another unit's (glucose in mmol/L): taken as is
    metrics["unit_warnings"] = list(cohort.unit_warnings)
    metrics["n_non_numeric_values"] = int(sum(cohort.non_numeric_counts.values()))
    # rows that skip ICU hours: scored on the hourly grid (score_cohort), counted here
    skipped = cohort.skipped_hours()
    metrics["n_patients_with_skipped_hours"] = len(skipped)
    metrics["n_skipped_hours"] = int(sum(skipped.values()))
    prob = model_probability(loaded.preprocessing, scores)
    if not labelled:
        if prob is not None:
            metrics["mean_probability"] = float(prob.mean()) if prob.size else None
        metrics["subgroups"] = {
            name: folder_metrics_json(m)
            for name, m in unlabelled_subgroup_metrics(
                scores, cohort.offsets, thr, patient_groups(cohort), hours=hours
            ).items()
        }
    else:
        metrics["n_patients_with_label_reversals"] = len(cohort.label_reversals())
        # whole patients resampled, the threshold held fixed (hours of a stay are not
        # independent: the claim is about new patients)
        metrics["intervals"] = early_warning_intervals(cohort.labels, scores, cohort.offsets, thr)
        metrics["calibration"] = calibration_table(cohort.labels, np.clip(scores, 0.0, 1.0))
    if labelled and prob is not None:  # the risk through the model's stored recalibration
        metrics["probability_calibration"] = {
            k: (v if np.isfinite(v) else None)
            for k, v in calibration_metrics(cohort.labels, prob).items()
        } | {
            "table": calibration_table(cohort.labels, prob),
        }
    if labelled:
        groups = patient_groups(cohort)
        within = subgroup_intervals(cohort.labels, scores, cohort.offsets, thr, groups)
        metrics["subgroups"] = {
            name: folder_metrics_json(m) | {"intervals": within[name]}
            for name, m in subgroup_metrics(
                cohort.labels, scores, cohort.offsets, thr, groups, hours=hours
            ).items()
        }
    o = Path(out)
    if o.suffix == ".json":
        metrics_path = o
        scores_path = o.with_name(f"{o.stem}.scores.parquet")
        attrition_path = o.with_name(f"{o.stem}.attrition.csv")
    else:
        metrics_path, scores_path, attrition_path = (
            o / "metrics.json", o / "scores.parquet", o / "attrition.csv")  # fmt: skip
    markdown_path = metrics_path.with_suffix(".md")
    metrics["paths"] = {
        "json": str(metrics_path),
        "markdown": str(markdown_path),
        "scores": str(scores_path),
        "attrition": str(attrition_path),
    }
    metrics_path.parent.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(
        {
            "patient_id": np.repeat(cohort.patient_ids, np.diff(cohort.offsets)),
            "hour": cohort.frame["hour"].to_numpy(),
            "risk": scores.astype(np.float32),
            **({} if prob is None else {"probability": prob.astype(np.float32)}),
            "alarm": (scores >= thr).astype(np.int8),
            **({"sepsis_label": cohort.labels} if labelled else {}),
        }
    )
    with replacing(scores_path) as t:
        table.to_parquet(t, index=False)
    with replacing(attrition_path) as t:
        write_attrition(cohort.attrition, t)
    if write_predictions:
        folder = metrics_path.parent / "challenge"
        write_challenge_predictions(folder / "predictions", cohort.patient_ids.tolist(),
                                    cohort.offsets, np.clip(scores, 0.0, 1.0),
                                    (scores >= thr).astype(np.int8))  # fmt: skip
        if labelled:
            # the labels scored, as the scorer reads them: the input files were linked, and
            # one vitalgru reads (header in lower case, a blank line, .psv.gz) it cannot
            write_challenge_labels(folder / "labels", cohort.patient_ids.tolist(),
                                   cohort.offsets, cohort.labels)  # fmt: skip
        else:  # no labels: an earlier evaluation's must not pass for these stays'
            for stale in (folder / "labels").glob("*.psv"):
                stale.unlink()
        metrics["paths"]["challenge"] = str(folder)
    replace_file(metrics_path, json.dumps(metrics, indent=2, sort_keys=True))
    title = f"{data}: model {loaded.described(model_uri)}"
    replace_file(
        markdown_path,
        report_markdown(metrics, title) if labelled else unlabelled_report_markdown(metrics, title),
    )
    return metrics, scores, metrics_path


def unlabelled_folder_metrics(
    scores: np.ndarray, offsets: np.ndarray, threshold: float, data: str, hours: np.ndarray
) -> dict[str, Any]:
    """:func:`~vitalgru.metrics.early_warning_unlabelled.unlabelled_metrics` of an unlabelled
    folder as JSON wants them (the measures that need labels None), with ``labelled``
    False and ``unlabelled_note``; a warning says no accuracy figure can be given."""
    metrics = folder_metrics_json(unlabelled_metrics(scores, offsets, threshold, hours))
    logger.warning("%s: %s", data, UNLABELLED_NOTE)
    return {**metrics, "labelled": False, "unlabelled_note": UNLABELLED_NOTE}
