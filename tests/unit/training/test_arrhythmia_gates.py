"""Choosing the ensemble's rhythm and quality gates on held-out records, and the numpy
twins of the gates the model applies."""

from __future__ import annotations

import numpy as np
import torch

from vitalgru.data.arrhythmia_dataset import RecordBeats
from vitalgru.data.beat_features import N_RR_FEATURES, RR_FEATURES
from vitalgru.models.beat_gates import apply_quality_gate, apply_rhythm_gate
from vitalgru.training.arrhythmia_gates import (
    choose_quality_gate,
    choose_rhythm_gate,
    quality_gate_probs,
    sv_f1,
)


class TestSvF1:
    def test_mean_of_s_and_v_f1_with_absent_classes_as_zero(self) -> None:
        y = np.array([0, 0, 1, 1, 2, 2])
        pred = np.array([0, 1, 1, 0, 2, 2])  # S: 1 of 2 found, 1 of 2 calls right; V perfect
        score, m = sv_f1(y, pred)
        assert score == (0.5 + 1.0) / 2 and m["s_f1"] == 0.5
        score, m = sv_f1(np.array([0, 0, 2]), np.array([0, 0, 2]))  # no S anywhere
        assert np.isnan(m["s_f1"]) and score == 0.5


class TestRhythmGateChoice:
    def _records(self) -> list[RecordBeats]:
        rng = np.random.default_rng(0)
        n = 400
        x = np.zeros((n, 4 + N_RR_FEATURES), np.float32)
        af = np.arange(n) < 200  # first half AF-like rhythm
        x[:, -N_RR_FEATURES + RR_FEATURES.index("rhythm_rr_entropy")] = np.where(af, 0.9, 0.3)
        x[:, -N_RR_FEATURES + RR_FEATURES.index("rhythm_rr_nrmssd")] = np.where(af, 0.35, 0.5)
        labels = np.where(af | (rng.random(n) < 0.8), 0, 1)  # S only outside AF
        return [RecordBeats("r", x, labels.astype(np.int64), np.arange(n))]

    def test_gate_is_chosen_when_it_removes_false_s_in_af(self) -> None:
        recs = self._records()
        y = recs[0].labels
        p = np.full((len(y), 5), 0.01, np.float32)
        p[np.arange(len(y)), y] = 0.9
        p[:60, 1], p[:60, 0] = 0.6, 0.3  # the model calls 60 AF beats S
        gate, scores = choose_rhythm_gate([p], recs)
        assert (
            gate is not None
            and scores[f"{gate['entropy_min']}/{gate['nrmssd_min']}"] > scores["none"]
        )
        # The chosen gate, applied by the model, makes those beats N.
        logits = torch.log(torch.from_numpy(p))[None]
        rr = torch.from_numpy(recs[0].x[:, -N_RR_FEATURES:])[None]
        gated = apply_rhythm_gate(logits, rr, gate).softmax(-1)[0].numpy()
        assert (gated[:200].argmax(1) == 0).all()
        np.testing.assert_allclose(gated[200:], p[200:] / p[200:].sum(1, keepdims=True), atol=1e-6)

    def test_no_gate_when_it_cannot_help(self) -> None:
        recs = self._records()
        y = recs[0].labels
        p = np.full((len(y), 5), 0.01, np.float32)
        p[np.arange(len(y)), y] = 0.9
        gate, scores = choose_rhythm_gate([p], recs)
        assert gate is None and scores["none"] == max(scores.values())


class TestQualityGateChoice:
    def _records(self, noisy_v: bool) -> tuple[list[RecordBeats], np.ndarray]:
        rng = np.random.default_rng(1)
        n = 300
        labels = np.where(rng.random(n) < 0.8, 0, 2).astype(np.int64)
        ok = np.ones(n, bool)
        ok[100:160] = False  # a noisy stretch
        if noisy_v:
            labels[100:160] = 2  # ... that holds only true V beats
        p = np.full((n, 5), 0.01, np.float32)
        p[np.arange(n), labels] = 0.9
        p[100:160, 2], p[100:160, 0] = 0.7, 0.2  # V called on every noisy beat
        x = np.zeros((n, 4 + N_RR_FEATURES), np.float32)
        return [RecordBeats("r", x, labels, np.arange(n), ok)], p

    def test_on_when_noise_makes_false_v(self) -> None:
        recs, p = self._records(noisy_v=False)
        keep, scores = choose_quality_gate(p, recs)
        assert keep == 1.0 and scores["1.0"] > scores["off"]

    def test_confident_v_calls_survive_when_they_are_right(self) -> None:
        recs, p = self._records(noisy_v=False)
        y = recs[0].labels
        sure = np.flatnonzero(~recs[0].signal_ok)[:20]
        y[sure] = 2  # 20 noisy beats are true V, called with probability 0.98
        p[sure, 2], p[sure, 0] = 0.98, 0.0
        keep, scores = choose_quality_gate(p, recs)
        assert keep is not None and 0.9 <= keep < 0.98
        assert scores[str(keep)] > max(scores["1.0"], scores["off"])

    def test_numpy_twin_equals_the_models_gate(self) -> None:
        rng = np.random.default_rng(2)
        p = rng.dirichlet(np.ones(5) * 0.3, size=(1, 400)).astype(np.float32)
        ok = rng.random((1, 400)) > 0.3
        for keep in (1.0, 0.97, 0.5):
            model = apply_quality_gate(
                torch.log(torch.from_numpy(p)), torch.from_numpy(ok), keep
            ).softmax(-1)[0]
            twin = quality_gate_probs(p[0], ok[0], keep)
            np.testing.assert_allclose(model.numpy(), twin, atol=1e-5)
        flat = p[0]
        assert quality_gate_probs(flat, ok[0], None) is flat

    def test_off_when_the_noisy_v_calls_are_right_or_verdicts_unknown(self) -> None:
        recs, p = self._records(noisy_v=True)
        keep, scores = choose_quality_gate(p, recs)
        assert keep is None and scores["off"] == max(scores.values())
        unknown = [RecordBeats("r", recs[0].x, recs[0].labels, recs[0].sample_idx)]
        assert choose_quality_gate(self._records(noisy_v=False)[1], unknown)[0] is None
