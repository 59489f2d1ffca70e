"""Training of the arrhythmia beat classifier (``ArrhythmiaGRU``) on DS1, and what is logged
with it for a scorer.

Trained on DS1 only, DS2 is never touched here: either one network with the records in
``cfg.val_records`` (DS1 records) held out for model selection and early stopping, or (the
default, ``cfg.cv_folds``) a record-grouped cross-validation inside DS1 whose networks
become one ensemble and whose out-of-fold output chooses the gates. Class imbalance is
handled with inverse-frequency class weights (optionally focal loss, Lin et al. 2017). One
network's fit, loss and augmentation are :mod:`vitalgru.training.arrhythmia_fit`'s.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from vitalgru.config import ArrhythmiaTrainConfig
from vitalgru.data.arrhythmia_dataset import BeatDataset, RecordBeats
from vitalgru.data.beat_features import LOOKAHEAD_BEATS, RR_FEATURES, FeatureSettings
from vitalgru.data.noise import NoiseBank
from vitalgru.metrics.aami import CLASS_NAMES
from vitalgru.models.arrhythmia import ArrhythmiaEnsemble, ArrhythmiaGRU
from vitalgru.training.arrhythmia_fit import (
    evaluate_records,
    feature_settings,
    fit_network,
    fit_settings_of,
    noise_bank,
    predict_records,
    train_class_weights,
    with_simulated_af,
)
from vitalgru.training.arrhythmia_gates import choose_gates, sv_f1
from vitalgru.training.loop import Callback, FitResult, FitSettings, cpu_training, usable_cpus
from vitalgru.training.parallel import run_fits
from vitalgru.training.rng import kept_rng

logger = logging.getLogger(__name__)


@dataclass
class ArrhythmiaTrainResult:
    """A trained model and everything needed to log, score and reproduce it."""

    model: ArrhythmiaGRU | ArrhythmiaEnsemble
    fit: FitResult
    preprocessing: dict[str, Any]
    train_records: list[str]
    val_records: list[str]
    val_metrics: dict[str, float]
    train_seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    # With cfg.cv_folds: the held-out records of every fold, and the fit of every network
    # (fold by fold, cfg.seeds_per_fold networks each; ``fit`` is the first one's).
    fold_records: list[list[str]] = field(default_factory=list)
    fold_fits: list[FitResult] = field(default_factory=list)
    # With cfg.refit_full: the refit on the training and validation records together (the
    # model returned); ``fit``, ``history`` and ``val_metrics`` are then the network that
    # chose its number of epochs, and ``train_records`` holds the validation records too.
    refit: FitResult | None = None
    # The recorded noise mixed into training, where cfg.noise_augment > 0: the files read
    # (vitalgru.data.noise.noise_source), which change the weights like the beats do.
    noise_source: dict[str, Any] | None = None


def preprocessing_dict(
    dataset: BeatDataset, settings: FeatureSettings, output_delay: int = 0
) -> dict[str, Any]:
    """What a scorer must reproduce to feed the model (logged with it). A streaming scorer
    labels a beat ``lookahead_beats + output_delay_beats`` beats after it arrives."""
    man = dataset.manifest
    return {
        "fs": dataset.fs,
        "lead": man.get("lead"),
        "window": man.get("window"),
        "filters": man.get("filters"),
        "normalisation": {
            "method": "running_median_template",
            "description": (
                "channel 0 = window / scale, channel 1 = (window - template) / scale; "
                "template = median of the current and previous template_beats-1 windows; "
                "scale = max(|template|), floored at 0.05 mV"
            ),
            **settings.as_dict(),
            "dataset_normalisation": man.get("normalisation"),
        },
        "rr_features": list(RR_FEATURES),
        "lookahead_beats": LOOKAHEAD_BEATS,
        "output_delay_beats": int(output_delay),
        "classes": list(CLASS_NAMES),
        "dataset_config_hash": man.get("config_hash"),
    }


@kept_rng()  # the caller's random generators are put back afterwards
def train_arrhythmia(
    dataset: BeatDataset,
    cfg: ArrhythmiaTrainConfig,
    callbacks: Sequence[Callback] = (),
    records: Sequence[str] | None = None,
) -> ArrhythmiaTrainResult:
    """Train the beat classifier on DS1 with record-grouped validation.

    Parameters
    ----------
    dataset : BeatDataset
        The ingested dataset (its ``DS1`` split is used).
    cfg : ArrhythmiaTrainConfig
    callbacks : sequence of Callback
        Progress hooks (e.g. :class:`vitalgru.training.loop.TqdmProgress`, an MLflow
        logger); library code itself never prints.
    records : sequence of str, optional
        Restrict training to these DS1 records (small tests); the validation records
        are still ``cfg.val_records``.

    Returns
    -------
    ArrhythmiaTrainResult
        ``model`` holds the best validation epoch's weights (or, with
        ``cfg.refit_full``, a model retrained on all of DS1 for that many epochs).
    """
    if cfg.cv_folds is not None:
        return _train_cv_ensemble(dataset, cfg, callbacks, records)
    ds1 = dataset.split_records("DS1")
    val = [r for r in cfg.val_records]
    bad = [r for r in val if r not in ds1]
    if bad:
        raise ValueError(
            f"val_records {bad} are not DS1 records; validation must come from DS1 (DS1 is {ds1})"
        )
    pool = list(records) if records is not None else ds1
    bad = [r for r in pool if r not in ds1]
    if bad:
        raise ValueError(f"training records {bad} are not DS1 records")
    train = [r for r in pool if r not in val]
    if not train:
        raise ValueError("no training records left after removing val_records")
    settings = feature_settings(cfg)
    t0 = time.perf_counter()
    with cpu_training(cfg.num_threads):
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        train_recs = dataset.records(train, settings)
        val_recs = dataset.records(val, settings)
        n_samples = int(dataset.windows.shape[1])
        weights = train_class_weights(cfg, train_recs)
        fit_settings = fit_settings_of(cfg, cfg.max_minutes)
        noise = noise_bank(cfg, dataset)
        model, result = fit_network(
            cfg,
            with_simulated_af(cfg, train_recs, dataset.fs, cfg.seed),
            val_recs,
            n_samples,
            weights,
            fit_settings,
            callbacks,
            noise,
        )
        val_metrics = {
            **{f"val_ungated_{k[4:]}": v
               for k, v in evaluate_records(model, val_recs, "val").items()},
        }  # fmt: skip
        gate, quality_gate, _ = choose_gates(cfg, predict_records(model, val_recs), val_recs)
        model.rhythm_gate, model.quality_gate = gate, quality_gate
        val_metrics.update(evaluate_records(model, val_recs, "val"))
        refit_result: FitResult | None = None
        if cfg.refit_full:
            n_epochs = result.best_epoch + 1
            used = (time.perf_counter() - t0) / 60
            left = None if cfg.max_minutes is None else max(0.5, cfg.max_minutes - used)
            refit = FitSettings(
                **{
                    **fit_settings.__dict__,
                    "max_epochs": n_epochs,
                    "patience": 0,
                    "monitor": "refit_epoch",
                    "mode": "max",
                    "max_minutes": left,
                }
            )
            # the class weights of what the refit trains on: the validation records hold a
            # large share of DS1's S beats, which the training share's weights left out
            all_recs = train_recs + val_recs
            refit_weights = train_class_weights(cfg, all_recs)
            all_recs = with_simulated_af(cfg, all_recs, dataset.fs, cfg.seed)
            model, refit_result = fit_network(
                cfg, all_recs, [], n_samples, refit_weights, refit, callbacks, noise
            )
            model.rhythm_gate, model.quality_gate = gate, quality_gate
    elapsed = time.perf_counter() - t0
    return ArrhythmiaTrainResult(
        model=model,
        fit=result,
        preprocessing=preprocessing_dict(dataset, settings, cfg.output_delay),
        train_records=train + val if cfg.refit_full else train,
        val_records=val,
        val_metrics=val_metrics,
        train_seconds=elapsed,
        history=result.history,
        refit=refit_result,
        noise_source=dict(noise.source) if noise is not None and noise.source else None,
    )


def record_folds(records: Sequence[RecordBeats], k: int) -> list[list[str]]:
    """Deal records into ``k`` folds so that every fold holds a share of every class.

    Each record's load is its share of all N, S and V beats (the three shares summed;
    F is left out: in MIT-BIH DS1 one record, 208, holds 90 % of it, and balancing on
    it would leave that record alone in a fold). Records are taken in decreasing load
    and each goes to the fold with the smallest total load so far (ties: lowest fold
    index). Deterministic.
    """
    if k < 2 or k > len(records):
        raise ValueError(f"need 2 <= folds <= {len(records)} records, got {k}")
    cls = [CLASS_NAMES.index(c) for c in ("N", "S", "V")]
    counts = np.stack(
        [np.bincount(r.labels[r.labels >= 0], minlength=len(CLASS_NAMES))[cls] for r in records]
    ).astype(np.float64)
    load = (counts / np.maximum(counts.sum(axis=0), 1.0)).sum(axis=1)
    order = sorted(range(len(records)), key=lambda i: (-load[i], records[i].record_id))
    total = [0.0] * k
    folds: list[list[str]] = [[] for _ in range(k)]
    for i in order:
        j = min(range(k), key=lambda f: (total[f], f))
        folds[j].append(records[i].record_id)
        total[j] += load[i]
    return [sorted(f) for f in folds]


@dataclass(frozen=True)
class _CvData:
    """What every cross-validation fit reads (sent once to each worker process)."""

    cfg: ArrhythmiaTrainConfig
    records: list[RecordBeats]
    n_samples: int
    fs: float
    noise: NoiseBank | None = None


@dataclass(frozen=True)
class _CvFit:
    """One network of the cross-validation: its fold, member index, seed and budget."""

    fold: int
    member: int
    held_out: list[str]
    seed: int
    max_minutes: float | None


def _fit_cv_member(
    data: _CvData, task: _CvFit, callbacks: Sequence[Callback]
) -> tuple[ArrhythmiaGRU, FitResult, list[np.ndarray]]:
    """Train one fold network (seeded by the task alone, so any process gives the same
    result) and score its held-out records."""
    cfg = data.cfg
    with cpu_training(cfg.num_threads):
        train_recs = [r for r in data.records if r.record_id not in task.held_out]
        by_name = {r.record_id: r for r in data.records}
        val_recs = [by_name[n] for n in task.held_out]
        weights = train_class_weights(cfg, train_recs)
        net, res = fit_network(
            cfg.model_copy(update={"seed": task.seed}),
            with_simulated_af(cfg, train_recs, data.fs, task.seed),
            val_recs,
            data.n_samples,
            weights,
            fit_settings_of(cfg, task.max_minutes),
            callbacks,
            data.noise,
        )
        return net, res, predict_records(net, val_recs)


def _train_cv_ensemble(
    dataset: BeatDataset,
    cfg: ArrhythmiaTrainConfig,
    callbacks: Sequence[Callback],
    records: Sequence[str] | None,
) -> ArrhythmiaTrainResult:
    """Record-grouped K-fold CV inside DS1, ``cfg.seeds_per_fold`` networks per fold
    (trained ``cfg.workers`` at a time); all the networks become one ensemble."""
    ds1 = dataset.split_records("DS1")
    pool = list(records) if records is not None else ds1
    bad = [r for r in pool if r not in ds1]
    if bad:
        raise ValueError(f"training records {bad} are not DS1 records")
    k = int(cfg.cv_folds or 0)
    n_seeds = cfg.seeds_per_fold
    settings = feature_settings(cfg)
    t0 = time.perf_counter()
    with cpu_training(cfg.num_threads):
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        recs = dataset.records(pool, settings)
        by_name = {r.record_id: r for r in recs}
        folds = record_folds(recs, k)
        n_fits = k * n_seeds
        # no more processes than the CPUs give room for: more wait on one another, and
        # each holds its own copy of the training data
        workers = min(cfg.workers, max(1, usable_cpus() // cfg.num_threads))
        if workers < cfg.workers:
            logger.info("training %d at a time, not workers: %d (CPUs usable: %d)",
                        workers, cfg.workers, usable_cpus())  # fmt: skip
        # the budget covers every fit; `workers` of them run at a time
        per_fit = (None if cfg.max_minutes is None
                   else cfg.max_minutes * min(workers, n_fits) / n_fits)  # fmt: skip
        tasks = [
            _CvFit(i, j, held, cfg.seed + i + j, per_fit)
            for i, held in enumerate(folds)
            for j in range(n_seeds)
        ]
        noise = noise_bank(cfg, dataset)
        data = _CvData(cfg, recs, int(dataset.windows.shape[1]), dataset.fs, noise)
        done = run_fits(_fit_cv_member, data, tasks, workers, callbacks)
        nets = [net for net, _, _ in done]
        fits = [res for _, res, _ in done]
        history: list[dict[str, float]] = []
        for t, res in zip(tasks, fits, strict=True):
            logger.info(
                "fold %d/%d network %d/%d held out %s: best epoch %d",
                t.fold + 1, k, t.member + 1, n_seeds, t.held_out, res.best_epoch,
            )  # fmt: skip
            history += [
                {**h, "fold": float(t.fold), "member": float(t.member)} for h in res.history
            ]
        oof_p: list[np.ndarray] = []
        oof_recs: list[RecordBeats] = []
        for i, held in enumerate(folds):  # a fold's held-out output: its networks' mean
            members = [probs for t, (_, _, probs) in zip(tasks, done, strict=True) if t.fold == i]
            oof_p += [np.mean(per_rec, axis=0) for per_rec in zip(*members, strict=True)]
            oof_recs += [by_name[n] for n in held]
        y = np.concatenate([r.labels for r in oof_recs])
        p = np.concatenate(oof_p)
        sv, m = sv_f1(y, p.argmax(axis=1))
        cv_metrics = {f"val_ungated_{key}": v for key, v in m.items()}
        cv_metrics["val_ungated_sv_f1"] = sv
        gate, quality_gate, p = choose_gates(cfg, oof_p, oof_recs)
        sv, m = sv_f1(y, p.argmax(axis=1))
        cv_metrics.update({f"val_{key}": v for key, v in m.items()})
        cv_metrics["val_sv_f1"] = sv
        ensemble = ArrhythmiaEnsemble.of(nets, gate, quality_gate)
        ensemble.eval()
    return ArrhythmiaTrainResult(
        model=ensemble,
        fit=fits[0],
        preprocessing=preprocessing_dict(dataset, settings, cfg.output_delay),
        train_records=sorted(pool),
        val_records=[],
        val_metrics=cv_metrics,
        train_seconds=time.perf_counter() - t0,
        history=history,
        fold_records=folds,
        fold_fits=fits,
        noise_source=dict(noise.source) if noise is not None and noise.source else None,
    )
