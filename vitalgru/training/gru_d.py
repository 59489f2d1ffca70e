"""Training and prediction of the GRU-D sepsis early-warning network
(:class:`vitalgru.models.early_warning.GRUDEarlyWarning`); the cross-validation and final
fits that use it, beside the baselines, are :mod:`vitalgru.training.early_warning`.

Patients are batched by similar length (sorted, then cut into batches whose order is
shuffled each epoch) so padding stays small. The loss is hour-level binary cross-entropy
with a weight on septic-labelled hours (``pos_weight``), masked on padding. Early
stopping watches the normalized utility (best threshold) on a validation split of the
training patients; the threshold is then fixed on that same validation split, which is
never part of the data a result is reported on.

The learning rate warms up linearly, then follows a cosine decay over ``max_epochs``,
step by step: it never reads the clock, so on one machine a fit is the same busy or
quiet. The wall-clock budget ``max_minutes`` only stops the fit after the epoch that used
it up (:func:`vitalgru.training.loop.budget_used`, as for every network here; the result
says ``"time_budget"``): only such a fit's length depends on the machine's speed and load.
(The schedule once annealed over whichever ran out first, the epochs or the budget: an
epoch slower than ``max_minutes / max_epochs`` then set the learning rate by the clock,
and two identical fits that the budget never stopped gave different weights.)
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from vitalgru.data.gru_d_inputs import SequenceArrays
from vitalgru.metrics.ranking import auroc
from vitalgru.metrics.utility import OFFICIAL, best_threshold, row_utilities
from vitalgru.models.early_warning import GRUDEarlyWarning
from vitalgru.training.loop import budget_used
from vitalgru.training.rng import kept_rng

__all__ = ["FitResult", "GRUTrainParams", "fit_gru_d", "predict_scores", "utility_targets"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GRUTrainParams:
    """Optimisation settings of one GRU-D fit."""

    hidden_size: int = 64
    dropout: float = 0.1
    lr: float = 1e-2
    weight_decay: float = 1e-5
    batch_size: int = 32
    max_epochs: int = 12
    patience: int = 3
    pos_weight: float = 4.0
    # wall-clock cap of one fit, checked after each epoch (None: no cap)
    max_minutes: float | None = 3.0
    max_len: int = 336  # hours; longer stays are truncated for training only
    grad_clip: float = 1.0
    seed: int = 0
    # "label": BCE on SepsisLabel with ``pos_weight`` on septic hours. "utility": BCE on
    # whether an alarm would gain utility at that hour, each hour weighted by how much
    # utility is at stake there (see :func:`utility_targets`); ``pos_weight`` is unused.
    target: str = "label"


def utility_targets(labels: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cost-sensitive targets that make the loss the challenge's expected utility.

    At every hour an alarm earns ``u_pos`` and silence ``u_neg`` (the official utility,
    :func:`vitalgru.metrics.utility.row_utilities`). The target is 1 where the alarm is
    worth more, and the hour's weight is the utility at stake, ``|u_pos - u_neg|``:
    0.05 for a non-septic hour; for a septic stay 0.05 up to 12 h before onset (an early
    alarm costs a false alarm's u_fp there), 0 at 12 h before, 1 at 6 h before (an alarm
    earns 1, a miss costs nothing yet), 2 at 3 h after (an alarm earns nothing more, a miss
    costs 2), and 0 once the utility window has closed. Unlike SepsisLabel, the hours
    12 to 6 before onset count as positives (an alarm there already earns utility).
    A weighted cross-entropy with these targets is minimised by a risk whose 0.5 crossing
    is the utility-optimal alarm.

    Returns
    -------
    target, weight : numpy.ndarray
        ``(n_rows,)`` float32 each; weights scaled so that a non-septic hour weighs 1.
    """
    u_pos, u_neg = row_utilities(np.asarray(labels).astype(np.int8), offsets)
    gain = u_pos - u_neg
    target = (gain > 0).astype(np.float32)
    weight = (np.abs(gain) / abs(OFFICIAL.u_fp)).astype(np.float32)
    return target, weight


@dataclass
class FitResult:
    """A fitted network and what happened while fitting it."""

    model: GRUDEarlyWarning
    threshold: float
    val_utility: float
    val_auroc: float
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0
    #: why the epochs ended: ``"max_epochs"``, ``"early_stopping"`` (``patience`` epochs
    #: without a better validation utility) or ``"time_budget"`` (stopped after the epoch
    #: that used up ``max_minutes``)
    stop_reason: str = "max_epochs"


def _batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    order = np.argsort(lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, order.size, batch_size)]


def _pad(
    data: SequenceArrays,
    idx: np.ndarray,
    max_len: int | None,
    target: np.ndarray | None = None,
    weight: np.ndarray | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Padded ``(x, target, weight)`` of patients ``idx``; weight 0 on padding (1 on
    real hours unless ``weight`` is given), target ``data.y`` unless given."""
    off = data.offsets
    lengths = off[idx + 1] - off[idx]
    if max_len is not None:
        lengths = np.minimum(lengths, max_len)
    t_max = int(lengths.max()) if lengths.size else 0
    tgt = data.y if target is None else target
    x = np.zeros((idx.size, t_max, data.x.shape[1]), np.float32)
    y = np.zeros((idx.size, t_max), np.float32)
    w = np.zeros((idx.size, t_max), np.float32)
    for k, (i, n) in enumerate(zip(idx, lengths, strict=True)):
        a = off[i]
        x[k, :n] = data.x[a : a + n]
        y[k, :n] = tgt[a : a + n]
        w[k, :n] = 1.0 if weight is None else weight[a : a + n]
    return torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(w)


@torch.no_grad()
def predict_scores(model: nn.Module, data: SequenceArrays, batch_size: int = 256) -> np.ndarray:
    """Hourly risk (sigmoid of the logit) for every row of ``data``.

    Returns
    -------
    numpy.ndarray
        ``(n_rows,)`` float64 in [0, 1], aligned with ``data.y``.
    """
    was_training = model.training
    model.eval()
    out = np.zeros(data.x.shape[0], np.float64)
    lengths = np.diff(data.offsets)
    for idx in _batches(lengths, batch_size):
        x, _, _ = _pad(data, idx, None)
        logits, _ = model(x)
        p = torch.sigmoid(logits[..., 0]).numpy()
        for k, i in enumerate(idx):
            a, b = data.offsets[i], data.offsets[i + 1]
            out[a:b] = p[k, : b - a]
    model.train(was_training)
    return out


@kept_rng()  # the caller's random generators are put back afterwards
def fit_gru_d(
    train: SequenceArrays,
    val: SequenceArrays,
    params: GRUTrainParams = GRUTrainParams(),
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> FitResult:
    """Fit a :class:`GRUDEarlyWarning` with early stopping on validation utility.

    Parameters
    ----------
    train, val : SequenceArrays
        Disjoint patients; ``val`` chooses the epoch and the alarm threshold.
    params : GRUTrainParams
    on_epoch : callable, optional
        Called with each epoch's metrics (``epoch``, ``train_loss``, ``val_utility``,
        ``val_auroc``, ``seconds``).

    Returns
    -------
    FitResult
    """
    if train.x.shape[1] != val.x.shape[1]:
        raise ValueError("train and val arrays have different feature layouts")
    if not np.any(val.y > 0):
        raise ValueError("the validation split has no septic hour: cannot choose a threshold")
    if not np.any(train.y > 0):
        raise ValueError("the training split has no septic hour: nothing to learn sepsis from")
    torch.manual_seed(params.seed)
    rng = np.random.default_rng(params.seed)
    model = GRUDEarlyWarning(train.n_features, train.n_static, params.hidden_size, params.dropout)
    opt = torch.optim.AdamW(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    lengths = np.minimum(np.diff(train.offsets), params.max_len)
    batches = _batches(lengths, params.batch_size)
    steps_per_epoch = len(batches)
    total_steps = max(1, steps_per_epoch * params.max_epochs)
    if params.target == "label":
        target, weight = train.y, None
        pos_weight: torch.Tensor | None = torch.tensor(params.pos_weight)
    elif params.target == "utility":
        target, weight = utility_targets(train.y, train.offsets)
        pos_weight = None
    else:
        raise ValueError(f"target must be 'label' or 'utility', got {params.target!r}")
    t0 = time.perf_counter()
    best: tuple[float, int, dict[str, Any]] | None = None
    history: list[dict[str, float]] = []
    bad_epochs = 0
    val_off = val.offsets
    step = 0
    stop_reason = "max_epochs"
    for epoch in range(params.max_epochs):
        model.train()
        total, count = 0.0, 0.0
        for bi in rng.permutation(len(batches)):
            # Linear warm-up, then cosine decay over the steps of max_epochs; by the steps
            # alone, so the clock cannot change the weights (it only stops, below).
            progress = step / total_steps
            warm = min(1.0, (step + 1) / max(1.0, 0.03 * total_steps))
            for g in opt.param_groups:
                g["lr"] = params.lr * warm * 0.5 * (1.0 + math.cos(math.pi * progress))
            step += 1
            x, y, valid = _pad(train, batches[bi], params.max_len, target, weight)
            logits, _ = model(x)
            loss_el = nn.functional.binary_cross_entropy_with_logits(
                logits[..., 0], y, pos_weight=pos_weight, reduction="none"
            )
            n_hours = float(max(1, lengths[batches[bi]].sum()))
            loss = (loss_el * valid).sum() / n_hours
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), params.grad_clip)
            opt.step()
            total += float(loss.detach()) * n_hours
            count += n_hours
        scores = predict_scores(model, val)
        thr, util = best_threshold(val.y.astype(np.int8), scores, val_off)
        auc = auroc(val.y.astype(np.int8), scores)
        rec = {
            "epoch": float(epoch),
            "train_loss": total / max(count, 1.0),
            "val_utility": util,
            "val_auroc": auc,
            "seconds": time.perf_counter() - t0,
        }
        history.append(rec)
        logger.info("epoch %d %s", epoch, rec)
        if on_epoch is not None:
            on_epoch(rec)
        if best is None or util > best[0]:
            best = (util, epoch, copy.deepcopy(model.state_dict()))
            bad_epochs = 0
        else:
            bad_epochs += 1
        # patience 0: no early stopping, as in training.loop.fit (it stopped after one)
        if 0 < params.patience <= bad_epochs:
            stop_reason = "early_stopping"
            break
        if budget_used(epoch, rec["seconds"], params.max_minutes):
            stop_reason = "time_budget"
            break
    if best is None:
        raise ValueError("max_epochs must be >= 1")
    model.load_state_dict(best[2])
    model.eval()
    scores = predict_scores(model, val)
    thr, util = best_threshold(val.y.astype(np.int8), scores, val_off)
    return FitResult(
        model=model,
        threshold=thr,
        val_utility=util,
        val_auroc=auroc(val.y.astype(np.int8), scores),
        history=history,
        best_epoch=best[1],
        seconds=time.perf_counter() - t0,
        stop_reason=stop_reason,
    )
