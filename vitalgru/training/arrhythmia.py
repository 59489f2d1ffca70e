"""Training and inference of the arrhythmia beat classifier (``ArrhythmiaGRU``).

Trained on DS1 only: the records in ``cfg.val_records`` (DS1 records) are held out for
model selection and early stopping; DS2 is never touched here. Class imbalance is
handled with inverse-frequency class weights (optionally focal loss, Lin et al. 2017).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from vitalgru.config import ArrhythmiaTrainConfig
from vitalgru.data.arrhythmia_dataset import (
    SUPRAVENTRICULAR_CLASSES,
    SUPRAVENTRICULAR_LABEL,
    BeatDataset,
    BeatSequenceDataset,
    RecordBeats,
    collate_beat_sequences,
    simulated_af_record,
)
from vitalgru.data.beat_features import LOOKAHEAD_BEATS, N_RR_FEATURES, RR_FEATURES, FeatureSettings
from vitalgru.data.noise import NoiseBank, add_recorded_noise, load_noise_bank
from vitalgru.io import open_database
from vitalgru.metrics.aami import CLASS_NAMES
from vitalgru.models.arrhythmia import ArrhythmiaEnsemble, ArrhythmiaGRU
from vitalgru.training.arrhythmia_gates import choose_gates, sv_f1
from vitalgru.training.loop import Callback, FitResult, FitSettings, cpu_training, fit
from vitalgru.training.parallel import run_fits

logger = logging.getLogger(__name__)


def feature_settings(cfg: ArrhythmiaTrainConfig) -> FeatureSettings:
    """Feature settings of a training config."""
    return FeatureSettings(
        template_beats=cfg.template_beats,
        local_rr_beats=cfg.local_rr_beats,
        long_rr_beats=cfg.long_rr_beats,
        rhythm_beats=cfg.rhythm_beats,
    )


def build_model(cfg: ArrhythmiaTrainConfig, n_samples: int) -> ArrhythmiaGRU:
    """A fresh model for windows of ``n_samples`` samples."""
    return ArrhythmiaGRU(
        n_samples=n_samples,
        in_channels=2,
        n_rr=N_RR_FEATURES,
        n_classes=len(CLASS_NAMES),
        conv_widths=tuple(cfg.conv_widths),
        d_beat=cfg.d_beat,
        hidden=cfg.hidden,
        num_layers=cfg.num_layers,
        dropout=cfg.dropout,
        lookahead_beats=LOOKAHEAD_BEATS,
        output_delay=cfg.output_delay,
    )


def class_weights(labels: np.ndarray, power: float, max_weight: float) -> torch.Tensor:
    """Inverse-frequency weights ``(n / (K n_c))^power``, clipped to ``max_weight`` and
    to classes present (absent classes get weight 0 contribution anyway)."""
    k = len(CLASS_NAMES)
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    w = np.where(counts > 0, (counts.sum() / (k * np.maximum(counts, 1))) ** power, 1.0)
    w = np.minimum(w, max_weight)
    return torch.tensor(w / w[0] if w[0] > 0 else w, dtype=torch.float32)


def sequence_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor,
    loss: str = "ce",
    gamma: float = 2.0,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Weighted per-beat loss over ``(B, T, K)`` logits and ``(B, T)`` labels; beats
    labelled :data:`IGNORE_LABEL` (padding) do not count. Normalised by the summed
    weight of the counted beats.

    A beat labelled :data:`SUPRAVENTRICULAR_LABEL` ("N or S") costs ``-log(p_N + p_S)``
    with N's weight (no focal term or smoothing): any split between N and S is right."""
    if loss not in ("ce", "focal"):
        raise ValueError(f"loss must be 'ce' or 'focal', got {loss!r}")
    flat = logits.reshape(-1, logits.shape[-1])
    y = labels.reshape(-1)
    supra = y == SUPRAVENTRICULAR_LABEL
    keep = y >= 0  # a class index (IGNORE_LABEL and SUPRAVENTRICULAR_LABEL are negative)
    total = logits.sum() * 0.0
    if not (keep.any() or supra.any()):
        return total
    weight = total
    if keep.any():
        fk, yk = flat[keep], y[keep]
        w = weights[yk]
        ce = F.cross_entropy(fk, yk, reduction="none", label_smoothing=label_smoothing)
        if loss == "focal":
            # Focal loss (Lin et al. 2017): down-weight beats already classified well.
            pt = torch.exp(-F.cross_entropy(fk, yk, reduction="none"))
            ce = ce * (1.0 - pt) ** gamma
        total, weight = total + (w * ce).sum(), weight + w.sum()
    if supra.any():
        fs = flat[supra]
        nll = torch.logsumexp(fs, dim=1) - torch.logsumexp(
            fs[:, list(SUPRAVENTRICULAR_CLASSES)], dim=1
        )
        w_n = weights[SUPRAVENTRICULAR_CLASSES[0]]  # N's weight
        total, weight = total + w_n * nll.sum(), weight + w_n * nll.numel()
    return total / weight


@torch.no_grad()
def predict_records(
    model: ArrhythmiaGRU | ArrhythmiaEnsemble,
    records: Sequence[RecordBeats],
    chunk_beats: int | None = None,
) -> list[np.ndarray]:
    """Class probabilities of every beat of each record, hidden state carried through.

    Parameters
    ----------
    model : ArrhythmiaGRU
    records : sequence of RecordBeats
    chunk_beats : int, optional
        Feed the record in chunks of this many beats, carrying the GRU state between
        chunks (as a streaming scorer does); ``None`` feeds each record whole. A model
        with an ``output_delay`` of d gets the d beats after each chunk as look-ahead
        context (``context_beats``), so chunked scoring equals whole-record scoring.

    Returns
    -------
    list of numpy.ndarray
        ``(n_beats, K)`` float32 probabilities per record.
    """
    was_training = model.training
    model.eval()
    out = []
    for rec in records:
        n = len(rec)
        step = n if chunk_beats is None else max(1, int(chunk_beats))
        delay = int(getattr(model, "output_delay", 0))
        h = None
        probs = []
        for s in range(0, n, step):
            end = min(s + step + delay, n)  # the chunk plus its look-ahead beats
            ctx = end - min(s + step, n)
            x = torch.from_numpy(np.ascontiguousarray(rec.x[s:end]))[None]
            ok = None if rec.signal_ok is None else torch.from_numpy(rec.signal_ok[s:end])
            logits, h = model(x, h, None if ok is None else ok[None], context_beats=ctx)
            probs.append(torch.softmax(logits[0, : end - s - ctx], dim=-1).numpy())
        out.append(np.concatenate(probs) if probs else np.zeros((0, model.n_classes), np.float32))
    model.train(was_training)
    return out


def evaluate_records(
    model: ArrhythmiaGRU | ArrhythmiaEnsemble, records: Sequence[RecordBeats], prefix: str = "val"
) -> dict[str, float]:
    """AAMI metrics of argmax predictions over ``records`` (keys ``{prefix}_...``),
    plus ``{prefix}_sv_f1`` (mean of S and V F1, nan counted as 0) and the mean loss."""
    probs = predict_records(model, records)
    y = np.concatenate([r.labels for r in records])
    p = np.concatenate(probs)
    sv, m = sv_f1(y, p.argmax(axis=1))
    out = {f"{prefix}_{k}": v for k, v in m.items()}
    nll = -np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean()
    out[f"{prefix}_loss"] = float(nll)
    out[f"{prefix}_sv_f1"] = sv
    return out


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


# The RR features that are absolute log intervals (the rest are ratios or scale-free).
_ABS_RR_COLUMNS = torch.tensor([RR_FEATURES.index("log_rr_prev"), RR_FEATURES.index("log_rr_next")])


def _augment(
    batch: dict[str, Any],
    cfg: ArrhythmiaTrainConfig,
    gen: torch.Generator,
    noise: NoiseBank | None = None,
) -> None:
    """Training-only changes to the features. Morphology: recorded noise on some
    sequences (with ``noise`` and ``cfg.noise_augment``), then a random per-sequence gain
    and Gaussian noise. RR features: left exact, except that ``cfg.augment_rate`` gives
    each sequence a random heart rate (the absolute log-RR features shifted together,
    which is every RR interval scaled by one factor)."""
    x = batch["x"]
    m = x.shape[-1] - N_RR_FEATURES
    if cfg.augment_rate > 0:
        u = cfg.augment_rate * (2 * torch.rand((x.shape[0], 1), generator=gen) - 1)
        x = x.clone()
        x[..., m + _ABS_RR_COLUMNS] += u[..., None]
    if noise is not None:  # noise_bank() gives one only when cfg.noise_augment > 0
        x = add_recorded_noise(
            x,
            batch["sample_idx"],
            batch["lengths"],
            noise,
            m // 2,
            cfg.noise_augment,
            cfg.noise_snr_db,
            gen,
        )
    morph = x[..., :m]
    if cfg.augment_scale > 0:
        g = 1.0 + cfg.augment_scale * (2 * torch.rand((x.shape[0], 1, 1), generator=gen) - 1)
        morph = morph * g
    if cfg.augment_noise > 0:
        morph = morph + cfg.augment_noise * torch.randn(morph.shape, generator=gen)
    batch["x"] = torch.cat([morph, x[..., m:]], dim=-1)


def noise_bank(cfg: ArrhythmiaTrainConfig, dataset: BeatDataset) -> NoiseBank | None:
    """The recorded-noise bank ``cfg`` asks for (None when ``cfg.noise_augment`` is 0),
    prepared at the dataset's rate and with its filters."""
    if cfg.noise_augment <= 0:
        return None
    db = open_database(cfg.noise_database, cfg.ingest.physionet)
    filters = dataset.manifest.get("filters")
    if not isinstance(filters, dict):
        raise ValueError(f"{dataset.path}: manifest has no filter settings for the noise bank")
    bank = load_noise_bank(db, cfg.noise_records, dataset.fs, filters)
    logger.info("noise bank: %s", ", ".join(bank.names))
    return bank


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


def _train_class_weights(
    cfg: ArrhythmiaTrainConfig, train_recs: Sequence[RecordBeats]
) -> torch.Tensor:
    w = class_weights(
        np.concatenate([r.labels for r in train_recs]),
        cfg.class_weight_power,
        cfg.max_class_weight,
    )
    logger.info("class weights %s", dict(zip(CLASS_NAMES, w.tolist(), strict=True)))
    return w


def with_simulated_af(
    cfg: ArrhythmiaTrainConfig, train_recs: Sequence[RecordBeats], fs: float, seed: int
) -> list[RecordBeats]:
    """``train_recs`` plus a simulated-AF copy of each (:func:`simulated_af_record`) when
    ``cfg.simulated_af`` > 0; the copies depend on ``seed`` and the records alone."""
    out = list(train_recs)
    if cfg.simulated_af > 0:
        rng = np.random.default_rng([seed, 7919])
        settings = feature_settings(cfg)
        out += [simulated_af_record(r, fs, settings, rng, cfg.simulated_af) for r in train_recs]
    return out


def _fit_settings(cfg: ArrhythmiaTrainConfig, max_minutes: float) -> FitSettings:
    return FitSettings(
        max_epochs=cfg.max_epochs,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        warmup_frac=cfg.warmup_frac,
        grad_clip=cfg.grad_clip,
        patience=cfg.patience,
        monitor=cfg.monitor,
        mode="min" if cfg.monitor.endswith("loss") else "max",
        max_minutes=max_minutes,
        min_epochs=cfg.min_epochs,
        ema_decay=cfg.ema_decay,
    )


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
        weights = _train_class_weights(cfg, train_recs)
        fit_settings = _fit_settings(cfg, cfg.max_minutes)
        noise = noise_bank(cfg, dataset)
        model, result = _fit_once(
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
        if cfg.refit_full:
            n_epochs = result.best_epoch + 1
            used = (time.perf_counter() - t0) / 60
            refit = FitSettings(
                **{
                    **fit_settings.__dict__,
                    "max_epochs": n_epochs,
                    "patience": 0,
                    "monitor": "refit_epoch",
                    "mode": "max",
                    "max_minutes": max(0.5, cfg.max_minutes - used),
                }
            )
            all_recs = with_simulated_af(cfg, train_recs + val_recs, dataset.fs, cfg.seed)
            model, _ = _fit_once(cfg, all_recs, [], n_samples, weights, refit, callbacks, noise)
            model.rhythm_gate, model.quality_gate = gate, quality_gate
    elapsed = time.perf_counter() - t0
    return ArrhythmiaTrainResult(
        model=model,
        fit=result,
        preprocessing=preprocessing_dict(dataset, settings, cfg.output_delay),
        train_records=train,
        val_records=val,
        val_metrics=val_metrics,
        train_seconds=elapsed,
        history=result.history,
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
    max_minutes: float


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
        weights = _train_class_weights(cfg, train_recs)
        net, res = _fit_once(
            cfg.model_copy(update={"seed": task.seed}),
            with_simulated_af(cfg, train_recs, data.fs, task.seed),
            val_recs,
            data.n_samples,
            weights,
            _fit_settings(cfg, task.max_minutes),
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
        # the budget covers every fit; `workers` of them run at a time
        per_fit = cfg.max_minutes * min(cfg.workers, n_fits) / n_fits
        tasks = [
            _CvFit(i, j, held, cfg.seed + i + j, per_fit)
            for i, held in enumerate(folds)
            for j in range(n_seeds)
        ]
        data = _CvData(
            cfg, recs, int(dataset.windows.shape[1]), dataset.fs, noise_bank(cfg, dataset)
        )
        done = run_fits(_fit_cv_member, data, tasks, cfg.workers, callbacks)
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
    )


def _fit_once(
    cfg: ArrhythmiaTrainConfig,
    train_recs: list[RecordBeats],
    val_recs: list[RecordBeats],
    n_samples: int,
    weights: torch.Tensor,
    fit_settings: FitSettings,
    callbacks: Sequence[Callback],
    noise: NoiseBank | None = None,
) -> tuple[ArrhythmiaGRU, FitResult]:
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, n_samples)
    steps = max(1, cfg.sequences_per_epoch // cfg.batch_size)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    n_evals = [0]

    def batches(epoch: int):  # type: ignore[no-untyped-def]
        ds = BeatSequenceDataset(
            train_recs,
            seq_len=cfg.seq_len,
            n_items=steps * cfg.batch_size,
            seed=cfg.seed * 100_003 + epoch,
        )
        for b in DataLoader(ds, batch_size=cfg.batch_size, collate_fn=collate_beat_sequences):
            _augment(b, cfg, gen, noise)
            yield b

    def loss_fn(m: torch.nn.Module, b: dict[str, Any]) -> torch.Tensor:
        logits, _ = m(b["x"])
        return sequence_loss(
            logits, b["labels"], weights, cfg.loss, cfg.focal_gamma, cfg.label_smoothing
        )

    def evaluate(m: torch.nn.Module) -> dict[str, float]:
        if not val_recs:  # refit: the last epoch is the one kept
            n_evals[0] += 1
            return {"refit_epoch": float(n_evals[0])}
        return evaluate_records(m, val_recs, "val")  # type: ignore[arg-type]

    result = fit(model, batches, loss_fn, evaluate, fit_settings, steps, callbacks)
    return model, result
