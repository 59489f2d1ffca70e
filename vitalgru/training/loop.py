"""Generic fit loop: AdamW, warmup + cosine learning rate, gradient clipping, early
stopping on a validation metric, a wall-clock budget, and progress through callbacks.

Task modules (``vitalgru.training.arrhythmia``, ``vitalgru.training.early_warning``)
supply a loss function over a batch and an evaluation function returning
``dict[str, float]``; this module knows nothing about their data. Library code never
prints: progress goes to :class:`Callback` objects (:class:`TqdmProgress` shows bars).
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

# Open cpu_training blocks: denormal flushing stays on until the outermost one exits,
# which puts back the mode it found (a caller that had it on keeps it on).
_flush_depth = [0]
_flush_before = [False]


def _flushing() -> bool:
    """Whether torch flushes denormal floats to zero now (torch has no getter: a denormal
    float32 is made and looked at)."""
    tiny = torch.tensor([1e-39], dtype=torch.float32) * torch.tensor([1.0])
    return bool(tiny[0] == 0)


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity (``taskset``, a container's
    ``--cpuset-cpus``), which ``os.cpu_count()`` ignores; a CPU quota (``--cpus``) is
    not seen by either."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # no affinity outside Linux
        return os.cpu_count() or 1


@contextmanager
def cpu_training(threads: int) -> Iterator[None]:
    """Use ``threads`` intra-op threads, at most :func:`usable_cpus`, and flush denormals
    for the block, then restore.

    More threads than CPUs only take turns on them (``torch_threads: 2`` in a container
    given one CPU), and torch's own default follows the affinity, not the configs.
    Flushing denormals made a GRU training step about 5x faster on these CPUs: saturated
    recurrent gates produce denormal floats that the CPU handles in microcode. It is a
    floating-point mode, put back as it was when the outermost such block exits.
    """
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if threads > (cpus := usable_cpus()):
        logger.info("training with %d torch threads, not %d (CPUs usable: %d)",
                    cpus, threads, cpus)  # fmt: skip
        threads = cpus
    old = torch.get_num_threads()
    if _flush_depth[0] == 0:  # the caller's mode, put back by the outermost block
        _flush_before[0] = _flushing()
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    _flush_depth[0] += 1
    try:
        yield
    finally:
        torch.set_num_threads(old)
        _flush_depth[0] -= 1
        if _flush_depth[0] == 0:  # nested blocks leave the mode to the outermost one
            torch.set_flush_denormal(_flush_before[0])


logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitSettings:
    """Optimisation and stopping settings.

    Attributes
    ----------
    max_epochs : int
        Upper bound on epochs; the learning-rate schedule spans this many.
    lr : float
        Peak learning rate of AdamW (Loshchilov & Hutter 2019).
    weight_decay : float
        Decoupled weight decay.
    warmup_frac : float
        Fraction of all steps spent in linear warm-up before the cosine decay.
    grad_clip : float or None
        Maximum global gradient norm (None: no clipping).
    patience : int
        Epochs without improvement of ``monitor`` before stopping (0: never stop early).
    monitor : str
        Key of the evaluation dict that selects the best epoch.
    mode : {"max", "min"}
        Whether larger or smaller ``monitor`` is better.
    max_minutes : float or None
        Wall-clock budget; training stops after the epoch that exceeds it.
    min_epochs : int
        Epochs always run before early stopping may trigger.
    ema_decay : float or None
        Keep an exponential moving average of the weights (Polyak & Juditsky 1992) with
        this decay per step, and evaluate and keep *those* weights; averaging smooths the
        epoch-to-epoch noise that makes early stopping on a small validation set pick a
        lucky epoch. ``None``: the raw weights.
    """

    max_epochs: int = 20
    lr: float = 2e-3
    weight_decay: float = 1e-2
    warmup_frac: float = 0.05
    grad_clip: float | None = 1.0
    patience: int = 5
    monitor: str = "val_loss"
    mode: Literal["max", "min"] = "min"
    max_minutes: float | None = None
    min_epochs: int = 1
    ema_decay: float | None = None

    def __post_init__(self) -> None:
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1) or None, got {self.ema_decay}")
        if self.max_epochs < 1:
            raise ValueError(f"max_epochs must be >= 1, got {self.max_epochs}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.warmup_frac < 1:
            raise ValueError(f"warmup_frac must be in [0, 1), got {self.warmup_frac}")
        if self.mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {self.mode!r}")
        if self.patience < 0:
            raise ValueError(f"patience must be >= 0, got {self.patience}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            # 0 zeroed every gradient (nothing learnt); below 0 climbed the loss
            raise ValueError(f"grad_clip must be > 0 or None (no clipping), got {self.grad_clip}")


class Callback:
    """Hooks called by :func:`fit`; override what you need."""

    def on_fit_start(self, max_epochs: int, steps_per_epoch: int) -> None: ...

    def on_epoch_start(self, epoch: int) -> None: ...

    def on_batch_end(self, epoch: int, step: int, loss: float) -> None: ...

    def on_epoch_end(self, epoch: int, metrics: Mapping[str, float]) -> None: ...

    def on_fit_end(self, result: FitResult) -> None: ...


class TqdmProgress(Callback):
    """Progress bars through tqdm (one per epoch); honours ``TQDM_DISABLE``.

    At an epoch's end the bar shows ``show`` first (the loss, the monitored metric, the
    learning rate; those present), then other metrics up to six. Several fits in a row
    (cross-validation) are told apart in the description: ``fold i member j`` with
    ``fits_per_fold``, else ``fit k`` from the second on."""

    def __init__(
        self,
        desc: str = "train",
        leave: bool = False,
        show: Sequence[str] = ("train_loss", "lr"),
        fits_per_fold: int | None = None,
    ) -> None:
        self.desc = desc
        self.leave = leave
        self.show = tuple(show)
        self.fits_per_fold = fits_per_fold
        self._bar: Any = None
        self._steps = 0
        self._fit = -1

    def on_fit_start(self, max_epochs: int, steps_per_epoch: int) -> None:
        self._steps = steps_per_epoch
        self._max_epochs = max_epochs
        self._fit += 1

    def _which(self) -> str:
        if self.fits_per_fold:
            fold, member = divmod(self._fit, self.fits_per_fold)
            return f" fold {fold + 1} member {member + 1}"
        return f" fit {self._fit + 1}" if self._fit > 0 else ""

    def on_epoch_start(self, epoch: int) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(
            total=self._steps,
            desc=f"{self.desc}{self._which()} {epoch + 1}/{self._max_epochs}",
            leave=self.leave,
        )

    def on_batch_end(self, epoch: int, step: int, loss: float) -> None:
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    def on_epoch_end(self, epoch: int, metrics: Mapping[str, float]) -> None:
        if self._bar is not None:
            keys = [k for k in self.show if k in metrics]
            keys += [k for k in metrics if k not in keys][: max(0, 6 - len(keys))]
            self._bar.set_postfix({k: f"{metrics[k]:.4g}" for k in keys}, refresh=True)
            self._bar.close()
            self._bar = None


@dataclass
class FitResult:
    """Outcome of :func:`fit`. The model is left holding the best epoch's weights."""

    best_epoch: int
    best_metrics: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    elapsed_s: float = 0.0
    stop_reason: str = "max_epochs"


def warmup_cosine(total_steps: int, warmup_frac: float) -> Callable[[int], float]:
    """LR multiplier: linear warm-up to 1 over ``warmup_frac`` of the steps, then cosine
    decay to 0 (Loshchilov & Hutter 2017, SGDR without restarts)."""
    warm = max(1, int(round(total_steps * warmup_frac)))

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        prog = min(1.0, (step - warm) / max(1, total_steps - warm))
        return 0.5 * (1.0 + math.cos(math.pi * prog))

    return f


def budget_used(epoch: int, elapsed_s: float, max_minutes: float | None) -> bool:
    """Whether a fit stops after ``epoch`` (0-based), ``elapsed_s`` seconds in, on its
    wall-clock budget of ``max_minutes`` (``None``: no budget); logs the stop.

    Checked between epochs only, and the learning rate follows the steps, never the clock:
    the clock decides at most where a fit stops, so a fit the budget does not stop gives
    the same weights on a busy machine as on a quiet one.
    """
    if max_minutes is None or elapsed_s <= 60.0 * max_minutes:
        return False
    logger.warning(
        "stopping after epoch %d: wall-clock budget of %.1f min used", epoch + 1, max_minutes
    )
    return True


def _better(a: float, b: float | None, mode: str) -> bool:
    if b is None or math.isnan(b):
        return not math.isnan(a)
    return a > b if mode == "max" else a < b


def fit(
    model: nn.Module,
    train_batches: Callable[[int], Iterable[Any]],
    loss_fn: Callable[[nn.Module, Any], torch.Tensor],
    evaluate: Callable[[nn.Module], Mapping[str, float]],
    settings: FitSettings,
    steps_per_epoch: int,
    callbacks: Sequence[Callback] = (),
) -> FitResult:
    """Train ``model`` and keep the weights of the best validation epoch.

    Parameters
    ----------
    model : torch.nn.Module
        Trained in place; on return it holds the best epoch's weights, in eval mode.
    train_batches : callable
        ``train_batches(epoch) -> iterable of batches`` (a fresh, seeded pass per epoch).
    loss_fn : callable
        ``loss_fn(model, batch) -> scalar tensor`` (the model is in train mode).
    evaluate : callable
        ``evaluate(model) -> {metric: value}`` on held-out data (the model is in eval
        mode, under ``torch.no_grad``); must contain ``settings.monitor``.
    settings : FitSettings
    steps_per_epoch : int
        Batches per epoch (sizes the learning-rate schedule and progress bars).
    callbacks : sequence of Callback

    Returns
    -------
    FitResult
    """
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
    params = [p for p in model.parameters() if p.requires_grad]
    # No weight decay on biases and normalisation gains (common AdamW practice).
    decay = [p for p in params if p.dim() > 1]
    no_decay = [p for p in params if p.dim() <= 1]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": settings.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=settings.lr,
    )
    total = settings.max_epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(total, settings.warmup_frac))
    for cb in callbacks:
        cb.on_fit_start(settings.max_epochs, steps_per_epoch)

    t0 = time.perf_counter()
    best: float | None = None
    best_state: dict[str, torch.Tensor] | None = None
    result = FitResult(best_epoch=-1, best_metrics={})
    since_best = 0
    live = model.state_dict()  # tensors share storage with the parameters and buffers
    ema = (
        {k: v.detach().clone() for k, v in live.items() if v.dtype.is_floating_point}
        if settings.ema_decay is not None
        else None
    )
    for epoch in range(settings.max_epochs):
        for cb in callbacks:
            cb.on_epoch_start(epoch)
        model.train()
        losses = []
        for step, batch in enumerate(train_batches(epoch)):
            loss = loss_fn(model, batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"non-finite training loss at epoch {epoch + 1} step {step + 1}; "
                    "lower lr or check the inputs for NaN"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if settings.grad_clip is not None:
                nn.utils.clip_grad_norm_(params, settings.grad_clip)
            opt.step()
            sched.step()
            if ema is not None:
                with torch.no_grad():
                    for k, v in ema.items():
                        v.mul_(settings.ema_decay).add_(live[k], alpha=1.0 - settings.ema_decay)
            lv = float(loss.detach())
            losses.append(lv)
            for cb in callbacks:
                cb.on_batch_end(epoch, step, lv)
        model.eval()
        raw = None
        if ema is not None:  # evaluate (and keep) the averaged weights
            raw = {k: live[k].detach().clone() for k in ema}
            model.load_state_dict(ema, strict=False)
        with torch.no_grad():
            metrics = dict(evaluate(model))
        if settings.monitor not in metrics:
            raise KeyError(
                f"evaluate() returned no {settings.monitor!r}; it returned {sorted(metrics)}"
            )
        if not losses:  # an epoch of no batch learnt nothing: not a perfect one
            raise ValueError(f"epoch {epoch + 1} had no training batch: no data to fit on")
        metrics["train_loss"] = float(sum(losses) / len(losses))
        metrics["lr"] = float(sched.get_last_lr()[0])
        metrics["epoch"] = float(epoch + 1)
        metrics["elapsed_s"] = time.perf_counter() - t0
        result.history.append(metrics)
        value = metrics[settings.monitor]
        if _better(value, best, settings.mode):
            best = value
            best_state = copy.deepcopy(model.state_dict())
            result.best_epoch = epoch
            result.best_metrics = dict(metrics)
            since_best = 0
        else:
            since_best += 1
        if raw is not None:
            model.load_state_dict(raw, strict=False)
        logger.info("epoch %d: %s", epoch + 1, {k: round(v, 4) for k, v in metrics.items()})
        for cb in callbacks:
            cb.on_epoch_end(epoch, metrics)
        if (
            settings.patience > 0
            and since_best >= settings.patience
            and epoch + 1 >= settings.min_epochs
        ):
            result.stop_reason = "early_stopping"
            break
        if budget_used(epoch, metrics["elapsed_s"], settings.max_minutes):
            result.stop_reason = "time_budget"
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    result.elapsed_s = time.perf_counter() - t0
    for cb in callbacks:
        cb.on_fit_end(result)
    return result
