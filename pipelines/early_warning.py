"""Prefect flow ``train-early-warning``: Challenge-2019 set A -> cross-validated GRU-D and
baselines -> final GRU-D on all patients -> MLflow run, registered model, champion gate.

Steps (each a thin call into :mod:`vitalgru`):

1. ``build-dataset``: read the ``.psv`` folder (parquet cache), apply plausibility limits,
   assign stratified patient folds, write ``hourly.parquet``/``folds.csv``/``manifest.json``
   /``attrition.csv`` (the manifest with :func:`cohort_digest`).
2. ``cross-validate``: GRU-D, trees, NEWS2, qSOFA on the same folds; thresholds and early
   stopping on training folds only; per-fold metrics and out-of-fold scores to disk.
3. ``train-final``: the model to register on all patients (a stratified share held out
   for the epoch and the alarm threshold), saved with its normalisation statistics:
   by default (``register_model: gru_d_gbm_blend``) the GRU-D and the trees blended
   into one :class:`~vitalgru.models.early_warning.SepsisBlend`, else the GRU-D alone.
4. ``log-and-register``: one MLflow run with the config, manifest, patients and folds,
   source checksums, CV table, the final fit's record (best epoch and stop reason also as
   ``resolved.final.*`` params), how each fold's GRU-D fit ended (``per_fold.csv`` and
   ``resolved.cv.fold<k>.*`` params: a ``time_budget`` stop is a fold whose figures
   depend on the machine's speed) and the model, registered as ``vitalgru-early-warning``; the gate metrics are the registered kind's
   cross-validated held-out means (``utility``, ``auroc``), an honest estimate for the
   final model, which itself has no held-out patients left.
5. ``promote``: ``champion`` alias if the new version beats the current one on every key,
   measured on the same cohort and folds (:func:`cohort_evaluated_on`); the utility gained
   said with its paired patient-bootstrap interval (:data:`HELDOUT_SCORES`).

Scoring any Challenge-2019 folder with a logged model is :mod:`pipelines.evaluate`'s.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from prefect import flow, get_run_logger, task

from pipelines.prefect_server import stop_with_this_process
from pipelines.promotion import promote_task
from pipelines.run_datasets import log_early_warning_datasets
from pipelines.run_logs import send_to_run_logs
from vitalgru import tracking
from vitalgru.baselines.gbm import GBMParams
from vitalgru.claims import replace_file, replacing, writing
from vitalgru.config import EARLY_WARNING_GATE_KEYS, EarlyWarningConfig, config_hash, load_config
from vitalgru.data.early_warning import (
    EarlyWarningCohort,
    build_cohort,
    patient_folds,
    resolve_data_dir,
)
from vitalgru.data.early_warning_files import load_dataset, write_dataset
from vitalgru.data.heldout_scores import (
    heldout_scores_frame,
    pooled_utility_interval,
    write_heldout_scores,
)
from vitalgru.io.psv_folder import list_psv
from vitalgru.io.sources import resolve_source
from vitalgru.models.base import build_model, model_class_path
from vitalgru.reports.model_card import (
    EARLY_WARNING_MODEL_DESCRIPTION,
    challenge_cohort,
    early_warning_version_card,
)
from vitalgru.training.early_warning import (
    BLEND,
    GRU_FIT_KEYS,
    CVSettings,
    cross_validate,
    fit_final,
)
from vitalgru.training.gru_d import GRUTrainParams
from vitalgru.training.loop import cpu_training

logger = logging.getLogger(__name__)

#: The registered kind's held-out scores (the gate pairs them with the champion's)
_HELDOUT_FILE = "heldout_scores.parquet"
HELDOUT_SCORES = f"cv/{_HELDOUT_FILE}"


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
    """Read, clean and fold the cohort; write the dataset folder (with the SHA-256 of each
    source file, :data:`SOURCE_SUMS`); return its path."""
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
    meta["cohort_digest"] = cohort_digest(cohort, folds)
    files = list_psv(folder)[: cfg.limit_patients]
    sums = pd.DataFrame(
        {"file": [f.name for f in files], "sha256": [_sha256(f) for f in files]}
    ).sort_values("file")
    meta["source_files"] = len(sums)
    meta["source_digest"] = hashlib.sha256(
        "".join(f"{n}:{d}\n" for n, d in zip(sums["file"], sums["sha256"], strict=True)).encode()
    ).hexdigest()
    out = Path(cfg.out_dir) / "dataset"
    write_dataset(cohort, folds, out, extra_manifest=meta)
    replace_file(out / SOURCE_SUMS, sums.to_csv(index=False))
    return str(out)


#: the dataset's list of the source files read, each with its SHA-256 (the manifest holds
#: ``source_digest``, the SHA-256 of its ``file:sha256`` lines in name order)
SOURCE_SUMS = "source_sha256.csv"


def _sha256(path: Path) -> str:
    # the bytes themselves: the parquet cache's key (names, sizes, modification times)
    # does not say what was read (set A read whole: about 1 s)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cohort_digest(cohort: EarlyWarningCohort, folds: np.ndarray) -> str:
    """SHA-256 (16 hex digits) over the patients in id order, each with its fold and its
    hourly labels: the cross-validation's figures are a measure of exactly these. Two
    cohorts of the same size differ in it (one stay swapped for another as long), and so
    does a revised label or another fold assignment."""
    ids = np.asarray(cohort.patient_ids).astype(str)
    labels = cohort.labels.astype("<i1")
    h = hashlib.sha256()
    for i in np.argsort(ids, kind="stable"):
        lo, hi = int(cohort.offsets[i]), int(cohort.offsets[i + 1])
        h.update(f"{ids[i]}:{int(folds[i])}:".encode() + labels[lo:hi].tobytes() + b"\n")
    return h.hexdigest()[:16]


def cohort_evaluated_on(manifest: dict[str, Any], n_folds: int, seed: int) -> str:
    """What the cross-validated gate figures were measured on (the gate's
    ``evaluated_on``): the cohort's counts, readable, and :func:`cohort_digest`, which
    tells apart cohorts the counts do not."""
    return (
        f"{manifest.get('dataset', 'a cohort')}: {manifest['n_patients']} patients "
        f"({manifest.get('n_septic_patients', '?')} septic), "
        f"{manifest.get('n_patient_hours', '?')} hours, {n_folds}-fold CV (seed {seed}); "
        f"patients, folds and labels sha256 {manifest.get('cohort_digest', 'not recorded')}"
    )


@task(name="cross-validate")
def run_cross_validation(cfg_json: dict[str, Any], dataset_dir: str) -> dict[str, Any]:
    """Cross-validate every configured model; write ``cv/`` files; return the summary."""
    cfg = EarlyWarningConfig.model_validate(cfg_json)
    cohort, folds, _ = load_dataset(dataset_dir)
    with cpu_training(cfg.torch_threads):
        res = cross_validate(cohort, folds, cv_settings(cfg))
    out = Path(cfg.out_dir) / "cv"
    out.mkdir(parents=True, exist_ok=True)
    # each file whole or not at all (a kill mid-write left one half-written, and
    # benchmarks/challenge_scorer.py reads them from out_dir)
    rows = [dict(model=m, **r) for m, rs in res.per_fold.items() for r in rs]
    replace_file(out / "per_fold.csv", pd.DataFrame(rows).to_csv(index=False))
    summary = res.summary()
    replace_file(out / "summary.json", json.dumps(summary, indent=2, sort_keys=True))
    replace_file(out / "gru_histories.json", json.dumps(res.gru_histories))
    oof = pd.DataFrame({"patient_id": np.repeat(cohort.patient_ids, np.diff(cohort.offsets))})
    oof["hour"] = cohort.frame["hour"].to_numpy()
    oof["sepsis_label"] = cohort.labels
    for m, s in res.oof_scores.items():
        oof[f"score_{m}"] = s.astype(np.float32)
    with replacing(out / "oof_scores.parquet") as t:
        oof.to_parquet(t, index=False)
    kind = cfg.register_model  # the gate pairs the registered kind's held-out scores
    thr = {int(r["fold"]): float(r["threshold"]) for r in res.per_fold[kind]}
    held = heldout_scores_frame(cohort.patient_ids, cohort.offsets, cohort.frame["hour"],
                                cohort.labels, folds, res.oof_scores[kind], thr)  # fmt: skip
    write_heldout_scores(held, out / _HELDOUT_FILE)
    pooled = pooled_utility_interval(out / _HELDOUT_FILE)  # as the gate reads the file
    return {"dir": str(out), "summary": summary, "per_fold": rows, "pooled": pooled}


@task(name="train-final")
def train_final(cfg_json: dict[str, Any], dataset_dir: str) -> str:
    """Fit the model to register on every patient; save it with its preprocessing."""
    cfg = EarlyWarningConfig.model_validate(cfg_json)
    cohort, _, _ = load_dataset(dataset_dir)
    with cpu_training(cfg.torch_threads):
        res = fit_final(cohort, cv_settings(cfg), blend=cfg.register_model == BLEND)
    out = Path(cfg.out_dir) / "final"
    out.mkdir(parents=True, exist_ok=True)
    # each file whole or not at all: a kill mid-write left weights that do not load
    with replacing(out / "weights.pt") as t:
        torch.save(res.model.state_dict(), t)
    spec = {"class_path": model_class_path(res.model), "config": res.model.config_dict()}
    replace_file(out / "model_spec.json", json.dumps(spec))
    replace_file(out / "preprocessing.json", json.dumps(res.preprocessing, indent=2))
    replace_file(
        out / "fit.json",
        json.dumps(
            {
                "model": cfg.register_model,
                "val_utility": res.val_utility,
                "val_auroc": res.val_auroc,
                "gru_val_utility": res.gru.val_utility,
                "best_epoch": res.gru.best_epoch,
                "stop_reason": res.gru.stop_reason,
                "max_minutes_per_fit": cfg.max_minutes_per_fit,
                "seconds": res.gru.seconds,
                "history": res.gru.history,
            },
            indent=2,
        ),
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
    with tracking.start_run(cfg.experiment, run_name="train-early-warning",
                            tags={"task": "early-warning"}) as run:  # fmt: skip
        tracking.log_config(run, cfg, "config.yaml")
        run.log_dict(manifest, "dataset/manifest.json")
        for f in ("attrition.csv", "folds.csv", SOURCE_SUMS):  # patients, folds, sources
            run.log_artifact(Path(dataset_dir) / f, "dataset")
        _, cv_data = log_early_warning_datasets(run, dataset_dir, manifest, cfg.seed)
        # with the held-out scores the gate pairs with the champion's (3.3 MB on set A)
        for f in ("per_fold.csv", "summary.json", "gru_histories.json", _HELDOUT_FILE):
            run.log_artifact(Path(cv["dir"]) / f, "cv")
        # the final fit's own record (out_dir's copy is overwritten by the next training)
        run.log_artifact(final / "fit.json", "final")
        run.log_params(
            {
                "resolved.final.best_epoch": int(fit["best_epoch"]) + 1,  # 1-based, as logged
                "resolved.final.stop_reason": fit["stop_reason"],
                "resolved.final.epochs": len(fit["history"]),
                **_cv_fit_params(cv["per_fold"]),
            }
        )
        # the gate's figures (the registered kind's CV means) are the logged model's, logged
        # with it below; MLflow copies the others to it as they are
        metrics: dict[str, float] = {}
        for name, d in summary.items():
            for k, v in d.items():
                if np.isfinite(v):
                    metrics[f"cv.{name}.{k}"] = float(v)
        pooled = {k: v for k, v in cv["pooled"]["utility"].items() if k != "n_defined"}
        metrics |= {f"cv.pooled.utility_{k}": float(v) for k, v in pooled.items() if v is not None}
        metrics["final.val_utility"] = float(fit["val_utility"])
        metrics["final.val_auroc"] = float(fit["val_auroc"])
        metrics["final.gru_val_utility"] = float(fit["gru_val_utility"])
        metrics["final.threshold"] = float(preprocessing["threshold"])
        metrics["final.gru_fit_seconds"] = float(fit["seconds"])
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
                cohort=challenge_cohort(str(manifest.get("source", ""))),
                pooled=cv.get("pooled"),
            ),
            model_description=EARLY_WARNING_MODEL_DESCRIPTION,
        )
        run.log_metrics(gate, model_id=ref.model_id, dataset=cv_data)
    return {
        "run_id": run.run_id,
        "model_uri": ref.uri,
        "version": ref.version,
        "metrics": gate,
        "evaluated_on": cohort_evaluated_on(manifest, cfg.n_folds, cfg.seed),
    }


def _cv_fit_params(per_fold: list[dict[str, Any]]) -> dict[str, Any]:
    """How each fold's GRU-D fit ended, as run params: ``resolved.cv.fold<k>.gru_stop_reason``,
    ``.gru_epochs`` and ``.gru_best_epoch`` (1-based); the gate compares those folds' figures."""
    out: dict[str, Any] = {}
    for r in per_fold:
        if r["model"] == "gru_d":
            for key in GRU_FIT_KEYS:
                v = r[key]
                out[f"resolved.cv.fold{int(r['fold'])}.{key}"] = v if isinstance(v, str) else int(v)
    return out


def _gate_metrics(summary: dict[str, dict[str, float]], kind: str) -> dict[str, float]:
    g = summary.get(kind)
    if g is None:
        raise ValueError(f"the cross-validation has no {kind!r} results to gate the model on")
    return {k: float(g[f"{k}_mean"]) for k in EARLY_WARNING_GATE_KEYS}


@flow(name="train-early-warning")
def train_early_warning_flow(
    config_path: str | None = None, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Cross-validate, train, log, register and (if it passes the gate) promote.

    Returns
    -------
    dict
        ``run_id``, ``model_uri``, ``version``, ``metrics`` (gate metrics), ``promoted``,
        ``promotion_reason``, ``promotion_paired`` (the gate's paired interval of the
        utility gained, or why there is none), ``cv_summary``, and the paths of
        ``dataset_dir``, ``cv_dir`` and ``final_dir``.
    """
    stop_with_this_process()  # a kill leaves no temporary server
    send_to_run_logs()  # the library's lines in the run's logs in Prefect
    cfg = load_early_warning_config(config_path, overrides)  # models fit register_model
    cfg_json = cfg.model_dump(mode="json")
    out = Path(cfg.out_dir).resolve()
    # One training per output folder: a second one (a scheduled run beside one started by
    # hand) would mix its dataset, cross-validation and final weights with this one's.
    with writing(out, f"the early-warning output folder {out}", log=get_run_logger()):
        dataset_dir = build_dataset(cfg_json)
        cv = run_cross_validation(cfg_json, dataset_dir)
        final_dir = train_final(cfg_json, dataset_dir)
        logged = log_and_register(cfg_json, dataset_dir, cv, final_dir)
    decision = promote_task(
        cfg.registered_name, str(logged["version"]), logged["metrics"], list(cfg.gate_keys),
        logged["evaluated_on"], heldout_scores=HELDOUT_SCORES,
    )  # fmt: skip
    return {
        **logged,
        "promoted": decision["promoted"],
        "promotion_reason": decision["reason"],
        "promotion_paired": decision["paired"],
        "cv_summary": cv["summary"],
        "dataset_dir": dataset_dir,
        "cv_dir": cv["dir"],
        "final_dir": final_dir,
    }
