"""Arrhythmia training on a few real MIT-BIH records: it must learn, and beat the
majority class on a held-out record."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import torch

from vitalgru.config import (
    ARRHYTHMIA_MONITOR_KEYS,
    ArrhythmiaDataConfig,
    ArrhythmiaTrainConfig,
    PhysioNetConfig,
)
from vitalgru.data.arrhythmia_dataset import BeatDataset, load_beat_dataset
from vitalgru.data.beat_features import N_RR_FEATURES, RR_FEATURES
from vitalgru.data.dataset_files import write_dataset
from vitalgru.data.ingest import process_record
from vitalgru.data.noise import noise_source
from vitalgru.io import open_database
from vitalgru.metrics.aami import CLASS_NAMES
from vitalgru.models.arrhythmia import ArrhythmiaEnsemble
from vitalgru.training import Callback
from vitalgru.training.arrhythmia import record_folds, train_arrhythmia
from vitalgru.training.arrhythmia_fit import (
    _augment,
    build_model,
    class_weights,
    evaluate_records,
    feature_settings,
    fit_network,
    fit_settings_of,
    predict_records,
    sequence_loss,
    with_simulated_af,
)

TRAIN = ("106", "119")  # DS1 records rich in V beats
HELD_OUT = ("223",)  # DS1 record of another patient: 2045 N, 473 V, 73 S, 14 F


@pytest.fixture(scope="module")
def tiny_dataset(physionet_mirror: Path, tmp_path_factory: pytest.TempPathFactory) -> BeatDataset:
    db = open_database("mitdb", PhysioNetConfig(mirror=physionet_mirror))
    cfg = ArrhythmiaDataConfig()
    items = [
        process_record(db.read_record(r), db.read_annotations(r), cfg, "DS1")
        for r in TRAIN + HELD_OUT
    ]
    out = tmp_path_factory.mktemp("mitdb-tiny")
    meta = {"database": "mitdb", "fs": 360.0, "lead": "MLII", "filters": cfg.filters.model_dump()}
    write_dataset(out, items, [], meta)
    return load_beat_dataset(out)


def _cfg(**kw: object) -> ArrhythmiaTrainConfig:
    base = dict(
        cv_folds=None,
        seeds_per_fold=1,
        workers=1,
        val_records=HELD_OUT,
        conv_widths=(8, 16),
        d_beat=24,
        hidden=24,
        seq_len=128,
        batch_size=8,
        sequences_per_epoch=48,
        max_epochs=5,
        min_epochs=5,
        patience=0,
        lr=3e-3,
        num_threads=1,
        ema_decay=0.8,  # 30 steps in all: the default 0.98 would still mostly be the init
        noise_augment=0.0,  # recorded noise has its own test
    )
    base.update(kw)
    return ArrhythmiaTrainConfig(**base)  # type: ignore[arg-type]


class TestTrainArrhythmia:
    def test_learns_and_beats_majority_on_held_out_patient(self, tiny_dataset: BeatDataset) -> None:
        res = train_arrhythmia(tiny_dataset, _cfg())
        losses = [h["train_loss"] for h in res.history]
        assert losses[-1] < 0.6 * losses[0], losses
        assert res.train_records == list(TRAIN) and res.val_records == list(HELD_OUT)
        held = tiny_dataset.records(list(HELD_OUT), feature_settings(_cfg()))
        y = held[0].labels
        majority = float(np.mean(y == np.bincount(y).argmax()))
        m = evaluate_records(res.model, held, "held")
        assert m["held_accuracy"] > majority + 0.05, (m["held_accuracy"], majority)
        assert m["held_v_f1"] > 0.6
        # logged preprocessing tells a scorer everything it must reproduce
        assert res.preprocessing["lookahead_beats"] == 1
        assert res.preprocessing["output_delay_beats"] == 1
        assert res.preprocessing["normalisation"]["template_beats"] == 32

    def test_every_monitor_a_config_takes_is_a_metric_of_each_epoch(
        self, tiny_dataset: BeatDataset
    ) -> None:
        # the config's list is what the epoch's evaluation returns: a name outside it failed
        # at the end of the first epoch, after the ingest
        cfg = _cfg()
        held = tiny_dataset.records(list(HELD_OUT), feature_settings(cfg))
        m = evaluate_records(build_model(cfg, int(tiny_dataset.windows.shape[1])), held, "val")
        assert set(ARRHYTHMIA_MONITOR_KEYS) <= set(m)
        assert fit_settings_of(_cfg(monitor="val_loss"), 1.0).mode == "min"
        assert fit_settings_of(_cfg(monitor="val_v_ppv"), 1.0).mode == "max"
        assert "train_loss" not in ARRHYTHMIA_MONITOR_KEYS  # not returned by the evaluation

    def test_a_refit_trains_with_its_own_records_weights_and_says_how_it_ended(
        self, tiny_dataset: BeatDataset, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # the refit on training + validation records reused the training share's class
        # weights, was reported as trained on the training records alone, and its own fit
        # (cut by the time budget or not) was thrown away
        from vitalgru.training import arrhythmia as training

        real, weights = training.fit_network, []

        def fit(cfg, train, val, n_samples, w, *args):  # type: ignore[no-untyped-def]
            weights.append(np.asarray(w))
            return real(cfg, train, val, n_samples, w, *args)

        monkeypatch.setattr(training, "fit_network", fit)
        cfg = _cfg(refit_full=True, max_epochs=2, min_epochs=2, sequences_per_epoch=16)
        res = train_arrhythmia(tiny_dataset, cfg)
        both = tiny_dataset.records(list(TRAIN + HELD_OUT), feature_settings(cfg))
        np.testing.assert_allclose(weights[1], training.train_class_weights(cfg, both))
        assert not np.allclose(weights[0], weights[1])  # 223's beats change them
        assert res.train_records == list(TRAIN + HELD_OUT)
        assert res.refit is not None and len(res.refit.history) == res.fit.best_epoch + 1
        assert res.refit.stop_reason in ("max_epochs", "time_budget")

    def test_seeded_runs_are_identical_and_stream(self, tiny_dataset: BeatDataset) -> None:
        cfg = _cfg(max_epochs=1, min_epochs=1, sequences_per_epoch=16)
        a = train_arrhythmia(tiny_dataset, cfg).model
        b = train_arrhythmia(tiny_dataset, cfg).model
        for k, v in a.state_dict().items():
            torch.testing.assert_close(v, b.state_dict()[k])
        # beat-by-beat with the hidden state carried equals the whole record at once
        held = tiny_dataset.records(list(HELD_OUT), feature_settings(cfg))
        held[0] = type(held[0])(
            "223", *(f[:300] for f in (held[0].x, held[0].labels, held[0].sample_idx))
        )
        whole = predict_records(a, held)[0]
        streamed = predict_records(a, held, chunk_beats=1)[0]
        np.testing.assert_allclose(streamed, whole, atol=1e-5)

    def test_the_callers_random_generators_are_left_as_they_were(
        self, tiny_dataset: BeatDataset
    ) -> None:
        # a training left torch and numpy seeded with cfg.seed: a notebook's next random
        # draw was the same after every training, whatever its own seed
        cfg = _cfg(max_epochs=1, min_epochs=1, sequences_per_epoch=16)
        for train in (
            lambda: train_arrhythmia(tiny_dataset, cfg),
            lambda: train_arrhythmia(tiny_dataset, cfg.model_copy(update={"cv_folds": 2})),
            lambda: fit_network(cfg, tiny_dataset.records(list(TRAIN), feature_settings(cfg)),
                                tiny_dataset.records(list(HELD_OUT), feature_settings(cfg)),
                                int(tiny_dataset.windows.shape[1]),
                                torch.ones(len(CLASS_NAMES)), fit_settings_of(cfg, None), ()),
        ):  # fmt: skip
            torch.manual_seed(1234)
            np.random.seed(1234)
            expected = (torch.rand(4), np.random.rand(4))
            torch.manual_seed(1234)
            np.random.seed(1234)
            train()
            torch.testing.assert_close(torch.rand(4), expected[0], rtol=0, atol=0)
            np.testing.assert_array_equal(np.random.rand(4), expected[1])

    def test_recorded_noise_reaches_training(
        self, tiny_dataset: BeatDataset, physionet_mirror: Path
    ) -> None:
        cfg = _cfg(max_epochs=1, min_epochs=1, sequences_per_epoch=16)
        noisy = cfg.model_copy(
            update={
                "noise_augment": 1.0,
                "ingest": cfg.ingest.model_copy(
                    update={"physionet": PhysioNetConfig(mirror=physionet_mirror)}
                ),
            }
        )
        clean, noised = train_arrhythmia(tiny_dataset, cfg), train_arrhythmia(tiny_dataset, noisy)
        a, b = clean.model.state_dict(), noised.model.state_dict()
        c = train_arrhythmia(tiny_dataset, noisy).model.state_dict()
        # the result names the noise files it read, for the run (none without noise)
        db = open_database("nstdb", PhysioNetConfig(mirror=physionet_mirror))
        assert clean.noise_source is None
        assert noised.noise_source == noise_source(db, noisy.noise_records)
        assert [f["name"] for f in noised.noise_source["files"]] == [
            "bw.hea",
            "bw.dat",
            "ma.hea",
            "ma.dat",
        ]
        assert any(not torch.equal(a[k], b[k]) for k in a)  # the noise changed the fit
        for k in b:  # and it is seeded like the rest
            torch.testing.assert_close(b[k], c[k])
        with pytest.raises(ValueError, match="low <= high"):
            _cfg(noise_snr_db=(12.0, 0.0))

    def test_simulated_af_reaches_training_and_is_seeded(self, tiny_dataset: BeatDataset) -> None:
        cfg = _cfg(max_epochs=1, min_epochs=1, sequences_per_epoch=16)
        train = tiny_dataset.records(list(TRAIN), feature_settings(cfg))
        recs = with_simulated_af(cfg.model_copy(update={"simulated_af": 0.5}), train, 360.0, 0)
        assert [r.record_id for r in recs] == ["106", "119", "106~af", "119~af"]
        assert with_simulated_af(cfg, train, 360.0, 0) == train  # off by default
        af = cfg.model_copy(update={"simulated_af": 0.5})
        a = train_arrhythmia(tiny_dataset, cfg).model.state_dict()
        b = train_arrhythmia(tiny_dataset, af).model.state_dict()
        c = train_arrhythmia(tiny_dataset, af).model.state_dict()
        assert any(not torch.equal(a[k], b[k]) for k in a)
        for k in b:
            torch.testing.assert_close(b[k], c[k])

    def test_rejects_validation_outside_ds1(self, tiny_dataset: BeatDataset) -> None:
        with pytest.raises(ValueError, match="not DS1"):
            train_arrhythmia(tiny_dataset, _cfg(val_records=("100",)))
        with pytest.raises(ValueError, match="no training records"):
            train_arrhythmia(tiny_dataset, _cfg(), records=list(HELD_OUT))


class TestCrossValidatedEnsemble:
    def test_folds_cover_records_once_and_spread_rare_classes(
        self, tiny_dataset: BeatDataset
    ) -> None:
        recs = tiny_dataset.records(list(TRAIN + HELD_OUT), feature_settings(_cfg()))
        folds = record_folds(recs, 3)
        assert sorted(r for f in folds for r in f) == sorted(TRAIN + HELD_OUT)
        assert all(len(f) == 1 for f in folds)
        assert folds == record_folds(list(reversed(recs)), 3)  # order-independent
        with pytest.raises(ValueError, match="folds"):
            record_folds(recs, 4)

    @pytest.mark.parametrize("cv_folds", [None, 2])
    def test_no_time_cap_trains_every_fit_without_a_budget(
        self, tiny_dataset: BeatDataset, monkeypatch: pytest.MonkeyPatch, cv_folds: int | None
    ) -> None:
        # max_minutes: null (as max_minutes_per_fit takes it for the early warning) was
        # refused by the config; now no fit, refit or fold network gets a budget
        from vitalgru.training import arrhythmia as training

        real, budgets = training.fit_network, []

        def fit(cfg, train, val, n_samples, w, settings, *args):  # type: ignore[no-untyped-def]
            budgets.append(settings.max_minutes)
            return real(cfg, train, val, n_samples, w, settings, *args)

        monkeypatch.setattr(training, "fit_network", fit)
        cfg = _cfg(max_minutes=None, refit_full=cv_folds is None, cv_folds=cv_folds,
                   max_epochs=1, min_epochs=1, sequences_per_epoch=16)  # fmt: skip
        res = train_arrhythmia(tiny_dataset, cfg)
        assert budgets == [None, None]  # the fit and its refit, or the two fold networks
        fits = res.fold_fits if cv_folds else [res.fit, res.refit]
        assert [f.stop_reason for f in fits] == ["max_epochs", "max_epochs"]

    def test_cv_ensemble_trains_scores_and_streams(self, tiny_dataset: BeatDataset) -> None:
        # (ungated, so the ensemble's output is exactly its members' mean)
        cfg = _cfg(
            cv_folds=3, max_epochs=2, min_epochs=2, sequences_per_epoch=32, rhythm_gate="off"
        )
        res = train_arrhythmia(tiny_dataset, cfg)
        assert isinstance(res.model, ArrhythmiaEnsemble) and len(res.model.members) == 3
        assert sorted(r for f in res.fold_records for r in f) == sorted(TRAIN + HELD_OUT)
        assert len(res.fold_fits) == 3 and {h["fold"] for h in res.history} == {0.0, 1.0, 2.0}
        # DS1 out-of-fold metrics cover every beat of the three records once.
        recs = tiny_dataset.records(list(TRAIN + HELD_OUT), feature_settings(cfg))
        assert res.val_metrics["val_n_beats"] == sum(len(r) for r in recs)
        # The ensemble's probabilities are the mean of its members'.
        held = tiny_dataset.records(list(HELD_OUT), feature_settings(cfg))
        held[0] = type(held[0])(
            "223", *(f[:200] for f in (held[0].x, held[0].labels, held[0].sample_idx))
        )
        ens = predict_records(res.model, held)[0]
        members = np.mean([predict_records(m, held)[0] for m in res.model.members], axis=0)
        np.testing.assert_allclose(ens, members, atol=1e-5)
        np.testing.assert_allclose(
            predict_records(res.model, held, chunk_beats=7)[0], ens, atol=1e-5
        )
        # Rebuilt from its config and weights, it gives the same scores.
        clone = ArrhythmiaEnsemble.from_config(res.model.config_dict())
        clone.load_state_dict(res.model.state_dict())
        np.testing.assert_allclose(predict_records(clone, held)[0], ens, atol=1e-6)


class _Events(Callback):
    def __init__(self) -> None:
        self.seen: list[tuple[str, float]] = []

    def on_fit_start(self, max_epochs: int, steps_per_epoch: int) -> None:
        self.seen.append(("start", float(max_epochs)))

    def on_epoch_end(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self.seen.append(("epoch", metrics["val_sv_f1"]))


class TestSeedMembers:
    def test_worker_processes_give_the_sequential_ensemble(self, tiny_dataset: BeatDataset) -> None:
        cfg = _cfg(cv_folds=3, seeds_per_fold=2, max_epochs=1, min_epochs=1, sequences_per_epoch=16)
        runs = []
        for workers in (1, 2):
            events = _Events()
            res = train_arrhythmia(
                tiny_dataset, cfg.model_copy(update={"workers": workers}), [events]
            )
            runs.append((res, events.seen))
        (seq, seq_events), (par, par_events) = runs
        assert len(seq.model.members) == 6 and len(seq.fold_fits) == 6
        assert [(h["fold"], h["member"]) for h in seq.history] == [
            (f, m) for f in (0.0, 1.0, 2.0) for m in (0.0, 1.0)
        ]
        # the two networks of a fold start from different seeds
        a, b = seq.model.members[0].state_dict(), seq.model.members[1].state_dict()
        assert any(not torch.equal(a[k], b[k]) for k in a)
        # two processes: the same weights, gates, metrics, and callback events in order
        for k, v in seq.model.state_dict().items():
            torch.testing.assert_close(par.model.state_dict()[k], v, rtol=0, atol=0)
        assert par.model.config_dict() == seq.model.config_dict()
        assert par.val_metrics == pytest.approx(seq.val_metrics, nan_ok=True)
        assert par_events == seq_events and len(seq_events) == 12

    def test_seeds_per_fold_needs_cross_validation(self) -> None:
        with pytest.raises(ValueError, match="seeds_per_fold 2 needs cv_folds"):
            _cfg(seeds_per_fold=2)


class TestLoss:
    def test_class_weights_and_padding(self) -> None:
        w = class_weights(np.array([0] * 90 + [2] * 10), power=1.0, max_weight=50.0)
        assert w[0] == pytest.approx(1.0) and w[2] == pytest.approx(9.0)
        logits = torch.zeros(1, 3, 5)
        labels = torch.tensor([[0, 2, -100]])
        # uniform logits: every counted beat costs log(5), padding ignored
        assert float(sequence_loss(logits, labels, w)) == pytest.approx(np.log(5), rel=1e-6)
        focal = sequence_loss(logits, labels, w, loss="focal", gamma=2.0)
        assert float(focal) == pytest.approx(np.log(5) * 0.8**2, rel=1e-6)
        with pytest.raises(ValueError, match="loss"):
            sequence_loss(logits, labels, w, loss="hinge")

    def test_a_short_sequences_last_beat_does_not_read_the_padding(self) -> None:
        from vitalgru.training.arrhythmia_fit import _delay_read

        batch = {"labels": torch.tensor([[0, 2, 1, 0], [2, 0, -100, -100]]),
                 "lengths": torch.tensor([4, 2])}  # fmt: skip
        # with output_delay 1 the short one's beat 1 read the state after a zero row (a
        # loss that depended on the sequences batched with it); the full one's last beat
        # reads its own state, as at a record's end
        assert _delay_read(batch, 1).tolist() == [[0, 2, 1, 0], [2, -100, -100, -100]]
        assert _delay_read(batch, 0).tolist() == batch["labels"].tolist()
        same = {"labels": batch["labels"][:1], "lengths": batch["lengths"][:1]}
        assert _delay_read(same, 1) is same["labels"]

    def test_n_or_s_beats_cost_the_summed_probability(self) -> None:
        w = torch.tensor([1.0, 4.0, 9.0, 1.0, 1.0])
        # "N or S" (-2) costs -log(p_N + p_S) at N's weight: log(5/2) on uniform logits
        uniform = sequence_loss(torch.zeros(1, 2, 5), torch.tensor([[-2, -100]]), w)
        assert float(uniform) == pytest.approx(np.log(2.5), rel=1e-6)
        # any split between N and S is right; V is not
        logits = torch.tensor([[[0.0, 8.0, -8.0, -8.0, -8.0], [-8.0, -8.0, 8.0, -8.0, -8.0]]])
        right = sequence_loss(logits[:, :1], torch.tensor([[-2]]), w)
        wrong = sequence_loss(logits[:, 1:], torch.tensor([[-2]]), w)
        assert float(right) < 0.01 and float(wrong) > 10
        # mixed with ordinary beats: one weighted mean over both kinds
        mixed = sequence_loss(logits, torch.tensor([[-2, 2]]), w)
        expected = (
            1.0 * float(right) + 9.0 * float(sequence_loss(logits[:, 1:], torch.tensor([[2]]), w))
        ) / 10.0
        assert float(mixed) == pytest.approx(expected, rel=1e-5)


class TestRateAugmentation:
    def test_one_rate_per_sequence_moves_only_the_absolute_rr(self) -> None:
        cfg = _cfg(augment_rate=0.2, augment_scale=0.0, augment_noise=0.0)
        x = torch.randn(6, 7, 20 + N_RR_FEATURES)
        batch = {"x": x.clone()}
        _augment(batch, cfg, torch.Generator().manual_seed(0))
        d = batch["x"] - x
        assert torch.equal(d[..., :20], torch.zeros_like(d[..., :20]))  # morphology exact
        moved = [RR_FEATURES.index("log_rr_prev"), RR_FEATURES.index("log_rr_next")]
        kept = [i for i in range(N_RR_FEATURES) if i not in moved]
        rr = d[..., 20:]
        assert torch.equal(rr[..., kept], torch.zeros_like(rr[..., kept]))  # ratios exact
        shift = rr[..., moved]
        # one factor per sequence, for every beat and both intervals, within the range
        assert torch.allclose(shift, shift[:, :1, :1].expand_as(shift), atol=1e-6)
        assert float(shift.abs().max()) <= 0.2 and float(shift.abs().max()) > 0
        assert len({round(float(v), 5) for v in shift[:, 0, 0]}) == 6
        off = {"x": x.clone()}
        _augment(off, _cfg(augment_scale=0.0, augment_noise=0.0), torch.Generator())
        assert torch.equal(off["x"], x)  # augment_rate 0 (the default) changes nothing


class TestUsableCpus:
    def test_fits_run_no_more_at_a_time_than_cpus_and_the_budget_follows(
        self, tiny_dataset: BeatDataset, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # workers: 2 on one CPU started two processes taking turns on it, each with its
        # own copy of the data, and gave each fit the budget of two running side by side
        import os

        from vitalgru.training import arrhythmia as training

        seen: list[tuple[int, list[float | None]]] = []
        real = training.run_fits

        def run_fits(fn, shared, tasks, workers, callbacks):  # type: ignore[no-untyped-def]
            seen.append((workers, [t.max_minutes for t in tasks]))
            return real(fn, shared, tasks, workers, callbacks)

        monkeypatch.setattr(training, "run_fits", run_fits)
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
        cfg = _cfg(cv_folds=2, workers=2, max_minutes=10.0, max_epochs=1, min_epochs=1,
                   sequences_per_epoch=16, rhythm_gate="off")  # fmt: skip
        train_arrhythmia(tiny_dataset, cfg)
        assert seen == [(1, [5.0, 5.0])]  # one at a time: each fit half of the 10 minutes
