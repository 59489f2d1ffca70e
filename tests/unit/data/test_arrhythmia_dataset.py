"""Beat-sequence batching and simulated atrial fibrillation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vitalgru.data.arrhythmia_dataset import (
    IGNORE_LABEL,
    SUPRAVENTRICULAR_LABEL,
    BeatSequenceDataset,
    RecordBeats,
    collate_beat_sequences,
    data_config_from_preprocessing,
    simulated_af_record,
)
from vitalgru.data.beat_features import (
    N_RR_FEATURES,
    RR_FEATURES,
    FeatureSettings,
    beat_features,
    rr_features,
)


def _beats(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(n, 30)).astype(np.float32)
    idx = np.cumsum(rng.integers(200, 400, size=n))
    return w, idx


class TestSequences:
    def test_crops_and_padding(self) -> None:
        recs = [
            RecordBeats(str(i), np.full((n, 5), i, np.float32), np.arange(n) % 5, np.arange(n))
            for i, n in ((1, 40), (2, 7))
        ]
        ds = BeatSequenceDataset(recs, seq_len=10, n_items=20, seed=3)
        items = [ds[i] for i in range(len(ds))]
        for it in items:
            rid = int(it["record"])
            assert it["x"].shape[0] == (10 if rid == 1 else 7)
            assert torch.all(it["x"] == rid)
        b = collate_beat_sequences([items[0], BeatSequenceDataset(recs)[1]])
        assert b["x"].shape[0] == 2 and b["labels"].shape == b["x"].shape[:2]
        n2 = int(b["lengths"][1])
        assert n2 == 7 and torch.all(b["labels"][1, n2:] == IGNORE_LABEL)
        # beat positions travel with the beats (recorded-noise augmentation needs them)
        s0, n0 = int(items[0]["sample_idx"][0]), int(items[0]["labels"].shape[0])
        assert items[0]["sample_idx"].tolist() == list(range(s0, s0 + n0))
        assert b["sample_idx"][1, :n2].tolist() == list(range(7))
        assert torch.all(b["sample_idx"][1, n2:] == 0)


class TestSimulatedAF:
    """A DS1 record re-timed into atrial fibrillation episodes, for training."""

    def _record(self, n: int = 1500) -> RecordBeats:
        # sinus rhythm at 0.8 s with an S beat (premature) every 10th and a V every 25th beat
        w, _ = _beats(n)
        rr = np.full(n - 1, 0.8)
        labels = np.zeros(n, np.int64)
        labels[::10] = 1
        labels[::25] = 2
        rr[np.flatnonzero(labels[1:] > 0)] = 0.5  # interval before each ectopic beat
        idx = 1000 + np.concatenate([[0], np.cumsum(np.round(rr * 360.0).astype(np.int64))])
        x = beat_features(w, idx, 360.0, FeatureSettings())
        return RecordBeats("r1", x, labels, idx, np.ones(n, bool))

    def test_keeps_morphology_and_ventricular_labels_and_merges_n_and_s_in_episodes(self) -> None:
        rec = self._record()
        sim = simulated_af_record(rec, 360.0, FeatureSettings(), np.random.default_rng(0), 0.5)
        m = rec.x.shape[1] - N_RR_FEATURES
        np.testing.assert_array_equal(sim.x[:, :m], rec.x[:, :m])
        assert sim.record_id == "r1~af" and len(sim) == len(rec)
        assert np.all(np.diff(sim.sample_idx) > 0)
        np.testing.assert_array_equal(sim.labels == 2, rec.labels == 2)
        np.testing.assert_array_equal(
            sim.x[:, m:], rr_features(sim.sample_idx, 360.0, FeatureSettings())
        )
        # the S beats that stayed S kept their original (sinus-context) timing
        supra = sim.labels == SUPRAVENTRICULAR_LABEL
        moved = (rec.labels == 1) & supra
        kept = (rec.labels == 1) & (sim.labels == 1)
        np.testing.assert_array_equal(moved | kept, rec.labels == 1)
        np.testing.assert_array_equal(
            supra, np.isin(rec.labels, [0, 1]) & (sim.labels != rec.labels)
        )
        assert 0.3 < supra.mean() < 0.7  # af_share 0.5 of the beats
        assert 0.2 < moved.mean() / (rec.labels == 1).mean() < 0.8 and kept.any()
        d_rec, d_sim = np.diff(rec.sample_idx), np.diff(sim.sample_idx)
        k = np.flatnonzero(kept)
        k = k[k > 0]
        np.testing.assert_array_equal(d_sim[k - 1], d_rec[k - 1])

    def test_episodes_look_like_af_to_the_rhythm_features(self) -> None:
        rec = self._record()
        sim = simulated_af_record(rec, 360.0, FeatureSettings(), np.random.default_rng(1), 0.5)
        ent = RR_FEATURES.index("rhythm_rr_entropy") - N_RR_FEATURES
        nrm = RR_FEATURES.index("rhythm_rr_nrmssd") - N_RR_FEATURES
        # inside the episodes (where N and S are merged) the window is AF
        moved = np.flatnonzero((rec.labels == 1) & (sim.labels == SUPRAVENTRICULAR_LABEL))
        deep = moved[(moved > 100)]
        assert np.median(sim.x[deep, ent]) > 0.8 and np.median(sim.x[deep, nrm]) > 0.1
        # the original rhythm with its regular ectopy is not
        assert np.median(rec.x[100:, ent]) < 0.5

    def test_the_share_in_af_is_the_one_asked_for(self) -> None:
        # the first sinus gap was drawn from another range than the others: on a 2,000-beat
        # record 0.28 of the beats were in AF for 0.25, 0.65 for 0.75
        rec = self._record(2000)
        got = [np.mean(simulated_af_record(rec, 360.0, FeatureSettings(),
                                           np.random.default_rng(k), 0.75).labels
                       == SUPRAVENTRICULAR_LABEL) for k in range(120)]  # fmt: skip
        # N and S beats only are relabelled: the share of those that are in AF (0.65 before;
        # one record holds a cycle or two of episode and gap, so the mean of 120 is +-0.02)
        assert np.mean(got) / np.isin(rec.labels, [0, 1]).mean() == pytest.approx(0.75, abs=0.04)

    def test_reproducible_and_validated(self) -> None:
        rec = self._record(400)
        a = simulated_af_record(rec, 360.0, FeatureSettings(), np.random.default_rng(5))
        b = simulated_af_record(rec, 360.0, FeatureSettings(), np.random.default_rng(5))
        np.testing.assert_array_equal(a.sample_idx, b.sample_idx)
        np.testing.assert_array_equal(a.labels, b.labels)
        with pytest.raises(ValueError, match="af_share"):
            simulated_af_record(rec, 360.0, FeatureSettings(), np.random.default_rng(5), 1.0)


def test_the_settings_a_model_was_trained_with_come_back_whole() -> None:
    # a lead given by index was logged as the string "1" and read back as a lead name (no
    # lead has it: column 0 was scored); the live quality window and hop were not logged
    pre = {"fs": 360.0, "lead": "1", "window": {
        "before_s": 0.25, "after_s": 0.45, "quality_window_s": 4.0, "quality_hop_s": 1.0,
        "fallback_lead": 0, "n_samples": 252}}  # fmt: skip
    w = data_config_from_preprocessing(pre).windows
    assert (w.lead, w.quality_window_s, w.quality_hop_s) == (1, 4.0, 1.0)
    assert data_config_from_preprocessing({**pre, "lead": "V5"}, lead=0).windows.lead == 0
    old = data_config_from_preprocessing({"fs": 250.0, "lead": "MLII", "window": {
        "before_s": 0.25, "after_s": 0.45}}).windows  # fmt: skip
    assert (old.lead, old.fs, old.quality_window_s) == ("MLII", 250.0, 10.0)
