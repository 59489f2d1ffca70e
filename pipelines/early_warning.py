"""Prefect flow ``train-early-warning``: Challenge-2019 set A -> cross-validated GRU-D and
baselines -> final GRU-D on all patients -> MLflow run, registered model, champion gate.

Steps (each a thin call into :mod:`vitalgru`):

1. ``build-dataset``: read the ``.psv`` folder (parquet cache), apply plausibility limits,
   assign stratified patient folds, write ``hourly.parquet``/``folds.csv``/``manifest.json``
   /``attrition.csv``.
2. ``cross-validate``: GRU-D, trees, NEWS2, qSOFA on the same folds; thresholds and early
   stopping on training folds only; per-fold metrics and out-of-fold scores to disk.
3. ``train-final``: the model to register on all patients (a stratified share held out
   for the epoch and the alarm threshold), saved with its normalisation statistics:
   by default (``register_model: gru_d_gbm_blend``) the GRU-D and the trees blended
   into one :class:`~vitalgru.models.early_warning.SepsisBlend`, else the GRU-D alone.
4. ``log-and-register``: one MLflow run with the config, manifest, CV table and the model,
   registered as ``vitalgru-early-warning``; the gate metrics are the registered kind's
   cross-validated held-out means (``utility``, ``auroc``), an honest estimate for the
   final model, which itself has no held-out patients left.
5. ``promote``: ``champion`` alias if the new version beats the current one on every key.

``evaluate_early_warning(model_uri, data, out)`` scores any Challenge-2019 folder.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from prefect import flow, task

from vitalgru import tracking
from vitalgru.baselines.gbm import GBMParams
from vitalgru.config import EarlyWarningConfig, config_hash, load_config
from vitalgru.data.early_warning import (
    EarlyWarningCohort,
    build_cohort,
    load_dataset,
    patient_folds,
    patient_groups,
    resolve_data_dir,
    write_dataset,
)
from vitalgru.io.ingest import write_attrition
from vitalgru.io.psv_writer import write_challenge_predictions
from vitalgru.io.sources import resolve_source
from vitalgru.metrics.calibration import (
    calibration_metrics,
    calibration_table,
    model_probability,
)
from vitalgru.metrics.early_warning import early_warning_metrics, report_markdown, subgroup_metrics
from vitalgru.models.base import build_model, model_class_path
from vitalgru.models.early_warning import GRUDEarlyWarning, SepsisBlend
from vitalgru.reports.model_card import EARLY_WARNING_MODEL_DESCRIPTION, early_warning_version_card
from vitalgru.training.early_warning import (
    BLEND,
    CVSettings,
    cross_validate,
    fit_final,
    score_cohort,
)
from vitalgru.training.gru_d import GRUTrainParams
from vitalgru.training.loop import cpu_training

logger = logging.getLogger(__name__)


def load_early_warning_config(
    config_path: str | None = None, overrides: dict[str, Any] | None = None
) -> EarlyWarningConfig:
    """The resolved config (packaged ``early_warning.yaml``, file, dotted overrides)."""
    return load_config(
        EarlyWarningConfig, config_path, overrides, default_name="early_warning.yaml"
    )


def cv_settings(cfg: EarlyWarningConfig) -> CVSettings:
    """Training settings of the config, as the library takes them."""
    gru = GRUTrainParams(
        hidden_size=cfg.hidden_size,
        dropout=cfg.dropout,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        batch_size=cfg.batch_size,
        max_epochs=cfg.max_epochs,
        patience=cfg.patience,
        pos_weight=cfg.pos_weight,
        max_minutes=cfg.max_minutes_per_fit,
        seed=cfg.seed,
    )
    gbm = GBMParams(
        max_iter=cfg.gbm_max_iter,
        learning_rate=cfg.gbm_learning_rate,
        max_leaf_nodes=cfg.gbm_max_leaf_nodes,
        min_samples_leaf=cfg.gbm_min_samples_leaf,
        l2_regularization=cfg.gbm_l2_regularization,
        negative_subsample=cfg.gbm_negative_subsample,
        max_features=cfg.gbm_max_features,
        seed=cfg.seed,
    )
    return CVSettings(
        models=tuple(cfg.models),
        val_fraction=cfg.val_fraction,
        engineered_inputs=cfg.engineered_inputs,
        tree_signatures=cfg.gbm_signatures,
        gru=gru,
        gbm=gbm,
        seed=cfg.seed,
        blend_gru_weight=cfg.blend_gru_weight,
    )


def _data_folder(cfg: EarlyWarningConfig) -> Path:
    src = resolve_source(cfg.physionet)
    return resolve_data_dir(cfg.data_dir, src.mirror)


def _cache_dir(cfg: EarlyWarningConfig) -> Path:
    if cfg.cache_dir is not None:
        return Path(cfg.cache_dir)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "vitalgru" / "challenge2019"


@task(name="build-dataset", retries=1, retry_delay_seconds=5)
def build_dataset(cfg_json: dict[str, Any]) -> str:
    """Read, clean and fold the cohort; write the dataset folder; return its path."""
    cfg = EarlyWarningConfig.model_validate(cfg_json)
    folder = _data_folder(cfg)
    cohort = build_cohort(folder, cache_dir=_cache_dir(cfg), limit=cfg.limit_patients)
    meta: dict[str, Any] = {"config_hash": config_hash(cfg)}
    if skipped := cohort.skipped_hours():
        # Train on hours, as the model is scored: a skipped hour is an hour with nothing
        # measured, its label that of the hour before (the first 1 keeps its own hour).
        cohort, _ = cohort.on_hourly_grid()
        meta["hours_filled_on_grid"] = skipped
    folds = patient_folds(cohort.septic(), cfg.n_folds, cfg.seed)
    out = Path(cfg.out_dir) / "dataset"
    write_dataset(cohort, folds, out, extra_manifest=meta)
    return str(out)


@task(name="cross-validate")
def run_cross_validation(cfg_json: dict[str, Any], dataset_dir: str) -> dict[str, Any]:
    """Cross-validate every configured model; write ``cv/`` files; return the summary."""
    cfg = EarlyWarningConfig.model_validate(cfg_json)
    cohort, folds, _ = load_dataset(dataset_dir)
    with cpu_training(cfg.torch_threads):
        res = cross_validate(cohort, folds, cv_settings(cfg))
    out = Path(cfg.out_dir) / "cv"
    out.mkdir(parents=True, exist_ok=True)
    rows = [dict(model=m, **r) for m, rs in res.per_fold.items() for r in rs]
    pd.DataFrame(rows).to_csv(out / "per_fold.csv", index=False)
    summary = res.summary()
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    (out / "gru_histories.json").write_text(json.dumps(res.gru_histories))
    oof = pd.DataFrame({"patient_id": np.repeat(cohort.patient_ids, np.diff(cohort.offsets))})
    oof["hour"] = cohort.frame["hour"].to_numpy()
    oof["sepsis_label"] = cohort.labels
    for m, s in res.oof_scores.items():
        oof[f"score_{m}"] = s.astype(np.float32)
    oof.to_parquet(out / "oof_scores.parquet", index=False)
    return {"dir": str(out), "summary": summary, "per_fold": rows}


@task(name="train-final")
def train_final(cfg_json: dict[str, Any], dataset_dir: str) -> str:
    """Fit the model to register on every patient; save it with its preprocessing."""
    cfg = EarlyWarningConfig.model_validate(cfg_json)
    cohort, _, _ = load_dataset(dataset_dir)
    with cpu_training(cfg.torch_threads):
        res = fit_final(cohort, cv_settings(cfg), blend=cfg.register_model == BLEND)
    out = Path(cfg.out_dir) / "final"
    out.mkdir(parents=True, exist_ok=True)
    torch.save(res.model.state_dict(), out / "weights.pt")
    spec = {"class_path": model_class_path(res.model), "config": res.model.config_dict()}
    (out / "model_spec.json").write_text(json.dumps(spec))
    (out / "preprocessing.json").write_text(json.dumps(res.preprocessing, indent=2))
    (out / "fit.json").write_text(
        json.dumps(
            {
                "model": cfg.register_model,
                "val_utility": res.val_utility,
                "val_auroc": res.val_auroc,
                "gru_val_utility": res.gru.val_utility,
                "best_epoch": res.gru.best_epoch,
                "seconds": res.gru.seconds,
                "history": res.gru.history,
            },
            indent=2,
        )
    )
    return str(out)


# No retries: a retry after the version was registered would register a duplicate.
@task(name="log-and-register")
def log_and_register(
    cfg_json: dict[str, Any], dataset_dir: str, cv: dict[str, Any], final_dir: str
) -> dict[str, Any]:
    """One MLflow run: config, manifest, CV metrics and files, the registered model."""
    cfg = EarlyWarningConfig.model_validate(cfg_json)
    final = Path(final_dir)
    spec = json.loads((final / "model_spec.json").read_text())
    model = build_model(spec["class_path"], spec["config"])
    model.load_state_dict(torch.load(final / "weights.pt", weights_only=True))
    model.eval()
    preprocessing = json.loads((final / "preprocessing.json").read_text())
    manifest = json.loads((Path(dataset_dir) / "manifest.json").read_text())
    fit = json.loads((final / "fit.json").read_text())
    summary = cv["summary"]
    gate = _gate_metrics(summary, cfg.register_model)
    with tracking.start_run(cfg.experiment, run_name="train-early-warning") as run:
        tracking.log_config(run, cfg, "config.yaml")
        run.log_dict(manifest, "dataset/manifest.json")
        run.log_artifact(Path(dataset_dir) / "attrition.csv", "dataset")
        for f in ("per_fold.csv", "summary.json", "gru_histories.json"):
            run.log_artifact(Path(cv["dir"]) / f, "cv")
        metrics: dict[str, float] = dict(gate)
        for name, d in summary.items():
            for k, v in d.items():
                if np.isfinite(v):
                    metrics[f"cv.{name}.{k}"] = float(v)
        metrics["final.val_utility"] = float(fit["val_utility"])
        metrics["final.val_auroc"] = float(fit["val_auroc"])
        metrics["final.gru_val_utility"] = float(fit["gru_val_utility"])
        metrics["final.threshold"] = float(preprocessing["threshold"])
        run.log_metrics(metrics)
        ref = tracking.log_model(
            run,
            model,
            preprocessing=preprocessing,
            config={"config": cfg.model_dump(mode="json"), "manifest": manifest},
            registered_name=cfg.registered_name,
            version_tags={"vitalgru.model_kind": cfg.register_model},
            description=early_warning_version_card(
                summary,
                registered_kind=cfg.register_model,
                n_patients=int(manifest["n_patients"]),
                n_folds=cfg.n_folds,
                threshold=float(preprocessing["threshold"]),
                run_id=run.run_id,
            ),
            model_description=EARLY_WARNING_MODEL_DESCRIPTION,
        )
    return {
        "run_id": run.run_id,
        "model_uri": ref.uri,
        "version": ref.version,
        "metrics": gate,
    }


def _gate_metrics(summary: dict[str, dict[str, float]], kind: str) -> dict[str, float]:
    g = summary.get(kind)
    if g is None:
        raise ValueError(f"the cross-validation has no {kind!r} results to gate the model on")
    return {
        "utility": float(g["utility_mean"]),
        "auroc": float(g["auroc_mean"]),
        "auprc": float(g["auprc_mean"]),
    }


@task(name="promote", retries=2, retry_delay_seconds=5)
def promote(
    name: str, version: str, metrics: dict[str, float], gate_keys: list[str]
) -> dict[str, Any]:
    d = tracking.promote_if_better(name, version, metrics, gate_keys)
    return {"promoted": d.promoted, "reason": d.reason, "previous_version": d.previous_version}


@flow(name="train-early-warning")
def train_early_warning_flow(
    config_path: str | None = None, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Cross-validate, train, log, register and (if it passes the gate) promote.

    Returns
    -------
    dict
        ``run_id``, ``model_uri``, ``version``, ``metrics`` (gate metrics), ``promoted``,
        ``promotion_reason``, ``cv_summary``, and the paths of ``dataset_dir``,
        ``cv_dir`` and ``final_dir``.
    """
    cfg = load_early_warning_config(config_path, overrides)
    needed = {"gru_d", "gbm"} if cfg.register_model == BLEND else {"gru_d"}
    if not needed <= set(cfg.models):
        raise ValueError(
            f"register_model {cfg.register_model!r} needs models {sorted(needed)} "
            f"cross-validated; models is {list(cfg.models)}"
        )
    cfg_json = cfg.model_dump(mode="json")
    dataset_dir = build_dataset(cfg_json)
    cv = run_cross_validation(cfg_json, dataset_dir)
    final_dir = train_final(cfg_json, dataset_dir)
    logged = log_and_register(cfg_json, dataset_dir, cv, final_dir)
    decision = promote(
        cfg.registered_name, str(logged["version"]), logged["metrics"], list(cfg.gate_keys)
    )
    return {
        **logged,
        "promoted": decision["promoted"],
        "promotion_reason": decision["reason"],
        "cv_summary": cv["summary"],
        "dataset_dir": dataset_dir,
        "cv_dir": cv["dir"],
        "final_dir": final_dir,
    }


def folder_metrics(
    labels: np.ndarray, scores: np.ndarray, offsets: np.ndarray, threshold: float, data: str
) -> dict[str, Any]:
    """:func:`~vitalgru.metrics.early_warning.early_warning_metrics` of a scored folder as JSON
    wants them: counts as integers, undefined measures as None. Without a septic patient a
    warning says which measures are undefined and why."""
    metrics = folder_metrics_json(early_warning_metrics(labels, scores, offsets, threshold))
    if metrics["n_septic_patients"] == 0:
        logger.warning(
            "no septic patient among the %d scored from %s: utility, auroc, auprc, "
            "septic_detected_fraction and median_lead_time_h are undefined (null); the alarm "
            "burden (alarms_per_patient_day, false_alarm_patient_fraction) is still measured",
            metrics["n_patients"], data,
        )  # fmt: skip
    return metrics


def folder_metrics_json(metrics: dict[str, float]) -> dict[str, Any]:
    """Metrics as JSON wants them: counts as integers, undefined measures as None."""
    out: dict[str, Any] = dict(metrics)
    for count in ("n_patients", "n_patient_hours", "n_septic_patients"):
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
        Folder of ``.psv`` files (malformed files go to attrition).
    out : str
        A ``.json`` path for the metrics (``<stem>.md``, ``<stem>.scores.parquet`` and
        ``<stem>.attrition.csv`` are written beside it), or a folder that gets
        ``metrics.json``, ``metrics.md``, ``scores.parquet`` and ``attrition.csv``.
    write_predictions : bool
        Also write the hourly risks as the Challenge wanted predictions,
        ``challenge/predictions/<patient>.psv`` beside the JSON, with
        ``challenge/labels/`` linking the input files scored, so that the Challenge's
        scorer (``evaluate_sepsis_score.py challenge/labels challenge/predictions``)
        can check the utility (:mod:`vitalgru.io.psv_writer`).

    Returns
    -------
    dict
        ``utility``, ``auroc``, ``auprc``, ``n_patients``, alarm statistics, threshold,
        ``model_uri``, ``model_version``, ``n_excluded_files``, and the values read as
        missing: ``n_implausible_values``, ``n_non_numeric_values``; stays whose rows skip
        ICU hours: ``n_patients_with_skipped_hours``, ``n_skipped_hours``; patients whose
        label falls from 1 back to 0: ``n_patients_with_label_reversals``; ``calibration``:
        the reliability table of the hourly risks
        (:func:`vitalgru.metrics.calibration.calibration_table`); for a model stored with a
        recalibration, ``probability_calibration``: the calibration measures and table of
        the probabilities it gives; ``subgroups``:
        the same measures by ICU type, sex and age band
        (:func:`vitalgru.data.early_warning.patient_groups`); ``paths`` of
        the files written (the JSON, a markdown summary beside it, the hourly scores and
        the attrition). Measures that need a septic patient are ``None`` when there is
        none (with a warning).
    """
    loaded = tracking.load_model(model_uri, kinds=(SepsisBlend, GRUDEarlyWarning))
    metrics, _, _ = score_folder(loaded, build_cohort(data), data, out, write_predictions)
    return metrics


def _link_inputs(folder: Path, data: str, patient_ids: list[str]) -> None:
    """``folder/<patient>.psv`` for each patient scored: a link to its input file (a copy
    where links cannot be made), so that the labels the Challenge's scorer reads are
    exactly the files scored (those left out as unreadable are not among them)."""
    folder.mkdir(parents=True, exist_ok=True)
    source = Path(data).resolve()
    for stale in folder.glob("*.psv"):  # an earlier evaluation's: the scorer pairs them all
        stale.unlink()
    for pid in patient_ids:
        src, dst = source / f"{pid}.psv", folder / f"{pid}.psv"
        try:
            dst.symlink_to(src)
        except OSError:
            shutil.copyfile(src, dst)


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
    scores = score_cohort(loaded.module, loaded.preprocessing, cohort)
    thr = float(loaded.preprocessing["threshold"])
    metrics = folder_metrics(cohort.labels, scores, cohort.offsets, thr, data)
    metrics["model_uri"] = model_uri
    metrics["model_version"] = loaded.version
    metrics["n_excluded_files"] = len(cohort.attrition)
    # values read as missing: outside the plausibility limits, or text instead of a number
    metrics["n_implausible_values"] = int(sum(cohort.implausible_counts.values()))
    metrics["n_non_numeric_values"] = int(sum(cohort.non_numeric_counts.values()))
    # rows that skip ICU hours: scored on the hourly grid (score_cohort), counted here
    skipped = cohort.skipped_hours()
    metrics["n_patients_with_skipped_hours"] = len(skipped)
    metrics["n_skipped_hours"] = int(sum(skipped.values()))
    metrics["n_patients_with_label_reversals"] = len(cohort.label_reversals())
    metrics["calibration"] = calibration_table(cohort.labels, np.clip(scores, 0.0, 1.0))
    prob = model_probability(loaded.preprocessing, scores)
    if prob is not None:  # the risk through the model's stored recalibration
        metrics["probability_calibration"] = {
            k: (v if np.isfinite(v) else None)
            for k, v in calibration_metrics(cohort.labels, prob).items()
        } | {
            "table": calibration_table(cohort.labels, prob),
        }
    metrics["subgroups"] = {
        name: folder_metrics_json(m)
        for name, m in subgroup_metrics(
            cohort.labels, scores, cohort.offsets, thr, patient_groups(cohort)
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
    pd.DataFrame(
        {
            "patient_id": np.repeat(cohort.patient_ids, np.diff(cohort.offsets)),
            "hour": cohort.frame["hour"].to_numpy(),
            "risk": scores.astype(np.float32),
            **({} if prob is None else {"probability": prob.astype(np.float32)}),
            "alarm": (scores >= thr).astype(np.int8),
            "sepsis_label": cohort.labels,
        }
    ).to_parquet(scores_path, index=False)
    write_attrition(cohort.attrition, attrition_path)
    if write_predictions:
        folder = metrics_path.parent / "challenge"
        write_challenge_predictions(folder / "predictions", cohort.patient_ids.tolist(),
                                    cohort.offsets, np.clip(scores, 0.0, 1.0),
                                    (scores >= thr).astype(np.int8))  # fmt: skip
        _link_inputs(folder / "labels", data, cohort.patient_ids.tolist())
        metrics["paths"]["challenge"] = str(folder)
    metrics_path.write_text(json.dumps(metrics, indent=2, sort_keys=True))
    markdown_path.write_text(
        report_markdown(metrics, f"{data}: model {model_uri} (version {loaded.version})")
    )
    return metrics, scores, metrics_path
