"""One network of the arrhythmia beat classifier: built from a training config, its loss,
its training-only augmentation, fitting it on DS1 beat sequences, and its class
probabilities over whole records.

:mod:`vitalgru.training.arrhythmia` puts these together: one network with a held-out
validation split, or the cross-validated ensemble of the default configuration.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from vitalgru.config import ARRHYTHMIA_MONITOR_KEYS, ArrhythmiaTrainConfig
from vitalgru.data.arrhythmia_dataset import (
    IGNORE_LABEL,
    SUPRAVENTRICULAR_CLASSES,
    SUPRAVENTRICULAR_LABEL,
    BeatDataset,
    BeatSequenceDataset,
    RecordBeats,
    collate_beat_sequences,
    simulated_af_record,
)
from vitalgru.data.beat_features import LOOKAHEAD_BEATS, N_RR_FEATURES, RR_FEATURES, FeatureSettings
from vitalgru.data.noise import NoiseBank, add_recorded_noise, load_noise_bank, noise_source
from vitalgru.io import open_database
from vitalgru.metrics.aami import CLASS_NAMES
from vitalgru.models.arrhythmia import ArrhythmiaEnsemble, ArrhythmiaGRU
from vitalgru.training.arrhythmia_gates import sv_f1
from vitalgru.training.loop import Callback, FitResult, FitSettings, fit
from vitalgru.training.rng import kept_rng

logger = logging.getLogger(__name__)

#: Beats :func:`predict_records` runs through the network at once by default. The beat
#: encoder's activations take about 30 kB a beat, so a 24-hour Holter record (over 100,000
#: beats) run whole held several GB; a record of at most this many beats (every MIT-BIH
#: record: 30 minutes, under 3,500 beats) is still run whole.
PREDICT_CHUNK_BEATS = 8192


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


def _delay_read(b: dict[str, Any], delay: int) -> torch.Tensor:
    """The batch's labels less those of beats that read, ``delay`` beats on, the padding
    after a sequence shorter than the batch's: at a record's end the network reads the last
    beat's own state, in a padded batch the state after a zero row, which depended on the
    other sequences batched with it."""
    labels = b["labels"]
    t = labels.shape[1]
    lengths = b["lengths"]
    if not delay or not bool((lengths < t).any()):
        return labels
    past = torch.arange(t)[None, :] + delay >= lengths[:, None]
    return labels.masked_fill(past & (lengths < t)[:, None], IGNORE_LABEL)


def class_weights(labels: np.ndarray, power: float, max_weight: float) -> torch.Tensor:
    """Inverse-frequency weights ``(n / (K n_c))^power``, clipped to ``max_weight`` and
    to classes present (absent classes get weight 0 contribution anyway), then divided by
    N's weight. The cap is on the first scale, before that division: on DS1 (N's weight
    0.22) a cap of 20 lets S reach 48.6 and F and Q 89.9 (the models were chosen with the
    cap so; ``max_weight`` / N's weight is the cap on the weights returned)."""
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
    chunk_beats: int | None = PREDICT_CHUNK_BEATS,
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
        context (``context_beats``), so chunked scoring equals whole-record scoring
        (within float rounding). The default, :data:`PREDICT_CHUNK_BEATS`, bounds the
        memory a long record takes.

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
    prepared at the dataset's rate and with its filters; its ``source`` names the files
    read (:func:`~vitalgru.data.noise.noise_source`)."""
    if cfg.noise_augment <= 0:
        return None
    db = open_database(cfg.noise_database, cfg.ingest.physionet)
    filters = dataset.manifest.get("filters")
    if not isinstance(filters, dict):
        raise ValueError(f"{dataset.path}: manifest has no filter settings for the noise bank")
    bank = load_noise_bank(db, cfg.noise_records, dataset.fs, filters)
    source = noise_source(db, cfg.noise_records)
    logger.info("noise bank: %s (%s files, digest %s; %s)", ", ".join(bank.names),
                source["database"], source["digest"], source["verification"])  # fmt: skip
    return replace(bank, source=source)


def train_class_weights(
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


def fit_settings_of(cfg: ArrhythmiaTrainConfig, max_minutes: float | None) -> FitSettings:
    return FitSettings(
        max_epochs=cfg.max_epochs,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        warmup_frac=cfg.warmup_frac,
        grad_clip=cfg.grad_clip,
        patience=cfg.patience,
        monitor=cfg.monitor,
        mode=ARRHYTHMIA_MONITOR_KEYS[cfg.monitor],
        max_minutes=max_minutes,
        min_epochs=cfg.min_epochs,
        ema_decay=cfg.ema_decay,
    )


@kept_rng()  # the caller's random generators are put back afterwards
def fit_network(
    cfg: ArrhythmiaTrainConfig,
    train_recs: list[RecordBeats],
    val_recs: list[RecordBeats],
    n_samples: int,
    weights: torch.Tensor,
    fit_settings: FitSettings,
    callbacks: Sequence[Callback],
    noise: NoiseBank | None = None,
) -> tuple[ArrhythmiaGRU, FitResult]:
    """Train one network on ``train_recs`` (seeded by ``cfg.seed``), selecting its epoch on
    ``val_recs``; with no ``val_recs`` (a refit) the last epoch is kept."""
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
            logits, _delay_read(b, cfg.output_delay), weights, cfg.loss, cfg.focal_gamma,
            cfg.label_smoothing,
        )  # fmt: skip

    def evaluate(m: torch.nn.Module) -> dict[str, float]:
        if not val_recs:  # refit: the last epoch is the one kept
            n_evals[0] += 1
            return {"refit_epoch": float(n_evals[0])}
        return evaluate_records(m, val_recs, "val")  # type: ignore[arg-type]

    result = fit(model, batches, loss_fn, evaluate, fit_settings, steps, callbacks)
    return model, result
