"""Generic fit loop: learns, keeps the best epoch, stops early, reports progress."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
import torch
from torch import nn

from vitalgru.training.loop import Callback, FitSettings, TqdmProgress, fit, warmup_cosine


def _problem(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 4, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    return x, y


class _Recorder(Callback):
    def __init__(self) -> None:
        self.epochs: list[Mapping[str, float]] = []
        self.batches = 0

    def on_batch_end(self, epoch: int, step: int, loss: float) -> None:
        self.batches += 1

    def on_epoch_end(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self.epochs.append(dict(metrics))


def _run(settings: FitSettings, evaluate=None, seed: int = 0):  # type: ignore[no-untyped-def]
    torch.manual_seed(seed)
    x, y = _problem()
    xv, yv = _problem(1)
    model = nn.Linear(4, 2)

    def batches(epoch: int):  # type: ignore[no-untyped-def]
        g = torch.Generator().manual_seed(epoch)
        perm = torch.randperm(256, generator=g)
        for i in range(0, 256, 32):
            idx = perm[i : i + 32]
            yield x[idx], y[idx]

    def loss_fn(m: nn.Module, b) -> torch.Tensor:  # type: ignore[no-untyped-def]
        return nn.functional.cross_entropy(m(b[0]), b[1])

    def default_eval(m: nn.Module) -> dict[str, float]:
        return {
            "val_loss": float(nn.functional.cross_entropy(m(xv), yv)),
            "val_acc": float((m(xv).argmax(1) == yv).float().mean()),
        }

    rec = _Recorder()
    res = fit(model, batches, loss_fn, evaluate or default_eval, settings, 8, [rec])
    return model, res, rec


class TestFit:
    def test_learns_and_reports(self) -> None:
        _, res, rec = _run(FitSettings(max_epochs=6, lr=0.05, patience=0))
        assert len(rec.epochs) == 6 and rec.batches == 48
        assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
        assert res.best_metrics["val_loss"] == min(h["val_loss"] for h in res.history)
        assert res.best_metrics["val_acc"] > 0.9

    def test_reproducible(self) -> None:
        m1, _, _ = _run(FitSettings(max_epochs=2, lr=0.05))
        m2, _, _ = _run(FitSettings(max_epochs=2, lr=0.05))
        torch.testing.assert_close(m1.weight, m2.weight)

    def test_keeps_best_epoch_and_stops_early(self) -> None:
        scores = iter([0.5, 0.9, 0.4, 0.3, 0.2, 0.1, 0.0])
        snapshots: list[torch.Tensor] = []

        def evaluate(m: nn.Module) -> dict[str, float]:
            snapshots.append(m.weight.detach().clone())
            return {"score": next(scores)}

        model, res, rec = _run(
            FitSettings(max_epochs=7, lr=0.05, patience=2, monitor="score", mode="max"),
            evaluate,
        )
        assert res.best_epoch == 1 and res.stop_reason == "early_stopping"
        assert len(rec.epochs) == 4
        torch.testing.assert_close(model.weight, snapshots[1])

    def test_a_plateau_keeps_the_first_epoch_and_stops_early(self) -> None:
        """An epoch that only ties the best is no improvement: taking ties would keep the
        last of a flat run's epochs and never stop early on a plateau."""
        _, res, rec = _run(
            FitSettings(max_epochs=8, lr=0.05, patience=2, monitor="val_loss"),
            lambda m: {"val_loss": 0.5},
        )
        assert res.best_epoch == 0 and res.stop_reason == "early_stopping"
        assert len(rec.epochs) == 3

    def test_min_epochs_counts_the_epochs_run(self) -> None:
        """With min_epochs 4 a loss that only worsens stops after exactly 4 epochs: counting
        from 0 would train one epoch more than configured."""
        vals = iter(range(100))
        _, res, rec = _run(
            FitSettings(max_epochs=10, lr=0.05, patience=1, min_epochs=4, monitor="val_loss"),
            lambda m: {"val_loss": float(next(vals))},
        )
        assert res.stop_reason == "early_stopping" and len(rec.epochs) == 4

    def test_time_budget_and_missing_monitor(self) -> None:
        _, res, _ = _run(FitSettings(max_epochs=5, max_minutes=1e-9, monitor="val_loss"))
        assert res.stop_reason == "time_budget" and len(res.history) == 1
        with pytest.raises(KeyError, match="nope"):
            _run(FitSettings(max_epochs=1, monitor="nope"))

    def test_settings_validation(self) -> None:
        with pytest.raises(ValueError, match="max_epochs"):
            FitSettings(max_epochs=0)
        with pytest.raises(ValueError, match="mode"):
            FitSettings(mode="up")  # type: ignore[arg-type]
        for clip in (0.0, -1.0):  # zeroed every gradient, or climbed the loss
            with pytest.raises(ValueError, match="grad_clip"):
                FitSettings(grad_clip=clip)
        assert FitSettings(grad_clip=None).grad_clip is None

    def test_an_epoch_without_a_batch_is_an_error_not_a_perfect_epoch(self) -> None:
        model = nn.Linear(4, 2)
        with pytest.raises(ValueError, match="no training batch"):  # train_loss 0.0 before
            fit(model, lambda epoch: iter(()), lambda m, b: m(b).sum(),
                lambda m: {"val_loss": 1.0}, FitSettings(max_epochs=2), 1)  # fmt: skip

    def test_the_callers_denormal_mode_is_put_back(self) -> None:
        from vitalgru.training.loop import _flushing, cpu_training

        for mode in (True, False):
            torch.set_flush_denormal(mode)
            with cpu_training(1):
                assert _flushing()
            assert _flushing() is mode  # always off after the block before
        torch.set_flush_denormal(False)


class TestWarmupCosine:
    def test_shape(self) -> None:
        f = warmup_cosine(100, 0.1)
        assert f(0) == pytest.approx(0.1)
        assert f(9) == pytest.approx(1.0)
        assert f(10) == pytest.approx(1.0)
        assert f(55) == pytest.approx(0.5, abs=0.02)
        assert f(100) == pytest.approx(0.0, abs=1e-9)


class TestWeightAveraging:
    def test_ema_weights_are_evaluated_and_kept(self) -> None:
        seen: list[torch.Tensor] = []

        def evaluate(m: nn.Module) -> dict[str, float]:
            seen.append(m.weight.detach().clone())
            return {"score": float(len(seen))}  # last epoch is best

        model, res, _ = _run(
            FitSettings(max_epochs=3, lr=0.05, monitor="score", mode="max", ema_decay=0.9),
            evaluate,
        )
        raw, _, _ = _run(
            FitSettings(max_epochs=3, lr=0.05, monitor="score", mode="max"),
            lambda m: {"score": 1.0},
        )
        torch.testing.assert_close(model.weight, seen[-1])
        # the averaged weights lag the raw ones, so they differ
        assert not torch.allclose(model.weight, raw.weight)
        with pytest.raises(ValueError, match="ema_decay"):
            FitSettings(ema_decay=1.0)


class _Bar:
    """Stands in for a tqdm bar: what it was told."""

    made: list[_Bar] = []

    def __init__(self, total: int, desc: str, leave: bool) -> None:
        self.desc, self.postfix = desc, {}
        _Bar.made.append(self)

    def update(self, n: int) -> None:
        pass

    def set_postfix(self, shown: dict | None = None, refresh: bool = False, **kw: str) -> None:
        self.postfix = dict(shown or kw)

    def close(self) -> None:
        pass


def test_the_progress_bar_shows_the_loss_and_the_monitored_metric_per_network(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # it showed the first six metrics (beat counts, N's figures), never the loss or the
    # metric early stopping watched, and twelve fits all read "arrhythmia 1/30"
    import tqdm.auto

    monkeypatch.setattr(tqdm.auto, "tqdm", _Bar)
    _Bar.made = []
    bar = TqdmProgress("arrhythmia", show=("train_loss", "val_sv_f1", "lr"), fits_per_fold=3)
    metrics = {f"val_n_{k}": 1.0 for k in "abcdefg"} | {"val_sv_f1": 0.5, "train_loss": 0.25,
                                                        "lr": 1e-3}  # fmt: skip
    for _ in range(4):
        bar.on_fit_start(2, 1)
        bar.on_epoch_start(0)
        bar.on_epoch_end(0, metrics)
    assert [b.desc for b in _Bar.made] == ["arrhythmia fold 1 member 1 1/2",
                                           "arrhythmia fold 1 member 2 1/2",
                                           "arrhythmia fold 1 member 3 1/2",
                                           "arrhythmia fold 2 member 1 1/2"]  # fmt: skip
    shown = list(_Bar.made[0].postfix)
    assert shown[:3] == ["train_loss", "val_sv_f1", "lr"] and len(shown) == 6
    single = TqdmProgress("train")
    for _ in range(2):
        single.on_fit_start(1, 1)
        single.on_epoch_start(0)
    assert [b.desc for b in _Bar.made[4:]] == ["train 1/1", "train fit 2 1/1"]
